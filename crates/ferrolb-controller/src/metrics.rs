//! The controller's Prometheus metrics, registered once under the `ferrolb_controller_` prefix.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Labels of per-pool, per-family gauges.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PoolLabels {
    /// Pool name.
    pub pool: String,
    /// `ipv4` or `ipv6`.
    pub family: &'static str,
}

/// Labels of failure counters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabels {
    /// A static failure label (`AllocError::label`, `Error::label`).
    pub reason: &'static str,
}

/// Every controller metric.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Addresses a pool can hand out (float: a /64 exceeds an integer gauge).
    pub pool_addresses: Family<PoolLabels, Gauge<f64, AtomicU64>>,
    /// Addresses of a pool held by Services.
    pub pool_addresses_in_use: Family<PoolLabels, Gauge<f64, AtomicU64>>,
    /// Successful allocations (a Service getting addresses).
    pub allocations: Counter,
    /// Allocation failures, by reason.
    pub allocation_failures: Family<ReasonLabels, Counter>,
    /// API writes that failed, by reason.
    pub write_failures: Family<ReasonLabels, Counter>,
    /// Reconcile passes run.
    pub passes: Counter,
    /// Duration of a pass, including its writes.
    pub pass_seconds: Histogram,
    /// 1 while this replica holds the lease.
    pub leader: Gauge,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry` under `ferrolb_controller_`.
    pub fn register(registry: &mut Registry) -> Metrics {
        let metrics = Metrics {
            pool_addresses: Family::default(),
            pool_addresses_in_use: Family::default(),
            allocations: Counter::default(),
            allocation_failures: Family::default(),
            write_failures: Family::default(),
            passes: Counter::default(),
            pass_seconds: Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
            leader: Gauge::default(),
        };
        let r = registry.sub_registry_with_prefix("ferrolb_controller");
        r.register("pool_addresses", "Addresses a pool can hand out", metrics.pool_addresses.clone());
        r.register(
            "pool_addresses_in_use",
            "Addresses of a pool held by Services",
            metrics.pool_addresses_in_use.clone(),
        );
        r.register("allocations", "Services that got addresses", metrics.allocations.clone());
        r.register("allocation_failures", "Allocation failures by reason", metrics.allocation_failures.clone());
        r.register("write_failures", "Failed API writes by reason", metrics.write_failures.clone());
        r.register("reconcile_passes", "Reconcile passes run", metrics.passes.clone());
        r.register(
            "reconcile_pass_seconds",
            "Duration of a reconcile pass with its writes",
            metrics.pass_seconds.clone(),
        );
        r.register("leader", "1 while this replica holds the lease", metrics.leader.clone());
        metrics
    }
}
