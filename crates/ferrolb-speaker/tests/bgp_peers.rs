//! The speaker's BGP sessions against real routers, over real TCP between network namespaces: FRR 8 (bgpd
//! with zebra, so the routes reach the router's kernel table) and BIRD 2. Two independent implementations
//! must accept what ferrolb sends and what it answers, and ferrolb must accept what they send (FRR announces
//! routes of its own with communities, which ferrolb's session validates and ignores). FRR also checks TCP
//! MD5 signatures (RFC 2385): the right key comes up, a wrong one never does, and a new key is followed.
//!
//! Needs root and Debian's frr and bird2 (hack/test installs them). Waits poll a condition with a deadline.

mod routers;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ferrolb_bgp::routes::RouteAttributes;
use ferrolb_bgp::session::{self, Down, State};
use ferrolb_bgp::{AnyCommunity, Family};
use ferrolb_md5sig::Md5Key;
use ferrolb_speaker::announce::Announcer;
use ferrolb_speaker::bgp::placement::{PeerOrder, SessionSettings};
use ferrolb_speaker::bgp::report::session_status;
use ferrolb_speaker::bgp::{BgpAnnouncer, BgpMetrics, BgpOrder};
use ferrolb_testns::{Netns, NsRuntime, require_root};
use ipnet::IpNet;
use routers::*;
use tokio::sync::Mutex;

// === the node ===

struct Node {
    runtime: NsRuntime,
    announcer: Arc<Mutex<BgpAnnouncer>>,
    _netns: Netns,
}

/// A node namespace joined to `router` on 198.51.100.0/24 and 2001:db8:100::/64.
fn node_and(router: &Netns) -> Node {
    let netns = Netns::new("node");
    netns.link(
        "eth0",
        &[&format!("{NODE_V4}/24"), &format!("{NODE_V6}/64")],
        router,
        "eth0",
        &[&format!("{ROUTER_V4}/24"), &format!("{ROUTER_V6}/64")],
    );
    let runtime = NsRuntime::new(&netns);
    let announcer = Arc::new(Mutex::new(runtime.run(async { BgpAnnouncer::new(BgpMetrics::default(), None) })));
    Node { runtime, announcer, _netns: netns }
}

fn settings(peer: &str, peer_asn: u32) -> SessionSettings {
    SessionSettings {
        address: peer.parse().unwrap(),
        port: 179,
        source: None,
        ttl: 1,
        session: session::Config {
            my_asn: 64512,
            peer_asn,
            router_id: NODE_V4.parse().unwrap(),
            hold_time: Duration::from_secs(9),
            keepalive: None,
            connect_retry: Duration::from_millis(500),
            families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
        },
        bfd: None,
        md5: None,
    }
}

fn order(peer: &str, settings: SessionSettings, prefixes: &[&str], attributes: &RouteAttributes) -> BgpOrder {
    let routes: BTreeMap<IpNet, RouteAttributes> =
        prefixes.iter().map(|p| (p.parse().unwrap(), attributes.clone())).collect();
    let order = PeerOrder {
        settings,
        next_hop_v4: Some(NODE_V4.parse().unwrap()),
        next_hop_v6: Some(NODE_V6.parse().unwrap()),
        routes: Arc::new(routes),
        warnings: vec![],
    };
    BgpOrder { peers: [(peer.to_owned(), order)].into(), ..BgpOrder::default() }
}

impl Node {
    fn announce(&self, order: BgpOrder) {
        let announcer = self.announcer.clone();
        self.runtime.run(async move { announcer.lock().await.announce(&order) });
    }

    fn status(&self, peer: &str) -> Option<ferrolb_speaker::bgp::peer::PeerStatus> {
        let announcer = self.announcer.clone();
        let peer = peer.to_owned();
        self.runtime.run(async move { announcer.lock().await.statuses().remove(&peer) })
    }

    fn wait_state(&self, peer: &str, state: State) {
        wait_for(&format!("session {peer} in {state:?}"), || (self.status(peer)?.state == state).then_some(()));
    }

    fn shutdown(&self) {
        let announcer = self.announcer.clone();
        self.runtime.run(async move { announcer.lock().await.withdraw_all().await });
    }
}

fn tagged() -> RouteAttributes {
    let mut attributes = RouteAttributes::default();
    for c in ["65000:100", "large:64512:1:2", "no-export"] {
        match c.parse::<AnyCommunity>().unwrap() {
            AnyCommunity::Standard(c) => attributes.communities.insert(c),
            AnyCommunity::Large(c) => attributes.large_communities.insert(c),
        };
    }
    attributes
}

// === the tests ===

