//! The speaker's long-running task: watch the cluster, keep the membership, place every external IP, hand
//! this node's share to the [`Announcer`], and record ownership for operators.
//!
//! Fail static: when the API server is unreachable the stores keep their last state and the membership runs
//! on its own, so the speaker keeps announcing what it announced (and still fails over between live nodes).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use ferrolb_api::k8s::k8s_openapi::api::discovery::v1::EndpointSlice;
use ferrolb_api::k8s::k8s_openapi::api::events::v1::Event as K8sEvent;
use ferrolb_api::k8s::k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use ferrolb_api::k8s::{Node, ObjectReference, ResourceExt, Service, jiff};
use ferrolb_api::{
    ALLOCATED_FROM_POOL, IPAddressPool, L2Advertisement, L2Announcement, handles_service, selector_from_k8s,
};

use crate::absent::AbsenceTracker;
use crate::announcer::{Announcer, InterfacePolicy};
use crate::desired::{Advertisement, Cluster, ExternalIp, NodeInfo, Placement, place};
use crate::endpoints::{EndpointTracker, Observed};
use crate::forward::dataplane::{Dataplane, ForwardOptions};
use crate::forward::plan::plan as forwarding_plan;
use crate::membership::{Membership, MembershipKey, MembershipSettings, View};
use crate::metrics::Metrics;
use crate::records::{RecordInputs, ServiceRef, Write, reconcile, takeover_note};

/// How this speaker joins the membership.
#[derive(Debug, Clone)]
pub struct MembershipOptions {
    /// UDP port, the same on every node.
    pub port: u16,
    /// The shared key.
    pub key: MembershipKey,
    /// The address peers reach this node on; default: the Node's first InternalIP.
    pub address: Option<IpAddr>,
}

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
    /// Membership settings.
    pub membership: MembershipOptions,
    /// Send the gratuitous announcements for every owned IP again at this interval (None: only on taking).
    pub reannounce_every: Option<Duration>,
    /// Forward mode (None: kube-proxy delivers the traffic and the speaker only announces).
    pub forward: Option<ForwardOptions>,
}

/// Errors of the speaker loop.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A watch could not start.
    #[error("watch failed: {0}")]
    Watch(String),
    /// The membership could not start.
    #[error(transparent)]
    Membership(#[from] crate::membership::MembershipError),
    /// Forward mode could not start its data path.
    #[error("forward mode: {0}")]
    Forward(#[from] crate::forward::dataplane::Error),
}

const FIELD_MANAGER: &str = "ferrolb-speaker";

/// Makes the loop wake no later than `at` (keeping an earlier wake-up).
fn wake_by(deadline: &mut Option<Instant>, at: Instant) {
    *deadline = Some(deadline.map_or(at, |d| d.min(at)));
}

/// How often the kernel path checks that its nftables table is still there.
const TABLE_CHECK: Duration = Duration::from_secs(5);

/// How long an old owner keeps forwarding an IP it gave up: the new owner announces three times over 1.1 s,
/// and clients keep sending to the old owner's MAC until an announcement reaches them.
const DRAIN: Duration = Duration::from_secs(2);

/// How soon a data-path update that failed is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// How long one API write may take before it is given up (and retried or redone by a later pass).
const API_TIMEOUT: Duration = Duration::from_secs(10);

/// How many times an Event is tried before it is dropped (with backoff, that covers about ten minutes).
const EVENT_ATTEMPTS: u32 = 12;

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

fn service_key(svc: &Service) -> String {
    format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any())
}

fn handled<'a>(services: &'a [Arc<Service>], config: &'a SpeakerConfig) -> impl Iterator<Item = &'a Arc<Service>> {
    services.iter().filter(|s| handles_service(s, &config.load_balancer_class, config.handle_unclassed))
}

