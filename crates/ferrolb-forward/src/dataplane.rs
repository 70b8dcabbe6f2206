//! The data path as the speaker drives it: chooses the path once at start, then makes it match each plan.
//!
//! The speaker calls [`Dataplane::set`] twice per change, so that a new owner forwards before it announces
//! and an old owner stops forwarding only after it stops answering: first with the union of the IPs it owned
//! and now owns, then (after the announcer has moved) with the IPs it now owns. Both calls are cheap when
//! nothing changed: the kernel path rewrites its table only when the rendered text differs.
//!
//! Ports whose Service asks for the PROXY protocol go through the userspace relay even when the kernel path
//! is in use, since only a relay can write the header; so do all ports when nftables is unavailable. The
//! relay dials this node's own address (of the IP's family when it has one) at the NodePort.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::Frontend;
use crate::conntrack::{Conntrack, StaleFlows, stale_udp_flows};
use crate::kernel::{self, NftTable, render};
use crate::metrics::{Metrics, PathLabels};
use crate::plan::Forward;
use crate::userspace::{self, Limits, Relay, UserspaceForwarder};

/// Which data path to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardPath {
    /// nftables if it works on this node, else userspace.
    #[default]
    Auto,
    /// nftables only.
    Kernel,
    /// The userspace relay only.
    Userspace,
}

/// Forward-mode settings.
#[derive(Debug, Clone, Default)]
pub struct ForwardOptions {
    /// The data path.
    pub path: ForwardPath,
}

/// The frontends the userspace path could not set up, each with why.
#[derive(Debug)]
pub struct RelayFailures(pub Vec<(Frontend, userspace::Error)>);

impl fmt::Display for RelayFailures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self.0.iter().map(|(frontend, e)| format!("{frontend}: {e}")).collect();
        f.write_str(&list.join("; "))
    }
}

/// Why the data path could not start or apply a plan; each has a static [`Error::label`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel path failed.
    #[error("kernel path: {0}")]
    Kernel(#[from] kernel::Error),
    /// The userspace path failed for some frontends.
    #[error("userspace path: {0}")]
    Userspace(RelayFailures),
    /// The relay's task on its runtime panicked or was cancelled.
    #[error("userspace path: the relay's task failed: {0}")]
    RelayTask(#[source] tokio::task::JoinError),
    /// The userspace relay's runtime could not start.
    #[error("cannot start the userspace relay's runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

impl Error {
    /// A static label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Kernel(e) => e.label(),
            Error::Userspace(_) => "relay",
            Error::RelayTask(_) => "relay_task",
            Error::Runtime(_) => "relay_runtime",
        }
    }
}

/// The userspace relay on a tokio runtime of its own (one worker thread), so a busy relay never delays the
/// membership's probes: sharing the speaker's workers, a relay saturated by one fast stream got the owner
/// declared dead by its peers (`hack/bench/dataplane`). Every call into the relay runs on that runtime,
/// because its sockets belong to that runtime's reactor.
struct RelayHost {
    runtime: Option<tokio::runtime::Runtime>,
    relay: Arc<tokio::sync::Mutex<UserspaceForwarder>>,
    /// The last successful call relayed nothing (after the first, which also removes leftovers).
    idle: bool,
}

impl RelayHost {
    fn start(metrics: &Metrics) -> Result<RelayHost, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ferrolb-relay")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let relay = UserspaceForwarder::with_stats(Limits::RECOMMENDED, metrics.relay.clone());
        Ok(RelayHost { runtime: Some(runtime), relay: Arc::new(tokio::sync::Mutex::new(relay)), idle: false })
    }

    /// Relays `wanted` and refuses every other port of its VIPs and of the VIPs in `refused`.
    async fn set(&mut self, wanted: Vec<Relay>, refused: BTreeSet<IpAddr>) -> Result<(), Error> {
        let Some(runtime) = &self.runtime else { return Ok(()) };
        // Relaying and refusing nothing, again: skip the routing dump that every call makes.
        let nothing = wanted.is_empty() && refused.is_empty();
        if nothing && self.idle {
            return Ok(());
        }
        self.idle = nothing;
        let relay = self.relay.clone();
        let failed = runtime
            .spawn(async move { relay.lock().await.set_refusing(&wanted, &refused).await })
            .await
            .map_err(Error::RelayTask)?;
        if failed.is_empty() {
            return Ok(());
        }
        self.idle = false;
        Err(Error::Userspace(RelayFailures(failed)))
    }

    async fn clear(&mut self) {
        let Some(runtime) = &self.runtime else { return };
        self.idle = true;
        let relay = self.relay.clone();
        let _ = runtime.spawn(async move { relay.lock().await.clear().await }).await;
    }
}

