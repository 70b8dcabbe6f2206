//! Membership: which speakers are alive, learnt among the speakers themselves with SWIM (the `foca` crate)
//! over UDP, so a dead node is noticed in a few hundred milliseconds without asking the API server.
//!
//! Every datagram is sealed with the shared key ([`envelope`]); anything else is dropped and counted. Keys
//! rotate without a restart ([`keyfiles`], [`Membership::set_keys`]): a peer gets datagrams under the key it
//! last said it sends with, or under every key held until it has said. The same key signs the node's
//! announcements ([`signed_frames`]), so speakers know each other on the wire too. The
//! settings ([`swim_config`]) are the ones DESIGN.md records as measured on this hardware (probe every
//! 100 ms, 30 ms probe RTT, 100 ms suspicion, gossip every 20 ms), plus 10 transmissions per update and
//! forgetting down members after 5 s (both found with `tests/swim_simulation.rs`); `notify_down_members` is off because of a
//! foca 2.0 bug that makes refuted suspicions force live members to rejoin.
//!
//! A member's identity is its node name, its address and an incarnation (the start time in milliseconds,
//! bumped when the member must renew), so a restarted speaker always wins over its former self.
//!
//! [`Membership`] runs one task that owns the socket and the foca state; the placement loop reads the
//! [`View`] from a watch channel and hands the peer list in from the Node objects.

pub mod envelope;
pub mod keyfiles;
pub mod signed_frames;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::num::{NonZeroU8, NonZeroU32, NonZeroUsize};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use foca::{AccumulatingRuntime, Foca, Identity, OwnedNotification, PostcardCodec, Timer};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

pub use envelope::{KeyError, KeyId, Keyring, MembershipKey};
pub use keyfiles::{KeyFileError, KeyFiles};

use crate::metrics::{KeyIdLabels, KeyLabels, Metrics, ReasonLabels, TransitionLabels};

/// The default UDP port: not MetalLB's 7946, so both can run side by side during a migration.
pub const DEFAULT_PORT: u16 = 7947;

/// How long a starting speaker waits for the peers it knows of before it trusts its view (and starts
/// announcing), unless all of them answered sooner. Without it a starting speaker would see itself alone and
/// claim every IP for a moment.
pub const SETTLE: Duration = Duration::from_millis(1500);

/// How long the key a peer named is trusted without hearing from it again.
const KEY_FRESH: Duration = Duration::from_secs(2);

/// How long a peer's clock offset counts in `membership_clock_skew_seconds` without hearing from it again.
const SKEW_FRESH: Duration = Duration::from_secs(10);

/// What the latest authentic datagram from a peer said.
#[derive(Debug, Clone, Copy)]
struct Heard {
    /// The key it sends with.
    key: KeyId,
    /// Its clock minus this node's, in ms.
    skew_ms: i64,
    /// When it arrived (monotonic).
    at: Instant,
}

/// How long a datagram under a key this speaker lacks keeps its sender in [`View::unreadable`].
pub const UNREADABLE_FRESH: Duration = Duration::from_secs(10);

/// How often peers known from the API but absent from the membership are invited in.
const INVITE_EVERY: Duration = Duration::from_secs(1);

/// One speaker, as the membership knows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MemberId {
    /// The node the speaker runs on; unique in the cluster.
    pub node: String,
    /// Where it receives membership datagrams.
    pub addr: SocketAddr,
    /// Start time in ms, bumped on renewal: the newest incarnation of a node wins.
    pub incarnation: u64,
}

impl Identity for MemberId {
    type Addr = String;

    fn renew(&self) -> Option<Self> {
        Some(MemberId { incarnation: self.incarnation.saturating_add(1), ..self.clone() })
    }

    fn addr(&self) -> String {
        self.node.clone()
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.incarnation > adversary.incarnation
    }
}

