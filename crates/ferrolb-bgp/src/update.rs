//! UPDATE messages (RFC 4271 section 4.3) and the path attributes this speaker sends or must check: ORIGIN,
//! AS_PATH (4-octet ASNs when both sides support them, RFC 6793), NEXT_HOP, MULTI_EXIT_DISC, LOCAL_PREF,
//! COMMUNITIES (RFC 1997), MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 4760), LARGE_COMMUNITY (RFC 8092). Other
//! attributes are kept as read. Every field is checked as RFC 4271 section 6.3 says, so a malformed UPDATE
//! becomes the NOTIFICATION it prescribes.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::community::{Community, LargeCommunity};
use crate::error::{DecodeError, ErrorKind};
use crate::open::Family;
use crate::wire::{Put, Reader, len8, len16};

/// Attribute flag: optional (else well-known).
pub const OPTIONAL: u8 = 0x80;
/// Attribute flag: transitive.
pub const TRANSITIVE: u8 = 0x40;
/// Attribute flag: partial.
pub const PARTIAL: u8 = 0x20;
/// Attribute flag: the length field has two octets.
pub const EXTENDED_LENGTH: u8 = 0x10;

/// Attribute type codes.
pub mod code {
    /// ORIGIN.
    pub const ORIGIN: u8 = 1;
    /// AS_PATH.
    pub const AS_PATH: u8 = 2;
    /// NEXT_HOP.
    pub const NEXT_HOP: u8 = 3;
    /// MULTI_EXIT_DISC.
    pub const MULTI_EXIT_DISC: u8 = 4;
    /// LOCAL_PREF.
    pub const LOCAL_PREF: u8 = 5;
    /// ATOMIC_AGGREGATE.
    pub const ATOMIC_AGGREGATE: u8 = 6;
    /// AGGREGATOR.
    pub const AGGREGATOR: u8 = 7;
    /// COMMUNITIES.
    pub const COMMUNITIES: u8 = 8;
    /// MP_REACH_NLRI.
    pub const MP_REACH_NLRI: u8 = 14;
    /// MP_UNREACH_NLRI.
    pub const MP_UNREACH_NLRI: u8 = 15;
    /// AS4_PATH.
    pub const AS4_PATH: u8 = 17;
    /// LARGE_COMMUNITY.
    pub const LARGE_COMMUNITY: u8 = 32;
}

/// Where a route came from (ORIGIN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// 0: interior to the originating AS (what this speaker sends: the addresses are its own).
    Igp,
    /// 1: learnt by EGP.
    Egp,
    /// 2: learnt some other way.
    Incomplete,
}

/// One AS_PATH segment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AsSegment {
    /// 1 AS_SET, 2 AS_SEQUENCE, 3 AS_CONFED_SEQUENCE, 4 AS_CONFED_SET.
    pub kind: u8,
    /// The ASes, in order.
    pub asns: Vec<u32>,
}

/// AS_SEQUENCE, the segment type of a path this speaker originates.
pub const AS_SEQUENCE: u8 = 2;

/// A path attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    /// ORIGIN.
    Origin(Origin),
    /// AS_PATH.
    AsPath(Vec<AsSegment>),
    /// NEXT_HOP, for IPv4 routes in the UPDATE's own NLRI field.
    NextHop(Ipv4Addr),
    /// MULTI_EXIT_DISC.
    MultiExitDisc(u32),
    /// LOCAL_PREF (iBGP only).
    LocalPref(u32),
    /// COMMUNITIES.
    Communities(Vec<Community>),
    /// MP_REACH_NLRI: routes of `family` via `next_hops` (a global address, optionally with a link-local one).
    MpReach {
        /// The family.
        family: Family,
        /// The next hop(s).
        next_hops: Vec<IpAddr>,
        /// The routes (only IPv4 and IPv6 unicast are decoded; other families keep none).
        nlri: Vec<IpNet>,
    },
    /// MP_UNREACH_NLRI.
    MpUnreach {
        /// The family.
        family: Family,
        /// The withdrawn routes.
        withdrawn: Vec<IpNet>,
    },
    /// LARGE_COMMUNITY.
    LargeCommunities(Vec<LargeCommunity>),
    /// Any other attribute, as read.
    Other {
        /// Its flags, without the extended-length bit (which only says how the length is written).
        flags: u8,
        /// Its type code.
        code: u8,
        /// Its value.
        value: Vec<u8>,
    },
}

