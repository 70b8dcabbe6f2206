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
use kube::runtime::reflector;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;
use tracing::{info, warn};

use ferrolb_api::k8s::k8s_openapi::api::discovery::v1::EndpointSlice;
use ferrolb_api::k8s::{Node, ResourceExt, Service, jiff};
use ferrolb_api::{IPAddressPool, L2Advertisement, L2Announcement};

use crate::absent::AbsenceTracker;
use crate::announcer::{Announcer, InterfacePolicy};
use crate::desired::{Advertisement, Cluster, ExternalIp, NodeInfo, Placement, place};
use crate::endpoints::EndpointTracker;
use crate::forward::dataplane::{Dataplane, ForwardOptions};
use crate::forward::plan::plan as forwarding_plan;
use crate::membership::{Membership, MembershipKey, MembershipSettings, View};
use crate::metrics::Metrics;
use crate::observe::{
    advertisement, external_ips, handled, internal_addresses, node_address, node_info, observed_endpoints, service_key,
    watch_into,
};
use crate::records::{RecordInputs, ServiceRef, Write, reconcile, takeover_note};
use crate::writer::{OutEvent, Regarding, Writer};

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

/// How many times an Event is tried before it is dropped (with backoff, that covers about ten minutes).
const EVENT_ATTEMPTS: u32 = 12;

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
