//! The TCP side of a frontend: accepts connections on the VIP, dials the next backend (an endpoint),
//! optionally sends a PROXY protocol header, and relays with [`splice::relay`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::stats::Stats;
use super::{Target, proxy_protocol, splice};
use crate::Protocol;

/// How long the accept loop pauses after an accept error (such as running out of file descriptors), so it
/// does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// What every connection of one frontend shares.
#[derive(Debug, Clone)]
pub struct Shared {
    /// Permits for open connections, shared by every frontend of the forwarder.
    pub connections: Arc<Semaphore>,
    /// How long dialling the backend may take.
    pub connect_timeout: Duration,
    /// Keepalive idle time (see [`super::Limits::tcp_keepalive`]).
    pub keepalive: Duration,
    /// Counters.
    pub stats: Arc<Stats>,
}

/// Accepts until `cancel` fires; connections stop with it too.
pub async fn serve(listener: TcpListener, target: watch::Receiver<Target>, shared: Shared, cancel: CancellationToken) {
    let mut accepted_so_far: usize = 0;
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (client, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!(error = %e, "accepting a connection failed");
                shared.stats.relay_error();
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                }
            }
        };
        let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
            shared.stats.refused();
            reset(client);
            continue;
        };
        let (backend, proxy_protocol) = {
            let target = target.borrow();
            (target.backend(accepted_so_far), target.proxy_protocol)
        };
        accepted_so_far = accepted_so_far.wrapping_add(1);
        let Some(backend) = backend else {
            debug!(%peer, "no endpoint to relay to");
            shared.stats.relay_error();
            reset(client);
            continue;
        };
        let shared = shared.clone();
        let cancel = cancel.child_token();
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                () = cancel.cancelled() => {}
                () = connection(client, peer, backend, proxy_protocol, &shared) => {}
            }
        });
    }
}

async fn connection(client: TcpStream, peer: SocketAddr, to: SocketAddr, proxy_protocol: bool, shared: &Shared) {
    let _active = shared.stats.tcp_opened();
    let mut backend = match tokio::time::timeout(shared.connect_timeout, TcpStream::connect(to)).await {
        Ok(Ok(backend)) => backend,
        Ok(Err(e)) => {
            debug!(%peer, backend = %to, error = %e, "cannot reach the backend");
            shared.stats.relay_error();
            reset(client);
            return;
        }
        Err(_) => {
            debug!(%peer, backend = %to, "connecting to the backend timed out");
            shared.stats.relay_error();
            reset(client);
            return;
        }
    };
    if let Err(e) = start(&client, peer, &mut backend, proxy_protocol, shared.keepalive).await {
        debug!(%peer, error = %e, "preparing the relay failed");
        shared.stats.relay_error();
        reset(client);
        return;
    }
    if let Err(e) = splice::relay(&client, &backend).await {
        debug!(%peer, error = %e, "relay ended with an error");
        shared.stats.relay_error();
    }
}

/// Keepalive probes sent before a silent peer counts as gone.
const KEEPALIVE_PROBES: u32 = 4;

/// Socket options, and the PROXY header when wanted.
async fn start(
    client: &TcpStream,
    peer: SocketAddr,
    backend: &mut TcpStream,
    proxy_protocol: bool,
    keepalive: Duration,
) -> std::io::Result<()> {
    let interval = (keepalive / KEEPALIVE_PROBES).max(Duration::from_secs(1));
    let probes = TcpKeepalive::new().with_time(keepalive).with_interval(interval).with_retries(KEEPALIVE_PROBES);
    for socket in [client, &*backend] {
        socket.set_nodelay(true)?;
        let socket = SockRef::from(socket);
        socket.set_tcp_keepalive(&probes)?;
        // Keepalives are only sent while nothing waits for an acknowledgement; data a vanished peer never
        // acknowledges would otherwise hold the connection for the ~15 minutes of retransmissions.
        socket.set_tcp_user_timeout(Some(keepalive + interval * KEEPALIVE_PROBES))?;
    }
    if proxy_protocol {
        // The accepted socket's local address is the VIP and port the client connected to.
        let header = proxy_protocol::header(Protocol::Tcp, peer, client.local_addr()?);
        backend.write_all(&header).await?;
    }
    Ok(())
}

/// Closes with a reset, so the client learns at once that nothing is behind the connection.
fn reset(stream: TcpStream) {
    // Failing to set linger only turns the reset into an orderly close.
    let _ = stream.set_zero_linger();
}
