//! The codec at its boundary: every message round-trips; arbitrary bytes never panic and always give a
//! NOTIFICATION-shaped error or a message; malformed headers get the errors RFC 4271 names; and what this
//! crate encodes, an independent implementation (netgauze-bgp-pkt) decodes to the same content.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrolb_bgp::message::HEADER_LEN;
use ferrolb_bgp::notification::Notification;
use ferrolb_bgp::update::{AS_SEQUENCE, AsSegment, Origin};
use ferrolb_bgp::{
    Attribute, Capability, Community, Context, DecodeError, ErrorKind, Family, LargeCommunity, Message, Open,
    RouteRefresh, Update, frame,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;

const CTX: Context = Context { four_octet_as: true };

/// Unicast IPv4 networks (the independent decoder refuses multicast ones as unicast routes, rightly).
fn v4net() -> impl Strategy<Value = Ipv4Net> {
    (1u32..224, any::<u32>(), 0u8..=32)
        .prop_map(|(first, rest, l)| Ipv4Net::new(Ipv4Addr::from(first << 24 | rest & 0x00ff_ffff), l).unwrap().trunc())
}

/// Unicast IPv6 networks.
fn v6net() -> impl Strategy<Value = IpNet> {
    (0u128..0xff00 << 112, 0u8..=128).prop_map(|(a, l)| IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), l).unwrap().trunc()))
}

fn update() -> impl Strategy<Value = Update> {
    (
        prop::collection::vec(v4net(), 0..20),
        prop::collection::vec(v4net(), 0..20),
        prop::collection::vec(v6net(), 0..20),
        prop::collection::vec(v6net(), 0..20),
        prop::collection::vec(any::<u32>(), 0..8),
        prop::collection::vec((any::<u32>(), any::<u32>(), any::<u32>()), 0..4),
        prop::option::of(any::<u32>()),
        prop::collection::vec(any::<u32>(), 1..5),
    )
        .prop_map(|(withdrawn, nlri, reach, unreach, communities, large, local_pref, path)| {
            let mut attributes = vec![
                Attribute::Origin(Origin::Igp),
                Attribute::AsPath(vec![AsSegment { kind: AS_SEQUENCE, asns: path }]),
                Attribute::NextHop(Ipv4Addr::new(198, 51, 100, 11)),
            ];
            if let Some(lp) = local_pref {
                attributes.push(Attribute::LocalPref(lp));
            }
            if !communities.is_empty() {
                attributes.push(Attribute::Communities(communities.into_iter().map(Community).collect()));
            }
            if !large.is_empty() {
                attributes.push(Attribute::LargeCommunities(
                    large
                        .into_iter()
                        .map(|(global, local1, local2)| LargeCommunity { global, local1, local2 })
                        .collect(),
                ));
            }
            attributes.push(Attribute::MpReach {
                family: Family::IPV6_UNICAST,
                next_hops: vec![IpAddr::V6("2001:db8:100::11".parse().unwrap())],
                nlri: reach,
            });
            attributes.push(Attribute::MpUnreach { family: Family::IPV6_UNICAST, withdrawn: unreach });
            // Encoding writes attributes in wire order; keep them so, so the round trip compares equal.
            attributes.sort_by_key(Attribute::wire_rank);
            Update { withdrawn, attributes, nlri }
        })
}

fn open() -> impl Strategy<Value = Open> {
    // Router IDs as routers use them: unicast addresses (the independent decoder refuses others).
    (any::<u32>(), prop_oneof![Just(0u16), 3u16..], 0x0100_0000u32..0xe000_0000).prop_map(|(asn, hold, id)| {
        Open::new(asn, hold, Ipv4Addr::from(id), &[Family::IPV4_UNICAST, Family::IPV6_UNICAST])
    })
}