#[test]
fn frr_installs_the_routes_keeps_the_session_through_changes_and_sees_the_shutdown() {
    require_root("the BGP peer tests");
    let router_ns = Netns::new("frr");
    let node = node_and(&router_ns);
    let router = frr(router_ns, 64512);
    node.announce(order("tor", settings(ROUTER_V4, 64513), &["192.0.2.225/32", "2001:db8:300::1/128"], &tagged()));
    node.wait_state("tor", State::Established);

    // Both families reach the router's kernel, the IPv6 route over the IPv4 session with the node's IPv6 hop.
    wait_for("the IPv4 route in the router's kernel", || {
        router.kernel_route("192.0.2.225/32").contains(&format!("via {NODE_V4}")).then_some(())
    });
    wait_for("the IPv6 route in the router's kernel", || {
        router.kernel_route("2001:db8:300::1/128").contains(&format!("via {NODE_V6}")).then_some(())
    });
    let route = router.vtysh("show bgp ipv4 unicast 192.0.2.225/32 json");
    let text = route.to_string();
    for expected in ["65000:100", "64512:1:2", "noExport", "\"64512\""] {
        assert!(text.contains(expected), "{expected} missing from FRR's view: {text}");
    }

    // FRR's own routes, tagged with communities, reached the node and were accepted (validated, ignored).
    let neighbor = |r: &Router| r.vtysh(&format!("show bgp neighbors {NODE_V4} json"))[NODE_V4].clone();
    wait_for("FRR to send its routes of both families", || {
        let families = neighbor(&router)["addressFamilyInfo"].clone();
        let sent = |f: &str| families[f]["sentPrefixCounter"].as_u64();
        (sent("ipv4Unicast") == Some(1) && sent("ipv6Unicast") == Some(1)).then_some(())
    });

    // 100 changes of routes: incremental UPDATEs, never a new session.
    for i in 0..100u32 {
        let prefixes: Vec<String> = (0..=(i % 7)).map(|k| format!("192.0.2.{}/32", 225 + k)).collect();
        let refs: Vec<&str> = prefixes.iter().map(String::as_str).collect();
        node.announce(order("tor", settings(ROUTER_V4, 64513), &refs, &tagged()));
    }
    node.announce(order("tor", settings(ROUTER_V4, 64513), &["192.0.2.226/32"], &RouteAttributes::default()));
    wait_for("only 192.0.2.226 to remain", || {
        let gone =
            router.kernel_route("192.0.2.225/32").is_empty() && router.kernel_route("2001:db8:300::1/128").is_empty();
        (gone && router.kernel_route("192.0.2.226/32").contains(NODE_V4)).then_some(())
    });
    let n = neighbor(&router);
    assert_eq!(n["connectionsEstablished"].as_u64(), Some(1), "the session was reset: {n}");
    assert_eq!(node.status("tor").unwrap().prefixes, 1);

    // A graceful stop withdraws first, then says goodbye with a Cease.
    node.shutdown();
    wait_for("the route to be withdrawn", || router.kernel_route("192.0.2.226/32").is_empty().then_some(()));
    let n = wait_for("FRR to see the Cease", || {
        let n = neighbor(&router);
        (n["bgpState"] != "Established").then_some(n)
    });
    let reason = n["lastNotificationReason"].to_string() + &n["lastResetDueTo"].to_string();
    assert!(reason.contains("Cease") || reason.contains("Administrative"), "{n}");
}

/// An internal peer (the node in the router's own AS) gets the advertisement's LOCAL_PREF with its
/// communities; the router's BGP table shows both.
#[test]
fn an_internal_frr_peer_gets_the_local_pref() {
    require_root("the BGP peer tests");
    let router_ns = Netns::new("ibgp");
    let node = node_and(&router_ns);
    let router = frr(router_ns, 64513);
    let mut internal = settings(ROUTER_V4, 64513);
    internal.session.my_asn = 64513;
    let attributes = RouteAttributes { local_pref: Some(250), ..tagged() };
    node.announce(order("tor", internal, &["192.0.2.230/32"], &attributes));
    node.wait_state("tor", State::Established);
    let route = wait_for("the route in FRR's BGP table", || {
        let route = router.vtysh("show bgp ipv4 unicast 192.0.2.230/32 json");
        route["paths"].as_array().is_some_and(|p| !p.is_empty()).then_some(route)
    });
    let path = &route["paths"][0];
    assert_eq!(path["locPrf"].as_u64(), Some(250), "LOCAL_PREF in FRR's view: {route}");
    assert!(route.to_string().contains("65000:100"), "the communities came too: {route}");
}

#[test]
fn a_wrong_asn_or_a_silent_peer_gives_a_status_that_says_so() {
    require_root("the BGP peer tests");
    // The router expects AS 64999: it refuses the node's OPEN.
    let router_ns = Netns::new("frr");
    let node = node_and(&router_ns);
    let router = frr(router_ns, 64999);
    node.announce(order("tor", settings(ROUTER_V4, 64513), &["192.0.2.225/32"], &RouteAttributes::default()));
    let why = wait_for("the OPEN to be refused", || match node.status("tor")?.last_down {
        Some(Down::NotificationReceived(n)) => Some(n),
        _ => None,
    });
    assert_eq!((why.code, why.subcode), (2, 2), "OPEN message error, bad peer AS: {why}");
    assert!(router.kernel_route("192.0.2.225/32").is_empty());
    // Nobody at this address: the status says the peer does not answer, and the session keeps retrying.
    node.announce(order("nobody", settings("198.51.100.99", 64513), &[], &RouteAttributes::default()));
    let status = wait_for("the connection to fail", || {
        node.status("nobody").filter(|s| s.last_down == Some(Down::ConnectFailed))
    });
    assert_ne!(status.state, State::Established);
    assert_eq!(status.last_down.unwrap().to_string(), "the peer does not answer (TCP connection failed)");
}

