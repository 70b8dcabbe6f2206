//! What the speaker tells operators in Events, decided purely: the reasons ([`Reason`]), what an Event is
//! about ([`Regarding`]) and the notes, so the texts are tested without an API server. [`crate::writer`]
//! publishes them.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::absent::{REASON_ABSENT, REASON_JOINED, REASON_NOT_EXPECTED};
use crate::desired::{Cluster, ExternalIp, Placement, place};
use crate::records::ServiceRef;

/// Why an Event is sent; its [`Reason::as_str`] is the Event's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// This node started announcing an IP of the Service.
    Announcing,
    /// No L2Advertisement or BGPAdvertisement covers the IP's pool.
    NoL2Advertisement,
    /// No live node may announce the IP.
    NoEligibleNode,
    /// No Service using the IP has a ready endpoint.
    NoReadyEndpoint,
    /// An expected node's speaker is not in the membership.
    SpeakerNotInMembership,
    /// A reported node's speaker is back.
    SpeakerJoinedMembership,
    /// A reported node no longer needs a speaker.
    SpeakerNoLongerExpected,
    /// A BGP session left Established.
    BgpSessionDown,
    /// A BGP session cannot be established (a new reason).
    BgpSessionFailing,
    /// A BGP session that had failed is established again.
    BgpSessionEstablished,
    /// The set of nodes advertising an IP over BGP changed.
    BgpAdvertised,
    /// A BGPAdvertisement covers the IP's pool but no live node advertises it.
    NoBgpAdvertiser,
    /// Another host on the LAN answered this node's probe for the IP: it is not announced.
    AddressConflict,
    /// A speaker outside this node's membership view claimed an IP announced here: the membership is split.
    MembershipSplit,
}

impl Reason {
    /// The Event's reason, CamelCase.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Announcing => "Announcing",
            Reason::NoL2Advertisement => "NoL2Advertisement",
            Reason::NoEligibleNode => "NoEligibleNode",
            Reason::NoReadyEndpoint => "NoReadyEndpoint",
            Reason::SpeakerNotInMembership => REASON_ABSENT,
            Reason::SpeakerJoinedMembership => REASON_JOINED,
            Reason::SpeakerNoLongerExpected => REASON_NOT_EXPECTED,
            Reason::BgpSessionDown => "BGPSessionDown",
            Reason::BgpSessionFailing => "BGPSessionFailing",
            Reason::BgpSessionEstablished => "BGPSessionEstablished",
            Reason::BgpAdvertised => "BGPAdvertised",
            Reason::NoBgpAdvertiser => "NoBGPAdvertiser",
            Reason::AddressConflict => "AddressConflict",
            Reason::MembershipSplit => "MembershipSplit",
        }
    }

    /// Whether the Event is a Warning (else Normal).
    pub fn warning(self) -> bool {
        matches!(
            self,
            Reason::NoL2Advertisement
                | Reason::NoEligibleNode
                | Reason::NoReadyEndpoint
                | Reason::SpeakerNotInMembership
                | Reason::BgpSessionDown
                | Reason::BgpSessionFailing
                | Reason::NoBgpAdvertiser
                | Reason::AddressConflict
                | Reason::MembershipSplit
        )
    }
}

/// What an Event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Regarding {
    /// A Service.
    Service(ServiceRef),
    /// A Node (cluster-scoped: its Events live in `default`, as the kubelet's do).
    Node(String),
    /// A BGPPeer (cluster-scoped too).
    BgpPeer(String),
}

impl Regarding {
    /// The object's name.
    pub fn name(&self) -> &str {
        match self {
            Regarding::Service(s) => &s.name,
            Regarding::Node(name) | Regarding::BgpPeer(name) => name,
        }
    }
}

/// An Event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutEvent {
    /// What it is about.
    pub regarding: Regarding,
    /// Why it is sent.
    pub reason: Reason,
    /// The message for a person.
    pub note: String,
}

/// The note when this node takes `ip`; `previous` is the node the record named, with why it lost the IP.
pub fn takeover_note(me: &str, ip: IpAddr, interfaces: &[String], previous: Option<(&str, &str)>) -> String {
    let on = if interfaces.is_empty() { String::new() } else { format!(" on {}", interfaces.join(",")) };
    match previous {
        Some((node, why)) => format!("announcing {ip} from {me}{on}, took over from {node}: {why}"),
        None => format!("announcing {ip} from {me}{on}"),
    }
}

/// Why `previous` no longer holds an IP that `me` just took.
pub fn why_moved(previous: &str, me: &str, ext: &ExternalIp, cluster: &Cluster<'_>) -> String {
    if !cluster.live.contains(previous) {
        return format!("{previous} left membership");
    }
    // Would `previous` be eligible on its own?
    let alone: BTreeSet<String> = [previous.to_owned()].into();
    let only_previous = Cluster { live: &alone, ..*cluster };
    match place(previous, std::slice::from_ref(ext), &only_previous).get(&ext.ip) {
        Some(Placement::Announce { .. }) => format!("{me} ranks first for this IP"),
        _ => format!("{previous} is no longer eligible"),
    }
}

/// Why nobody announces `ip` on layer 2, as a Warning's reason and note; `None` when someone does. `bgp`
/// says a BGPAdvertisement covers the pool: then a missing L2Advertisement is no problem.
pub fn not_announced(ip: IpAddr, placement: &Placement, pool: &str, bgp: bool) -> Option<(Reason, String)> {
    match placement {
        Placement::NotAdvertised if bgp => None,
        Placement::NotAdvertised => Some((
            Reason::NoL2Advertisement,
            format!("{ip} is not announced: no L2Advertisement or BGPAdvertisement covers pool {pool}"),
        )),
        Placement::NoEligibleNode | Placement::NoReadyEndpoint if bgp => None,
        Placement::NoEligibleNode => Some((
            Reason::NoEligibleNode,
            format!(
                "{ip} is not announced: no live node is eligible (check L2Advertisement nodeSelectors, the exclude-from-external-load-balancers label, and that speakers are running)"
            ),
        )),
        Placement::NoReadyEndpoint => {
            Some((Reason::NoReadyEndpoint, format!("{ip} is not announced: the Service has no ready endpoint")))
        }
        Placement::Announce { .. } | Placement::OtherOwner(_) => None,
    }
}

/// The note for the nodes that advertise `ip` over BGP, and whether it is a Warning (none does).
pub fn bgp_advertisers_note(ip: IpAddr, nodes: &std::collections::BTreeSet<String>) -> (Reason, String) {
    if nodes.is_empty() {
        return (
            Reason::NoBgpAdvertiser,
            format!(
                "{ip} is not advertised over BGP: no live node is eligible (check the BGPAdvertisement's and \
                 BGPPeer's nodeSelectors, ready endpoints, and that speakers are running)"
            ),
        );
    }
    let list: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let count = if list.len() == 1 { "1 node".to_owned() } else { format!("{} nodes", list.len()) };
    (Reason::BgpAdvertised, format!("{ip} is advertised over BGP by {} ({count})", list.join(", ")))
}

#[cfg(test)]
mod tests;
