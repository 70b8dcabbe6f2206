//! The userspace data path of forward mode: relays TCP connections and UDP datagrams that arrive for an
//! owned VIP's Service ports to the Service's endpoints (the plan's, the same the kernel path would DNAT to),
//! taken in turn, for nodes where the nftables path is unavailable and for PROXY protocol ports.
//!
//! How packets for the VIP reach a socket although the VIP is on no interface (the speaker answers ARP/NDP
//! for it, and the kernel must not): [`rules`] (per frontend a policy rule sends exactly that VIP, protocol
//! and port to a table holding `local default dev lo`; per VIP a `prohibit` rule refuses every other port),
//! and transparent, free-binding listeners on VIP:port ([`sockets`]). [`routing`] keeps the kernel's rules
//! in line through rtnetlink. TCP ([`tcp`]) is relayed with `splice(2)` ([`splice`]); UDP ([`udp`]) keeps a
//! flow per client ([`flows`]). Either may prepend a PROXY protocol v2 header ([`proxy_protocol`]).
//!
//! [`UserspaceForwarder::set`] is the one entry point: it makes the running relays exactly those wanted.

mod flows;
pub mod proxy_protocol;
mod routing;
pub mod rules;
mod sockets;
mod splice;
mod stats;
mod tcp;
mod udp;

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use self::routing::{Failure, Family, Routing};
use self::rules::Rule;
pub use self::stats::{Stats, StatsSnapshot};
use crate::{Frontend, Protocol};

/// One frontend to relay, and where to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay {
    /// The VIP, protocol and port traffic arrives on.
    pub frontend: Frontend,
    /// Where it goes: the endpoints, each new connection or flow to the next (none: refused).
    pub backends: Vec<SocketAddr>,
    /// Whether the backend gets a PROXY protocol v2 header with the client's address.
    pub proxy_protocol: bool,
}

/// Bounds on what the relay holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// TCP connections relayed at once (all frontends); more are accepted and closed at once, and counted.
    pub max_tcp_connections: usize,
    /// UDP flows open at once (all frontends); a new one evicts the least recently active.
    pub max_udp_flows: usize,
    /// A UDP flow without traffic in either direction for this long is closed.
    pub udp_idle: Duration,
    /// How long dialling the backend may take before the client's connection is reset.
    pub tcp_connect_timeout: Duration,
    /// A relayed TCP connection silent this long is probed with keepalives (four, a quarter of this apart,
    /// at least a second); if either side never answers, the connection is closed, so a client that
    /// vanished does not hold its slot. Data left unacknowledged for as long (this plus the probes) closes
    /// it too (`TCP_USER_TIMEOUT`).
    pub tcp_keepalive: Duration,
}

impl Limits {
    /// Values that suit a node serving a few busy Services.
    pub const RECOMMENDED: Limits = Limits {
        max_tcp_connections: 10_000,
        max_udp_flows: 10_000,
        udp_idle: Duration::from_secs(60),
        tcp_connect_timeout: Duration::from_secs(5),
        tcp_keepalive: Duration::from_secs(60),
    };
}

/// Why a frontend is not relayed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The listening socket could not be opened on the VIP and port.
    #[error("cannot listen on {address}")]
    Listen {
        /// The VIP and port.
        address: SocketAddr,
        /// The socket error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// No rtnetlink connection could be opened.
    #[error("cannot open an rtnetlink connection")]
    Netlink(#[source] Arc<std::io::Error>),
    /// A routing rule or route needed by the frontend could not be written, or the kernel's could not be read.
    #[error("cannot update the routing rules")]
    Routing(#[source] rtnetlink::Error),
    /// The node has no loopback interface for the relay table's local route.
    #[error("no loopback interface")]
    NoLoopback,
    /// The same frontend was listed more than once; the first entry is used.
    #[error("frontend listed more than once")]
    Duplicate,
}

impl Error {
    /// A static label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Listen { .. } => "listen",
            Error::Netlink(_) => "netlink",
            Error::Routing(_) => "routing",
            Error::NoLoopback => "no_loopback",
            Error::Duplicate => "duplicate",
        }
    }
}