impl Attribute {
    /// The attribute's type code.
    pub fn code(&self) -> u8 {
        match self {
            Attribute::Origin(_) => code::ORIGIN,
            Attribute::AsPath(_) => code::AS_PATH,
            Attribute::NextHop(_) => code::NEXT_HOP,
            Attribute::MultiExitDisc(_) => code::MULTI_EXIT_DISC,
            Attribute::LocalPref(_) => code::LOCAL_PREF,
            Attribute::Communities(_) => code::COMMUNITIES,
            Attribute::MpReach { .. } => code::MP_REACH_NLRI,
            Attribute::MpUnreach { .. } => code::MP_UNREACH_NLRI,
            Attribute::LargeCommunities(_) => code::LARGE_COMMUNITY,
            Attribute::Other { code, .. } => *code,
        }
    }

    /// Where the attribute goes in an UPDATE this speaker writes: MP_REACH_NLRI and MP_UNREACH_NLRI first (RFC
    /// 7606 section 5.1, so a receiver finds the routes before anything that could be malformed), then the
    /// others in type order.
    pub fn wire_rank(&self) -> u16 {
        match self {
            Attribute::MpReach { .. } | Attribute::MpUnreach { .. } => u16::from(self.code()),
            _ => 256 + u16::from(self.code()),
        }
    }

    fn flags(&self) -> u8 {
        match self {
            Attribute::Origin(_) | Attribute::AsPath(_) | Attribute::NextHop(_) | Attribute::LocalPref(_) => TRANSITIVE,
            Attribute::MultiExitDisc(_) | Attribute::MpReach { .. } | Attribute::MpUnreach { .. } => OPTIONAL,
            Attribute::Communities(_) | Attribute::LargeCommunities(_) => OPTIONAL | TRANSITIVE,
            Attribute::Other { flags, .. } => *flags & !EXTENDED_LENGTH,
        }
    }
}

/// What decoding needs to know about the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// Both sides sent the 4-octet AS capability: AS_PATH carries 4-octet ASNs.
    pub four_octet_as: bool,
}

/// An UPDATE message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Update {
    /// IPv4 routes withdrawn.
    pub withdrawn: Vec<Ipv4Net>,
    /// Path attributes (in the order read; written in [`Attribute::wire_rank`] order).
    pub attributes: Vec<Attribute>,
    /// IPv4 routes announced with the attributes.
    pub nlri: Vec<Ipv4Net>,
}

impl Update {
    /// An End-of-RIB marker for `family` (RFC 4724): an empty UPDATE for IPv4, an empty MP_UNREACH_NLRI
    /// otherwise.
    pub fn end_of_rib(family: Family) -> Update {
        if family == Family::IPV4_UNICAST {
            return Update::default();
        }
        Update { attributes: vec![Attribute::MpUnreach { family, withdrawn: Vec::new() }], ..Update::default() }
    }

    /// The size of this UPDATE on the wire, header included.
    pub fn encoded_len(&self, ctx: &Context) -> usize {
        let mut body = Vec::new();
        self.encode_body(ctx, &mut body);
        crate::message::HEADER_LEN + body.len()
    }

