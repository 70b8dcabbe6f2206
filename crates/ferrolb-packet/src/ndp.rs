//! Building neighbour advertisements, and the solicited-node multicast group of an address.

use std::net::Ipv6Addr;

use pnet_packet::ethernet::{EtherTypes, MutableEthernetPacket};
use pnet_packet::icmpv6::Icmpv6Packet;
use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::ipv6::MutableIpv6Packet;

use crate::mac::Mac;

const ETHERNET_HEADER: usize = 14;
const IPV6_HEADER: usize = 40;
/// ICMPv6 header (4) + flags (4) + target (16) + target link-layer option (8).
const ADVERT_LEN: usize = 32;
const NEIGHBOR_ADVERT: u8 = 136;
const OPTION_TARGET_LINK_LAYER: u8 = 2;
const FLAG_SOLICITED: u8 = 0x40;
const FLAG_OVERRIDE: u8 = 0x20;

/// The solicited-node multicast address of `ip` (ff02::1:ffXX:XXXX): a NIC must join it to hear solicitations.
pub fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | u16::from(o[13]), u16::from_be_bytes([o[14], o[15]]))
}

/// The Ethernet multicast address of an IPv6 multicast group (33:33 + its last 32 bits).
pub fn solicited_node_mac(group: Ipv6Addr) -> Mac {
    let o = group.octets();
    Mac([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// A neighbour advertisement for `target` (which we own) at `our_mac`, with the Override flag.
///
/// `to` is where it goes: the solicitor's (MAC, IP) for a solicited advertisement, or `None` for an
/// unsolicited one to all nodes (ff02::1).
pub fn neighbor_advertisement(our_mac: Mac, target: Ipv6Addr, to: Option<(Mac, Ipv6Addr)>) -> Vec<u8> {
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let (dst_mac, dst_ip, solicited) = match to {
        Some((mac, ip)) if !ip.is_unspecified() => (mac, ip, true),
        // A solicitation from :: (duplicate address detection) is answered to all nodes, unsolicited.
        _ => (Mac([0x33, 0x33, 0, 0, 0, 1]), all_nodes, false),
    };
    let mut frame = vec![0u8; ETHERNET_HEADER + IPV6_HEADER + ADVERT_LEN];
    {
        let mut ethernet = MutableEthernetPacket::new(&mut frame).expect("sized for the header");
        ethernet.set_destination(dst_mac.to_pnet());
        ethernet.set_source(our_mac.to_pnet());
        ethernet.set_ethertype(EtherTypes::Ipv6);
    }
    {
        let mut ip = MutableIpv6Packet::new(&mut frame[ETHERNET_HEADER..]).expect("sized for the header");
        ip.set_version(6);
        ip.set_payload_length(ADVERT_LEN as u16);
        ip.set_next_header(IpNextHeaderProtocols::Icmpv6);
        ip.set_hop_limit(255);
        ip.set_source(target);
        ip.set_destination(dst_ip);
    }
    let icmp = &mut frame[ETHERNET_HEADER + IPV6_HEADER..];
    icmp[0] = NEIGHBOR_ADVERT;
    icmp[4] = FLAG_OVERRIDE | if solicited { FLAG_SOLICITED } else { 0 };
    icmp[8..24].copy_from_slice(&target.octets());
    icmp[24] = OPTION_TARGET_LINK_LAYER;
    icmp[25] = 1;
    icmp[26..32].copy_from_slice(&our_mac.0);
    let checksum = pnet_packet::icmpv6::checksum(&Icmpv6Packet::new(icmp).expect("sized"), &target, &dst_ip);
    icmp[2..4].copy_from_slice(&checksum.to_be_bytes());
    frame
}