/// The running relays and the kernel routing that feeds them.
#[derive(Debug)]
pub struct UserspaceForwarder {
    limits: Limits,
    stats: Arc<Stats>,
    tcp_connections: Arc<Semaphore>,
    udp: Option<udp::Shared>,
    routing: Option<Routing>,
    running: BTreeMap<Frontend, Running>,
    /// Cancels every task; a child token per frontend.
    root: CancellationToken,
}

/// Where new connections and flows of a frontend go.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    backends: Arc<[SocketAddr]>,
    proxy_protocol: bool,
}

impl Target {
    /// The backend of the `n`th new connection or flow: the endpoints in turn; `None` when there is none.
    fn backend(&self, n: usize) -> Option<SocketAddr> {
        self.backends.get(n.checked_rem(self.backends.len())?).copied()
    }
}

/// One relayed frontend.
#[derive(Debug)]
struct Running {
    target: watch::Sender<Target>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Drop for UserspaceForwarder {
    fn drop(&mut self) {
        // Stops every task; routing rules stay until `clear` (or the next run's first `set`) removes them.
        self.root.cancel();
    }
}

impl UserspaceForwarder {
    /// A forwarder relaying nothing yet. Touches neither sockets nor the kernel's routing until [`set`].
    ///
    /// [`set`]: UserspaceForwarder::set
    pub fn new(limits: Limits) -> Self {
        UserspaceForwarder::with_stats(limits, Arc::new(Stats::default()))
    }

    /// Like [`UserspaceForwarder::new`], counting into `stats` (the speaker's metrics read them).
    pub fn with_stats(limits: Limits, stats: Arc<Stats>) -> Self {
        UserspaceForwarder {
            limits,
            stats,
            tcp_connections: Arc::new(Semaphore::new(limits.max_tcp_connections.min(Semaphore::MAX_PERMITS))),
            udp: None,
            routing: None,
            running: BTreeMap::new(),
            root: CancellationToken::new(),
        }
    }

    /// The counters, shared with the relay's tasks.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// The frontends being relayed now.
    pub fn frontends(&self) -> BTreeSet<Frontend> {
        self.running.keys().copied().collect()
    }

    /// Makes the set of relays exactly `wanted`: opens listeners and routing rules for new frontends and
    /// closes removed ones (with their connections and flows). Frontends that stay are not disturbed; a
    /// changed PROXY setting applies to their new connections and flows, changed backends too (a UDP flow to
    /// a backend that left is closed, so the client's next datagram goes to a current one). Every VIP in `wanted`
    /// is refused on its other ports, even if its frontends fail. Returns the frontends that are not
    /// relayed, with why. Idempotent; the first call also removes rules a previous run left behind.
    pub async fn set(&mut self, wanted: &[Relay]) -> Vec<(Frontend, Error)> {
        self.set_refusing(wanted, &BTreeSet::new()).await
    }

    /// [`set`](Self::set), and also refuses every port that is not relayed of each VIP in `refused` (the
    /// speaker passes every IP it owns on this path, so one it relays nothing of is refused, not routed on).
    pub async fn set_refusing(&mut self, wanted: &[Relay], refused: &BTreeSet<IpAddr>) -> Vec<(Frontend, Error)> {
        let mut failed = Vec::new();
        let mut targets = BTreeMap::new();
        for relay in wanted {
            let target = Target { backends: relay.backends.as_slice().into(), proxy_protocol: relay.proxy_protocol };
            match targets.entry(relay.frontend) {
                Entry::Occupied(_) => failed.push((relay.frontend, Error::Duplicate)),
                Entry::Vacant(entry) => {
                    entry.insert(target);
                }
            }
        }
        let removed: Vec<Frontend> = self.running.keys().filter(|f| !targets.contains_key(f)).copied().collect();
        let mut broken = Vec::new();
        for (frontend, target) in &targets {
            match self.running.get(frontend) {
                Some(running) => {
                    running.target.send_if_modified(|current| std::mem::replace(current, target.clone()) != *target);
                }
                None => match self.start(*frontend, target.clone()) {
                    Ok(running) => {
                        self.running.insert(*frontend, running);
                    }
                    Err(e) => broken.push((*frontend, e)),
                },
            }
        }
        let relayed: Vec<Frontend> = self.running.keys().filter(|f| targets.contains_key(f)).copied().collect();
        let desired =
            rules::desired(relayed, targets.keys().map(|frontend| frontend.ip).chain(refused.iter().copied()));
        broken.extend(self.sync_routing(&desired).await);
        // A frontend without its rule gets no traffic: close it, and the next `set` tries again.
        for (frontend, _) in &broken {
            self.stop(*frontend).await;
        }
        for frontend in removed {
            self.stop(frontend).await;
        }
        failed.extend(broken);
        failed
    }

