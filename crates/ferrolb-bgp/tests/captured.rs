//! Messages FRR 8.4.4 and BIRD 2.0.12 (Debian bookworm) sent each other, captured once with tcpdump on a
//! veth between them (FRR in AS 64513 announcing 203.0.113.0/24 and 2001:db8:ffff::/48 with communities,
//! BIRD in AS 64512 announcing 192.0.2.225/32 and 2001:db8:300::1/128): every one must decode, to what it
//! says, and re-encode to a message that decodes the same. These are bytes from independent
//! implementations, not from this crate's encoder.

use ferrolb_bgp::open::AS_TRANS;
use ferrolb_bgp::update::Origin;
use ferrolb_bgp::{Attribute, Capability, Community, Context, Family, LargeCommunity, Message};

const CTX: Context = Context { four_octet_as: true };

fn decode(hex: &str) -> Message {
    let bytes: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    let message = Message::decode(&bytes, &CTX).unwrap_or_else(|e| panic!("{hex}: {e}"));
    let again = Message::decode(&message.encode(&CTX), &CTX).expect("re-encoded");
    // Routers order attributes as they like; this encoder writes them in its own order.
    assert_eq!(sorted(again), sorted(message.clone()), "{hex}");
    message
}

fn sorted(message: Message) -> Message {
    match message {
        Message::Update(mut u) => {
            u.attributes.sort_by_key(Attribute::wire_rank);
            Message::Update(u)
        }
        other => other,
    }
}

/// What FRR sent, in order.
const FRR: [&str; 13] = [
    // OPEN
    "ffffffffffffffffffffffffffffffff00750104fc010009c63364015802060104000100010206010400020001020280000202020002024600020641040000fc0102020600020a45080001010100020101020a490806726f757465720002044002c0780210470e0001018000000000020180000000",
    // KEEPALIVE
    "ffffffffffffffffffffffffffffffff001304",
    // UPDATE
    "ffffffffffffffffffffffffffffffff00510200000036400101005002000602010000fc01400304c633640180040400000000c00808fc010007fc010008c0200c0000fc01000000010000000218cb0071",
    // UPDATE
    "ffffffffffffffffffffffffffffffff0076020000005f900e002c0002012020010db8010000000000000000000001fe800000000000002c558ffffe4ba91a003020010db8ffff400101005002000602010000fc0180040400000000c00808fc010007fc010008c0200c0000fc010000000100000002",
    // UPDATE
    "ffffffffffffffffffffffffffffffff00170200000000",
    // UPDATE
    "ffffffffffffffffffffffffffffffff001d0200000006800f03000201",
    // UPDATE
    "ffffffffffffffffffffffffffffffff004b020000002f400101005002000a02020000fc010000fc00400304c6336401c00804fde80064c0200c0000fc00000000010000000220c00002e1",
    // UPDATE
    "ffffffffffffffffffffffffffffffff006a0200000053900e00360002012020010db8010000000000000000000001fe800000000000002c558ffffe4ba91a008020010db8030000000000000000000001400101005002000a02020000fc010000fc00c00804fde80064",
    // KEEPALIVE
    "ffffffffffffffffffffffffffffffff001304",
    // KEEPALIVE
    "ffffffffffffffffffffffffffffffff001304",
    // KEEPALIVE
    "ffffffffffffffffffffffffffffffff001304",
    // KEEPALIVE
    "ffffffffffffffffffffffffffffffff001304",
    // KEEPALIVE
    "ffffffffffffffffffffffffffffffff001304",
];