/// The SWIM settings for a cluster of about `cluster_size` speakers.
pub fn swim_config(cluster_size: usize) -> foca::Config {
    let size = NonZeroU32::new(u32::try_from(cluster_size.max(1)).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
    let three = NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN);
    foca::Config {
        probe_period: Duration::from_millis(100),
        probe_rtt: Duration::from_millis(30),
        suspect_to_down_after: Duration::from_millis(100),
        // `new_lan` derives 2 transmissions per update for 3 members: under 5% loss a refutation then misses
        // often enough to kill live members (measured in tests/swim_simulation.rs). 10 costs a few bytes.
        max_transmissions: NonZeroU8::new(10).unwrap_or(NonZeroU8::MIN),
        // With `notify_down_members` off, a member wrongly declared down (a partition) never learns it and is
        // ignored for as long as its identity is remembered (24 h by default). Forgetting down identities after
        // 5 s lets the next invitation (every second, to peers known from the API) bring it back.
        remove_down_after: Some(Duration::from_secs(5)),
        notify_down_members: false,
        periodic_gossip: Some(foca::PeriodicParams { frequency: Duration::from_millis(20), num_members: three }),
        periodic_announce: Some(foca::PeriodicParams {
            frequency: Duration::from_secs(5),
            num_members: NonZeroUsize::MIN,
        }),
        periodic_announce_to_down_members: Some(foca::PeriodicParams {
            frequency: Duration::from_secs(5),
            num_members: NonZeroUsize::MIN,
        }),
        ..foca::Config::new_lan(size)
    }
}

/// What the placement loop needs from the membership.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct View {
    /// Live speakers by node name, this one included (suspects count as live until declared down).
    pub members: BTreeSet<String>,
    /// Whether the view can be trusted: every known peer answered, or [`SETTLE`] passed since the start.
    pub settled: bool,
    /// Peers known from the API, not members, whose datagrams came in the last [`UNREADABLE_FRESH`] under a
    /// key this speaker does not hold: the two hold different keys (here or there).
    pub unreadable: BTreeSet<String>,
}

impl View {
    /// Whether this speaker is outvoted on the key: more peers it cannot read talk to it than it has
    /// members. Then it is the one with the wrong key (a Secret that differs on this node, a stale mount),
    /// not a side of a network split (a split brings no datagrams at all), and it must not announce: it
    /// would answer for every IP beside their owners.
    pub fn outvoted(&self) -> bool {
        self.unreadable.len() > self.members.len()
    }
}

/// Where and how this speaker takes part.
#[derive(Debug, Clone)]
pub struct MembershipSettings {
    /// This node's name.
    pub node: String,
    /// The address peers send to (this node's address and the membership port).
    pub advertise: SocketAddr,
    /// The shared keys.
    pub keys: Keyring,
}

/// Errors starting the membership.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// The UDP socket could not be bound.
    #[error("cannot bind the membership socket on {addr}: {source}")]
    Bind {
        /// The address tried.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

impl MembershipError {
    /// A static label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            MembershipError::Bind { .. } => "membership_bind",
        }
    }
}

enum Command {
    Peers(BTreeMap<String, SocketAddr>),
    Keys(Box<Keyring>),
    Leave(oneshot::Sender<()>),
}

/// A running membership; see the module doc.
pub struct Membership {
    view: watch::Receiver<View>,
    commands: mpsc::UnboundedSender<Command>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).unwrap_or(0)
}

