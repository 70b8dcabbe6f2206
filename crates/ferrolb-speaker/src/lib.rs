//! The speaker: decides which node announces each external IP, announces it, and records who holds it.
//!
//! Each turn of its loop ([`run`]) gathers the cluster ([`observe`]), the membership's view and the host's
//! interfaces, and calls one pure [`pass`](pass::pass): placement ([`desired::place`]: eligibility, then
//! [`election::owner`] by rendezvous hashing over live nodes, with [`endpoints`] damping for
//! `externalTrafficPolicy: Local`), what to forward before and after announcing, the Events ([`events`],
//! [`absent`]) and the `L2Announcement` records ([`records`]). The loop then carries the pass out: the data
//! path (`ferrolb-forward`) in forward mode, the [`announce::Announcer`]s ([`l2`] today), and the API writes
//! on a task of their own ([`writer`]). [`membership`] tells which speakers are alive (authenticated SWIM over
//! UDP, sub-second), so every speaker computes the same owner from the same inputs with no round-trip.
//!
//! State it owns: the membership, the pass's memory (what it placed, since when, what drains), the
//! responders' address sets. Architecture invariants: the speaker never writes Service status (the
//! controller does); it never decides from an `L2Announcement` (records only report); it never puts an
//! external IP on a host interface; decisions are pure functions of their inputs, kept apart from sockets
//! and the API server.

pub mod absent;
pub mod announce;
pub mod bgp;
mod config;
pub mod conflicts;
pub mod departed;
pub mod desired;
pub mod election;
pub mod endpoints;
mod error;
pub mod events;
pub mod l2;
pub mod membership;
pub mod metrics;
mod observe;
pub mod pass;
pub mod records;
mod run;
pub mod split;
mod wake;
mod writer;

pub use config::{MembershipOptions, SpeakerConfig};
pub use conflicts::ProbeSettings;
pub use error::{Error, Result};
pub use metrics::Metrics;
pub use run::run;
