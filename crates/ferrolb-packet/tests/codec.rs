//! Round trips and hostile input for the ARP/NDP codec.

use std::net::{Ipv4Addr, Ipv6Addr};

use ferrolb_packet::*;
use proptest::prelude::*;

const OURS: Mac = Mac([0x02, 0, 0, 0, 0, 0x01]);
const PEER: Mac = Mac([0x02, 0, 0, 0, 0, 0x02]);

/// An ARP request as a peer would send it (a gratuitous request has the same shape).
fn arp_request(sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut frame = gratuitous_arp(PEER, sender, GratuitousForm::Request);
    frame[38..42].copy_from_slice(&target.octets());
    frame
}

/// A neighbour solicitation built by turning our advertisement builder's frame into an NS.
fn solicitation(source: Ipv6Addr, target: Ipv6Addr, with_option: bool) -> Vec<u8> {
    let mut frame = vec![0u8; 14 + 40 + 24 + if with_option { 8 } else { 0 }];
    frame[0..6].copy_from_slice(&solicited_node_mac(solicited_node(target)).0);
    frame[6..12].copy_from_slice(&PEER.0);
    frame[12..14].copy_from_slice(&[0x86, 0xdd]);
    let dst = solicited_node(target);
    let payload_len = (frame.len() - 54) as u16;
    frame[14] = 0x60;
    frame[18..20].copy_from_slice(&payload_len.to_be_bytes());
    frame[20] = 58;
    frame[21] = 255;
    frame[22..38].copy_from_slice(&source.octets());
    frame[38..54].copy_from_slice(&dst.octets());
    frame[54] = 135;
    frame[62..78].copy_from_slice(&target.octets());
    if with_option {
        frame[78] = 1;
        frame[79] = 1;
        frame[80..86].copy_from_slice(&PEER.0);
    }
    let icmp = pnet_checksum(&frame[54..], &source, &dst);
    frame[56..58].copy_from_slice(&icmp.to_be_bytes());
    frame
}

/// RFC 4443 checksum over the IPv6 pseudo-header, written out independently of the codec.
fn pnet_checksum(icmp: &[u8], src: &Ipv6Addr, dst: &Ipv6Addr) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for chunk in bytes.chunks(2) {
            let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(icmp.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 58]);
    let mut zeroed = icmp.to_vec();
    zeroed[2] = 0;
    zeroed[3] = 0;
    add(&zeroed);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[test]
fn arp_request_is_recognised_and_answered() {
    let frame = arp_request("198.51.100.2".parse().unwrap(), "198.51.100.192".parse().unwrap());
    let Ok(Request::Arp { sender_mac, sender_ip, target_ip, .. }) = parse(&frame) else { panic!("not parsed") };
    assert_eq!(
        (sender_mac, sender_ip, target_ip.to_string().as_str()),
        (PEER, "198.51.100.2".parse().unwrap(), "198.51.100.192")
    );
    let reply = arp_reply(OURS, target_ip, sender_mac, sender_ip);
    assert_eq!(&reply[0..6], &PEER.0, "unicast to the requester");
    assert_eq!(&reply[20..22], &[0, 2], "operation reply");
    assert_eq!(&reply[22..28], &OURS.0);
    assert_eq!(parse(&reply), Err(ParseError::NotArpRequest));
}

#[test]
fn gratuitous_forms() {
    let ip: Ipv4Addr = "198.51.100.192".parse().unwrap();
    let request = gratuitous_arp(OURS, ip, GratuitousForm::Request);
    let reply = gratuitous_arp(OURS, ip, GratuitousForm::Reply);
    for frame in [&request, &reply] {
        assert_eq!(frame.len(), 60);
        assert_eq!(&frame[0..6], &Mac::BROADCAST.0);
        assert_eq!(&frame[28..32], &ip.octets(), "sender ip");
        assert_eq!(&frame[38..42], &ip.octets(), "target ip is the same address");
    }
    assert_eq!(&request[20..22], &[0, 1]);
    assert_eq!(&reply[20..22], &[0, 2]);
}

#[test]
fn neighbour_solicitations_with_and_without_source_option() {
    let target: Ipv6Addr = "2001:db8:100::f000".parse().unwrap();
    let source: Ipv6Addr = "2001:db8:100::2".parse().unwrap();
    for with_option in [true, false] {
        let Ok(Request::NeighborSolicit { target: t, source_link_layer, frame_source, .. }) =
            parse(&solicitation(source, target, with_option))
        else {
            panic!("not parsed (option {with_option})")
        };
        assert_eq!(t, target);
        assert_eq!(frame_source, PEER);
        assert_eq!(source_link_layer, with_option.then_some(PEER));
    }
    let mut bad = solicitation(source, target, true);
    bad[60] ^= 0xff;
    assert_eq!(parse(&bad), Err(ParseError::InvalidSolicit("bad checksum")));
}

