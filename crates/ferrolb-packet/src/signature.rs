//! A signature on the frames a speaker announces with, so that a speaker that hears another one claim an
//! address can tell a ferrolb speaker of its own cluster (and which node) from any other host. That is what
//! split-brain settlement needs: two speakers that cannot hear each other's membership traffic still see
//! each other's gratuitous ARPs and neighbour advertisements on the LAN.
//!
//! The signature rides in the Ethernet frame after the network-layer packet (after the 28-byte ARP body,
//! after the IPv6 payload length), where Ethernet padding would otherwise be. Receivers never read it: ARP
//! has a fixed length and IPv6 trims the frame to its payload length, so an unsigned reader sees the frame
//! exactly as before. Pure layout: the caller computes the tag (an HMAC under the membership key) over
//! [`signed_message`], so this crate holds no key.
//!
//! Layout: `b"FLBs"` · key id (8 bytes) · node name length (1 byte, 1..=253) · node name · tag (16 bytes).

use pnet_packet::ethernet::{EtherTypes, EthernetPacket};
use pnet_packet::ipv6::Ipv6Packet;

const MAGIC: &[u8; 4] = b"FLBs";
const ETHERNET_HEADER: usize = 14;
const ARP_BODY: usize = 28;
const IPV6_HEADER: usize = 40;
const MIN_FRAME: usize = 60;
/// The length of a key id.
pub const SIGNATURE_KEY_LEN: usize = 8;
/// The length of a tag.
pub const SIGNATURE_TAG_LEN: usize = 16;
/// The longest node name a signature carries (a DNS name, as Kubernetes node names are).
pub const MAX_SIGNED_NODE_LEN: usize = 253;
/// What the tag's message starts with, so that a tag can never be mistaken for one over something else.
const LABEL: &[u8] = b"ferrolb claim v1";

/// A signature read from a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature<'a> {
    /// The id of the key that made the tag.
    pub key: [u8; SIGNATURE_KEY_LEN],
    /// The node that says it sent the frame.
    pub node: &'a str,
    /// The tag over [`signed_message`] of the frame's network-layer packet and `node`.
    pub tag: [u8; SIGNATURE_TAG_LEN],
    /// The network-layer packet the tag covers.
    pub packet: &'a [u8],
}

/// The network-layer packet of an ARP or IPv6 frame (its first byte to its last, without padding), or
/// `None` for anything else or a frame too short for what its header says.
pub fn network_packet(frame: &[u8]) -> Option<&[u8]> {
    let ethernet = EthernetPacket::new(frame)?;
    let len = match ethernet.get_ethertype() {
        EtherTypes::Arp => ARP_BODY,
        EtherTypes::Ipv6 => IPV6_HEADER + usize::from(Ipv6Packet::new(&frame[ETHERNET_HEADER..])?.get_payload_length()),
        _ => return None,
    };
    frame.get(ETHERNET_HEADER..ETHERNET_HEADER + len)
}

/// What the tag is computed over: a fixed label, the network-layer packet, and the node's name.
pub fn signed_message(packet: &[u8], node: &str) -> Vec<u8> {
    let mut message = Vec::with_capacity(LABEL.len() + packet.len() + 1 + node.len());
    message.extend_from_slice(LABEL);
    message.extend_from_slice(packet);
    message.push(node.len() as u8);
    message.extend_from_slice(node.as_bytes());
    message
}

/// `frame` signed by `node` with the key named `key`; `tag` computes the tag over the message it is given
/// ([`signed_message`]). A frame that is neither ARP nor IPv6, or a node name that is empty or longer than
/// [`MAX_SIGNED_NODE_LEN`], is returned unchanged: an unsigned frame still works, it only cannot be told
/// apart from another host's.
pub fn sign(
    frame: &[u8],
    key: [u8; SIGNATURE_KEY_LEN],
    node: &str,
    tag: impl FnOnce(&[u8]) -> [u8; SIGNATURE_TAG_LEN],
) -> Vec<u8> {
    let Some(packet) = network_packet(frame) else { return frame.to_vec() };
    if node.is_empty() || node.len() > MAX_SIGNED_NODE_LEN {
        return frame.to_vec();
    }
    let tag = tag(&signed_message(packet, node));
    let mut signed = frame[..ETHERNET_HEADER + packet.len()].to_vec();
    signed.extend_from_slice(MAGIC);
    signed.extend_from_slice(&key);
    signed.push(node.len() as u8);
    signed.extend_from_slice(node.as_bytes());
    signed.extend_from_slice(&tag);
    if signed.len() < MIN_FRAME {
        signed.resize(MIN_FRAME, 0);
    }
    signed
}

