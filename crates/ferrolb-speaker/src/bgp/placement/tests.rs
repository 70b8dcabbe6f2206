//! Who advertises: every eligible node, to the peers that select it, with the advertisements' attributes.

use std::collections::{BTreeMap, BTreeSet};

use ferrolb_bgp::{Community, LargeCommunity};

use super::*;
use crate::desired::{EXCLUDE_LABEL, ServiceEndpoints};

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

fn peer(name: &str, peer_asn: u32) -> Peer {
    Peer {
        name: name.into(),
        my_asn: 64512,
        peer_asn,
        address: "203.0.113.254".parse().unwrap(),
        port: 179,
        source: None,
        router_id: None,
        hold_time: Duration::from_secs(90),
        keepalive: None,
        connect_retry: Duration::from_secs(1),
        node_selectors: vec![],
        multihop: false,
        bfd: None,
        password: None,
    }
}

fn ad(name: &str) -> BgpAdvertisement {
    BgpAdvertisement {
        name: name.into(),
        scope: everywhere(),
        peers: BTreeSet::new(),
        aggregation_v4: 32,
        aggregation_v6: 128,
        local_pref: None,
        communities: BTreeSet::new(),
    }
}

fn ext(ip: &str) -> ExternalIp {
    ExternalIp { ip: ip.parse().unwrap(), pool: "p".into(), services: ["default/web".to_owned()].into() }
}

struct World {
    nodes: Vec<NodeInfo>,
    pool_labels: BTreeMap<String, BTreeMap<String, String>>,
    live: BTreeSet<String>,
    endpoints: BTreeMap<String, ServiceEndpoints>,
    peers: Vec<Peer>,
    ads: Vec<BgpAdvertisement>,
}

impl World {
    fn new(nodes: Vec<NodeInfo>) -> World {
        let live = nodes.iter().map(|n| n.name.clone()).collect();
        let ready = ServiceEndpoints { local: false, any_ready: true, nodes: BTreeSet::new() };
        World {
            nodes,
            pool_labels: BTreeMap::new(),
            live,
            endpoints: [("default/web".to_owned(), ready)].into(),
            peers: vec![peer("tor", 64513)],
            ads: vec![ad("all")],
        }
    }

    fn order(&self, me: &str, ips: &[ExternalIp]) -> BgpOrder {
        let cluster = Cluster {
            nodes: &self.nodes,
            advertisements: &[],
            pool_labels: &self.pool_labels,
            live: &self.live,
            endpoints: &self.endpoints,
        };
        let bgp = BgpConfig { peers: &self.peers, advertisements: &self.ads };
        let own = NodeAddresses { v4: Some("198.51.100.11".parse().unwrap()), v6: None };
        order(me, ips, &cluster, &bgp, own)
    }

    fn advertisers(&self, ip: &ExternalIp) -> Vec<String> {
        let cluster = Cluster {
            nodes: &self.nodes,
            advertisements: &[],
            pool_labels: &self.pool_labels,
            live: &self.live,
            endpoints: &self.endpoints,
        };
        advertisers(ip, &cluster, &BgpConfig { peers: &self.peers, advertisements: &self.ads }).into_iter().collect()
    }
}

fn routes(order: &BgpOrder, peer: &str) -> Vec<String> {
    order.peers.get(peer).map(|p| p.routes.keys().map(ToString::to_string).collect()).unwrap_or_default()
}

#[test]
fn every_eligible_node_advertises_not_just_one() {
    let world = World::new(vec![node("node-1", &[]), node("node-2", &[]), node("node-3", &[(EXCLUDE_LABEL, "")])]);
    let ips = [ext("192.0.2.225"), ext("2001:db8:300::1")];
    for me in ["node-1", "node-2"] {
        assert_eq!(routes(&world.order(me, &ips), "tor"), ["192.0.2.225/32", "2001:db8:300::1/128"], "{me}");
    }
    let excluded = world.order("node-3", &ips);
    assert!(routes(&excluded, "tor").is_empty() && excluded.ips.is_empty(), "the exclusion label drains a node");
    assert_eq!(world.advertisers(&ips[0]), ["node-1", "node-2"]);
}

