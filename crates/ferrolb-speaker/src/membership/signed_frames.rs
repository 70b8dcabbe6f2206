//! Announcements signed with the membership key: a speaker's gratuitous ARPs and unsolicited neighbour
//! advertisements carry a [`ferrolb_packet::signature`] naming its node, tagged under the key it sends
//! membership datagrams with. A speaker that hears a claim for an address it owns can then tell another
//! speaker of its own cluster (and which node) from any other host, even when the two cannot hear each
//! other's membership traffic: the evidence a split membership needs to settle who answers.
//!
//! The key is the membership's, so rotation covers it too: a frame verifies under either key of the ring.

use ferrolb_packet::{SIGNATURE_TAG_LEN, sign, signature, signed_message};

use super::envelope::{KeyId, Keyring};

/// `frame` signed by `node` under the ring's sending key.
pub fn sign_frame(ring: &Keyring, node: &str, frame: &[u8]) -> Vec<u8> {
    let key = ring.primary();
    sign(frame, key.id().bytes(), node, |message| {
        let mut tag = [0u8; SIGNATURE_TAG_LEN];
        tag.copy_from_slice(&key.sign(message).as_ref()[..SIGNATURE_TAG_LEN]);
        tag
    })
}

/// Who signed a frame heard on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// This node, and the tag verifies under a key of the ring: a speaker of this cluster.
    Verified(String),
    /// A signature under a key id the ring does not hold, naming this node: a ferrolb speaker with another
    /// key (this cluster's, misconfigured or mid-rotation, if the node is one of ours; else another cluster).
    OtherKey(String),
}

/// Who signed `frame`: [`signer`] when it verifies, [`Signer::OtherKey`] when its key id is not in the
/// ring, `None` when it is unsigned or its tag is wrong under a key of the ring (a forgery).
pub fn classify(ring: &Keyring, frame: &[u8]) -> Option<Signer> {
    if let Some(node) = signer(ring, frame) {
        return Some(Signer::Verified(node.to_owned()));
    }
    let found = signature(frame)?;
    ring.get(KeyId::from_bytes(found.key)).is_none().then(|| Signer::OtherKey(found.node.to_owned()))
}

/// The node that signed `frame`, if it carries a signature whose tag verifies under a key of the ring.
/// Unsigned frames, unknown keys and bad tags are all `None`: the sender is then just another host.
pub fn signer<'a>(ring: &Keyring, frame: &'a [u8]) -> Option<&'a str> {
    let found = signature(frame)?;
    let key = ring.get(KeyId::from_bytes(found.key))?;
    let expected = key.sign(&signed_message(found.packet, found.node));
    // Compared without an early exit, so the time taken says nothing about how much of a forgery was right.
    let difference = expected.as_ref()[..SIGNATURE_TAG_LEN].iter().zip(found.tag).fold(0u8, |d, (a, b)| d | (a ^ b));
    (difference == 0).then_some(found.node)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use ferrolb_packet::{GratuitousForm, Mac, gratuitous_arp, neighbor_advertisement};

    use super::*;
    use crate::membership::MembershipKey;

    fn key(byte: u8) -> MembershipKey {
        MembershipKey::from_bytes(&[byte; 32]).unwrap()
    }

    fn frames() -> Vec<Vec<u8>> {
        let mac = Mac([2, 0, 0, 0, 0, 1]);
        vec![
            gratuitous_arp(mac, Ipv4Addr::new(192, 0, 2, 10), GratuitousForm::Request),
            neighbor_advertisement(mac, "2001:db8::10".parse().unwrap(), None),
        ]
    }

    #[test]
    fn a_frame_signed_under_a_key_of_the_ring_names_its_node() {
        let old = Keyring::new(key(1), None);
        let rotated = Keyring::new(key(2), Some(key(1)));
        for frame in frames() {
            assert_eq!(signer(&old, &sign_frame(&old, "node-1", &frame)), Some("node-1"));
            // During a rotation both keys verify, whichever side has moved on.
            assert_eq!(signer(&rotated, &sign_frame(&old, "node-1", &frame)), Some("node-1"));
            assert_eq!(signer(&old, &sign_frame(&rotated, "node-2", &frame)), None, "the old ring lacks key 2");
        }
    }

    #[test]
    fn another_clusters_frame_a_forged_name_or_an_unsigned_frame_names_nobody() {
        let ours = Keyring::new(key(1), None);
        let theirs = Keyring::new(key(3), None);
        for frame in frames() {
            assert_eq!(signer(&ours, &frame), None);
            assert_eq!(signer(&ours, &sign_frame(&theirs, "node-1", &frame)), None);
            let mut forged = sign_frame(&ours, "node-1", &frame);
            let at = forged.windows(6).position(|w| w == b"node-1").unwrap();
            forged[at + 5] = b'2';
            assert_eq!(signer(&ours, &forged), None, "the tag covers the name");
            let mut moved = sign_frame(&ours, "node-1", &frame);
            moved[14 + 8] ^= 1; // a bit of the packet itself
            assert_eq!(signer(&ours, &moved), None, "the tag covers the packet");
        }
    }

    #[test]
    fn a_frame_is_classified_by_whether_its_key_is_held() {
        let ours = Keyring::new(key(1), None);
        let theirs = Keyring::new(key(3), None);
        for frame in frames() {
            let signed = sign_frame(&ours, "node-1", &frame);
            assert_eq!(classify(&ours, &signed), Some(Signer::Verified("node-1".into())));
            let other = sign_frame(&theirs, "node-1", &frame);
            assert_eq!(classify(&ours, &other), Some(Signer::OtherKey("node-1".into())));
            assert_eq!(classify(&ours, &frame), None, "unsigned");
            let mut forged = signed.clone();
            let last = forged.len() - 1;
            forged[last] ^= 1;
            assert_eq!(classify(&ours, &forged), None, "a bad tag under a key we hold is a forgery, not a speaker");
        }
    }
}
