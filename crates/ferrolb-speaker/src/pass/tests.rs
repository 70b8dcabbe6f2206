//! The ordering rules of a pass: forwarding brackets announcing, Events only on change, the janitor's
//! duties, nothing before the view settles.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use ferrolb_api::{L2Announcement, L2AnnouncementSpec, l2announcement_name};
use ferrolb_forward::Protocol;
use ferrolb_forward::plan::{Endpoint, Family, Service, ServicePort, Slice, SlicePort};
use ferrolb_packet::Mac;

use super::*;
use crate::bgp::placement::{BgpAdvertisement, Peer};
use crate::conflicts::{ConflictRecord, ProbeResult, ProbeSettings};
use crate::desired::EXCLUDE_LABEL;

const IP: &str = "198.51.100.200";

fn ip() -> IpAddr {
    IP.parse().unwrap()
}

/// Owns everything a pass borrows: `default/web` on [`IP`] from pool `p`, ready on every node, one
/// advertisement for every pool, and one interface `eth0` on the IP's subnet.
struct World {
    view: View,
    ips: Vec<ExternalIp>,
    nodes: Vec<NodeInfo>,
    advertisements: Vec<Advertisement>,
    pool_labels: BTreeMap<String, BTreeMap<String, String>>,
    endpoints: BTreeMap<String, Observed>,
    peers: BTreeMap<String, SocketAddr>,
    services: BTreeMap<String, ServiceRef>,
    records: Vec<L2Announcement>,
    links: Vec<Link>,
    forward_services: Vec<Service>,
    forward_slices: Vec<Slice>,
    forward_mode: bool,
    bgp_peers: Vec<Peer>,
    bgp_advertisements: Vec<BgpAdvertisement>,
    bgp_statuses: BTreeMap<String, PeerStatus>,
    bgp_sessions: Vec<ExistingSession>,
    probe: Option<ProbeSettings>,
    conflicts: Vec<ConflictRecord>,
    probe_results: Vec<ProbeResult>,
    heard: Vec<HeardClaim>,
}

impl World {
    fn new(nodes: &[&str]) -> World {
        let names: BTreeSet<String> = nodes.iter().map(|n| (*n).to_owned()).collect();
        let web = ServiceRef { namespace: "default".into(), name: "web".into(), uid: Some("u1".into()) };
        World {
            view: View { members: names.clone(), settled: true, ..View::default() },
            ips: vec![ExternalIp { ip: ip(), pool: "p".into(), services: ["default/web".to_owned()].into() }],
            nodes: nodes
                .iter()
                .map(|n| NodeInfo {
                    name: (*n).into(),
                    labels: BTreeMap::new(),
                    network_unavailable: false,
                    unschedulable: false,
                    not_ready: false,
                })
                .collect(),
            advertisements: vec![Advertisement {
                pools: BTreeSet::new(),
                pool_selectors: vec![],
                node_selectors: vec![],
                interfaces: vec![],
            }],
            pool_labels: BTreeMap::new(),
            endpoints: [(
                "default/web".to_owned(),
                Observed { local: false, ready_nodes: names.clone(), any_ready: true },
            )]
            .into(),
            peers: nodes
                .iter()
                .enumerate()
                .map(|(i, n)| ((*n).to_owned(), SocketAddr::from(([198, 51, 100, 11 + i as u8], 7947))))
                .collect(),
            services: [("default/web".to_owned(), web)].into(),
            records: Vec::new(),
            links: vec![Link {
                name: "eth0".into(),
                index: 2,
                mac: Mac([2, 0, 0, 0, 0, 1]),
                networks: vec!["198.51.100.11/24".parse().unwrap()],
                member: false,
                arp: true,
            }],
            forward_services: vec![Service {
                key: "default/web".into(),
                ingress: vec![ip()],
                ports: vec![ServicePort { name: "http".into(), protocol: Some(Protocol::Tcp), port: 80 }],
                local: false,
                proxy_protocol: false,
                source_ranges: vec![],
                restricted: false,
            }],
            forward_slices: vec![Slice {
                service: "default/web".into(),
                family: Family::V4,
                ports: vec![SlicePort { name: "http".into(), protocol: Some(Protocol::Tcp), port: 8080 }],
                endpoints: vec![Endpoint {
                    address: "192.0.2.5".parse().unwrap(),
                    node: Some("node-1".into()),
                    ready: true,
                    serving_while_terminating: false,
                }],
            }],
            forward_mode: false,
            bgp_peers: Vec::new(),
            bgp_advertisements: Vec::new(),
            bgp_statuses: BTreeMap::new(),
            bgp_sessions: Vec::new(),
            probe: None,
            conflicts: Vec::new(),
            probe_results: Vec::new(),
            heard: Vec::new(),
        }
    }