#[test]
fn advertisement_checksums_and_flags() {
    let target: Ipv6Addr = "2001:db8:100::f000".parse().unwrap();
    let peer_ip: Ipv6Addr = "2001:db8:100::2".parse().unwrap();
    let na = neighbor_advertisement(OURS, target, Some((PEER, peer_ip)));
    assert_eq!(&na[0..6], &PEER.0);
    assert_eq!(na[54], 136);
    assert_eq!(na[58], 0x60, "solicited and override");
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&na[38..54]).unwrap());
    assert_eq!(u16::from_be_bytes([na[56], na[57]]), pnet_checksum(&na[54..], &target, &dst));
    let unsolicited = neighbor_advertisement(OURS, target, None);
    assert_eq!(unsolicited[58], 0x20, "override only");
    assert_eq!(&unsolicited[0..6], &[0x33, 0x33, 0, 0, 0, 1]);
}

#[test]
fn solicited_node_group() {
    let ip: Ipv6Addr = "2001:db8:100::f0:1234".parse().unwrap();
    assert_eq!(solicited_node(ip).to_string(), "ff02::1:fff0:1234");
    assert_eq!(solicited_node_mac(solicited_node(ip)).to_string(), "33:33:ff:f0:12:34");
}

#[test]
fn option_length_32_and_more_is_walked_not_misparsed() {
    // pnet_packet 0.35 misparses options of length >= 32 bytes; we walk them ourselves.
    let target: Ipv6Addr = "2001:db8:100::f000".parse().unwrap();
    let source: Ipv6Addr = "2001:db8:100::2".parse().unwrap();
    let mut frame = solicitation(source, target, true);
    let mut long = vec![14u8, 5];
    long.resize(40, 0xaa);
    frame.extend_from_slice(&long);
    let len = (frame.len() - 54) as u16;
    frame[18..20].copy_from_slice(&len.to_be_bytes());
    frame[56] = 0;
    frame[57] = 0;
    let dst = solicited_node(target);
    let sum = pnet_checksum(&frame[54..], &source, &dst);
    frame[56..58].copy_from_slice(&sum.to_be_bytes());
    assert!(matches!(parse(&frame), Ok(Request::NeighborSolicit { source_link_layer: Some(PEER), .. })));
}

#[test]
fn claims_in_answers_announcements_and_other_probes() {
    let ip: Ipv4Addr = "198.51.100.192".parse().unwrap();
    // Our probe is a probe for the address, by us; a reply from its holder claims it.
    let probe = arp_probe(OURS, ip);
    assert_eq!(probe.len(), 60);
    assert_eq!(&probe[0..6], &Mac::BROADCAST.0);
    assert_eq!(&probe[28..32], &[0, 0, 0, 0], "sender 0.0.0.0: nobody's cache learns from a probe");
    assert_eq!(claim(&probe), Some(Claim { ip: ip.into(), mac: OURS, probe: true }));
    let reply = arp_reply(PEER, ip, OURS, Ipv4Addr::UNSPECIFIED);
    assert_eq!(claim(&reply), Some(Claim { ip: ip.into(), mac: PEER, probe: false }));
    let announced = gratuitous_arp(PEER, ip, GratuitousForm::Request);
    assert_eq!(claim(&announced), Some(Claim { ip: ip.into(), mac: PEER, probe: false }));
    // An ordinary request claims its sender's address, not the one asked for.
    let asking = arp_request("198.51.100.2".parse().unwrap(), ip);
    assert_eq!(claim(&asking).map(|c| c.ip), Some("198.51.100.2".parse().unwrap()));

    let ip6: Ipv6Addr = "2001:db8:100::f000".parse().unwrap();
    let dad = dad_solicitation(OURS, ip6);
    assert_eq!(&dad[0..6], &solicited_node_mac(solicited_node(ip6)).0);
    assert!(matches!(parse(&dad), Ok(Request::NeighborSolicit { source_link_layer: None, .. })), "a valid NS");
    assert_eq!(claim(&dad), Some(Claim { ip: ip6.into(), mac: OURS, probe: true }));
    // The holder answers a solicitation from :: to all nodes, with its link-layer address.
    let answer = neighbor_advertisement(PEER, ip6, None);
    assert_eq!(claim(&answer), Some(Claim { ip: ip6.into(), mac: PEER, probe: false }));
    let mut corrupt = answer.clone();
    corrupt[60] ^= 1;
    assert_eq!(claim(&corrupt), None, "a bad checksum claims nothing");
    // An ordinary solicitation (from a real source) claims nothing.
    assert_eq!(claim(&solicitation("2001:db8:100::2".parse().unwrap(), ip6, true)), None);
}

proptest! {
    /// Random bytes never panic the claim reader.
    #[test]
    fn random_bytes_claim_nothing_or_something_but_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = claim(&bytes);
    }

    /// Random bytes never panic the parser.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse(&bytes);
    }

    /// Valid frames with random corruption never panic either (these reach deeper than pure noise).
    #[test]
    fn corrupted_frames_never_panic(flips in prop::collection::vec((0usize..120, any::<u8>()), 1..8), cut in 0usize..120, v6 in any::<bool>()) {
        let mut frame = if v6 {
            solicitation("2001:db8::2".parse().unwrap(), "2001:db8::1".parse().unwrap(), true)
        } else {
            arp_request("198.51.100.2".parse().unwrap(), "198.51.100.9".parse().unwrap())
        };
        for (at, value) in flips {
            if let Some(b) = frame.get_mut(at) { *b = value; }
        }
        frame.truncate(cut.max(1));
        let _ = parse(&frame);
        let _ = claim(&frame);
    }
}
