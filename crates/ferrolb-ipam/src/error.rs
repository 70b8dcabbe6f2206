//! Typed errors: why an address entry does not parse, and why an allocation request cannot be met.
//!
//! The `Display` text of [`AllocError`] is written for cluster operators: the controller puts it verbatim
//! into the Warning Event on the Service.

use std::net::IpAddr;

use crate::address::Family;
use crate::pool::PoolName;
use crate::request::ServiceKey;

/// An address entry that is not a valid CIDR or range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Neither a CIDR nor a range of two addresses.
    #[error("{entry:?} is not a CIDR (198.51.100.0/24, 2001:db8::/64) or a range (198.51.100.10-198.51.100.20)")]
    Syntax {
        /// The entry as written.
        entry: String,
    },
    /// A CIDR with bits set after the prefix length.
    #[error("{entry:?} has bits set after the prefix length; the network is {network}")]
    HostBitsSet {
        /// The entry as written.
        entry: String,
        /// The network the entry probably meant.
        network: String,
    },
    /// A range whose ends are of different families.
    #[error("range {start}-{end} mixes IPv4 and IPv6")]
    MixedFamilies {
        /// First address.
        start: IpAddr,
        /// Last address.
        end: IpAddr,
    },
    /// A range whose start is after its end.
    #[error("range {start}-{end} starts after it ends")]
    StartAfterEnd {
        /// First address.
        start: IpAddr,
        /// Last address.
        end: IpAddr,
    },
}

impl ParseError {
    /// A static label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            ParseError::Syntax { .. } => "syntax",
            ParseError::HostBitsSet { .. } => "host_bits_set",
            ParseError::MixedFamilies { .. } => "mixed_families",
            ParseError::StartAfterEnd { .. } => "start_after_end",
        }
    }
}

/// Why an allocation request cannot be met. The Service stays pending until something changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// The Service names a pool that does not exist (or is being deleted).
    #[error("pool {pool} does not exist")]
    UnknownPool {
        /// The pool named by the Service.
        pool: PoolName,
    },
    /// The named pool exists but its serviceAllocation does not admit this Service.
    #[error("pool {pool} does not serve this Service (its serviceAllocation does not match)")]
    PoolNotAllowed {
        /// The pool named by the Service.
        pool: PoolName,
    },
    /// No pool may assign addresses to this Service automatically.
    #[error("no pool can serve this Service: no matching serviceAllocation and no pool with autoAssign")]
    NoPoolAvailable,
    /// The pools that may serve the Service have no address of a family the Service needs.
    #[error("no {family} addresses in the pools that can serve this Service ({pools})")]
    FamilyUnavailable {
        /// The missing family.
        family: Family,
        /// The pools considered, comma separated.
        pools: String,
    },
    /// RequireDualStack, but no pool that may serve the Service has both families.
    #[error("RequireDualStack needs a pool with both IPv4 and IPv6 addresses; none of {pools} has both")]
    NoDualStackPool {
        /// The pools considered, comma separated.
        pools: String,
    },
    /// Every pool that may serve the Service is full.
    #[error("no free {family} address left in pool {pools}")]
    PoolExhausted {
        /// The family that ran out.
        family: Family,
        /// The pools considered, comma separated.
        pools: String,
    },
    /// A requested address is in no pool at all.
    #[error("requested IP {ip} is not in any IPAddressPool")]
    IpNotInAnyPool {
        /// The requested address.
        ip: IpAddr,
    },
    /// A requested address can never be a LoadBalancer IP (loopback, multicast, ...).
    #[error("requested IP {ip} is {} and can never be a LoadBalancer IP", kind.as_str())]
    ReservedAddress {
        /// The requested address.
        ip: IpAddr,
        /// What it is.
        kind: crate::reserved::Reserved,
    },
    /// A requested address is answered by another host on the LAN (an address conflict a speaker found).
    #[error(
        "requested IP {ip} is answered by another host on the LAN (see kubectl get addressconflicts); it is \
         handed out again once that host stops answering for it"
    )]
    AddressConflict {
        /// The requested address.
        ip: IpAddr,
    },
    /// A requested address lies only in pools that may not serve this Service.
    #[error("requested IP {ip} is in pool {pool}, which does not serve this Service")]
    IpNotAllowed {
        /// The requested address.
        ip: IpAddr,
        /// A pool that holds the address.
        pool: PoolName,
    },
    /// A requested address is held by another Service that it may not be shared with.
    #[error("requested IP {ip} is in use by {holder}{reason}")]
    IpInUse {
        /// The requested address.
        ip: IpAddr,
        /// One Service holding it.
        holder: ServiceKey,
        /// Why sharing is refused, starting with "; " (empty when the Services have no common sharing key).
        reason: String,
    },
    /// The request itself is contradictory (two IPv4 addresses, an IPv6 address for an IPv4-only Service...).
    #[error("invalid request: {reason}")]
    InvalidRequest {
        /// What is wrong, for a person.
        reason: String,
    },
}

impl AllocError {
    /// A static label per variant, for metrics and log fields.
    pub fn label(&self) -> &'static str {
        match self {
            AllocError::UnknownPool { .. } => "unknown_pool",
            AllocError::PoolNotAllowed { .. } => "pool_not_allowed",
            AllocError::NoPoolAvailable => "no_pool",
            AllocError::FamilyUnavailable { .. } => "family_unavailable",
            AllocError::NoDualStackPool { .. } => "no_dual_stack_pool",
            AllocError::PoolExhausted { .. } => "pool_exhausted",
            AllocError::IpNotInAnyPool { .. } => "ip_not_in_pool",
            AllocError::ReservedAddress { .. } => "reserved_address",
            AllocError::AddressConflict { .. } => "address_conflict",
            AllocError::IpNotAllowed { .. } => "ip_not_allowed",
            AllocError::IpInUse { .. } => "ip_in_use",
            AllocError::InvalidRequest { .. } => "invalid_request",
        }
    }

    /// A short CamelCase reason for Kubernetes Events.
    pub fn reason(&self) -> &'static str {
        match self {
            AllocError::UnknownPool { .. } => "UnknownPool",
            AllocError::PoolNotAllowed { .. } => "PoolNotAllowed",
            AllocError::NoPoolAvailable => "NoPoolAvailable",
            AllocError::FamilyUnavailable { .. } => "FamilyUnavailable",
            AllocError::NoDualStackPool { .. } => "NoDualStackPool",
            AllocError::PoolExhausted { .. } => "PoolExhausted",
            AllocError::IpNotInAnyPool { .. } => "IPNotInAnyPool",
            AllocError::ReservedAddress { .. } => "ReservedAddress",
            AllocError::AddressConflict { .. } => "AddressConflict",
            AllocError::IpNotAllowed { .. } => "IPNotAllowed",
            AllocError::IpInUse { .. } => "IPInUse",
            AllocError::InvalidRequest { .. } => "InvalidRequest",
        }
    }
}