    /// Peers every node with router `tor` and advertises every pool to it; no L2Advertisement.
    fn bgp(mut self) -> World {
        self.advertisements.clear();
        self.bgp_peers = vec![Peer {
            name: "tor".into(),
            my_asn: 64512,
            peer_asn: 64513,
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
        }];
        self.bgp_advertisements = vec![BgpAdvertisement {
            name: "all".into(),
            scope: Advertisement {
                pools: BTreeSet::new(),
                pool_selectors: vec![],
                node_selectors: vec![],
                interfaces: vec![],
            },
            peers: BTreeSet::new(),
            aggregation_v4: 32,
            aggregation_v6: 128,
            local_pref: None,
            communities: BTreeSet::new(),
        }];
        self
    }

    fn forwarding(mut self) -> World {
        self.forward_mode = true;
        self
    }

    fn exclude(&mut self, node: &str) {
        let n = self.nodes.iter_mut().find(|n| n.name == node).unwrap();
        n.labels.insert(EXCLUDE_LABEL.into(), String::new());
    }

    /// The record `node` would have written for [`IP`] at `since`.
    fn record(&self, node: &str, since: &str) -> L2Announcement {
        let mut obj = L2Announcement::new(
            &l2announcement_name(ip()),
            L2AnnouncementSpec {
                ip: IP.into(),
                service: "web".into(),
                services: vec!["default/web".into()],
                node: node.into(),
                interfaces: vec!["eth0".into()],
                since: since.into(),
            },
        );
        obj.metadata.namespace = Some("default".into());
        obj.metadata.resource_version = Some("1".into());
        obj
    }

    fn pass(&self, state: &mut State, now: Instant) -> Pass {
        let records: Vec<&L2Announcement> = self.records.iter().collect();
        let own = ["198.51.100.11".parse().unwrap()];
        let inputs = Inputs {
            view: &self.view,
            ips: &self.ips,
            nodes: &self.nodes,
            advertisements: &self.advertisements,
            pool_labels: &self.pool_labels,
            endpoints: &self.endpoints,
            peers: &self.peers,
            services: &self.services,
            records: &records,
            links: &self.links,
            own_addresses: &own,
            forwarding: self
                .forward_mode
                .then_some(Forwarding { services: &self.forward_services, slices: &self.forward_slices }),
            bgp: Bgp {
                peers: &self.bgp_peers,
                advertisements: &self.bgp_advertisements,
                statuses: &self.bgp_statuses,
                sessions: &self.bgp_sessions,
            },
            conflicts: Conflicts { settings: self.probe, records: &self.conflicts, results: &self.probe_results },
            heard: &self.heard,
            wall_clock: "t0",
        };
        pass(state, &inputs, now)
    }
}

fn state(me: &str, world: &World) -> State {
    State::new(me, 7947, world.peers.clone())
}

fn owned(order: &Option<ForwardOrder>) -> Vec<IpAddr> {
    order.as_ref().expect("forward mode").owned.iter().copied().collect()
}

