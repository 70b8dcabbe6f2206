//! OPEN messages (RFC 4271 section 4.2) with capabilities (RFC 5492): multiprotocol (RFC 4760), route
//! refresh (RFC 2918) and 4-octet AS numbers (RFC 6793, with `AS_TRANS` in the 2-octet field). Extended
//! optional parameters (RFC 9072) are read; this speaker never needs to send them.

use std::net::Ipv4Addr;

use crate::error::{DecodeError, ErrorKind};
use crate::wire::{Put, Reader, len8};

/// The 2-octet AS that stands for a 4-octet one (RFC 6793).
pub const AS_TRANS: u16 = 23456;

/// An address family: AFI and SAFI (RFC 4760).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Family {
    /// Address family identifier (1 IPv4, 2 IPv6).
    pub afi: u16,
    /// Subsequent address family identifier (1 unicast).
    pub safi: u8,
}

impl Family {
    /// IPv4 unicast.
    pub const IPV4_UNICAST: Family = Family { afi: 1, safi: 1 };
    /// IPv6 unicast.
    pub const IPV6_UNICAST: Family = Family { afi: 2, safi: 1 };

    /// A static label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Family::IPV4_UNICAST => "ipv4_unicast",
            Family::IPV6_UNICAST => "ipv6_unicast",
            _ => "other",
        }
    }
}

/// A capability (RFC 5492).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    /// Code 1: the speaker exchanges routes of this family.
    Multiprotocol(Family),
    /// Code 2: the speaker answers ROUTE-REFRESH.
    RouteRefresh,
    /// Code 65: the speaker's 4-octet AS number.
    FourOctetAs(u32),
    /// Any other capability, kept as read.
    Other {
        /// Capability code.
        code: u8,
        /// Its value.
        value: Vec<u8>,
    },
}

