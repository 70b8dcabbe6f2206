//! Address families and the address ranges an operator writes in a pool (`198.51.100.0/24`,
//! `2001:db8::/64`, `198.51.100.10-198.51.100.20`).
//!
//! Addresses are handled as `u128` inside a [`Family`], so IPv4 and IPv6 share one interval arithmetic.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;

use crate::error::ParseError;

/// An IP address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// Both families, IPv4 first.
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    /// The family of an address.
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Index for per-family arrays (`[T; 2]`).
    pub fn index(self) -> usize {
        match self {
            Family::V4 => 0,
            Family::V6 => 1,
        }
    }

    /// A short label for logs, metrics and status fields: `ipv4` or `ipv6`.
    pub fn label(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }

    /// The address with this family and numeric value. `value` must fit the family.
    pub(crate) fn addr(self, value: u128) -> IpAddr {
        match self {
            Family::V4 => IpAddr::V4(Ipv4Addr::from(value as u32)),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(value)),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// The numeric value of an address within its family.
pub(crate) fn value(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// An inclusive range of addresses of one family, parsed from a CIDR or from `start-end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressRange {
    family: Family,
    start: u128,
    end: u128,
}

impl AddressRange {
    /// The range `start..=end`; both ends must be of the same family and `start <= end`.
    pub fn new(start: IpAddr, end: IpAddr) -> Result<AddressRange, ParseError> {
        if Family::of(start) != Family::of(end) {
            return Err(ParseError::MixedFamilies { start, end });
        }
        if value(start) > value(end) {
            return Err(ParseError::StartAfterEnd { start, end });
        }
        Ok(AddressRange { family: Family::of(start), start: value(start), end: value(end) })
    }

    /// The address family of the range.
    pub fn family(&self) -> Family {
        self.family
    }

    /// The first address.
    pub fn start(&self) -> IpAddr {
        self.family.addr(self.start)
    }

    /// The last address.
    pub fn end(&self) -> IpAddr {
        self.family.addr(self.end)
    }

    /// Numeric bounds within the family.
    pub(crate) fn bounds(&self) -> (u128, u128) {
        (self.start, self.end)
    }
}

impl FromStr for AddressRange {
    type Err = ParseError;

    /// Parses `198.51.100.0/24`, `2001:db8::/64` or `a-b` (spaces around either end are allowed).
    /// A CIDR with bits set after the prefix is refused rather than silently masked.
    fn from_str(text: &str) -> Result<AddressRange, ParseError> {
        let entry = text.trim();
        if let Some((a, b)) = entry.split_once('-') {
            let start = parse_ip(a.trim(), entry)?;
            let end = parse_ip(b.trim(), entry)?;
            return AddressRange::new(start, end);
        }
        let net: IpNet = entry.parse().map_err(|_| ParseError::Syntax { entry: entry.to_owned() })?;
        if net.trunc() != net {
            return Err(ParseError::HostBitsSet { entry: entry.to_owned(), network: net.trunc().to_string() });
        }
        AddressRange::new(net.network(), net.broadcast())
    }
}

fn parse_ip(text: &str, entry: &str) -> Result<IpAddr, ParseError> {
    text.parse().map_err(|_| ParseError::Syntax { entry: entry.to_owned() })
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start(), self.end())
    }
}

/// Whether an IPv4 address value ends in `.0` or `.255` (some old clients and routers mistreat them).
pub(crate) fn is_buggy_v4(value: u128) -> bool {
    matches!(value & 0xff, 0 | 0xff)
}

/// How many IPv4 addresses ending in `.0` or `.255` lie in `start..=end`.
pub(crate) fn buggy_v4_count(start: u128, end: u128) -> u128 {
    // Buggy addresses in 0..n: two per full /24 block, plus the `.0` of a started partial block.
    fn below(n: u128) -> u128 {
        2 * (n >> 8) + u128::from(n & 0xff > 0)
    }
    below(end + 1) - below(start)
}

#[cfg(test)]
mod tests;
