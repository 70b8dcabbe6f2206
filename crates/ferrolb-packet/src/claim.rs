//! Recognising that another machine claims an address, and the probes that make it speak up.
//!
//! RFC 5227 (IPv4 Address Conflict Detection) and RFC 4862's duplicate address detection work the same way:
//! before using an address, ask for it without claiming it (an ARP probe from 0.0.0.0; a neighbour
//! solicitation from `::` to the address's solicited-node group); any answer, or anyone else probing for it
//! at the same time, means the address is taken. [`claim`] reads those answers from a frame; [`arp_probe`]
//! and [`dad_solicitation`] build the probes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use pnet_packet::Packet;
use pnet_packet::arp::{ArpHardwareTypes, ArpOperations, ArpPacket, MutableArpPacket};
use pnet_packet::ethernet::{EtherTypes, EthernetPacket, MutableEthernetPacket};
use pnet_packet::icmpv6::Icmpv6Packet;
use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::ipv6::{Ipv6Packet, MutableIpv6Packet};

use crate::mac::Mac;
use crate::ndp::{solicited_node, solicited_node_mac};

const ETHERNET_HEADER: usize = 14;
const ARP_BODY: usize = 28;
const MIN_FRAME: usize = 60;
const IPV6_HEADER: usize = 40;
/// ICMPv6 header (4) + reserved (4) + target (16), no option: a solicitation from `::` carries none.
const SOLICIT_LEN: usize = 24;
const NEIGHBOR_SOLICIT: u8 = 135;
const NEIGHBOR_ADVERT: u8 = 136;
const OPTION_TARGET_LINK_LAYER: u8 = 2;

/// Someone on the link says (or asks to take) `ip` is at `mac`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// The address claimed.
    pub ip: IpAddr,
    /// The hardware address claiming it (the ARP sender, the advertisement's target link-layer address, or
    /// the frame's source).
    pub mac: Mac,
    /// It is a probe (0.0.0.0 or `::` as the source): someone else wants the address too.
    pub probe: bool,
}

/// The claim a frame makes, if any: an ARP request or reply (its sender address; for a probe, the target),
/// a neighbour advertisement (its target), or a duplicate address detection solicitation (its target).
/// Anything else, and anything malformed, is `None`.
pub fn claim(frame: &[u8]) -> Option<Claim> {
    let ethernet = EthernetPacket::new(frame)?;
    let source = Mac::from_pnet(ethernet.get_source());
    match ethernet.get_ethertype() {
        EtherTypes::Arp => arp_claim(ethernet.payload()),
        EtherTypes::Ipv6 => ndp_claim(source, ethernet.payload()),
        _ => None,
    }
}

fn arp_claim(body: &[u8]) -> Option<Claim> {
    let arp = ArpPacket::new(body)?;
    if arp.get_hardware_type() != ArpHardwareTypes::Ethernet
        || arp.get_protocol_type() != EtherTypes::Ipv4
        || arp.get_hw_addr_len() != 6
        || arp.get_proto_addr_len() != 4
    {
        return None;
    }
    let operation = arp.get_operation();
    if operation != ArpOperations::Request && operation != ArpOperations::Reply {
        return None;
    }
    let mac = Mac::from_pnet(arp.get_sender_hw_addr());
    let sender = arp.get_sender_proto_addr();
    if sender.is_unspecified() {
        // A probe: only a request asks, and it names the address it wants.
        let target = arp.get_target_proto_addr();
        return (operation == ArpOperations::Request && !target.is_unspecified()).then_some(Claim {
            ip: IpAddr::V4(target),
            mac,
            probe: true,
        });
    }
    Some(Claim { ip: IpAddr::V4(sender), mac, probe: false })
}

