//! Fuzzes the session state machine with arbitrary event sequences (messages decoded from the input, TCP
//! events, timer firings): it must never panic, and a NOTIFICATION it sends is always followed by a
//! disconnect. Run with `cargo +nightly fuzz run bgp_session` from the repository root.
#![no_main]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ferrolb_bgp::session::{Action, Config, Event, Session};
use ferrolb_bgp::{Context, Family, Message, frame};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let config = Config {
        my_asn: 64512,
        peer_asn: 64513,
        router_id: Ipv4Addr::new(198, 51, 100, 11),
        hold_time: Duration::from_secs(9),
        keepalive: None,
        connect_retry: Duration::from_secs(1),
        families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
    };
    let mut session = Session::new(config);
    let start = Instant::now();
    let mut now = start;
    let ctx = Context { four_octet_as: true };
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        now += Duration::from_millis(u64::from(op & 0x0f) * 250);
        let actions = match op >> 4 {
            0 => session.handle(Event::Start, now),
            1 => session.handle(Event::Connected, now),
            2 => session.handle(Event::ConnectFailed, now),
            3 => session.handle(Event::Closed, now),
            4 => session.handle(Event::Stop("fuzz".into()), now),
            5..=7 => session.on_timer(now),
            _ => match frame(rest) {
                Ok(Some(len)) => {
                    let (bytes, tail) = rest.split_at(len);
                    rest = tail;
                    match Message::decode(bytes, &ctx) {
                        Ok(m) => session.handle(Event::Received(m), now),
                        Err(e) => session.handle(Event::Malformed(e), now),
                    }
                }
                Ok(None) => break,
                Err(e) => session.handle(Event::Malformed(e), now),
            },
        };
        if let Some(i) = actions.iter().position(|a| matches!(a, Action::Send(Message::Notification(_)))) {
            assert!(actions[i..].contains(&Action::Disconnect), "{actions:?}");
        }
    }
});
