//! Listening sockets on an address the node does not have. `IP_TRANSPARENT` (`IPV6_TRANSPARENT`) lets a
//! socket bind to the VIP, accept what the relay table delivers to it and send replies from it;
//! `IP_FREEBIND` is set as well so binding never depends on the address being configured. Both need
//! `CAP_NET_ADMIN`, which the speaker has.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol as SocketProtocol, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};

/// Pending connections the kernel queues per listener before the relay accepts them.
const BACKLOG: i32 = 1024;

/// A TCP listener on `address`, which need not be local.
pub fn tcp_listener(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = transparent(address, Type::STREAM, SocketProtocol::TCP)?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// A UDP socket bound to `address`, which need not be local; replies sent from it carry `address` as
/// their source.
pub fn udp_socket(address: SocketAddr) -> io::Result<UdpSocket> {
    let socket = transparent(address, Type::DGRAM, SocketProtocol::UDP)?;
    UdpSocket::from_std(socket.into())
}

fn transparent(address: SocketAddr, kind: Type, protocol: SocketProtocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(address), kind, Some(protocol))?;
    socket.set_cloexec(true)?;
    socket.set_reuse_address(true)?;
    match address {
        SocketAddr::V4(_) => {
            socket.set_ip_transparent_v4(true)?;
            socket.set_freebind_v4(true)?;
        }
        SocketAddr::V6(_) => {
            socket.set_only_v6(true)?;
            socket.set_ip_transparent_v6(true)?;
            socket.set_freebind_v6(true)?;
        }
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    Ok(socket)
}
