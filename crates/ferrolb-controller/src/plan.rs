//! One reconcile pass as a pure function: from a snapshot of the cluster and the leader's allocator state to
//! a [`Plan`] of writes. No I/O here, so every rule is testable without an API server.
//!
//! The pass is level-based: it looks at every Service and pool each time. Deleted objects simply are not in
//! the snapshot, so their addresses are released; nothing depends on having seen a delete event.
//!
//! Every Service given an address carries Kubernetes' cleanup finalizer
//! (`service.kubernetes.io/load-balancer-cleanup`) until the address is released, so a deleted Service
//! lingers until the controller has let its address go, as with a cloud provider's load balancer.
//!
//! Addresses in conflict (an `AddressConflict` a speaker wrote: another host on the LAN answers for them)
//! are handed out to nobody; a Service holding one gets another address in the same pass, and the pool's
//! status lists them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_api::k8s::{ResourceExt, Service, Time};
use ferrolb_api::{
    IPAddressPool, IPAddressPoolStatus, LB_CLEANUP_FINALIZER, POOL_FINALIZER, handles_type_and_class, ingress_ip_modes,
    ingress_ips, join_pools, recorded_pools,
};
use ferrolb_ipam::{AllocError, Allocator, Labels, Pool, PoolName, PoolUsage, ServiceKey};

use crate::config::{Config, IpMode};
use crate::pool::{PoolError, PoolFacts, desired_status, overlaps, pool_from_resource};
use crate::service::{is_handled, key_of, request_from_service};

/// What the cluster looks like, from the reflector stores.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Every Service (handled or not).
    pub services: Vec<Arc<Service>>,
    /// Every pool.
    pub pools: Vec<Arc<IPAddressPool>>,
    /// Labels of every namespace.
    pub namespace_labels: HashMap<String, Labels>,
    /// Addresses another host on the LAN answers for, with the MAC that answered (from `AddressConflict`s).
    pub conflicts: BTreeMap<IpAddr, String>,
}

/// The last outcome reported for a Service, so Events are sent on change only: a different address or a
/// different reason is news, the same failure again is not.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Assigned(Vec<IpAddr>),
    Failed(AllocError),
}

/// The leader's state across passes. A replica that becomes leader starts from a fresh one, which makes the
/// first pass restore every address in Service status before allocating anything new.
#[derive(Debug, Default)]
pub struct State {
    allocator: Allocator,
    pools: Option<Vec<Pool>>,
    restored: bool,
    outcomes: HashMap<ServiceKey, Outcome>,
    /// Service writes sent but not yet seen in the store, so a stale store does not cause a second write.
    written: HashMap<ServiceKey, ServiceWrite>,
    /// Pool statuses sent but not yet seen in the store.
    pool_written: HashMap<String, IPAddressPoolStatus>,
}

impl State {
    /// Forgets a Service write that failed, so the next pass retries it.
    pub fn forget_service_write(&mut self, key: &ServiceKey) {
        self.written.remove(key);
    }

    /// Forgets a pool status write that failed.
    pub fn forget_pool_write(&mut self, name: &str) {
        self.pool_written.remove(name);
    }

    /// The allocator (for `ferrolb status` and metrics).
    pub fn allocator(&self) -> &Allocator {
        &self.allocator
    }
}

/// A write of one Service's status, pool annotation and cleanup finalizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceWrite {
    /// The Service.
    pub key: ServiceKey,
    /// Its resourceVersion when planned (a precondition for the writes).
    pub resource_version: Option<String>,
    /// `status.loadBalancer.ingress` addresses (empty: pending).
    pub ingress: Vec<IpAddr>,
    /// The `ipMode` for every address.
    pub ip_mode: IpMode,
    /// Whether the status must be written.
    pub write_status: bool,
    /// The pool annotation to set (`None`: remove), if it must be written.
    pub pool_annotation: Option<Option<String>>,
    /// Whether [`LB_CLEANUP_FINALIZER`] must be added (`true`) or removed (`false`), if it changes.
    pub cleanup_finalizer: Option<bool>,
}

impl ServiceWrite {
    /// Whether the object's metadata (the annotation or the finalizer) must be written.
    pub fn writes_metadata(&self) -> bool {
        self.pool_annotation.is_some() || self.cleanup_finalizer.is_some()
    }
}

/// What a Service should hold after the pass; `None` leaves that part as it is.
struct Desired {
    ingress: Option<Vec<IpAddr>>,
    pool_annotation: Option<Option<String>>,
    cleanup_finalizer: bool,
}

