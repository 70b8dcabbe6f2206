//! The speaker's long-running loop: gather the inputs, compute a [`pass`](crate::pass::pass), apply it in
//! order, wait for the next change. Every background task (watches, membership, API writer, interface
//! follower, the data path's helpers) is supervised: one that ends takes the speaker down with an error
//! that names it, and the loop beats the liveness heartbeat every turn.
//!
//! Fail static: when the API server is unreachable the stores keep their last state and the membership runs
//! on its own, so the speaker keeps announcing what it announced (and still fails over between live nodes).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;
use tracing::{info, warn};

use ferrolb_api::L2Announcement;
use ferrolb_api::k8s::jiff;
use ferrolb_forward::dataplane::{self, Dataplane};
use ferrolb_runtime::{Ended, Health, Tasks};

use crate::announce::Announcer;
use crate::bgp::BgpAnnouncer;
use crate::bgp::bfd::BfdEndpoint;
use crate::config::SpeakerConfig;
use crate::conflicts::{Answer, ProbeOrder, ProbeResult};
use crate::error::{Error, Result};
use crate::l2::{HeardFrame, L2Announcer, Link, read_links};
use crate::membership::signed_frames::classify;
use crate::membership::{Membership, MembershipSettings};
use crate::metrics::Metrics;
use crate::observe::Stores;
use crate::pass::{Bgp, Conflicts, DRAIN, ForwardOrder, Forwarding, Inputs, Pass, State, pass};
use crate::split::HeardClaim;
use crate::writer::{Outbox, writer_task};

/// How often the kernel path checks that its nftables table is still there.
const TABLE_CHECK: Duration = Duration::from_secs(5);

/// How soon a data-path update that failed is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// A full pass at least this often, even without a change (a safety net for missed notifications).
const RESYNC: Duration = Duration::from_secs(60);

/// How often the loop beats the heartbeat while nothing happens (well inside `ferrolb_runtime`'s stall time).
const HEARTBEAT: Duration = Duration::from_secs(10);

/// Claims the responders may queue for the loop before they drop the excess (a flood of foreign claims
/// must not grow memory; settling needs only a few).
const CLAIM_QUEUE: usize = 256;

/// How long the API writer may take to flush at shutdown.
const WRITER_FLUSH: Duration = Duration::from_secs(2);