    pub(crate) fn decode(body: &[u8], ctx: &Context) -> Result<Update, DecodeError> {
        let malformed = || DecodeError::new(ErrorKind::MalformedAttributeList);
        let mut r = Reader::new(body);
        let withdrawn_len = r.u16().map_err(|_| malformed())?;
        let withdrawn_bytes = r.take(usize::from(withdrawn_len)).map_err(|_| malformed())?;
        let withdrawn = decode_v4_prefixes(withdrawn_bytes)?;
        let attributes_len = r.u16().map_err(|_| malformed())?;
        let attribute_bytes = r.take(usize::from(attributes_len)).map_err(|_| malformed())?;
        let nlri = decode_v4_prefixes(r.rest())?;
        let attributes = decode_attributes(attribute_bytes, ctx)?;
        let has = |c: u8| attributes.iter().any(|a| a.code() == c);
        let mp_reach = has(code::MP_REACH_NLRI);
        if !nlri.is_empty() || mp_reach {
            let mut required = vec![code::ORIGIN, code::AS_PATH];
            if !nlri.is_empty() {
                required.push(code::NEXT_HOP);
            }
            if let Some(missing) = required.into_iter().find(|c| !has(*c)) {
                return Err(DecodeError::with_data(ErrorKind::MissingWellKnownAttribute, &[missing]));
            }
        }
        Ok(Update { withdrawn, attributes, nlri })
    }

    pub(crate) fn encode_body(&self, ctx: &Context, out: &mut Vec<u8>) {
        let mut withdrawn = Vec::new();
        for prefix in &self.withdrawn {
            encode_prefix(&IpNet::V4(*prefix), &mut withdrawn);
        }
        out.put_u16(len16(withdrawn.len()));
        out.extend_from_slice(&withdrawn);
        let mut sorted: Vec<&Attribute> = self.attributes.iter().collect();
        sorted.sort_by_key(|a| a.wire_rank());
        let mut attributes = Vec::new();
        for attribute in sorted {
            encode_attribute(attribute, ctx, &mut attributes);
        }
        out.put_u16(len16(attributes.len()));
        out.extend_from_slice(&attributes);
        for prefix in &self.nlri {
            encode_prefix(&IpNet::V4(*prefix), out);
        }
    }
}

fn decode_v4_prefixes(bytes: &[u8]) -> Result<Vec<Ipv4Net>, DecodeError> {
    let invalid = || DecodeError::new(ErrorKind::InvalidNetworkField);
    decode_prefixes(bytes, 1, invalid)?
        .into_iter()
        .map(|p| match p {
            IpNet::V4(p) => Ok(p),
            IpNet::V6(_) => Err(invalid()),
        })
        .collect()
}

/// Prefixes of `afi` (1 IPv4, 2 IPv6), each a length in bits and as many octets as it needs; host bits are
/// ignored (RFC 4271: trailing bits are irrelevant).
fn decode_prefixes(bytes: &[u8], afi: u16, error: impl Fn() -> DecodeError) -> Result<Vec<IpNet>, DecodeError> {
    let max_bits: u8 = if afi == 1 { 32 } else { 128 };
    let mut r = Reader::new(bytes);
    let mut prefixes = Vec::new();
    while !r.is_empty() {
        let bits = r.u8().map_err(|_| error())?;
        if bits > max_bits {
            return Err(error());
        }
        let octets = r.take(usize::from(bits).div_ceil(8)).map_err(|_| error())?;
        let prefix = if afi == 1 {
            let mut a = [0u8; 4];
            a[..octets.len()].copy_from_slice(octets);
            IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), bits).map_err(|_| error())?.trunc())
        } else {
            let mut a = [0u8; 16];
            a[..octets.len()].copy_from_slice(octets);
            IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), bits).map_err(|_| error())?.trunc())
        };
        prefixes.push(prefix);
    }
    Ok(prefixes)
}

/// Writes `prefix` as NLRI: its length in bits, then the octets that length needs.
pub(crate) fn encode_prefix(prefix: &IpNet, out: &mut Vec<u8>) {
    let bits = prefix.prefix_len();
    out.put_u8(bits);
    let octets = usize::from(bits).div_ceil(8);
    match prefix.trunc() {
        IpNet::V4(p) => out.extend_from_slice(&p.addr().octets()[..octets]),
        IpNet::V6(p) => out.extend_from_slice(&p.addr().octets()[..octets]),
    }
}