impl Desired {
    /// An address (or none) for a Service the controller handles: the finalizer goes with an address.
    fn handled(ingress: Vec<IpAddr>, pool_annotation: Option<String>) -> Self {
        let cleanup_finalizer = !ingress.is_empty();
        Desired { ingress: Some(ingress), pool_annotation: Some(pool_annotation), cleanup_finalizer }
    }

    /// A Service the controller no longer handles: what it wrote is cleared, except on a Service being
    /// deleted, where only the finalizer goes (the object goes with it).
    fn released(service: &Service) -> Self {
        if service.metadata.deletion_timestamp.is_some() {
            Desired { ingress: None, pool_annotation: None, cleanup_finalizer: false }
        } else {
            Desired { ingress: Some(Vec::new()), pool_annotation: Some(None), cleanup_finalizer: false }
        }
    }
}

/// An Event on a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEvent {
    /// The Service.
    pub key: ServiceKey,
    /// Its uid.
    pub uid: Option<String>,
    /// Warning (else Normal).
    pub warning: bool,
    /// CamelCase reason.
    pub reason: String,
    /// The message for a person.
    pub note: String,
}

/// A pool status to write.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolStatusWrite {
    /// The pool.
    pub name: String,
    /// The full status.
    pub status: IPAddressPoolStatus,
}

/// A pool finalizer change: the full finalizer list to write, with the resourceVersion it was based on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalizerWrite {
    /// The pool.
    pub name: String,
    /// The resourceVersion planned against.
    pub resource_version: Option<String>,
    /// The new finalizer list.
    pub finalizers: Vec<String>,
}

/// Everything one pass wants written, plus figures for metrics.
#[derive(Debug, Default)]
pub struct Plan {
    /// Service status and annotation writes.
    pub services: Vec<ServiceWrite>,
    /// Events to publish.
    pub events: Vec<ServiceEvent>,
    /// Pool status writes.
    pub pool_statuses: Vec<PoolStatusWrite>,
    /// Pool finalizer writes.
    pub finalizers: Vec<FinalizerWrite>,
    /// New successful allocations in this pass.
    pub n_allocated: u64,
    /// Failure labels of Services newly failing in this pass.
    pub failures: Vec<&'static str>,
    /// Usage of every valid pool.
    pub usage: BTreeMap<String, PoolUsage>,
}

