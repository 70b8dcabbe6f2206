//! One BGP session on the wire: a task that opens the TCP connection, runs [`ferrolb_bgp::session`]'s state
//! machine over it, and sends the peer its routes as incremental UPDATEs ([`ferrolb_bgp::routes::Outbox`]),
//! batching changes that arrive within [`BATCH`]. Everything it knows goes out on a watch channel
//! ([`PeerStatus`]) for the speaker's status and metrics.
//!
//! Stopping is graceful: every route is withdrawn, the peer gets [`LINGER`] to converge, then a Cease
//! NOTIFICATION (administrative shutdown, with the reason) ends the session.
//!
//! A session with a TCP MD5 key signs its socket before connecting ([`ferrolb_md5sig`]). A key the router
//! does not share is never an error anyone reports: the router drops the SYN and the connection times out,
//! so the status says the peer does not answer.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ferrolb_api::k8s::jiff;
use ferrolb_bgp::bfd::SessionState;
use ferrolb_bgp::routes::{Outbox, Peering, RouteAttributes};
use ferrolb_bgp::session::{Action, Down, Event, Negotiated, Session, State};
use ferrolb_bgp::{Context, Message, Update, frame};
use ipnet::IpNet;
use socket2::SockRef;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::bfd::BfdEndpoint;
use super::metrics::{BgpMetrics, NotificationLabels, PeerLabels, StateLabels};
use super::placement::SessionSettings;

/// How long route changes are gathered before they go out as UPDATEs.
pub const BATCH: Duration = Duration::from_millis(30);

/// How long a stopping session waits after withdrawing its routes before it closes.
pub const LINGER: Duration = Duration::from_millis(500);

/// How long one TCP connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a write may block before the connection counts as broken.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a closing connection waits for the peer to close its side.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// What one peer is given to advertise.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Routes {
    /// The routes.
    pub routes: Arc<BTreeMap<IpNet, RouteAttributes>>,
    /// This node's IPv4 next hop.
    pub next_hop_v4: Option<std::net::Ipv4Addr>,
    /// This node's IPv6 next hop.
    pub next_hop_v6: Option<std::net::Ipv6Addr>,
}

/// What a session reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// The state.
    pub state: State,
    /// What was negotiated, while Established.
    pub negotiated: Option<Negotiated>,
    /// When the session was last established (RFC 3339).
    pub established_since: Option<String>,
    /// Routes the peer has from this node.
    pub prefixes: usize,
    /// Why the session last went down or failed to come up.
    pub last_down: Option<Down>,
    /// The guarding BFD session's state, if there is one.
    pub bfd: Option<SessionState>,
    /// Why the socket could not be signed with the session's TCP MD5 key, while that is so.
    pub md5_error: Option<String>,
}

impl Default for PeerStatus {
    fn default() -> PeerStatus {
        PeerStatus {
            state: State::Idle,
            negotiated: None,
            established_since: None,
            prefixes: 0,
            last_down: None,
            bfd: None,
            md5_error: None,
        }
    }
}

/// Why a connection attempt failed.
#[derive(Debug)]
enum ConnectError {
    /// The socket could not be signed with the session's key (nothing was sent).
    Md5(ferrolb_md5sig::Error),
    /// Opening the connection failed.
    Io(std::io::Error),
}

impl From<std::io::Error> for ConnectError {
    fn from(e: std::io::Error) -> ConnectError {
        ConnectError::Io(e)
    }
}

/// The open connection.
struct Connection {
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    buffer: Vec<u8>,
    local: SocketAddr,
}

/// Runs one session until `stop` carries a reason; see the module doc.
pub(crate) struct PeerTask {
    pub(crate) name: String,
    pub(crate) settings: SessionSettings,
    pub(crate) routes: watch::Receiver<Routes>,
    pub(crate) stop: watch::Receiver<Option<String>>,
    pub(crate) status: watch::Sender<PeerStatus>,
    pub(crate) changed: Arc<Notify>,
    pub(crate) metrics: BgpMetrics,
    /// Where the session's BFD runs, if it has one.
    pub(crate) bfd: Option<BfdEndpoint>,
}

