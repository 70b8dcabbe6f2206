use super::*;

#[test]
fn renders_usage_owners_and_problems() {
    let report = Report {
        pools: vec![PoolRow {
            name: "demo".into(),
            addresses: vec!["198.51.100.192/27".into()],
            assigned: "8".into(),
            available: "24".into(),
        }],
        services: vec![
            ServiceRow {
                service: "default/web".into(),
                ips: vec![("198.51.100.192".into(), Some("node-2".into())), ("2001:db8::5".into(), None)],
                pending: None,
            },
            ServiceRow { service: "default/big".into(), ips: vec![], pending: Some("pool demo is full".into()) },
        ],
        sessions: vec![],
        problems: vec!["default/big is pending: pool demo is full".into()],
    };
    let text = render(&report);
    assert!(text.contains("demo  198.51.100.192/27  8         24         [#####---------------]  25%"), "{text}");
    assert!(text.contains("default/web  198.51.100.192  node-2"), "{text}");
    assert!(text.contains("             2001:db8::5     <not announced>"), "{text}");
    assert!(text.contains("default/big  <pending>       pool demo is full"), "{text}");
    assert!(text.contains("PROBLEMS\n- default/big is pending: pool demo is full"), "{text}");
}

fn node_event(node: &str, reason: &str, minutes_ago: i64, note: &str) -> Event {
    use ferrolb_api::k8s::ObjectReference;
    use ferrolb_api::k8s::k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    let when = now() - jiff::SignedDuration::from_mins(minutes_ago);
    Event {
        reason: Some(reason.into()),
        note: Some(note.into()),
        type_: Some(if reason == REASON_ABSENT { "Warning" } else { "Normal" }.into()),
        event_time: Some(MicroTime(when)),
        regarding: Some(ObjectReference { kind: Some("Node".into()), name: Some(node.into()), ..Default::default() }),
        ..Default::default()
    }
}

/// A cluster with nothing in it but the Events a test adds, read at [`now`].
fn events_only() -> Inputs<'static> {
    Inputs {
        pools: &[],
        services: &[],
        records: &[],
        warnings: &[],
        membership: &[],
        nodes: &[],
        slices: &[],
        bgp_peers: &[],
        bgp_advertisements: &[],
        bgp_sessions: &[],
        conflicts: &[],
        class: "ferrolb.io/l2",
        unclassed: true,
        now: now(),
    }
}

fn now() -> jiff::Timestamp {
    "2026-03-01T10:30:00Z".parse().expect("a timestamp")
}

#[test]
fn lists_nodes_whose_newest_membership_event_is_a_fresh_warning() {
    let absent = "speaker not in the membership seen by node-1 (2 of 3 expected speakers present): not running, \
                  UDP 7947 blocked, or another membership key";
    let membership = [
        // Missing now: repeated 2 minutes ago.
        node_event("node-3", REASON_ABSENT, 12, absent),
        node_event("node-3", REASON_ABSENT, 2, absent),
        // Came back.
        node_event("node-2", REASON_ABSENT, 5, absent),
        node_event("node-2", REASON_JOINED, 4, "speaker in the membership seen by node-1 again after 1m"),
        // Reported, then excluded.
        node_event("node-5", REASON_ABSENT, 5, absent),
        node_event("node-5", REASON_NOT_EXPECTED, 1, "speaker no longer expected in the membership: ..."),
        // Not repeated for 20 minutes: nobody is watching any more, or it is long gone.
        node_event("node-4", REASON_ABSENT, 20, absent),
    ];
    let report = report(&Inputs { membership: &membership, ..events_only() });
    assert_eq!(report.problems, vec![format!("node-3: {absent} (reported at 10:28:00 UTC)")]);
    let text = render(&report);
    assert!(
        text.contains(
            "PROBLEMS\n- node-3: speaker not in the membership seen by node-1 (2 of 3 expected speakers present): \
             not running, UDP 7947 blocked, or another membership key (reported at 10:28:00 UTC)\n"
        ),
        "{text}"
    );
}

#[test]
fn usage_bars_handle_huge_and_empty_pools() {
    assert_eq!(usage_bar("0", "0"), "[--------------------]   -");
    let huge = usage_bar("1", &u128::from(u64::MAX).to_string());
    assert!(huge.starts_with("[--------------------]") && huge.ends_with("0%"), "{huge}");
    assert_eq!(usage_bar("x", "1"), "?");
}

