//! The controller's long-running task: watch, wait for leadership, plan, apply, repeat.
//!
//! One task does all allocation, so decisions are serial and need no locks. Watch events only wake it up
//! (coalesced by a `Notify`); each pass reads the full current snapshot from the stores.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{Stream, StreamExt};
use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use ferrolb_api::IPAddressPool;
use ferrolb_api::k8s::{Namespace, ResourceExt, Service, Time, jiff};

use crate::apply::Applier;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::lease::{self, LeaseConfig};
use crate::metrics::Metrics;
use crate::plan::{Snapshot, State, plan};

/// How often a leader re-checks everything even without events.
const RESYNC: Duration = Duration::from_secs(30);

/// Liveness and readiness, shared with the health server.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
    heartbeat: AtomicU64,
}

impl Health {
    /// Whether the stores have synced (the controller can decide).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Whether the main loop ran within the last minute.
    pub fn is_alive(&self) -> bool {
        let last = self.heartbeat.load(Ordering::Relaxed);
        last == 0 || unix_now().saturating_sub(last) < 60
    }

    fn beat(&self) {
        self.heartbeat.store(unix_now(), Ordering::Relaxed);
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Watches one resource kind into a store, waking `notify` on every change. Metadata the controller never
/// reads (managedFields) is dropped to keep memory small at 10k Services.
fn watch_into<K>(api: Api<K>, notify: Arc<Notify>) -> (Store<K>, impl Stream<Item = ()>)
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (store, writer) = reflector::store::<K>();
    let kind = K::kind(&()).into_owned();
    let stream = reflector::reflector(
        writer,
        watcher(api, watcher::Config::default()).default_backoff().modify(|o: &mut K| o.managed_fields_mut().clear()),
    )
    .map(move |event| {
        if let Err(e) = event {
            warn!(kind = %kind, error = %e, "watch error; retrying with backoff");
        }
        notify.notify_one();
    });
    (store, stream)
}

/// Runs the controller until `shutdown` turns true.
pub async fn run(
    client: kube::Client,
    config: Config,
    metrics: Metrics,
    health: Arc<Health>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let notify = Arc::new(Notify::new());
    let (services, services_watch) = watch_into(Api::<Service>::all(client.clone()), notify.clone());
    let (pools, pools_watch) = watch_into(Api::<IPAddressPool>::all(client.clone()), notify.clone());
    let (namespaces, namespaces_watch) = watch_into(Api::<Namespace>::all(client.clone()), notify.clone());
    let watches = tokio::spawn(async move {
        tokio::join!(services_watch.collect::<()>(), pools_watch.collect::<()>(), namespaces_watch.collect::<()>());
    });

    tokio::select! {
        r = async { tokio::try_join!(services.wait_until_ready(), pools.wait_until_ready(), namespaces.wait_until_ready()) } => {
            r.map_err(|e| Error::Watch { resource: "stores", reason: e.to_string() })?;
        }
        _ = shutdown.changed() => return Ok(()),
    }
    health.ready.store(true, Ordering::Relaxed);
    info!("caches synced");

    let lease_config = LeaseConfig {
        namespace: config.lease_namespace.clone(),
        name: config.lease_name.clone(),
        identity: config.identity.clone(),
        duration: config.lease_duration,
    };
    let (mut leadership, lease_task) = lease::spawn(client.clone(), lease_config, shutdown.clone());
    let reporter = Reporter { controller: "ferrolb-controller".to_owned(), instance: Some(config.identity.clone()) };
    let applier = Applier {
        client: client.clone(),
        recorder: Recorder::new(client.clone(), reporter),
        leadership: leadership.clone(),
        metrics: metrics.clone(),
    };

    let mut state: Option<State> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_full = tokio::time::Instant::now();
    loop {
        health.beat();
        let mut wanted = false;
        tokio::select! {
            _ = notify.notified() => wanted = true,
            alive = leadership.changed() => {
                if !alive {
                    return Err(Error::Lease("leader election task ended".to_owned()));
                }
            }
            _ = tick.tick() => {
                if last_full.elapsed() >= RESYNC {
                    wanted = true;
                }
            }
            _ = shutdown.changed() => break,
        }
        if watches.is_finished() {
            return Err(Error::Watch { resource: "all", reason: "watch task ended".to_owned() });
        }
        let leader = leadership.is_leader();
        metrics.leader.set(i64::from(leader));
        if !leader {
            if state.take().is_some() {
                info!("not the leader any more; stopped writing");
            }
            continue;
        }
        if state.is_none() {
            info!("leading: restoring addresses from Service status, then allocating");
            wanted = true;
        }
        if !wanted {
            continue;
        }
        let st = state.get_or_insert_with(State::default);
        let started = std::time::Instant::now();
        let snapshot = Snapshot {
            services: services.state(),
            pools: pools.state(),
            namespace_labels: namespaces
                .state()
                .iter()
                .map(|n| (n.name_any(), n.labels().clone().into_iter().collect()))
                .collect::<HashMap<_, _>>(),
        };
        let plan = plan(st, &snapshot, &config, &Time(jiff::Timestamp::now()));
        metrics.allocations.inc_by(plan.n_allocated);
        for reason in &plan.failures {
            metrics.allocation_failures.get_or_create(&crate::metrics::ReasonLabels { reason }).inc();
        }
        for (pool, usage) in &plan.usage {
            for family in ferrolb_ipam::Family::ALL {
                let labels = crate::metrics::PoolLabels { pool: pool.clone(), family: family.label() };
                let u = usage.0[family.index()];
                metrics.pool_addresses.get_or_create(&labels).set(u.capacity as f64);
                metrics.pool_addresses_in_use.get_or_create(&labels).set(u.assigned as f64);
            }
        }
        applier.apply(plan, st).await;
        metrics.passes.inc();
        metrics.pass_seconds.observe(started.elapsed().as_secs_f64());
        last_full = tokio::time::Instant::now();
    }
    info!("shutting down");
    watches.abort();
    match lease_task.await {
        Ok(r) => r,
        Err(e) => Err(Error::Lease(e.to_string())),
    }
}
