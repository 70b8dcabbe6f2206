//! Readiness and liveness for `/readyz` and `/healthz`, shared between a component's loop and its server.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long the loop may go without a heartbeat before liveness fails (and the kubelet restarts the pod).
pub const STALL: Duration = Duration::from_secs(60);

/// Readiness (the stores have synced, and nothing the component needs is missing) and a heartbeat that the
/// main loop beats every turn.
///
/// The heartbeat is measured on the monotonic clock, so a stepped wall clock never fails (or hides) a stall.
#[derive(Debug)]
pub struct Health {
    started: Instant,
    ready: AtomicBool,
    /// Why the component cannot work although its caches synced (shown by `/readyz`).
    blocked: Mutex<Option<String>>,
    /// Milliseconds after `started` of the last beat; 0 before the first.
    last_beat_ms: AtomicU64,
}

impl Default for Health {
    fn default() -> Health {
        Health {
            started: Instant::now(),
            ready: AtomicBool::new(false),
            blocked: Mutex::new(None),
            last_beat_ms: AtomicU64::new(0),
        }
    }
}

impl Health {
    /// Whether the component can decide (its caches have synced and nothing blocks it).
    pub fn is_ready(&self) -> bool {
        self.not_ready_because().is_none()
    }

    /// Why the component is not ready, for `/readyz`; `None` when it is.
    pub fn not_ready_because(&self) -> Option<String> {
        if !self.ready.load(Ordering::Relaxed) {
            return Some("caches not synced".to_owned());
        }
        self.blocked.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Marks the component's caches synced or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Says what keeps the component from working although its caches synced (`None`: nothing).
    pub fn set_blocked(&self, why: Option<String>) {
        *self.blocked.lock().unwrap_or_else(PoisonError::into_inner) = why;
    }

    /// Whether the main loop beat within [`STALL`] (or has not started beating yet).
    pub fn is_alive(&self) -> bool {
        self.alive_at(Instant::now())
    }

    fn alive_at(&self, now: Instant) -> bool {
        let last = self.last_beat_ms.load(Ordering::Relaxed);
        let since_start = now.saturating_duration_since(self.started);
        last == 0 || since_start.saturating_sub(Duration::from_millis(last)) < STALL
    }

    /// Records that the main loop is turning.
    pub fn beat(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX).max(1);
        self.last_beat_ms.store(ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alive_until_the_loop_stops_beating_for_the_stall_time() {
        let health = Health::default();
        assert!(health.is_alive(), "alive before the first beat");
        health.beat();
        let beat = health.started + Duration::from_millis(health.last_beat_ms.load(Ordering::Relaxed));
        assert!(health.alive_at(beat + STALL - Duration::from_millis(1)));
        assert!(!health.alive_at(beat + STALL));
        assert!(!health.is_ready());
        health.set_ready(true);
        assert!(health.is_ready());
        health.set_blocked(Some("the namespace is missing".into()));
        assert_eq!(health.not_ready_because().as_deref(), Some("the namespace is missing"));
        health.set_blocked(None);
        assert!(health.is_ready());
    }
}
