//! Two sessions talking to each other in simulated time: they come up, speed up with a Poll Sequence,
//! detect a silent peer within the detection time, and handle the peer's shutdown.

use super::*;

const FAST: BfdConfig = BfdConfig {
    desired_min_tx: Duration::from_millis(100),
    required_min_rx: Duration::from_millis(100),
    detect_mult: 3,
    passive: false,
};

/// Two sessions and a clock; packets arrive `delay` after they are sent, unless the link is cut.
struct Pair {
    a: BfdSession,
    b: BfdSession,
    now: Instant,
    cut: bool,
    events: Vec<(&'static str, BfdAction)>,
    sent_by_a: Vec<Packet>,
}

impl Pair {
    fn new(a: BfdConfig, b: BfdConfig) -> Pair {
        let now = Instant::now();
        let mut pair = Pair {
            a: BfdSession::new(a, 11),
            b: BfdSession::new(b, 22),
            now,
            cut: false,
            events: Vec::new(),
            sent_by_a: Vec::new(),
        };
        pair.a.start(now);
        pair.b.start(now);
        pair
    }

    /// Runs until `until`, in steps of the sessions' own deadlines.
    fn run(&mut self, until: Instant) {
        loop {
            let next = [self.a.next_deadline(), self.b.next_deadline()].into_iter().flatten().min();
            let Some(next) = next.filter(|t| *t <= until) else { break };
            self.now = next;
            let from_a = self.a.on_timer(self.now, 10);
            let from_b = self.b.on_timer(self.now, 10);
            self.deliver("a", from_a);
            self.deliver("b", from_b);
        }
        self.now = until;
    }