#[test]
fn nothing_is_placed_until_the_view_settles() {
    let mut world = World::new(&["node-1"]).forwarding();
    world.view.settled = false;
    let mut st = state("node-1", &world);
    let turn = world.pass(&mut st, Instant::now());
    assert!(turn.announce.ips.is_empty() && turn.events.is_empty() && turn.records.is_empty());
    assert!(owned(&turn.forward_after).is_empty());
    world.view.settled = true;
    let turn = world.pass(&mut st, Instant::now());
    assert_eq!(turn.announce.ips.keys().copied().collect::<Vec<_>>(), [ip()]);
}

#[test]
fn a_new_owner_forwards_before_it_announces_on_the_chosen_interface() {
    let world = World::new(&["node-1"]).forwarding();
    let mut st = state("node-1", &world);
    let turn = world.pass(&mut st, Instant::now());
    assert_eq!(turn.announce.ips[&ip()], ["eth0"]);
    assert_eq!(owned(&turn.forward_before), [ip()], "forwarding is in place before the first answer");
    let before = turn.forward_before.unwrap();
    assert_eq!(before.forwards.len(), 1);
    assert_eq!(before.forwards[0].endpoints, ["192.0.2.5:8080".parse::<SocketAddr>().unwrap()]);
    assert_eq!(owned(&turn.forward_after), [ip()]);
}

#[test]
fn an_old_owner_keeps_forwarding_for_the_drain_then_stops() {
    let mut world = World::new(&["node-1", "node-2"]).forwarding();
    world.exclude("node-2");
    let mut st = state("node-1", &world);
    let start = Instant::now();
    assert_eq!(world.pass(&mut st, start).announce.ips.len(), 1, "node-1 owns the IP");
    // node-1 becomes ineligible: node-2 takes the IP.
    world.nodes = World::new(&["node-1", "node-2"]).nodes;
    world.exclude("node-1");
    let moved = start + Duration::from_secs(10);
    let turn = world.pass(&mut st, moved);
    assert!(turn.announce.ips.is_empty(), "node-1 stops answering at once");
    assert_eq!(owned(&turn.forward_before), [ip()]);
    assert_eq!(owned(&turn.forward_after), [ip()], "but still forwards what reaches it");
    assert_eq!(turn.wake_at, Some(moved + DRAIN));
    assert!(st.forwards_anything());
    let almost = world.pass(&mut st, moved + DRAIN - Duration::from_millis(1));
    assert_eq!(owned(&almost.forward_after), [ip()]);
    let done = world.pass(&mut st, moved + DRAIN);
    assert!(owned(&done.forward_after).is_empty(), "the drain ended");
    assert_eq!(done.wake_at, None);
    assert!(!st.forwards_anything());
}

#[test]
fn an_ip_taken_back_during_its_drain_stops_draining() {
    let mut world = World::new(&["node-1", "node-2"]).forwarding();
    world.exclude("node-2");
    let mut st = state("node-1", &world);
    let start = Instant::now();
    world.pass(&mut st, start);
    world.nodes = World::new(&["node-1", "node-2"]).nodes;
    world.exclude("node-1");
    world.pass(&mut st, start + Duration::from_secs(1));
    world.nodes = World::new(&["node-1", "node-2"]).nodes;
    world.exclude("node-2");
    let back = world.pass(&mut st, start + Duration::from_secs(2));
    assert_eq!(back.announce.ips.len(), 1);
    assert_eq!(back.wake_at, None, "no drain pending for an IP owned again");
}

