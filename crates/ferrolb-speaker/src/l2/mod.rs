//! Layer 2 announcing: this node answers ARP requests and neighbour solicitations for the external IPs it
//! owns, on raw packet sockets, and sends gratuitous ARP / unsolicited neighbour advertisements when it
//! takes one.
//!
//! [`links`] reads the interfaces and chooses which announce an IP (pure choice); [`L2Announcer`] carries
//! out an [`L2Order`]: one responder thread per interface in use ([`responder`]), reading a socket that a
//! kernel BPF filter ([`bpf`]) limits to ARP requests and solicitations, answering from that interface's own
//! address set, so removing an IP stops the answers at once; each owned IPv6 address's solicited-node group
//! is joined on its interfaces ([`multicast`]); [`netlink`] wakes the speaker on every interface change.
//! The responders also hear other MACs claim the IPs they watch and pass those claims to the loop
//! ([`HeardFrame`]), which settles them ([`crate::split`]).
//! The IP is never put on a host interface, so the kernel neither answers for it nor serves host sockets on
//! it.

mod announcer;
mod bpf;
mod error;
pub mod links;
mod multicast;
pub mod netlink;
pub mod probe;
mod responder;

pub use announcer::{L2Announcer, L2Order};
pub use error::Error;
pub use links::{InterfacePolicy, Link, choose, read_links};
pub use responder::{ClaimSender, HeardFrame};