impl PeerTask {
    pub(crate) async fn run(mut self) {
        let mut session = Session::new(self.settings.session.clone());
        let mut outbox = Outbox::default();
        let mut conn: Option<Connection> = None;
        let mut connecting: Option<tokio::task::JoinHandle<Result<TcpStream, ConnectError>>> = None;
        let mut peering: Option<Peering> = None;
        let mut batch_at: Option<Instant> = None;
        let mut status = PeerStatus::default();
        let mut stop_reason: Option<String> = None;
        let labels = PeerLabels { peer: self.name.clone() };
        let mut bfd = match (&self.settings.bfd, &self.bfd) {
            (Some(peer), Some(endpoint)) => Some(endpoint.add(peer.clone())),
            _ => None,
        };
        let mut bfd_downs = 0;
        status.bfd = bfd.as_ref().map(|b| b.borrow().state);
        let mut actions = session.handle(Event::Start, Instant::now().into_std());
        loop {
            // Carry out what the session asked for; an action may produce more events (a failed write).
            while !actions.is_empty() {
                let mut next = Vec::new();
                for action in actions {
                    match action {
                        Action::Connect => {
                            connecting = Some(tokio::spawn(connect(self.settings.clone())));
                        }
                        Action::Send(message) => {
                            let Some(c) = conn.as_mut() else { continue };
                            let ctx = peering.as_ref().map_or(Context { four_octet_as: true }, Peering::context);
                            if let Message::Notification(n) = &message {
                                let code = n.error_code().map_or("unknown", |c| c.label());
                                self.metrics
                                    .notifications
                                    .get_or_create(&NotificationLabels { direction: "sent", code })
                                    .inc();
                                warn!(peer = %self.name, notification = %n, "sending a NOTIFICATION");
                            }
                            if write(c, &message.encode(&ctx)).await.is_err() {
                                next.extend(session.handle(Event::Closed, Instant::now().into_std()));
                            }
                        }
                        Action::Disconnect => {
                            if let Some(c) = conn.take() {
                                close(c).await;
                            }
                            if let Some(attempt) = connecting.take() {
                                attempt.abort();
                            }
                        }
                        Action::Established(negotiated) => {
                            let local = conn.as_ref().map(|c| c.local.ip());
                            peering = Some(peering_for(&self.settings, &negotiated, &self.routes.borrow(), local));
                            info!(peer = %self.name, hold = ?negotiated.hold_time, families = ?negotiated.families, "BGP session established");
                            status.established_since = Some(jiff::Timestamp::now().to_string());
                            status.negotiated = Some(negotiated);
                            outbox.reset();
                            batch_at = Some(Instant::now());
                        }
                        Action::Down(why) => {
                            if session.state() != State::Idle || !matches!(why, Down::Stopped) {
                                info!(peer = %self.name, reason = why.label(), "BGP session down: {why}");
                            }
                            if let Down::NotificationReceived(n) = &why {
                                let code = n.error_code().map_or("unknown", |c| c.label());
                                self.metrics
                                    .notifications
                                    .get_or_create(&NotificationLabels { direction: "received", code })
                                    .inc();
                            }
                            outbox.reset();
                            peering = None;
                            status.negotiated = None;
                            status.last_down = Some(why);
                        }
                        Action::Resend(family) => {
                            outbox.refresh(family);
                            batch_at = Some(Instant::now());
                        }
                    }
                }
                actions = next;
            }
            status.state = session.state();
            status.prefixes = outbox.len();
            self.publish(&status, &labels);
            if let Some(reason) = stop_reason.take() {
                self.shutdown(&mut session, &mut outbox, conn.as_mut(), peering.as_ref(), reason, &labels).await;
                if let Some(attempt) = connecting.take() {
                    attempt.abort();
                }
                if let Some(c) = conn.take() {
                    close(c).await;
                }
                status.state = State::Idle;
                status.prefixes = 0;
                status.negotiated = None;
                status.last_down = Some(Down::Stopped);
                status.bfd = None;
                self.publish(&status, &labels);
                if let (Some(peer), Some(endpoint)) = (&self.settings.bfd, &self.bfd) {
                    endpoint.remove(peer.peer);
                }
                return;
            }

            let deadline = session.next_deadline().map(Instant::from_std);
            tokio::select! {
                result = async { connecting.as_mut().expect("guarded").await }, if connecting.is_some() => {
                    connecting = None;
                    let now = Instant::now().into_std();
                    actions = match result {
                        Ok(Ok(stream)) => match Connection::new(stream) {
                            Ok(c) => {
                                conn = Some(c);
                                status.md5_error = None;
                                session.handle(Event::Connected, now)
                            }
                            Err(_) => session.handle(Event::ConnectFailed, now),
                        },
                        Ok(Err(ConnectError::Md5(e))) => {
                            let why = error_chain(&e);
                            if status.md5_error.as_ref() != Some(&why) {
                                warn!(peer = %self.name, error = %why, "cannot sign the session with its TCP MD5 key");
                            }
                            status.md5_error = Some(why);
                            session.handle(Event::ConnectFailed, now)
                        }
                        Ok(Err(ConnectError::Io(e))) => {
                            debug!(peer = %self.name, error = %e, "connection failed");
                            session.handle(Event::ConnectFailed, now)
                        }
                        Err(_) => session.handle(Event::ConnectFailed, now),
                    };
                }
                read = async { let c = conn.as_mut().expect("guarded"); c.reader.read_buf(&mut c.buffer).await }, if conn.is_some() => {
                    let now = Instant::now().into_std();
                    actions = match read {
                        Ok(0) | Err(_) => session.handle(Event::Closed, now),
                        Ok(_) => {
                            let ctx = peering.as_ref().map_or(Context { four_octet_as: true }, Peering::context);
                            let c = conn.as_mut().expect("guarded");
                            receive(&mut session, c, &ctx, now)
                        }
                    };
                }
                () = sleep_until(deadline) => {
                    actions = session.on_timer(Instant::now().into_std());
                }
                changed = self.routes.changed(), if stop_reason.is_none() => {
                    match changed {
                        Ok(()) => {
                            batch_at.get_or_insert(Instant::now() + BATCH);
                        }
                        // The announcer let go of this session without a word: stop anyway, gracefully.
                        Err(_) => stop_reason = Some("ferrolb: the session is no longer wanted".to_owned()),
                    }
                }
                () = sleep_until(batch_at) => {
                    batch_at = None;
                    if let (Some(p), Some(c)) = (peering.as_mut(), conn.as_mut()) {
                        let routes = self.routes.borrow_and_update().clone();
                        p.next_hop_v4 = routes.next_hop_v4.or(p.next_hop_v4);
                        p.next_hop_v6 = routes.next_hop_v6.or(p.next_hop_v6);
                        let updates = outbox.updates(&routes.routes, p);
                        if send_updates(c, &updates, p, &self.metrics, &labels).await.is_err() {
                            actions = session.handle(Event::Closed, Instant::now().into_std());
                        }
                    }
                }
                changed = async { bfd.as_mut().expect("guarded").changed().await }, if bfd.is_some() => {
                    match changed {
                        Ok(()) => {
                            let now = bfd.as_mut().expect("guarded").borrow_and_update().to_owned();
                            status.bfd = Some(now.state);
                            // A path that was up and is now down ends the session at once (RFC 5882 section
                            // 4.1); a BFD session that never came up leaves BGP alone.
                            if now.downs > bfd_downs {
                                bfd_downs = now.downs;
                                self.metrics.bfd_downs.get_or_create(&labels).inc();
                                warn!(peer = %self.name, diagnostic = now.diagnostic.as_str(), "BFD says the path to the peer is down");
                                actions = session.handle(Event::BfdDown(now.diagnostic.as_str()), Instant::now().into_std());
                            }
                        }
                        // The BFD task ended; its supervisor ends the speaker.
                        Err(_) => bfd = None,
                    }
                }
                stopped = self.stop.changed(), if stop_reason.is_none() => {
                    let reason = self.stop.borrow().clone();
                    if stopped.is_err() || reason.is_some() {
                        stop_reason = Some(reason.unwrap_or_default());
                    }
                }
            }
        }
    }