#[test]
fn events_and_records_are_written_on_change_only() {
    let mut world = World::new(&["node-1"]);
    let mut st = state("node-1", &world);
    let now = Instant::now();
    let first = world.pass(&mut st, now);
    assert_eq!(first.takeovers, 1);
    let [event] = first.events.as_slice() else { panic!("{:?}", first.events) };
    assert_eq!(
        (event.reason, event.note.as_str()),
        (Reason::Announcing, "announcing 198.51.100.200 from node-1 on eth0")
    );
    let [Write::Apply { spec, .. }] = first.records.as_slice() else { panic!("{:?}", first.records) };
    assert_eq!(
        (spec.node.as_str(), spec.since.as_str(), spec.interfaces.as_slice()),
        ("node-1", "t0", &["eth0".to_owned()][..])
    );
    assert_eq!(first.changed.len(), 1);
    // The record is now in the store: the same inputs ask for nothing more.
    world.records = vec![world.record("node-1", "t0")];
    let second = world.pass(&mut st, now + Duration::from_secs(1));
    assert!(second.events.is_empty() && second.records.is_empty() && second.changed.is_empty(), "{second:?}");
    assert_eq!(second.takeovers, 0);
    assert_eq!(second.announce, first.announce, "the order itself repeats: announcers keep it");
}

#[test]
fn a_takeover_names_the_node_that_held_the_ip_and_why() {
    let mut world = World::new(&["node-1", "node-2"]);
    world.view.members.remove("node-1");
    world.records = vec![world.record("node-1", "t-1")];
    let mut st = state("node-2", &world);
    let turn = world.pass(&mut st, Instant::now());
    assert_eq!(
        turn.events[0].note,
        "announcing 198.51.100.200 from node-2 on eth0, took over from node-1: node-1 left membership"
    );
    assert!(matches!(&turn.records[..], [Write::Apply { spec, .. }] if spec.node == "node-2"), "{:?}", turn.records);
}

#[test]
fn only_the_janitor_warns_that_an_ip_is_not_announced() {
    let mut world = World::new(&["node-1", "node-2"]);
    world.advertisements.clear();
    let mut janitor = state("node-1", &world);
    let turn = world.pass(&mut janitor, Instant::now());
    let [event] = turn.events.as_slice() else { panic!("{:?}", turn.events) };
    assert_eq!(event.reason, Reason::NoL2Advertisement);
    assert!(matches!(&event.regarding, Regarding::Service(s) if s.name == "web"));
    let mut other = state("node-2", &world);
    assert!(world.pass(&mut other, Instant::now()).events.is_empty());
    // Once is enough.
    assert!(world.pass(&mut janitor, Instant::now()).events.is_empty());
}

#[test]
fn an_ip_without_its_pool_gets_no_warning_yet() {
    let mut world = World::new(&["node-1"]);
    world.advertisements.clear();
    world.ips[0].pool.clear();
    let mut st = state("node-1", &world);
    assert!(world.pass(&mut st, Instant::now()).events.is_empty());
}

#[test]
fn peers_are_handed_to_the_membership_only_when_they_change() {
    let mut world = World::new(&["node-1", "node-2"]);
    let mut st = state("node-1", &world);
    assert_eq!(world.pass(&mut st, Instant::now()).peers, None);
    world.peers.insert("node-3".into(), SocketAddr::from(([198, 51, 100, 13], 7947)));
    assert_eq!(world.pass(&mut st, Instant::now()).peers.map(|p| p.len()), Some(3));
    assert_eq!(world.pass(&mut st, Instant::now()).peers, None);
}

#[test]
fn kube_proxy_mode_plans_no_forwarding() {
    let world = World::new(&["node-1"]);
    let mut st = state("node-1", &world);
    let turn = world.pass(&mut st, Instant::now());
    assert_eq!((turn.forward_before, turn.forward_after), (None, None));
    assert_eq!(turn.announce.ips.len(), 1);
}

#[test]
fn every_node_agrees_on_one_announcer() {
    let world = World::new(&["node-1", "node-2", "node-3"]);
    let announcing: Vec<String> = ["node-1", "node-2", "node-3"]
        .iter()
        .filter(|me| !world.pass(&mut state(me, &world), Instant::now()).announce.ips.is_empty())
        .map(|me| (*me).to_owned())
        .collect();
    assert_eq!(announcing.len(), 1, "{announcing:?}");
}

