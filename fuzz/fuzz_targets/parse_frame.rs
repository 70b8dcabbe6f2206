//! Fuzzes the ARP/NDP frame parser: any input must give `Ok` or `Err`, never a panic.
//! Run with `cargo +nightly fuzz run parse_frame` from the repository root.
#![no_main]

libfuzzer_sys::fuzz_target!(|frame: &[u8]| {
    let _ = ferrolb_packet::parse(frame);
});
