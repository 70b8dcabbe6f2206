//! The address manager of ferrolb: which Service gets which external IP.
//!
//! This crate decides allocations and nothing else. It owns the in-memory picture of pools (as sorted
//! intervals over `u128`, never enumerated, so a /64 costs what a /30 costs) and of which Service holds which
//! address, and applies the rules for pool choice, specific requests, dual-stack and IP sharing.
//!
//! Architecture invariant: no Kubernetes types, no I/O, no clock, no randomness. Callers shrink a Service
//! into a [`Request`] and a pool into a [`Pool`]; the answers are plain data ([`Assignment`]) or a typed
//! [`AllocError`] saying why a request cannot be met. That keeps every rule unit- and property-testable and
//! lets the controller rebuild the whole state from what exists in the cluster at any time.

mod address;
mod allocator;
mod error;
mod interval_set;
mod pool;
mod request;
mod reserved;
mod selector;

pub use address::{AddressRange, Family};
pub use allocator::{Allocator, Assignment, FamilyUsage, PoolUsage};
pub use error::{AllocError, ParseError};
pub use interval_set::IntervalSet;
pub use pool::{Pool, PoolConfig, PoolName, ServiceAllocation};
pub use request::{FamilyPolicy, PortKey, Protocol, Request, ServiceKey, SharingKey};
pub use reserved::{Reserved, reserved_kind, reserved_ranges};
pub use selector::{LabelSelector, Labels, Requirement};

#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