#[test]
fn with_bgp_every_node_advertises_and_forwards_before_the_routes_go_out() {
    let world = World::new(&["node-1", "node-2", "node-3"]).bgp().forwarding();
    for me in ["node-1", "node-2", "node-3"] {
        let mut st = state(me, &world);
        let turn = world.pass(&mut st, Instant::now());
        let tor = &turn.bgp.peers["tor"];
        assert_eq!(tor.routes.keys().map(ToString::to_string).collect::<Vec<_>>(), ["198.51.100.200/32"], "{me}");
        assert_eq!(tor.settings.session.router_id.to_string(), "198.51.100.11", "the node's IPv4 address");
        assert_eq!(owned(&turn.forward_before), [ip()], "{me} forwards what it advertises");
        assert!(turn.announce.ips.is_empty(), "no L2Advertisement: nothing on layer 2");
        assert!(turn.events.iter().all(|e| e.reason != Reason::NoL2Advertisement), "BGP covers the pool");
        let [SessionWrite::Apply { name, spec, status }] = turn.bgp_sessions.as_slice() else {
            panic!("{:?}", turn.bgp_sessions)
        };
        assert_eq!((name.as_str(), spec.peer.as_str(), status.state.as_str()), (&*format!("{me}.tor"), "tor", "Idle"));
    }
}

#[test]
fn a_session_that_goes_down_gets_one_warning_on_its_peer() {
    use ferrolb_bgp::session::{Down, State as SessionState};
    let mut world = World::new(&["node-1"]).bgp();
    let mut st = state("node-1", &world);
    let up = PeerStatus { state: SessionState::Established, prefixes: 1, ..PeerStatus::default() };
    world.bgp_statuses = [("tor".to_owned(), up)].into();
    world.pass(&mut st, Instant::now());
    let down =
        PeerStatus { state: SessionState::Idle, last_down: Some(Down::ConnectionClosed), ..PeerStatus::default() };
    world.bgp_statuses = [("tor".to_owned(), down)].into();
    let turn = world.pass(&mut st, Instant::now());
    let downs: Vec<&OutEvent> = turn.events.iter().filter(|e| e.reason == Reason::BgpSessionDown).collect();
    assert_eq!(downs.len(), 1, "{:?}", turn.events);
    assert_eq!(downs[0].regarding, Regarding::BgpPeer("tor".into()));
    assert_eq!(downs[0].note, "BGP session from node-1 to tor went down: the peer closed the connection");
    assert!(world.pass(&mut st, Instant::now()).events.is_empty(), "once");
}

#[test]
fn the_janitor_says_which_nodes_advertise_when_the_set_changes() {
    let mut world = World::new(&["node-1", "node-2"]).bgp();
    let mut janitor = state("node-1", &world);
    assert!(world.pass(&mut janitor, Instant::now()).events.is_empty(), "the first view is taken as it is");
    world.exclude("node-2");
    let turn = world.pass(&mut janitor, Instant::now());
    let [event] = turn.events.as_slice() else { panic!("{:?}", turn.events) };
    assert_eq!(
        (event.reason, event.note.as_str()),
        (Reason::BgpAdvertised, "198.51.100.200 is advertised over BGP by node-1 (1 node)")
    );
    let mut other = state("node-2", &world);
    world.pass(&mut other, Instant::now());
    world.exclude("node-1");
    assert!(world.pass(&mut other, Instant::now()).events.is_empty(), "only the janitor tells");
}

