//! The speaker's API writes: `L2Announcement` and `BGPSession` records, `AddressConflict`s and Events. They
//! run in a task of their own, off the placement loop ([`crate::run`]), so a slow or absent API server never
//! delays an announcement. Record writes are level-based (the newest batch replaces an unsent one: a later
//! pass redoes what is still needed); Events and `AddressConflict` writes are one-off, so they are retried
//! with backoff for about ten minutes, and none is lost to a short outage.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, warn};

use ferrolb_api::k8s::k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use ferrolb_api::k8s::{Event as K8sEvent, ObjectReference, jiff};
use ferrolb_api::{AddressConflict, BGPSession, L2Announcement};

use crate::bgp::report::SessionWrite;
use crate::conflicts::ConflictWrite;
use crate::events::{OutEvent, Regarding};
use crate::records::Write;

/// The field manager and reporting controller of everything the speaker writes.
const FIELD_MANAGER: &str = "ferrolb-speaker";

/// How long one API write may take before it is given up (and retried or redone by a later pass).
const API_TIMEOUT: Duration = Duration::from_secs(10);

/// How many times an Event is tried before it is dropped (with backoff, that covers about ten minutes).
const EVENT_ATTEMPTS: u32 = 12;

/// How many record writes run at once.
const CONCURRENT_WRITES: usize = 8;

impl Regarding {
    fn event_namespace(&self) -> &str {
        match self {
            Regarding::Service(s) => &s.namespace,
            Regarding::Node(_) | Regarding::BgpPeer(_) => "default",
        }
    }

    fn action(&self) -> &'static str {
        match self {
            Regarding::Service(_) => "Announce",
            Regarding::Node(_) => "CheckMembership",
            Regarding::BgpPeer(_) => "Peer",
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
            Regarding::BgpPeer(name) => ObjectReference {
                api_version: Some(format!("{}/{}", ferrolb_api::GROUP, ferrolb_api::VERSION)),
                kind: Some("BGPPeer".to_owned()),
                name: Some(name.clone()),
                ..Default::default()
            },
        }
    }
}

/// Where the placement loop hands its writes; dropping it lets the writer task finish what it holds.
pub(crate) struct Outbox {
    records: watch::Sender<Vec<Write>>,
    sessions: watch::Sender<Vec<SessionWrite>>,
    events: mpsc::UnboundedSender<OutEvent>,
    conflicts: mpsc::UnboundedSender<ConflictWrite>,
}

/// A one-off write that failed, to be tried again.
enum Retry {
    Event(OutEvent),
    Conflict(ConflictWrite),
}

impl Outbox {
    /// Replaces the record writes not yet started with `writes`.
    pub(crate) fn records(&self, writes: Vec<Write>) {
        self.records.send_replace(writes);
    }

    /// Replaces the `BGPSession` writes not yet started with `writes`.
    pub(crate) fn sessions(&self, writes: Vec<SessionWrite>) {
        self.sessions.send_replace(writes);
    }

    /// Queues an Event.
    pub(crate) fn event(&self, event: OutEvent) {
        let _ = self.events.send(event);
    }

    /// Queues an `AddressConflict` write.
    pub(crate) fn conflict(&self, write: ConflictWrite) {
        let _ = self.conflicts.send(write);
    }
}