/// The signature `frame` carries, if it has a well-formed one (the tag is not checked here: the caller
/// holds the keys).
pub fn signature(frame: &[u8]) -> Option<Signature<'_>> {
    let packet = network_packet(frame)?;
    let rest = &frame[ETHERNET_HEADER + packet.len()..];
    let rest = rest.strip_prefix(MAGIC)?;
    let (key, rest) = rest.split_first_chunk::<SIGNATURE_KEY_LEN>()?;
    let (len, rest) = rest.split_first()?;
    let len = usize::from(*len);
    if len == 0 || len > MAX_SIGNED_NODE_LEN {
        return None;
    }
    let node = std::str::from_utf8(rest.get(..len)?).ok()?;
    let (tag, _padding) = rest[len..].split_first_chunk::<SIGNATURE_TAG_LEN>()?;
    Some(Signature { key: *key, node, tag: *tag, packet })
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;
    use crate::{GratuitousForm, Mac, claim, gratuitous_arp, neighbor_advertisement};

    const MAC: Mac = Mac([2, 0, 0, 0, 0, 1]);
    const KEY: [u8; 8] = [7; 8];

    /// A stand-in tag: any function of the message does for layout tests.
    fn tag(message: &[u8]) -> [u8; 16] {
        let mut t = [0u8; 16];
        for (i, b) in message.iter().enumerate() {
            t[i % 16] ^= b.rotate_left(i as u32 % 8);
        }
        t
    }

    fn frames() -> Vec<Vec<u8>> {
        let v4 = Ipv4Addr::new(192, 0, 2, 10);
        let v6: Ipv6Addr = "2001:db8::10".parse().unwrap();
        vec![
            gratuitous_arp(MAC, v4, GratuitousForm::Request),
            gratuitous_arp(MAC, v4, GratuitousForm::Reply),
            neighbor_advertisement(MAC, v6, None),
        ]
    }

    #[test]
    fn a_signed_frame_names_its_node_and_key_and_its_tag_covers_the_packet() {
        for frame in frames() {
            let signed = sign(&frame, KEY, "node-1", tag);
            let found = signature(&signed).expect("signed");
            assert_eq!((found.key, found.node), (KEY, "node-1"));
            assert_eq!(found.tag, tag(&signed_message(found.packet, "node-1")));
            assert_eq!(found.packet, network_packet(&frame).unwrap());
            assert!(signature(&frame).is_none(), "an unsigned frame has no signature");
        }
    }

    #[test]
    fn receivers_read_a_signed_frame_as_the_unsigned_one() {
        for frame in frames() {
            let signed = sign(&frame, KEY, "node-1", tag);
            assert_eq!(claim(&signed), claim(&frame));
            assert!(claim(&frame).is_some());
            assert!(signed.len() >= MIN_FRAME);
        }
    }

    #[test]
    fn node_names_a_signature_cannot_carry_leave_the_frame_unsigned() {
        let frame = &frames()[0];
        assert_eq!(sign(frame, KEY, "", tag), *frame);
        assert_eq!(sign(frame, KEY, &"n".repeat(254), tag), *frame);
        let longest = "n".repeat(MAX_SIGNED_NODE_LEN);
        assert_eq!(signature(&sign(frame, KEY, &longest, tag)).unwrap().node, longest);
    }

    #[test]
    fn a_truncated_signature_is_none() {
        let signed = sign(&frames()[2], KEY, "node-1", tag);
        for len in 0..signed.len() {
            assert!(signature(&signed[..len]).is_none(), "{len} bytes");
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = signature(&bytes);
            let _ = sign(&bytes, KEY, "node-1", tag);
        }

        #[test]
        fn random_trailers_never_panic(trailer in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut frame = network_packet(&frames()[0]).map(|p| frames()[0][..14 + p.len()].to_vec()).unwrap();
            frame.extend_from_slice(MAGIC);
            frame.extend_from_slice(&trailer);
            let _ = signature(&frame);
        }
    }
}