#[test]
fn a_cordoned_node_keeps_advertising() {
    // Cordoning is about new pods; the node still forwards for the ones it has.
    let mut world = World::new(vec![node("node-1", &[]), node("node-2", &[])]);
    world.nodes[0].unschedulable = true;
    let ips = [ext("192.0.2.225")];
    assert_eq!(routes(&world.order("node-1", &ips), "tor"), ["192.0.2.225/32"]);
    assert_eq!(world.advertisers(&ips[0]), ["node-1", "node-2"]);
}

#[test]
fn local_traffic_policy_advertises_only_from_nodes_with_an_endpoint() {
    let mut world = World::new(vec![node("node-1", &[]), node("node-2", &[])]);
    world.endpoints.insert(
        "default/web".into(),
        ServiceEndpoints { local: true, any_ready: true, nodes: ["node-2".to_owned()].into() },
    );
    let ips = [ext("192.0.2.225")];
    assert!(routes(&world.order("node-1", &ips), "tor").is_empty());
    assert_eq!(routes(&world.order("node-2", &ips), "tor"), ["192.0.2.225/32"]);
    assert_eq!(world.advertisers(&ips[0]), ["node-2"]);
}

#[test]
fn peers_and_advertisements_select_nodes_and_each_other() {
    let mut world = World::new(vec![node("node-1", &[("rack", "a")]), node("node-2", &[("rack", "b")])]);
    let rack_a = Selector { match_labels: [("rack".to_owned(), "a".to_owned())].into(), ..Default::default() };
    world.peers = vec![Peer { node_selectors: vec![rack_a], ..peer("tor-a", 64513) }, peer("spine", 64514)];
    world.ads = vec![BgpAdvertisement { peers: ["spine".to_owned()].into(), ..ad("to-spine") }];
    let ips = [ext("192.0.2.225")];
    let node1 = world.order("node-1", &ips);
    assert_eq!(node1.peers.keys().collect::<Vec<_>>(), ["spine", "tor-a"], "node-1 peers with both");
    assert!(routes(&node1, "tor-a").is_empty(), "the advertisement names only spine");
    assert_eq!(routes(&node1, "spine"), ["192.0.2.225/32"]);
    assert_eq!(world.order("node-2", &ips).peers.keys().collect::<Vec<_>>(), ["spine"]);
}

#[test]
fn aggregation_communities_and_local_pref_merge_per_prefix() {
    let mut world = World::new(vec![node("node-1", &[])]);
    world.peers = vec![peer("ibgp", 64512)];
    let standard = AnyCommunity::Standard(Community(65000 << 16 | 100));
    let large = AnyCommunity::Large(LargeCommunity { global: 64512, local1: 1, local2: 2 });
    world.ads = vec![
        BgpAdvertisement { aggregation_v4: 24, local_pref: Some(150), communities: [standard].into(), ..ad("a") },
        BgpAdvertisement { aggregation_v4: 24, local_pref: Some(300), communities: [large].into(), ..ad("b") },
    ];
    let order = world.order("node-1", &[ext("192.0.2.225"), ext("192.0.2.226")]);
    let ibgp = &order.peers["ibgp"];
    assert_eq!(routes(&order, "ibgp"), ["192.0.2.0/24"], "two addresses, one aggregate");
    let attributes = &ibgp.routes[&"192.0.2.0/24".parse().unwrap()];
    assert_eq!(attributes.local_pref, Some(300));
    assert_eq!(attributes.communities.len() + attributes.large_communities.len(), 2);
    assert!(ibgp.warnings.is_empty(), "localPref is fine for an internal peer");
    assert_eq!(ibgp.settings.ttl, 255);
}

