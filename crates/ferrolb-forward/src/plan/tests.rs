use super::*;

fn protocol(name: &str) -> Option<Protocol> {
    Protocol::from_kubernetes(Some(name))
}

fn service(name: &str, ips: &[&str], ports: &[(&str, &str, u16)], local: bool) -> Service {
    Service {
        key: format!("default/{name}"),
        ingress: ips.iter().map(|ip| ip.parse().unwrap()).collect(),
        ports: ports
            .iter()
            .map(|(n, proto, port)| ServicePort { name: (*n).into(), protocol: protocol(proto), port: *port })
            .collect(),
        local,
        proxy_protocol: false,
        source_ranges: Vec::new(),
        restricted: false,
    }
}

/// An endpoint: address, node, ready, serving-while-terminating.
type Ep<'a> = (&'a str, &'a str, bool, bool);

fn slice(service: &str, family: Family, ports: &[(&str, &str, u16)], endpoints: &[Ep<'_>]) -> Slice {
    Slice {
        service: format!("default/{service}"),
        family,
        ports: ports
            .iter()
            .map(|(n, proto, port)| SlicePort { name: (*n).into(), protocol: protocol(proto), port: *port })
            .collect(),
        endpoints: endpoints
            .iter()
            .map(|(address, node, ready, draining)| Endpoint {
                address: address.parse().unwrap(),
                node: Some((*node).into()),
                ready: *ready,
                serving_while_terminating: *draining,
            })
            .collect(),
    }
}

static NONE_DEPARTED: BTreeSet<String> = BTreeSet::new();

/// Node `me`, with every node still in the membership.
fn on(me: &'static str) -> Nodes<'static> {
    Nodes { me, departed: &NONE_DEPARTED }
}

fn owned(ips: &[&str]) -> BTreeSet<IpAddr> {
    ips.iter().map(|s| s.parse().unwrap()).collect()
}

fn at(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn cluster_policy_forwards_every_ready_endpoint_of_the_matching_port() {
    let svc = service("web", &["203.0.113.10"], &[("http", "TCP", 80), ("dns", "UDP", 53)], false);
    let s = slice(
        "web",
        Family::V4,
        &[("http", "TCP", 8080), ("dns", "UDP", 8053)],
        &[("192.0.2.5", "node-1", true, false), ("192.0.2.70", "node-2", true, false)],
    );
    let forwards = plan(&on("node-1"), &owned(&["203.0.113.10"]), &[svc], &[s]);
    assert_eq!(forwards.len(), 2);
    let tcp = forwards.iter().find(|f| f.frontend.protocol == Protocol::Tcp).unwrap();
    assert_eq!(tcp.frontend.port, 80);
    assert!(!tcp.local);
    assert_eq!(tcp.endpoints, vec![at("192.0.2.5:8080"), at("192.0.2.70:8080")]);
    let udp = forwards.iter().find(|f| f.frontend.protocol == Protocol::Udp).unwrap();
    assert_eq!(udp.endpoints, vec![at("192.0.2.5:8053"), at("192.0.2.70:8053")]);
    assert_eq!(udp.service, "default/web");
}

#[test]
fn local_policy_keeps_only_this_node_s_endpoints() {
    let svc = service("web", &["203.0.113.10"], &[("http", "TCP", 80)], true);
    let s = slice(
        "web",
        Family::V4,
        &[("http", "TCP", 8080)],
        &[("192.0.2.5", "node-1", true, false), ("192.0.2.70", "node-2", true, false)],
    );
    let forwards = plan(&on("node-2"), &owned(&["203.0.113.10"]), std::slice::from_ref(&svc), std::slice::from_ref(&s));
    assert!(forwards[0].local);
    assert_eq!(forwards[0].endpoints, vec![at("192.0.2.70:8080")]);
    let forwards = plan(&on("node-3"), &owned(&["203.0.113.10"]), &[svc], &[s]);
    assert!(forwards[0].endpoints.is_empty(), "no local endpoint: refuse rather than send elsewhere");
}

#[test]
fn only_owned_ips_and_the_ip_s_own_family_are_forwarded() {
    let svc = service("web", &["203.0.113.10", "2001:db8:300::10"], &[("http", "TCP", 80)], false);
    let v4 = slice("web", Family::V4, &[("http", "TCP", 8080)], &[("192.0.2.5", "node-1", true, false)]);
    let v6 = slice("web", Family::V6, &[("http", "TCP", 8080)], &[("2001:db8:200:1::5", "node-1", true, false)]);
    let forwards =
        plan(&on("node-1"), &owned(&["2001:db8:300::10"]), std::slice::from_ref(&svc), &[v4.clone(), v6.clone()]);
    assert_eq!(forwards.len(), 1);
    assert_eq!(forwards[0].endpoints, vec![at("[2001:db8:200:1::5]:8080")]);
    assert!(plan(&on("node-1"), &owned(&[]), &[svc], &[v4, v6]).is_empty());
}

#[test]
fn terminating_endpoints_serve_only_when_none_is_ready() {
    let svc = service("web", &["203.0.113.10"], &[("http", "TCP", 80)], false);
    let draining = slice(
        "web",
        Family::V4,
        &[("http", "TCP", 8080)],
        &[("192.0.2.5", "node-1", false, true), ("192.0.2.6", "node-1", false, false)],
    );
    let forwards =
        plan(&on("node-1"), &owned(&["203.0.113.10"]), std::slice::from_ref(&svc), std::slice::from_ref(&draining));
    assert_eq!(forwards[0].endpoints, vec![at("192.0.2.5:8080")]);
    let with_ready = slice("web", Family::V4, &[("http", "TCP", 8080)], &[("192.0.2.7", "node-2", true, false)]);
    let forwards = plan(&on("node-1"), &owned(&["203.0.113.10"]), &[svc], &[draining, with_ready]);
    assert_eq!(forwards[0].endpoints, vec![at("192.0.2.7:8080")]);
}

#[test]
fn shared_ips_forward_each_service_s_ports_to_its_own_endpoints() {
    let a = service("a", &["203.0.113.10"], &[("http", "TCP", 80)], false);
    let b = service("b", &["203.0.113.10"], &[("dns", "UDP", 53)], false);
    let sa = slice("a", Family::V4, &[("http", "TCP", 8080)], &[("192.0.2.5", "node-1", true, false)]);
    let sb = slice("b", Family::V4, &[("dns", "UDP", 8053)], &[("192.0.2.6", "node-1", true, false)]);
    let forwards = plan(&on("node-1"), &owned(&["203.0.113.10"]), &[b, a], &[sa, sb]);
    let summary: Vec<(&str, u16, Vec<SocketAddr>)> =
        forwards.iter().map(|f| (f.service.as_str(), f.frontend.port, f.endpoints.clone())).collect();
    assert_eq!(
        summary,
        vec![("default/a", 80, vec![at("192.0.2.5:8080")]), ("default/b", 53, vec![at("192.0.2.6:8053")])]
    );
}

#[test]
fn sctp_ports_and_ports_missing_from_the_slice_are_handled() {
    let svc = service("web", &["203.0.113.10"], &[("s", "SCTP", 9), ("http", "TCP", 80)], false);
    let s = slice("web", Family::V4, &[("other", "TCP", 8080)], &[("192.0.2.5", "node-1", true, false)]);
    let forwards = plan(&on("node-1"), &owned(&["203.0.113.10"]), &[svc], &[s]);
    assert_eq!(forwards.len(), 1, "SCTP is not forwarded");
    assert!(forwards[0].endpoints.is_empty(), "a port the slice does not list has no endpoint");
}

#[test]
fn the_proxy_protocol_annotation_marks_every_port_of_its_service() {
    let svc = Service { proxy_protocol: true, ..service("web", &["203.0.113.10"], &[("http", "TCP", 80)], false) };
    let plain = service("other", &["203.0.113.11"], &[("http", "TCP", 80)], false);
    let forwards = plan(&on("node-1"), &owned(&["203.0.113.10", "203.0.113.11"]), &[svc, plain], &[]);
    let marked: Vec<bool> = forwards.iter().map(|f| f.proxy_protocol).collect();
    assert_eq!(marked, [true, false]);
}

#[test]
fn source_ranges_are_kept_per_family_and_a_restriction_without_this_family_s_ranges_still_restricts() {
    let svc = Service {
        source_ranges: vec!["198.51.100.0/24".parse().unwrap(), "192.0.2.0/26".parse().unwrap()],
        restricted: true,
        ..service("web", &["203.0.113.10", "2001:db8:300::10"], &[("http", "TCP", 80)], false)
    };
    let forwards = plan(&on("node-1"), &owned(&["203.0.113.10", "2001:db8:300::10"]), &[svc], &[]);
    let v4 = forwards.iter().find(|f| f.frontend.ip.is_ipv4()).unwrap();
    let v6 = forwards.iter().find(|f| f.frontend.ip.is_ipv6()).unwrap();
    assert!(v4.restricted && v6.restricted);
    let ranges: Vec<String> = v4.source_ranges.iter().map(ToString::to_string).collect();
    assert_eq!(ranges, ["198.51.100.0/24", "192.0.2.0/26"]);
    assert!(v6.source_ranges.is_empty(), "no IPv6 range: no IPv6 client may connect");
}

#[test]
fn endpoints_on_departed_nodes_are_skipped_while_others_remain() {
    let svc = service("web", &["203.0.113.10"], &[("http", "TCP", 80)], false);
    let s = slice(
        "web",
        Family::V4,
        &[("http", "TCP", 8080)],
        &[
            ("192.0.2.5", "node-1", true, false),
            ("192.0.2.70", "node-2", true, false),
            ("192.0.2.130", "node-3", false, true),
        ],
    );
    let departed: BTreeSet<String> = ["node-2".to_owned()].into();
    let nodes = Nodes { me: "node-1", departed: &departed };
    let forwards = plan(&nodes, &owned(&["203.0.113.10"]), std::slice::from_ref(&svc), std::slice::from_ref(&s));
    assert_eq!(forwards[0].endpoints, [at("192.0.2.5:8080")], "node-2 left the membership");

    // Only a terminating pod on a live node besides the departed node's: the live one serves.
    let departed: BTreeSet<String> = ["node-1".to_owned(), "node-2".to_owned()].into();
    let nodes = Nodes { me: "node-3", departed: &departed };
    let forwards = plan(&nodes, &owned(&["203.0.113.10"]), std::slice::from_ref(&svc), std::slice::from_ref(&s));
    assert_eq!(forwards[0].endpoints, [at("192.0.2.130:8080")]);

    // Every candidate on departed nodes: kept (a restarting speaker must not take its pods out of service).
    let departed: BTreeSet<String> = ["node-1", "node-2", "node-3"].map(str::to_owned).into();
    let nodes = Nodes { me: "node-3", departed: &departed };
    let forwards = plan(&nodes, &owned(&["203.0.113.10"]), &[svc], &[s]);
    assert_eq!(forwards[0].endpoints, [at("192.0.2.5:8080"), at("192.0.2.70:8080")], "ready ones first");
}
