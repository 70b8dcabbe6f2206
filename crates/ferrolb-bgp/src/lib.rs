//! BGP for ferrolb's speaker, as pure code: the message codec ([`message`], [`open`], [`update`],
//! [`notification`], [`community`]), the RFC 4271 session state machine of an active, announce-only
//! speaker ([`session`]), and the routes sent to one peer ([`routes`]: what changed since the last UPDATE,
//! batched into as few UPDATEs as fit).
//!
//! It owns no sockets, no tasks and no clock: the speaker reads and writes the TCP stream, passes the time
//! in, and carries out the actions the session returns. A malformed message is an `Err` that names the
//! NOTIFICATION RFC 4271 prescribes, never a panic (property tests and a cargo-fuzz target hold it to that).
//!
//! Architecture invariant: no I/O, no tokio, no Kubernetes types (CI checks `cargo tree`).

#![forbid(unsafe_code)]

pub mod bfd;
pub mod community;
pub mod error;
pub mod message;
pub mod notification;
pub mod open;
pub mod routes;
pub mod session;
pub mod update;
mod wire;

pub use community::{AnyCommunity, Community, CommunityError, LargeCommunity};
pub use error::{DecodeError, ErrorKind};
pub use message::{Message, RouteRefresh, frame};
pub use notification::Notification;
pub use open::{Capability, Family, Open};
pub use update::{Attribute, Context, Update};
