//! The speaker: decides which node announces each external IP, announces it with ARP/NDP, and records who
//! holds it.
//!
//! [`membership`] tells which speakers are alive (authenticated SWIM over UDP, sub-second). [`election::owner`]
//! ranks eligible live nodes by rendezvous hashing over (node name, IP), so every speaker computes the same
//! owner from the same inputs with no round-trip, and a node leaving moves only the IPs it owned.
//! [`desired::place`] applies eligibility (L2Advertisements, exclusion label, NetworkUnavailable, ready
//! endpoints with [`endpoints`] damping for `externalTrafficPolicy: Local`), [`announcer::Announcer`] answers
//! ARP/NDP for this node's share, and [`records`] keeps `L2Announcement` objects and Events for operators;
//! [`absent`] reports, as Events on the Node, expected nodes whose speaker is not in the membership.
//! In forward mode, [`forward`] delivers the traffic for this node's share itself (nftables or a userspace
//! relay) instead of leaving it to kube-proxy.
//!
//! Architecture invariant: the speaker never writes Service status (the controller does); decisions are
//! pure functions of their inputs, kept apart from sockets and the API server.

pub mod absent;
pub mod announcer;
mod bpf;
pub mod desired;
pub mod election;
pub mod endpoints;
pub mod forward;
pub mod membership;
pub mod metrics;
mod multicast;
mod netlink;
mod observe;
pub mod records;
mod responder;
mod run;
mod writer;

pub use metrics::Metrics;

pub use run::{Error, MembershipOptions, SpeakerConfig, run};
