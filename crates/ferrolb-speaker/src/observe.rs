//! Turns the watched Kubernetes objects into the plain inputs of placement ([`crate::desired`]) and of the
//! endpoint tracker: which external IPs exist, which nodes and advertisements there are, where endpoints are
//! ready. Kept apart from the loop in [`crate::run`] so the loop reads as decisions, not field access.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use futures::StreamExt;
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::Notify;
use tracing::warn;

use ferrolb_api::k8s::k8s_openapi::api::discovery::v1::EndpointSlice;
use ferrolb_api::k8s::{Node, ResourceExt, Service};
use ferrolb_api::{ALLOCATED_FROM_POOL, L2Advertisement, handles_service, selector_from_k8s};

use crate::desired::{Advertisement, ExternalIp, NodeInfo};
use crate::endpoints::Observed;
use crate::run::SpeakerConfig;

/// A reflector store for `K` and the stream that keeps it filled; every change wakes `notify`. Watch errors
/// are logged and retried with backoff, so the store keeps its last state while the API server is away.
pub(crate) fn watch_into<K>(api: Api<K>, notify: Arc<Notify>) -> (Store<K>, impl futures::Stream<Item = ()>)
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (store, writer) = reflector::store::<K>();
    let stream = reflector::reflector(
        writer,
        watcher(api, watcher::Config::default()).default_backoff().modify(|o: &mut K| o.managed_fields_mut().clear()),
    )
    .map(move |event| {
        if let Err(e) = event {
            warn!(error = %e, "watch error; retrying with backoff");
        }
        notify.notify_one();
    });
    (store, stream)
}

/// `namespace/name`, the key Services are known by in placement and records.
pub(crate) fn service_key(svc: &Service) -> String {
    format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any())
}

/// The Services this speaker handles (loadBalancerClass).
pub(crate) fn handled<'a>(
    services: &'a [Arc<Service>],
    config: &'a SpeakerConfig,
) -> impl Iterator<Item = &'a Arc<Service>> {
    services.iter().filter(|s| handles_service(s, &config.load_balancer_class, config.handle_unclassed))
}

/// Every external IP in Service status, with its pool and the Services sharing it.
pub(crate) fn external_ips(services: &[Arc<Service>], config: &SpeakerConfig) -> Vec<ExternalIp> {
    let mut by_ip: BTreeMap<IpAddr, ExternalIp> = BTreeMap::new();
    for svc in handled(services, config) {
        let pools: Vec<String> = svc
            .annotations()
            .get(ALLOCATED_FROM_POOL)
            .map(|p| p.split(',').map(|s| s.trim().to_owned()).collect())
            .unwrap_or_default();
        let ingress = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|l| l.ingress.as_ref());
        for (i, entry) in ingress.into_iter().flatten().enumerate() {
            let Some(ip) = entry.ip.as_deref().and_then(|s| s.parse::<IpAddr>().ok()) else { continue };
            let pool = pools.get(i).or(pools.first()).cloned().unwrap_or_default();
            by_ip
                .entry(ip)
                .or_insert_with(|| ExternalIp { ip, pool, services: BTreeSet::new() })
                .services
                .insert(service_key(svc));
        }
    }
    by_ip.into_values().collect()
}

/// Per handled Service: its traffic policy and the nodes with a ready endpoint.
pub(crate) fn observed_endpoints(
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
    config: &SpeakerConfig,
) -> BTreeMap<String, Observed> {
    let mut observed: BTreeMap<String, Observed> = handled(services, config)
        .map(|svc| {
            let local = svc.spec.as_ref().and_then(|s| s.external_traffic_policy.as_deref()) == Some("Local");
            (service_key(svc), Observed { local, ..Default::default() })
        })
        .collect();
    for slice in slices {
        let Some(name) = slice.labels().get("kubernetes.io/service-name") else { continue };
        let key = format!("{}/{}", slice.namespace().unwrap_or_default(), name);
        let Some(entry) = observed.get_mut(&key) else { continue };
        // An endpoint whose readiness is unknown counts as ready, as the EndpointSlice API specifies.
        for ep in
            slice.endpoints.iter().flatten().filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        {
            entry.any_ready = true;
            if let Some(node) = &ep.node_name {
                entry.ready_nodes.insert(node.clone());
            }
        }
    }
    observed
}

/// What placement needs of a Node.
pub(crate) fn node_info(node: &Node) -> NodeInfo {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_ref());
    let is_true = |kind: &str| conditions.into_iter().flatten().any(|c| c.type_ == kind && c.status == "True");
    NodeInfo {
        name: node.name_any(),
        labels: node.labels().clone().into_iter().collect(),
        network_unavailable: is_true("NetworkUnavailable"),
        unschedulable: node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false),
    }
}

/// Every InternalIP of `node` (both families on a dual-stack node).
pub(crate) fn internal_addresses(node: &Node) -> Vec<IpAddr> {
    let addresses = node.status.as_ref().and_then(|s| s.addresses.as_ref());
    addresses.into_iter().flatten().filter(|a| a.type_ == "InternalIP").filter_map(|a| a.address.parse().ok()).collect()
}

/// A node's first InternalIP: where its speaker listens for membership datagrams.
pub(crate) fn node_address(node: &Node) -> Option<IpAddr> {
    internal_addresses(node).into_iter().next()
}

/// An L2Advertisement as placement reads it; `None` (and a warning) when a selector is invalid.
pub(crate) fn advertisement(ad: &L2Advertisement) -> Option<Advertisement> {
    let convert =
        |list: &[ferrolb_api::k8s::LabelSelector]| list.iter().map(selector_from_k8s).collect::<Result<Vec<_>, _>>();
    match (convert(&ad.spec.ip_address_pool_selectors), convert(&ad.spec.node_selectors)) {
        (Ok(pool_selectors), Ok(node_selectors)) => Some(Advertisement {
            pools: ad.spec.ip_address_pools.iter().cloned().collect(),
            pool_selectors,
            node_selectors,
            interfaces: ad.spec.interfaces.clone(),
        }),
        (Err(e), _) | (_, Err(e)) => {
            warn!(l2advertisement = %ad.name_any(), error = %e, "ignoring an L2Advertisement with an invalid selector");
            None
        }
    }
}
