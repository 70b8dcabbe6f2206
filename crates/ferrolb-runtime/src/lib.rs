//! The I/O helpers that ferrolb's long-running components share, so each exists once: a watch that keeps a
//! reflector store filled ([`watch_into`], narrowed: [`watch_into_with`]), the Kubernetes client builder ([`client`]), the supervision of
//! background tasks ([`Tasks`]), and the liveness heartbeat behind `/healthz` ([`Health`]).
//!
//! It owns no cluster state and makes no decisions: what to watch and what to do with it belong to the
//! controller and the speaker.
//!
//! Architecture invariant: nothing here knows ferrolb's resources; it is generic over any Kubernetes kind.

#![forbid(unsafe_code)]

mod client;
mod health;
mod tasks;
mod watch;

pub use client::{ClientError, client};
pub use health::Health;
pub use tasks::{Ended, Tasks};
pub use watch::{watch_into, watch_into_with};
