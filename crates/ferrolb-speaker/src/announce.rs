//! The seam between deciding and announcing. Placement ([`crate::pass`]) decides which IPs this node
//! announces; an [`Announcer`] tells the network, and decides nothing. Layer 2 ([`crate::l2`]) is one
//! announcer; a new way of announcing (BGP) is another implementation, given its own order by the same pass.

/// One way of telling the network where this node's external IPs are.
pub trait Announcer {
    /// What one pass asks of this announcer: the complete set it must announce from now on.
    type Order;

    /// Makes what is announced match `order`: starts what is new, stops what is gone, leaves the rest.
    fn announce(&mut self, order: &Self::Order);

    /// Repeats the announcements of everything announced now (a periodic refresh).
    fn refresh(&mut self);

    /// Stops announcing everything, as gracefully as the protocol allows (shutdown): layer 2 stops answering
    /// at once; BGP withdraws its routes, gives the peers a moment, then closes its sessions.
    fn withdraw_all(&mut self) -> impl std::future::Future<Output = ()> + Send;

    /// A part of the announcer that stopped on its own (a thread that panicked), which must end the speaker:
    /// it would otherwise keep claiming IPs it no longer announces.
    fn failed(&self) -> Option<String>;
}
