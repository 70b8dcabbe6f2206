//! The speaker: decides which node announces each external IP, and (to come) announces it with ARP/NDP.
//!
//! Today this crate holds the pure decision: [`election::owner`] ranks eligible live nodes by rendezvous
//! hashing over (node name, IP), so every speaker computes the same owner from the same inputs with no
//! round-trip, and a node leaving moves only the IPs it owned.
//!
//! Architecture invariant: the speaker never writes Service status (the controller does); decisions are
//! pure functions of their inputs, kept apart from sockets and the API server.

pub mod election;