/// An OPEN message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// The 2-octet AS field: the AS, or [`AS_TRANS`] when it needs 4 octets.
    pub my_as: u16,
    /// Proposed hold time in seconds (0, or at least 3).
    pub hold_time: u16,
    /// The BGP identifier.
    pub bgp_id: Ipv4Addr,
    /// Capabilities, in the order sent.
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// The OPEN of a speaker in AS `asn`: the 2-octet field holds `asn` or [`AS_TRANS`], and the 4-octet AS
    /// capability always carries `asn`.
    pub fn new(asn: u32, hold_time: u16, bgp_id: Ipv4Addr, families: &[Family]) -> Open {
        let mut capabilities: Vec<Capability> = families.iter().copied().map(Capability::Multiprotocol).collect();
        capabilities.push(Capability::RouteRefresh);
        capabilities.push(Capability::FourOctetAs(asn));
        Open { my_as: u16::try_from(asn).unwrap_or(AS_TRANS), hold_time, bgp_id, capabilities }
    }

    /// The sender's AS: the 4-octet capability if present, else the 2-octet field.
    pub fn asn(&self) -> u32 {
        self.capabilities
            .iter()
            .find_map(|c| match c {
                Capability::FourOctetAs(asn) => Some(*asn),
                _ => None,
            })
            .unwrap_or(u32::from(self.my_as))
    }

    /// Whether the sender supports 4-octet AS numbers.
    pub fn four_octet_as(&self) -> bool {
        self.capabilities.iter().any(|c| matches!(c, Capability::FourOctetAs(_)))
    }

    /// Whether the sender answers ROUTE-REFRESH.
    pub fn route_refresh(&self) -> bool {
        self.capabilities.contains(&Capability::RouteRefresh)
    }

    /// The families the sender exchanges: those it lists, or IPv4 unicast alone when it lists none (RFC
    /// 4760 section 8).
    pub fn families(&self) -> Vec<Family> {
        let listed: Vec<Family> = self
            .capabilities
            .iter()
            .filter_map(|c| match c {
                Capability::Multiprotocol(f) => Some(*f),
                _ => None,
            })
            .collect();
        if listed.is_empty() { vec![Family::IPV4_UNICAST] } else { listed }
    }

    pub(crate) fn decode(body: &[u8]) -> Result<Open, DecodeError> {
        let malformed = || DecodeError::new(ErrorKind::MalformedOpen);
        let mut r = Reader::new(body);
        let version = r.u8().map_err(|_| malformed())?;
        if version != 4 {
            // The data is the largest version this speaker supports, as two octets.
            return Err(DecodeError::with_data(ErrorKind::UnsupportedVersion, &[0, 4]));
        }
        let my_as = r.u16().map_err(|_| malformed())?;
        let hold_time = r.u16().map_err(|_| malformed())?;
        let bgp_id = r.ipv4().map_err(|_| malformed())?;
        let params_len = r.u8().map_err(|_| malformed())?;
        // RFC 9072: a length of 255 followed by type 255 announces a 2-octet length and 2-octet parameter
        // lengths.
        let extended = params_len == 255 && r.clone().u8() == Ok(255);
        let params_len = if extended {
            r.u8().map_err(|_| malformed())?;
            usize::from(r.u16().map_err(|_| malformed())?)
        } else {
            usize::from(params_len)
        };
        if params_len != r.remaining() {
            return Err(malformed());
        }
        let mut capabilities = Vec::new();
        while !r.is_empty() {
            let kind = r.u8().map_err(|_| malformed())?;
            let len = if extended { r.u16() } else { r.u8().map(u16::from) }.map_err(|_| malformed())?;
            let value = r.take(usize::from(len)).map_err(|_| malformed())?;
            if kind != 2 {
                return Err(DecodeError::new(ErrorKind::UnsupportedOptionalParameter));
            }
            decode_capabilities(value, &mut capabilities)?;
        }
        Ok(Open { my_as, hold_time, bgp_id, capabilities })
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) {
        out.put_u8(4);
        out.put_u16(self.my_as);
        out.put_u16(self.hold_time);
        out.put_u32(u32::from(self.bgp_id));
        let mut caps = Vec::new();
        for cap in &self.capabilities {
            match cap {
                Capability::Multiprotocol(f) => {
                    caps.extend_from_slice(&[1, 4]);
                    caps.put_u16(f.afi);
                    caps.put_u8(0);
                    caps.put_u8(f.safi);
                }
                Capability::RouteRefresh => caps.extend_from_slice(&[2, 0]),
                Capability::FourOctetAs(asn) => {
                    caps.extend_from_slice(&[65, 4]);
                    caps.put_u32(*asn);
                }
                Capability::Other { code, value } => {
                    let value = &value[..value.len().min(255)];
                    caps.put_u8(*code);
                    caps.put_u8(len8(value.len()));
                    caps.extend_from_slice(value);
                }
            }
        }
        // One capabilities parameter; this speaker's own stay far below 255 bytes.
        let caps = &caps[..caps.len().min(253)];
        if caps.is_empty() {
            out.put_u8(0);
        } else {
            out.put_u8(len8(caps.len() + 2));
            out.put_u8(2);
            out.put_u8(len8(caps.len()));
            out.extend_from_slice(caps);
        }
    }
}

fn decode_capabilities(mut value: &[u8], out: &mut Vec<Capability>) -> Result<(), DecodeError> {
    let malformed = || DecodeError::new(ErrorKind::MalformedOpen);
    while !value.is_empty() {
        let mut r = Reader::new(value);
        let code = r.u8().map_err(|_| malformed())?;
        let len = r.u8().map_err(|_| malformed())?;
        let body = r.take(usize::from(len)).map_err(|_| malformed())?;
        value = r.rest();
        let mut b = Reader::new(body);
        out.push(match (code, body.len()) {
            (1, 4) => {
                let afi = b.u16().map_err(|_| malformed())?;
                b.u8().map_err(|_| malformed())?;
                let safi = b.u8().map_err(|_| malformed())?;
                Capability::Multiprotocol(Family { afi, safi })
            }
            (2, 0) => Capability::RouteRefresh,
            (65, 4) => Capability::FourOctetAs(b.u32().map_err(|_| malformed())?),
            (1 | 2 | 65, _) => return Err(malformed()),
            _ => Capability::Other { code, value: body.to_vec() },
        });
    }
    Ok(())
}
