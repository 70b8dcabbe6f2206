//! The UDP side of a frontend. Each client (source address and port) gets a flow: a socket connected to one
//! backend (the next endpoint), so the backend's replies can be told apart per client and sent back from
//! the VIP through the frontend's transparent socket. Flows live in one [`FlowTable`] shared by every UDP
//! frontend of the forwarder, so the flow cap bounds the whole relay; they close after `udp_idle` without
//! traffic in either direction, and the least recently active one makes room when the table is full. A flow
//! whose backend leaves the frontend's endpoints is closed, so the client's next datagram opens one to a
//! current endpoint (a flow that never pauses would otherwise keep sending to a pod that is gone).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::flows::FlowTable;
use super::stats::Stats;
use super::{Target, proxy_protocol};
use crate::{Frontend, Protocol};

/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

/// A flow is one client of one frontend.
pub type FlowKey = (Frontend, SocketAddr);

/// The flow table and what every UDP frontend shares.
#[derive(Debug, Clone)]
pub struct Shared {
    /// Every open flow of the forwarder.
    pub flows: Arc<Mutex<FlowTable<FlowKey, Flow>>>,
    /// Counters.
    pub stats: Arc<Stats>,
}

/// One open flow: the socket towards the backend and the task relaying its replies (stopped on drop).
#[derive(Debug)]
pub struct Flow {
    backend: Arc<UdpSocket>,
    /// Where `backend` is connected.
    to: SocketAddr,
    header: Option<Arc<[u8]>>,
    replies: JoinHandle<()>,
}

impl Drop for Flow {
    fn drop(&mut self) {
        self.replies.abort();
    }
}

impl Shared {
    /// A table of at most `capacity` flows closing after `idle`.
    pub fn new(capacity: usize, idle: Duration, stats: Arc<Stats>) -> Self {
        Shared { flows: Arc::new(Mutex::new(FlowTable::new(capacity, idle))), stats }
    }

    fn table(&self) -> MutexGuard<'_, FlowTable<FlowKey, Flow>> {
        // The table stays consistent whatever a panicking holder did: every method leaves it whole.
        self.flows.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Closes every flow of `frontend`.
    pub fn remove_frontend(&self, frontend: Frontend) {
        self.close_where(|(key, _), _| *key == frontend);
    }

    /// Closes every flow of `frontend` whose backend is not one of `backends`.
    fn remove_backends_not_in(&self, frontend: Frontend, backends: &[SocketAddr]) {
        let closed = self.close_where(|(key, _), flow| *key == frontend && !backends.contains(&flow.to));
        if closed > 0 {
            debug!(%frontend, closed, "closed UDP flows to backends that left");
        }
    }

    /// Closes the flows that match `doomed` (outside the table's lock, so their reply tasks stop unlocked);
    /// returns how many.
    fn close_where(&self, doomed: impl FnMut(&FlowKey, &Flow) -> bool) -> usize {
        let removed = {
            let mut table = self.table();
            let removed = table.remove_where(doomed);
            self.stats.udp_flows_now(table.len());
            removed
        };
        removed.len()
    }

    /// Closes every flow idle long enough; returns when the next one is due.
    fn expire(&self, now: Instant) -> Option<Instant> {
        let (expired, next) = {
            let mut table = self.table();
            let expired = table.expire(now);
            self.stats.udp_flows_now(table.len());
            (expired, table.next_expiry())
        };
        drop(expired);
        next
    }
}

/// Relays datagrams until `cancel` fires, then closes the frontend's flows.
pub async fn serve(
    frontend: Frontend,
    socket: UdpSocket,
    mut target: watch::Receiver<Target>,
    shared: Shared,
    cancel: CancellationToken,
) {
    let socket = Arc::new(socket);
    let mut opened_so_far: usize = 0;
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    let mut next_expiry = shared.expire(Instant::now());
    loop {
        let wake = next_expiry.map(tokio::time::Instant::from_std);
        let received = tokio::select! {
            () = cancel.cancelled() => break,
            changed = target.changed() => {
                // The sender lives as long as the frontend; without it there is nothing left to follow.
                if changed.is_err() {
                    break;
                }
                let backends = target.borrow_and_update().backends.clone();
                shared.remove_backends_not_in(frontend, &backends);
                continue;
            }
            () = sleep_until(wake) => {
                next_expiry = shared.expire(Instant::now());
                continue;
            }
            received = socket.recv_from(&mut buffer) => received,
        };
        match received {
            Ok((len, client)) => {
                let datagram = buffer.get(..len).unwrap_or_default();
                let turn = Turn { target: &target, n: &mut opened_so_far };
                if let Err(e) = forward(frontend, &socket, client, datagram, turn, &shared).await {
                    debug!(%frontend, %client, error = %e, "relaying a datagram failed");
                    shared.stats.relay_error();
                }
            }
            Err(e) => {
                debug!(%frontend, error = %e, "receiving a datagram failed");
                shared.stats.relay_error();
            }
        }
        next_expiry = shared.table().next_expiry();
    }
    shared.remove_frontend(frontend);
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Where a new flow goes: the frontend's target, and how many flows it opened so far (for the turn).
struct Turn<'a> {
    target: &'a watch::Receiver<Target>,
    n: &'a mut usize,
}

