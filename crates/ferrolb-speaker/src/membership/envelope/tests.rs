use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

fn key(s: &str) -> MembershipKey {
    MembershipKey::from_bytes(s.as_bytes()).unwrap()
}

fn single(s: &str) -> Keyring {
    Keyring::new(key(s), None)
}

const OLD: &str = "the key before the rotation";
const NEW: &str = "the key after the rotation!";

#[test]
fn a_sealed_datagram_opens_with_the_same_key() {
    let ring = single("0123456789abcdef0123");
    let sealed = seal(&ring, ring.primary(), 1_000_000, b"hello");
    let opened = open(&ring, 1_000_500, &sealed).unwrap();
    assert_eq!(opened.payload, b"hello");
    assert_eq!(opened.sealed_with, ring.primary().id());
    assert_eq!(opened.sender_primary, ring.primary().id());
}

#[test]
fn another_key_or_a_flipped_bit_is_refused() {
    let ring = single("0123456789abcdef0123");
    let sealed = seal(&ring, ring.primary(), 1_000_000, b"member x is down");
    let other = single("0123456789abcdef0124");
    assert_eq!(open(&other, 1_000_000, &sealed), Err(OpenError::UnknownKey(ring.primary().id())));
    for i in 0..sealed.len() {
        let mut bad = sealed.clone();
        bad[i] ^= 1;
        assert!(open(&ring, 1_000_000, &bad).is_err(), "bit flip at {i} accepted");
    }
}

#[test]
fn a_datagram_naming_a_held_key_but_sealed_with_another_is_forged() {
    let ring = single("0123456789abcdef0123");
    let stranger = single("0123456789abcdef0124");
    let mut sealed = seal(&stranger, stranger.primary(), 1_000_000, b"member x is down");
    // The stranger claims our key id; it still cannot make the tag.
    let id = ring.primary().id().0;
    sealed[12..20].copy_from_slice(&id);
    assert_eq!(open(&ring, 1_000_000, &sealed), Err(OpenError::BadTag));
}

#[test]
fn old_datagrams_are_refused() {
    let ring = single("0123456789abcdef0123");
    let sealed = seal(&ring, ring.primary(), 1_000_000, b"x");
    assert_eq!(open(&ring, 1_000_000 + MAX_CLOCK_SKEW_MS + 1, &sealed), Err(OpenError::Stale(MAX_CLOCK_SKEW_MS + 1)));
    assert!(open(&ring, 1_000_000 - 1000, &sealed).is_ok(), "a slightly fast sender is fine");
}

#[test]
fn short_keys_and_foreign_datagrams_are_refused() {
    assert_eq!(MembershipKey::from_bytes(b"short\n").unwrap_err(), KeyError::TooShort(5));
    assert!(MembershipKey::from_bytes(b"  0123456789abcdef\n").is_ok());
    let ring = single("0123456789abcdef0123");
    assert_eq!(open(&ring, 0, b"FLB"), Err(OpenError::NotOurs));
    assert_eq!(open(&ring, 0, &[0u8; 100]), Err(OpenError::NotOurs));
    let mut version_one = seal(&ring, ring.primary(), 0, b"x");
    version_one[3] = 1;
    assert_eq!(open(&ring, 0, &version_one), Err(OpenError::NotOurs));
}

#[test]
fn key_ids_name_keys_and_rings_compare_by_them() {
    assert_eq!(key(OLD).id(), key(&format!("{OLD}\n")).id(), "the file's trailing newline is not part of the key");
    assert_ne!(key(OLD).id(), key(NEW).id());
    assert_eq!(key(OLD).id().to_string().len(), 16);
    assert!(!format!("{:?}", key(OLD)).contains("rotation"), "Debug never shows the key");
    assert_eq!(Keyring::new(key(NEW), Some(key(NEW))), single(NEW), "a previous key equal to the primary is none");
    assert_ne!(Keyring::new(key(NEW), Some(key(OLD))), single(NEW));
    assert_ne!(Keyring::new(key(NEW), Some(key(OLD))), Keyring::new(key(OLD), Some(key(NEW))));
}

