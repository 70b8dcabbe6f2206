use std::collections::BTreeMap;

use ferrolb_api::k8s::{ObjectMeta, Service, ServicePort, ServiceSpec};
use ferrolb_ipam::{AllocError, Family, FamilyPolicy, PoolName};

use super::*;
use crate::config::IpMode;

fn config(handle_unclassed: bool) -> Config {
    Config {
        load_balancer_class: "ferrolb.io/lb".into(),
        handle_unclassed,
        ip_mode: IpMode::Vip,
        lease_namespace: "x".into(),
        lease_name: "x".into(),
        identity: "x".into(),
        lease_duration: std::time::Duration::from_secs(15),
    }
}

fn service(annotations: &[(&str, &str)], spec: ServiceSpec) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("shop".into()),
            annotations: Some(annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            ports: Some(vec![ServicePort { port: 80, protocol: Some("TCP".into()), ..Default::default() }]),
            ..spec
        }),
        status: None,
    }
}

#[test]
fn class_filtering() {
    let plain = service(&[], ServiceSpec::default());
    assert!(is_handled(&plain, &config(true)));
    assert!(!is_handled(&plain, &config(false)));
    let ours = service(&[], ServiceSpec { load_balancer_class: Some("ferrolb.io/lb".into()), ..Default::default() });
    assert!(is_handled(&ours, &config(false)));
    let other = service(&[], ServiceSpec { load_balancer_class: Some("other/lb".into()), ..Default::default() });
    assert!(!is_handled(&other, &config(true)));
    let cluster_ip =
        Service { spec: Some(ServiceSpec { type_: Some("ClusterIP".into()), ..Default::default() }), ..plain.clone() };
    assert!(!is_handled(&cluster_ip, &config(true)));
}

#[test]
fn annotations_and_metallb_equivalents() {
    let labels = BTreeMap::new();
    let ours = service(
        &[("ferrolb.io/address-pool", "gold"), ("ferrolb.io/loadBalancerIPs", "198.51.100.7, 2001:db8::7")],
        ServiceSpec {
            ip_families: Some(vec!["IPv4".into(), "IPv6".into()]),
            ip_family_policy: Some("RequireDualStack".into()),
            ..Default::default()
        },
    );
    let request = request_from_service(&ours, &labels).unwrap();
    assert_eq!(request.pool, Some(PoolName::new("gold")));
    assert_eq!(request.ips.len(), 2);
    assert_eq!(request.families, FamilyPolicy::RequireDual([Family::V4, Family::V6]));

    let metallb = service(
        &[("metallb.universe.tf/allow-shared-ip", "k"), ("metallb.io/address-pool", "silver")],
        ServiceSpec { load_balancer_ip: Some("198.51.100.9".into()), ..Default::default() },
    );
    let request = request_from_service(&metallb, &labels).unwrap();
    assert_eq!(request.pool, Some(PoolName::new("silver")));
    assert_eq!(request.sharing.unwrap().0, "k");
    assert_eq!(request.ips, vec!["198.51.100.9".parse::<std::net::IpAddr>().unwrap()]);

    let bad = service(&[("ferrolb.io/loadBalancerIPs", "198.51.100.300")], ServiceSpec::default());
    let err = request_from_service(&bad, &labels).unwrap_err();
    assert!(matches!(err, AllocError::InvalidRequest { .. }));
    assert!(err.to_string().contains("198.51.100.300"), "{err}");
}

#[test]
fn local_traffic_policy_carries_the_selector() {
    let svc = service(
        &[],
        ServiceSpec {
            external_traffic_policy: Some("Local".into()),
            selector: Some([("app".to_string(), "web".to_string())].into()),
            ..Default::default()
        },
    );
    let request = request_from_service(&svc, &BTreeMap::new()).unwrap();
    assert_eq!(request.local_selector.unwrap().get("app").unwrap(), "web");
}
