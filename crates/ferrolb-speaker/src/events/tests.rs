use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::desired::{Advertisement, NodeInfo, ServiceEndpoints};

fn node(name: &str, labels: &[(&str, &str)]) -> NodeInfo {
    NodeInfo {
        name: name.into(),
        labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        network_unavailable: false,
        unschedulable: false,
        not_ready: false,
    }
}

fn everywhere() -> Advertisement {
    Advertisement { pools: BTreeSet::new(), pool_selectors: vec![], node_selectors: vec![], interfaces: vec![] }
}

fn ext(ip: &str) -> ExternalIp {
    ExternalIp { ip: ip.parse().unwrap(), pool: "p".into(), services: ["default/web".to_owned()].into() }
}

#[test]
fn takeover_notes_say_who_held_the_ip_and_why_it_moved() {
    let ip: IpAddr = "203.0.113.10".parse().unwrap();
    assert_eq!(
        takeover_note("node-2", ip, &["eth0".into()], Some(("node-1", "node-1 left membership"))),
        "announcing 203.0.113.10 from node-2 on eth0, took over from node-1: node-1 left membership"
    );
    assert_eq!(takeover_note("node-2", ip, &[], None), "announcing 203.0.113.10 from node-2");
}

#[test]
fn why_moved_tells_a_departure_from_an_ineligible_node_from_a_better_rank() {
    let excluded = node("node-1", &[(crate::desired::EXCLUDE_LABEL, "")]);
    let nodes = [excluded, node("node-2", &[]), node("node-3", &[])];
    let ads = [everywhere()];
    let pool_labels = BTreeMap::new();
    let ready = ServiceEndpoints { local: false, any_ready: true, nodes: BTreeSet::new() };
    let endpoints = [("default/web".to_owned(), ready)].into();
    let live: BTreeSet<String> = ["node-1", "node-2", "node-3"].map(String::from).into();
    let cluster =
        Cluster { nodes: &nodes, advertisements: &ads, pool_labels: &pool_labels, live: &live, endpoints: &endpoints };
    let ip = ext("203.0.113.10");
    assert_eq!(why_moved("node-9", "node-2", &ip, &cluster), "node-9 left membership");
    assert_eq!(why_moved("node-1", "node-2", &ip, &cluster), "node-1 is no longer eligible");
    assert_eq!(why_moved("node-3", "node-2", &ip, &cluster), "node-2 ranks first for this IP");
}

#[test]
fn every_unannounced_placement_has_a_warning_and_announced_ones_none() {
    let ip: IpAddr = "203.0.113.10".parse().unwrap();
    let (reason, note) = not_announced(ip, &Placement::NotAdvertised, "blue", false).unwrap();
    assert_eq!(
        (reason, note.as_str()),
        (
            Reason::NoL2Advertisement,
            "203.0.113.10 is not announced: no L2Advertisement or BGPAdvertisement covers pool blue"
        )
    );
    assert_eq!(not_announced(ip, &Placement::NotAdvertised, "blue", true), None, "BGP advertises it");
    assert_eq!(not_announced(ip, &Placement::NoEligibleNode, "blue", true), None);
    let (reason, note) = not_announced(ip, &Placement::NoEligibleNode, "blue", false).unwrap();
    assert_eq!(reason, Reason::NoEligibleNode);
    assert!(note.starts_with("203.0.113.10 is not announced: no live node is eligible"), "{note}");
    let (reason, _) = not_announced(ip, &Placement::NoReadyEndpoint, "blue", false).unwrap();
    assert_eq!(reason, Reason::NoReadyEndpoint);
    assert!(reason.warning());
    assert_eq!(not_announced(ip, &Placement::Announce { interfaces: vec![] }, "blue", false), None);
    assert_eq!(not_announced(ip, &Placement::OtherOwner("node-1".into()), "blue", false), None);
    assert!(!Reason::Announcing.warning() && !Reason::SpeakerJoinedMembership.warning());
    assert_eq!(Reason::SpeakerNotInMembership.as_str(), "SpeakerNotInMembership");
}

#[test]
fn bgp_notes_name_the_advertising_nodes_or_warn_that_none_does() {
    let ip: IpAddr = "192.0.2.225".parse().unwrap();
    let nodes: BTreeSet<String> = ["node-2", "node-1"].map(String::from).into();
    assert_eq!(
        bgp_advertisers_note(ip, &nodes),
        (Reason::BgpAdvertised, "192.0.2.225 is advertised over BGP by node-1, node-2 (2 nodes)".to_owned())
    );
    let (reason, note) = bgp_advertisers_note(ip, &BTreeSet::new());
    assert!(reason.warning() && note.starts_with("192.0.2.225 is not advertised over BGP"), "{note}");
}