impl Drop for RelayHost {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which is not allowed inside the speaker's own runtime.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Removes what a forward-mode speaker that crashed may have left: the nftables table and the relay's
/// routing rules. Called at start in kube-proxy mode; failures (no `nft` here, say) are only logged.
pub async fn remove_leftovers() {
    if let Err(e) = NftTable::default().remove().await {
        tracing::debug!(error = %e, "no nftables table to remove");
    }
    let mut relay = UserspaceForwarder::new(Limits::RECOMMENDED);
    relay.clear().await;
}

/// Where stale UDP flows go to be forgotten, and the task that forgets them.
type Forgetter = (tokio::sync::mpsc::UnboundedSender<Vec<StaleFlows>>, JoinHandle<()>);

/// Starts the task that deletes the conntrack entries of stale UDP flows, one batch after another (so a
/// rolling update never runs many `conntrack` processes at once), off the speaker's loop. Failures are logged
/// and counted, never fatal: the flows then last until their clients pause. None, with one warning, when
/// `conntrack` does not run here.
async fn forgetter(conntrack: Conntrack, metrics: &Metrics) -> Option<Forgetter> {
    if !conntrack.available().await {
        warn!("conntrack is not available: UDP flows to removed endpoints last until their clients pause");
        return None;
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<StaleFlows>>();
    let errors = metrics.forward_errors.clone();
    let task = tokio::spawn(async move {
        while let Some(batch) = rx.recv().await {
            for flows in &batch {
                match conntrack.forget(flows).await {
                    Ok(0) => {}
                    Ok(deleted) => {
                        info!(frontend = %flows.frontend, endpoint = %flows.endpoint, deleted, "forgot UDP flows to a removed endpoint")
                    }
                    Err(e) => {
                        errors.inc();
                        warn!(frontend = %flows.frontend, endpoint = %flows.endpoint, error = %e, reason = e.label(), "could not forget UDP flows to a removed endpoint");
                    }
                }
            }
        }
    });
    Some((tx, task))
}

/// The running data path.
pub struct Dataplane {
    nft: Option<NftTable>,
    applied: Option<String>,
    /// What the applied table forwards (to find UDP flows whose endpoint went away).
    applied_forwards: Vec<Forward>,
    /// Where stale UDP flows go to be forgotten, one batch after another; None without `conntrack`.
    forgetter: Option<tokio::sync::mpsc::UnboundedSender<Vec<StaleFlows>>>,
    /// The forgetter's task, until the caller takes it to supervise it.
    background: Option<JoinHandle<()>>,
    relay: RelayHost,
    metrics: Metrics,
}

impl std::fmt::Debug for Dataplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataplane").field("kernel", &self.nft.is_some()).finish_non_exhaustive()
    }
}

/// The relays for `forwards`: each to its endpoints, as the kernel path would DNAT.
pub fn relays(forwards: &[&Forward]) -> Vec<Relay> {
    forwards
        .iter()
        .map(|f| Relay { frontend: f.frontend, backends: f.endpoints.clone(), proxy_protocol: f.proxy_protocol })
        .collect()
}

impl Dataplane {
    /// Starts the data path: with [`ForwardPath::Auto`], the kernel path if an empty table can be written.
    pub async fn start(options: &ForwardOptions, metrics: Metrics) -> Result<Dataplane, Error> {
        let nft = NftTable::default();
        let empty = render(&BTreeSet::new(), &[]);
        let kernel = match options.path {
            ForwardPath::Userspace => false,
            ForwardPath::Kernel => {
                nft.apply(&empty).await?;
                true
            }
            ForwardPath::Auto => match nft.apply(&empty).await {
                Ok(()) => true,
                Err(e) => {
                    warn!(error = %e, "nftables is not usable here; forwarding in userspace");
                    false
                }
            },
        };
        info!(path = if kernel { "kernel (nftables)" } else { "userspace" }, "forward mode");
        let relay = RelayHost::start(&metrics)?;
        let (forgetter, background) = match kernel {
            true => forgetter(Conntrack::default(), &metrics).await.unzip(),
            false => (None, None),
        };
        Ok(Dataplane {
            nft: kernel.then_some(nft),
            applied: kernel.then_some(empty),
            applied_forwards: Vec::new(),
            forgetter,
            background,
            relay,
            metrics,
        })
    }

