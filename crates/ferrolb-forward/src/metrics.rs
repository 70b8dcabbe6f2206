//! Forward mode's Prometheus metrics. The speaker registers them beside its own, under its
//! `ferrolb_speaker_` prefix: they describe the speaker process, and dashboards already use those names.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

use crate::userspace::Stats;

/// `kernel` or `userspace`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PathLabels {
    /// The data path.
    pub path: &'static str,
}

/// Every forward-mode metric; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Service ports this node forwards, by data path.
    pub forwarded_ports: Family<PathLabels, Gauge>,
    /// Data-path updates that failed (retried a second later), and conntrack deletions that failed.
    pub forward_errors: Counter,
    /// The userspace relay's own counters, read at scrape time.
    pub relay: Arc<Stats>,
}

/// Exposes the relay's atomics at scrape time, so they never go stale between updates.
#[derive(Debug)]
struct RelayCollector(Arc<Stats>);

impl Collector for RelayCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = self.0.snapshot();
        let gauges = [
            ("relay_tcp_connections", "TCP connections the userspace relay carries now", s.tcp_active),
            ("relay_udp_flows", "UDP flows the userspace relay holds now", s.udp_flows_active),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let counters = [
            ("relay_tcp_connections_accepted", "TCP connections the userspace relay accepted", s.tcp_total),
            ("relay_udp_flows_opened", "UDP flows the userspace relay opened", s.udp_flows_total),
            ("relay_udp_flows_evicted", "UDP flows closed early because the flow table was full", s.udp_flows_evicted),
            (
                "relay_refused_over_limit",
                "Connections refused because the relay was at its limit",
                s.refused_over_limit,
            ),
            ("relay_errors", "Relayed connections or datagrams that ended in an error", s.relay_errors),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)?;
        }
        Ok(())
    }
}

impl Metrics {
    /// Creates the metrics and registers them in `registry` (the caller picks the prefix).
    pub fn register(registry: &mut Registry) -> Metrics {
        let metrics = Metrics::default();
        registry.register(
            "forwarded_ports",
            "Service ports this node forwards in forward mode, by data path",
            metrics.forwarded_ports.clone(),
        );
        registry.register("forward_errors", "Forwarding updates that failed (retried)", metrics.forward_errors.clone());
        registry.register_collector(Box::new(RelayCollector(metrics.relay.clone())));
        metrics
    }
}
