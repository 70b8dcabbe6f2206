//! Fuzzes BFD: any datagram decodes to a packet or an error, never a panic; a decoded packet re-encodes to
//! the same packet; and feeding decoded packets and timer firings to a session never panics.
//! Run with `cargo +nightly fuzz run bfd_packet` from the repository root.
#![no_main]

use std::time::{Duration, Instant};

use ferrolb_bgp::bfd::{BfdConfig, BfdSession, Packet};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let config = BfdConfig {
        desired_min_tx: Duration::from_millis(100),
        required_min_rx: Duration::from_millis(100),
        detect_mult: 3,
        passive: false,
    };
    let mut session = BfdSession::new(config, 1);
    let start = Instant::now();
    session.start(start);
    for (i, chunk) in data.chunks(25).enumerate() {
        let now = start + Duration::from_millis(u64::from(chunk[0]) * 10 * (i as u64 + 1));
        if let Ok(packet) = Packet::decode(&chunk[1..]) {
            assert_eq!(Packet::decode(&packet.encode()), Ok(packet), "round trip");
            session.receive(&packet, now);
        }
        session.on_timer(now, chunk[0] % 26);
    }
});
