//! Leader election on a `coordination.k8s.io` Lease, so only one controller replica writes.
//!
//! Written here rather than taken from kube-lease-manager because losing the lease must stop writes at once
//! even when the API server cannot be reached: the holder keeps a local deadline (the time it started its
//! last successful renewal plus the lease duration, less a margin) and [`Leadership::is_leader`] turns false
//! when it passes, whatever the network does. Other replicas take over only after the lease record has stayed
//! unchanged for a full lease duration as measured by their own clock, so clocks need not agree.

use std::time::Duration;

use ferrolb_api::k8s::LeaseSpec;
use ferrolb_api::k8s::{Lease, MicroTime, ResourceExt, jiff};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::error::{Error, Result};

/// A view of whether this replica currently holds the lease.
#[derive(Debug, Clone)]
pub struct Leadership(watch::Receiver<Option<Instant>>);

impl Leadership {
    /// Whether this replica may write now.
    pub fn is_leader(&self) -> bool {
        self.0.borrow().is_some_and(|deadline| Instant::now() < deadline)
    }

    /// Waits until the lease state changes (acquired, renewed or lost).
    pub async fn changed(&mut self) -> bool {
        self.0.changed().await.is_ok()
    }
}

/// What to do with the lease as last read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Take it: it is free or has expired.
    Acquire,
    /// Renew it: we hold it.
    Renew,
    /// Someone else holds it.
    Wait,
}

/// Decides the next step from the lease record, our identity and how long the record has stayed unchanged
/// by our clock.
pub fn decide(spec: &LeaseSpec, identity: &str, unchanged_for: Duration, default_duration: Duration) -> Step {
    match spec.holder_identity.as_deref() {
        Some(holder) if holder == identity => Step::Renew,
        None | Some("") => Step::Acquire,
        Some(_) => {
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(default_duration, Duration::from_secs);
            if unchanged_for >= duration { Step::Acquire } else { Step::Wait }
        }
    }
}

/// Lease settings.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// Our identity.
    pub identity: String,
    /// Lease duration.
    pub duration: Duration,
}

/// The election loop; returns the leadership view and the loop to run as a supervised task (it releases
/// the lease and ends when `shutdown` fires, and never ends before).
pub fn election(
    client: kube::Client,
    config: LeaseConfig,
    mut shutdown: watch::Receiver<bool>,
) -> (Leadership, impl Future<Output = ()> + Send + 'static) {
    let (tx, rx) = watch::channel(None);
    let task = async move {
        let api: Api<Lease> = Api::namespaced(client, &config.namespace);
        let mut observed: Option<(Option<String>, Instant)> = None;
        loop {
            let started = Instant::now();
            let outcome = elect_once(&api, &config, &mut observed).await;
            match outcome {
                Ok(true) => {
                    let margin = config.duration / 10;
                    let was_leader = tx.borrow().is_some_and(|d| Instant::now() < d);
                    if !was_leader {
                        info!(identity = %config.identity, lease = %config.name, "became leader");
                    }
                    tx.send_replace(Some(started + config.duration - margin));
                }
                Ok(false) => {
                    if tx.borrow().is_some() {
                        info!(identity = %config.identity, "lost the lease to another replica");
                        tx.send_replace(None);
                    }
                }
                // Said once by the loop, which sees the namespaces; repeating it every round helps nobody.
                Err(e @ Error::LeaseNamespaceMissing(_)) => debug!(error = %e, "cannot create the lease"),
                Err(e) => warn!(error = %e, "lease renewal failed; leadership ends at its deadline unless renewed"),
            }
            let leader = tx.borrow().is_some_and(|d| Instant::now() < d);
            let pause = if leader { config.duration / 3 } else { (config.duration / 5).min(Duration::from_secs(2)) };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => {
                    if leader {
                        tx.send_replace(None);
                        release(&api, &config).await;
                    }
                    return;
                }
            }
        }
    };
    (Leadership(rx), task)
}

/// One election round; `Ok(true)` when we hold the lease afterwards.
async fn elect_once(
    api: &Api<Lease>,
    config: &LeaseConfig,
    observed: &mut Option<(Option<String>, Instant)>,
) -> Result<bool> {
    let now = MicroTime(jiff::Timestamp::now());
    let seconds = i32::try_from(config.duration.as_secs()).unwrap_or(i32::MAX).max(1);
    let Some(mut lease) = api.get_opt(&config.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta { name: Some(config.name.clone()), ..Default::default() },
            spec: Some(LeaseSpec {
                holder_identity: Some(config.identity.clone()),
                lease_duration_seconds: Some(seconds),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(kube::Error::Api(s)) if s.code == 404 => Err(Error::LeaseNamespaceMissing(config.namespace.clone())),
            Err(e) => Err(Error::Kube(e)),
        };
    };
    let rv = lease.resource_version();
    let unchanged_for = match observed {
        Some((seen, since)) if *seen == rv => since.elapsed(),
        _ => {
            *observed = Some((rv, Instant::now()));
            Duration::ZERO
        }
    };
    let mut spec = lease.spec.clone().unwrap_or_default();
    let step = decide(&spec, &config.identity, unchanged_for, config.duration);
    if step == Step::Wait {
        return Ok(false);
    }
    if step == Step::Acquire {
        spec.acquire_time = Some(now.clone());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        spec.holder_identity = Some(config.identity.clone());
    }
    spec.renew_time = Some(now);
    spec.lease_duration_seconds = Some(seconds);
    lease.spec = Some(spec);
    // `replace` carries the resourceVersion we read: a concurrent change makes it fail with 409.
    match api.replace(&config.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(Error::Kube(e)),
    }
}

/// Gives the lease up so another replica takes over at once.
async fn release(api: &Api<Lease>, config: &LeaseConfig) {
    let Ok(Some(mut lease)) = api.get_opt(&config.name).await else { return };
    let Some(spec) = lease.spec.as_mut() else { return };
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    spec.acquire_time = None;
    spec.renew_time = None;
    match api.replace(&config.name, &PostParams::default(), &lease).await {
        Ok(_) => info!(identity = %config.identity, "released the lease"),
        Err(e) => warn!(error = %e, "releasing the lease failed; another replica takes over when it expires"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ferrolb_api::k8s::LeaseSpec;

    use super::{Step, decide};

    fn spec(holder: Option<&str>, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            lease_duration_seconds: Some(seconds),
            ..Default::default()
        }
    }

    #[test]
    fn decisions() {
        let d = Duration::from_secs(15);
        assert_eq!(decide(&spec(Some("me"), 15), "me", Duration::ZERO, d), Step::Renew);
        assert_eq!(decide(&spec(None, 15), "me", Duration::ZERO, d), Step::Acquire);
        assert_eq!(decide(&spec(Some(""), 15), "me", Duration::ZERO, d), Step::Acquire);
        assert_eq!(decide(&spec(Some("other"), 15), "me", Duration::from_secs(14), d), Step::Wait);
        assert_eq!(decide(&spec(Some("other"), 15), "me", Duration::from_secs(15), d), Step::Acquire);
        assert_eq!(decide(&spec(Some("other"), 2), "me", Duration::from_secs(3), d), Step::Acquire);
    }
}