    fn publish(&self, status: &PeerStatus, labels: &PeerLabels) {
        self.metrics.prefixes.get_or_create(labels).set(i64::try_from(status.prefixes).unwrap_or(i64::MAX));
        let changed = self.status.send_if_modified(|s| {
            let modified = s != status;
            if modified {
                *s = status.clone();
            }
            modified
        });
        if changed {
            self.changed.notify_one();
        }
    }

    /// Withdraws every route, waits [`LINGER`], then sends the Cease and closes.
    async fn shutdown(
        &self,
        session: &mut Session,
        outbox: &mut Outbox,
        conn: Option<&mut Connection>,
        peering: Option<&Peering>,
        reason: String,
        labels: &PeerLabels,
    ) {
        let Some(c) = conn else {
            session.handle(Event::Stop(reason), Instant::now().into_std());
            return;
        };
        if let Some(p) = peering.filter(|_| !outbox.is_empty()) {
            let updates = outbox.updates(&BTreeMap::new(), p);
            if send_updates(c, &updates, p, &self.metrics, labels).await.is_ok() {
                tokio::time::sleep(LINGER).await;
            }
        }
        let ctx = peering.map_or(Context { four_octet_as: true }, Peering::context);
        for action in session.handle(Event::Stop(reason), Instant::now().into_std()) {
            if let Action::Send(message) = action {
                let _ = write(c, &message.encode(&ctx)).await;
            }
        }
        info!(peer = %self.name, "BGP session stopped");
    }
}

