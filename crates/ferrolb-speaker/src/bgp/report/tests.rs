//! BGPSession records and session Events.

use std::time::Duration;

use ferrolb_bgp::Notification;
use ferrolb_bgp::session::Negotiated;

use super::*;

fn up(prefixes: usize) -> PeerStatus {
    PeerStatus {
        state: State::Established,
        negotiated: Some(Negotiated {
            peer_id: "203.0.113.254".parse().unwrap(),
            peer_asn: 64513,
            hold_time: Duration::from_secs(9),
            keepalive: Duration::from_secs(3),
            families: vec![],
            four_octet_as: true,
            route_refresh: true,
        }),
        established_since: Some("2026-12-01T00:00:00Z".into()),
        prefixes,
        last_down: None,
        bfd: None,
        md5_error: None,
    }
}

fn failing(why: Down) -> PeerStatus {
    PeerStatus { state: State::Active, last_down: Some(why), ..PeerStatus::default() }
}

#[test]
fn the_record_shows_state_timers_prefixes_and_the_last_error() {
    let status = session_status(&up(3), &["w".into()], false);
    assert_eq!(status.state, "Established");
    assert_eq!((status.hold_time.as_deref(), status.keepalive_time.as_deref()), (Some("9s"), Some("3s")));
    assert_eq!((status.prefixes_advertised, status.warnings.as_slice()), (3, &["w".to_owned()][..]));
    let refused = Notification { code: 2, subcode: 2, data: vec![] };
    let status = session_status(&failing(Down::NotificationReceived(refused)), &[], false);
    assert_eq!(status.last_error.as_deref(), Some("the peer sent a NOTIFICATION: OPEN message error: bad peer AS"));
    assert_eq!(status.hold_time, None);
}

#[test]
fn a_signed_session_that_gets_no_answer_says_a_key_may_differ() {
    let silent = failing(Down::ConnectFailed);
    let plain = session_status(&silent, &[], false);
    assert_eq!(plain.last_error.as_deref(), Some("the peer does not answer (TCP connection failed)"));
    let signed = session_status(&silent, &[], true);
    assert_eq!(
        signed.last_error.as_deref(),
        Some(
            "the peer does not answer (TCP connection failed); the session signs with the TCP MD5 key from \
             passwordSecret; a router holding another key, or none, drops every segment without answering"
        )
    );
    let unsigned_kernel = PeerStatus { md5_error: Some("no CONFIG_TCP_MD5SIG".into()), ..silent };
    assert_eq!(
        session_status(&unsigned_kernel, &["w".into()], true).warnings,
        ["w", "cannot sign the connection with the TCP MD5 key: no CONFIG_TCP_MD5SIG"]
    );
}

#[test]
fn events_come_on_going_down_on_a_new_failure_and_on_recovery() {
    let closed = failing(Down::ConnectionClosed);
    let (reason, note) = session_event("node-1", "tor", Some(&up(1)), &closed).unwrap();
    assert_eq!(
        (reason, note.as_str()),
        (Reason::BgpSessionDown, "BGP session from node-1 to tor went down: the peer closed the connection")
    );
    assert_eq!(session_event("node-1", "tor", Some(&closed), &closed), None, "the same failure again is no news");
    let refused = failing(Down::ConnectFailed);
    let (reason, note) = session_event("node-1", "tor", Some(&closed), &refused).unwrap();
    assert_eq!(reason, Reason::BgpSessionFailing);
    assert!(note.ends_with("cannot be established: the peer does not answer (TCP connection failed)"), "{note}");
    assert_eq!(
        session_event("node-1", "tor", Some(&refused), &up(0)).map(|e| e.0),
        Some(Reason::BgpSessionEstablished)
    );
    assert_eq!(session_event("node-1", "tor", None, &up(0)), None, "a first success is not news");
    assert_eq!(session_event("node-1", "tor", Some(&up(1)), &up(2)), None);
}

#[test]
fn records_follow_the_order_and_stale_ones_are_deleted() {
    let order = BgpOrder { refused: [("v6-only".to_owned(), "set routerID".to_owned())].into(), ..BgpOrder::default() };
    let stale = ExistingSession {
        name: "node-1.old".into(),
        spec: BGPSessionSpec { node: "node-1".into(), peer: "old".into(), peer_address: "192.0.2.1".into() },
        status: None,
        resource_version: Some("7".into()),
    };
    let other_node = ExistingSession {
        spec: BGPSessionSpec { node: "node-2".into(), ..stale.spec.clone() },
        name: "node-2.old".into(),
        ..stale.clone()
    };
    let writes = reconcile("node-1", &order, &BTreeMap::new(), &[stale, other_node]);
    assert_eq!(writes.len(), 2, "{writes:?}");
    assert!(
        matches!(&writes[0], SessionWrite::Apply { name, status, .. } if name == "node-1.v6-only" && status.last_error.as_deref() == Some("set routerID"))
    );
    assert_eq!(writes[1], SessionWrite::Delete { name: "node-1.old".into(), resource_version: Some("7".into()) });
}
