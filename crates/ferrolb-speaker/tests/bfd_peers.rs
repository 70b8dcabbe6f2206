//! The speaker's BFD against FRR's bfdd over real UDP between network namespaces: both sides come Up, each
//! side notices the other's death within its detection time, and a stop tells the router (AdminDown).
//!
//! A BGP session guarded by BFD ends on both sides as soon as the path dies, not after the hold time.
//!
//! Needs root and Debian's frr (hack/test installs it). Waits poll a condition with a deadline; the one
//! time measured is the detection, bounded generously (the benchmark measures it).

mod routers;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_bgp::Family;
use ferrolb_bgp::bfd::{BfdConfig, Diagnostic, SessionState};
use ferrolb_bgp::routes::RouteAttributes;
use ferrolb_bgp::session::{self, Down, State};
use ferrolb_speaker::announce::Announcer;
use ferrolb_speaker::bgp::bfd::{BfdEndpoint, BfdPeer, BfdStatus};
use ferrolb_speaker::bgp::placement::{PeerOrder, SessionSettings};
use ferrolb_speaker::bgp::{BgpAnnouncer, BgpMetrics, BgpOrder};
use ferrolb_testns::{Netns, NsRuntime, require_root};
use ipnet::IpNet;
use routers::*;
use tokio::sync::{Mutex, watch};

const CONFIG: BfdConfig = BfdConfig {
    desired_min_tx: Duration::from_millis(100),
    required_min_rx: Duration::from_millis(100),
    detect_mult: 3,
    passive: false,
};

struct Node {
    runtime: NsRuntime,
    endpoint: BfdEndpoint,
    _netns: Netns,
}

fn node_and(router: &Netns) -> Node {
    let netns = Netns::new("node");
    netns.link("eth0", &[&format!("{NODE_V4}/24")], router, "eth0", &[&format!("{ROUTER_V4}/24")]);
    let runtime = NsRuntime::new(&netns);
    let endpoint = runtime.run(async {
        let (endpoint, task) = BfdEndpoint::start().expect("BFD sockets");
        tokio::spawn(task);
        endpoint
    });
    Node { runtime, endpoint, _netns: netns }
}

impl Node {
    fn add(&self) -> watch::Receiver<BfdStatus> {
        let endpoint = self.endpoint.clone();
        let peer = BfdPeer {
            peer: ROUTER_V4.parse().unwrap(),
            local: Some(NODE_V4.parse().unwrap()),
            multihop: false,
            minimum_ttl: 255,
            config: CONFIG,
        };
        self.runtime.run(async move { endpoint.add(peer) })
    }
}

fn router_state(router: &Router) -> String {
    let peers = router.vtysh("show bfd peers json");
    peers.as_array().and_then(|a| a.first()).and_then(|p| p["status"].as_str()).unwrap_or("none").to_owned()
}

#[test]
fn bfd_comes_up_with_frr_and_each_side_detects_the_others_death() {
    require_root("the BFD peer tests");
    let router_ns = Netns::new("bfd");
    let node = node_and(&router_ns);
    let mut router = frr_bfd(router_ns, 100, 3);
    let status = node.add();
    wait_for("both sides Up", || {
        (status.borrow().state == SessionState::Up && router_state(&router) == "up").then_some(())
    });
    let peer = router.vtysh("show bfd peers json")[0].clone();
    assert_eq!(peer["transmit-interval"].as_u64(), Some(100), "negotiated down to 100 ms: {peer}");
    // The router's bfdd dies: the node's session is Down within 3 x 100 ms (and a generous margin).
    router.kill("bfdd");
    let killed = Instant::now();
    wait_for("the node to notice", || (status.borrow().state == SessionState::Down).then_some(()));
    let took = killed.elapsed();
    assert!(took < Duration::from_millis(900), "detected after {took:?}");
    assert_eq!(status.borrow().diagnostic, Diagnostic::DetectionTimeExpired);
    assert_eq!(status.borrow().downs, 1);
}

#[test]
fn the_router_sees_the_nodes_stop_as_administratively_down() {
    require_root("the BFD peer tests");
    let router_ns = Netns::new("bfd");
    let node = node_and(&router_ns);
    let router = frr_bfd(router_ns, 100, 3);
    let status = node.add();
    wait_for("both sides Up", || {
        (status.borrow().state == SessionState::Up && router_state(&router) == "up").then_some(())
    });
    let endpoint = node.endpoint.clone();
    node.runtime.run(async move { endpoint.remove(ROUTER_V4.parse().unwrap()) });
    let peer = wait_for("the router to see the node go down", || {
        let peer = router.vtysh("show bfd peers json")[0].clone();
        (peer["status"] == "down").then_some(peer)
    });
    assert_eq!(peer["remote-diagnostic"], "administratively down", "{peer}");
}

