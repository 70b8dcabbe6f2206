use std::net::SocketAddr;

use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

/// The expected bytes, written out field by field from the specification.
fn check(protocol: Protocol, source: &str, destination: &str, family_byte: u8, body: &[u8]) {
    let got = header(protocol, addr(source), addr(destination));
    let mut want = vec![0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
    want.push(0x21);
    want.push(family_byte);
    want.extend_from_slice(&u16::try_from(body.len()).expect("short body").to_be_bytes());
    want.extend_from_slice(body);
    assert_eq!(got, want, "{protocol:?} {source} -> {destination}");
    assert!(got.len() <= MAX_LEN);
}

#[test]
fn tcp_over_ipv4() {
    check(
        Protocol::Tcp,
        "198.51.100.2:40000",
        "203.0.113.10:80",
        0x11,
        &[198, 51, 100, 2, 203, 0, 113, 10, 0x9c, 0x40, 0x00, 0x50],
    );
}

#[test]
fn udp_over_ipv4() {
    check(
        Protocol::Udp,
        "192.0.2.1:53",
        "203.0.113.10:5353",
        0x12,
        &[192, 0, 2, 1, 203, 0, 113, 10, 0x00, 0x35, 0x14, 0xe9],
    );
}

#[test]
fn tcp_over_ipv6() {
    let mut body = Vec::new();
    body.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02]);
    body.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0x03, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10]);
    body.extend_from_slice(&[0xff, 0xff, 0x01, 0xbb]);
    check(Protocol::Tcp, "[2001:db8:100::2]:65535", "[2001:db8:300::10]:443", 0x21, &body);
}

#[test]
fn udp_over_ipv6() {
    let mut body = Vec::new();
    body.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01]);
    body.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02]);
    body.extend_from_slice(&[0x00, 0x01, 0x00, 0x02]);
    check(Protocol::Udp, "[2001:db8::1]:1", "[2001:db8::2]:2", 0x22, &body);
}

#[test]
fn mixed_families_are_written_as_mapped_ipv6() {
    let mut body = Vec::new();
    body.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1]);
    body.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02]);
    body.extend_from_slice(&[0x00, 0x01, 0x00, 0x02]);
    check(Protocol::Tcp, "192.0.2.1:1", "[2001:db8::2]:2", 0x21, &body);
}