#[test]
fn a_rotating_ring_opens_both_keys_and_seals_what_the_peer_takes() {
    let rotating = Keyring::new(key(NEW), Some(key(OLD)));
    let old = single(OLD);
    let from_old = seal(&old, old.primary(), 0, b"ping");
    let opened = open(&rotating, 0, &from_old).unwrap();
    assert_eq!(opened.sender_primary, key(OLD).id(), "the old speaker sends with the old key");

    let ids = |keys: Vec<&MembershipKey>| keys.into_iter().map(MembershipKey::id).collect::<Vec<_>>();
    assert_eq!(ids(sealing_keys(&rotating, Some(key(OLD).id()))), [key(OLD).id()], "talk old to an old peer");
    assert_eq!(ids(sealing_keys(&rotating, Some(key(NEW).id()))), [key(NEW).id()], "and new to a new one");
    assert_eq!(ids(sealing_keys(&rotating, None)), [key(NEW).id(), key(OLD).id()], "unknown: one copy per key");
    let other = key("a key nobody here holds").id();
    assert_eq!(ids(sealing_keys(&rotating, Some(other))), [key(NEW).id(), key(OLD).id()]);
    assert_eq!(ids(sealing_keys(&old, None)), [key(OLD).id()]);
}

/// What a speaker knows in the rotation model: its ring and the sending key each peer last named.
struct Speaker {
    ring: Keyring,
    peers: HashMap<usize, KeyId>,
}

/// One step of a rotation: a speaker picks up the new Secret (new key, old kept), or one speaker sends to
/// another.
#[derive(Debug, Clone)]
enum Step {
    Upgrade(usize),
    Send(usize, usize),
}

fn steps(n: usize) -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        (0..n).prop_map(Step::Upgrade),
        (0..n, 0..n).prop_filter("to another", |(a, b)| a != b).prop_map(|(a, b)| Step::Send(a, b)),
    ];
    proptest::collection::vec(step, 0..60)
}

/// Delivers one message from `a` to `b` the way the membership does; whether any copy opened.
fn send(speakers: &mut [Speaker], a: usize, b: usize) -> bool {
    let keys: Vec<MembershipKey> =
        sealing_keys(&speakers[a].ring, speakers[a].peers.get(&b).copied()).into_iter().cloned().collect();
    let mut delivered = false;
    for k in &keys {
        let datagram = seal(&speakers[a].ring, k, 0, b"msg");
        if let Ok(opened) = open(&speakers[b].ring, 0, &datagram) {
            speakers[b].peers.insert(a, opened.sender_primary);
            delivered = true;
        }
    }
    delivered
}

proptest! {
    /// Whatever order the speakers pick up the new key in, and whoever talks to whom meanwhile, every
    /// message gets through; once all have it and each pair has talked both ways, only the new key is used.
    #[test]
    fn a_rotation_in_any_order_loses_no_message(steps in steps(4)) {
        let mut speakers: Vec<Speaker> = (0..4).map(|_| Speaker { ring: single(OLD), peers: HashMap::new() }).collect();
        for step in steps {
            match step {
                Step::Upgrade(i) => speakers[i].ring = Keyring::new(key(NEW), Some(key(OLD))),
                Step::Send(a, b) => prop_assert!(send(&mut speakers, a, b), "{a} -> {b} lost"),
            }
        }
        for s in &mut speakers {
            s.ring = Keyring::new(key(NEW), Some(key(OLD)));
        }
        for a in 0..4 {
            for b in 0..4 {
                if a != b {
                    prop_assert!(send(&mut speakers, a, b));
                    prop_assert!(send(&mut speakers, b, a));
                }
            }
        }
        for (a, speaker) in speakers.iter().enumerate() {
            for b in (0..4).filter(|b| *b != a) {
                let keys = sealing_keys(&speaker.ring, speaker.peers.get(&b).copied());
                prop_assert_eq!(keys.len(), 1);
                prop_assert_eq!(keys[0].id(), key(NEW).id());
            }
        }
        // Now the old key can go: nothing is lost.
        for s in &mut speakers {
            s.ring = single(NEW);
        }
        for a in 0..4 {
            for b in (0..4).filter(|b| *b != a) {
                prop_assert!(send(&mut speakers, a, b));
            }
        }
    }
}
