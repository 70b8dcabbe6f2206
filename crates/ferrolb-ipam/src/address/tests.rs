//! The same cases the CRD's CEL rules decide (the e2e suite checks those against a real API server), so the
//! controller and the API server agree on what a valid entry is.

use super::AddressRange;
use crate::error::ParseError;

fn check(entry: &str, expected: Result<&str, &str>) {
    let got = entry.parse::<AddressRange>();
    match (got, expected) {
        (Ok(range), Ok(want)) => assert_eq!(range.to_string(), want, "{entry}"),
        (Err(e), Err(label)) => {
            let kind = match e {
                ParseError::Syntax { .. } => "syntax",
                ParseError::HostBitsSet { .. } => "host_bits",
                ParseError::MixedFamilies { .. } => "mixed",
                ParseError::StartAfterEnd { .. } => "order",
            };
            assert_eq!(kind, label, "{entry}: {e}");
        }
        (got, want) => panic!("{entry}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn entries() {
    check("198.51.100.0/24", Ok("198.51.100.0-198.51.100.255"));
    check("198.51.100.7/32", Ok("198.51.100.7-198.51.100.7"));
    check("2001:db8:1::/64", Ok("2001:db8:1::-2001:db8:1:0:ffff:ffff:ffff:ffff"));
    check("198.51.100.10-198.51.100.20", Ok("198.51.100.10-198.51.100.20"));
    check(" 198.51.100.10 - 198.51.100.20 ", Ok("198.51.100.10-198.51.100.20"));
    check("2001:DB8::1-2001:db8::ff", Ok("2001:db8::1-2001:db8::ff"));
    check("198.51.100.0/33", Err("syntax"));
    check("not-an-address", Err("syntax"));
    check("198.51.100.5/24", Err("host_bits"));
    check("198.51.100.20-198.51.100.10", Err("order"));
    check("2001:db8::ff-2001:db8::1", Err("order"));
    check("198.51.100.1-2001:db8::1", Err("mixed"));
}

#[test]
fn messages_read_well() {
    let err = "198.51.100.5/24".parse::<AddressRange>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "\"198.51.100.5/24\" has bits set after the prefix length; the network is 198.51.100.0/24"
    );
}

#[test]
fn buggy_counts() {
    assert_eq!(super::buggy_v4_count(0, 255), 2);
    assert_eq!(super::buggy_v4_count(1, 254), 0);
    assert_eq!(super::buggy_v4_count(255, 256), 2);
    assert_eq!(super::buggy_v4_count(0, 511), 4);
}
