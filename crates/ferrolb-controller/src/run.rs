//! The controller's long-running task: watch, wait for leadership, plan, apply, repeat.
//!
//! One task does all allocation, so decisions are serial and need no locks. Watch events only wake it up
//! (coalesced by a `Notify`); each pass reads the full current snapshot from the stores.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use tokio::sync::{Notify, watch};
use tracing::{error, info};

use ferrolb_api::k8s::{Namespace, ResourceExt, Service, Time, jiff};
use ferrolb_api::{AddressConflict, IPAddressPool};
use ferrolb_runtime::{Ended, Health, Tasks, watch_into};

use crate::apply::Applier;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::lease::{self, LeaseConfig};
use crate::metrics::Metrics;
use crate::plan::{Snapshot, State, plan};

/// How often a leader re-checks everything even without events.
const RESYNC: Duration = Duration::from_secs(30);

/// How long a leader releasing its Lease at shutdown may take.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// What an operator must read when the Lease namespace is missing: without it no replica can lead, so none
/// allocates anything.
pub fn missing_lease_namespace(namespace: &str) -> String {
    format!(
        "the Lease namespace {namespace:?} does not exist, so no controller can become leader and nothing is \
         allocated: create it (kubectl create namespace {namespace}) or start the controller with \
         --lease-namespace set to an existing namespace"
    )
}

/// Whether the Lease namespace was there at the last look, so its absence is said once, not every turn.
#[derive(Debug, Default)]
struct LeaseNamespace {
    /// `None` before the first look.
    existed: Option<bool>,
}

impl LeaseNamespace {
    /// Records whether the namespace exists; returns the new answer when it changed (the first look counts
    /// as a change only when the namespace is missing).
    fn changed(&mut self, exists: bool) -> Option<bool> {
        let before = self.existed.replace(exists);
        (before.unwrap_or(true) != exists).then_some(exists)
    }
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
    let mut tasks = Tasks::default();
    let (services, services_watch) = watch_into(Api::<Service>::all(client.clone()), notify.clone());
    let (pools, pools_watch) = watch_into(Api::<IPAddressPool>::all(client.clone()), notify.clone());
    let (namespaces, namespaces_watch) = watch_into(Api::<Namespace>::all(client.clone()), notify.clone());
    let (conflicts, conflicts_watch) = watch_into(Api::<AddressConflict>::all(client.clone()), notify.clone());
    tasks.spawn("watch", async move {
        tokio::join!(
            services_watch.collect::<()>(),
            pools_watch.collect::<()>(),
            namespaces_watch.collect::<()>(),
            conflicts_watch.collect::<()>()
        );
    });

    tokio::select! {
        r = async {
            tokio::try_join!(
                services.wait_until_ready(),
                pools.wait_until_ready(),
                namespaces.wait_until_ready(),
                conflicts.wait_until_ready()
            )
        } => {
            r.map_err(Error::Watch)?;
        }
        ended = tasks.ended() => return Err(Error::Task(ended)),
        _ = shutdown.changed() => return Ok(()),
    }
    health.set_ready(true);
    info!("caches synced");
    let mut lease_namespace = LeaseNamespace::default();

    let lease_config = LeaseConfig {
        namespace: config.lease_namespace.clone(),
        name: config.lease_name.clone(),
        identity: config.identity.clone(),
        duration: config.lease_duration,
    };
    let (mut leadership, election) = lease::election(client.clone(), lease_config, shutdown.clone());
    tasks.spawn("leader election", election);
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
        let exists = namespaces.get(&ObjectRef::new(&config.lease_namespace)).is_some();
        if let Some(exists) = lease_namespace.changed(exists) {
            let why = (!exists).then(|| missing_lease_namespace(&config.lease_namespace));
            match &why {
                Some(why) => error!("{why}"),
                None => info!(namespace = %config.lease_namespace, "the Lease namespace exists now; electing a leader"),
            }
            health.set_blocked(why);
        }
        let mut wanted = false;
        tokio::select! {
            _ = notify.notified() => wanted = true,
            alive = leadership.changed() => {
                if !alive {
                    return Err(Error::Task(Ended::Returned("leader election")));
                }
            }
            ended = tasks.ended() => return Err(Error::Task(ended)),
            _ = tick.tick() => {
                if last_full.elapsed() >= RESYNC {
                    wanted = true;
                }
            }
            _ = shutdown.changed() => break,
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
            conflicts: conflicts
                .state()
                .iter()
                .filter_map(|c| Some((c.spec.ip.parse().ok()?, c.spec.mac.clone())))
                .collect(),
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
    tasks.finish("leader election", RELEASE_TIMEOUT).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_lease_namespace_is_said_once_and_its_return_once() {
        let mut seen = LeaseNamespace::default();
        assert_eq!(seen.changed(true), None, "present at the start: nothing to say");
        let mut seen_missing = LeaseNamespace::default();
        assert_eq!(seen_missing.changed(false), Some(false), "missing at the start is said at once");
        assert_eq!(seen_missing.changed(false), None);
        assert_eq!(seen_missing.changed(true), Some(true));
        assert_eq!(seen.changed(false), Some(false), "deleted later");
        assert!(missing_lease_namespace("lb").contains("kubectl create namespace lb"));
    }
}