proptest! {
    #[test]
    fn updates_round_trip(u in update()) {
        let bytes = Message::Update(u.clone()).encode(&CTX);
        prop_assume!(bytes.len() <= 4096);
        prop_assert_eq!(frame(&bytes), Ok(Some(bytes.len())));
        prop_assert_eq!(Message::decode(&bytes, &CTX), Ok(Message::Update(u)));
    }

    #[test]
    fn opens_round_trip(o in open()) {
        let bytes = Message::Open(o.clone()).encode(&CTX);
        prop_assert_eq!(Message::decode(&bytes, &CTX), Ok(Message::Open(o)));
    }

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..600), kind in 0u8..8, four in any::<bool>()) {
        let mut bytes = vec![0xff; 16];
        bytes.extend_from_slice(&u16::try_from(HEADER_LEN + body.len()).unwrap().to_be_bytes());
        bytes.push(kind);
        bytes.extend_from_slice(&body);
        let ctx = Context { four_octet_as: four };
        if let Err(e) = Message::decode(&bytes, &ctx) {
            // Every error names a NOTIFICATION whose encoding is itself valid.
            let n = Message::Notification(e.notification()).encode(&ctx);
            prop_assert!(matches!(Message::decode(&n, &ctx), Ok(Message::Notification(_))));
        }
        let _ = frame(&bytes);
    }

    #[test]
    fn truncating_a_valid_update_is_an_error_not_a_panic(u in update(), cut in 0usize..200) {
        let mut bytes = Message::Update(u).encode(&CTX);
        prop_assume!(bytes.len() <= 4096 && cut < bytes.len() - HEADER_LEN);
        let len = bytes.len() - cut;
        bytes.truncate(len);
        bytes[16..18].copy_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
        // Either still valid (the cut removed whole prefixes) or an UPDATE error; never a panic.
        match Message::decode(&bytes, &CTX) {
            Ok(Message::Update(_)) => {}
            Ok(other) => prop_assert!(false, "decoded as {other:?}"),
            Err(e) => prop_assert!(e.notification().code == 1 || e.notification().code == 3, "{e:?}"),
        }
    }
}

fn header(len: u16, kind: u8) -> Vec<u8> {
    let mut b = vec![0xff; 16];
    b.extend_from_slice(&len.to_be_bytes());
    b.push(kind);
    b
}

#[test]
fn malformed_headers_get_the_errors_rfc_4271_names() {
    let mut bad_marker = header(19, 4);
    bad_marker[3] = 0;
    assert_eq!(frame(&bad_marker), Err(DecodeError::new(ErrorKind::ConnectionNotSynchronized)));
    assert_eq!(frame(&header(18, 4)), Err(DecodeError::with_data(ErrorKind::BadMessageLength, &[0, 18])));
    assert_eq!(frame(&header(20, 4)), Err(DecodeError::with_data(ErrorKind::BadMessageLength, &[0, 20])));
    assert_eq!(frame(&header(4097, 2)), Err(DecodeError::with_data(ErrorKind::BadMessageLength, &[16, 1])));
    assert_eq!(frame(&header(19, 9)), Err(DecodeError::with_data(ErrorKind::BadMessageType, &[9])));
    assert_eq!(
        frame(&header(24, 5)).unwrap_err().notification(),
        Notification { code: 7, subcode: 1, data: vec![0, 24] }
    );
    // A whole keepalive frames; a partial one waits for more.
    assert_eq!(frame(&header(19, 4)), Ok(Some(19)));
    assert_eq!(frame(&header(19, 4)[..10]), Ok(None));
    assert_eq!(frame(&header(29, 1)), Ok(None));
}