/// A BGP lab: two nodes, one peer, an advertisement of pool `bgp`, a Service with one IP of it; node-1's
/// session is up, node-2's is not.
#[test]
fn bgp_sessions_and_advertising_nodes_are_shown() {
    use ferrolb_api::k8s::{LoadBalancerIngress, LoadBalancerStatus, ObjectMeta, ServiceSpec, ServiceStatus};
    use ferrolb_api::{ALLOCATED_FROM_POOL, BGPAdvertisementSpec, BGPPeerSpec, BGPSessionSpec, BGPSessionStatus};
    let node = |name: &str| Node {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        ..Default::default()
    };
    let session = |node: &str, state: &str, error: Option<&str>| BGPSession {
        metadata: ObjectMeta { name: Some(format!("{node}.tor")), ..Default::default() },
        spec: BGPSessionSpec { node: node.into(), peer: "tor".into(), peer_address: "192.0.2.254".into() },
        status: Some(BGPSessionStatus {
            state: state.into(),
            prefixes_advertised: i64::from(state == "Established"),
            last_error: error.map(Into::into),
            ..Default::default()
        }),
    };
    let peer = BGPPeer::new(
        "tor",
        BGPPeerSpec {
            my_asn: 64512,
            peer_asn: 64513,
            peer_address: "192.0.2.254".into(),
            peer_port: 179,
            source_address: None,
            router_id: None,
            hold_time: None,
            keepalive_time: None,
            connect_time: None,
            node_selectors: vec![],
            ebgp_multi_hop: false,
            bfd_profile: None,
            password_secret: None,
        },
    );
    let ad = BGPAdvertisement::new("all", BGPAdvertisementSpec::default());
    let service = Service {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            annotations: Some([(ALLOCATED_FROM_POOL.to_owned(), "bgp".to_owned())].into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec { type_: Some("LoadBalancer".into()), ..Default::default() }),
        status: Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![LoadBalancerIngress { ip: Some("192.0.2.225".into()), ..Default::default() }]),
            }),
            ..Default::default()
        }),
    };
    // Endpoints are ready on both nodes (unknown readiness counts as ready).
    let slice = EndpointSlice {
        metadata: ObjectMeta {
            name: Some("web-1".into()),
            namespace: Some("default".into()),
            labels: Some([(ferrolb_api::SERVICE_NAME_LABEL.to_owned(), "web".to_owned())].into()),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: Some(vec![ferrolb_api::k8s::Endpoint { addresses: vec!["192.0.2.5".into()], ..Default::default() }]),
        ports: None,
    };
    let sessions = [
        session("node-1", "Established", None),
        session("node-2", "Active", Some("the peer does not answer (TCP connection failed)")),
    ];
    let nodes = [node("node-1"), node("node-2")];
    let report = report(&Inputs {
        pools: &[],
        services: std::slice::from_ref(&service),
        records: &[],
        warnings: &[],
        membership: &[],
        nodes: &nodes,
        slices: std::slice::from_ref(&slice),
        bgp_peers: std::slice::from_ref(&peer),
        bgp_advertisements: std::slice::from_ref(&ad),
        bgp_sessions: &sessions,
        conflicts: &[],
        class: ferrolb_api::DEFAULT_LOAD_BALANCER_CLASS,
        unclassed: true,
        now: now(),
    });
    assert_eq!(report.services[0].ips, [("192.0.2.225".to_owned(), Some("bgp: node-1".to_owned()))]);
    assert_eq!(
        report.problems,
        ["BGP session node-2 -> tor (192.0.2.254) is Active: the peer does not answer (TCP connection failed)"]
    );
    let text = render(&report);
    assert!(text.contains("BGP SESSIONS\nNODE    PEER  ADDRESS      STATE        PREFIXES  LAST ERROR\nnode-1  tor   192.0.2.254  Established  1"), "{text}");
}

#[test]
fn a_session_without_its_bfd_or_not_established_is_a_problem() {
    let row = |state: &str, bfd: Option<&str>| bgp::SessionRow {
        node: "node-1".into(),
        peer: "tor".into(),
        address: "192.0.2.254".into(),
        state: state.into(),
        prefixes: 0,
        last_error: None,
        bfd: bfd.map(str::to_owned),
    };
    let problems = bgp::session_problems(&[
        row("Established", None),
        row("Established", Some("Up")),
        row("Established", Some("Down")),
        row("Active", Some("Down")),
    ]);
    assert_eq!(
        problems,
        [
            "BGP session node-1 -> tor (192.0.2.254) is Established but its BFD session is Down: a dead path is noticed only after the hold time",
            "BGP session node-1 -> tor (192.0.2.254) is Active: not established yet",
        ]
    );
}

#[test]
fn lists_recent_membership_split_warnings_once_each() {
    let split = |minutes_ago: i64, note: &str| Event {
        type_: Some("Warning".into()),
        ..node_event("node-1", "MembershipSplit", minutes_ago, note)
    };
    let warnings = [
        split(1, "the speaker membership is split: node-2 announced 198.51.100.192 ..."),
        split(2, "the speaker membership is split: node-2 announced 198.51.100.192 ..."),
        split(3, "the speaker membership is split: node-1 announced 198.51.100.193 ..."),
        split(30, "the speaker membership is split: node-3 announced 198.51.100.194 ..."),
    ];
    let report = report(&Inputs { warnings: &warnings, ..events_only() });
    assert_eq!(
        report.problems,
        [
            "the speaker membership is split: node-2 announced 198.51.100.192 ... (reported at 10:29:00 UTC)",
            "the speaker membership is split: node-1 announced 198.51.100.193 ... (reported at 10:27:00 UTC)",
        ],
        "the newest of each, none older than 10 minutes"
    );
}