#[test]
fn bird_accepts_the_same_routes() {
    require_root("the BGP peer tests");
    let router_ns = Netns::new("bird");
    let node = node_and(&router_ns);
    let router = bird(router_ns);
    node.announce(order("bird", settings(ROUTER_V4, 64513), &["192.0.2.225/32", "2001:db8:300::1/128"], &tagged()));
    node.wait_state("bird", State::Established);
    let routes = wait_for("BIRD to learn both routes", || {
        let all = router.birdc("show route all");
        (all.contains("192.0.2.225/32") && all.contains("2001:db8:300::1/128")).then_some(all)
    });
    assert!(routes.contains(NODE_V4) && routes.contains(NODE_V6), "next hops: {routes}");
    assert!(routes.contains("(65000,100)") && routes.contains("(64512, 1, 2)"), "communities: {routes}");
    node.announce(order("bird", settings(ROUTER_V4, 64513), &[], &RouteAttributes::default()));
    wait_for("BIRD to drop the routes", || (!router.birdc("show route").contains("192.0.2.225")).then_some(()));
    let protocol = router.birdc("show protocols all node1");
    assert!(protocol.contains("Established"), "the session survived the withdrawals: {protocol}");
}

fn signed(key: &str) -> SessionSettings {
    SessionSettings { md5: Some(Md5Key::new(key.as_bytes()).unwrap()), ..settings(ROUTER_V4, 64513) }
}

#[test]
fn frr_with_a_password_takes_the_right_key_never_a_wrong_one_and_follows_a_new_one() {
    require_root("the BGP peer tests");
    let router_ns = Netns::new("frr");
    let node = node_and(&router_ns);
    let router = frr_with_password(router_ns, 64512, "ferrolb-md5-one");
    let route = |key: &str| order("tor", signed(key), &["192.0.2.225/32"], &RouteAttributes::default());
    let neighbor = |r: &Router| r.vtysh(&format!("show bgp neighbors {NODE_V4} json"))[NODE_V4].clone();

    // The right key: the session comes up and the route reaches the router's kernel.
    node.announce(route("ferrolb-md5-one"));
    node.wait_state("tor", State::Established);
    wait_for("the route in the router's kernel", || {
        router.kernel_route("192.0.2.225/32").contains(NODE_V4).then_some(())
    });
    assert_eq!(neighbor(&router)["bgpState"], "Established");

    // The key rotates on both sides (the router first, as an operator would): the node's session restarts with
    // the new key and comes back.
    router.configure_bgp(&[&format!("neighbor {NODE_V4} password ferrolb-md5-two")]);
    node.announce(route("ferrolb-md5-two"));
    wait_for("the session to come back with the new key", || {
        let n = neighbor(&router);
        (n["bgpState"] == "Established" && n["connectionsEstablished"].as_u64() >= Some(2)).then_some(())
    });
    node.wait_state("tor", State::Established);
    wait_for("the route back in the router's kernel", || {
        router.kernel_route("192.0.2.225/32").contains(NODE_V4).then_some(())
    });

    // A wrong key: the router drops every segment, the session never comes up, the route goes, and the
    // status says the peer does not answer (and that a key may differ).
    node.announce(route("not-the-routers-key"));
    let status = wait_for("the signed connection to time out", || {
        let status = node.status("tor")?;
        assert_ne!(status.state, State::Established, "a wrong key made a session");
        (status.last_down == Some(Down::ConnectFailed)).then_some(status)
    });
    let record = session_status(&status, &[], true);
    let error = record.last_error.unwrap_or_default();
    assert!(error.starts_with("the peer does not answer"), "{error}");
    assert!(error.contains("TCP MD5 key from passwordSecret"), "{error}");
    assert!(router.kernel_route("192.0.2.225/32").is_empty(), "the route stayed without a session");
    assert_ne!(neighbor(&router)["bgpState"], "Established");

    // Without a key at all the router drops the segments just the same.
    node.announce(order("tor", settings(ROUTER_V4, 64513), &["192.0.2.225/32"], &RouteAttributes::default()));
    wait_for("the unsigned connection to time out", || {
        let status = node.status("tor")?;
        assert_ne!(status.state, State::Established, "an unsigned session was accepted");
        (status.last_down == Some(Down::ConnectFailed)).then_some(())
    });

    // The right key again: back up.
    node.announce(route("ferrolb-md5-two"));
    node.wait_state("tor", State::Established);
    node.shutdown();
}
