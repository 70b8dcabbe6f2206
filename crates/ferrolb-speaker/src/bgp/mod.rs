//! BGP mode: every eligible node advertises each external IP to the routers it peers with, as a /32 or
//! /128 (or an aggregate), so routers spread flows over the nodes (ECMP) and a node's death removes one next
//! hop.
//!
//! [`placement`] (pure) decides this node's sessions and routes from the same cluster view layer 2 reads;
//! [`BgpAnnouncer`] carries the order out with one task per session ([`peer`]), on the codec and state
//! machine of `ferrolb-bgp`; [`report`] (pure) turns session statuses into `BGPSession` records and Events.

mod announcer;
pub mod bfd;
pub mod metrics;
pub mod overview;
pub mod peer;
pub mod placement;
pub mod report;

pub use announcer::BgpAnnouncer;
pub use metrics::BgpMetrics;
pub use placement::{Bfd, BgpAdvertisement, BgpConfig, BgpOrder, NodeAddresses, Password, Peer};