impl Membership {
    /// Binds the socket and joins the cluster through `peers` (node name to membership address). Returns
    /// the handle and the task that runs the protocol: spawn it supervised; it ends only after [`leave`]
    /// or once every handle is dropped.
    ///
    /// [`leave`]: Membership::leave
    pub async fn start(
        settings: MembershipSettings,
        peers: BTreeMap<String, SocketAddr>,
        metrics: Metrics,
    ) -> Result<(Membership, impl Future<Output = ()> + Send + 'static), MembershipError> {
        // Bound to the advertised address, so datagrams leave from it and peers can tell who sent what by the
        // source address; the wildcard only when the address is not this host's (a NAT'd InternalIP).
        let socket = match UdpSocket::bind(settings.advertise).await {
            Ok(socket) => socket,
            Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
                let bind: SocketAddr = match settings.advertise {
                    SocketAddr::V4(a) => (std::net::Ipv4Addr::UNSPECIFIED, a.port()).into(),
                    SocketAddr::V6(a) => (std::net::Ipv6Addr::UNSPECIFIED, a.port()).into(),
                };
                warn!(advertise = %settings.advertise, %bind, "the advertised address is not on this host; binding the wildcard");
                UdpSocket::bind(bind).await.map_err(|source| MembershipError::Bind { addr: bind, source })?
            }
            Err(source) => return Err(MembershipError::Bind { addr: settings.advertise, source }),
        };
        let me = MemberId { node: settings.node.clone(), addr: settings.advertise, incarnation: now_ms() };
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&me.incarnation.to_le_bytes());
        seed[8..16].copy_from_slice(&crate::election::weight(&me.node, settings.advertise.ip()).to_le_bytes());
        let foca = Foca::new(me, swim_config(peers.len() + 1), StdRng::from_seed(seed), PostcardCodec);
        let (view_tx, view) = watch::channel(View {
            members: [settings.node.clone()].into(),
            settled: peers.keys().all(|p| *p == settings.node),
            unreadable: BTreeSet::new(),
        });
        let (commands, rx) = mpsc::unbounded_channel();
        let task = Task {
            foca,
            runtime: AccumulatingRuntime::new(),
            socket,
            keys: settings.keys,
            heard: HashMap::new(),
            known: peers.values().copied().collect(),
            unreadable: HashMap::new(),
            me: settings.node,
            peers,
            view: view_tx,
            metrics,
            timers: mpsc::unbounded_channel(),
        };
        task.publish_keys();
        Ok((Membership { view, commands }, task.run(rx)))
    }

    /// The live view; changes wake the receiver.
    pub fn view(&self) -> watch::Receiver<View> {
        self.view.clone()
    }

    /// Replaces the peers known from the API (node name to membership address).
    pub fn set_peers(&self, peers: BTreeMap<String, SocketAddr>) {
        let _ = self.commands.send(Command::Peers(peers));
    }

    /// Replaces the keys (a rotation): datagrams go out under the new sending key as each peer shows it holds
    /// it, and the previous key, if the ring keeps one, is still accepted.
    pub fn set_keys(&self, keys: Keyring) {
        let _ = self.commands.send(Command::Keys(Box::new(keys)));
    }

    /// [`set_keys`](Membership::set_keys) as a function a key-file follower can own; it does not keep the
    /// membership running once the handle is gone.
    pub fn key_setter(&self) -> impl Fn(Keyring) + Send + Sync + 'static {
        let commands = self.commands.downgrade();
        move |keys| {
            if let Some(commands) = commands.upgrade() {
                let _ = commands.send(Command::Keys(Box::new(keys)));
            }
        }
    }

    /// Leaves the cluster gracefully: tells the peers at once, so they take this node's IPs without waiting
    /// for a probe to fail, and returns once the goodbye is on the wire.
    pub async fn leave(self) {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Leave(done)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), wait).await;
        }
    }
}

type Swim = Foca<MemberId, PostcardCodec, StdRng, foca::NoCustomBroadcast>;

struct Task {
    foca: Swim,
    runtime: AccumulatingRuntime<MemberId>,
    socket: UdpSocket,
    keys: Keyring,
    /// The latest authentic datagram from each peer known from the API, by its address.
    heard: HashMap<SocketAddr, Heard>,
    /// The peers' membership addresses, as the API gives them: only these are recorded in `heard`.
    known: HashSet<SocketAddr>,
    /// When each known peer last sent a datagram under a key this speaker does not hold.
    unreadable: HashMap<SocketAddr, Instant>,
    me: String,
    peers: BTreeMap<String, SocketAddr>,
    view: watch::Sender<View>,
    metrics: Metrics,
    timers: (mpsc::UnboundedSender<Timer<MemberId>>, mpsc::UnboundedReceiver<Timer<MemberId>>),
}