    /// Removes everything: listeners, connections, flows, routing rules and the relay table's routes.
    /// Called on clean shutdown; the forwarder can be `set` again afterwards.
    pub async fn clear(&mut self) {
        for (frontend, error) in self.set(&[]).await {
            warn!(%frontend, error = %error, "clearing the userspace relay");
        }
    }

    /// Opens the frontend's socket and starts its task.
    fn start(&mut self, frontend: Frontend, target: Target) -> Result<Running, Error> {
        let address = SocketAddr::new(frontend.ip, frontend.port);
        let listen_error = |e| Error::Listen { address, source: Arc::new(e) };
        info!(%frontend, backends = ?target.backends, proxy_protocol = target.proxy_protocol, "relaying");
        let (sender, receiver) = watch::channel(target);
        let cancel = self.root.child_token();
        let task = match frontend.protocol {
            Protocol::Tcp => {
                let listener = sockets::tcp_listener(address).map_err(listen_error)?;
                let shared = tcp::Shared {
                    connections: self.tcp_connections.clone(),
                    connect_timeout: self.limits.tcp_connect_timeout,
                    keepalive: self.limits.tcp_keepalive,
                    stats: self.stats.clone(),
                };
                tokio::spawn(tcp::serve(listener, receiver, shared, cancel.clone()))
            }
            Protocol::Udp => {
                let socket = sockets::udp_socket(address).map_err(listen_error)?;
                let limits = self.limits;
                let stats = self.stats.clone();
                let shared = self
                    .udp
                    .get_or_insert_with(|| udp::Shared::new(limits.max_udp_flows, limits.udp_idle, stats))
                    .clone();
                tokio::spawn(udp::serve(frontend, socket, receiver, shared, cancel.clone()))
            }
        };
        Ok(Running { target: sender, cancel, task })
    }

    /// Stops a frontend and waits for its listener to close (so its port can be bound again at once).
    async fn stop(&mut self, frontend: Frontend) {
        let Some(running) = self.running.remove(&frontend) else { return };
        running.cancel.cancel();
        if let Err(e) = running.task.await
            && e.is_panic()
        {
            warn!(%frontend, "relay task panicked");
        }
        info!(%frontend, "stopped relaying");
    }

    /// Brings the kernel's rules to `desired`; maps failures to the frontends they hurt.
    async fn sync_routing(&mut self, desired: &BTreeSet<Rule>) -> Vec<(Frontend, Error)> {
        let frontends: Vec<Frontend> = self.running.keys().copied().collect();
        let routing = match &mut self.routing {
            Some(routing) => routing,
            None => match Routing::connect() {
                Ok(routing) => self.routing.insert(routing),
                Err(e) => {
                    let e = Arc::new(e);
                    return frontends.into_iter().map(|f| (f, Error::Netlink(e.clone()))).collect();
                }
            },
        };
        let mut failed = Vec::new();
        for failure in routing.sync(desired).await {
            warn!(?failure, "routing rules not in place");
            let (hurt, error): (Vec<Frontend>, Error) = match failure {
                Failure::Rule(Rule::Relay(frontend), e) => (vec![frontend], Error::Routing(e)),
                Failure::Rule(Rule::Refuse(ip), e) => {
                    (frontends.iter().filter(|f| f.ip == ip).copied().collect(), Error::Routing(e))
                }
                Failure::Route(family, e) => {
                    (frontends.iter().filter(|f| Family::of(f.ip) == family).copied().collect(), Error::Routing(e))
                }
                Failure::Read(e) => (frontends.clone(), Error::Routing(e)),
                Failure::NoLoopback => (frontends.clone(), Error::NoLoopback),
            };
            failed.extend(hurt.into_iter().filter(|f| desired.contains(&Rule::Relay(*f))).map(|f| (f, error.clone())));
        }
        failed
    }
}