fn external_ips(services: &[Arc<Service>], config: &SpeakerConfig) -> Vec<ExternalIp> {
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

fn observed_endpoints(
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

fn node_info(node: &Node) -> NodeInfo {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_ref());
    let is_true = |kind: &str| conditions.into_iter().flatten().any(|c| c.type_ == kind && c.status == "True");
    NodeInfo {
        name: node.name_any(),
        labels: node.labels().clone().into_iter().collect(),
        network_unavailable: is_true("NetworkUnavailable"),
    }
}

/// A node's first InternalIP: where its speaker listens for membership datagrams.
/// Every InternalIP of `node` (both families on a dual-stack node).
fn internal_addresses(node: &Node) -> Vec<IpAddr> {
    let addresses = node.status.as_ref().and_then(|s| s.addresses.as_ref());
    addresses.into_iter().flatten().filter(|a| a.type_ == "InternalIP").filter_map(|a| a.address.parse().ok()).collect()
}

fn node_address(node: &Node) -> Option<IpAddr> {
    internal_addresses(node).into_iter().next()
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

/// What an Event is about.
#[derive(Clone)]
enum Regarding {
    Service(ServiceRef),
    /// A Node (cluster-scoped: its Events live in `default`, as the kubelet's do).
    Node(String),
}

impl Regarding {
    fn name(&self) -> &str {
        match self {
            Regarding::Service(s) => &s.name,
            Regarding::Node(name) => name,
        }
    }

    fn event_namespace(&self) -> &str {
        match self {
            Regarding::Service(s) => &s.namespace,
            Regarding::Node(_) => "default",
        }
    }

    fn action(&self) -> &'static str {
        match self {
            Regarding::Service(_) => "Announce",
            Regarding::Node(_) => "CheckMembership",
        }
    }

    fn reference(&self) -> ObjectReference {
        match self {
            Regarding::Service(s) => ObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("Service".to_owned()),
                name: Some(s.name.clone()),
                namespace: Some(s.namespace.clone()),
                uid: s.uid.clone(),
                ..Default::default()
            },
            // The kubelet's convention, which `kubectl describe node` searches for: the name as the UID.
            Regarding::Node(name) => ObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("Node".to_owned()),
                name: Some(name.clone()),
                uid: Some(name.clone()),
                ..Default::default()
            },
        }
    }
}

/// An Event for a Service or a Node.
#[derive(Clone)]
struct OutEvent {
    regarding: Regarding,
    warning: bool,
    reason: &'static str,
    note: String,
}

/// Performs the API writes off the placement loop, so a slow API server never delays an announcement.
struct Writer {
    client: kube::Client,
}

impl Writer {
    async fn write(&self, write: Write, me: &str) {
        match write {
            Write::Apply { owner, name, spec } => {
                let api: Api<L2Announcement> = Api::namespaced(self.client.clone(), &owner.namespace);
                let mut obj = L2Announcement::new(&name, spec);
                obj.metadata.namespace = Some(owner.namespace.clone());
                obj.metadata.labels = Some([("ferrolb.io/node".to_owned(), me.to_owned())].into());
                obj.metadata.owner_references = owner.uid.clone().map(|uid| {
                    vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "Service".into(),
                        name: owner.name.clone(),
                        uid,
                        ..Default::default()
                    }]
                });
                let params = PatchParams::apply(FIELD_MANAGER).force();
                match tokio::time::timeout(API_TIMEOUT, api.patch(&name, &params, &Patch::Apply(&obj))).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        warn!(namespace = %owner.namespace, %name, error = %e, "writing an L2Announcement failed")
                    }
                    Err(_) => warn!(namespace = %owner.namespace, %name, "writing an L2Announcement timed out"),
                }
            }
            Write::Delete { namespace, name, resource_version } => {
                let api: Api<L2Announcement> = Api::namespaced(self.client.clone(), &namespace);
                let params = DeleteParams {
                    preconditions: Some(Preconditions { resource_version, uid: None }),
                    ..Default::default()
                };
                match tokio::time::timeout(API_TIMEOUT, api.delete(&name, &params)).await {
                    Ok(Ok(_)) => debug!(%namespace, %name, "removed an L2Announcement"),
                    // Gone already, or rewritten by a new owner since it was read: both are fine.
                    Ok(Err(kube::Error::Api(s))) if s.code == 404 || s.code == 409 => {}
                    Ok(Err(e)) => warn!(%namespace, %name, error = %e, "removing an L2Announcement failed"),
                    Err(_) => warn!(%namespace, %name, "removing an L2Announcement timed out"),
                }
            }
        }
    }

    /// Creates an Event. Not through kube's `Recorder`: it folds Events with the same reason into a series
    /// that keeps the first note, and every takeover note here says something new.
    /// Returns whether the Event was created.
    async fn publish(&self, event: &OutEvent, me: &str) -> bool {
        let now = jiff::Timestamp::now();
        let (name, namespace) = (event.regarding.name(), event.regarding.event_namespace());
        let ev = K8sEvent {
            metadata: ObjectMeta {
                name: Some(format!("{name}.{:x}", now.as_nanosecond())),
                namespace: Some(namespace.to_owned()),
                ..Default::default()
            },
            event_time: Some(MicroTime(now)),
            action: Some(event.regarding.action().to_owned()),
            reason: Some(event.reason.to_owned()),
            note: Some(event.note.clone()),
            type_: Some(if event.warning { "Warning" } else { "Normal" }.to_owned()),
            regarding: Some(event.regarding.reference()),
            reporting_controller: Some(FIELD_MANAGER.to_owned()),
            reporting_instance: Some(format!("{FIELD_MANAGER}-{me}")),
            ..Default::default()
        };
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        match tokio::time::timeout(API_TIMEOUT, api.create(&Default::default(), &ev)).await {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                warn!(regarding = %name, error = %e, "publishing an event failed; will retry");
                false
            }
            Err(_) => {
                warn!(regarding = %name, "publishing an event timed out; will retry");
                false
            }
        }
    }
}