/// Computes one pass. `state` is updated as if every write succeeds; failed writes are reported back with
/// [`State::forget_service_write`] / [`State::forget_pool_write`].
pub fn plan(state: &mut State, snapshot: &Snapshot, config: &Config, now: &Time) -> Plan {
    let mut plan = Plan::default();

    // Pools: parse, and hand the valid ones to the allocator when they changed.
    let mut invalid: HashMap<String, PoolError> = HashMap::new();
    let mut pools = Vec::new();
    for resource in &snapshot.pools {
        match pool_from_resource(resource) {
            Ok(pool) => pools.push(pool),
            Err(why) => {
                invalid.insert(resource.name_any(), why);
            }
        }
    }
    if state.pools.as_ref() != Some(&pools) {
        state.allocator.set_pools(pools.clone());
        state.pools = Some(pools);
    }
    // Conflicts: a Service holding such an address is released here and allocated again below.
    let conflicts: BTreeSet<IpAddr> = snapshot.conflicts.keys().copied().collect();
    if *state.allocator.conflicts() != conflicts {
        state.allocator.set_conflicts(conflicts);
    }

    let empty = Labels::new();
    let mut handled: Vec<&Arc<Service>> = snapshot.services.iter().filter(|s| is_handled(s, config)).collect();
    handled.sort_by(|a, b| {
        let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
        ta.cmp(&tb).then_with(|| key_of(a).cmp(&key_of(b)))
    });
    let requests: Vec<(&Arc<Service>, Result<ferrolb_ipam::Request, AllocError>)> = handled
        .iter()
        .map(|s| {
            let labels = snapshot.namespace_labels.get(&s.namespace().unwrap_or_default()).unwrap_or(&empty);
            (*s, request_from_service(s, labels))
        })
        .collect();

    // First pass as leader: take back every address already published, before anything new is handed out.
    if !state.restored {
        for (service, request) in &requests {
            let ips = ingress_ips(service);
            let Ok(request) = request else { continue };
            if ips.is_empty() {
                continue;
            }
            let hints: Vec<Option<PoolName>> =
                recorded_pools(service).unwrap_or_default().into_iter().map(|n| Some(PoolName::new(n))).collect();
            let with_hints: Vec<(IpAddr, Option<PoolName>)> =
                ips.iter().enumerate().map(|(i, ip)| (*ip, hints.get(i).cloned().flatten())).collect();
            if let Ok(assignment) = state.allocator.restore(request, &with_hints) {
                state.outcomes.insert(request.service.clone(), Outcome::Assigned(assignment.ips().collect()));
            }
        }
        state.restored = true;
    }

    // Release what is no longer asked for: deleted Services, other types or classes, unparseable requests.
    let live: std::collections::HashSet<ServiceKey> =
        requests.iter().filter(|(_, r)| r.is_ok()).map(|(s, _)| key_of(s)).collect();
    let gone: Vec<ServiceKey> =
        state.allocator.assignments().map(|(k, _)| k.clone()).filter(|k| !live.contains(k)).collect();
    for key in gone {
        state.allocator.release(&key);
    }
    let present: std::collections::HashSet<ServiceKey> = requests.iter().map(|(s, _)| key_of(s)).collect();
    state.outcomes.retain(|k, _| present.contains(k));

    for (service, request) in &requests {
        let key = key_of(service);
        let result: Result<(Vec<IpAddr>, String), AllocError> = match request {
            Ok(request) => state
                .allocator
                .assign(request)
                .map(|a| (a.ips().collect(), join_pools(a.pools().into_iter().map(PoolName::as_str)))),
            Err(e) => Err(e.clone()),
        };
        let outcome = match &result {
            Ok((ips, _)) => Outcome::Assigned(ips.clone()),
            Err(e) => Outcome::Failed(e.clone()),
        };
        if state.outcomes.get(&key) != Some(&outcome) {
            let uid = service.metadata.uid.clone();
            let event = match &result {
                Ok((ips, pools)) => {
                    plan.n_allocated += 1;
                    let list: Vec<String> = ips.iter().map(|ip| ip.to_string()).collect();
                    let mut note = format!("assigned {} from pool {pools}", list.join(", "));
                    // A Service that had addresses and now has others: its own reason (Events of one reason
                    // on one object merge into a series that keeps the first note), saying what it replaces,
                    // and why when the old address is in conflict, or the move looks arbitrary.
                    let mut reason = "IPAllocated";
                    let mut warning = false;
                    if let Some(Outcome::Assigned(before)) = state.outcomes.get(&key) {
                        for ip in before.iter().filter(|ip| !ips.contains(ip)) {
                            reason = "IPReassigned";
                            note.push_str(&format!("; replaces {ip}"));
                            if let Some(mac) = snapshot.conflicts.get(ip) {
                                warning = true;
                                note.push_str(&format!(", which another host on the LAN answers for ({mac})"));
                            }
                        }
                    }
                    ServiceEvent { key: key.clone(), uid, warning, reason: reason.to_owned(), note }
                }
                Err(e) => {
                    plan.failures.push(e.label());
                    ServiceEvent {
                        key: key.clone(),
                        uid,
                        warning: true,
                        reason: e.reason().to_owned(),
                        note: e.to_string(),
                    }
                }
            };
            plan.events.push(event);
            state.outcomes.insert(key.clone(), outcome);
        }
        let (ips, pools) = match result {
            Ok((ips, pools)) => (ips, Some(pools)),
            Err(_) => (Vec::new(), None),
        };
        push_service_write(state, &mut plan, service, Desired::handled(ips, pools), config);
    }

    // Services we once gave an address to but no longer handle (deleted, or type or class changed): clear
    // what we wrote and let them go. A Service of our type and class being deleted is ours to let go even
    // without our annotation (someone removed it); one of another type or class is left alone, its
    // finalizer may be another load balancer's.
    let ours_to_release = |s: &Service| {
        !is_handled(s, config)
            && (recorded_pools(s).is_some()
                || (has_cleanup_finalizer(s)
                    && handles_type_and_class(s, &config.load_balancer_class, config.handle_unclassed)))
    };
    for service in snapshot.services.iter().filter(|s| ours_to_release(s)) {
        push_service_write(state, &mut plan, service, Desired::released(service), config);
    }

    plan_pools(state, &mut plan, snapshot, &invalid, now);
    plan
}

fn has_cleanup_finalizer(service: &Service) -> bool {
    service.finalizers().iter().any(|f| f == LB_CLEANUP_FINALIZER)
}

