//! Building ARP replies and gratuitous ARP.

use std::net::Ipv4Addr;

use pnet_packet::arp::{ArpHardwareTypes, ArpOperation, ArpOperations, MutableArpPacket};
use pnet_packet::ethernet::{EtherTypes, MutableEthernetPacket};

use crate::mac::Mac;

const ETHERNET_HEADER: usize = 14;
const ARP_BODY: usize = 28;
/// Frames are padded to the Ethernet minimum (60 bytes without the FCS).
const MIN_FRAME: usize = 60;

/// Which form of gratuitous ARP to send. Peers differ in which they accept, so the speaker sends both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GratuitousForm {
    /// An ARP request for our own address (RFC 5227 announcement).
    Request,
    /// An unsolicited ARP reply.
    Reply,
}

struct ArpFields {
    destination: Mac,
    operation: ArpOperation,
    sender_mac: Mac,
    sender_ip: Ipv4Addr,
    target_mac: Mac,
    target_ip: Ipv4Addr,
}

fn build(fields: ArpFields) -> Vec<u8> {
    let mut frame = vec![0u8; MIN_FRAME];
    {
        let mut ethernet = MutableEthernetPacket::new(&mut frame).expect("60 bytes hold an Ethernet header");
        ethernet.set_destination(fields.destination.to_pnet());
        ethernet.set_source(fields.sender_mac.to_pnet());
        ethernet.set_ethertype(EtherTypes::Arp);
    }
    let body = &mut frame[ETHERNET_HEADER..ETHERNET_HEADER + ARP_BODY];
    let mut arp = MutableArpPacket::new(body).expect("28 bytes hold an ARP body");
    arp.set_hardware_type(ArpHardwareTypes::Ethernet);
    arp.set_protocol_type(EtherTypes::Ipv4);
    arp.set_hw_addr_len(6);
    arp.set_proto_addr_len(4);
    arp.set_operation(fields.operation);
    arp.set_sender_hw_addr(fields.sender_mac.to_pnet());
    arp.set_sender_proto_addr(fields.sender_ip);
    arp.set_target_hw_addr(fields.target_mac.to_pnet());
    arp.set_target_proto_addr(fields.target_ip);
    frame
}

/// The reply to an ARP request for `ip` (which we own) from `requester_mac`/`requester_ip`.
pub fn arp_reply(our_mac: Mac, ip: Ipv4Addr, requester_mac: Mac, requester_ip: Ipv4Addr) -> Vec<u8> {
    build(ArpFields {
        destination: requester_mac,
        operation: ArpOperations::Reply,
        sender_mac: our_mac,
        sender_ip: ip,
        target_mac: requester_mac,
        target_ip: requester_ip,
    })
}

/// A broadcast gratuitous ARP announcing that `ip` is at `our_mac`.
pub fn gratuitous_arp(our_mac: Mac, ip: Ipv4Addr, form: GratuitousForm) -> Vec<u8> {
    let (operation, target_mac) = match form {
        GratuitousForm::Request => (ArpOperations::Request, Mac::ZERO),
        GratuitousForm::Reply => (ArpOperations::Reply, Mac::BROADCAST),
    };
    build(ArpFields {
        destination: Mac::BROADCAST,
        operation,
        sender_mac: our_mac,
        sender_ip: ip,
        target_mac,
        target_ip: ip,
    })
}