/// Runs the speaker until `shutdown` turns true; leaves the membership and stops announcing before returning.
/// `health` turns ready once the caches have synced and the membership has started.
pub async fn run(
    client: kube::Client,
    config: SpeakerConfig,
    metrics: Metrics,
    health: Arc<Health>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let keys = config.membership.keys.read()?;
    let notify = Arc::new(Notify::new());
    let mut tasks = Tasks::default();
    let stores = Stores::start(&client, &config.namespace, &config.bgp_password_secrets, &notify, &mut tasks);
    tokio::select! {
        r = stores.wait_until_ready() => r.map_err(Error::Watch)?,
        ended = tasks.ended() => return Err(Error::Task(ended)),
        _ = shutdown.changed() => return Ok(()),
    }
    let me = config.node_name.clone();
    let port = config.membership.port;
    // Where peers reach this node: its Node's InternalIP unless configured.
    let advertise = loop {
        if let Some(ip) = config.membership.address.or_else(|| stores.node_address(&me)) {
            break SocketAddr::new(ip, port);
        }
        warn!(node = %me, "waiting for this node's Node object with an InternalIP (or set --membership-address)");
        tokio::select! {
            _ = notify.notified() => {}
            ended = tasks.ended() => return Err(Error::Task(ended)),
            _ = shutdown.changed() => return Ok(()),
        }
    };
    let peers = stores.snapshot(&config).peers;
    let settings = MembershipSettings { node: me.clone(), advertise, keys: keys.clone() };
    let (membership, membership_task) = Membership::start(settings, peers.clone(), metrics.clone()).await?;
    tasks.spawn("membership", membership_task);
    // The keys in use also sign the announcements: the loop reads them from here each pass.
    let (keys_tx, keys_rx) = watch::channel(keys.clone());
    let set_membership_keys = membership.key_setter();
    let follow = config.membership.keys.clone().follow(
        keys,
        move |ring: crate::membership::Keyring| {
            keys_tx.send_replace(ring.clone());
            set_membership_keys(ring);
        },
        metrics.membership_key_changes_refused.clone(),
    );
    tasks.spawn("membership key follower", follow);
    let mut view_rx = membership.view();
    let mut dataplane = match &config.forward {
        Some(options) => {
            let mut dp = Dataplane::start(options, metrics.forward.clone()).await?;
            if let Some(forgetter) = dp.take_background_task() {
                tasks.adopt("conntrack forgetter", forgetter);
            }
            Some(dp)
        }
        None => {
            // A crashed forward-mode speaker leaves its table and rules behind; in kube-proxy mode they
            // would shadow kube-proxy's rules for the IPs.
            dataplane::remove_leftovers().await;
            None
        }
    };
    let (outbox, writer) = writer_task(client.clone(), me.clone(), config.namespace.clone());
    tasks.spawn("api writer", writer);
    // rtnetlink wakes the loop on link and address changes; the resync is only a safety net.
    match crate::l2::netlink::watch(notify.clone()) {
        Ok(follow) => {
            info!("following interface changes through rtnetlink");
            tasks.spawn("interface follower", follow);
        }
        Err(e) => warn!(error = %e, "cannot follow interface changes; relying on the periodic resync"),
    }
    info!(node = %me, %advertise, "caches synced, membership started; placing external IPs");
    health.set_ready(true);

    // Responders report claims other MACs make on the IPs they watch; the next pass settles them.
    let (claims_tx, mut claims_rx) = mpsc::channel::<HeardFrame>(CLAIM_QUEUE);
    let mut heard: Vec<HeardClaim> = Vec::new();
    let mut l2 = L2Announcer::new(metrics.clone(), claims_tx);
    // BFD listens on every node, so that a BGPPeer naming a profile finds it running.
    let bfd = match BfdEndpoint::start() {
        Ok((endpoint, task)) => {
            tasks.spawn("bfd", task);
            Some(endpoint)
        }
        Err(e) => {
            warn!(error = %e, "cannot listen for BFD on UDP 3784; BGP sessions will run without BFD");
            None
        }
    };
    let mut bgp = BgpAnnouncer::new(metrics.bgp.clone(), bfd);
    let bgp_changed = bgp.changed();
    let mut state = State::new(&me, port, peers);
    let mut wake_at: Option<Instant> = None;
    let mut resync = tokio::time::interval(RESYNC);
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let mut reannounce = config.reannounce_every.map(|every| tokio::time::interval_at(Instant::now() + every, every));
    // Something else may delete ferrolb's table (a firewall reload, `nft flush ruleset`): check it often.
    let mut table_check = tokio::time::interval(TABLE_CHECK);
    // Address probes run on blocking threads and report here; the next pass reads what arrived.
    let (probe_tx, mut probe_rx) = mpsc::unbounded_channel::<ProbeResult>();
    let mut probe_results: Vec<ProbeResult> = Vec::new();
    let mut outvoted = false;
    loop {
        health.beat();
        if let Some(failure) = l2.failed().or_else(|| bgp.failed()) {
            return Err(Error::Announcer(failure));
        }
        tokio::select! {
            _ = notify.notified() => {}
            _ = bgp_changed.notified() => {}
            changed = view_rx.changed() => if changed.is_err() {
                return Err(Error::Task(Ended::Returned("membership")));
            },
            () = sleep_until(wake_at) => {}
            _ = tick(reannounce.as_mut()) => {
                l2.refresh();
                continue;
            }
            _ = table_check.tick(), if dataplane.as_ref().is_some_and(Dataplane::kernel) => {
                if let Some(dp) = dataplane.as_mut()
                    && let Err(e) = dp.repair().await
                {
                    warn!(error = %e, reason = e.label(), "could not repair the forwarding table");
                }
                continue;
            }
            Some(result) = probe_rx.recv() => {
                probe_results.push(result);
                while let Ok(more) = probe_rx.try_recv() {
                    probe_results.push(more);
                }
            }
            Some(frame) = claims_rx.recv() => {
                let ring = keys_rx.borrow().clone();
                heard.push(heard_claim(&ring, frame));
                while let Ok(more) = claims_rx.try_recv() {
                    heard.push(heard_claim(&ring, more));
                }
            }
            _ = heartbeat.tick() => continue,
            _ = resync.tick() => {}
            ended = tasks.ended() => return Err(Error::Task(ended)),
            _ = shutdown.changed() => break,
        }
        let view = view_rx.borrow_and_update().clone();
        if view.outvoted() != outvoted {
            outvoted = view.outvoted();
            metrics.membership_outvoted.set(i64::from(outvoted));
            if outvoted {
                warn!(
                    unreadable = ?view.unreadable,
                    members = ?view.members,
                    "more peers talk to this speaker under membership keys it does not hold than it has members: \
                     this node's key is wrong (check the membership Secret it mounts); announcing nothing"
                );
            } else {
                info!(members = ?view.members, "no longer outvoted on the membership key; placing IPs again");
            }
        }
        let snapshot = stores.snapshot(&config);
        let links = read_links(&config.interfaces);
        let records: Vec<&L2Announcement> = snapshot.records.iter().map(|r| r.as_ref()).collect();
        let statuses = bgp.statuses();
        let wall_clock = jiff::Timestamp::now().to_string();
        let inputs = Inputs {
            view: &view,
            ips: &snapshot.ips,
            nodes: &snapshot.nodes,
            advertisements: &snapshot.advertisements,
            pool_labels: &snapshot.pool_labels,
            endpoints: &snapshot.endpoints,
            peers: &snapshot.peers,
            services: &snapshot.services,
            records: &records,
            links: &links,
            own_addresses: &snapshot.own_addresses,
            forwarding: snapshot.forwarding.as_ref().map(|f| Forwarding { services: &f.services, slices: &f.slices }),
            bgp: Bgp {
                peers: &snapshot.bgp_peers,
                advertisements: &snapshot.bgp_advertisements,
                statuses: &statuses,
                sessions: &snapshot.bgp_sessions,
            },
            conflicts: Conflicts {
                settings: config.conflict_probe,
                records: &snapshot.conflicts,
                results: &probe_results,
            },
            heard: &heard,
            wall_clock: &wall_clock,
        };
        let now = Instant::now();
        let turn = pass(&mut state, &inputs, now.into_std());
        probe_results.clear();
        heard.clear();
        wake_at = turn.wake_at.map(Instant::from_std);
        if let Some(settings) = config.conflict_probe {
            for order in &turn.probes {
                metrics.address_probes.inc();
                start_probe(order.clone(), &links, settings.window, probe_tx.clone());
            }
        }
        l2.sign_as(&me, &keys_rx.borrow());
        let io = Io {
            membership: &membership,
            l2: &mut l2,
            bgp: &mut bgp,
            dataplane: dataplane.as_mut(),
            outbox: &outbox,
            metrics: &metrics,
        };
        if !apply(turn, io).await {
            wake_at = Some(wake_at.map_or(now + RETRY, |w| w.min(now + RETRY)));
        }
    }
    info!("shutting down: leaving the membership, then no longer answering for any IP, then withdrawing BGP routes");
    membership.leave().await;
    l2.withdraw_all().await;
    bgp.withdraw_all().await;
    if let Some(dp) = dataplane.as_mut() {
        // Clients still hold this node's MAC until the new owners' announcements reach them: keep forwarding
        // what arrives meanwhile, then remove everything.
        if state.forwards_anything() {
            tokio::time::sleep(DRAIN).await;
        }
        dp.clear().await;
    }
    drop(outbox);
    tasks.finish("api writer", WRITER_FLUSH).await;
    Ok(())
}

