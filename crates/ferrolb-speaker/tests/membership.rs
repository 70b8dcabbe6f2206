//! Real SWIM membership between speakers on loopback UDP: joining, dying, leaving, and refusing strangers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use ferrolb_speaker::Metrics;
use ferrolb_speaker::membership::{Membership, MembershipKey, MembershipSettings, View};
use tokio::sync::watch;

const KEY: &[u8] = b"a membership key for the tests";

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn peers(n: usize, ports: &[u16]) -> BTreeMap<String, SocketAddr> {
    (0..n).map(|i| (format!("node-{i}"), SocketAddr::from(([127, 0, 0, 1], ports[i])))).collect()
}

async fn start(i: usize, all: &BTreeMap<String, SocketAddr>, key: &[u8], metrics: Metrics) -> Membership {
    let node = format!("node-{i}");
    let settings =
        MembershipSettings { node: node.clone(), advertise: all[&node], key: MembershipKey::from_bytes(key).unwrap() };
    let (membership, task) = Membership::start(settings, all.clone(), metrics).await.unwrap();
    tokio::spawn(task);
    membership
}

async fn wait_view(view: &mut watch::Receiver<View>, what: &str, ok: impl Fn(&View) -> bool) -> View {
    let result =
        tokio::time::timeout(Duration::from_secs(10), view.wait_for(|v| ok(v))).await.map(|r| r.map(|v| v.clone()));
    match result {
        Ok(Ok(v)) => v,
        _ => panic!("timed out waiting for {what}; view is {:?}", *view.borrow()),
    }
}

fn names(n: &[usize]) -> std::collections::BTreeSet<String> {
    n.iter().map(|i| format!("node-{i}")).collect()
}

#[tokio::test]
async fn members_join_notice_a_death_and_a_leave() {
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let all = peers(4, &ports);
    let mut members = Vec::new();
    for i in 0..4 {
        members.push(start(i, &all, KEY, Metrics::default()).await);
    }
    let mut view0 = members[0].view();
    let v = wait_view(&mut view0, "all four members", |v| v.members.len() == 4).await;
    assert!(v.settled, "every known peer answered, so the view is settled");

    // A crash: the task stops answering without saying goodbye.
    let crashed = members.pop().unwrap();
    drop(crashed);
    wait_view(&mut view0, "node-3 declared down", |v| v.members == names(&[0, 1, 2])).await;

    // A graceful leave is seen at once.
    let leaving = members.pop().unwrap();
    leaving.leave().await;
    wait_view(&mut view0, "node-2 gone after leaving", |v| v.members == names(&[0, 1])).await;
    let mut view1 = members[1].view();
    wait_view(&mut view1, "node-1 agrees", |v| v.members == names(&[0, 1])).await;
}

#[tokio::test]
async fn a_speaker_without_the_key_cannot_join() {
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let all = peers(3, &ports);
    let metrics = Metrics::default();
    let a = start(0, &all, KEY, metrics.clone()).await;
    let _b = start(1, &all, KEY, Metrics::default()).await;
    let stranger = start(2, &all, b"some other key of sufficient length", Metrics::default()).await;
    let mut view = a.view();
    wait_view(&mut view, "the keyed pair", |v| v.members == names(&[0, 1])).await;
    // The stranger keeps announcing to node-0 every second; wait until node-0 has refused some of it.
    let refused = || {
        metrics.membership_rejected.get_or_create(&ferrolb_speaker::metrics::ReasonLabels { reason: "bad_tag" }).get()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while refused() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no datagram from the stranger was refused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(view.borrow().members, names(&[0, 1]), "the stranger must not be a member");
    assert_eq!(stranger.view().borrow().members, names(&[2]), "the stranger must not learn the members");
}