#[test]
fn forwarding_skips_endpoints_on_a_node_that_left_the_membership() {
    let mut world = World::new(&["node-1", "node-2"]).forwarding();
    world.exclude("node-1");
    world.forward_slices[0].endpoints.push(Endpoint {
        address: "192.0.2.70".parse().unwrap(),
        node: Some("node-2".into()),
        ready: true,
        serving_while_terminating: false,
    });
    let endpoints = |turn: &Pass| -> Vec<String> {
        let after = turn.forward_after.as_ref().expect("forward mode");
        after.forwards[0].endpoints.iter().map(ToString::to_string).collect()
    };
    let mut st = state("node-2", &world);
    let turn = world.pass(&mut st, Instant::now());
    assert_eq!(endpoints(&turn), ["192.0.2.5:8080", "192.0.2.70:8080"]);
    // node-1 dies: Kubernetes still lists its pod as ready, the membership knows it is gone.
    world.view.members.remove("node-1");
    let turn = world.pass(&mut st, Instant::now());
    assert_eq!(endpoints(&turn), ["192.0.2.70:8080"]);
    world.view.members.insert("node-1".into());
    let turn = world.pass(&mut st, Instant::now());
    assert_eq!(endpoints(&turn), ["192.0.2.5:8080", "192.0.2.70:8080"], "it rejoined");
}

/// node-1 alone with probing on, started before [`IP`] existed; then the IP appears: the pass that saw it.
fn probing_a_new_ip() -> (World, State, Instant, Pass) {
    let mut world = World::new(&["node-1"]);
    world.probe = Some(ProbeSettings { window: Duration::from_millis(200), recheck: Duration::from_secs(60) });
    let ips = std::mem::take(&mut world.ips);
    let mut st = state("node-1", &world);
    let start = Instant::now();
    world.pass(&mut st, start);
    world.ips = ips;
    let turn = world.pass(&mut st, start);
    (world, st, start, turn)
}

#[test]
fn a_new_ip_is_announced_only_after_its_probe_and_a_conflict_keeps_it_dark_with_a_warning() {
    let (mut world, mut st, start, turn) = probing_a_new_ip();
    // The IP appeared after the start: probed, not announced, no Event, no record yet.
    assert_eq!(turn.probes.len(), 1);
    assert!(turn.announce.ips.is_empty() && turn.events.is_empty() && turn.records.is_empty());
    // Another host answered: a Warning naming the MAC, an AddressConflict record, still dark.
    world.probe_results = vec![ProbeResult {
        ip: ip(),
        answer: Some(crate::conflicts::Answer { mac: Mac([2, 0, 0, 0, 0, 0x99]), interface: "eth0".into() }),
        recheck: false,
    }];
    let turn = world.pass(&mut st, start + Duration::from_millis(30));
    assert!(turn.announce.ips.is_empty());
    assert_eq!(turn.conflicts_found, 1);
    assert_eq!(turn.conflict_writes.len(), 1);
    let [event] = turn.events.as_slice() else { panic!("{:?}", turn.events) };
    assert_eq!(event.reason, Reason::AddressConflict);
    assert!(event.note.contains("02:00:00:00:00:99 answered node-1's ARP probe on eth0"), "{}", event.note);
}

#[test]
fn a_quiet_probe_lets_the_ip_be_announced_with_its_event() {
    let (mut world, mut st, start, _) = probing_a_new_ip();
    world.probe_results = vec![ProbeResult { ip: ip(), answer: None, recheck: false }];
    let turn = world.pass(&mut st, start + Duration::from_millis(200));
    assert_eq!(turn.announce.ips[&ip()], ["eth0"]);
    assert_eq!(turn.events.iter().filter(|e| e.reason == Reason::Announcing).count(), 1);
}

/// A claim on [`IP`] heard on eth0 from another MAC, signed by `signer`.
fn claim(signer: Option<&str>) -> HeardClaim {
    HeardClaim {
        ip: ip(),
        mac: Mac([2, 0, 0, 0, 0, 0x77]),
        interface: "eth0".into(),
        signer: signer.map(|n| crate::membership::signed_frames::Signer::Verified(n.to_owned())),
    }
}