/// A BGP session to FRR guarded by BFD: when the path dies, BFD ends the session on both sides long before
/// the 90 s hold time would, the router drops the route, and when the path returns everything comes back.
#[test]
fn a_dead_path_ends_the_bgp_session_through_bfd_and_the_router_drops_the_route() {
    require_root("the BFD peer tests");
    let router_ns = Netns::new("bfdbgp");
    let node = node_and(&router_ns);
    let router = frr_bgp_bfd(router_ns, 100, 3);
    let announcer = Arc::new(Mutex::new(node.runtime.run({
        let endpoint = node.endpoint.clone();
        async move { BgpAnnouncer::new(BgpMetrics::default(), Some(endpoint)) }
    })));
    let settings = SessionSettings {
        address: ROUTER_V4.parse().unwrap(),
        port: 179,
        source: Some(NODE_V4.parse().unwrap()),
        ttl: 1,
        session: session::Config {
            my_asn: 64512,
            peer_asn: 64513,
            router_id: NODE_V4.parse().unwrap(),
            hold_time: Duration::from_secs(90),
            keepalive: None,
            connect_retry: Duration::from_millis(500),
            families: vec![Family::IPV4_UNICAST],
        },
        bfd: Some(BfdPeer {
            peer: ROUTER_V4.parse().unwrap(),
            local: Some(NODE_V4.parse().unwrap()),
            multihop: false,
            minimum_ttl: 255,
            config: CONFIG,
        }),
        md5: None,
    };
    let routes: BTreeMap<IpNet, RouteAttributes> =
        [("192.0.2.225/32".parse().unwrap(), RouteAttributes::default())].into();
    let order = BgpOrder {
        peers: [(
            "tor".to_owned(),
            PeerOrder {
                settings,
                next_hop_v4: Some(NODE_V4.parse().unwrap()),
                next_hop_v6: None,
                routes: Arc::new(routes),
                warnings: vec![],
            },
        )]
        .into(),
        ..BgpOrder::default()
    };
    let status = || {
        let announcer = announcer.clone();
        node.runtime.run(async move { announcer.lock().await.statuses().remove("tor") })
    };
    {
        let announcer = announcer.clone();
        node.runtime.run(async move { announcer.lock().await.announce(&order) });
    }
    wait_for("the session Established with BFD Up", || {
        let s = status()?;
        (s.state == State::Established && s.bfd == Some(SessionState::Up)).then_some(())
    });
    wait_for("the route in the router's kernel", || {
        router.kernel_route("192.0.2.225/32").contains(&format!("via {NODE_V4}")).then_some(())
    });

    // The path dies: the router takes in nothing more from the node.
    router.netns.run("nft", &["add table inet cut"]);
    router.netns.run("nft", &["add chain inet cut input { type filter hook input priority -10; policy drop; }"]);
    let cut = Instant::now();
    let down = wait_for("BFD to end the node's session", || {
        let s = status()?;
        (s.state != State::Established).then_some(s)
    });
    let took = cut.elapsed();
    assert!(matches!(down.last_down, Some(Down::BfdDown(_))), "ended by {:?}", down.last_down);
    assert!(took < Duration::from_secs(5), "ended after {took:?}, not by the 90 s hold time");
    wait_for("the router to drop the route", || router.kernel_route("192.0.2.225/32").is_empty().then_some(()));
    assert!(cut.elapsed() < Duration::from_secs(10), "the router kept the route for {:?}", cut.elapsed());

    // The path returns: BFD and the session come back, and so does the route.
    router.netns.run("nft", &["delete table inet cut"]);
    wait_for("the session Established again with BFD Up", || {
        let s = status()?;
        (s.state == State::Established && s.bfd == Some(SessionState::Up)).then_some(())
    });
    wait_for("the route back in the router's kernel", || {
        router.kernel_route("192.0.2.225/32").contains(&format!("via {NODE_V4}")).then_some(())
    });
    let announcer = announcer.clone();
    node.runtime.run(async move { announcer.lock().await.withdraw_all().await });
}
