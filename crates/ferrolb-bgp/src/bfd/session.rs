//! One BFD session's state machine (RFC 5880 section 6.8, asynchronous mode without echo or demand).
//!
//! Pure: [`BfdSession::receive`] takes a decoded packet and the time, [`BfdSession::on_timer`] fires what is
//! due (the next transmission, with a jitter the caller draws, and the detection time), and both return
//! [`BfdAction`]s: packets to send and the session going Up or Down. Until the session is Up it transmits at
//! most once a second (section 6.8.3); on coming Up it switches to the configured interval with a Poll
//! Sequence, as the RFC requires when the parameters change.

use std::time::{Duration, Instant};

use super::packet::{Diagnostic, Packet, SessionState};

/// The slowest a session transmits before it is Up (RFC 5880 section 6.8.3).
pub const SLOW: Duration = Duration::from_secs(1);

/// A session's parameters (a BFDProfile's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BfdConfig {
    /// The fastest this side wants to transmit.
    pub desired_min_tx: Duration,
    /// The fastest this side can receive.
    pub required_min_rx: Duration,
    /// How many intervals without a packet mean the path is down.
    pub detect_mult: u8,
    /// Send nothing until the peer has sent something.
    pub passive: bool,
}

/// What the caller must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BfdAction {
    /// Send this packet to the peer.
    Send(Packet),
    /// The session came Up.
    Up,
    /// The session left Up (or Init) for Down, for this reason.
    Down(Diagnostic),
}

/// One session; see the module doc.
#[derive(Debug, Clone)]
pub struct BfdSession {
    config: BfdConfig,
    local_discriminator: u32,
    state: SessionState,
    diagnostic: Diagnostic,
    remote_discriminator: u32,
    remote_min_rx: Duration,
    remote_desired_tx: Duration,
    remote_detect_mult: u8,
    /// The DesiredMinTxInterval advertised now (slow until Up).
    desired_tx: Duration,
    /// A Poll Sequence is running (our parameters changed; packets carry P until a Final arrives).
    polling: bool,
    heard: bool,
    next_tx: Option<Instant>,
    /// The last periodic transmission and the jitter it drew, to shorten the wait when the interval does.
    last_tx: Option<(Instant, u8)>,
    detect_at: Option<Instant>,
}

impl BfdSession {
    /// A session in Down with discriminator `local_discriminator` (non-zero, unique on this node).
    pub fn new(config: BfdConfig, local_discriminator: u32) -> BfdSession {
        BfdSession {
            config,
            local_discriminator: local_discriminator.max(1),
            state: SessionState::Down,
            diagnostic: Diagnostic::None,
            remote_discriminator: 0,
            remote_min_rx: Duration::from_micros(1),
            remote_desired_tx: Duration::ZERO,
            remote_detect_mult: 0,
            desired_tx: config.desired_min_tx.max(SLOW),
            polling: false,
            heard: false,
            next_tx: None,
            last_tx: None,
            detect_at: None,
        }
    }

    /// The state.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// Why it last went down.
    pub fn diagnostic(&self) -> Diagnostic {
        self.diagnostic
    }

    /// This side's discriminator.
    pub fn local_discriminator(&self) -> u32 {
        self.local_discriminator
    }

    /// How long the peer may stay silent before the session goes down, as negotiated now.
    pub fn detection_time(&self) -> Duration {
        let interval = self.config.required_min_rx.max(self.remote_desired_tx);
        interval.saturating_mul(u32::from(self.remote_detect_mult.max(1)))
    }

    /// When [`BfdSession::on_timer`] must run next.
    pub fn next_deadline(&self) -> Option<Instant> {
        [self.next_tx, self.detect_at].into_iter().flatten().min()
    }

    /// Starts transmitting (at once, unless passive).
    pub fn start(&mut self, now: Instant) {
        if !self.config.passive || self.heard {
            self.next_tx = Some(now);
        }
    }

    /// The transmit interval before jitter: the slower of what this side wants and what the peer can take.
    fn tx_interval(&self) -> Option<Duration> {
        (!self.remote_min_rx.is_zero()).then(|| self.desired_tx.max(self.remote_min_rx))
    }

    fn packet(&self, final_: bool) -> Packet {
        Packet {
            diagnostic: self.diagnostic,
            state: self.state,
            poll: self.polling && !final_,
            final_,
            detect_mult: self.config.detect_mult.max(1),
            my_discriminator: self.local_discriminator,
            your_discriminator: self.remote_discriminator,
            desired_min_tx: self.desired_tx,
            required_min_rx: self.config.required_min_rx,
            required_min_echo_rx: Duration::ZERO,
        }
    }

