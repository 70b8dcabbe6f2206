//! The speaker's Prometheus metrics, registered once under the `ferrolb_speaker_` prefix (forward mode's,
//! from `ferrolb-forward`, under the same prefix).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

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

/// `up` or `down`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TransitionLabels {
    /// The direction of the transition.
    pub kind: &'static str,
}

/// Which of a speaker's keys sealed a membership datagram: `current` or `previous`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct KeyLabels {
    /// The key's role.
    pub key: &'static str,
}

/// The ids of the membership keys a speaker holds (see `envelope::KeyId`); `accepting` is empty without a
/// previous key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct KeyIdLabels {
    /// The id of the key it sends with.
    pub sending: String,
    /// The id of the previous key it still accepts.
    pub accepting: String,
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
    /// Membership datagrams accepted, by the key that sealed them (`previous`: a rotation still under way).
    pub membership_accepted: Family<KeyLabels, Counter>,
    /// The largest offset between a peer's wall clock and this node's, from their latest datagrams (seconds;
    /// positive when the peer is ahead).
    pub membership_clock_skew: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Key files refused because they share no key with the keys in use.
    pub membership_key_changes_refused: Counter,
    /// 1 for the key ids this speaker holds, so speakers can be compared during a rotation.
    pub membership_keys: Family<KeyIdLabels, Gauge>,
    /// 1 while this speaker is outvoted on the membership key (more peers it cannot read than members):
    /// it holds the wrong key and announces nothing.
    pub membership_outvoted: Gauge,
    /// Times this node took an IP over from another node or from nobody.
    pub ownership_changes: Counter,
    /// New IPs another host on the LAN answered this node's probe for (address conflicts found).
    pub address_conflicts: Counter,
    /// Probes for new IPs (and re-checks of conflicts) this node sent.
    pub address_probes: Counter,

    /// Frames the responders read from their packet sockets (what the kernel's BPF filter let through).
    pub frames_read: Counter,
    /// Claims on watched IPs the responders could not hand to the loop (it was behind).
    pub claims_dropped: Counter,
    /// Claims on an IP this node announces, signed by a speaker of the cluster that is not in its membership
    /// view: the membership is split.
    pub membership_split_claims: Counter,
    /// Gratuitous frames sent to defend an owned IP against another MAC's claim.
    pub defences_sent: Counter,

    /// Forward mode's data plane.
    pub forward: ferrolb_forward::Metrics,
    /// BGP's sessions.
    pub bgp: crate::bgp::BgpMetrics,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry` under `ferrolb_speaker_`.
    pub fn register(registry: &mut Registry) -> Metrics {
        let r = registry.sub_registry_with_prefix("ferrolb_speaker");
        let metrics = Metrics {
            forward: ferrolb_forward::Metrics::register(r),
            bgp: crate::bgp::BgpMetrics::register(r),
            ..Metrics::default()
        };
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
        r.register(
            "membership_accepted",
            "Membership datagrams accepted, by the key that sealed them (previous: a key rotation under way)",
            metrics.membership_accepted.clone(),
        );
        r.register(
            "membership_clock_skew_seconds",
            "Largest offset of a peer's wall clock from this node's, positive when ahead (over 300 s: refused as stale)",
            metrics.membership_clock_skew.clone(),
        );
        r.register(
            "membership_key_changes_refused",
            "Key files refused because they share no key with the membership keys in use",
            metrics.membership_key_changes_refused.clone(),
        );
        r.register(
            "membership_keys",
            "1 for the ids of the membership keys this speaker sends with and still accepts",
            metrics.membership_keys.clone(),
        );
        r.register(
            "membership_outvoted",
            "1 while more peers talk to this speaker under keys it lacks than it has members: it announces nothing",
            metrics.membership_outvoted.clone(),
        );
        r.register("ownership_takeovers", "IPs this node started announcing", metrics.ownership_changes.clone());
        r.register(
            "address_conflicts",
            "New IPs another host on the LAN answered this node's probe for",
            metrics.address_conflicts.clone(),
        );
        r.register("address_probes", "Address probes run (new IPs and re-checks)", metrics.address_probes.clone());
        r.register(
            "frames_read",
            "Frames the responders read from their filtered packet sockets",
            metrics.frames_read.clone(),
        );
        r.register(
            "claims_dropped",
            "Claims on watched IPs dropped because the speaker's loop was behind",
            metrics.claims_dropped.clone(),
        );
        r.register(
            "membership_split_claims",
            "Claims on an announced IP signed by a cluster speaker outside this speaker's membership view (a split)",
            metrics.membership_split_claims.clone(),
        );
        r.register(
            "defences_sent",
            "Gratuitous announcements sent to defend an announced IP against another MAC's claim",
            metrics.defences_sent.clone(),
        );
        metrics
    }
}
