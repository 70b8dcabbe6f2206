//! The UDP flow table: which client has a relay socket to the backend, when each flow was last active,
//! which flows are idle long enough to close, and which one makes room when the table is full.
//!
//! Pure: the clock comes in as an argument, so expiry and eviction are tested without waiting. UDP has no
//! connection end, so idleness (in either direction) is the only signal that a flow is over.
//!
//! When the table is full, a new flow evicts the least recently active one instead of being refused: a
//! flood of new sources then costs the oldest idle flows, while a refusing table would lock out every new
//! client for a whole idle period once it filled. Flows that are in active use are the last to go.

#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Flows keyed by `K` carrying a `V` each, bounded in number and in idle time.
#[derive(Debug)]
pub struct FlowTable<K, V> {
    capacity: usize,
    idle: Duration,
    flows: HashMap<K, Flow<V>>,
    /// Every flow once, ordered by last activity: the front is the next to expire or be evicted.
    by_activity: BTreeSet<(Instant, K)>,
}

#[derive(Debug)]
struct Flow<V> {
    value: V,
    last_active: Instant,
}

impl<K: Clone + Ord + Hash, V> FlowTable<K, V> {
    /// An empty table holding at most `capacity` flows (at least one) that expire after `idle`.
    pub fn new(capacity: usize, idle: Duration) -> Self {
        FlowTable { capacity: capacity.max(1), idle, flows: HashMap::new(), by_activity: BTreeSet::new() }
    }

    /// How many flows are open.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// The flow for `key`, marked active at `now`.
    pub fn touch(&mut self, key: &K, now: Instant) -> Option<&V> {
        let flow = self.flows.get_mut(key)?;
        if now > flow.last_active {
            self.by_activity.remove(&(flow.last_active, key.clone()));
            flow.last_active = now;
            self.by_activity.insert((now, key.clone()));
        }
        Some(&flow.value)
    }

    /// Adds a flow active at `now`. Returns what had to leave: a flow with the same key (replaced), or
    /// the least recently active flow when the table was full.
    pub fn insert(&mut self, key: K, value: V, now: Instant) -> Option<(K, V)> {
        let displaced = match self.remove(&key) {
            Some(old) => Some((key.clone(), old)),
            None if self.flows.len() >= self.capacity => self.pop_least_active(),
            None => None,
        };
        self.by_activity.insert((now, key.clone()));
        self.flows.insert(key, Flow { value, last_active: now });
        displaced
    }

    /// Removes the flow for `key`.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let flow = self.flows.remove(key)?;
        self.by_activity.remove(&(flow.last_active, key.clone()));
        Some(flow.value)
    }

    /// Removes every flow that matches `doomed` (a frontend going away, a backend removed).
    pub fn remove_where(&mut self, mut doomed: impl FnMut(&K, &V) -> bool) -> Vec<(K, V)> {
        let keys: Vec<K> =
            self.flows.iter().filter(|(key, flow)| doomed(key, &flow.value)).map(|(key, _)| key.clone()).collect();
        keys.into_iter().filter_map(|key| self.remove(&key).map(|value| (key, value))).collect()
    }

    /// Removes every flow idle for at least the idle timeout at `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<(K, V)> {
        let mut expired = Vec::new();
        while let Some((last_active, _)) = self.by_activity.first() {
            if now.saturating_duration_since(*last_active) < self.idle {
                break;
            }
            expired.extend(self.pop_least_active());
        }
        expired
    }

    /// When the next flow expires if nothing touches it; `None` when the table is empty.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.by_activity.first().map(|(last_active, _)| *last_active + self.idle)
    }

    fn pop_least_active(&mut self) -> Option<(K, V)> {
        let (_, key) = self.by_activity.pop_first()?;
        let flow = self.flows.remove(&key)?;
        Some((key, flow.value))
    }
}
