//! The state machine, event by event: the happy path, every way down, timers and backoff.

use super::*;
use crate::notification::ErrorCode;
use crate::update::Update;

fn config() -> Config {
    Config {
        my_asn: 64512,
        peer_asn: 64513,
        router_id: Ipv4Addr::new(198, 51, 100, 11),
        hold_time: Duration::from_secs(9),
        keepalive: None,
        connect_retry: Duration::from_secs(1),
        families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
    }
}

fn peer_open(asn: u32, hold: u16, families: &[Family]) -> Message {
    Message::Open(Open::new(asn, hold, Ipv4Addr::new(198, 51, 100, 1), families))
}

/// A session brought to Established at `t0`.
fn established(t0: Instant) -> Session {
    let mut s = Session::new(config());
    s.handle(Event::Start, t0);
    s.handle(Event::Connected, t0);
    s.handle(Event::Received(peer_open(64513, 90, &[Family::IPV4_UNICAST])), t0);
    let actions = s.handle(Event::Received(Message::Keepalive), t0);
    assert!(matches!(actions.as_slice(), [Action::Established(_)]), "{actions:?}");
    s
}

fn sent_notification(actions: &[Action]) -> Option<&Notification> {
    actions.iter().find_map(|a| match a {
        Action::Send(Message::Notification(n)) => Some(n),
        _ => None,
    })
}

#[test]
fn the_happy_path_negotiates_the_smaller_hold_time_and_common_families() {
    let t0 = Instant::now();
    let mut s = Session::new(config());
    assert_eq!(s.handle(Event::Start, t0), [Action::Connect]);
    assert_eq!(s.state(), State::Connect);
    let actions = s.handle(Event::Connected, t0);
    let [Action::Send(Message::Open(open))] = actions.as_slice() else { panic!("{actions:?}") };
    assert_eq!(
        (open.asn(), open.hold_time, open.families()),
        (64512, 9, vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST])
    );
    assert!(open.route_refresh() && open.four_octet_as());
    assert_eq!(s.state(), State::OpenSent);
    let actions = s.handle(Event::Received(peer_open(64513, 90, &[Family::IPV4_UNICAST])), t0);
    assert_eq!(actions, [Action::Send(Message::Keepalive)]);
    assert_eq!(s.state(), State::OpenConfirm);
    let actions = s.handle(Event::Received(Message::Keepalive), t0);
    let [Action::Established(n)] = actions.as_slice() else { panic!("{actions:?}") };
    assert_eq!((n.hold_time, n.keepalive), (Duration::from_secs(9), Duration::from_secs(3)));
    assert_eq!(n.families, [Family::IPV4_UNICAST]);
    assert!(n.four_octet_as && n.route_refresh);
    assert_eq!(s.state(), State::Established);
    assert!(s.negotiated().is_some());
}

#[test]
fn keepalives_go_out_every_third_of_the_hold_time_and_reset_nothing_else() {
    let t0 = Instant::now();
    let mut s = established(t0);
    assert_eq!(s.next_deadline(), Some(t0 + Duration::from_secs(3)));
    assert_eq!(s.on_timer(t0 + Duration::from_secs(3)), [Action::Send(Message::Keepalive)]);
    assert_eq!(s.next_deadline(), Some(t0 + Duration::from_secs(6)));
    assert!(s.on_timer(t0 + Duration::from_secs(4)).is_empty(), "nothing is due");
}

#[test]
fn a_silent_peer_expires_the_hold_timer_and_the_session_retries() {
    let t0 = Instant::now();
    let mut s = established(t0);
    // Keepalives from the peer push the hold timer out.
    s.handle(Event::Received(Message::Keepalive), t0 + Duration::from_secs(5));
    let expiry = t0 + Duration::from_secs(14);
    let mut actions = Vec::new();
    let mut now = t0;
    while now < expiry {
        now = s.next_deadline().unwrap().min(expiry);
        actions = s.on_timer(now);
    }
    let n = sent_notification(&actions).expect("a NOTIFICATION");
    assert_eq!(n.error_code(), Some(ErrorCode::HoldTimerExpired));
    assert!(actions.contains(&Action::Disconnect));
    assert_eq!(s.state(), State::Idle);
    assert!(matches!(s.last_down(), Some(Down::NotificationSent(_))));
    assert_eq!(s.next_deadline(), Some(expiry + Duration::from_secs(1)), "retry after the connect-retry time");
    assert_eq!(s.on_timer(expiry + Duration::from_secs(1)), [Action::Connect]);
}

