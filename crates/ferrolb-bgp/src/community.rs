//! BGP communities (RFC 1997), large communities (RFC 8092), and their text forms as operators write them
//! in a BGPAdvertisement: `65000:100`, `large:64512:1:2`, or a well-known name such as `no-export`.

use std::fmt;
use std::str::FromStr;

/// A standard community: two 16-bit halves, usually AS and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Community(pub u32);

/// A large community: global administrator and two local values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LargeCommunity {
    /// Global administrator (usually an AS).
    pub global: u32,
    /// First local value.
    pub local1: u32,
    /// Second local value.
    pub local2: u32,
}

/// A community of either kind, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AnyCommunity {
    /// A standard community.
    Standard(Community),
    /// A large community.
    Large(LargeCommunity),
}

/// Well-known communities by the names operators use (IANA's registry; FRR and BIRD spell them so).
pub const WELL_KNOWN: [(&str, u32); 10] = [
    ("graceful-shutdown", 0xFFFF_0000),
    ("accept-own", 0xFFFF_0001),
    ("llgr-stale", 0xFFFF_0006),
    ("no-llgr", 0xFFFF_0007),
    ("blackhole", 0xFFFF_029A),
    ("no-export", 0xFFFF_FF01),
    ("no-advertise", 0xFFFF_FF02),
    ("no-export-subconfed", 0xFFFF_FF03),
    ("local-as", 0xFFFF_FF03),
    ("no-peer", 0xFFFF_FF04),
];

/// A community text that is none of the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a community: write AS:value (65000:100, each 0-65535), large:global:local1:local2 \
     (each 0-4294967295), or a well-known name (no-export, no-advertise, blackhole, ...)"
)]
pub struct CommunityError(pub String);

impl CommunityError {
    /// A static label for logs and metrics.
    pub fn label(&self) -> &'static str {
        "invalid_community"
    }
}

impl FromStr for AnyCommunity {
    type Err = CommunityError;

    fn from_str(text: &str) -> Result<AnyCommunity, CommunityError> {
        let bad = || CommunityError(text.to_owned());
        let t = text.trim();
        if let Some((_, value)) = WELL_KNOWN.iter().find(|(name, _)| name.eq_ignore_ascii_case(t)) {
            return Ok(AnyCommunity::Standard(Community(*value)));
        }
        let parts: Vec<&str> = t.split(':').collect();
        match parts.as_slice() {
            [high, low] => {
                let high: u16 = high.parse().map_err(|_| bad())?;
                let low: u16 = low.parse().map_err(|_| bad())?;
                Ok(AnyCommunity::Standard(Community(u32::from(high) << 16 | u32::from(low))))
            }
            [prefix, global, local1, local2] if prefix.eq_ignore_ascii_case("large") => {
                Ok(AnyCommunity::Large(LargeCommunity {
                    global: global.parse().map_err(|_| bad())?,
                    local1: local1.parse().map_err(|_| bad())?,
                    local2: local2.parse().map_err(|_| bad())?,
                }))
            }
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0 >> 16, self.0 & 0xffff)
    }
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "large:{}:{}:{}", self.global, self.local1, self.local2)
    }
}

impl fmt::Display for AnyCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnyCommunity::Standard(c) => c.fmt(f),
            AnyCommunity::Large(c) => c.fmt(f),
        }
    }
}
