//! Fuzzes the BGP codec: any byte stream, framed as a peer's TCP stream would be, gives messages or the
//! error whose NOTIFICATION answers it, never a panic; whatever decodes encodes and decodes to itself.
//! Run with `cargo +nightly fuzz run bgp_message` from the repository root.
#![no_main]

use ferrolb_bgp::{Context, Message, frame};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut stream)) = data.split_first() else { return };
    let ctx = Context { four_octet_as: flags & 1 == 1 };
    while let Ok(Some(len)) = frame(stream) {
        let (bytes, rest) = stream.split_at(len);
        match Message::decode(bytes, &ctx) {
            Ok(message) => {
                let again = message.encode(&ctx);
                if again.len() <= 4096 {
                    assert_eq!(Message::decode(&again, &ctx).as_ref(), Ok(&message), "round trip");
                }
            }
            Err(e) => {
                let _ = Message::Notification(e.notification()).encode(&ctx);
            }
        }
        stream = rest;
    }
});
