//! BFD on the wire (RFC 5881 single hop on UDP 3784, RFC 5883 multihop on UDP 4784): one task that owns the
//! receive sockets and every session of this node, runs `ferrolb_bgp::bfd`'s state machines on their
//! deadlines, and publishes each session's state on a watch channel for its BGP session.
//!
//! Each session sends from a socket of its own (a source port in 49152-65535, the same for all its packets)
//! with TTL 255; a received packet must arrive with TTL 255 (single hop: it cannot have crossed a router) or
//! at least the configured minimum (multihop), and is matched to its session by the discriminator the peer
//! echoes, or by the peer's address while the peer does not know it yet.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::IoSliceMut;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};

use ferrolb_bgp::bfd::{BfdAction, BfdConfig, BfdSession, Diagnostic, Packet, SessionState};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// The destination port of single-hop control packets.
pub const SINGLE_HOP_PORT: u16 = 3784;
/// The destination port of multihop control packets.
pub const MULTIHOP_PORT: u16 = 4784;

/// What a BGP session reads of its BFD session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BfdStatus {
    /// The state.
    pub state: SessionState,
    /// Why it last went down.
    pub diagnostic: Diagnostic,
    /// How many times it went Down after being Up.
    pub downs: u64,
}

impl Default for BfdStatus {
    fn default() -> BfdStatus {
        BfdStatus { state: SessionState::Down, diagnostic: Diagnostic::None, downs: 0 }
    }
}

/// How one BFD session is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdPeer {
    /// The peer's address.
    pub peer: IpAddr,
    /// This node's address to send from (default: the kernel's choice).
    pub local: Option<IpAddr>,
    /// Multihop (RFC 5883): the peer is not directly connected.
    pub multihop: bool,
    /// The lowest TTL accepted on a multihop session (single hop always requires 255).
    pub minimum_ttl: u8,
    /// The timers.
    pub config: BfdConfig,
}

enum Command {
    Add(BfdPeer, watch::Sender<BfdStatus>),
    Remove(IpAddr),
}

/// The handle through which BGP sessions add and remove their BFD sessions.
#[derive(Debug, Clone)]
pub struct BfdEndpoint {
    commands: mpsc::UnboundedSender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Add(p, _) => write!(f, "Add({})", p.peer),
            Command::Remove(p) => write!(f, "Remove({p})"),
        }
    }
}

impl BfdEndpoint {
    /// Binds the receive sockets and returns the handle and the task to run (supervised). Fails if neither
    /// family's single-hop port can be bound.
    pub fn start() -> std::io::Result<(BfdEndpoint, impl Future<Output = ()> + Send + 'static)> {
        let mut receivers = Vec::new();
        for (ip, port) in [
            (IpAddr::V4(Ipv4Addr::UNSPECIFIED), SINGLE_HOP_PORT),
            (IpAddr::V6(Ipv6Addr::UNSPECIFIED), SINGLE_HOP_PORT),
            (IpAddr::V4(Ipv4Addr::UNSPECIFIED), MULTIHOP_PORT),
            (IpAddr::V6(Ipv6Addr::UNSPECIFIED), MULTIHOP_PORT),
        ] {
            match receiver(SocketAddr::new(ip, port)) {
                Ok(socket) => receivers.push(socket),
                Err(e) if port == SINGLE_HOP_PORT && ip.is_ipv4() => return Err(e),
                Err(e) => debug!(%ip, port, error = %e, "BFD: not listening here"),
            }
        }
        let (commands, rx) = mpsc::unbounded_channel();
        // Discriminators and source ports need to differ between sessions and restarts, not to be secret.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let mut rng = StdRng::seed_from_u64(
            u64::try_from(nanos & u128::from(u64::MAX)).unwrap_or(0) ^ u64::from(std::process::id()),
        );
        let next_discriminator = rng.random::<u32>() | 1;
        let task = Endpoint { receivers, sessions: BTreeMap::new(), next_discriminator, rng };
        Ok((BfdEndpoint { commands }, task.run(rx)))
    }

    /// Starts (or restarts, with new settings) the session with `peer.peer`; its state comes on the returned
    /// channel.
    pub fn add(&self, peer: BfdPeer) -> watch::Receiver<BfdStatus> {
        let (tx, rx) = watch::channel(BfdStatus::default());
        let _ = self.commands.send(Command::Add(peer, tx));
        rx
    }

    /// Stops the session with `peer`, telling the peer (AdminDown).
    pub fn remove(&self, peer: IpAddr) {
        let _ = self.commands.send(Command::Remove(peer));
    }
}