/// What a pass is applied to.
struct Io<'a> {
    membership: &'a Membership,
    l2: &'a mut L2Announcer,
    bgp: &'a mut BgpAnnouncer,
    dataplane: Option<&'a mut Dataplane>,
    outbox: &'a Outbox,
    metrics: &'a Metrics,
}

/// Carries out `turn` in its order: peers, forwarding before, announcing (layer 2, BGP), forwarding after,
/// metrics, Events, records. Returns false when the data path failed (the caller retries soon).
async fn apply(turn: Pass, io: Io<'_>) -> bool {
    let Pass {
        peers,
        changed,
        forward_before,
        announce,
        bgp,
        forward_after,
        events,
        takeovers,
        records,
        bgp_sessions,
        probes: _,
        conflicts_found,
        conflict_writes,
        defend,
        probe_yielded,
        split_claims,
        wake_at: _,
    } = turn;
    if let Some(peers) = peers {
        io.membership.set_peers(peers);
    }
    for (ip, placement) in &changed {
        info!(%ip, ?placement, "placement");
    }
    let mut dataplane = io.dataplane;
    let mut forwarded = true;
    if let (Some(dp), Some(order)) = (dataplane.as_deref_mut(), forward_before) {
        forwarded &= forward(dp, &order).await;
    }
    io.l2.announce(&announce);
    io.l2.defend(&defend);
    io.l2.probe(&probe_yielded);
    io.metrics.membership_split_claims.inc_by(split_claims);
    io.bgp.announce(&bgp);
    if let (Some(dp), Some(order)) = (dataplane, forward_after) {
        forwarded &= forward(dp, &order).await;
    }
    io.metrics.owned_ips.set(i64::try_from(announce.ips.len()).unwrap_or(i64::MAX));
    io.metrics.ownership_changes.inc_by(takeovers);
    for event in events {
        if event.reason.warning() {
            warn!(regarding = %event.regarding.name(), reason = event.reason.as_str(), "{}", event.note);
        } else {
            info!(regarding = %event.regarding.name(), reason = event.reason.as_str(), "{}", event.note);
        }
        io.outbox.event(event);
    }
    if !records.is_empty() {
        io.outbox.records(records);
    }
    if !bgp_sessions.is_empty() {
        io.outbox.sessions(bgp_sessions);
    }
    io.metrics.address_conflicts.inc_by(conflicts_found);
    for write in conflict_writes {
        io.outbox.conflict(write);
    }
    forwarded
}

