//! The filter run by a tiny classic-BPF interpreter (only the instructions the program uses; any other
//! opcode fails the test) over real frames built by `ferrolb_packet` and by hand.

use std::net::{Ipv4Addr, Ipv6Addr};

use ferrolb_packet::{GratuitousForm, Mac, arp_reply, gratuitous_arp, neighbor_advertisement};

use super::*;

/// Runs `program` on `frame` as the kernel would: the accepted length, 0 for a drop. A load past the end
/// of the frame drops it, as in the kernel.
fn run(program: &[Instruction], frame: &[u8]) -> u32 {
    let mut accumulator: u32 = 0;
    let mut pc = 0usize;
    for _ in 0..=program.len() {
        let insn = program.get(pc).copied().expect("the program ran off its end");
        let at = insn.k as usize;
        match insn.code {
            LOAD_HALF => match frame.get(at..at + 2) {
                Some(b) => accumulator = u32::from(u16::from_be_bytes([b[0], b[1]])),
                None => return 0,
            },
            LOAD_BYTE => match frame.get(at) {
                Some(b) => accumulator = u32::from(*b),
                None => return 0,
            },
            JUMP_IF_EQUAL => {
                pc += usize::from(if accumulator == insn.k { insn.jt } else { insn.jf });
            }
            RETURN => return insn.k,
            other => panic!("opcode {other:#x} not supported by the test interpreter"),
        }
        pc += 1;
    }
    panic!("the program loops")
}

fn accepts(frame: &[u8]) -> bool {
    run(&claims(), frame) > 0
}

const OURS: Mac = Mac([0x02, 0, 0, 0, 0, 1]);
const THEIRS: Mac = Mac([0x02, 0, 0, 0, 0, 2]);

/// An IPv6 frame to the solicited-node group of 2001:db8::10 with `headers` between the IPv6 header and the
/// ICMPv6 message of type `icmp_type` (the first header's protocol goes in the IPv6 next-header field).
fn ipv6_frame(next_header: u8, between: &[u8], icmp_type: u8) -> Vec<u8> {
    let mut icmp = vec![icmp_type, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&"2001:db8::10".parse::<Ipv6Addr>().expect("address").octets());
    let payload_len = u16::try_from(between.len() + icmp.len()).expect("small");
    let mut frame = vec![0x33, 0x33, 0xff, 0, 0, 0x10];
    frame.extend_from_slice(&THEIRS.0);
    frame.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    frame.extend_from_slice(&payload_len.to_be_bytes());
    frame.extend_from_slice(&[next_header, 255]);
    frame.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().expect("address").octets());
    frame.extend_from_slice(&"ff02::1:ff00:10".parse::<Ipv6Addr>().expect("address").octets());
    frame.extend_from_slice(between);
    frame.extend_from_slice(&icmp);
    frame
}

fn ipv4_udp_frame() -> Vec<u8> {
    let mut frame = OURS.0.to_vec();
    frame.extend_from_slice(&THEIRS.0);
    frame.extend_from_slice(&[0x08, 0x00]);
    // IPv4 header: version/IHL, TOS, length 29, id, flags, TTL 64, protocol 17 (UDP), checksum, addresses.
    frame.extend_from_slice(&[0x45, 0, 0, 29, 0, 0, 0, 0, 64, 17, 0, 0, 198, 51, 100, 2, 198, 51, 100, 11]);
    frame.extend_from_slice(&[0x30, 0x39, 0, 9, 0, 9, 0, 0, b'x']);
    frame
}

#[test]
fn accepts_every_arp_frame() {
    let (a, b) = (Ipv4Addr::new(198, 51, 100, 192), Ipv4Addr::new(198, 51, 100, 2));
    assert!(accepts(&gratuitous_arp(THEIRS, a, GratuitousForm::Request)));
    // Replies are claims the responder reports (a split membership's winner answering a probe, say).
    assert!(accepts(&arp_reply(OURS, a, THEIRS, b)));
    assert!(accepts(&gratuitous_arp(THEIRS, a, GratuitousForm::Reply)));
}

#[test]
fn accepts_neighbour_solicitations() {
    assert!(accepts(&ipv6_frame(58, &[], 135)));
}

#[test]
fn rejects_ipv4_udp() {
    assert!(!accepts(&ipv4_udp_frame()));
}

#[test]
fn accepts_neighbour_advertisements_but_no_other_icmpv6() {
    let target: Ipv6Addr = "2001:db8::10".parse().expect("address");
    assert!(accepts(&neighbor_advertisement(OURS, target, None)));
    assert!(!accepts(&ipv6_frame(58, &[], 128))); // echo request
    assert!(!accepts(&ipv6_frame(58, &[], 134))); // router advertisement
}

#[test]
fn rejects_a_solicitation_behind_an_extension_header() {
    // Hop-by-hop options header (next header 0): next = ICMPv6, length 0 (8 bytes), PadN.
    let hop_by_hop = [58, 0, 1, 4, 0, 0, 0, 0];
    assert!(!accepts(&ipv6_frame(0, &hop_by_hop, 135)));
}

#[test]
fn rejects_ipv6_udp_whose_payload_looks_like_a_solicitation() {
    assert!(!accepts(&ipv6_frame(17, &[], 135)));
}

#[test]
fn rejects_truncated_frames() {
    let request = gratuitous_arp(THEIRS, Ipv4Addr::new(198, 51, 100, 192), GratuitousForm::Request);
    // Cut inside the EtherType; a cut ARP body passes (it reads no ARP field) and the parser drops it.
    assert!(!accepts(&request[..13]));
    assert!(!accepts(&ipv6_frame(58, &[], 135)[..54]));
    assert!(!accepts(&[]));
}

#[test]
fn every_jump_lands_inside_the_program() {
    let program = claims();
    for (i, insn) in program.iter().enumerate() {
        if insn.code == JUMP_IF_EQUAL {
            assert!(i + 1 + usize::from(insn.jt.max(insn.jf)) < program.len(), "jump at {i} leaves the program");
        }
    }
    assert_eq!(program.last().map(|i| i.code), Some(RETURN));
}

#[test]
fn the_probe_filter_passes_every_arp_frame_and_neighbour_discovery_only() {
    let claims_filter = |frame: &[u8]| run(&claims(), frame) > 0;
    let ip: Ipv4Addr = "198.51.100.10".parse().expect("address");
    assert!(claims_filter(&arp_reply(THEIRS, ip, OURS, Ipv4Addr::UNSPECIFIED)), "a reply to our probe");
    assert!(claims_filter(&gratuitous_arp(THEIRS, ip, GratuitousForm::Request)));
    assert!(claims_filter(&ferrolb_packet::arp_probe(THEIRS, ip)), "someone else probing");
    let ip6: Ipv6Addr = "2001:db8::10".parse().expect("address");
    assert!(claims_filter(&neighbor_advertisement(THEIRS, ip6, None)), "an answer to our solicitation");
    assert!(claims_filter(&ferrolb_packet::dad_solicitation(THEIRS, ip6)), "someone else probing");
    assert!(claims_filter(&ipv6_frame(58, &[], 135)));
    assert!(!claims_filter(&ipv6_frame(58, &[], 128)), "an echo request");
    assert!(!claims_filter(&ipv6_frame(17, &[], 136)), "not ICMPv6");
    let mut ipv4 = gratuitous_arp(THEIRS, ip, GratuitousForm::Request);
    ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
    assert!(!claims_filter(&ipv4), "IPv4");
    assert_eq!(run(&claims(), &[0u8; 4]), 0, "a runt frame");
}
