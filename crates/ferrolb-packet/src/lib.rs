//! ARP and NDP on the wire, for the speaker: recognise the requests it must answer and build the frames it
//! sends (ARP replies, gratuitous ARP, neighbour advertisements); recognise another machine claiming an
//! address and build the probes that make it speak up ([`claim`], RFC 5227 and duplicate address detection);
//! sign announcements so that speakers of one cluster know each other on the wire ([`sign`], [`signature`]).
//!
//! Pure byte-level logic: no sockets, no clock. Every field is read with bounds checks and every malformed
//! frame becomes a [`ParseError`] (counted and dropped by the caller), never a panic; a proptest throws random
//! bytes at [`parse`] in the normal test run and `fuzz/` has a cargo-fuzz target for longer hunts.
//! Ethernet, ARP and IPv6 headers use `pnet_packet`'s views; NDP options are walked here because
//! `pnet_packet` 0.35 misparses options of length 32 or more.

mod arp;
mod claim;
mod mac;
mod ndp;
mod parse;
mod signature;

pub use arp::{GratuitousForm, arp_reply, gratuitous_arp};
pub use claim::{Claim, arp_probe, claim, dad_solicitation};
pub use mac::Mac;
pub use ndp::{neighbor_advertisement, solicited_node, solicited_node_mac};
pub use parse::{ParseError, Request, parse};
pub use signature::{
    MAX_SIGNED_NODE_LEN, SIGNATURE_KEY_LEN, SIGNATURE_TAG_LEN, Signature, network_packet, sign, signature,
    signed_message,
};