/// What BIRD sent, in order.
const BIRD: [&str; 12] = [
    // OPEN
    "ffffffffffffffffffffffffffffffff003b0104fc000009c633640b1e021c01040001000101040002000102004002007841040000fc0046004700",
    // KEEPALIVE
    "ffffffffffffffffffffffffffffffff001304",
    // UPDATE
    "ffffffffffffffffffffffffffffffff0046020000002a4001010040020602010000fc00400304c633640bc00804fde80064c0200c0000fc00000000010000000220c00002e1",
    // UPDATE
    "ffffffffffffffffffffffffffffffff00170200000000",
    // UPDATE
    "ffffffffffffffffffffffffffffffff0065020000004e900e00360002012020010db8010000000000000000000011fe80000000000000e09f63fffe067787008020010db80300000000000000000000014001010040020602010000fc00c00804fde80064",
    // UPDATE
    "ffffffffffffffffffffffffffffffff001d0200000006800f03000201",
    // KEEPALIVE
    "ffffffffffffffffffffffffffffffff001304",
    // KEEPALIVE
    "ffffffffffffffffffffffffffffffff001304",
    // KEEPALIVE
    "ffffffffffffffffffffffffffffffff001304",
    // KEEPALIVE
    "ffffffffffffffffffffffffffffffff001304",
    // KEEPALIVE
    "ffffffffffffffffffffffffffffffff001304",
    // KEEPALIVE
    "ffffffffffffffffffffffffffffffff001304",
];

fn update(hex: &str) -> ferrolb_bgp::Update {
    match decode(hex) {
        Message::Update(u) => u,
        other => panic!("not an UPDATE: {other:?}"),
    }
}

fn open(hex: &str) -> ferrolb_bgp::Open {
    match decode(hex) {
        Message::Open(o) => o,
        other => panic!("not an OPEN: {other:?}"),
    }
}

#[test]
fn every_captured_message_decodes_and_round_trips() {
    for hex in FRR.iter().chain(BIRD.iter()) {
        decode(hex);
    }
}

#[test]
fn the_opens_say_what_each_router_offered() {
    let frr = open(FRR[0]);
    assert_eq!((frr.asn(), frr.hold_time, frr.bgp_id.to_string()), (64513, 9, "198.51.100.1".to_owned()));
    assert_eq!(frr.families(), [Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
    assert!(frr.route_refresh() && frr.four_octet_as());
    // FRR also offers capabilities this speaker does not use (graceful restart, its host name, ...): kept.
    assert!(frr.capabilities.iter().any(|c| matches!(c, Capability::Other { .. })));
    let bird = open(BIRD[0]);
    assert_eq!((bird.asn(), bird.hold_time), (64512, 9));
    assert_ne!(bird.my_as, AS_TRANS, "a 2-octet AS travels as itself");
}

#[test]
fn frr_routes_carry_their_path_next_hop_and_communities() {
    let u = update(FRR[2]);
    assert_eq!(u.nlri, ["203.0.113.0/24".parse().unwrap()]);
    assert!(u.attributes.contains(&Attribute::Origin(Origin::Igp)));
    assert!(u.attributes.contains(&Attribute::NextHop("198.51.100.1".parse().unwrap())));
    assert!(
        u.attributes.contains(&Attribute::Communities(vec![Community(64513 << 16 | 7), Community(64513 << 16 | 8)]))
    );
    assert!(u.attributes.contains(&Attribute::LargeCommunities(vec![LargeCommunity {
        global: 64513,
        local1: 1,
        local2: 2
    }])));
    let v6 = update(FRR[3]);
    let reach = v6.attributes.iter().find_map(|a| match a {
        Attribute::MpReach { family, next_hops, nlri } => Some((family, next_hops.len(), nlri.clone())),
        _ => None,
    });
    // A global and a link-local next hop (32 bytes), as routers send on a shared link.
    assert_eq!(reach, Some((&Family::IPV6_UNICAST, 2, vec!["2001:db8:ffff::/48".parse().unwrap()])));
}

#[test]
fn end_of_rib_markers_and_bird_routes_decode() {
    // The IPv4 End-of-RIB is an empty UPDATE; the IPv6 one an empty MP_UNREACH_NLRI.
    assert_eq!(update(FRR[4]), ferrolb_bgp::Update::end_of_rib(Family::IPV4_UNICAST));
    assert_eq!(update(FRR[5]), ferrolb_bgp::Update::end_of_rib(Family::IPV6_UNICAST));
    let bird = update(BIRD[2]);
    assert_eq!(bird.nlri, ["192.0.2.225/32".parse().unwrap()]);
    assert!(bird.attributes.contains(&Attribute::Communities(vec![Community(65000 << 16 | 100)])));
}
