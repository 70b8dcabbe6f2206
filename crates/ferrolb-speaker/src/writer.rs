//! The speaker's API writes: `L2Announcement` records and Events. They run off the placement loop
//! ([`crate::run`]), so a slow or absent API server never delays an announcement.

use std::time::Duration;

use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use tracing::{debug, warn};

use ferrolb_api::L2Announcement;
use ferrolb_api::k8s::k8s_openapi::api::events::v1::Event as K8sEvent;
use ferrolb_api::k8s::k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use ferrolb_api::k8s::{ObjectReference, jiff};

use crate::records::{ServiceRef, Write};

/// The field manager and reporting controller of everything the speaker writes.
const FIELD_MANAGER: &str = "ferrolb-speaker";

/// How long one API write may take before it is given up (and retried or redone by a later pass).
const API_TIMEOUT: Duration = Duration::from_secs(10);

/// What an Event is about.
#[derive(Clone)]
pub(crate) enum Regarding {
    Service(ServiceRef),
    /// A Node (cluster-scoped: its Events live in `default`, as the kubelet's do).
    Node(String),
}

impl Regarding {
    pub(crate) fn name(&self) -> &str {
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
pub(crate) struct OutEvent {
    pub(crate) regarding: Regarding,
    pub(crate) warning: bool,
    pub(crate) reason: &'static str,
    pub(crate) note: String,
}

/// Performs the API writes off the placement loop, so a slow API server never delays an announcement.
pub(crate) struct Writer {
    pub(crate) client: kube::Client,
}

impl Writer {
    /// Applies or deletes one record; failures are logged (a later pass redoes what is still needed).
    pub(crate) async fn write(&self, write: Write, me: &str) {
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
    pub(crate) async fn publish(&self, event: &OutEvent, me: &str) -> bool {
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