/// Closes `c` so that what was sent (a NOTIFICATION) reaches the peer: half-close, then read and drop what
/// the peer still sends until it closes too (or [`CLOSE_WAIT`] passes). Closing with unread data would
/// reset the connection, and a reset can discard the NOTIFICATION before the peer reads it.
async fn close(mut c: Connection) {
    let _ = c.writer.shutdown().await;
    let mut scratch = [0u8; 4096];
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Ok(n) = c.reader.read(&mut scratch).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

impl Connection {
    fn new(stream: TcpStream) -> std::io::Result<Connection> {
        let local = stream.local_addr()?;
        let (reader, writer) = stream.into_split();
        Ok(Connection { reader, writer, buffer: Vec::with_capacity(4096), local })
    }
}

/// Feeds every whole message in the buffer to the session; a malformed one ends the reading.
fn receive(session: &mut Session, c: &mut Connection, ctx: &Context, now: std::time::Instant) -> Vec<Action> {
    let mut actions = Vec::new();
    loop {
        match frame(&c.buffer) {
            Ok(None) => return actions,
            Ok(Some(len)) => {
                let event = match Message::decode(&c.buffer[..len], ctx) {
                    Ok(message) => Event::Received(message),
                    Err(e) => Event::Malformed(e),
                };
                c.buffer.drain(..len);
                let stop = matches!(event, Event::Malformed(_));
                actions.extend(session.handle(event, now));
                if stop || actions.iter().any(|a| matches!(a, Action::Disconnect)) {
                    return actions;
                }
            }
            Err(e) => {
                c.buffer.clear();
                actions.extend(session.handle(Event::Malformed(e), now));
                return actions;
            }
        }
    }
}

async fn write(c: &mut Connection, bytes: &[u8]) -> std::io::Result<()> {
    match tokio::time::timeout(WRITE_TIMEOUT, c.writer.write_all(bytes)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "write timed out")),
    }
}

async fn send_updates(
    c: &mut Connection,
    updates: &[Update],
    peering: &Peering,
    metrics: &BgpMetrics,
    labels: &PeerLabels,
) -> std::io::Result<()> {
    let ctx = peering.context();
    for update in updates {
        write(c, &Message::Update(update.clone()).encode(&ctx)).await?;
        metrics.updates_sent.get_or_create(labels).inc();
    }
    Ok(())
}

fn peering_for(settings: &SessionSettings, n: &Negotiated, routes: &Routes, local: Option<IpAddr>) -> Peering {
    // The session's own local address is the surest next hop of its family.
    let (local_v4, local_v6) = match local {
        Some(IpAddr::V4(a)) => (Some(a), None),
        Some(IpAddr::V6(a)) => (None, Some(a)),
        None => (None, None),
    };
    Peering {
        my_asn: settings.session.my_asn,
        external: settings.session.my_asn != settings.session.peer_asn,
        families: n.families.clone(),
        four_octet_as: n.four_octet_as,
        next_hop_v4: routes.next_hop_v4.or(local_v4),
        next_hop_v6: routes.next_hop_v6.or(local_v6.filter(|a| !a.is_unicast_link_local())),
    }
}

/// Opens the session's TCP connection: from the source address if set, with the session's TTL, signed with
/// its TCP MD5 key if it has one (set before connecting, so the SYN is signed too).
async fn connect(settings: SessionSettings) -> Result<TcpStream, ConnectError> {
    let socket = match settings.address {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(key) = &settings.md5 {
        ferrolb_md5sig::set_key(&socket, settings.address, key).map_err(ConnectError::Md5)?;
    }
    {
        let sock = SockRef::from(&socket);
        match settings.address {
            IpAddr::V4(_) => sock.set_ttl_v4(settings.ttl)?,
            IpAddr::V6(_) => sock.set_unicast_hops_v6(settings.ttl)?,
        }
    }
    socket.set_nodelay(true)?;
    if let Some(source) = settings.source {
        socket.bind(SocketAddr::new(source, 0))?;
    }
    let peer = SocketAddr::new(settings.address, settings.port);
    match tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(peer)).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out").into()),
    }
}

/// An error with its sources, for the status.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The state label for metrics.
pub(crate) fn state_labels(state: State) -> StateLabels {
    StateLabels { state: state.as_str() }
}
