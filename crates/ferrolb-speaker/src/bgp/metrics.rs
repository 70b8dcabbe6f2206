//! BGP's Prometheus metrics, part of the speaker's (`ferrolb_speaker_bgp_*`). Labels are bounded: states
//! and NOTIFICATION codes are static, peers are the BGPPeer objects.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// A session state.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct StateLabels {
    /// RFC 4271's name of the state.
    pub state: &'static str,
}

/// A BGPPeer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PeerLabels {
    /// The BGPPeer's name.
    pub peer: String,
}

/// A NOTIFICATION, by direction and error code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct NotificationLabels {
    /// `sent` or `received`.
    pub direction: &'static str,
    /// The error code's label (`cease`, `hold_timer_expired`, ...).
    pub code: &'static str,
}

/// Every BGP metric; cheap to clone (each session task holds a copy).
#[derive(Debug, Clone, Default)]
pub struct BgpMetrics {
    /// This node's sessions by state.
    pub sessions: Family<StateLabels, Gauge>,
    /// UPDATE messages sent, per peer.
    pub updates_sent: Family<PeerLabels, Counter>,
    /// Routes each peer has from this node.
    pub prefixes: Family<PeerLabels, Gauge>,
    /// NOTIFICATIONs sent and received, by code.
    pub notifications: Family<NotificationLabels, Counter>,
    /// BFD sessions that went from Up to Down, per peer (each one ended its BGP session).
    pub bfd_downs: Family<PeerLabels, Counter>,
}

impl BgpMetrics {
    /// Registers the metrics in `registry` (the speaker's, under its prefix) as `bgp_*`.
    pub fn register(registry: &mut Registry) -> BgpMetrics {
        let metrics = BgpMetrics::default();
        registry.register("bgp_sessions", "This node's BGP sessions by state", metrics.sessions.clone());
        registry.register("bgp_updates_sent", "BGP UPDATE messages sent, per peer", metrics.updates_sent.clone());
        registry.register(
            "bgp_prefixes_advertised",
            "Routes each BGP peer has from this node",
            metrics.prefixes.clone(),
        );
        registry.register(
            "bgp_notifications",
            "BGP NOTIFICATION messages sent and received, by error code",
            metrics.notifications.clone(),
        );
        registry.register(
            "bgp_bfd_downs",
            "BFD sessions guarding a BGP session that went from Up to Down, per peer",
            metrics.bfd_downs.clone(),
        );
        metrics
    }
}
