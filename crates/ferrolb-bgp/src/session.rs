//! The RFC 4271 (section 8) state machine of one session, for a speaker that only opens connections and
//! only announces: it never listens, so there are no connection collisions, and it validates but ignores
//! the routes a peer sends.
//!
//! Pure: [`Session::handle`] takes an [`Event`] and the time, [`Session::on_timer`] fires the deadlines that
//! have passed, and both return the [`Action`]s for the caller to carry out (connect, send, disconnect,
//! start or stop sending routes). The caller sleeps until [`Session::next_deadline`].
//!
//! States: Idle (stopped, or waiting out a backoff after a failure), Connect (a TCP connection is being
//! opened), Active (the connection failed; the next attempt waits for the connect-retry time), OpenSent,
//! OpenConfirm, Established. Failed attempts back off exponentially from the connect-retry time, capped at
//! [`MAX_BACKOFF`]; an Established session resets the backoff.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::error::{DecodeError, ErrorKind};
use crate::message::{Message, RouteRefresh};
use crate::notification::{CEASE_ADMINISTRATIVE_SHUTDOWN, CEASE_BFD_DOWN, Notification};
use crate::open::{Family, Open};

/// The longest wait between two connection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How long to wait for the peer's OPEN after sending ours (RFC 4271 suggests 4 minutes).
pub const OPEN_WAIT: Duration = Duration::from_secs(240);

/// What a session is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// This speaker's AS.
    pub my_asn: u32,
    /// The AS the peer must have.
    pub peer_asn: u32,
    /// This speaker's BGP identifier.
    pub router_id: Ipv4Addr,
    /// The hold time proposed: zero (no keepalives) or at least 3 s.
    pub hold_time: Duration,
    /// The keepalive interval wanted; `None`: a third of the negotiated hold time. Never more than that.
    pub keepalive: Option<Duration>,
    /// The wait before retrying a failed connection (doubled after each failure, up to [`MAX_BACKOFF`]).
    pub connect_retry: Duration,
    /// The families offered.
    pub families: Vec<Family>,
}

/// The session's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not connecting: stopped, or waiting out a backoff.
    Idle,
    /// Opening a TCP connection.
    Connect,
    /// The connection failed; waiting to retry.
    Active,
    /// OPEN sent, waiting for the peer's.
    OpenSent,
    /// OPENs exchanged, waiting for the peer's KEEPALIVE.
    OpenConfirm,
    /// Routes are exchanged.
    Established,
}

impl State {
    /// The state's name as RFC 4271 spells it (and `kubectl get bgpsessions` shows it).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        }
    }

    /// Every state, for metrics.
    pub const ALL: [State; 6] =
        [State::Idle, State::Connect, State::Active, State::OpenSent, State::OpenConfirm, State::Established];
}

/// What both sides agreed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The peer's BGP identifier.
    pub peer_id: Ipv4Addr,
    /// The peer's AS.
    pub peer_asn: u32,
    /// The smaller of both hold times (zero: no hold timer, no keepalives).
    pub hold_time: Duration,
    /// The keepalive interval in use (zero when the hold time is).
    pub keepalive: Duration,
    /// The families both offered.
    pub families: Vec<Family>,
    /// Both support 4-octet AS numbers.
    pub four_octet_as: bool,
    /// The peer answers ROUTE-REFRESH.
    pub route_refresh: bool,
}

/// Why a session is not (or no longer) Established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Down {
    /// The TCP connection could not be opened.
    ConnectFailed,
    /// The peer closed the connection (or it broke) without a NOTIFICATION.
    ConnectionClosed,
    /// The peer sent this NOTIFICATION.
    NotificationReceived(Notification),
    /// This speaker sent this NOTIFICATION (a malformed or unexpected message, an OPEN it refuses, the hold
    /// timer).
    NotificationSent(Notification),
    /// The BFD session guarding this one went down (the reason is BFD's diagnostic).
    BfdDown(&'static str),
    /// Stopped on purpose (configuration removed, or the speaker shutting down).
    Stopped,
}