#[test]
fn a_wrong_peer_as_or_hold_time_gets_the_open_error_rfc_4271_names() {
    let t0 = Instant::now();
    for (open, subcode) in [
        (peer_open(64999, 90, &[]), 2),
        (peer_open(64513, 2, &[]), 6),
        (Message::Open(Open::new(64513, 90, Ipv4Addr::UNSPECIFIED, &[])), 3),
    ] {
        let mut s = Session::new(config());
        s.handle(Event::Start, t0);
        s.handle(Event::Connected, t0);
        let actions = s.handle(Event::Received(open), t0);
        let n = sent_notification(&actions).expect("a NOTIFICATION");
        assert_eq!((n.error_code(), n.subcode), (Some(ErrorCode::Open), subcode));
        assert_eq!(s.state(), State::Idle);
    }
}

#[test]
fn an_internal_peer_with_this_speakers_identifier_is_refused() {
    let t0 = Instant::now();
    let mut s = Session::new(Config { peer_asn: 64512, ..config() });
    s.handle(Event::Start, t0);
    s.handle(Event::Connected, t0);
    let same_id = Open::new(64512, 90, config().router_id, &[]);
    let n = sent_notification(&s.handle(Event::Received(Message::Open(same_id)), t0)).cloned().unwrap();
    assert_eq!((n.code, n.subcode), (2, 3));
}

#[test]
fn failed_connections_back_off_exponentially_up_to_the_cap() {
    let t0 = Instant::now();
    let mut s = Session::new(config());
    s.handle(Event::Start, t0);
    let mut now = t0;
    let mut waits = Vec::new();
    for _ in 0..8 {
        assert_eq!(s.handle(Event::ConnectFailed, now), [Action::Down(Down::ConnectFailed)]);
        assert_eq!(s.state(), State::Active);
        let at = s.next_deadline().unwrap();
        waits.push((at - now).as_secs());
        now = at;
        assert_eq!(s.on_timer(now), [Action::Connect]);
    }
    assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
    // Success resets the backoff.
    s.handle(Event::Connected, now);
    s.handle(Event::Received(peer_open(64513, 90, &[])), now);
    s.handle(Event::Received(Message::Keepalive), now);
    s.handle(Event::Closed, now);
    assert_eq!(s.next_deadline(), Some(now + Duration::from_secs(1)));
}

#[test]
fn a_notification_from_the_peer_ends_the_session_and_says_why() {
    let t0 = Instant::now();
    let mut s = established(t0);
    let cease = Notification::cease(CEASE_ADMINISTRATIVE_SHUTDOWN, "maintenance");
    let actions = s.handle(Event::Received(Message::Notification(cease.clone())), t0);
    assert_eq!(actions, [Action::Disconnect, Action::Down(Down::NotificationReceived(cease.clone()))]);
    assert_eq!(
        s.last_down().unwrap().to_string(),
        "the peer sent a NOTIFICATION: cease: administrative shutdown (\"maintenance\")"
    );
    assert!(s.negotiated().is_none());
}

#[test]
fn stopping_sends_a_cease_with_the_message_and_never_reconnects() {
    let t0 = Instant::now();
    let mut s = established(t0);
    let actions = s.handle(Event::Stop("node draining".into()), t0);
    let n = sent_notification(&actions).expect("a Cease");
    assert_eq!((n.code, n.subcode, n.shutdown_message()), (6, 2, Some("node draining")));
    assert!(actions.ends_with(&[Action::Disconnect, Action::Down(Down::Stopped)]));
    assert_eq!((s.state(), s.next_deadline()), (State::Idle, None));
    // Stopping while connecting only abandons the attempt.
    let mut s = Session::new(config());
    s.handle(Event::Start, t0);
    assert_eq!(s.handle(Event::Stop(String::new()), t0), [Action::Disconnect, Action::Down(Down::Stopped)]);
    assert!(s.handle(Event::Connected, t0).is_empty(), "a late connect result changes nothing");
}