impl Task {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let settle = tokio::time::sleep(SETTLE);
        tokio::pin!(settle);
        let mut invite = tokio::time::interval(INVITE_EVERY);
        let mut buf = vec![0u8; 65_536];
        loop {
            let result = tokio::select! {
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((len, from)) => self.receive(&buf[..len], from),
                    Err(e) => {
                        warn!(error = %e, "membership socket receive failed");
                        Ok(())
                    }
                },
                Some(timer) = self.timers.1.recv() => self.foca.handle_timer(timer, &mut self.runtime),
                _ = invite.tick() => {
                    self.publish_unreadable();
                    self.invite()
                }
                () = &mut settle, if !self.view.borrow().settled => {
                    self.view.send_modify(|v| v.settled = true);
                    Ok(())
                }
                command = commands.recv() => match command {
                    Some(Command::Peers(peers)) => {
                        // Forget what was learnt from addresses no peer has any more.
                        self.known = peers.values().copied().collect();
                        let known = &self.known;
                        self.heard.retain(|a, _| known.contains(a));
                        self.unreadable.retain(|a, _| known.contains(a));
                        self.peers = peers;
                        let size = self.peers.len() + 1;
                        if let Err(e) = self.foca.set_config(swim_config(size)) {
                            debug!(error = %e, "keeping the SWIM settings");
                        }
                        self.invite()
                    }
                    Some(Command::Keys(keys)) => {
                        let changed = self.keys != *keys;
                        self.keys = *keys;
                        self.publish_keys();
                        // Say the new sending key to some peers at once, rather than at the next probe.
                        if changed { self.foca.gossip(&mut self.runtime) } else { Ok(()) }
                    }
                    Some(Command::Leave(done)) => {
                        self.leave().await;
                        let _ = done.send(());
                        return;
                    }
                    None => return,
                },
            };
            if let Err(e) = result {
                debug!(error = %e, "membership message not handled");
            }
            self.flush().await;
        }
    }

    /// Records what an authentic datagram from a known peer says: the key it sends with, and its clock's
    /// offset. Exports the largest offset among peers heard from lately (signed: positive when the peer is
    /// ahead), so a clock drifting towards [`envelope::MAX_CLOCK_SKEW_MS`] (where its datagrams would be
    /// refused as stale) shows before it splits the membership. Only wall clocks are compared here; every
    /// timeout of the protocol runs on the monotonic clock.
    fn note(&mut self, from: SocketAddr, opened: &envelope::Opened<'_>, now_ms: u64) {
        if !self.known.contains(&from) {
            return;
        }
        let skew_ms = i64::try_from(i128::from(opened.sent_ms) - i128::from(now_ms)).unwrap_or(i64::MAX);
        let at = Instant::now();
        self.heard.insert(from, Heard { key: opened.sender_primary, skew_ms, at });
        let largest = self
            .heard
            .values()
            .filter(|h| at.duration_since(h.at) < SKEW_FRESH)
            .map(|h| h.skew_ms)
            .max_by_key(|s| s.unsigned_abs())
            .unwrap_or(0);
        #[allow(clippy::cast_precision_loss)] // milliseconds, far below 2^52
        self.metrics.membership_clock_skew.set(largest as f64 / 1000.0);
    }

    /// The sending key `peer` named lately; None (seal under every key) when nothing authentic came from it
    /// for [`KEY_FRESH`], since it may have changed keys (a rollback) without telling this speaker.
    fn peer_key(&self, peer: SocketAddr) -> Option<KeyId> {
        self.heard.get(&peer).filter(|h| h.at.elapsed() < KEY_FRESH).map(|h| h.key)
    }

    fn publish_keys(&self) {
        let labels = KeyIdLabels {
            sending: self.keys.primary().id().to_string(),
            accepting: self.keys.previous_id().map(|id| id.to_string()).unwrap_or_default(),
        };
        self.metrics.membership_keys.clear();
        self.metrics.membership_keys.get_or_create(&labels).set(1);
    }

    fn receive(&mut self, datagram: &[u8], from: SocketAddr) -> Result<(), foca::Error> {
        let now = now_ms();
        match envelope::open(&self.keys, now, datagram) {
            Ok(opened) => {
                self.note(from, &opened, now);
                let key = if opened.sealed_with == self.keys.primary().id() { "current" } else { "previous" };
                self.metrics.membership_accepted.get_or_create(&KeyLabels { key }).inc();
                self.foca.handle_data(opened.payload, &mut self.runtime)
            }
            Err(e) => {
                self.metrics.membership_rejected.get_or_create(&ReasonLabels { reason: e.label() }).inc();
                debug!(%from, error = %e, "dropping a membership datagram");
                if matches!(e, envelope::OpenError::UnknownKey(_)) && self.known.contains(&from) {
                    self.unreadable.insert(from, Instant::now());
                    self.publish_unreadable();
                }
                Ok(())
            }
        }
    }

    /// Publishes which known peers, not members, talked lately under a key this speaker lacks.
    fn publish_unreadable(&mut self) {
        self.unreadable.retain(|_, at| at.elapsed() < UNREADABLE_FRESH);
        let members: BTreeSet<String> = self.foca.iter_members().map(|m| m.id().node.clone()).collect();
        let unreadable: BTreeSet<String> = self
            .peers
            .iter()
            .filter(|(node, addr)| self.unreadable.contains_key(*addr) && !members.contains(*node))
            .map(|(node, _)| node.clone())
            .collect();
        self.view.send_if_modified(|v| {
            let modified = v.unreadable != unreadable;
            v.unreadable = unreadable;
            modified
        });
    }

    /// Announces to peers that the API knows of but the membership does not have.
    fn invite(&mut self) -> Result<(), foca::Error> {
        let members: BTreeSet<String> = self.foca.iter_members().map(|m| m.id().node.clone()).collect();
        for (node, addr) in &self.peers {
            if *node != self.me && !members.contains(node) {
                let dst = MemberId { node: node.clone(), addr: *addr, incarnation: 0 };
                self.foca.announce(dst, &mut self.runtime)?;
            }
        }
        Ok(())
    }

    async fn leave(&mut self) {
        info!("leaving the membership");
        let members: Vec<MemberId> = self.foca.iter_members().map(|m| m.id().clone()).collect();
        if let Err(e) = self.foca.leave_cluster(&mut self.runtime) {
            warn!(error = %e, "leaving the membership failed");
        }
        // leave_cluster reaches only a few members; gossip makes sure everyone hears it before we go.
        let _ = self.foca.gossip(&mut self.runtime);
        self.flush().await;
        debug!(members = members.len(), "goodbye sent");
    }

    /// Sends what foca queued, schedules its timers and publishes membership changes.
    async fn flush(&mut self) {
        while let Some((dst, data)) = self.runtime.to_send() {
            let now = now_ms();
            let sealed: Vec<Vec<u8>> = envelope::sealing_keys(&self.keys, self.peer_key(dst.addr))
                .into_iter()
                .map(|key| envelope::seal(&self.keys, key, now, &data))
                .collect();
            for datagram in sealed {
                if let Err(e) = self.socket.send_to(&datagram, dst.addr).await {
                    debug!(to = %dst.addr, error = %e, "membership send failed");
                }
            }
        }
        while let Some((after, timer)) = self.runtime.to_schedule() {
            let tx = self.timers.0.clone();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let _ = tx.send(timer);
            });
        }
        let mut changed = false;
        while let Some(notification) = self.runtime.to_notify() {
            changed = true;
            match notification {
                OwnedNotification::MemberUp(id) => {
                    info!(node = %id.node, addr = %id.addr, "speaker joined the membership");
                    self.metrics.membership_transitions.get_or_create(&TransitionLabels { kind: "up" }).inc();
                }
                OwnedNotification::MemberDown(id) => {
                    info!(node = %id.node, "speaker left the membership");
                    self.metrics.membership_transitions.get_or_create(&TransitionLabels { kind: "down" }).inc();
                }
                OwnedNotification::Rejoin(id) => {
                    warn!(incarnation = id.incarnation, "this speaker was declared down and rejoined");
                }
                OwnedNotification::Defunct => warn!("this speaker was declared down"),
                other => debug!(?other, "membership notification"),
            }
        }
        if changed {
            let mut members: BTreeSet<String> = self.foca.iter_members().map(|m| m.id().node.clone()).collect();
            members.insert(self.me.clone());
            self.metrics.membership_size.set(i64::try_from(members.len()).unwrap_or(i64::MAX));
            let all_peers_in = self.peers.keys().all(|p| members.contains(p));
            self.view.send_if_modified(|v| {
                let settled = v.settled || all_peers_in;
                let modified = v.members != members || v.settled != settled;
                v.members = members;
                v.settled = settled;
                modified
            });
        }
    }
}
