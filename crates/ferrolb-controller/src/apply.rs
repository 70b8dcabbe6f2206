//! Applies a [`Plan`] to the API server, only while this replica holds the lease.
//!
//! Service status is written with a JSON merge patch carrying the resourceVersion the plan was made from, so
//! a write based on a stale view fails (409) and the next pass decides again; the pool annotation and the
//! cleanup finalizer likewise, with a strategic merge patch, before the status. Merge patches rather than
//! server-side apply: `ingress` is an atomic list, and a merge patch replaces or clears it exactly even when
//! another manager (MetalLB, before a migration) wrote it first.

use futures::{StreamExt, stream};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use serde_json::{Value, json};
use tracing::{debug, warn};

use ferrolb_api::k8s::{ObjectReference, Service};
use ferrolb_api::{ALLOCATED_FROM_POOL, IPAddressPool, LB_CLEANUP_FINALIZER};

use crate::lease::Leadership;
use crate::metrics::{Metrics, ReasonLabels};
use crate::plan::{FinalizerWrite, Plan, PoolStatusWrite, ServiceEvent, ServiceWrite, State};

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "ferrolb-controller";
/// Writes in flight at once (the API server handles these in parallel).
const CONCURRENT_WRITES: usize = 32;

/// Executes plans.
pub struct Applier {
    pub(crate) client: kube::Client,
    pub(crate) recorder: Recorder,
    pub(crate) leadership: Leadership,
    pub(crate) metrics: Metrics,
}

/// The strategic merge patch of a Service's pool annotation and cleanup finalizer. Finalizers merge as a set
/// under a strategic merge patch, so others' finalizers are kept without copying the list.
fn metadata_patch(write: &ServiceWrite) -> Value {
    let mut metadata = json!({ "resourceVersion": write.resource_version });
    if let Some(annotation) = &write.pool_annotation {
        metadata["annotations"] = json!({ ALLOCATED_FROM_POOL: annotation });
    }
    match write.cleanup_finalizer {
        Some(true) => metadata["finalizers"] = json!([LB_CLEANUP_FINALIZER]),
        Some(false) => metadata["$deleteFromPrimitiveList/finalizers"] = json!([LB_CLEANUP_FINALIZER]),
        None => {}
    }
    json!({ "metadata": metadata })
}

fn params() -> PatchParams {
    PatchParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..Default::default() }
}

impl Applier {
    /// Applies `plan`; failed writes are forgotten in `state` so the next pass retries them.
    pub async fn apply(&self, plan: Plan, state: &mut State) {
        let failed: Vec<ServiceWrite> = stream::iter(plan.services)
            .map(|w| async move { if self.write_service(&w).await { None } else { Some(w) } })
            .buffer_unordered(CONCURRENT_WRITES)
            .filter_map(|x| async move { x })
            .collect()
            .await;
        for w in failed {
            state.forget_service_write(&w.key);
        }
        stream::iter(plan.events).for_each_concurrent(CONCURRENT_WRITES, |e| self.publish(e)).await;
        for write in plan.pool_statuses {
            if !self.write_pool_status(&write).await {
                state.forget_pool_write(&write.name);
            }
        }
        for write in plan.finalizers {
            self.write_finalizers(&write).await;
        }
    }

    fn failed(&self, reason: &'static str, what: &str, error: &kube::Error) {
        self.metrics.write_failures.get_or_create(&ReasonLabels { reason }).inc();
        match error {
            kube::Error::Api(s) if s.code == 409 => debug!(%what, "conflict; the next pass decides again"),
            _ => warn!(%what, error = %error, "write failed; will retry"),
        }
    }

    async fn write_service(&self, write: &ServiceWrite) -> bool {
        let api: Api<Service> = Api::namespaced(self.client.clone(), write.key.namespace());
        let name = write.key.name();
        // Metadata first, so the finalizer is on the object before an address is published. Both writes carry
        // the planned resourceVersion: the status write the one the metadata write returned, which differs
        // from the planned one only by that write.
        let mut resource_version = write.resource_version.clone();
        if write.writes_metadata() {
            if !self.leadership.is_leader() {
                return false;
            }
            match api.patch(name, &params(), &Patch::Strategic(&metadata_patch(write))).await {
                Ok(service) => resource_version = service.metadata.resource_version,
                Err(kube::Error::Api(s)) if s.code == 404 => return true,
                Err(e) => {
                    self.failed("service_metadata", &write.key.to_string(), &e);
                    return false;
                }
            }
        }
        if write.write_status {
            if !self.leadership.is_leader() {
                return false;
            }
            let ingress: Value = if write.ingress.is_empty() {
                Value::Null
            } else {
                write
                    .ingress
                    .iter()
                    .map(|ip| json!({ "ip": ip.to_string(), "ipMode": write.ip_mode.as_str() }))
                    .collect()
            };
            let body = json!({
                "metadata": { "resourceVersion": resource_version },
                "status": { "loadBalancer": { "ingress": ingress } },
            });
            match api.patch_status(name, &params(), &Patch::Merge(&body)).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => return true,
                Err(e) => {
                    self.failed("service_status", &write.key.to_string(), &e);
                    return false;
                }
            }
        }
        true
    }

    async fn publish(&self, event: ServiceEvent) {
        if !self.leadership.is_leader() {
            return;
        }
        let reference = ObjectReference {
            api_version: Some("v1".to_owned()),
            kind: Some("Service".to_owned()),
            name: Some(event.key.name().to_owned()),
            namespace: Some(event.key.namespace().to_owned()),
            uid: event.uid.clone(),
            ..Default::default()
        };
        let ev = Event {
            type_: if event.warning { EventType::Warning } else { EventType::Normal },
            reason: event.reason.clone(),
            note: Some(event.note.clone()),
            action: "Allocate".to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &reference).await {
            self.failed("event", &event.key.to_string(), &e);
        }
    }

    async fn write_pool_status(&self, write: &PoolStatusWrite) -> bool {
        if !self.leadership.is_leader() {
            return false;
        }
        let api: Api<IPAddressPool> = Api::all(self.client.clone());
        let mut status = json!(write.status);
        // A merge patch leaves out what it does not mention: an empty list, skipped when serialized, must be
        // written as null to remove the one the server holds (the last conflict gone).
        if write.status.conflicts.is_empty()
            && let Some(fields) = status.as_object_mut()
        {
            fields.insert("conflicts".to_owned(), serde_json::Value::Null);
        }
        let body = json!({ "status": status });
        match api.patch_status(&write.name, &params(), &Patch::Merge(&body)).await {
            Ok(_) => true,
            Err(kube::Error::Api(s)) if s.code == 404 => true,
            Err(e) => {
                self.failed("pool_status", &write.name, &e);
                false
            }
        }
    }

    async fn write_finalizers(&self, write: &FinalizerWrite) {
        if !self.leadership.is_leader() {
            return;
        }
        let api: Api<IPAddressPool> = Api::all(self.client.clone());
        let body = json!({ "metadata": { "resourceVersion": write.resource_version, "finalizers": write.finalizers } });
        if let Err(e) = api.patch(&write.name, &params(), &Patch::Merge(&body)).await
            && !matches!(&e, kube::Error::Api(s) if s.code == 404)
        {
            self.failed("pool_finalizer", &write.name, &e);
        }
    }
}
