//! The speaker's BFD against FRR's bfdd over real UDP between network namespaces: both sides come Up, each
//! side notices the other's death within its detection time, and a stop tells the router (AdminDown).
//!
//! Needs root and Debian's frr (hack/test installs it). Waits poll a condition with a deadline; the one
//! time measured is the detection, bounded generously (the benchmark measures it).

mod routers;

use std::time::{Duration, Instant};

use ferrolb_bgp::bfd::{BfdConfig, Diagnostic, SessionState};
use ferrolb_speaker::bgp::bfd::{BfdEndpoint, BfdPeer, BfdStatus};
use ferrolb_testns::{Netns, NsRuntime, require_root};
use routers::*;
use tokio::sync::watch;

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