#[test]
fn in_a_split_the_lower_ranked_side_yields_and_both_sides_say_the_membership_is_split() {
    // Each side of the split sees only itself, and both place the IP on themselves.
    let high = crate::election::owner(ip(), ["node-1", "node-2"]).unwrap();
    let low = if high == "node-1" { "node-2" } else { "node-1" };
    let start = Instant::now();
    let mut low_world = World::new(&[low]);
    let mut low_state = state(low, &low_world);
    assert_eq!(low_world.pass(&mut low_state, start).announce.ips[&ip()], ["eth0"]);
    low_world.heard = vec![claim(Some(high))];
    let turn = low_world.pass(&mut low_state, start + Duration::from_millis(10));
    assert!(turn.announce.ips.is_empty(), "the lower-ranked side stops answering");
    assert_eq!(turn.announce.yielded, [(ip(), vec!["eth0".to_owned()])].into());
    assert_eq!(turn.split_claims, 1);
    let [event] = turn.events.as_slice() else { panic!("{:?}", turn.events) };
    assert_eq!(event.reason, Reason::MembershipSplit);
    assert!(event.note.contains(&format!("{low} yields it")), "{}", event.note);

    let mut high_world = World::new(&[high]);
    let mut high_state = state(high, &high_world);
    high_world.pass(&mut high_state, start);
    high_world.heard = vec![claim(Some(low))];
    let turn = high_world.pass(&mut high_state, start + Duration::from_millis(10));
    assert_eq!(turn.announce.ips[&ip()], ["eth0"], "the higher-ranked side keeps it");
    assert_eq!(turn.defend, [ip()]);
    assert_eq!(turn.events.iter().filter(|e| e.reason == Reason::MembershipSplit).count(), 1);
}

#[test]
fn a_foreign_host_claiming_an_announced_ip_twice_is_an_address_conflict() {
    let mut world = World::new(&["node-1"]);
    world.probe = Some(ProbeSettings { window: Duration::from_millis(100), recheck: Duration::from_secs(60) });
    let mut st = state("node-1", &world);
    let start = Instant::now();
    assert_eq!(world.pass(&mut st, start).announce.ips[&ip()], ["eth0"], "in use at start: not probed");
    world.heard = vec![claim(None)];
    let turn = world.pass(&mut st, start + Duration::from_secs(1));
    assert_eq!(turn.defend, [ip()], "defended once");
    assert_eq!(turn.announce.ips[&ip()], ["eth0"]);
    let turn = world.pass(&mut st, start + Duration::from_secs(2));
    assert!(turn.announce.ips.is_empty(), "the second claim within 10 s is a conflict: {turn:?}");
    assert_eq!((turn.conflicts_found, turn.conflict_writes.len()), (1, 1));
    let [event] = turn.events.as_slice() else { panic!("{:?}", turn.events) };
    assert_eq!(event.reason, Reason::AddressConflict);
    assert!(event.note.contains("02:00:00:00:00:77 sent a gratuitous ARP"), "{}", event.note);
}

#[test]
fn a_speaker_outvoted_on_the_key_places_nothing_and_is_no_janitor() {
    let me = crate::election::owner(ip(), ["node-1", "node-2"]).unwrap();
    let other = if me == "node-1" { "node-2" } else { "node-1" };
    // Alone in its view, hearing both others under a key it lacks: its key is the wrong one.
    let mut world = World::new(&["node-1", "node-2", "node-3"]);
    world.view.members = [me.to_owned()].into();
    world.view.unreadable = [other.to_owned(), "node-3".to_owned()].into();
    world.records = vec![world.record("node-3", "t0")];
    let mut st = state(me, &world);
    let turn = world.pass(&mut st, Instant::now());
    assert!(turn.announce.ips.is_empty(), "announced with the wrong key: {turn:?}");
    assert!(turn.records.is_empty(), "a janitor with the wrong key deleted the others' records: {:?}", turn.records);
    assert!(turn.events.is_empty(), "{:?}", turn.events);
    // On the majority side, one unreadable peer changes nothing: it announces what it owns.
    world.view.members = [me.to_owned(), other.to_owned()].into();
    world.view.unreadable = ["node-3".to_owned()].into();
    assert_eq!(world.pass(&mut st, Instant::now()).announce.ips[&ip()], ["eth0"]);
}