fn push_service_write(state: &mut State, plan: &mut Plan, service: &Service, desired: Desired, config: &Config) {
    let key = key_of(service);
    let ip_mode = config.ip_mode;
    let current_ips = ingress_ips(service);
    let write_status = desired.ingress.as_ref().is_some_and(|ingress| {
        let modes_ok = ingress_ip_modes(service).iter().all(|m| *m == Some(ip_mode.as_str()));
        current_ips != *ingress || (!ingress.is_empty() && !modes_ok)
    });
    let current_annotation = recorded_pools(service).map(join_pools);
    let pool_annotation = desired.pool_annotation.filter(|wanted| *wanted != current_annotation);
    let cleanup_finalizer =
        (has_cleanup_finalizer(service) != desired.cleanup_finalizer).then_some(desired.cleanup_finalizer);
    let write = ServiceWrite {
        key: key.clone(),
        resource_version: service.metadata.resource_version.clone(),
        ingress: desired.ingress.unwrap_or(current_ips),
        ip_mode,
        write_status,
        pool_annotation,
        cleanup_finalizer,
    };
    if !write.write_status && !write.writes_metadata() {
        state.written.remove(&key);
        return;
    }
    let same_as_sent = state.written.get(&key).is_some_and(|w| {
        w.ingress == write.ingress
            && w.write_status == write.write_status
            && w.pool_annotation == write.pool_annotation
            && w.cleanup_finalizer == write.cleanup_finalizer
    });
    if same_as_sent {
        return;
    }
    state.written.insert(key, write.clone());
    plan.services.push(write);
}

fn plan_pools(
    state: &mut State,
    plan: &mut Plan,
    snapshot: &Snapshot,
    invalid: &HashMap<String, PoolError>,
    now: &Time,
) {
    let resources: Vec<&IPAddressPool> = snapshot.pools.iter().map(|p| p.as_ref()).collect();
    let overlaps = overlaps(&resources);
    let no_overlaps = Vec::new();
    for resource in &snapshot.pools {
        let name = resource.name_any();
        let pool_name = PoolName::new(&name);
        let pool = state.allocator.pools().find(|p| p.name() == &pool_name).cloned();
        let usage = pool.as_ref().map(|p| state.allocator.usage(p)).unwrap_or_default();
        let holders = state.allocator.services_in_pool(&pool_name);
        let deleting = resource.metadata.deletion_timestamp.is_some();
        if pool.is_some() {
            plan.usage.insert(name.clone(), usage);
        }
        let conflicts: Vec<String> = pool.as_ref().map_or_else(Vec::new, |p| {
            snapshot
                .conflicts
                .iter()
                .filter(|(ip, _)| p.contains(**ip))
                .map(|(ip, mac)| format!("{ip} answered by {mac}"))
                .collect()
        });
        let facts = PoolFacts {
            conflicts,
            invalid: invalid.get(&name),
            usage,
            overlaps: overlaps.get(&name).unwrap_or(&no_overlaps),
            holders: &holders,
            deleting,
            reserved: pool.as_ref().map_or((0, Vec::new()), |p| {
                let count = ferrolb_ipam::Family::ALL.iter().map(|f| p.excluded(*f)).fold(0u128, u128::saturating_add);
                (count, p.excluded_kinds().map(|k| k.as_str()).collect())
            }),
        };
        let current = resource.status.as_ref();
        let desired = desired_status(current, &facts, resource.metadata.generation, now);
        if current == Some(&desired) {
            state.pool_written.remove(&name);
        } else if state.pool_written.get(&name) != Some(&desired) {
            state.pool_written.insert(name.clone(), desired.clone());
            plan.pool_statuses.push(PoolStatusWrite { name: name.clone(), status: desired });
        }

        let finalizers = resource.finalizers().to_vec();
        let has = finalizers.iter().any(|f| f == POOL_FINALIZER);
        if !deleting && !has {
            let mut with = finalizers.clone();
            with.push(POOL_FINALIZER.to_owned());
            plan.finalizers.push(FinalizerWrite {
                name,
                resource_version: resource.resource_version(),
                finalizers: with,
            });
        } else if deleting && has && holders.is_empty() {
            let without = finalizers.into_iter().filter(|f| f != POOL_FINALIZER).collect();
            plan.finalizers.push(FinalizerWrite {
                name,
                resource_version: resource.resource_version(),
                finalizers: without,
            });
        }
    }
    state.pool_written.retain(|name, _| snapshot.pools.iter().any(|p| p.name_any() == *name));
}

#[cfg(test)]
mod tests;