/// Sends one client datagram to the backend through the client's flow, opening it if needed.
async fn forward(
    frontend: Frontend,
    listener: &Arc<UdpSocket>,
    client: SocketAddr,
    datagram: &[u8],
    turn: Turn<'_>,
    shared: &Shared,
) -> std::io::Result<()> {
    let key = (frontend, client);
    let existing = shared.table().touch(&key, Instant::now()).map(|flow| (flow.backend.clone(), flow.header.clone()));
    let (backend, header) = match existing {
        Some(existing) => existing,
        None => {
            let (to, proxy_protocol) = {
                let target = turn.target.borrow();
                (target.backend(*turn.n), target.proxy_protocol)
            };
            *turn.n = turn.n.wrapping_add(1);
            let Some(to) = to else {
                debug!(%frontend, %client, "no endpoint to relay to");
                return Ok(());
            };
            open(key, listener, to, proxy_protocol, shared).await?
        }
    };
    match header {
        None => backend.send(datagram).await?,
        Some(header) => {
            let mut framed = Vec::with_capacity(header.len() + datagram.len());
            framed.extend_from_slice(&header);
            framed.extend_from_slice(datagram);
            backend.send(&framed).await?
        }
    };
    Ok(())
}

/// Opens the flow for `key`: a socket connected to the backend and the task relaying its replies.
async fn open(
    key: FlowKey,
    listener: &Arc<UdpSocket>,
    to: SocketAddr,
    proxy_protocol: bool,
    shared: &Shared,
) -> std::io::Result<(Arc<UdpSocket>, Option<Arc<[u8]>>)> {
    let (frontend, client) = key;
    let unspecified = match to {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let backend = UdpSocket::bind(SocketAddr::new(unspecified, 0)).await?;
    backend.connect(to).await?;
    let backend = Arc::new(backend);
    let header = proxy_protocol.then(|| {
        let vip = SocketAddr::new(frontend.ip, frontend.port);
        Arc::from(proxy_protocol::header(Protocol::Udp, client, vip))
    });
    let replies = tokio::spawn(replies(key, backend.clone(), listener.clone(), shared.clone()));
    let flow = Flow { backend: backend.clone(), to, header: header.clone(), replies };
    let displaced = {
        let mut table = shared.table();
        let displaced = table.insert(key, flow, Instant::now());
        shared.stats.udp_flows_now(table.len());
        displaced
    };
    shared.stats.udp_flow_opened();
    if let Some((displaced_key, _)) = &displaced
        && *displaced_key != key
    {
        shared.stats.udp_flow_evicted();
    }
    drop(displaced);
    debug!(%frontend, %client, backend = %to, "opened a UDP flow");
    Ok((backend, header))
}

/// Sends the backend's replies to the client from the VIP, until the flow is closed.
async fn replies(key: FlowKey, backend: Arc<UdpSocket>, listener: Arc<UdpSocket>, shared: Shared) {
    let (frontend, client) = key;
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    loop {
        match backend.recv(&mut buffer).await {
            Ok(len) => {
                let reply = buffer.get(..len).unwrap_or_default();
                if let Err(e) = listener.send_to(reply, client).await {
                    debug!(%frontend, %client, error = %e, "sending a reply to the client failed");
                    shared.stats.relay_error();
                }
                shared.table().touch(&key, Instant::now());
            }
            // An ICMP error for an earlier datagram (nothing listens on the backend yet): keep the flow.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => shared.stats.relay_error(),
            Err(e) => {
                debug!(%frontend, %client, error = %e, "receiving from the backend failed; closing the flow");
                shared.stats.relay_error();
                let flow = {
                    let mut table = shared.table();
                    let flow = table.remove(&key);
                    shared.stats.udp_flows_now(table.len());
                    flow
                };
                // Dropping the flow aborts this very task, so it goes last.
                drop(flow);
                return;
            }
        }
    }
}
