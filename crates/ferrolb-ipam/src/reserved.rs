//! Addresses that can never be a LoadBalancer IP: unspecified ("this network"), loopback, link-local,
//! multicast and the IPv4 limited broadcast. A pool never hands them out, whatever its entries say, and
//! reports how many it left out, so a pool of `0.0.0.0/0` or `::/0` is usable and its counts are exact.

use std::net::IpAddr;

use crate::address::Family;

/// A kind of reserved address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reserved {
    /// `0.0.0.0/8` ("this network", RFC 1122) and `::/128`.
    Unspecified,
    /// `127.0.0.0/8` and `::1/128`.
    Loopback,
    /// `169.254.0.0/16` and `fe80::/10`.
    LinkLocal,
    /// `224.0.0.0/4` and `ff00::/8`.
    Multicast,
    /// `255.255.255.255/32`.
    Broadcast,
}

impl Reserved {
    /// How an operator calls it.
    pub fn as_str(self) -> &'static str {
        match self {
            Reserved::Unspecified => "unspecified",
            Reserved::Loopback => "loopback",
            Reserved::LinkLocal => "link-local",
            Reserved::Multicast => "multicast",
            Reserved::Broadcast => "broadcast",
        }
    }
}

/// The reserved ranges of `family`, as inclusive `u128` bounds in the allocator's numbering.
pub fn reserved_ranges(family: Family) -> &'static [(u128, u128, Reserved)] {
    const V4: [(u128, u128, Reserved); 5] = [
        (0x0000_0000, 0x00ff_ffff, Reserved::Unspecified),
        (0x7f00_0000, 0x7fff_ffff, Reserved::Loopback),
        (0xa9fe_0000, 0xa9fe_ffff, Reserved::LinkLocal),
        (0xe000_0000, 0xefff_ffff, Reserved::Multicast),
        (0xffff_ffff, 0xffff_ffff, Reserved::Broadcast),
    ];
    const V6: [(u128, u128, Reserved); 4] = [
        (0, 0, Reserved::Unspecified),
        (1, 1, Reserved::Loopback),
        (0xfe80 << 112, (0xfebf << 112) | ((1 << 112) - 1), Reserved::LinkLocal),
        (0xff00 << 112, u128::MAX, Reserved::Multicast),
    ];
    match family {
        Family::V4 => &V4,
        Family::V6 => &V6,
    }
}

/// Why `ip` can never be a LoadBalancer IP, if it cannot.
pub fn reserved_kind(ip: IpAddr) -> Option<Reserved> {
    let (family, value) = match ip {
        IpAddr::V4(v4) => (Family::V4, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (Family::V6, u128::from(v6)),
    };
    reserved_ranges(family).iter().find(|(s, e, _)| (*s..=*e).contains(&value)).map(|(_, _, kind)| *kind)
}