fn receiver(address: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(address), socket2::Type::DGRAM, None)?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    if address.is_ipv4() {
        setsockopt(&socket, sockopt::Ipv4RecvTtl, &true).map_err(std::io::Error::from)?;
    } else {
        setsockopt(&socket, sockopt::Ipv6RecvHopLimit, &true).map_err(std::io::Error::from)?;
    }
    UdpSocket::from_std(socket.into())
}

struct Live {
    peer: BfdPeer,
    session: BfdSession,
    socket: UdpSocket,
    status: watch::Sender<BfdStatus>,
}

struct Endpoint {
    receivers: Vec<UdpSocket>,
    sessions: BTreeMap<IpAddr, Live>,
    next_discriminator: u32,
    rng: StdRng,
}

/// A received datagram: its bytes, where it came from, with which TTL.
struct Received {
    bytes: Vec<u8>,
    from: IpAddr,
    ttl: Option<u8>,
}

fn read_one(fd: RawFd) -> std::io::Result<Received> {
    let mut buffer = [0u8; 512];
    let mut cmsg = nix::cmsg_space!(i32);
    let mut iov = [IoSliceMut::new(&mut buffer)];
    let message = recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut cmsg), MsgFlags::MSG_DONTWAIT)
        .map_err(std::io::Error::from)?;
    let mut ttl = None;
    for c in message.cmsgs().map_err(std::io::Error::from)? {
        match c {
            ControlMessageOwned::Ipv4Ttl(t) => ttl = u8::try_from(t).ok(),
            ControlMessageOwned::Ipv6HopLimit(t) => ttl = u8::try_from(t).ok(),
            _ => {}
        }
    }
    let from = message
        .address
        .and_then(|a| {
            a.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        })
        .ok_or_else(|| std::io::Error::other("no source address"))?;
    let len = message.bytes;
    Ok(Received { bytes: buffer[..len].to_vec(), from, ttl })
}

/// The next datagram on any of `receivers`, read with its TTL.
async fn readable(receivers: &[UdpSocket]) -> std::io::Result<Received> {
    let futures = receivers.iter().map(|r| Box::pin(r.async_io(Interest::READABLE, || read_one(r.as_raw_fd()))));
    futures::future::select_all(futures).await.0
}