/// The flags a known attribute must carry (optional and transitive bits), if it is known.
fn expected_flags(code: u8) -> Option<u8> {
    Some(match code {
        code::ORIGIN | code::AS_PATH | code::NEXT_HOP | code::LOCAL_PREF | code::ATOMIC_AGGREGATE => TRANSITIVE,
        code::MULTI_EXIT_DISC | code::MP_REACH_NLRI | code::MP_UNREACH_NLRI => OPTIONAL,
        code::AGGREGATOR | code::COMMUNITIES | code::AS4_PATH | code::LARGE_COMMUNITY => OPTIONAL | TRANSITIVE,
        _ => return None,
    })
}

fn decode_attributes(bytes: &[u8], ctx: &Context) -> Result<Vec<Attribute>, DecodeError> {
    let malformed = || DecodeError::new(ErrorKind::MalformedAttributeList);
    let mut r = Reader::new(bytes);
    let mut attributes = Vec::new();
    let mut seen = BTreeSet::new();
    while !r.is_empty() {
        let mut start = r.clone();
        let flags = r.u8().map_err(|_| malformed())?;
        let kind = r.u8().map_err(|_| malformed())?;
        let len = if flags & EXTENDED_LENGTH != 0 { r.u16() } else { r.u8().map(u16::from) };
        let len = usize::from(len.map_err(|_| DecodeError::new(ErrorKind::AttributeLengthError))?);
        let value = r.take(len).map_err(|_| DecodeError::new(ErrorKind::AttributeLengthError))?;
        // The whole attribute (flags, type, length, value) is the data of the NOTIFICATION about it.
        let consumed = start.remaining() - r.remaining();
        let whole = start.take(consumed).unwrap_or_default();
        if !seen.insert(kind) {
            return Err(malformed());
        }
        match expected_flags(kind) {
            Some(expected) => {
                let partial_ok = expected & OPTIONAL == 0 || expected & TRANSITIVE != 0 || flags & PARTIAL == 0;
                let well_known_not_partial = expected & OPTIONAL != 0 || flags & PARTIAL == 0;
                if flags & (OPTIONAL | TRANSITIVE) != expected || !partial_ok || !well_known_not_partial {
                    return Err(DecodeError::with_data(ErrorKind::AttributeFlagsError, whole));
                }
            }
            None if flags & OPTIONAL == 0 => {
                return Err(DecodeError::with_data(ErrorKind::UnrecognizedWellKnownAttribute, whole));
            }
            None => {}
        }
        attributes.push(decode_attribute(flags, kind, value, whole, ctx)?);
    }
    Ok(attributes)
}