impl Down {
    /// A static label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Down::ConnectFailed => "connect_failed",
            Down::ConnectionClosed => "connection_closed",
            Down::NotificationReceived(_) => "notification_received",
            Down::NotificationSent(_) => "notification_sent",
            Down::BfdDown(_) => "bfd_down",
            Down::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Down::ConnectFailed => f.write_str("the peer does not answer (TCP connection failed)"),
            Down::ConnectionClosed => f.write_str("the peer closed the connection"),
            Down::NotificationReceived(n) => write!(f, "the peer sent a NOTIFICATION: {n}"),
            Down::NotificationSent(n) => write!(f, "sent a NOTIFICATION: {n}"),
            Down::BfdDown(why) => write!(f, "BFD went down: {why}"),
            Down::Stopped => f.write_str("stopped"),
        }
    }
}

/// Something that happened to the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Start connecting (also after a configuration change).
    Start,
    /// Stop: send a Cease (administrative shutdown, with this message) if connected, and stay Idle.
    Stop(String),
    /// The TCP connection is open.
    Connected,
    /// The TCP connection could not be opened.
    ConnectFailed,
    /// The TCP connection closed or broke.
    Closed,
    /// A whole message arrived.
    Received(Message),
    /// The bytes that arrived are not a valid message.
    Malformed(DecodeError),
    /// The BFD session guarding this one went down, with BFD's reason: the path is dead, so the session
    /// ends at once (a Cease with subcode 10, RFC 9384) instead of waiting for the hold time.
    BfdDown(&'static str),
}

/// What the caller must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection to the peer.
    Connect,
    /// Send this message.
    Send(Message),
    /// Close the TCP connection (after sending what was queued before).
    Disconnect,
    /// The session is up: send every route (none has been sent on this session yet).
    Established(Negotiated),
    /// The session is down (or failed to come up): forget what was sent; say why.
    Down(Down),
    /// The peer asked for every route of this family again.
    Resend(Family),
}

/// One session; see the module doc.
#[derive(Debug, Clone)]
pub struct Session {
    config: Config,
    state: State,
    negotiated: Option<Negotiated>,
    /// Failures since the last Established, for the backoff.
    failures: u32,
    /// Whether to reconnect after a failure (false once stopped).
    running: bool,
    retry_at: Option<Instant>,
    hold_at: Option<Instant>,
    keepalive_at: Option<Instant>,
    last_down: Option<Down>,
}

impl Session {
    /// A session in Idle; [`Event::Start`] starts it.
    pub fn new(config: Config) -> Session {
        Session {
            config,
            state: State::Idle,
            negotiated: None,
            failures: 0,
            running: false,
            retry_at: None,
            hold_at: None,
            keepalive_at: None,
            last_down: None,
        }
    }

    /// The state.
    pub fn state(&self) -> State {
        self.state
    }

