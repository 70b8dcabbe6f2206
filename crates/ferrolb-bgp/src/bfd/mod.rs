//! BFD (RFC 5880 asynchronous mode, RFC 5881 single hop, RFC 5883 multihop), as pure code: the control
//! packet ([`packet`]) and one session's state machine ([`session`]). It detects a dead forwarding path in a
//! fraction of a second, where BGP alone waits for its hold time; a BFD session that goes Down takes its BGP
//! session down with it.
//!
//! No sockets and no clock: the speaker reads and writes UDP (checking the TTL on receive), passes the time
//! and a jitter in, and sends what the session returns. Authentication is not implemented; a packet that
//! asks for it is dropped.

pub mod packet;
pub mod session;

pub use packet::{Diagnostic, Packet, PacketError, SessionState};
pub use session::{BfdAction, BfdConfig, BfdSession};