/// Runs one probe on a blocking thread, on each of its interfaces in turn, and reports the first answer.
/// A probe that cannot run (no such interface any more, a socket error) reports no answer: detection is
/// best effort and must never keep an address dark.
fn start_probe(order: ProbeOrder, links: &[Link], window: Duration, results: mpsc::UnboundedSender<ProbeResult>) {
    let links: Vec<Link> = links.iter().filter(|l| order.interfaces.contains(&l.name)).cloned().collect();
    tokio::task::spawn_blocking(move || {
        let mut answer = None;
        for link in &links {
            match crate::l2::probe::probe(link, order.ip, window) {
                Ok(Some(mac)) => {
                    answer = Some(Answer { mac, interface: link.name.clone() });
                    break;
                }
                Ok(None) => {}
                Err(e) => warn!(ip = %order.ip, interface = %link.name, error = %e, "probing for an address failed"),
            }
        }
        let _ = results.send(ProbeResult { ip: order.ip, answer, recheck: order.recheck });
    });
}

/// A heard frame with who signed it, as `ring` tells.
fn heard_claim(ring: &crate::membership::Keyring, frame: HeardFrame) -> HeardClaim {
    HeardClaim { signer: classify(ring, &frame.frame), ip: frame.ip, mac: frame.mac, interface: frame.interface }
}

async fn forward(dp: &mut Dataplane, order: &ForwardOrder) -> bool {
    match dp.set(&order.owned, &order.forwards).await {
        Ok(()) => true,
        Err(e) => {
            warn!(error = %e, reason = e.label(), "could not update forwarding; retrying");
            false
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn tick(interval: Option<&mut tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}