fn ndp_claim(source: Mac, body: &[u8]) -> Option<Claim> {
    let ip = Ipv6Packet::new(body)?;
    if ip.get_next_header() != IpNextHeaderProtocols::Icmpv6 || ip.get_hop_limit() != 255 {
        return None;
    }
    let payload = ip.payload().get(..usize::from(ip.get_payload_length()))?;
    let icmp = Icmpv6Packet::new(payload)?;
    if icmp.get_icmpv6_code().0 != 0
        || pnet_packet::icmpv6::checksum(&icmp, &ip.get_source(), &ip.get_destination()) != icmp.get_checksum()
    {
        return None;
    }
    // After type, code and checksum: 4 bytes of flags or reserved, the 16-byte target, then options.
    let rest = icmp.payload();
    let target = Ipv6Addr::from(<[u8; 16]>::try_from(rest.get(4..20)?).ok()?);
    if target.is_multicast() || target.is_unspecified() {
        return None;
    }
    match icmp.get_icmpv6_type().0 {
        NEIGHBOR_ADVERT => {
            let mac = target_link_layer(rest.get(20..).unwrap_or_default()).unwrap_or(source);
            Some(Claim { ip: IpAddr::V6(target), mac, probe: false })
        }
        NEIGHBOR_SOLICIT if ip.get_source().is_unspecified() => {
            Some(Claim { ip: IpAddr::V6(target), mac: source, probe: true })
        }
        _ => None,
    }
}

/// The target link-layer address option of an advertisement, if present and well formed.
fn target_link_layer(mut options: &[u8]) -> Option<Mac> {
    while let [kind, units, ..] = *options {
        let len = usize::from(units).checked_mul(8).filter(|l| *l > 0)?;
        let option = options.get(..len)?;
        if kind == OPTION_TARGET_LINK_LAYER {
            return Some(Mac(option.get(2..8)?.try_into().ok()?));
        }
        options = &options[len..];
    }
    None
}

/// An RFC 5227 ARP probe for `ip` from `our_mac`: a broadcast request with sender address 0.0.0.0, so no
/// one's cache learns anything from it, and whoever holds `ip` answers.
pub fn arp_probe(our_mac: Mac, ip: Ipv4Addr) -> Vec<u8> {
    let mut frame = vec![0u8; MIN_FRAME];
    {
        let mut ethernet = MutableEthernetPacket::new(&mut frame).expect("60 bytes hold an Ethernet header");
        ethernet.set_destination(Mac::BROADCAST.to_pnet());
        ethernet.set_source(our_mac.to_pnet());
        ethernet.set_ethertype(EtherTypes::Arp);
    }
    let mut arp = MutableArpPacket::new(&mut frame[ETHERNET_HEADER..ETHERNET_HEADER + ARP_BODY])
        .expect("28 bytes hold an ARP body");
    arp.set_hardware_type(ArpHardwareTypes::Ethernet);
    arp.set_protocol_type(EtherTypes::Ipv4);
    arp.set_hw_addr_len(6);
    arp.set_proto_addr_len(4);
    arp.set_operation(ArpOperations::Request);
    arp.set_sender_hw_addr(our_mac.to_pnet());
    arp.set_sender_proto_addr(Ipv4Addr::UNSPECIFIED);
    arp.set_target_hw_addr(Mac::ZERO.to_pnet());
    arp.set_target_proto_addr(ip);
    frame
}

/// A duplicate address detection solicitation for `ip` from `our_mac` (RFC 4862 5.4.2): from `::` to the
/// solicited-node group, with no source link-layer option; whoever holds `ip` answers to all nodes.
pub fn dad_solicitation(our_mac: Mac, ip: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node(ip);
    let mut frame = vec![0u8; ETHERNET_HEADER + IPV6_HEADER + SOLICIT_LEN];
    {
        let mut ethernet = MutableEthernetPacket::new(&mut frame).expect("sized for the header");
        ethernet.set_destination(solicited_node_mac(group).to_pnet());
        ethernet.set_source(our_mac.to_pnet());
        ethernet.set_ethertype(EtherTypes::Ipv6);
    }
    {
        let mut header = MutableIpv6Packet::new(&mut frame[ETHERNET_HEADER..]).expect("sized for the header");
        header.set_version(6);
        header.set_payload_length(SOLICIT_LEN as u16);
        header.set_next_header(IpNextHeaderProtocols::Icmpv6);
        header.set_hop_limit(255);
        header.set_source(Ipv6Addr::UNSPECIFIED);
        header.set_destination(group);
    }
    let icmp = &mut frame[ETHERNET_HEADER + IPV6_HEADER..];
    icmp[0] = NEIGHBOR_SOLICIT;
    icmp[8..24].copy_from_slice(&ip.octets());
    let checksum =
        pnet_packet::icmpv6::checksum(&Icmpv6Packet::new(icmp).expect("sized"), &Ipv6Addr::UNSPECIFIED, &group);
    icmp[2..4].copy_from_slice(&checksum.to_be_bytes());
    frame
}