fn decode_attribute(flags: u8, kind: u8, value: &[u8], whole: &[u8], ctx: &Context) -> Result<Attribute, DecodeError> {
    let length_error = || DecodeError::with_data(ErrorKind::AttributeLengthError, whole);
    let mut r = Reader::new(value);
    Ok(match kind {
        code::ORIGIN => {
            let [origin] = value else { return Err(length_error()) };
            Attribute::Origin(match origin {
                0 => Origin::Igp,
                1 => Origin::Egp,
                2 => Origin::Incomplete,
                _ => return Err(DecodeError::with_data(ErrorKind::InvalidOrigin, whole)),
            })
        }
        code::AS_PATH => Attribute::AsPath(decode_as_path(value, ctx.four_octet_as)?),
        code::NEXT_HOP => {
            if value.len() != 4 {
                return Err(length_error());
            }
            let hop = r.ipv4().map_err(|_| length_error())?;
            if hop.is_unspecified() || hop.is_multicast() || hop.is_broadcast() {
                return Err(DecodeError::with_data(ErrorKind::InvalidNextHop, whole));
            }
            Attribute::NextHop(hop)
        }
        code::MULTI_EXIT_DISC | code::LOCAL_PREF => {
            if value.len() != 4 {
                return Err(length_error());
            }
            let v = r.u32().map_err(|_| length_error())?;
            if kind == code::LOCAL_PREF { Attribute::LocalPref(v) } else { Attribute::MultiExitDisc(v) }
        }
        code::ATOMIC_AGGREGATE if !value.is_empty() => return Err(length_error()),
        code::AGGREGATOR if value.len() != if ctx.four_octet_as { 8 } else { 6 } => return Err(length_error()),
        code::COMMUNITIES => {
            if !value.len().is_multiple_of(4) {
                return Err(DecodeError::with_data(ErrorKind::OptionalAttributeError, whole));
            }
            Attribute::Communities(value.chunks_exact(4).map(|c| Community(be32(c))).collect())
        }
        code::LARGE_COMMUNITY => {
            if !value.len().is_multiple_of(12) {
                return Err(DecodeError::with_data(ErrorKind::OptionalAttributeError, whole));
            }
            Attribute::LargeCommunities(
                value
                    .chunks_exact(12)
                    .map(|c| LargeCommunity { global: be32(&c[0..4]), local1: be32(&c[4..8]), local2: be32(&c[8..12]) })
                    .collect(),
            )
        }
        code::MP_REACH_NLRI => decode_mp_reach(value, whole)?,
        code::MP_UNREACH_NLRI => {
            let optional_error = || DecodeError::with_data(ErrorKind::OptionalAttributeError, whole);
            let afi = r.u16().map_err(|_| optional_error())?;
            let safi = r.u8().map_err(|_| optional_error())?;
            let family = Family { afi, safi };
            let withdrawn = match family {
                Family::IPV4_UNICAST | Family::IPV6_UNICAST => decode_prefixes(r.rest(), afi, optional_error)?,
                _ => Vec::new(),
            };
            Attribute::MpUnreach { family, withdrawn }
        }
        // The extended-length bit says how the length was written, not what the attribute is.
        code::AS4_PATH => {
            Attribute::Other { flags: flags & !EXTENDED_LENGTH, code: kind, value: decode_as4_path(value, whole)? }
        }
        _ => Attribute::Other { flags: flags & !EXTENDED_LENGTH, code: kind, value: value.to_vec() },
    })
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn decode_mp_reach(value: &[u8], whole: &[u8]) -> Result<Attribute, DecodeError> {
    let optional_error = || DecodeError::with_data(ErrorKind::OptionalAttributeError, whole);
    let mut r = Reader::new(value);
    let afi = r.u16().map_err(|_| optional_error())?;
    let safi = r.u8().map_err(|_| optional_error())?;
    let family = Family { afi, safi };
    let hop_len = r.u8().map_err(|_| optional_error())?;
    let hop_bytes = r.take(usize::from(hop_len)).map_err(|_| optional_error())?;
    r.u8().map_err(|_| optional_error())?; // reserved
    let mut hops = Reader::new(hop_bytes);
    let next_hops: Vec<IpAddr> = match (family, hop_len) {
        (Family::IPV4_UNICAST, 4) => vec![IpAddr::V4(hops.ipv4().map_err(|_| optional_error())?)],
        (Family::IPV6_UNICAST | Family::IPV4_UNICAST, 16) => {
            vec![IpAddr::V6(hops.ipv6().map_err(|_| optional_error())?)]
        }
        (Family::IPV6_UNICAST | Family::IPV4_UNICAST, 32) => vec![
            IpAddr::V6(hops.ipv6().map_err(|_| optional_error())?),
            IpAddr::V6(hops.ipv6().map_err(|_| optional_error())?),
        ],
        (Family::IPV4_UNICAST | Family::IPV6_UNICAST, _) => return Err(optional_error()),
        _ => Vec::new(),
    };
    let nlri = match family {
        Family::IPV4_UNICAST | Family::IPV6_UNICAST => decode_prefixes(r.rest(), afi, optional_error)?,
        _ => Vec::new(),
    };
    Ok(Attribute::MpReach { family, next_hops, nlri })
}

fn decode_as_path(value: &[u8], four_octet: bool) -> Result<Vec<AsSegment>, DecodeError> {
    let malformed = || DecodeError::new(ErrorKind::MalformedAsPath);
    let width = if four_octet { 4 } else { 2 };
    let mut r = Reader::new(value);
    let mut segments = Vec::new();
    while !r.is_empty() {
        let kind = r.u8().map_err(|_| malformed())?;
        let count = r.u8().map_err(|_| malformed())?;
        if !(1..=4).contains(&kind) || count == 0 {
            return Err(malformed());
        }
        let bytes = r.take(usize::from(count) * width).map_err(|_| malformed())?;
        let asns = bytes
            .chunks_exact(width)
            .map(|c| if width == 4 { be32(c) } else { u32::from(u16::from_be_bytes([c[0], c[1]])) })
            .collect();
        segments.push(AsSegment { kind, asns });
    }
    Ok(segments)
}

/// AS4_PATH is checked as a 4-octet path and kept as read (this speaker never relays routes).
fn decode_as4_path(value: &[u8], whole: &[u8]) -> Result<Vec<u8>, DecodeError> {
    decode_as_path(value, true).map_err(|_| DecodeError::with_data(ErrorKind::OptionalAttributeError, whole))?;
    Ok(value.to_vec())
}

fn put_attribute(flags: u8, kind: u8, value: &[u8], out: &mut Vec<u8>) {
    if value.len() > 255 {
        out.put_u8(flags | EXTENDED_LENGTH);
        out.put_u8(kind);
        out.put_u16(len16(value.len()));
    } else {
        out.put_u8(flags);
        out.put_u8(kind);
        out.put_u8(len8(value.len()));
    }
    out.extend_from_slice(value);
}

fn encode_as_path(segments: &[AsSegment], four_octet: bool) -> Vec<u8> {
    let mut v = Vec::new();
    for segment in segments {
        // A segment holds at most 255 ASes; longer ones are split.
        for chunk in segment.asns.chunks(255) {
            v.put_u8(segment.kind);
            v.put_u8(len8(chunk.len()));
            for asn in chunk {
                if four_octet {
                    v.put_u32(*asn);
                } else {
                    v.put_u16(u16::try_from(*asn).unwrap_or(crate::open::AS_TRANS));
                }
            }
        }
    }
    v
}

fn encode_attribute(attribute: &Attribute, ctx: &Context, out: &mut Vec<u8>) {
    let flags = attribute.flags();
    let kind = attribute.code();
    let mut v = Vec::new();
    match attribute {
        Attribute::Origin(origin) => v.put_u8(match origin {
            Origin::Igp => 0,
            Origin::Egp => 1,
            Origin::Incomplete => 2,
        }),
        Attribute::AsPath(segments) => {
            v = encode_as_path(segments, ctx.four_octet_as);
            // A peer without 4-octet AS support also gets the real path as AS4_PATH (RFC 6793).
            let needs_as4 = !ctx.four_octet_as && segments.iter().flat_map(|s| &s.asns).any(|a| *a > 0xffff);
            put_attribute(flags, kind, &v, out);
            if needs_as4 {
                put_attribute(OPTIONAL | TRANSITIVE, code::AS4_PATH, &encode_as_path(segments, true), out);
            }
            return;
        }
        Attribute::NextHop(hop) => v.extend_from_slice(&hop.octets()),
        Attribute::MultiExitDisc(x) | Attribute::LocalPref(x) => v.put_u32(*x),
        Attribute::Communities(list) => list.iter().for_each(|c| v.put_u32(c.0)),
        Attribute::LargeCommunities(list) => list.iter().for_each(|c| {
            v.put_u32(c.global);
            v.put_u32(c.local1);
            v.put_u32(c.local2);
        }),
        Attribute::MpReach { family, next_hops, nlri } => {
            v.put_u16(family.afi);
            v.put_u8(family.safi);
            let mut hops = Vec::new();
            for hop in next_hops {
                match hop {
                    IpAddr::V4(a) => hops.extend_from_slice(&a.octets()),
                    IpAddr::V6(a) => hops.extend_from_slice(&a.octets()),
                }
            }
            v.put_u8(len8(hops.len()));
            v.extend_from_slice(&hops);
            v.put_u8(0);
            for prefix in nlri {
                encode_prefix(prefix, &mut v);
            }
        }
        Attribute::MpUnreach { family, withdrawn } => {
            v.put_u16(family.afi);
            v.put_u8(family.safi);
            for prefix in withdrawn {
                encode_prefix(prefix, &mut v);
            }
        }
        Attribute::Other { value, .. } => v.extend_from_slice(value),
    }
    put_attribute(flags, kind, &v, out);
}
