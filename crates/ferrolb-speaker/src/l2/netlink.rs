//! Follows interfaces through rtnetlink: a task subscribed to the link and IPv4/IPv6 address multicast
//! groups wakes the speaker's loop on every change, so an interface that appears, goes up, gains an address
//! or is re-created is used at once instead of at the next resync.
//!
//! The messages are not interpreted beyond their type (for the log): the loop re-reads every interface when
//! woken, which keeps one source of truth. A lost message (the socket's buffer overran) also wakes it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use netlink_sys::{AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket, protocols::NETLINK_ROUTE};
use tokio::sync::Notify;
use tracing::{debug, warn};

use super::Error;

/// `RTMGRP_LINK`: links appearing, disappearing, changing state.
const GROUP_LINK: u32 = 0x1;
/// `RTMGRP_IPV4_IFADDR`.
const GROUP_IPV4_ADDRESS: u32 = 0x10;
/// `RTMGRP_IPV6_IFADDR`.
const GROUP_IPV6_ADDRESS: u32 = 0x100;
/// `ENOBUFS`: the kernel dropped messages because the socket's buffer was full.
const ENOBUFS: i32 = 105;

/// Subscribes to link and address changes and returns the task that follows them, signalling `notify` on
/// every change; it never ends on its own, so run it supervised. Must be called inside a tokio runtime.
pub fn watch(notify: Arc<Notify>) -> Result<impl Future<Output = ()> + Send + 'static, Error> {
    let mut socket = TokioSocket::new(NETLINK_ROUTE).map_err(Error::Netlink)?;
    let groups = GROUP_LINK | GROUP_IPV4_ADDRESS | GROUP_IPV6_ADDRESS;
    socket.socket_mut().bind(&SocketAddr::new(0, groups)).map_err(Error::Netlink)?;
    Ok(follow(socket, notify))
}

async fn follow(socket: TokioSocket, notify: Arc<Notify>) {
    loop {
        match socket.recv_from_full().await {
            Ok((datagram, _)) => {
                debug!(messages = ?message_kinds(&datagram), "interface change");
                notify.notify_one();
            }
            Err(e) if e.raw_os_error() == Some(ENOBUFS) => {
                warn!("missed interface changes (netlink buffer overrun); re-reading interfaces");
                notify.notify_one();
            }
            Err(e) => {
                warn!(error = %e, "reading rtnetlink failed");
                notify.notify_one();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The kinds of the rtnetlink messages in one datagram (for the log); stops at the first malformed header.
fn message_kinds(mut datagram: &[u8]) -> Vec<&'static str> {
    let mut kinds = Vec::new();
    // struct nlmsghdr: u32 length, u16 type, u16 flags, u32 sequence, u32 port; messages are 4-byte aligned.
    while let Some(header) = datagram.get(..16) {
        let length = u32::from_ne_bytes([header[0], header[1], header[2], header[3]]) as usize;
        kinds.push(match u16::from_ne_bytes([header[4], header[5]]) {
            16 => "new_link",
            17 => "del_link",
            20 => "new_address",
            21 => "del_address",
            _ => "other",
        });
        let Some(rest) = datagram.get(length.next_multiple_of(4).max(16)..) else { break };
        datagram = rest;
    }
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u16, length: u32) -> Vec<u8> {
        let mut bytes = length.to_ne_bytes().to_vec();
        bytes.extend_from_slice(&kind.to_ne_bytes());
        bytes.extend_from_slice(&[0; 10]);
        bytes.resize(length as usize, 0);
        bytes
    }

    #[test]
    fn names_every_message_of_a_datagram() {
        let mut datagram = header(16, 32);
        datagram.extend(header(21, 18)); // padded to 20
        datagram.extend([0, 0]);
        datagram.extend(header(99, 16));
        assert_eq!(message_kinds(&datagram), ["new_link", "del_address", "other"]);
    }

    #[test]
    fn stops_at_a_truncated_message_and_never_loops() {
        assert!(message_kinds(&[0; 8]).is_empty());
        // A zero length still advances by one header, so the walk ends.
        assert_eq!(message_kinds(&[0; 16]), ["other"]);
        let mut long = header(17, 16);
        long[0] = 200; // claims more than there is
        assert_eq!(message_kinds(&long), ["del_link"]);
    }
}