    /// The data path's long-running background task (the conntrack forgetter), once, for the caller to
    /// supervise: it must not end while the data path is in use.
    pub fn take_background_task(&mut self) -> Option<JoinHandle<()>> {
        self.background.take()
    }

    /// Whether the kernel path is in use.
    pub fn kernel(&self) -> bool {
        self.nft.is_some()
    }

    /// Makes the data path forward exactly `forwards`; `owned` lists every IP this node answers for.
    pub async fn set(&mut self, owned: &BTreeSet<IpAddr>, forwards: &[Forward]) -> Result<(), Error> {
        let result = self.update(owned, forwards).await;
        if result.is_err() {
            self.metrics.forward_errors.inc();
        }
        result
    }

    async fn update(&mut self, owned: &BTreeSet<IpAddr>, forwards: &[Forward]) -> Result<(), Error> {
        let (relayed, in_kernel): (Vec<&Forward>, Vec<&Forward>) =
            forwards.iter().partition(|f| self.nft.is_none() || f.proxy_protocol);
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.metrics.forwarded_ports.get_or_create(&PathLabels { path: "kernel" }).set(count(in_kernel.len()));
        self.metrics.forwarded_ports.get_or_create(&PathLabels { path: "userspace" }).set(count(relayed.len()));
        if let Some(nft) = &self.nft {
            let in_kernel: Vec<Forward> = in_kernel.into_iter().cloned().collect();
            let script = render(owned, &in_kernel);
            if self.applied.as_deref() != Some(script.as_str()) {
                nft.apply(&script).await?;
                self.applied = Some(script);
                let stale = stale_udp_flows(&self.applied_forwards, &in_kernel);
                self.applied_forwards = in_kernel;
                self.forget(stale);
            }
        }
        // The relay cannot check source ranges yet: a restricted Service's ports are not relayed at all
        // (fail closed) rather than opened to everyone.
        let (refused, relayed): (Vec<&Forward>, Vec<&Forward>) = relayed.into_iter().partition(|f| f.restricted);
        if !refused.is_empty() {
            warn!(
                frontends = ?refused.iter().map(|f| f.frontend.to_string()).collect::<Vec<_>>(),
                "not relaying ports of Services with loadBalancerSourceRanges: the userspace path cannot enforce them"
            );
        }
        // Without the kernel path nothing else refuses an owned IP's other ports: refuse every owned IP, also
        // one whose ports are all refused above or cannot be relayed. With it, the nftables table refuses
        // them, and only the IPs of refused PROXY-protocol ports need a rule.
        let refused_ips: BTreeSet<IpAddr> =
            if self.nft.is_none() { owned.clone() } else { refused.iter().map(|f| f.frontend.ip).collect() };
        self.relay.set(relays(&relayed), refused_ips).await
    }

    /// Hands UDP flows whose endpoint is gone to the forgetter, so their next datagram is DNATed to a
    /// current endpoint.
    fn forget(&self, stale: Vec<StaleFlows>) {
        if let (false, Some(forgetter)) = (stale.is_empty(), &self.forgetter) {
            let _ = forgetter.send(stale);
        }
    }

    /// Re-writes the table if something else removed it (a flushed ruleset); called every few seconds.
    pub async fn repair(&mut self) -> Result<(), Error> {
        if let (Some(nft), Some(script)) = (&self.nft, &self.applied)
            && !nft.present().await
        {
            warn!("ferrolb's nftables table vanished (a flushed ruleset?); writing it again");
            if let Err(e) = nft.apply(script).await {
                self.metrics.forward_errors.inc();
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Removes everything; called on a clean shutdown, after the announcer has stopped answering.
    pub async fn clear(&mut self) {
        self.relay.clear().await;
        if let Some(nft) = &self.nft {
            if let Err(e) = nft.remove().await {
                warn!(error = %e, "could not remove ferrolb's nftables table");
            }
            self.applied = None;
        }
    }
}