    /// Fires what is due at `now`. `jitter_percent` (0-25, drawn by the caller) shortens the next interval
    /// as RFC 5880 section 6.8.7 asks; with a multiplier of 1 it is at least 10.
    pub fn on_timer(&mut self, now: Instant, jitter_percent: u8) -> Vec<BfdAction> {
        let mut actions = Vec::new();
        if self.detect_at.is_some_and(|t| t <= now) {
            self.detect_at = None;
            if matches!(self.state, SessionState::Init | SessionState::Up) {
                actions.extend(self.go_down(Diagnostic::DetectionTimeExpired));
            }
            self.remote_discriminator = 0;
        }
        if self.next_tx.is_some_and(|t| t <= now) {
            actions.push(BfdAction::Send(self.packet(false)));
            let mut jitter = jitter_percent.min(25);
            if self.config.detect_mult <= 1 {
                jitter = jitter.max(10);
            }
            self.last_tx = Some((now, jitter));
            self.next_tx = self.tx_interval().map(|interval| now + interval * u32::from(100 - jitter) / 100);
        }
        actions
    }

    /// Brings the next periodic packet forward when the interval just got shorter (the peer lowered its
    /// RequiredMinRxInterval, or this side left slow start): the peer times this side out by the new
    /// interval at once, so waiting out the old one (up to a second) would take the session down.
    fn reschedule(&mut self, now: Instant) {
        let (Some(next), Some((last, jitter)), Some(interval)) = (self.next_tx, self.last_tx, self.tx_interval())
        else {
            return;
        };
        let sooner = last + interval * u32::from(100 - jitter) / 100;
        if sooner < next {
            self.next_tx = Some(sooner.max(now));
        }
    }

    fn go_down(&mut self, diagnostic: Diagnostic) -> Vec<BfdAction> {
        let was = self.state;
        self.state = SessionState::Down;
        self.diagnostic = diagnostic;
        self.desired_tx = self.config.desired_min_tx.max(SLOW);
        self.polling = false;
        if matches!(was, SessionState::Up | SessionState::Init) {
            vec![BfdAction::Down(diagnostic)]
        } else {
            Vec::new()
        }
    }

    /// Handles a packet received for this session at `now` (its TTL and discriminators already checked by
    /// the caller and [`Packet::decode`]).
    pub fn receive(&mut self, packet: &Packet, now: Instant) -> Vec<BfdAction> {
        let mut actions = Vec::new();
        if self.state == SessionState::AdminDown {
            return actions;
        }
        self.remote_discriminator = packet.my_discriminator;
        let shorter = packet.required_min_rx < self.remote_min_rx;
        self.remote_min_rx = packet.required_min_rx;
        if shorter {
            self.reschedule(now);
        }
        self.remote_desired_tx = packet.desired_min_tx;
        self.remote_detect_mult = packet.detect_mult;
        if packet.final_ {
            self.polling = false;
        }
        if !self.heard {
            self.heard = true;
            if self.next_tx.is_none() {
                self.next_tx = Some(now);
            }
        }
        match (self.state, packet.state) {
            // RFC 5882: an administrative shutdown of the peer is not a path failure, but the session is
            // down all the same.
            (state, SessionState::AdminDown) if state != SessionState::Down => {
                actions.extend(self.go_down(Diagnostic::NeighborDown));
            }
            (_, SessionState::AdminDown) => {}
            (SessionState::Down, SessionState::Down) => self.state = SessionState::Init,
            (SessionState::Down | SessionState::Init, SessionState::Init | SessionState::Up)
                if !(self.state == SessionState::Down && packet.state == SessionState::Up) =>
            {
                self.up(&mut actions, now);
            }
            (SessionState::Init | SessionState::Up, SessionState::Down) if self.state == SessionState::Up => {
                actions.extend(self.go_down(Diagnostic::NeighborDown));
            }
            _ => {}
        }
        // A packet refreshes the detection time while the session is coming up or up.
        self.detect_at =
            matches!(self.state, SessionState::Init | SessionState::Up).then(|| now + self.detection_time());
        // A Poll is answered with a Final at once, outside the periodic schedule.
        if packet.poll {
            actions.push(BfdAction::Send(self.packet(true)));
        }
        actions
    }

    fn up(&mut self, actions: &mut Vec<BfdAction>, now: Instant) {
        self.state = SessionState::Up;
        self.diagnostic = Diagnostic::None;
        actions.push(BfdAction::Up);
        if self.desired_tx != self.config.desired_min_tx {
            // Out of slow start: the interval changes, so a Poll Sequence announces it, as soon as the
            // faster interval allows (a slower one would wait for the Poll's Final, RFC 5880 6.8.3).
            self.desired_tx = self.config.desired_min_tx;
            self.polling = true;
            self.reschedule(now);
        }
    }

    /// Stops the session on purpose: the packet to send tells the peer (AdminDown), and nothing follows.
    pub fn stop(&mut self) -> Packet {
        self.state = SessionState::AdminDown;
        self.diagnostic = Diagnostic::AdminDown;
        self.next_tx = None;
        self.detect_at = None;
        self.packet(false)
    }
}

#[cfg(test)]
mod tests;