#[test]
fn unexpected_messages_are_finite_state_machine_errors() {
    let t0 = Instant::now();
    let mut s = Session::new(config());
    s.handle(Event::Start, t0);
    s.handle(Event::Connected, t0);
    let n = sent_notification(&s.handle(Event::Received(Message::Update(Update::default())), t0)).cloned();
    assert_eq!(n.map(|n| (n.code, n.subcode)), Some((5, 1)));
    let mut s = established(t0);
    let n = sent_notification(&s.handle(Event::Received(peer_open(64513, 90, &[])), t0)).cloned();
    assert_eq!(n.map(|n| (n.code, n.subcode)), Some((5, 3)));
}

#[test]
fn malformed_input_is_answered_with_its_notification() {
    let t0 = Instant::now();
    let mut s = established(t0);
    let error = DecodeError::with_data(ErrorKind::BadMessageLength, &[0, 7]);
    let actions = s.handle(Event::Malformed(error), t0);
    assert_eq!(sent_notification(&actions).map(|n| (n.code, n.subcode, n.data.clone())), Some((1, 2, vec![0, 7])));
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn route_refresh_is_answered_only_for_negotiated_families() {
    let t0 = Instant::now();
    let mut s = established(t0);
    let ask = |f| Event::Received(Message::RouteRefresh(RouteRefresh { family: f }));
    assert_eq!(s.handle(ask(Family::IPV4_UNICAST), t0), [Action::Resend(Family::IPV4_UNICAST)]);
    assert!(s.handle(ask(Family::IPV6_UNICAST), t0).is_empty());
}

#[test]
fn a_zero_hold_time_means_no_keepalives_and_no_hold_timer() {
    let t0 = Instant::now();
    let mut s = Session::new(Config { hold_time: Duration::ZERO, ..config() });
    s.handle(Event::Start, t0);
    s.handle(Event::Connected, t0);
    s.handle(Event::Received(peer_open(64513, 90, &[])), t0);
    let actions = s.handle(Event::Received(Message::Keepalive), t0);
    let [Action::Established(n)] = actions.as_slice() else { panic!("{actions:?}") };
    assert_eq!((n.hold_time, n.keepalive), (Duration::ZERO, Duration::ZERO));
    assert_eq!(s.next_deadline(), None);
}

#[test]
fn a_configured_keepalive_is_used_when_it_is_within_a_third_of_the_hold_time() {
    let t0 = Instant::now();
    let mut s = Session::new(Config { keepalive: Some(Duration::from_secs(1)), ..config() });
    s.handle(Event::Start, t0);
    s.handle(Event::Connected, t0);
    s.handle(Event::Received(peer_open(64513, 90, &[])), t0);
    let actions = s.handle(Event::Received(Message::Keepalive), t0);
    let [Action::Established(n)] = actions.as_slice() else { panic!("{actions:?}") };
    assert_eq!(n.keepalive, Duration::from_secs(1));
}

#[test]
fn bfd_down_ends_the_session_at_once_with_a_cease() {
    let t0 = Instant::now();
    let mut s = established(t0);
    let actions = s.handle(Event::BfdDown("no BFD packet from the peer within the detection time"), t0);
    let n = sent_notification(&actions).expect("a Cease");
    assert_eq!((n.code, n.subcode), (6, 10));
    assert!(actions.contains(&Action::Disconnect));
    assert_eq!(s.state(), State::Idle);
    assert_eq!(
        s.last_down().unwrap().to_string(),
        "BFD went down: no BFD packet from the peer within the detection time"
    );
    assert!(s.next_deadline().is_some(), "and it tries again");
    // Before a session is up, there is nothing to end.
    let mut idle = Session::new(config());
    assert!(idle.handle(Event::BfdDown("x"), t0).is_empty());
}
