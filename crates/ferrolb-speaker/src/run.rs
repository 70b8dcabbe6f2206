//! The speaker's long-running task: watch Services, Nodes, pools and L2Advertisements; place every external
//! IP; hand this node's share to the [`Announcer`].
//!
//! Fail static: when the API server is unreachable the stores keep their last state, so the speaker keeps
//! announcing what it announced.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use ferrolb_api::k8s::{Node, ResourceExt, Service};
use ferrolb_api::{ALLOCATED_FROM_POOL, IPAddressPool, L2Advertisement, handles_service, selector_from_k8s};

use crate::announcer::{Announcer, InterfacePolicy};
use crate::desired::{Advertisement, ExternalIp, NodeInfo, Placement, place};
use crate::metrics::Metrics;

/// Speaker configuration.
#[derive(Debug, Clone)]
pub struct SpeakerConfig {
    /// This node's name.
    pub node_name: String,
    /// The loadBalancerClass handled.
    pub load_balancer_class: String,
    /// Whether Services without a class are handled.
    pub handle_unclassed: bool,
    /// Interfaces never used.
    pub interfaces: InterfacePolicy,
}

/// Errors of the speaker loop.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A watch could not start.
    #[error("watch failed: {0}")]
    Watch(String),
}

fn watch_into<K>(api: Api<K>, notify: Arc<Notify>) -> (Store<K>, impl futures::Stream<Item = ()>)
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

fn external_ips(services: &[Arc<Service>], config: &SpeakerConfig) -> Vec<ExternalIp> {
    let mut by_ip: BTreeMap<IpAddr, ExternalIp> = BTreeMap::new();
    for svc in services.iter().filter(|s| handles_service(s, &config.load_balancer_class, config.handle_unclassed)) {
        let pools: Vec<String> = svc
            .annotations()
            .get(ALLOCATED_FROM_POOL)
            .map(|p| p.split(',').map(|s| s.trim().to_owned()).collect())
            .unwrap_or_default();
        let ingress = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|l| l.ingress.as_ref());
        for (i, entry) in ingress.into_iter().flatten().enumerate() {
            let Some(ip) = entry.ip.as_deref().and_then(|s| s.parse::<IpAddr>().ok()) else { continue };
            let pool = pools.get(i).or(pools.first()).cloned().unwrap_or_default();
            let key = format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any());
            by_ip.entry(ip).or_insert_with(|| ExternalIp { ip, pool, services: BTreeSet::new() }).services.insert(key);
        }
    }
    by_ip.into_values().collect()
}

fn node_info(node: &Node) -> NodeInfo {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_ref());
    let is_true = |kind: &str| conditions.into_iter().flatten().any(|c| c.type_ == kind && c.status == "True");
    NodeInfo {
        name: node.name_any(),
        labels: node.labels().clone().into_iter().collect(),
        ready: is_true("Ready"),
        network_unavailable: is_true("NetworkUnavailable"),
    }
}

fn advertisement(ad: &L2Advertisement) -> Option<Advertisement> {
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

/// Runs the speaker until `shutdown` turns true; stops announcing before returning. `ready` turns true once
/// the caches have synced.
pub async fn run(
    client: kube::Client,
    config: SpeakerConfig,
    metrics: Metrics,
    ready: Arc<std::sync::atomic::AtomicBool>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    let notify = Arc::new(Notify::new());
    let (services, s1) = watch_into(Api::<Service>::all(client.clone()), notify.clone());
    let (nodes, s2) = watch_into(Api::<Node>::all(client.clone()), notify.clone());
    let (pools, s3) = watch_into(Api::<IPAddressPool>::all(client.clone()), notify.clone());
    let (ads, s4) = watch_into(Api::<L2Advertisement>::all(client.clone()), notify.clone());
    let watches = tokio::spawn(async move {
        tokio::join!(s1.collect::<()>(), s2.collect::<()>(), s3.collect::<()>(), s4.collect::<()>());
    });
    tokio::select! {
        r = async { tokio::try_join!(services.wait_until_ready(), nodes.wait_until_ready(), pools.wait_until_ready(), ads.wait_until_ready()) } => {
            r.map_err(|e| Error::Watch(e.to_string()))?;
        }
        _ = shutdown.changed() => return Ok(()),
    }
    info!(node = %config.node_name, "caches synced; placing external IPs");
    ready.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut announcer = Announcer::new(config.interfaces.clone(), metrics.clone());
    let mut last: BTreeMap<IpAddr, Placement> = BTreeMap::new();
    let _links = crate::netlink::spawn_watcher(notify.clone());
    let mut resync = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = notify.notified() => {}
            _ = resync.tick() => {}
            _ = shutdown.changed() => break,
        }
        let ips = external_ips(&services.state(), &config);
        let node_list: Vec<NodeInfo> = nodes.state().iter().map(|n| node_info(n)).collect();
        let advertisements: Vec<Advertisement> = ads.state().iter().filter_map(|a| advertisement(a)).collect();
        let pool_labels: BTreeMap<String, BTreeMap<String, String>> =
            pools.state().iter().map(|p| (p.name_any(), p.labels().clone().into_iter().collect())).collect();
        let placed = place(&config.node_name, &ips, &node_list, &advertisements, &pool_labels);
        for (ip, placement) in &placed {
            if last.get(ip) != Some(placement) {
                info!(%ip, ?placement, "placement");
            }
        }
        let wanted: BTreeMap<IpAddr, Vec<String>> = placed
            .iter()
            .filter_map(|(ip, p)| match p {
                Placement::Announce { interfaces } => Some((*ip, interfaces.clone())),
                _ => None,
            })
            .collect();
        announcer.set(&wanted);
        metrics.owned_ips.set(i64::try_from(wanted.len()).unwrap_or(i64::MAX));
        last = placed;
    }
    info!("shutting down: no longer answering for any IP");
    announcer.clear();
    watches.abort();
    Ok(())
}
