use super::*;
use ferrolb_api::k8s::k8s_openapi::api::discovery::v1::{EndpointConditions, EndpointPort};
use ferrolb_api::k8s::{LoadBalancerIngress, LoadBalancerStatus, ObjectMeta, ServiceSpec, ServiceStatus};

fn service(name: &str, ips: &[&str], ports: &[(&str, &str, i32, i32)], local: bool) -> Arc<Service> {
    Arc::new(Service {
        metadata: ObjectMeta { name: Some(name.into()), namespace: Some("default".into()), ..Default::default() },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            external_traffic_policy: Some(if local { "Local" } else { "Cluster" }.into()),
            ports: Some(
                ports
                    .iter()
                    .map(|(n, proto, port, node_port)| ServicePort {
                        name: Some((*n).into()),
                        protocol: Some((*proto).into()),
                        port: *port,
                        node_port: Some(*node_port),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        status: Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(
                    ips.iter().map(|ip| LoadBalancerIngress { ip: Some((*ip).into()), ..Default::default() }).collect(),
                ),
            }),
            ..Default::default()
        }),
    })
}

/// An endpoint: address, node, ready, serving, terminating.
type Ep<'a> = (&'a str, &'a str, bool, bool, bool);

fn slice(service: &str, family: &str, ports: &[(&str, &str, i32)], endpoints: &[Ep<'_>]) -> Arc<EndpointSlice> {
    Arc::new(EndpointSlice {
        metadata: ObjectMeta {
            name: Some(format!("{service}-{family}")),
            namespace: Some("default".into()),
            labels: Some([("kubernetes.io/service-name".to_owned(), service.to_owned())].into()),
            ..Default::default()
        },
        address_type: family.into(),
        ports: Some(
            ports
                .iter()
                .map(|(n, proto, port)| EndpointPort {
                    name: Some((*n).into()),
                    protocol: Some((*proto).into()),
                    port: Some(*port),
                    ..Default::default()
                })
                .collect(),
        ),
        endpoints: Some(
            endpoints
                .iter()
                .map(|(address, node, ready, serving, terminating)| Endpoint {
                    addresses: vec![(*address).into()],
                    node_name: Some((*node).into()),
                    conditions: Some(EndpointConditions {
                        ready: Some(*ready),
                        serving: Some(*serving),
                        terminating: Some(*terminating),
                    }),
                    ..Default::default()
                })
                .collect(),
        ),
    })
}

fn owned(ips: &[&str]) -> BTreeSet<IpAddr> {
    ips.iter().map(|s| s.parse().unwrap()).collect()
}

fn at(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn cluster_policy_forwards_every_ready_endpoint_of_the_matching_port() {
    let svc = service("web", &["203.0.113.10"], &[("http", "TCP", 80, 30080), ("dns", "UDP", 53, 30053)], false);
    let s = slice(
        "web",
        "IPv4",
        &[("http", "TCP", 8080), ("dns", "UDP", 8053)],
        &[("192.0.2.5", "node-1", true, true, false), ("192.0.2.70", "node-2", true, true, false)],
    );
    let forwards = plan("node-1", &owned(&["203.0.113.10"]), &[svc], &[s]);
    assert_eq!(forwards.len(), 2);
    let tcp = forwards.iter().find(|f| f.frontend.protocol == Protocol::Tcp).unwrap();
    assert_eq!(tcp.frontend.port, 80);
    assert_eq!(tcp.node_port, Some(30080));
    assert!(!tcp.local);
    assert_eq!(tcp.endpoints, vec![at("192.0.2.5:8080"), at("192.0.2.70:8080")]);
    let udp = forwards.iter().find(|f| f.frontend.protocol == Protocol::Udp).unwrap();
    assert_eq!(udp.endpoints, vec![at("192.0.2.5:8053"), at("192.0.2.70:8053")]);
    assert_eq!(udp.service, "default/web");
}

#[test]
fn local_policy_keeps_only_this_node_s_endpoints() {
    let svc = service("web", &["203.0.113.10"], &[("http", "TCP", 80, 30080)], true);
    let s = slice(
        "web",
        "IPv4",
        &[("http", "TCP", 8080)],
        &[("192.0.2.5", "node-1", true, true, false), ("192.0.2.70", "node-2", true, true, false)],
    );
    let forwards = plan("node-2", &owned(&["203.0.113.10"]), std::slice::from_ref(&svc), std::slice::from_ref(&s));
    assert!(forwards[0].local);
    assert_eq!(forwards[0].endpoints, vec![at("192.0.2.70:8080")]);
    let forwards = plan("node-3", &owned(&["203.0.113.10"]), &[svc], &[s]);
    assert!(forwards[0].endpoints.is_empty(), "no local endpoint: refuse rather than send elsewhere");
}

#[test]
fn only_owned_ips_and_the_ip_s_own_family_are_forwarded() {
    let svc = service("web", &["203.0.113.10", "2001:db8:300::10"], &[("http", "TCP", 80, 30080)], false);
    let v4 = slice("web", "IPv4", &[("http", "TCP", 8080)], &[("192.0.2.5", "node-1", true, true, false)]);
    let v6 = slice("web", "IPv6", &[("http", "TCP", 8080)], &[("2001:db8:200:1::5", "node-1", true, true, false)]);
    let forwards = plan("node-1", &owned(&["2001:db8:300::10"]), std::slice::from_ref(&svc), &[v4.clone(), v6.clone()]);
    assert_eq!(forwards.len(), 1);
    assert_eq!(forwards[0].endpoints, vec![at("[2001:db8:200:1::5]:8080")]);
    assert!(plan("node-1", &owned(&[]), &[svc], &[v4, v6]).is_empty());
}

#[test]
fn terminating_endpoints_serve_only_when_none_is_ready() {
    let svc = service("web", &["203.0.113.10"], &[("http", "TCP", 80, 30080)], false);
    let draining = slice(
        "web",
        "IPv4",
        &[("http", "TCP", 8080)],
        &[("192.0.2.5", "node-1", false, true, true), ("192.0.2.6", "node-1", false, false, true)],
    );
    let forwards =
        plan("node-1", &owned(&["203.0.113.10"]), std::slice::from_ref(&svc), std::slice::from_ref(&draining));
    assert_eq!(forwards[0].endpoints, vec![at("192.0.2.5:8080")]);
    let with_ready = slice("web", "IPv4", &[("http", "TCP", 8080)], &[("192.0.2.7", "node-2", true, true, false)]);
    let forwards = plan("node-1", &owned(&["203.0.113.10"]), &[svc], &[draining, with_ready]);
    assert_eq!(forwards[0].endpoints, vec![at("192.0.2.7:8080")]);
}

#[test]
fn shared_ips_forward_each_service_s_ports_to_its_own_endpoints() {
    let a = service("a", &["203.0.113.10"], &[("http", "TCP", 80, 30080)], false);
    let b = service("b", &["203.0.113.10"], &[("dns", "UDP", 53, 30053)], false);
    let sa = slice("a", "IPv4", &[("http", "TCP", 8080)], &[("192.0.2.5", "node-1", true, true, false)]);
    let sb = slice("b", "IPv4", &[("dns", "UDP", 8053)], &[("192.0.2.6", "node-1", true, true, false)]);
    let forwards = plan("node-1", &owned(&["203.0.113.10"]), &[b, a], &[sa, sb]);
    let summary: Vec<(&str, u16, Vec<SocketAddr>)> =
        forwards.iter().map(|f| (f.service.as_str(), f.frontend.port, f.endpoints.clone())).collect();
    assert_eq!(
        summary,
        vec![("default/a", 80, vec![at("192.0.2.5:8080")]), ("default/b", 53, vec![at("192.0.2.6:8053")])]
    );
}

#[test]
fn sctp_ports_and_ports_missing_from_the_slice_are_handled() {
    let svc = service("web", &["203.0.113.10"], &[("s", "SCTP", 9, 30009), ("http", "TCP", 80, 30080)], false);
    let s = slice("web", "IPv4", &[("other", "TCP", 8080)], &[("192.0.2.5", "node-1", true, true, false)]);
    let forwards = plan("node-1", &owned(&["203.0.113.10"]), &[svc], &[s]);
    assert_eq!(forwards.len(), 1, "SCTP is not forwarded");
    assert!(forwards[0].endpoints.is_empty(), "a port the slice does not list has no endpoint");
}

#[test]
fn the_proxy_protocol_annotation_marks_every_port_of_its_service() {
    let mut svc = (*service("web", &["203.0.113.10"], &[("http", "TCP", 80, 30080)], false)).clone();
    svc.metadata.annotations = Some([(PROXY_PROTOCOL.to_owned(), "v2".to_owned())].into());
    let plain = service("other", &["203.0.113.11"], &[("http", "TCP", 80, 30081)], false);
    let forwards = plan("node-1", &owned(&["203.0.113.10", "203.0.113.11"]), &[Arc::new(svc), plain], &[]);
    let marked: Vec<bool> = forwards.iter().map(|f| f.proxy_protocol).collect();
    assert_eq!(marked, [true, false]);
}

#[test]
fn source_ranges_are_kept_per_family_and_a_restriction_without_this_family_s_ranges_still_restricts() {
    let mut svc =
        (*service("web", &["203.0.113.10", "2001:db8:300::10"], &[("http", "TCP", 80, 30080)], false)).clone();
    if let Some(spec) = svc.spec.as_mut() {
        spec.load_balancer_source_ranges = Some(vec!["198.51.100.0/24".into(), "192.0.2.0/26".into()]);
    }
    let forwards = plan("node-1", &owned(&["203.0.113.10", "2001:db8:300::10"]), &[Arc::new(svc)], &[]);
    let v4 = forwards.iter().find(|f| f.frontend.ip.is_ipv4()).unwrap();
    let v6 = forwards.iter().find(|f| f.frontend.ip.is_ipv6()).unwrap();
    assert!(v4.restricted && v6.restricted);
    let ranges: Vec<String> = v4.source_ranges.iter().map(ToString::to_string).collect();
    assert_eq!(ranges, ["198.51.100.0/24", "192.0.2.0/26"]);
    assert!(v6.source_ranges.is_empty(), "no IPv6 range: no IPv6 client may connect");
}
