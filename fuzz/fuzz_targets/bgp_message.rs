//! Fuzzes the BGP codec: any byte stream, framed as a peer's TCP stream would be, gives messages or the
//! error whose NOTIFICATION answers it, never a panic; whatever decodes encodes and decodes to itself (with
//! its attributes in the order this crate writes them).
//! Run with `cargo +nightly fuzz run bgp_message` from the repository root.
#![no_main]

use ferrolb_bgp::{Attribute, Context, Message, frame};

/// The message as this crate writes it: attributes in wire order (routers may send them in any order).
fn normalised(message: &Message) -> Message {
    let mut message = message.clone();
    if let Message::Update(u) = &mut message {
        u.attributes.sort_by_key(Attribute::wire_rank);
    }
    message
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut stream)) = data.split_first() else { return };
    let ctx = Context { four_octet_as: flags & 1 == 1 };
    while let Ok(Some(len)) = frame(stream) {
        let (bytes, rest) = stream.split_at(len);
        match Message::decode(bytes, &ctx) {
            Ok(message) => {
                let again = message.encode(&ctx);
                if again.len() <= 4096 {
                    assert_eq!(Message::decode(&again, &ctx), Ok(normalised(&message)), "round trip");
                }
            }
            Err(e) => {
                let _ = Message::Notification(e.notification()).encode(&ctx);
            }
        }
        stream = rest;
    }
});