/// Why `previous` no longer holds an IP this node just took.
fn why_moved(previous: &str, me: &str, ext: &ExternalIp, cluster: &Cluster<'_>) -> String {
    if !cluster.live.contains(previous) {
        return format!("{previous} left membership");
    }
    // Would `previous` be eligible on its own?
    let alone: BTreeSet<String> = [previous.to_owned()].into();
    let only_previous = Cluster { live: &alone, ..*cluster };
    match place(previous, std::slice::from_ref(ext), &only_previous).get(&ext.ip) {
        Some(Placement::Announce { .. }) => format!("{me} ranks first for this IP"),
        _ => format!("{previous} is no longer eligible"),
    }
}

fn not_announced_note(ip: IpAddr, placement: &Placement, pool: &str) -> Option<(&'static str, String)> {
    match placement {
        Placement::NotAdvertised => {
            Some(("NoL2Advertisement", format!("{ip} is not announced: no L2Advertisement covers pool {pool}")))
        }
        Placement::NoEligibleNode => Some((
            "NoEligibleNode",
            format!(
                "{ip} is not announced: no live node is eligible (check L2Advertisement nodeSelectors, the exclude-from-external-load-balancers label, and that speakers are running)"
            ),
        )),
        Placement::NoReadyEndpoint => {
            Some(("NoReadyEndpoint", format!("{ip} is not announced: the Service has no ready endpoint")))
        }
        _ => None,
    }
}

