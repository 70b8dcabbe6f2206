//! The speaker's Prometheus metrics, registered once under the `ferrolb_speaker_` prefix.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

use crate::forward::userspace::Stats;

/// `arp` or `ndp`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ProtocolLabels {
    /// The protocol.
    pub protocol: &'static str,
}

/// A static drop reason (`ParseError::label`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabels {
    /// The reason.
    pub reason: &'static str,
}

/// `kernel` or `userspace`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PathLabels {
    /// The data path.
    pub path: &'static str,
}

/// `up` or `down`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TransitionLabels {
    /// The direction of the transition.
    pub kind: &'static str,
}

/// Every speaker metric; cheap to clone (the responder threads hold copies).
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// External IPs this node announces.
    pub owned_ips: Gauge,
    /// ARP requests and neighbour solicitations seen.
    pub requests_seen: Family<ProtocolLabels, Counter>,
    /// Requests answered (for an owned IP).
    pub requests_answered: Family<ProtocolLabels, Counter>,
    /// Gratuitous ARP / unsolicited NA frames sent.
    pub gratuitous_sent: Family<ProtocolLabels, Counter>,
    /// Malformed frames dropped, by reason.
    pub parse_drops: Family<ReasonLabels, Counter>,
    /// Live speakers in this speaker's membership view, itself included.
    pub membership_size: Gauge,
    /// Other speakers joining (`up`) or leaving/dying (`down`).
    pub membership_transitions: Family<TransitionLabels, Counter>,
    /// Membership datagrams refused (wrong key, forged, stale), by reason.
    pub membership_rejected: Family<ReasonLabels, Counter>,
    /// Times this node took an IP over from another node or from nobody.
    pub ownership_changes: Counter,

    /// Frames the responders read from their packet sockets (what the kernel's BPF filter let through).
    pub frames_read: Counter,

    /// Service ports this node forwards in forward mode, by data path.
    pub forwarded_ports: Family<PathLabels, Gauge>,
    /// Data-path updates that failed (retried a second later).
    pub forward_errors: Counter,
    /// The userspace relay's own counters, read at scrape time.
    pub relay: Arc<Stats>,
}

/// Exposes the relay's atomics at scrape time, so they never go stale between passes of the loop.
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
    /// Creates the metrics and registers them in `registry` under `ferrolb_speaker_`.
    pub fn register(registry: &mut Registry) -> Metrics {
        let metrics = Metrics::default();
        let r = registry.sub_registry_with_prefix("ferrolb_speaker");
        r.register("owned_ips", "External IPs this node announces", metrics.owned_ips.clone());
        r.register("requests_seen", "ARP requests and neighbour solicitations seen", metrics.requests_seen.clone());
        r.register("requests_answered", "Requests answered for owned IPs", metrics.requests_answered.clone());
        r.register("gratuitous_sent", "Gratuitous ARP and unsolicited NA frames sent", metrics.gratuitous_sent.clone());
        r.register("parse_drops", "Malformed frames dropped, by reason", metrics.parse_drops.clone());
        r.register(
            "membership_size",
            "Live speakers in this speaker's view, itself included",
            metrics.membership_size.clone(),
        );
        r.register(
            "membership_transitions",
            "Other speakers joining (up) or leaving (down) the membership",
            metrics.membership_transitions.clone(),
        );
        r.register(
            "membership_rejected",
            "Membership datagrams refused, by reason",
            metrics.membership_rejected.clone(),
        );
        r.register("ownership_takeovers", "IPs this node started announcing", metrics.ownership_changes.clone());
        r.register(
            "frames_read",
            "Frames the responders read from their filtered packet sockets",
            metrics.frames_read.clone(),
        );
        r.register(
            "forwarded_ports",
            "Service ports this node forwards in forward mode, by data path",
            metrics.forwarded_ports.clone(),
        );
        r.register("forward_errors", "Forwarding updates that failed (retried)", metrics.forward_errors.clone());
        r.register_collector(Box::new(RelayCollector(metrics.relay.clone())));
        metrics
    }
}
