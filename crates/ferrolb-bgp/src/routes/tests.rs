//! The Adj-RIB-Out: only changes are sent, in as few UPDATEs as fit, and only what the session carries.

use super::*;
use crate::message::Message;

fn peering(external: bool, families: &[Family]) -> Peering {
    Peering {
        my_asn: 64512,
        external,
        families: families.to_vec(),
        four_octet_as: true,
        next_hop_v4: Some(Ipv4Addr::new(198, 51, 100, 11)),
        next_hop_v6: Some("2001:db8:100::11".parse().unwrap()),
    }
}

fn both() -> Vec<Family> {
    vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
}

fn routes(prefixes: &[&str], attributes: &RouteAttributes) -> BTreeMap<IpNet, RouteAttributes> {
    prefixes.iter().map(|p| (p.parse().unwrap(), attributes.clone())).collect()
}

fn announced(updates: &[Update]) -> Vec<String> {
    let mut out = Vec::new();
    for u in updates {
        out.extend(u.nlri.iter().map(ToString::to_string));
        for a in &u.attributes {
            if let Attribute::MpReach { nlri, .. } = a {
                out.extend(nlri.iter().map(ToString::to_string));
            }
        }
    }
    out
}

fn withdrawn(updates: &[Update]) -> Vec<String> {
    let mut out = Vec::new();
    for u in updates {
        out.extend(u.withdrawn.iter().map(ToString::to_string));
        for a in &u.attributes {
            if let Attribute::MpUnreach { withdrawn, .. } = a {
                out.extend(withdrawn.iter().map(ToString::to_string));
            }
        }
    }
    out
}

#[test]
fn only_changes_are_sent() {
    let p = peering(true, &both());
    let plain = RouteAttributes::default();
    let mut outbox = Outbox::default();
    let first = outbox.updates(&routes(&["192.0.2.225/32", "2001:db8:300::1/128"], &plain), &p);
    assert_eq!(announced(&first), ["192.0.2.225/32", "2001:db8:300::1/128"]);
    assert!(outbox.updates(&routes(&["192.0.2.225/32", "2001:db8:300::1/128"], &plain), &p).is_empty());
    let later = outbox.updates(&routes(&["192.0.2.226/32"], &plain), &p);
    assert_eq!(announced(&later), ["192.0.2.226/32"]);
    assert_eq!(withdrawn(&later), ["192.0.2.225/32", "2001:db8:300::1/128"]);
    assert_eq!(outbox.len(), 1);
    // New attributes re-announce the route (an implicit withdraw of the old path).
    let tagged = RouteAttributes { communities: [Community(65000 << 16 | 100)].into(), ..Default::default() };
    assert_eq!(announced(&outbox.updates(&routes(&["192.0.2.226/32"], &tagged), &p)), ["192.0.2.226/32"]);
}

#[test]
fn an_external_peer_gets_this_as_in_the_path_and_no_local_pref() {
    let mut outbox = Outbox::default();
    let attributes = RouteAttributes { local_pref: Some(300), ..Default::default() };
    let updates = outbox.updates(&routes(&["192.0.2.225/32"], &attributes), &peering(true, &both()));
    let a = &updates[0].attributes;
    assert!(a.contains(&Attribute::AsPath(vec![AsSegment { kind: AS_SEQUENCE, asns: vec![64512] }])));
    assert!(a.contains(&Attribute::NextHop(Ipv4Addr::new(198, 51, 100, 11))));
    assert!(!a.iter().any(|x| matches!(x, Attribute::LocalPref(_))));
    let mut outbox = Outbox::default();
    let updates = outbox.updates(&routes(&["192.0.2.225/32"], &attributes), &peering(false, &both()));
    let a = &updates[0].attributes;
    assert!(a.contains(&Attribute::AsPath(vec![])) && a.contains(&Attribute::LocalPref(300)));
    let updates =
        Outbox::default().updates(&routes(&["192.0.2.225/32"], &RouteAttributes::default()), &peering(false, &both()));
    assert!(updates[0].attributes.contains(&Attribute::LocalPref(DEFAULT_LOCAL_PREF)));
}

#[test]
fn a_family_not_negotiated_or_without_a_next_hop_is_never_sent() {
    let plain = RouteAttributes::default();
    let wanted = routes(&["192.0.2.225/32", "2001:db8:300::1/128"], &plain);
    let mut outbox = Outbox::default();
    let updates = outbox.updates(&wanted, &peering(true, &[Family::IPV4_UNICAST]));
    assert_eq!(announced(&updates), ["192.0.2.225/32"]);
    let mut no_v6_hop = peering(true, &both());
    no_v6_hop.next_hop_v6 = None;
    assert_eq!(announced(&Outbox::default().updates(&wanted, &no_v6_hop)), ["192.0.2.225/32"]);
}

#[test]
fn a_thousand_routes_pack_into_a_few_updates_of_legal_size() {
    let p = peering(true, &both());
    let attributes = RouteAttributes::default();
    let mut wanted = BTreeMap::new();
    for i in 0..1000u32 {
        let v4 = Ipv4Addr::from(0xC633_0000 + i); // 198.51.0.0 + i
        wanted.insert(IpNet::V4(ipnet::Ipv4Net::new(v4, 32).unwrap()), attributes.clone());
        let v6: Ipv6Addr = format!("2001:db8:300::{i:x}").parse().unwrap();
        wanted.insert(IpNet::V6(ipnet::Ipv6Net::new(v6, 128).unwrap()), attributes.clone());
    }
    let mut outbox = Outbox::default();
    let updates = outbox.updates(&wanted, &p);
    assert!(updates.len() <= 8, "{} UPDATEs for 2000 routes", updates.len());
    for u in &updates {
        let bytes = Message::Update(u.clone()).encode(&p.context());
        assert!(bytes.len() <= MAX_LEN, "{} bytes", bytes.len());
        assert_eq!(Message::decode(&bytes, &p.context()), Ok(Message::Update(u.clone())));
    }
    assert_eq!(announced(&updates).len(), 2000);
    let gone = outbox.updates(&BTreeMap::new(), &p);
    assert_eq!(withdrawn(&gone).len(), 2000);
    assert!(gone.len() <= 8);
}

#[test]
fn reset_and_refresh_make_routes_go_out_again() {
    let p = peering(true, &both());
    let wanted = routes(&["192.0.2.225/32", "2001:db8:300::1/128"], &RouteAttributes::default());
    let mut outbox = Outbox::default();
    outbox.updates(&wanted, &p);
    outbox.refresh(Family::IPV6_UNICAST);
    assert_eq!(announced(&outbox.updates(&wanted, &p)), ["2001:db8:300::1/128"]);
    outbox.reset();
    assert!(outbox.is_empty());
    assert_eq!(announced(&outbox.updates(&wanted, &p)).len(), 2);
}
