//! The PROXY protocol version 2 header (HAProxy's `proxy-protocol.txt`, section 2.2), so a backend behind
//! the relay can still learn the client's address: the relay's own connection to the NodePort comes from
//! the node, not from the client.
//!
//! Pure: bytes out of addresses, no I/O. For TCP the header is sent once, before any data. For UDP the
//! relay prepends it to every datagram it sends to the backend (the specification defines the UDP
//! families but not framing; per-datagram is what HAProxy's and nginx's UDP consumers, where they accept
//! it at all, expect, and it keeps every datagram self-describing).

#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use crate::Protocol;

/// The 12-byte signature that opens every version 2 header.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The longest header this module writes: signature, 4 bytes of version/family/length, and two IPv6
/// addresses with two ports.
pub const MAX_LEN: usize = 16 + 36;

/// Version 2 (high nibble) with the PROXY command (low nibble): the addresses are the original ones.
const VERSION_PROXY: u8 = 0x21;
/// Address family nibbles (high nibble of the family byte).
const FAMILY_INET: u8 = 0x10;
const FAMILY_INET6: u8 = 0x20;
/// Transport nibbles (low nibble of the family byte).
const TRANSPORT_STREAM: u8 = 0x01;
const TRANSPORT_DGRAM: u8 = 0x02;

/// The header announcing a connection (or datagram) from `source` to `destination`.
///
/// Both addresses are written in the source's family. An IPv4 address paired with an IPv6 one (which the
/// relay never produces, since a client reaches a VIP of its own family) is written as IPv4-mapped IPv6.
pub fn header(protocol: Protocol, source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let transport = match protocol {
        Protocol::Tcp => TRANSPORT_STREAM,
        Protocol::Udp => TRANSPORT_DGRAM,
    };
    let mut out = Vec::with_capacity(MAX_LEN);
    out.extend_from_slice(&SIGNATURE);
    out.push(VERSION_PROXY);
    match (source.ip(), destination.ip()) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            out.push(FAMILY_INET | transport);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&src.octets());
            out.extend_from_slice(&dst.octets());
        }
        (src, dst) => {
            out.push(FAMILY_INET6 | transport);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&as_v6(src).octets());
            out.extend_from_slice(&as_v6(dst).octets());
        }
    }
    out.extend_from_slice(&source.port().to_be_bytes());
    out.extend_from_slice(&destination.port().to_be_bytes());
    out
}

fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}
