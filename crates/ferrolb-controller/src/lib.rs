//! The ferrolb controller: gives LoadBalancer Services external IPs from `IPAddressPool`s and publishes them
//! in `status.loadBalancer.ingress`.
//!
//! It owns the allocator state of the leader replica. Inputs are watched (Services, pools, namespaces) into
//! reflector stores; one task turns the current snapshot into a [`Plan`] (pure: [`plan::plan`]) and applies
//! it. The allocator is rebuilt from Service status whenever this replica becomes leader, so a restart never
//! moves an address.
//!
//! Architecture invariants: only the Lease holder writes ([`lease`]); the controller writes a Service's
//! status and one annotation, nothing else on it; it never announces or forwards traffic (the speaker does).

mod apply;
mod config;
mod error;
pub mod lease;
mod metrics;
pub mod plan;
mod pool;
mod run;
mod service;

pub use config::{Config, IpMode};
pub use error::{Error, Result};
pub use ferrolb_runtime::Health;
pub use metrics::Metrics;
pub use plan::Plan;
pub use pool::{PoolError, pool_from_resource};
pub use run::run;
pub use service::{is_handled, request_from_service};
