//! Which nodes count as having a ready endpoint of a Service, with damping for `externalTrafficPolicy: Local`.
//!
//! Losing its last local endpoint makes a node ineligible at once (under Local it would drop the traffic).
//! Gaining one counts only after the endpoint has stayed ready for a settle time, unless no other node has one,
//! so a pod that blinks not-ready and back does not pull the IP away and back again. Endpoints present when the
//! speaker starts count as settled, so a restarted speaker agrees with the others at once. Pure: the caller
//! passes the clock in and wakes up at [`EndpointTracker::next_change`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::desired::ServiceEndpoints;

/// How long a newly ready local endpoint must stay ready before its node may take the IP from another.
pub const SETTLE: Duration = Duration::from_secs(3);

/// What the API says about one Service's endpoints right now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// `externalTrafficPolicy: Local`.
    pub local: bool,
    /// Nodes with a ready endpoint.
    pub ready_nodes: BTreeSet<String>,
    /// Whether any endpoint is ready (also those without a node name).
    pub any_ready: bool,
}

/// Remembers since when each (Service, node) pair has had a ready endpoint.
#[derive(Debug, Default)]
pub struct EndpointTracker {
    ready_since: BTreeMap<(String, String), Instant>,
    started: bool,
}

impl EndpointTracker {
    /// Records the current endpoints at `now` and returns them as placement reads them.
    pub fn observe(
        &mut self,
        now: Instant,
        observed: &BTreeMap<String, Observed>,
    ) -> BTreeMap<String, ServiceEndpoints> {
        // Pairs seen in the first observation are old news: treat them as settled.
        let first_seen = if self.started { now } else { now.checked_sub(SETTLE).unwrap_or(now) };
        self.started = true;
        let current: BTreeSet<(String, String)> =
            observed.iter().flat_map(|(svc, o)| o.ready_nodes.iter().map(move |n| (svc.clone(), n.clone()))).collect();
        self.ready_since.retain(|pair, _| current.contains(pair));
        for pair in current {
            self.ready_since.entry(pair).or_insert(first_seen);
        }
        observed
            .iter()
            .map(|(svc, o)| {
                let settled: BTreeSet<String> = o
                    .ready_nodes
                    .iter()
                    .filter(|n| self.ready_since.get(&(svc.clone(), (*n).clone())).is_some_and(|t| now >= *t + SETTLE))
                    .cloned()
                    .collect();
                let nodes = if settled.is_empty() { o.ready_nodes.clone() } else { settled };
                (svc.clone(), ServiceEndpoints { local: o.local, any_ready: o.any_ready, nodes })
            })
            .collect()
    }

    /// When a pending endpoint settles, so placement must run again.
    pub fn next_change(&self, now: Instant) -> Option<Instant> {
        self.ready_since.values().map(|t| *t + SETTLE).filter(|t| *t > now).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(nodes: &[&str]) -> BTreeMap<String, Observed> {
        let o = Observed {
            local: true,
            ready_nodes: nodes.iter().map(|n| n.to_string()).collect(),
            any_ready: !nodes.is_empty(),
        };
        [("default/web".to_owned(), o)].into()
    }

    fn nodes(e: &BTreeMap<String, ServiceEndpoints>) -> Vec<String> {
        e["default/web"].nodes.iter().cloned().collect()
    }

    #[test]
    fn endpoints_present_at_start_are_settled() {
        let mut t = EndpointTracker::default();
        let now = Instant::now();
        assert_eq!(nodes(&t.observe(now, &observed(&["node-1", "node-2"]))), ["node-1", "node-2"]);
        assert_eq!(t.next_change(now), None);
    }

    #[test]
    fn a_new_endpoint_counts_only_after_settling_unless_it_is_the_only_one() {
        let mut t = EndpointTracker::default();
        let start = Instant::now();
        t.observe(start, &observed(&["node-1"]));
        let later = start + Duration::from_secs(10);
        // node-2's endpoint just became ready: node-1 keeps the IP for now.
        assert_eq!(nodes(&t.observe(later, &observed(&["node-1", "node-2"]))), ["node-1"]);
        assert_eq!(t.next_change(later), Some(later + SETTLE));
        assert_eq!(nodes(&t.observe(later + SETTLE, &observed(&["node-1", "node-2"]))), ["node-1", "node-2"]);
        // node-1 loses its endpoint: it is out at once.
        assert_eq!(nodes(&t.observe(later + SETTLE, &observed(&["node-2"]))), ["node-2"]);
    }

    #[test]
    fn a_blink_restarts_the_settle_time() {
        let mut t = EndpointTracker::default();
        let start = Instant::now();
        t.observe(start, &observed(&["node-1", "node-2"]));
        let blink = start + Duration::from_secs(5);
        t.observe(blink, &observed(&["node-1"]));
        // Back after the blink: not trusted until it settles again.
        assert_eq!(nodes(&t.observe(blink + Duration::from_millis(500), &observed(&["node-1", "node-2"]))), ["node-1"]);
        // With no settled endpoint anywhere, the fresh ones are used rather than announcing nothing.
        assert_eq!(nodes(&t.observe(blink + Duration::from_secs(1), &observed(&["node-2"]))), ["node-2"]);
    }
}
