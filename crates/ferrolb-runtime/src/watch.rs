//! One watch feeding one reflector store, with the wake-up every consumer needs.

use std::sync::Arc;

use futures::{Stream, StreamExt};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use tokio::sync::Notify;
use tracing::warn;

/// A reflector store for `K` and the stream that keeps it filled; every change wakes `notify`.
///
/// Watch errors are logged and retried with backoff, so the store keeps its last state while the API server
/// is away (the components fail static). Metadata nobody reads (managedFields) is dropped before it is
/// stored, which keeps memory small with many objects. The stream never ends on its own: drive it in a
/// supervised task.
pub fn watch_into<K>(api: Api<K>, notify: Arc<Notify>) -> (Store<K>, impl Stream<Item = ()> + Send + 'static)
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    watch_into_with(api, watcher::Config::default(), notify)
}

/// [`watch_into`] with the watch narrowed by `config`, e.g. to one object by a `metadata.name` field
/// selector (which RBAC by `resourceNames` allows for list and watch).
pub fn watch_into_with<K>(
    api: Api<K>,
    config: watcher::Config,
    notify: Arc<Notify>,
) -> (Store<K>, impl Stream<Item = ()> + Send + 'static)
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (store, writer) = reflector::store::<K>();
    let kind = K::kind(&()).into_owned();
    let stream = reflector::reflector(
        writer,
        watcher(api, config).default_backoff().modify(|o: &mut K| o.managed_fields_mut().clear()),
    )
    .map(move |event| {
        if let Err(e) = event {
            warn!(kind = %kind, error = %e, "watch error; retrying with backoff");
        }
        notify.notify_one();
    });
    (store, stream)
}
