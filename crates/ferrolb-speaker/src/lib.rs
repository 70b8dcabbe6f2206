//! The speaker: decides which node announces each external IP, and (to come) announces it with ARP/NDP.
//!
//! [`election::owner`] ranks eligible live nodes by rendezvous hashing over (node name, IP), so every
//! speaker computes the same owner from the same inputs with no round-trip, and a node leaving moves only
//! the IPs it owned. [`desired::place`] applies eligibility (Ready, exclusion label, L2Advertisements) and
//! [`announcer::Announcer`] answers ARP/NDP for this node's share. Liveness is the Node's Ready condition
//! for now; the SWIM membership of the speaker issue replaces it.
//!
//! Architecture invariant: the speaker never writes Service status (the controller does); decisions are
//! pure functions of their inputs, kept apart from sockets and the API server.

pub mod announcer;
mod bpf;
pub mod desired;
pub mod election;
mod metrics;
mod multicast;
mod netlink;
mod responder;
mod run;

pub use metrics::Metrics;

pub use run::{Error, SpeakerConfig, run};