#[test]
fn update_errors_carry_the_offending_attribute() {
    // ORIGIN with value 7.
    let mut body = vec![0, 0, 0, 4, 0x40, 1, 1, 7];
    let mut bytes = header(u16::try_from(HEADER_LEN + body.len()).unwrap(), 2);
    bytes.append(&mut body);
    let e = Message::decode(&bytes, &CTX).unwrap_err();
    assert_eq!((e.kind, e.data.as_slice()), (ErrorKind::InvalidOrigin, &[0x40, 1, 1, 7][..]));
    assert_eq!((e.notification().code, e.notification().subcode), (3, 6));
    // ORIGIN marked optional: a flags error.
    let body = [0, 0, 0, 4, 0xC0, 1, 1, 0];
    let mut bytes = header(u16::try_from(HEADER_LEN + body.len()).unwrap(), 2);
    bytes.extend_from_slice(&body);
    assert_eq!(Message::decode(&bytes, &CTX).unwrap_err().kind, ErrorKind::AttributeFlagsError);
    // An IPv4 route with no attributes: ORIGIN is missing, and its code is the data.
    let body = [0, 0, 0, 0, 24, 192, 0, 2];
    let mut bytes = header(u16::try_from(HEADER_LEN + body.len()).unwrap(), 2);
    bytes.extend_from_slice(&body);
    let e = Message::decode(&bytes, &CTX).unwrap_err();
    assert_eq!((e.kind, e.data.as_slice()), (ErrorKind::MissingWellKnownAttribute, &[1][..]));
    // A prefix longer than 32 bits.
    let body = [0, 2, 33, 192, 0, 0];
    let mut bytes = header(u16::try_from(HEADER_LEN + body.len()).unwrap(), 2);
    bytes.extend_from_slice(&body);
    assert_eq!(Message::decode(&bytes, &CTX).unwrap_err().kind, ErrorKind::InvalidNetworkField);
    // The same attribute twice.
    let body = [0, 0, 0, 8, 0x40, 1, 1, 0, 0x40, 1, 1, 0];
    let mut bytes = header(u16::try_from(HEADER_LEN + body.len()).unwrap(), 2);
    bytes.extend_from_slice(&body);
    assert_eq!(Message::decode(&bytes, &CTX).unwrap_err().kind, ErrorKind::MalformedAttributeList);
}

#[test]
fn open_errors_follow_rfc_4271() {
    let mut o = Message::Open(Open::new(64512, 90, Ipv4Addr::new(192, 0, 2, 1), &[])).encode(&CTX);
    o[HEADER_LEN] = 3;
    let e = Message::decode(&o, &CTX).unwrap_err();
    assert_eq!((e.notification().code, e.notification().subcode, e.data), (2, 1, vec![0, 4]));
    // An optional parameter of type 1 (authentication, long deprecated).
    let mut bytes = header(u16::try_from(HEADER_LEN + 10 + 3).unwrap(), 1);
    bytes.extend_from_slice(&[4, 0xfc, 0, 0, 90, 192, 0, 2, 1, 3, 1, 1, 0]);
    assert_eq!(Message::decode(&bytes, &CTX).unwrap_err().kind, ErrorKind::UnsupportedOptionalParameter);
}

#[test]
fn a_4_octet_as_goes_as_as_trans_with_the_capability() {
    let o = Open::new(4_200_000_000, 90, Ipv4Addr::new(192, 0, 2, 1), &[]);
    assert_eq!(o.my_as, ferrolb_bgp::open::AS_TRANS);
    assert!(o.capabilities.contains(&Capability::FourOctetAs(4_200_000_000)));
    assert_eq!(o.asn(), 4_200_000_000);
    // A 2-octet peer without any capability offers IPv4 unicast only.
    let old = Open { my_as: 65001, hold_time: 90, bgp_id: Ipv4Addr::new(192, 0, 2, 2), capabilities: vec![] };
    assert_eq!((old.asn(), old.families(), old.four_octet_as()), (65001, vec![Family::IPV4_UNICAST], false));
    // To such a peer a 4-octet path goes as AS_TRANS plus AS4_PATH.
    let ctx = Context { four_octet_as: false };
    let u = Update {
        attributes: vec![
            Attribute::Origin(Origin::Igp),
            Attribute::AsPath(vec![AsSegment { kind: AS_SEQUENCE, asns: vec![4_200_000_000] }]),
            Attribute::NextHop(Ipv4Addr::new(198, 51, 100, 11)),
        ],
        nlri: vec!["192.0.2.225/32".parse().unwrap()],
        ..Update::default()
    };
    let bytes = Message::Update(u).encode(&ctx);
    let Ok(Message::Update(back)) = Message::decode(&bytes, &ctx) else { panic!() };
    assert!(back.attributes.contains(&Attribute::AsPath(vec![AsSegment { kind: AS_SEQUENCE, asns: vec![23456] }])));
    assert!(back.attributes.iter().any(|a| a.code() == 17));
}

