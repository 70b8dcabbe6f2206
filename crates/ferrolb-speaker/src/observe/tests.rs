//! The conversions at the watch edge: what each Kubernetes field becomes in the plain inputs.

use ferrolb_api::ALLOCATED_FROM_POOL;
use ferrolb_api::k8s::Endpoint as K8sEndpoint;
use ferrolb_api::k8s::{
    EndpointConditions, EndpointPort, LoadBalancerIngress, LoadBalancerStatus, ObjectMeta, ServicePort, ServiceSpec,
    ServiceStatus,
};

use super::*;

fn service(name: &str, ips: &[&str]) -> Arc<Service> {
    Arc::new(Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            annotations: Some(
                [(ALLOCATED_FROM_POOL.to_owned(), "v4,v6".to_owned()), (PROXY_PROTOCOL.to_owned(), " V2 ".to_owned())]
                    .into(),
            ),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            external_traffic_policy: Some("Local".into()),
            load_balancer_source_ranges: Some(vec!["198.51.100.0/24".into(), "not-a-range".into()]),
            ports: Some(vec![
                ServicePort { name: Some("http".into()), port: 80, node_port: Some(30080), ..Default::default() },
                ServicePort { name: Some("s".into()), protocol: Some("SCTP".into()), port: 9, ..Default::default() },
                ServicePort { name: Some("big".into()), port: 70000, ..Default::default() },
            ]),
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

fn endpoint(address: &str, node: &str, ready: Option<bool>) -> K8sEndpoint {
    K8sEndpoint {
        addresses: vec![address.into()],
        node_name: Some(node.into()),
        conditions: Some(EndpointConditions { ready, serving: Some(true), terminating: ready.map(|r| !r) }),
        ..Default::default()
    }
}

fn slice(service: &str, family: &str, endpoints: Vec<K8sEndpoint>) -> Arc<EndpointSlice> {
    Arc::new(EndpointSlice {
        metadata: ObjectMeta {
            name: Some(format!("{service}-x")),
            namespace: Some("default".into()),
            labels: Some([(ferrolb_api::SERVICE_NAME_LABEL.to_owned(), service.to_owned())].into()),
            ..Default::default()
        },
        address_type: family.into(),
        ports: Some(vec![EndpointPort { name: Some("http".into()), port: Some(8080), ..Default::default() }]),
        endpoints: Some(endpoints),
    })
}

#[test]
fn external_ips_carry_their_pool_in_address_order_and_every_sharing_service() {
    let a = service("a", &["203.0.113.10", "2001:db8:300::10"]);
    let b = service("b", &["203.0.113.10"]);
    let ips = external_ips(&[&a, &b]);
    let summary: Vec<(String, &str, Vec<&str>)> = ips
        .iter()
        .map(|e| (e.ip.to_string(), e.pool.as_str(), e.services.iter().map(String::as_str).collect()))
        .collect();
    assert_eq!(
        summary,
        [
            ("203.0.113.10".to_owned(), "v4", vec!["default/a", "default/b"]),
            ("2001:db8:300::10".to_owned(), "v6", vec!["default/a"])
        ]
    );
}

#[test]
fn endpoints_are_ready_by_node_with_unknown_readiness_counting_as_ready() {
    let web = service("web", &["203.0.113.10"]);
    let slices = [
        slice("web", "IPv4", vec![endpoint("192.0.2.5", "node-1", None), endpoint("192.0.2.6", "node-2", Some(false))]),
        slice("other", "IPv4", vec![endpoint("192.0.2.7", "node-3", Some(true))]),
    ];
    let observed = observed_endpoints(&[&web], &slices);
    let web = &observed["default/web"];
    assert!(web.local && web.any_ready);
    assert_eq!(web.ready_nodes.iter().map(String::as_str).collect::<Vec<_>>(), ["node-1"]);
    assert!(!observed.contains_key("default/other"), "only handled Services");
}

#[test]
fn a_service_becomes_forward_mode_s_plain_input() {
    let svc = forward_service(&service("web", &["203.0.113.10"])).unwrap();
    assert_eq!(svc.key, "default/web");
    assert!(svc.local && svc.proxy_protocol && svc.restricted);
    assert_eq!(svc.source_ranges, ["198.51.100.0/24".parse::<IpNet>().unwrap()], "an unparseable range is dropped");
    let ports: Vec<(&str, Option<Protocol>, u16)> =
        svc.ports.iter().map(|p| (p.name.as_str(), p.protocol, p.port)).collect();
    assert_eq!(ports, [("http", Some(Protocol::Tcp), 80), ("s", None, 9)], "70000 is no port");
}

#[test]
fn a_slice_becomes_forward_mode_s_plain_input_and_fqdn_slices_are_left_out() {
    let s = forward_slice(&slice("web", "IPv6", vec![endpoint("2001:db8:200:1::5", "node-1", Some(false))])).unwrap();
    assert_eq!((s.service.as_str(), s.family), ("default/web", plan::Family::V6));
    assert_eq!(s.ports, [plan::SlicePort { name: "http".into(), protocol: Some(Protocol::Tcp), port: 8080 }]);
    assert_eq!(
        s.endpoints,
        [plan::Endpoint {
            address: "2001:db8:200:1::5".parse().unwrap(),
            node: Some("node-1".into()),
            ready: false,
            serving_while_terminating: true,
        }]
    );
    assert_eq!(forward_slice(&slice("web", "FQDN", vec![])), None);
    let mut orphan = (*slice("web", "IPv4", vec![])).clone();
    orphan.metadata.labels = None;
    assert_eq!(forward_slice(&orphan), None);
}