/// Runs the speaker until `shutdown` turns true; leaves the membership and stops announcing before returning.
/// `ready` turns true once the caches have synced and the membership has started.
pub async fn run(
    client: kube::Client,
    config: SpeakerConfig,
    metrics: Metrics,
    ready: Arc<AtomicBool>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    let notify = Arc::new(Notify::new());
    let (services, s1) = watch_into(Api::<Service>::all(client.clone()), notify.clone());
    let (nodes, s2) = watch_into(Api::<Node>::all(client.clone()), notify.clone());
    let (pools, s3) = watch_into(Api::<IPAddressPool>::all(client.clone()), notify.clone());
    let (ads, s4) = watch_into(Api::<L2Advertisement>::all(client.clone()), notify.clone());
    let (slices, s5) = watch_into(Api::<EndpointSlice>::all(client.clone()), notify.clone());
    let (records, s6) = watch_into(Api::<L2Announcement>::all(client.clone()), notify.clone());
    let watches = tokio::spawn(async move {
        tokio::join!(
            s1.collect::<()>(),
            s2.collect::<()>(),
            s3.collect::<()>(),
            s4.collect::<()>(),
            s5.collect::<()>(),
            s6.collect::<()>()
        );
    });
    tokio::select! {
        r = async { tokio::try_join!(
            services.wait_until_ready(), nodes.wait_until_ready(), pools.wait_until_ready(),
            ads.wait_until_ready(), slices.wait_until_ready(), records.wait_until_ready()) } => {
            r.map_err(|e| Error::Watch(e.to_string()))?;
        }
        _ = shutdown.changed() => return Ok(()),
    }
    let me = config.node_name.clone();
    let port = config.membership.port;
    let peers_of = |nodes: &[Arc<Node>]| -> BTreeMap<String, SocketAddr> {
        nodes.iter().filter_map(|n| Some((n.name_any(), SocketAddr::new(node_address(n)?, port)))).collect()
    };
    // Where peers reach this node: its Node's InternalIP unless configured.
    let advertise = loop {
        let own = config
            .membership
            .address
            .or_else(|| nodes.get(&reflector::ObjectRef::new(&me)).and_then(|n| node_address(&n)));
        if let Some(ip) = own {
            break SocketAddr::new(ip, port);
        }
        warn!(node = %me, "waiting for this node's Node object with an InternalIP (or set --membership-address)");
        tokio::select! {
            _ = notify.notified() => {}
            _ = shutdown.changed() => return Ok(()),
        }
    };
    let mut peers = peers_of(&nodes.state());
    let settings = MembershipSettings { node: me.clone(), advertise, key: config.membership.key.clone() };
    let membership = Membership::start(settings, peers.clone(), metrics.clone()).await?;
    let mut view_rx = membership.view();
    let mut dataplane = match &config.forward {
        Some(options) => Some(Dataplane::start(options, metrics.clone()).await?),
        None => {
            // A crashed forward-mode speaker leaves its table and rules behind; in kube-proxy mode they
            // would shadow kube-proxy's rules for the IPs.
            crate::forward::dataplane::remove_leftovers().await;
            None
        }
    };
    let mut forwarded: BTreeSet<IpAddr> = BTreeSet::new();
    // What this node announced after the previous pass: an IP that leaves it starts draining.
    let mut owned_before: BTreeSet<IpAddr> = BTreeSet::new();
    // IPs this node gave up but still forwards until clients have followed the new owner's announcement.
    let mut draining: BTreeMap<IpAddr, Instant> = BTreeMap::new();
    info!(node = %me, %advertise, "caches synced, membership started; placing external IPs");
    ready.store(true, Ordering::Relaxed);

    let writer = Arc::new(Writer { client: client.clone() });
    let (writes_tx, mut writes_rx) = watch::channel::<Vec<Write>>(Vec::new());
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<OutEvent>();
    let writer_task = {
        let (writer, me) = (writer.clone(), me.clone());
        tokio::spawn(async move {
            // Events that failed (an API outage): retried with backoff so none is lost to a short outage.
            let mut retries: Vec<(Instant, OutEvent, u32)> = Vec::new();
            loop {
                let next_retry = retries.iter().map(|r| r.0).min();
                let retry_due = async {
                    match next_retry {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    changed = writes_rx.changed() => {
                        if changed.is_err() { break; }
                        let batch = writes_rx.borrow_and_update().clone();
                        futures::stream::iter(batch).for_each_concurrent(8, |w| writer.write(w, &me)).await;
                    }
                    Some(event) = events_rx.recv() => {
                        if !writer.publish(&event, &me).await {
                            retries.push((Instant::now() + Duration::from_secs(1), event, 1));
                        }
                    }
                    () = retry_due => {
                        let now = Instant::now();
                        let (due, later): (Vec<_>, Vec<_>) = retries.drain(..).partition(|r| r.0 <= now);
                        retries = later;
                        for (_, event, attempts) in due {
                            if writer.publish(&event, &me).await {
                                continue;
                            }
                            if attempts >= EVENT_ATTEMPTS {
                                warn!(regarding = %event.regarding.name(), note = %event.note, "giving up on an event");
                            } else {
                                let backoff = Duration::from_secs(1 << attempts.min(6));
                                retries.push((Instant::now() + backoff, event, attempts + 1));
                            }
                        }
                    }
                    else => break,
                }
            }
        })
    };

    let mut announcer = Announcer::new(config.interfaces.clone(), metrics.clone());
    let mut tracker = EndpointTracker::default();
    let mut absence = AbsenceTracker::default();
    let mut last: BTreeMap<IpAddr, Placement> = BTreeMap::new();
    let mut since: BTreeMap<IpAddr, String> = BTreeMap::new();
    // rtnetlink wakes the loop on link and address changes; the resync is only a safety net.
    let _links = crate::netlink::spawn_watcher(notify.clone());
    let mut resync = tokio::time::interval(Duration::from_secs(60));
    let mut settle_at: Option<Instant> = None;
    let mut reannounce = config.reannounce_every.map(|every| tokio::time::interval_at(Instant::now() + every, every));
    // Something else may delete ferrolb's table (a firewall reload, `nft flush ruleset`): check it often.
    let mut table_check = tokio::time::interval(TABLE_CHECK);
    loop {
        let settle = async {
            match settle_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = notify.notified() => {}
            changed = view_rx.changed() => if changed.is_err() { break },
            _ = settle => {}
            _ = async { match reannounce.as_mut() { Some(t) => { t.tick().await; } None => std::future::pending().await } } => {
                announcer.reannounce();
                continue;
            }
            _ = table_check.tick(), if dataplane.as_ref().is_some_and(Dataplane::kernel) => {
                if let Some(dp) = dataplane.as_mut()
                    && let Err(e) = dp.repair().await
                {
                    metrics.forward_errors.inc();
                    warn!(error = %e, "could not repair the forwarding table");
                }
                continue;
            }
            _ = resync.tick() => {}
            _ = shutdown.changed() => break,
        }
        let view: View = view_rx.borrow_and_update().clone();
        let node_objects = nodes.state();
        let new_peers = peers_of(&node_objects);
        if new_peers != peers {
            peers = new_peers;
            membership.set_peers(peers.clone());
        }
        let service_objects = services.state();
        let ips = external_ips(&service_objects, &config);
        let now = Instant::now();
        let slice_objects = slices.state();
        let endpoints = tracker.observe(now.into_std(), &observed_endpoints(&service_objects, &slice_objects, &config));
        settle_at = tracker.next_change(now.into_std()).map(Instant::from_std);
        let node_list: Vec<NodeInfo> = node_objects.iter().map(|n| node_info(n)).collect();
        let advertisements: Vec<Advertisement> = ads.state().iter().filter_map(|a| advertisement(a)).collect();
        let pool_labels: BTreeMap<String, BTreeMap<String, String>> =
            pools.state().iter().map(|p| (p.name_any(), p.labels().clone().into_iter().collect())).collect();
        let cluster = Cluster {
            nodes: &node_list,
            advertisements: &advertisements,
            pool_labels: &pool_labels,
            live: &view.members,
            endpoints: &endpoints,
        };
        let janitor = view.members.first() == Some(&me);
        // Every speaker tracks missing speakers, so a new janitor knows what was reported; only the janitor
        // publishes, so each change gives one Event.
        let notices = absence.observe(now.into_std(), &node_list, &advertisements, &view);
        for notice in notices.into_iter().filter(|_| janitor) {
            let note = notice.note(&me, port);
            if notice.warning() {
                warn!(node = %notice.node(), "{note}");
            } else {
                info!(node = %notice.node(), "{note}");
            }
            let regarding = Regarding::Node(notice.node().to_owned());
            let _ = events_tx.send(OutEvent { regarding, warning: notice.warning(), reason: notice.reason(), note });
        }
        if let Some(at) = absence.next_change(now.into_std()).map(Instant::from_std) {
            wake_by(&mut settle_at, at);
        }
        // Until the view settles this speaker may believe it is alone: announce nothing rather than everything.
        let placed = if view.settled { place(&me, &ips, &cluster) } else { BTreeMap::new() };
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
        // A new owner forwards before it announces; an old one stops forwarding after it stops answering.
        let owned: BTreeSet<IpAddr> = wanted.keys().copied().collect();
        let handled_services: Vec<Arc<Service>> = handled(&service_objects, &config).cloned().collect();
        let own_addresses: Vec<IpAddr> =
            node_objects.iter().find(|n| n.name_any() == me).map(|n| internal_addresses(n)).unwrap_or_default();
        if let Some(dp) = dataplane.as_mut() {
            let during: BTreeSet<IpAddr> = forwarded.union(&owned).copied().collect();
            let forwards = forwarding_plan(&me, &during, &handled_services, &slice_objects);
            if let Err(e) = dp.set(&during, &forwards, &own_addresses).await {
                warn!(error = %e, "could not update forwarding; retrying");
                wake_by(&mut settle_at, now + RETRY);
            }
        }
        let on_interfaces = announcer.set(&wanted);
        if let Some(dp) = dataplane.as_mut() {
            for ip in owned_before.difference(&owned) {
                draining.entry(*ip).or_insert(now + DRAIN);
            }
            draining.retain(|ip, until| *until > now && !owned.contains(ip));
            if let Some(next) = draining.values().min() {
                wake_by(&mut settle_at, *next);
            }
            let keep: BTreeSet<IpAddr> = owned.iter().chain(draining.keys()).copied().collect();
            let forwards = forwarding_plan(&me, &keep, &handled_services, &slice_objects);
            // The data path retries on the next pass either way; what it forwards is what was asked, so a
            // lasting failure elsewhere never keeps a drained IP alive.
            let result = dp.set(&keep, &forwards, &own_addresses).await;
            forwarded = keep;
            match result {
                Ok(()) => {}
                Err(e) => {
                    warn!(error = %e, "could not update forwarding; retrying");
                    wake_by(&mut settle_at, now + RETRY);
                }
            }
        }
        owned_before = owned;
        metrics.owned_ips.set(i64::try_from(wanted.len()).unwrap_or(i64::MAX));

        let service_refs: BTreeMap<String, ServiceRef> = service_objects
            .iter()
            .map(|s| {
                let r = ServiceRef { namespace: s.namespace().unwrap_or_default(), name: s.name_any(), uid: s.uid() };
                (service_key(s), r)
            })
            .collect();
        let record_objects = records.state();
        since.retain(|ip, _| wanted.contains_key(ip));
        let stamp = jiff::Timestamp::now().to_string();
        for ext in &ips {
            let placement = placed.get(&ext.ip);
            let was = last.get(&ext.ip);
            if placement == was {
                continue;
            }
            let targets = ext.services.iter().filter_map(|s| service_refs.get(s));
            if let Some(Placement::Announce { .. }) = placement {
                since.insert(ext.ip, stamp.clone());
                metrics.ownership_changes.inc();
                let previous = record_objects
                    .iter()
                    .find(|r| r.spec.ip.parse::<IpAddr>().ok() == Some(ext.ip) && r.spec.node != me)
                    .map(|r| r.spec.node.clone());
                let why = previous.as_deref().map(|p| (p, why_moved(p, &me, ext, &cluster)));
                let interfaces = on_interfaces.get(&ext.ip).cloned().unwrap_or_default();
                let note = takeover_note(&me, ext.ip, &interfaces, why.as_ref().map(|(p, w)| (*p, w.as_str())));
                info!(ip = %ext.ip, "{note}");
                for service in targets {
                    let event = OutEvent {
                        regarding: Regarding::Service(service.clone()),
                        warning: false,
                        reason: "Announcing",
                        note: note.clone(),
                    };
                    let _ = events_tx.send(event);
                }
            } else if janitor
                // Without its pool (the controller writes the annotation just after the status) there is
                // nothing certain to say yet.
                && !ext.pool.is_empty()
                && let Some((reason, note)) = placement.and_then(|p| not_announced_note(ext.ip, p, &ext.pool))
            {
                for service in targets {
                    let event = OutEvent {
                        regarding: Regarding::Service(service.clone()),
                        warning: true,
                        reason,
                        note: note.clone(),
                    };
                    let _ = events_tx.send(event);
                }
            }
        }
        let existing: Vec<&L2Announcement> = record_objects.iter().map(|r| r.as_ref()).collect();
        let writes = reconcile(&RecordInputs {
            me: &me,
            janitor,
            ips: &ips,
            placed: &placed,
            interfaces: &on_interfaces,
            since: &since,
            services: &service_refs,
            existing: &existing,
        });
        if !writes.is_empty() {
            writes_tx.send_replace(writes);
        }
        last = placed;
    }
    info!("shutting down: leaving the membership, then no longer answering for any IP");
    membership.leave().await;
    announcer.clear();
    if let Some(dp) = dataplane.as_mut() {
        // Clients still hold this node's MAC until the new owners' announcements reach them: keep forwarding
        // what arrives meanwhile, then remove everything.
        if !forwarded.is_empty() {
            tokio::time::sleep(DRAIN).await;
        }
        dp.clear().await;
    }
    drop(writes_tx);
    drop(events_tx);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer_task).await;
    watches.abort();
    Ok(())
}
