//! Recognising the frames the speaker answers: ARP requests and IPv6 neighbour solicitations.

use std::net::{Ipv4Addr, Ipv6Addr};

use pnet_packet::Packet;
use pnet_packet::arp::{ArpHardwareTypes, ArpOperations, ArpPacket};
use pnet_packet::ethernet::{EtherTypes, EthernetPacket};
use pnet_packet::icmpv6::Icmpv6Packet;
use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::ipv6::Ipv6Packet;

use crate::mac::Mac;

/// A request the speaker may have to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// ARP "who has `target_ip`", from `sender`.
    Arp {
        /// Ethernet source of the frame.
        frame_source: Mac,
        /// Sender hardware address in the ARP body.
        sender_mac: Mac,
        /// Sender protocol address (0.0.0.0 for an ARP probe).
        sender_ip: Ipv4Addr,
        /// The address asked for.
        target_ip: Ipv4Addr,
    },
    /// IPv6 neighbour solicitation for `target`.
    NeighborSolicit {
        /// Ethernet source of the frame.
        frame_source: Mac,
        /// IPv6 source (:: for duplicate address detection).
        source_ip: Ipv6Addr,
        /// IPv6 destination (solicited-node multicast, or the target itself for a unicast NUD probe).
        destination_ip: Ipv6Addr,
        /// The address asked for.
        target: Ipv6Addr,
        /// The source link-layer address option, if present (unicast NUD probes may omit it).
        source_link_layer: Option<Mac>,
    },
}

/// Why a frame is not a request the speaker answers; each has a static label for the drop counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Shorter than its headers claim.
    #[error("truncated frame")]
    Truncated,
    /// Neither ARP nor IPv6 ICMPv6 neighbour solicitation (the BPF filter should have dropped it).
    #[error("not ARP or a neighbour solicitation")]
    Unrelated,
    /// An ARP reply or other operation: nothing to answer.
    #[error("not an ARP request")]
    NotArpRequest,
    /// ARP for a hardware or protocol type other than Ethernet/IPv4.
    #[error("ARP for another hardware or protocol type")]
    ArpNotEthernetIpv4,
    /// A neighbour solicitation failing RFC 4861 validation (hop limit, code, length, options, checksum).
    #[error("invalid neighbour solicitation: {0}")]
    InvalidSolicit(&'static str),
}

impl ParseError {
    /// A static label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            ParseError::Truncated => "truncated",
            ParseError::Unrelated => "unrelated",
            ParseError::NotArpRequest => "not_arp_request",
            ParseError::ArpNotEthernetIpv4 => "arp_not_ethernet_ipv4",
            ParseError::InvalidSolicit(_) => "invalid_solicit",
        }
    }
}

/// Parses an Ethernet frame.
pub fn parse(frame: &[u8]) -> Result<Request, ParseError> {
    let ethernet = EthernetPacket::new(frame).ok_or(ParseError::Truncated)?;
    let frame_source = Mac::from_pnet(ethernet.get_source());
    match ethernet.get_ethertype() {
        EtherTypes::Arp => parse_arp(frame_source, ethernet.payload()),
        EtherTypes::Ipv6 => parse_solicit(frame_source, ethernet.payload()),
        _ => Err(ParseError::Unrelated),
    }
}

fn parse_arp(frame_source: Mac, body: &[u8]) -> Result<Request, ParseError> {
    let arp = ArpPacket::new(body).ok_or(ParseError::Truncated)?;
    if arp.get_hardware_type() != ArpHardwareTypes::Ethernet
        || arp.get_protocol_type() != EtherTypes::Ipv4
        || arp.get_hw_addr_len() != 6
        || arp.get_proto_addr_len() != 4
    {
        return Err(ParseError::ArpNotEthernetIpv4);
    }
    if arp.get_operation() != ArpOperations::Request {
        return Err(ParseError::NotArpRequest);
    }
    Ok(Request::Arp {
        frame_source,
        sender_mac: Mac::from_pnet(arp.get_sender_hw_addr()),
        sender_ip: arp.get_sender_proto_addr(),
        target_ip: arp.get_target_proto_addr(),
    })
}

/// ICMPv6 type of a neighbour solicitation.
const NEIGHBOR_SOLICIT: u8 = 135;
/// NDP option: source link-layer address.
const OPTION_SOURCE_LINK_LAYER: u8 = 1;

fn parse_solicit(frame_source: Mac, body: &[u8]) -> Result<Request, ParseError> {
    let ip = Ipv6Packet::new(body).ok_or(ParseError::Truncated)?;
    if ip.get_next_header() != IpNextHeaderProtocols::Icmpv6 {
        return Err(ParseError::Unrelated);
    }
    let declared = usize::from(ip.get_payload_length());
    let payload = ip.payload().get(..declared).ok_or(ParseError::Truncated)?;
    let icmp = Icmpv6Packet::new(payload).ok_or(ParseError::Truncated)?;
    if icmp.get_icmpv6_type().0 != NEIGHBOR_SOLICIT {
        return Err(ParseError::Unrelated);
    }
    if ip.get_hop_limit() != 255 {
        return Err(ParseError::InvalidSolicit("hop limit is not 255"));
    }
    if icmp.get_icmpv6_code().0 != 0 {
        return Err(ParseError::InvalidSolicit("code is not 0"));
    }
    let (source_ip, destination_ip) = (ip.get_source(), ip.get_destination());
    if pnet_packet::icmpv6::checksum(&icmp, &source_ip, &destination_ip) != icmp.get_checksum() {
        return Err(ParseError::InvalidSolicit("bad checksum"));
    }
    // After type, code, checksum: 4 reserved bytes, the 16-byte target, then options.
    let rest = icmp.payload();
    let target_bytes: [u8; 16] =
        rest.get(4..20).and_then(|b| b.try_into().ok()).ok_or(ParseError::InvalidSolicit("shorter than 24 bytes"))?;
    let target = Ipv6Addr::from(target_bytes);
    if target.is_multicast() {
        return Err(ParseError::InvalidSolicit("multicast target"));
    }
    let source_link_layer = walk_options(rest.get(20..).unwrap_or_default())?;
    if source_ip.is_unspecified() && source_link_layer.is_some() {
        return Err(ParseError::InvalidSolicit("source link-layer option with unspecified source"));
    }
    Ok(Request::NeighborSolicit { frame_source, source_ip, destination_ip, target, source_link_layer })
}

/// Walks NDP options (type, length in units of 8 bytes, value) and returns the source link-layer address.
fn walk_options(mut options: &[u8]) -> Result<Option<Mac>, ParseError> {
    let mut source = None;
    while !options.is_empty() {
        let (&kind, &units) = match options {
            [kind, units, ..] => (kind, units),
            _ => return Err(ParseError::InvalidSolicit("option header truncated")),
        };
        let len = usize::from(units)
            .checked_mul(8)
            .filter(|l| *l > 0)
            .ok_or(ParseError::InvalidSolicit("zero-length option"))?;
        let option = options.get(..len).ok_or(ParseError::InvalidSolicit("option runs past the packet"))?;
        if kind == OPTION_SOURCE_LINK_LAYER {
            let mac: [u8; 6] = option
                .get(2..8)
                .and_then(|b| b.try_into().ok())
                .ok_or(ParseError::InvalidSolicit("short link-layer option"))?;
            source = Some(Mac(mac));
        }
        options = &options[len..];
    }
    Ok(source)
}