    /// What was negotiated, while Established.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref().filter(|_| self.state == State::Established)
    }

    /// Why the session last went down (or failed to come up), if it ever did.
    pub fn last_down(&self) -> Option<&Down> {
        self.last_down.as_ref()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// When [`Session::on_timer`] must run next.
    pub fn next_deadline(&self) -> Option<Instant> {
        [self.retry_at, self.hold_at, self.keepalive_at].into_iter().flatten().min()
    }

    /// Handles `event` at `now`.
    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        match (self.state, event) {
            (_, Event::Start) => {
                self.running = true;
                match self.state {
                    State::Idle | State::Active => self.connect(),
                    _ => Vec::new(),
                }
            }
            (state, Event::Stop(message)) => {
                self.running = false;
                self.retry_at = None;
                let mut actions = Vec::new();
                if matches!(state, State::OpenSent | State::OpenConfirm | State::Established) {
                    let cease = Notification::cease(CEASE_ADMINISTRATIVE_SHUTDOWN, &message);
                    actions.push(Action::Send(Message::Notification(cease)));
                }
                if state != State::Idle && state != State::Active {
                    actions.push(Action::Disconnect);
                }
                actions.extend(self.down(Down::Stopped, now));
                self.state = State::Idle;
                actions
            }
            (State::Connect, Event::Connected) => {
                self.state = State::OpenSent;
                self.hold_at = Some(now + OPEN_WAIT);
                let hold = u16::try_from(self.config.hold_time.as_secs()).unwrap_or(u16::MAX);
                let open = Open::new(self.config.my_asn, hold, self.config.router_id, &self.config.families);
                vec![Action::Send(Message::Open(open))]
            }
            (State::Connect, Event::ConnectFailed) => {
                self.failures += 1;
                self.state = State::Active;
                self.retry_at = Some(now + self.backoff());
                self.remember(Down::ConnectFailed);
                vec![Action::Down(Down::ConnectFailed)]
            }
            (State::OpenSent | State::OpenConfirm | State::Established, Event::Closed) => {
                self.fail(Down::ConnectionClosed, now)
            }
            (State::OpenSent | State::OpenConfirm | State::Established, Event::Malformed(error)) => {
                self.notify(error.notification(), now)
            }
            (State::OpenSent | State::OpenConfirm | State::Established, Event::BfdDown(why)) => {
                let mut actions = vec![Action::Send(Message::Notification(Notification::cease(CEASE_BFD_DOWN, "")))];
                actions.extend(self.fail(Down::BfdDown(why), now));
                actions
            }
            (state, Event::Received(message)) => self.receive(state, message, now),
            // Connection events that arrive after the state moved on (a late connect result) change nothing.
            _ => Vec::new(),
        }
    }

    /// Fires every deadline at or before `now`.
    pub fn on_timer(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
            if self.running && matches!(self.state, State::Idle | State::Active) {
                actions.extend(self.connect());
            }
        }
        if self.hold_at.is_some_and(|t| t <= now) {
            self.hold_at = None;
            actions.extend(self.notify(Notification::hold_timer_expired(), now));
        }
        if self.keepalive_at.is_some_and(|t| t <= now) {
            let interval = self.negotiated.as_ref().map_or(Duration::ZERO, |n| n.keepalive);
            self.keepalive_at = (!interval.is_zero()).then(|| now + interval);
            actions.push(Action::Send(Message::Keepalive));
        }
        actions
    }

    fn connect(&mut self) -> Vec<Action> {
        self.state = State::Connect;
        self.retry_at = None;
        vec![Action::Connect]
    }

    fn backoff(&self) -> Duration {
        let base = self.config.connect_retry.max(Duration::from_millis(100));
        let factor = 1u32 << self.failures.saturating_sub(1).min(16);
        base.saturating_mul(factor).min(MAX_BACKOFF.max(base))
    }

    fn remember(&mut self, down: Down) {
        self.last_down = Some(down);
    }

    /// Leaves the connected states: clears the timers and what was negotiated.
    fn down(&mut self, down: Down, _now: Instant) -> Vec<Action> {
        self.negotiated = None;
        self.hold_at = None;
        self.keepalive_at = None;
        self.remember(down.clone());
        vec![Action::Down(down)]
    }

    /// A failure of a connected session: disconnect, go Idle, retry after the backoff.
    fn fail(&mut self, why: Down, now: Instant) -> Vec<Action> {
        self.failures += 1;
        let mut actions = vec![Action::Disconnect];
        actions.extend(self.down(why, now));
        self.state = State::Idle;
        if self.running {
            self.retry_at = Some(now + self.backoff());
        }
        actions
    }

    /// Sends `notification`, then fails.
    fn notify(&mut self, notification: Notification, now: Instant) -> Vec<Action> {
        let mut actions = vec![Action::Send(Message::Notification(notification.clone()))];
        actions.extend(self.fail(Down::NotificationSent(notification), now));
        actions
    }

    fn hold_timer(&mut self, now: Instant) {
        let hold = self.negotiated.as_ref().map_or(Duration::ZERO, |n| n.hold_time);
        self.hold_at = (!hold.is_zero()).then(|| now + hold);
    }

    fn receive(&mut self, state: State, message: Message, now: Instant) -> Vec<Action> {
        if let Message::Notification(n) = message {
            return match state {
                State::OpenSent | State::OpenConfirm | State::Established => {
                    self.fail(Down::NotificationReceived(n), now)
                }
                _ => Vec::new(),
            };
        }
        match (state, message) {
            (State::OpenSent, Message::Open(open)) => match self.accept(&open) {
                Ok(negotiated) => {
                    self.negotiated = Some(negotiated);
                    self.state = State::OpenConfirm;
                    self.hold_timer(now);
                    let interval = self.negotiated.as_ref().map_or(Duration::ZERO, |n| n.keepalive);
                    self.keepalive_at = (!interval.is_zero()).then(|| now + interval);
                    vec![Action::Send(Message::Keepalive)]
                }
                Err(error) => self.notify(error.notification(), now),
            },
            (State::OpenConfirm, Message::Keepalive) => {
                self.state = State::Established;
                self.failures = 0;
                self.hold_timer(now);
                match &self.negotiated {
                    Some(n) => vec![Action::Established(n.clone())],
                    None => Vec::new(),
                }
            }
            (State::Established, Message::Keepalive | Message::Update(_)) => {
                self.hold_timer(now);
                Vec::new()
            }
            (State::Established, Message::RouteRefresh(RouteRefresh { family })) => {
                self.hold_timer(now);
                let ours = self.negotiated.as_ref().is_some_and(|n| n.families.contains(&family));
                if ours { vec![Action::Resend(family)] } else { Vec::new() }
            }
            // RFC 6608: a message the state does not expect is a Finite State Machine Error.
            (State::OpenSent, _) => self.notify(Notification::unexpected_message(1), now),
            (State::OpenConfirm, _) => self.notify(Notification::unexpected_message(2), now),
            (State::Established, _) => self.notify(Notification::unexpected_message(3), now),
            // Nothing is connected in the other states: a message cannot arrive.
            _ => Vec::new(),
        }
    }

    /// Checks the peer's OPEN against the configuration (RFC 4271 section 6.2) and negotiates.
    fn accept(&self, open: &Open) -> Result<Negotiated, DecodeError> {
        // Without the 4-octet capability the 2-octet field is the AS (AS_TRANS matches only if configured).
        let peer_asn = open.asn();
        if peer_asn != self.config.peer_asn {
            return Err(DecodeError::with_data(ErrorKind::BadPeerAs, &open.my_as.to_be_bytes()));
        }
        if open.hold_time == 1 || open.hold_time == 2 {
            return Err(DecodeError::new(ErrorKind::UnacceptableHoldTime));
        }
        let ibgp = peer_asn == self.config.my_asn;
        if open.bgp_id.is_unspecified() || (ibgp && open.bgp_id == self.config.router_id) {
            return Err(DecodeError::new(ErrorKind::BadBgpIdentifier));
        }
        let hold = Duration::from_secs(u64::from(open.hold_time)).min(self.config.hold_time);
        let keepalive = if hold.is_zero() {
            Duration::ZERO
        } else {
            let third = hold / 3;
            self.config.keepalive.map_or(third, |k| k.min(third)).max(Duration::from_millis(100))
        };
        let theirs = open.families();
        let families = self.config.families.iter().copied().filter(|f| theirs.contains(f)).collect();
        Ok(Negotiated {
            peer_id: open.bgp_id,
            peer_asn,
            hold_time: hold,
            keepalive,
            families,
            four_octet_as: open.four_octet_as(),
            route_refresh: open.route_refresh(),
        })
    }
}

#[cfg(test)]
mod tests;