/// The writer task of speaker `me` (whose `BGPSession` records live in `namespace`) and the [`Outbox`] that
/// feeds it. The task ends once the outbox is dropped and what it held is written (or given up).
pub(crate) fn writer_task(
    client: kube::Client,
    me: String,
    namespace: String,
) -> (Outbox, impl Future<Output = ()> + Send + 'static) {
    let (records, mut records_rx) = watch::channel::<Vec<Write>>(Vec::new());
    let (sessions, mut sessions_rx) = watch::channel::<Vec<SessionWrite>>(Vec::new());
    let (events, mut events_rx) = mpsc::unbounded_channel::<OutEvent>();
    let (conflicts, mut conflicts_rx) = mpsc::unbounded_channel::<ConflictWrite>();
    let writer = Writer { client, namespace };
    let task = async move {
        // One-off writes that failed (an API outage): retried with backoff so none is lost to a short outage.
        let mut retries: Vec<(Instant, Retry, u32)> = Vec::new();
        loop {
            let next_retry = retries.iter().map(|r| r.0).min();
            let retry_due = async {
                match next_retry {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = records_rx.changed() => {
                    if changed.is_err() { break; }
                    let batch = records_rx.borrow_and_update().clone();
                    futures::stream::iter(batch).for_each_concurrent(CONCURRENT_WRITES, |w| writer.write(w, &me)).await;
                }
                changed = sessions_rx.changed() => {
                    if changed.is_err() { break; }
                    let batch = sessions_rx.borrow_and_update().clone();
                    futures::stream::iter(batch).for_each_concurrent(CONCURRENT_WRITES, |w| writer.session(w, &me)).await;
                }
                Some(event) = events_rx.recv() => {
                    if !writer.publish(&event, &me).await {
                        retries.push((Instant::now() + Duration::from_secs(1), Retry::Event(event), 1));
                    }
                }
                Some(write) = conflicts_rx.recv() => {
                    if !writer.conflict(&write).await {
                        retries.push((Instant::now() + Duration::from_secs(1), Retry::Conflict(write), 1));
                    }
                }
                () = retry_due => {
                    let now = Instant::now();
                    let (due, later): (Vec<_>, Vec<_>) = retries.drain(..).partition(|r| r.0 <= now);
                    retries = later;
                    for (_, pending, attempts) in due {
                        let done = match &pending {
                            Retry::Event(event) => writer.publish(event, &me).await,
                            Retry::Conflict(write) => writer.conflict(write).await,
                        };
                        if done {
                            continue;
                        }
                        if attempts >= EVENT_ATTEMPTS {
                            match &pending {
                                Retry::Event(event) => {
                                    warn!(regarding = %event.regarding.name(), note = %event.note, "giving up on an event")
                                }
                                Retry::Conflict(write) => warn!(?write, "giving up on an AddressConflict write"),
                            }
                        } else {
                            let backoff = Duration::from_secs(1 << attempts.min(6));
                            retries.push((Instant::now() + backoff, pending, attempts + 1));
                        }
                    }
                }
                else => break,
            }
        }
    };
    (Outbox { records, sessions, events, conflicts }, task)
}

/// Performs the API writes.
struct Writer {
    client: kube::Client,
    /// Where this speaker's `BGPSession` records live.
    namespace: String,
}

impl Writer {
    /// Applies or deletes one record; failures are logged (a later pass redoes what is still needed).
    async fn write(&self, write: Write, me: &str) {
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
                match delete_unchanged(&api, &name, resource_version).await {
                    Ok(()) => debug!(%namespace, %name, "removed an L2Announcement (or it was gone)"),
                    Err(e) => warn!(%namespace, %name, error = %e, "removing an L2Announcement failed"),
                }
            }
        }
    }

    /// Applies or deletes one `BGPSession` record (spec, then status); failures are logged and a later pass
    /// redoes what is still needed.
    async fn session(&self, write: SessionWrite, me: &str) {
        let api: Api<BGPSession> = Api::namespaced(self.client.clone(), &self.namespace);
        match write {
            SessionWrite::Apply { name, spec, status } => {
                let mut obj = BGPSession::new(&name, spec);
                obj.metadata.labels = Some([("ferrolb.io/node".to_owned(), me.to_owned())].into());
                let params = PatchParams::apply(FIELD_MANAGER).force();
                let result = tokio::time::timeout(API_TIMEOUT, async {
                    api.patch(&name, &params, &Patch::Apply(&obj)).await?;
                    let status = serde_json::json!({
                        "apiVersion": format!("{}/{}", ferrolb_api::GROUP, ferrolb_api::VERSION),
                        "kind": "BGPSession",
                        "status": status,
                    });
                    api.patch_status(&name, &params, &Patch::Apply(&status)).await
                })
                .await;
                match result {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => warn!(namespace = %self.namespace, %name, error = %e, "writing a BGPSession failed"),
                    Err(_) => warn!(namespace = %self.namespace, %name, "writing a BGPSession timed out"),
                }
            }
            SessionWrite::Delete { name, resource_version } => {
                match delete_unchanged(&api, &name, resource_version).await {
                    Ok(()) => debug!(%name, "removed a BGPSession (or it was gone)"),
                    Err(e) => warn!(%name, error = %e, "removing a BGPSession failed"),
                }
            }
        }
    }

    /// Creates, replaces or deletes an `AddressConflict`; returns whether it is done (a delete of one that
    /// is gone or was rewritten since it was read counts as done).
    async fn conflict(&self, write: &ConflictWrite) -> bool {
        let api: Api<AddressConflict> = Api::all(self.client.clone());
        let (action, name, result) = match write {
            ConflictWrite::Apply { name, spec } => {
                let obj = AddressConflict::new(name, spec.clone());
                let params = PatchParams::apply(FIELD_MANAGER).force();
                let result =
                    match tokio::time::timeout(API_TIMEOUT, api.patch(name, &params, &Patch::Apply(&obj))).await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err(e)) => Err(Failed::Api(e)),
                        Err(_) => Err(Failed::Timeout),
                    };
                ("writing", name, result)
            }
            ConflictWrite::Delete { name, resource_version } => {
                ("removing", name, delete_unchanged(&api, name, resource_version.clone()).await)
            }
        };
        if let Err(e) = &result {
            warn!(%name, error = %e, "{action} an AddressConflict failed; will retry");
        }
        result.is_ok()
    }

    /// Creates an Event. Not through kube's `Recorder`: it folds Events with the same reason into a series
    /// that keeps the first note, and every takeover note here says something new.
    /// Returns whether the Event was created.
    async fn publish(&self, event: &OutEvent, me: &str) -> bool {
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
            reason: Some(event.reason.as_str().to_owned()),
            note: Some(event.note.clone()),
            type_: Some(if event.reason.warning() { "Warning" } else { "Normal" }.to_owned()),
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

/// Why an API write did not happen.
#[derive(Debug, thiserror::Error)]
enum Failed {
    /// The API server refused it.
    #[error(transparent)]
    Api(kube::Error),
    /// No answer within [`API_TIMEOUT`].
    #[error("timed out after {}s", API_TIMEOUT.as_secs())]
    Timeout,
}

/// Deletes `name` if it is still at `resource_version`, within [`API_TIMEOUT`]. Gone already, or rewritten
/// since it was read (by a new owner), counts as done.
async fn delete_unchanged<K>(api: &Api<K>, name: &str, resource_version: Option<String>) -> Result<(), Failed>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let params =
        DeleteParams { preconditions: Some(Preconditions { resource_version, uid: None }), ..Default::default() };
    match tokio::time::timeout(API_TIMEOUT, api.delete(name, &params)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(kube::Error::Api(s))) if s.code == 404 || s.code == 409 => Ok(()),
        Ok(Err(e)) => Err(Failed::Api(e)),
        Err(_) => Err(Failed::Timeout),
    }
}