/// The IPv4 form of an IPv4-mapped IPv6 address, so both spellings find the same session.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl Endpoint {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            let deadline =
                self.sessions.values().filter_map(|l| l.session.next_deadline()).min().map(Instant::from_std);
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Add(peer, status)) => self.add(peer, status).await,
                    Some(Command::Remove(ip)) => self.remove(ip).await,
                    None => {
                        for ip in self.sessions.keys().copied().collect::<Vec<_>>() {
                            self.remove(ip).await;
                        }
                        return;
                    }
                },
                received = readable(&self.receivers), if !self.receivers.is_empty() => match received {
                    Ok(datagram) => self.receive(datagram).await,
                    Err(e) => warn!(error = %e, "BFD: receiving failed"),
                },
                () = async { match deadline { Some(at) => tokio::time::sleep_until(at).await, None => std::future::pending().await } } => {
                    let now = Instant::now().into_std();
                    for live in self.sessions.values_mut() {
                        if live.session.next_deadline().is_some_and(|t| t <= now) {
                            let actions = live.session.on_timer(now, self.rng.random_range(0..=25));
                            act(live, actions).await;
                        }
                    }
                }
            }
        }
    }

    async fn add(&mut self, peer: BfdPeer, status: watch::Sender<BfdStatus>) {
        let ip = canonical(peer.peer);
        self.remove(ip).await;
        let local = peer.local.unwrap_or(if ip.is_ipv4() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        });
        let socket = match sender(local, &mut self.rng).await {
            Ok(socket) => socket,
            Err(e) => {
                warn!(peer = %ip, error = %e, "BFD: cannot open a sending socket; the session stays Down");
                return;
            }
        };
        self.next_discriminator = self.next_discriminator.wrapping_add(1).max(1);
        let mut session = BfdSession::new(peer.config, self.next_discriminator);
        session.start(Instant::now().into_std());
        info!(peer = %ip, tx = ?peer.config.desired_min_tx, rx = ?peer.config.required_min_rx, mult = peer.config.detect_mult, "BFD session started");
        self.sessions.insert(ip, Live { peer, session, socket, status });
    }

    async fn remove(&mut self, ip: IpAddr) {
        if let Some(mut live) = self.sessions.remove(&canonical(ip)) {
            let goodbye = live.session.stop();
            send(&live, &goodbye).await;
            info!(peer = %ip, "BFD session stopped");
        }
    }

    async fn receive(&mut self, datagram: Received) {
        let packet = match Packet::decode(&datagram.bytes) {
            Ok(packet) => packet,
            Err(e) => {
                debug!(from = %datagram.from, error = %e, reason = e.label(), "BFD: dropping a packet");
                return;
            }
        };
        let from = canonical(datagram.from);
        let live = if packet.your_discriminator != 0 {
            self.sessions.values_mut().find(|l| l.session.local_discriminator() == packet.your_discriminator)
        } else {
            self.sessions.get_mut(&from)
        };
        let Some(live) = live else {
            debug!(%from, "BFD: a packet for no session");
            return;
        };
        let wanted_ttl = if live.peer.multihop { live.peer.minimum_ttl } else { 255 };
        if datagram.ttl.is_none_or(|ttl| ttl < wanted_ttl) {
            debug!(%from, ttl = ?datagram.ttl, wanted_ttl, "BFD: dropping a packet with a low TTL");
            return;
        }
        let actions = live.session.receive(&packet, Instant::now().into_std());
        act(live, actions).await;
    }
}

async fn sender(local: IpAddr, rng: &mut StdRng) -> std::io::Result<UdpSocket> {
    // RFC 5881: a source port in 49152-65535, the same for all of a session's packets.
    let mut last = None;
    for _ in 0..64 {
        let port = rng.random_range(49152..=65535);
        match UdpSocket::bind(SocketAddr::new(local, port)).await {
            Ok(socket) => {
                let sock = socket2::SockRef::from(&socket);
                if local.is_ipv4() {
                    sock.set_ttl_v4(255)?;
                } else {
                    sock.set_unicast_hops_v6(255)?;
                }
                return Ok(socket);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free source port")))
}

async fn send(live: &Live, packet: &Packet) {
    let port = if live.peer.multihop { MULTIHOP_PORT } else { SINGLE_HOP_PORT };
    if let Err(e) = live.socket.send_to(&packet.encode(), SocketAddr::new(live.peer.peer, port)).await {
        debug!(peer = %live.peer.peer, error = %e, "BFD: sending failed");
    }
}

async fn act(live: &mut Live, actions: Vec<BfdAction>) {
    for action in actions {
        match action {
            BfdAction::Send(packet) => send(live, &packet).await,
            BfdAction::Up => {
                info!(peer = %live.peer.peer, "BFD session up");
                live.status.send_modify(|s| {
                    s.state = SessionState::Up;
                    s.diagnostic = Diagnostic::None;
                });
            }
            BfdAction::Down(diagnostic) => {
                warn!(peer = %live.peer.peer, why = diagnostic.as_str(), "BFD session down");
                live.status.send_modify(|s| {
                    s.state = SessionState::Down;
                    s.diagnostic = diagnostic;
                    s.downs += 1;
                });
            }
        }
    }
    let state = live.session.state();
    live.status.send_if_modified(|s| {
        let changed = s.state != state;
        s.state = state;
        changed
    });
}
