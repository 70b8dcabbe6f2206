//! Real SWIM membership between speakers on loopback UDP: joining, dying, leaving, refusing strangers, and
//! rotating the key while running.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use ferrolb_speaker::Metrics;
use ferrolb_speaker::membership::{Keyring, Membership, MembershipKey, MembershipSettings, View};
use ferrolb_speaker::metrics::{KeyLabels, ReasonLabels, TransitionLabels};
use tokio::sync::watch;

const KEY: &[u8] = b"a membership key for the tests";

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn peers(n: usize, ports: &[u16]) -> BTreeMap<String, SocketAddr> {
    (0..n).map(|i| (format!("node-{i}"), SocketAddr::from(([127, 0, 0, 1], ports[i])))).collect()
}

fn ring(key: &[u8], previous: Option<&[u8]>) -> Keyring {
    let k = |b: &[u8]| MembershipKey::from_bytes(b).unwrap();
    Keyring::new(k(key), previous.map(k))
}

async fn start(i: usize, all: &BTreeMap<String, SocketAddr>, key: &[u8], metrics: Metrics) -> Membership {
    start_with(i, all, ring(key, None), metrics).await
}

async fn start_with(i: usize, all: &BTreeMap<String, SocketAddr>, keys: Keyring, metrics: Metrics) -> Membership {
    let node = format!("node-{i}");
    let settings = MembershipSettings { node: node.clone(), advertise: all[&node], keys };
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
    let refused = || metrics.membership_rejected.get_or_create(&ReasonLabels { reason: "unknown_key" }).get();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while refused() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no datagram from the stranger was refused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(view.borrow().members, names(&[0, 1]), "the stranger must not be a member");
    assert_eq!(stranger.view().borrow().members, names(&[2]), "the stranger must not learn the members");
    // Each side knows the other talks under a key it lacks; only the stranger is outvoted, so only it stops
    // announcing (it would answer for every IP beside its owner).
    wait_view(&mut view, "node-0 to hear the stranger under another key", |v| v.unreadable == names(&[2])).await;
    assert!(!view.borrow().outvoted(), "the keyed pair is the majority");
    let mut theirs = stranger.view();
    wait_view(&mut theirs, "the stranger to hear both under another key", |v| v.unreadable == names(&[0, 1])).await;
    assert!(theirs.borrow().outvoted(), "the stranger holds the wrong key");
}

const NEW_KEY: &[u8] = b"the membership key after the rotation";

fn accepted(metrics: &Metrics, key: &'static str) -> u64 {
    metrics.membership_accepted.get_or_create(&KeyLabels { key }).get()
}

fn downs(metrics: &[Metrics]) -> u64 {
    metrics.iter().map(|m| m.membership_transitions.get_or_create(&TransitionLabels { kind: "down" }).get()).sum()
}

/// Waits until `metrics` has accepted `more` datagrams (under either key) beyond what it had: traffic, not
/// time, is what a rotation step must survive.
async fn traffic(metrics: &Metrics, more: u64) {
    let total = || accepted(metrics, "current") + accepted(metrics, "previous");
    let target = total() + more;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while total() < target {
        assert!(tokio::time::Instant::now() < deadline, "fewer than {more} datagrams in 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_key_rotates_under_a_running_membership_without_losing_a_member() {
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let all = peers(3, &ports);
    let metrics: Vec<Metrics> = (0..3).map(|_| Metrics::default()).collect();
    let mut members = Vec::new();
    for (i, m) in metrics.iter().enumerate() {
        members.push(start(i, &all, KEY, m.clone()).await);
    }
    let mut views: Vec<_> = members.iter().map(Membership::view).collect();
    for view in &mut views {
        wait_view(view, "all three", |v| v.members == names(&[0, 1, 2])).await;
    }
    let check = |what: &str| {
        assert_eq!(downs(&metrics), 0, "{what}: a member was declared down");
        for view in &views {
            assert_eq!(view.borrow().members, names(&[0, 1, 2]), "{what}");
        }
    };

    // One speaker has the new Secret, the others not yet (the kubelet refreshes mounts at its own pace).
    members[0].set_keys(ring(NEW_KEY, Some(KEY)));
    traffic(&metrics[0], 40).await;
    traffic(&metrics[1], 40).await;
    check("with one speaker rotated");
    assert!(accepted(&metrics[0], "previous") > 0, "the rotated speaker hears the others under the old key");

    for m in &members[1..] {
        m.set_keys(ring(NEW_KEY, Some(KEY)));
    }
    // Once everyone has the new key, nothing is sealed with the old one any more.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let before: Vec<u64> = metrics.iter().map(|m| accepted(m, "previous")).collect();
        traffic(&metrics[0], 30).await;
        let after: Vec<u64> = metrics.iter().map(|m| accepted(m, "previous")).collect();
        if before == after {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the old key is still in use: {after:?}");
    }
    check("with every speaker rotated");
    let refused = || -> u64 {
        metrics.iter().map(|m| m.membership_rejected.get_or_create(&ReasonLabels { reason: "unknown_key" }).get()).sum()
    };
    assert_eq!(refused(), 0, "a datagram went out under a key its receiver lacked");

    // A rollback on one speaker (helm rollback restores the Secret without the new key): the others notice
    // from its next datagram and talk the old key to it again.
    members[0].set_keys(ring(KEY, None));
    traffic(&metrics[0], 30).await;
    traffic(&metrics[1], 30).await;
    check("with one speaker rolled back");
    members[0].set_keys(ring(NEW_KEY, Some(KEY)));
    traffic(&metrics[0], 30).await;

    // The old key is dropped from the Secret.
    for m in &members {
        m.set_keys(ring(NEW_KEY, None));
    }
    for m in &metrics {
        traffic(m, 30).await;
    }
    check("after the old key went");
}

#[tokio::test]
async fn speakers_join_across_a_rotation_from_either_side() {
    // A speaker that starts with the new key (and the old) joins speakers that have only the old one ...
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let all = peers(3, &ports);
    let a = start(0, &all, KEY, Metrics::default()).await;
    let _b = start(1, &all, KEY, Metrics::default()).await;
    let _c = start_with(2, &all, ring(NEW_KEY, Some(KEY)), Metrics::default()).await;
    wait_view(&mut a.view(), "the rotated speaker joined", |v| v.members == names(&[0, 1, 2])).await;

    // ... and one that has only the new key joins speakers that are mid-rotation.
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let all = peers(3, &ports);
    let a = start_with(0, &all, ring(NEW_KEY, Some(KEY)), Metrics::default()).await;
    let _b = start_with(1, &all, ring(NEW_KEY, Some(KEY)), Metrics::default()).await;
    let c = start(2, &all, NEW_KEY, Metrics::default()).await;
    wait_view(&mut a.view(), "the new-key speaker joined", |v| v.members == names(&[0, 1, 2])).await;
    wait_view(&mut c.view(), "and sees everyone", |v| v.members == names(&[0, 1, 2])).await;
}
