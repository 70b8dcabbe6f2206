//! How every component reads a Service: its key, its external IPs, its traffic policy and the pools the
//! controller recorded. One definition each, so the controller, the speaker and `ferrolb status` never
//! disagree on what a Service says.

use std::net::IpAddr;

use crate::ALLOCATED_FROM_POOL;
use crate::k8s::{LoadBalancerIngress, ResourceExt, Service};

/// `namespace/name`: how Services are named in placement, records, Events and `ferrolb status`.
pub fn service_key(service: &Service) -> String {
    namespaced_key(&service.namespace().unwrap_or_default(), &service.name_any())
}

/// The key of the object `name` in `namespace`, spelled as [`service_key`] spells it.
pub fn namespaced_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

fn ingress(service: &Service) -> &[LoadBalancerIngress] {
    service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_deref())
        .unwrap_or_default()
}

/// The addresses in `status.loadBalancer.ingress`, in order; hostnames and unparseable entries are skipped.
pub fn ingress_ips(service: &Service) -> Vec<IpAddr> {
    ingress(service).iter().filter_map(|i| i.ip.as_deref()?.parse().ok()).collect()
}

/// The `ipMode` of every ingress entry, in order (to notice a mode change).
pub fn ingress_ip_modes(service: &Service) -> Vec<Option<&str>> {
    ingress(service).iter().map(|i| i.ip_mode.as_deref()).collect()
}

/// `externalTrafficPolicy: Local`: only nodes with a ready local endpoint may take the traffic.
pub fn local_traffic_policy(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.external_traffic_policy.as_deref()) == Some("Local")
}

/// The pools the controller recorded in [`ALLOCATED_FROM_POOL`], one per ingress address in order.
pub fn recorded_pools(service: &Service) -> Option<Vec<&str>> {
    service.annotations().get(ALLOCATED_FROM_POOL).map(|value| split_pools(value))
}

/// The value of [`ALLOCATED_FROM_POOL`] for addresses taken from `pools`, in address order.
pub fn join_pools<'a>(pools: impl IntoIterator<Item = &'a str>) -> String {
    pools.into_iter().collect::<Vec<_>>().join(",")
}

/// The pools in a value of [`ALLOCATED_FROM_POOL`], in address order.
pub fn split_pools(value: &str) -> Vec<&str> {
    value.split(',').map(str::trim).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::{LoadBalancerStatus, ObjectMeta, ServiceSpec, ServiceStatus};

    fn service(ingress: &[(&str, Option<&str>)], policy: Option<&str>, pools: Option<&str>) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("shop".into()),
                annotations: pools.map(|p| [(ALLOCATED_FROM_POOL.to_owned(), p.to_owned())].into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec { external_traffic_policy: policy.map(Into::into), ..Default::default() }),
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(
                        ingress
                            .iter()
                            .map(|(ip, mode)| LoadBalancerIngress {
                                ip: Some((*ip).into()),
                                ip_mode: mode.map(Into::into),
                                ..Default::default()
                            })
                            .collect(),
                    ),
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn reads_key_ingress_policy_and_pools() {
        let svc = service(
            &[("203.0.113.10", Some("VIP")), ("lb.example", None), ("2001:db8::10", Some("Proxy"))],
            Some("Local"),
            Some("v4, v6"),
        );
        assert_eq!(service_key(&svc), "shop/web");
        let ips: Vec<String> = ingress_ips(&svc).iter().map(ToString::to_string).collect();
        assert_eq!(ips, ["203.0.113.10", "2001:db8::10"]);
        assert_eq!(ingress_ip_modes(&svc), [Some("VIP"), None, Some("Proxy")]);
        assert!(local_traffic_policy(&svc));
        assert_eq!(recorded_pools(&svc), Some(vec!["v4", "v6"]));
        let plain = service(&[], Some("Cluster"), None);
        assert!(!local_traffic_policy(&plain) && ingress_ips(&plain).is_empty() && recorded_pools(&plain).is_none());
    }

    #[test]
    fn the_pool_annotation_round_trips() {
        let value = join_pools(["a", "b"]);
        assert_eq!(value, "a,b");
        assert_eq!(split_pools(&value), ["a", "b"]);
        assert_eq!(split_pools("a"), ["a"]);
    }
}