#[test]
fn a_local_pref_for_an_external_peer_is_reported_and_the_ttl_is_one_hop() {
    let mut world = World::new(vec![node("node-1", &[])]);
    world.ads = vec![BgpAdvertisement { local_pref: Some(150), ..ad("pref") }];
    let order = world.order("node-1", &[ext("192.0.2.225")]);
    let tor = &order.peers["tor"];
    assert_eq!(tor.warnings, ["BGPAdvertisement pref sets localPref, which external (eBGP) peers never get"]);
    assert_eq!(tor.settings.ttl, 1);
    world.peers[0].multihop = true;
    assert_eq!(world.order("node-1", &[]).peers["tor"].settings.ttl, 255);
}

#[test]
fn without_an_ipv4_address_a_peer_needs_a_router_id() {
    let world = World::new(vec![node("node-1", &[])]);
    let cluster = Cluster {
        nodes: &world.nodes,
        advertisements: &[],
        pool_labels: &world.pool_labels,
        live: &world.live,
        endpoints: &world.endpoints,
    };
    let bgp = BgpConfig { peers: &world.peers, advertisements: &world.ads };
    let v6_only = NodeAddresses { v4: None, v6: Some("2001:db8:100::11".parse().unwrap()) };
    let refused = order("node-1", &[], &cluster, &bgp, v6_only);
    assert!(refused.peers.is_empty());
    assert!(refused.refused["tor"].contains("set routerID"));
    let peers = [Peer { router_id: Some("192.0.2.1".parse().unwrap()), ..peer("tor", 64513) }];
    let bgp = BgpConfig { peers: &peers, advertisements: &world.ads };
    assert!(order("node-1", &[], &cluster, &bgp, v6_only).peers.contains_key("tor"));
}

#[test]
fn a_bfd_profile_guards_the_session_and_a_missing_one_is_reported() {
    use ferrolb_bgp::bfd::BfdConfig;
    let mut world = World::new(vec![node("node-1", &[])]);
    let config = BfdConfig {
        desired_min_tx: Duration::from_millis(50),
        required_min_rx: Duration::from_millis(50),
        detect_mult: 5,
        passive: false,
    };
    world.peers = vec![Peer { bfd: Some(Bfd::Profile(config, 254)), ..peer("tor", 64513) }];
    let bfd = world.order("node-1", &[]).peers["tor"].settings.bfd.clone().expect("BFD");
    assert_eq!((bfd.peer, bfd.config, bfd.multihop), ("203.0.113.254".parse().unwrap(), config, false));
    world.peers = vec![Peer { bfd: Some(Bfd::Missing("fast".into())), ..peer("tor", 64513) }];
    let tor = &world.order("node-1", &[]).peers["tor"];
    assert_eq!(tor.settings.bfd, None);
    assert_eq!(tor.warnings, ["BFDProfile fast does not exist: the session runs without BFD"]);
}

#[test]
fn a_password_signs_the_session_a_new_one_changes_its_settings_and_an_unusable_one_refuses_it() {
    let mut world = World::new(vec![node("node-1", &[])]);
    let key = |k: &str| ferrolb_md5sig::Md5Key::new(k.as_bytes()).unwrap();
    world.peers = vec![Peer { password: Some(Password::Key(key("k3y-alpha"))), ..peer("tor", 64513) }];
    let first = world.order("node-1", &[]).peers["tor"].settings.clone();
    assert_eq!(first.md5, Some(key("k3y-alpha")));
    assert!(!format!("{first:?}").contains("k3y"), "settings are logged; the key must not show: {first:?}");
    // A rotated key is a settings change, which restarts the session.
    world.peers = vec![Peer { password: Some(Password::Key(key("k3y-beta"))), ..peer("tor", 64513) }];
    assert_ne!(world.order("node-1", &[]).peers["tor"].settings, first);
    // No key to be had: no session (the router would drop every segment), and the record says why.
    world.peers =
        vec![Peer { password: Some(Password::Unusable("Secret x/y does not exist".into())), ..peer("tor", 64513) }];
    let order = world.order("node-1", &[]);
    assert!(order.peers.is_empty());
    assert_eq!(order.refused["tor"], "Secret x/y does not exist");
}