    fn deliver(&mut self, from: &'static str, actions: Vec<BfdAction>) {
        for action in actions {
            match action {
                BfdAction::Send(packet) => {
                    if from == "a" {
                        self.sent_by_a.push(packet);
                    }
                    if self.cut {
                        continue;
                    }
                    let wire = Packet::decode(&packet.encode()).expect("valid packet");
                    let (to, name) = if from == "a" { (&mut self.b, "b") } else { (&mut self.a, "a") };
                    let more = to.receive(&wire, self.now);
                    self.deliver(name, more);
                }
                other => self.events.push((from, other)),
            }
        }
    }
}

#[test]
fn two_sessions_come_up_slowly_then_speed_up_with_a_poll_sequence() {
    let mut pair = Pair::new(FAST, FAST);
    let start = pair.now;
    pair.run(start + Duration::from_secs(3));
    assert_eq!((pair.a.state(), pair.b.state()), (SessionState::Up, SessionState::Up));
    assert!(pair.events.contains(&("a", BfdAction::Up)) && pair.events.contains(&("b", BfdAction::Up)));
    // Before Up, at most one packet a second; after, every ~100 ms (90 ms with this jitter).
    let polls = pair.sent_by_a.iter().filter(|p| p.poll).count();
    assert!(polls >= 1, "a Poll Sequence announced the faster interval");
    assert!(!pair.a.polling, "and it ended with a Final");
    assert_eq!(pair.a.detection_time(), Duration::from_millis(300));
    let before = pair.sent_by_a.len();
    pair.run(start + Duration::from_secs(4));
    let per_second = pair.sent_by_a.len() - before;
    assert!((10..=12).contains(&per_second), "{per_second} packets in a second once Up");
}

#[test]
fn a_silent_peer_is_down_within_the_detection_time() {
    let mut pair = Pair::new(FAST, FAST);
    let start = pair.now;
    pair.run(start + Duration::from_secs(3));
    pair.cut = true;
    let cut_at = pair.now;
    pair.run(cut_at + Duration::from_millis(250));
    assert_eq!(pair.b.state(), SessionState::Up, "not yet: 3 x 100 ms");
    pair.run(cut_at + Duration::from_millis(310));
    assert_eq!(pair.b.state(), SessionState::Down);
    assert_eq!(pair.b.diagnostic(), Diagnostic::DetectionTimeExpired);
    assert!(pair.events.contains(&("b", BfdAction::Down(Diagnostic::DetectionTimeExpired))));
    // Reconnected, they come back up (through slow start again).
    pair.cut = false;
    let healed = pair.now;
    pair.run(healed + Duration::from_secs(4));
    assert_eq!((pair.a.state(), pair.b.state()), (SessionState::Up, SessionState::Up));
}

#[test]
fn an_administrative_stop_takes_the_peer_down_as_neighbor_down() {
    let mut pair = Pair::new(FAST, FAST);
    let start = pair.now;
    pair.run(start + Duration::from_secs(3));
    let goodbye = pair.a.stop();
    assert_eq!((goodbye.state, goodbye.diagnostic), (SessionState::AdminDown, Diagnostic::AdminDown));
    let actions = pair.b.receive(&goodbye, pair.now);
    assert_eq!(actions, [BfdAction::Down(Diagnostic::NeighborDown)]);
    assert_eq!(pair.a.next_deadline(), None, "a stopped session sends nothing more");
    assert!(pair.a.receive(&goodbye, pair.now).is_empty(), "and takes nothing in");
}

#[test]
fn a_passive_session_waits_for_the_peer_and_the_slower_side_sets_the_pace() {
    let slow =
        BfdConfig { desired_min_tx: Duration::from_millis(300), required_min_rx: Duration::from_millis(300), ..FAST };
    let passive = BfdConfig { passive: true, ..FAST };
    let mut pair = Pair::new(passive, slow);
    assert_eq!(pair.a.next_deadline(), None, "passive: nothing sent before the peer speaks");
    let start = pair.now;
    pair.run(start + Duration::from_secs(4));
    assert_eq!((pair.a.state(), pair.b.state()), (SessionState::Up, SessionState::Up));
    // b can take a packet only every 300 ms, and sends every 300 ms: 3 x 300 ms both ways.
    assert_eq!(pair.a.detection_time(), Duration::from_millis(900));
    assert_eq!(pair.b.detection_time(), Duration::from_millis(900));
}

#[test]
fn packets_round_trip_and_bad_ones_are_dropped() {
    let p = BfdSession::new(FAST, 7).packet(false);
    assert_eq!(Packet::decode(&p.encode()), Ok(p));
    let mut bad = p.encode();
    bad[0] = 0x40; // version 2
    assert!(matches!(Packet::decode(&bad), Err(super::super::PacketError::Version(2))));
    let mut bad = p.encode();
    bad[2] = 0;
    assert!(Packet::decode(&bad).is_err(), "detection multiplier zero");
    let mut bad = p.encode();
    bad[1] |= 0x04;
    assert!(Packet::decode(&bad).is_err(), "authentication");
    let mut up_without_your = p;
    up_without_your.state = SessionState::Up;
    assert!(Packet::decode(&up_without_your.encode()).is_err(), "Up with your-discriminator 0");
    assert!(Packet::decode(&p.encode()[..20]).is_err());
}

/// FRR in slow start asks for at most one packet a second, then lowers its RequiredMinRxInterval with a
/// Poll once Up; from then on it times this side out by the fast interval, so the next packet must not wait
/// out the slow one (seen as a flap 0.9 s after every session came up).
#[test]
fn a_peer_lowering_its_receive_interval_brings_the_next_packet_forward() {
    let start = Instant::now();
    let mut session = BfdSession::new(FAST, 7);
    session.start(start);
    let peer = |state, required_min_rx: u64, poll| Packet {
        diagnostic: Diagnostic::None,
        state,
        poll,
        final_: false,
        detect_mult: 5,
        my_discriminator: 99,
        your_discriminator: 7,
        desired_min_tx: Duration::from_millis(1000),
        required_min_rx: Duration::from_millis(required_min_rx),
        required_min_echo_rx: Duration::ZERO,
    };
    session.receive(&peer(SessionState::Init, 1000, false), start);
    assert_eq!(session.state(), SessionState::Up);
    // The periodic packet goes out now (the Poll of the faster interval); the next is a second away, as the
    // peer still asks.
    let sent = session.on_timer(start, 0);
    assert!(matches!(sent.as_slice(), [BfdAction::Send(p)] if p.poll && p.desired_min_tx == FAST.desired_min_tx));
    assert_eq!(session.next_deadline(), Some(start + Duration::from_millis(1000)));
    // The peer speeds up: the next packet is due by this side's own 100 ms.
    let later = start + Duration::from_millis(20);
    session.receive(&peer(SessionState::Up, 10, true), later);
    assert_eq!(session.next_deadline(), Some(start + Duration::from_millis(100)));
}
