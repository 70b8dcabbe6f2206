//! Counters of the userspace relay, shared by its tasks and read by the speaker's metrics.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters; every task of one forwarder updates the same instance.
#[derive(Debug, Default)]
pub struct Stats {
    tcp_active: AtomicU64,
    tcp_total: AtomicU64,
    udp_flows_active: AtomicU64,
    udp_flows_total: AtomicU64,
    udp_flows_evicted: AtomicU64,
    refused_over_limit: AtomicU64,
    relay_errors: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// TCP connections being relayed now.
    pub tcp_active: u64,
    /// TCP connections accepted and relayed (or attempted) since start.
    pub tcp_total: u64,
    /// UDP flows open now.
    pub udp_flows_active: u64,
    /// UDP flows opened since start.
    pub udp_flows_total: u64,
    /// UDP flows closed early to make room for a new one (the flow table was full).
    pub udp_flows_evicted: u64,
    /// TCP connections closed at once because `max_tcp_connections` were already open.
    pub refused_over_limit: u64,
    /// Failures while relaying: backend unreachable or slow to connect, resets, socket errors.
    pub relay_errors: u64,
}

impl Stats {
    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            tcp_active: self.tcp_active.load(Ordering::Relaxed),
            tcp_total: self.tcp_total.load(Ordering::Relaxed),
            udp_flows_active: self.udp_flows_active.load(Ordering::Relaxed),
            udp_flows_total: self.udp_flows_total.load(Ordering::Relaxed),
            udp_flows_evicted: self.udp_flows_evicted.load(Ordering::Relaxed),
            refused_over_limit: self.refused_over_limit.load(Ordering::Relaxed),
            relay_errors: self.relay_errors.load(Ordering::Relaxed),
        }
    }

    pub(super) fn tcp_opened(&self) -> ActiveTcp<'_> {
        self.tcp_total.fetch_add(1, Ordering::Relaxed);
        self.tcp_active.fetch_add(1, Ordering::Relaxed);
        ActiveTcp(self)
    }

    pub(super) fn udp_flow_opened(&self) {
        self.udp_flows_total.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn udp_flows_now(&self, n: usize) {
        self.udp_flows_active.store(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(super) fn udp_flow_evicted(&self) {
        self.udp_flows_evicted.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn refused(&self) {
        self.refused_over_limit.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn relay_error(&self) {
        self.relay_errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts one TCP connection as active until dropped.
#[derive(Debug)]
pub(super) struct ActiveTcp<'a>(&'a Stats);

impl Drop for ActiveTcp<'_> {
    fn drop(&mut self) {
        self.0.tcp_active.fetch_sub(1, Ordering::Relaxed);
    }
}