#[test]
fn notifications_and_route_refresh_round_trip() {
    let cease = Notification::cease(2, "rolling restart of node-2");
    let bytes = Message::Notification(cease.clone()).encode(&CTX);
    let Ok(Message::Notification(back)) = Message::decode(&bytes, &CTX) else { panic!() };
    assert_eq!(back.shutdown_message(), Some("rolling restart of node-2"));
    assert_eq!(back, cease);
    // A long message is cut to 255 bytes at a character boundary.
    let long = Notification::cease(2, &"é".repeat(200));
    assert_eq!(long.shutdown_message().map(str::len), Some(254));
    let rr = Message::RouteRefresh(RouteRefresh { family: Family::IPV6_UNICAST });
    assert_eq!(Message::decode(&rr.encode(&CTX), &CTX), Ok(rr));
    assert_eq!(Message::decode(&Message::Keepalive.encode(&CTX), &CTX), Ok(Message::Keepalive));
}

mod differential {
    //! netgauze-bgp-pkt, written independently, decodes what this crate encodes to the same content.

    use netgauze_bgp_pkt::BgpMessage;
    use netgauze_bgp_pkt::wire::deserializer::BgpParsingContext;
    use netgauze_parse_utils::reader::SliceReader;
    use netgauze_parse_utils::traits::ParseFromWithOneInput;

    use super::*;

    fn netgauze(bytes: &[u8]) -> BgpMessage {
        let mut ctx = BgpParsingContext::default();
        let mut reader = SliceReader::new(bytes);
        BgpMessage::parse(&mut reader, &mut ctx).unwrap_or_else(|e| panic!("netgauze refused {bytes:02x?}: {e:?}"))
    }

    proptest! {
        #[test]
        fn netgauze_reads_our_updates(u in update()) {
            let bytes = Message::Update(u.clone()).encode(&CTX);
            prop_assume!(bytes.len() <= 4096);
            let BgpMessage::Update(theirs) = netgauze(&bytes) else { panic!("not an UPDATE") };
            let text = format!("{theirs:?}");
            // Every prefix and community we sent appears in their reading of it.
            for p in &u.nlri {
                prop_assert!(text.contains(&p.addr().to_string()), "{p} missing from {text}");
            }
            prop_assert_eq!(theirs.withdraw_routes().len(), u.withdrawn.len());
            prop_assert_eq!(theirs.path_attributes().len(), u.attributes.len());
        }

        #[test]
        fn netgauze_reads_our_opens(o in open()) {
            let bytes = Message::Open(o.clone()).encode(&CTX);
            let BgpMessage::Open(theirs) = netgauze(&bytes) else { panic!("not an OPEN") };
            prop_assert_eq!(theirs.my_asn4(), o.asn());
            prop_assert_eq!(theirs.hold_time(), o.hold_time);
            prop_assert_eq!(theirs.bgp_id(), o.bgp_id);
        }
    }

    #[test]
    fn netgauze_reads_our_notifications_and_keepalives() {
        assert!(matches!(netgauze(&Message::Keepalive.encode(&CTX)), BgpMessage::KeepAlive));
        let cease = Message::Notification(Notification::cease(2, "bye")).encode(&CTX);
        assert!(matches!(netgauze(&cease), BgpMessage::Notification(_)));
    }
}

#[test]
fn an_unknown_attribute_written_with_an_extended_length_round_trips() {
    // Found by the bgp_message fuzz target: flags 0xff (extended length set) on a 12-byte unknown attribute.
    let mut body = vec![0, 0, 0, 16, 0xff, 0, 0, 12];
    body.extend_from_slice(&[12; 12]);
    let mut bytes = vec![0xff; 16];
    bytes.extend_from_slice(&u16::try_from(HEADER_LEN + body.len()).unwrap().to_be_bytes());
    bytes.push(2);
    bytes.extend_from_slice(&body);
    let message = Message::decode(&bytes, &CTX).unwrap();
    let Message::Update(u) = &message else { panic!() };
    assert_eq!(u.attributes, [Attribute::Other { flags: 0xef, code: 0, value: vec![12; 12] }]);
    assert_eq!(Message::decode(&message.encode(&CTX), &CTX), Ok(message));
}
