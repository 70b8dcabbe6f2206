//! Signed announcements with real packets: a node namespace announces an IPv4 and an IPv6 address over a
//! veth pair to a host namespace. The host's kernel must take the signed gratuitous ARP and neighbour
//! advertisement as it takes unsigned ones (its neighbour entries, pointing elsewhere before, move to the
//! node's MAC), and a capture on the host finds each announcement signed by the node under the
//! membership key: a ring without that key finds no signer. Then two node namespaces on one link hear each
//! other's signed claims through their responders, as a split membership would, and a node that yielded an
//! IP probes for it and hears the winner answer.
//!
//! Needs root (network namespaces, raw packet sockets): without it the test fails and says so.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ferrolb_packet::{Mac, claim};
use ferrolb_speaker::Metrics;
use ferrolb_speaker::announce::Announcer;
use ferrolb_speaker::l2::{HeardFrame, InterfacePolicy, L2Announcer, L2Order, read_links};
use ferrolb_speaker::membership::signed_frames::signer;
use ferrolb_speaker::membership::{Keyring, MembershipKey};
use ferrolb_testns::{Netns, NsRuntime, require_root};
use pnet_datalink::Channel;

const V4: &str = "198.51.100.50";
const V6: &str = "2001:db8:100::50";
const ELSEWHERE: &str = "02:00:00:00:00:99";

fn ring(byte: u8) -> Keyring {
    Keyring::new(MembershipKey::from_bytes(&[byte; 32]).expect("a key"), None)
}

fn mac_of(ns: &Netns, dev: &str) -> Mac {
    Mac(ns.mac(dev))
}

/// The frames `host` receives on its eth0 until `enough` holds for them or 10 s pass.
fn capture(host: &Netns, enough: impl Fn(&[Vec<u8>]) -> bool + Send) -> Vec<Vec<u8>> {
    host.within(move || {
        let eth0 = pnet_datalink::interfaces().into_iter().find(|i| i.name == "eth0").expect("the host's eth0");
        let config = pnet_datalink::Config { read_timeout: Some(Duration::from_millis(50)), ..Default::default() };
        let Ok(Channel::Ethernet(_, mut rx)) = pnet_datalink::channel(&eth0, config) else {
            panic!("a packet socket on the host's eth0")
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut frames = Vec::new();
        while Instant::now() < deadline && !enough(&frames) {
            if let Ok(frame) = rx.next() {
                frames.push(frame.to_vec());
            }
        }
        frames
    })
}

#[test]
fn announcements_carry_the_nodes_signature_and_neighbours_still_take_them() {
    require_root("the signed announcement test (network namespaces, raw packet sockets)");
    let node = Netns::new("sign-node");
    let host = Netns::new("sign-host");
    node.link("eth0", &["198.51.100.11/24", "2001:db8:100::11/64"], &host, "eth0", &["198.51.100.2/24"]);
    host.ip(&["addr", "add", "2001:db8:100::2/64", "dev", "eth0", "nodad"]);
    // Entries that point elsewhere: only an announcement the kernel accepts moves them to the node.
    for ip in [V4, V6] {
        host.ip(&["neigh", "replace", ip, "lladdr", ELSEWHERE, "dev", "eth0", "nud", "stale"]);
    }
    let node_mac = mac_of(&node, "eth0");

    let runtime = NsRuntime::new(&node);
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    let announcing = runtime.handle.spawn(async move {
        let links = read_links(&InterfacePolicy { excluded_prefixes: vec![] });
        let (claims, _heard) = tokio::sync::mpsc::channel(16);
        let mut l2 = L2Announcer::new(Metrics::default(), claims);
        l2.sign_as("node-a", &ring(1));
        let ips: BTreeMap<IpAddr, Vec<String>> =
            [V4, V6].iter().map(|ip| (ip.parse().expect("address"), vec!["eth0".to_owned()])).collect();
        l2.announce(&L2Order { links, ips, yielded: BTreeMap::new() });
        let _ = finished.await;
    });

    let wanted: BTreeSet<IpAddr> = [V4, V6].iter().map(|ip| ip.parse().expect("address")).collect();
    let signed_claims = |frames: &[Vec<u8>]| -> BTreeSet<IpAddr> {
        frames
            .iter()
            .filter(|f| signer(&ring(1), f) == Some("node-a"))
            .filter_map(|f| claim(f))
            .filter(|c| c.mac == node_mac && !c.probe)
            .map(|c| c.ip)
            .collect()
    };
    let frames = capture(&host, |frames| signed_claims(frames) == wanted);
    let _ = done.send(());
    futures::executor::block_on(announcing).expect("the announcer ran");

    assert_eq!(signed_claims(&frames), wanted, "every announcement is signed by node-a");
    let announcements: Vec<&Vec<u8>> =
        frames.iter().filter(|f| claim(f).is_some_and(|c| c.mac == node_mac && wanted.contains(&c.ip))).collect();
    assert!(announcements.iter().all(|f| signer(&ring(2), f).is_none()), "another cluster's key finds no signer");
    assert!(announcements.iter().all(|f| signer(&ring(1), f) == Some("node-a")), "no announcement unsigned");

    // The host's kernel took them: both entries now point at the node (the last announcement goes out at
    // 1.1 s, past Linux's 1 s lock time).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let neighbours = host.ip(&["neigh", "show", "dev", "eth0"]);
        let at_node = |ip: &str| {
            neighbours.lines().any(|l| l.starts_with(&format!("{ip} ")) && l.contains(&node_mac.to_string()))
        };
        if at_node(V4) && at_node(V6) {
            break;
        }
        assert!(Instant::now() < deadline, "the host did not take the signed announcements:\n{neighbours}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How many of the nodes of a [`heard_by`] round have heard what they wait for, and how many must.
#[derive(Clone)]
struct Round {
    done: Arc<AtomicUsize>,
    needed: usize,
}

impl Round {
    fn new(needed: usize) -> Round {
        Round { done: Arc::new(AtomicUsize::new(0)), needed }
    }

    fn over(&self) -> bool {
        self.done.load(Ordering::SeqCst) >= self.needed
    }
}

/// `node`'s announcer, signing as `name`, announcing `announce` and yielding `yielded` on eth0; returns the
/// claims its responder heard. It counts itself done in `round` once `enough` holds for them, and runs on
/// (announcing and probing again every 100 ms, for a node whose responder opened late) until every node of
/// the round is done, or 10 s pass.
fn heard_by(
    node: &Netns,
    name: &'static str,
    announce: &[&str],
    yielded: &[&str],
    enough: impl Fn(&[HeardFrame]) -> bool + Send + 'static,
    round: &Round,
) -> Heard {
    let round = round.clone();
    let runtime = NsRuntime::new(node);
    let on_eth0 = |ips: &[&str]| -> BTreeMap<IpAddr, Vec<String>> {
        ips.iter().map(|ip| (ip.parse().expect("address"), vec!["eth0".to_owned()])).collect()
    };
    let (ips, yielded) = (on_eth0(announce), on_eth0(yielded));
    let task = runtime.handle.spawn(async move {
        let links = read_links(&InterfacePolicy { excluded_prefixes: vec![] });
        let (claims, mut heard_rx) = tokio::sync::mpsc::channel(64);
        let mut l2 = L2Announcer::new(Metrics::default(), claims);
        l2.sign_as(name, &ring(1));
        l2.announce(&L2Order { links, ips, yielded: yielded.clone() });
        let mut heard = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut again = tokio::time::interval(Duration::from_millis(100));
        let mut satisfied = false;
        while !round.over() && tokio::time::Instant::now() < deadline {
            if !satisfied && enough(&heard) {
                satisfied = true;
                round.done.fetch_add(1, Ordering::SeqCst);
            }
            tokio::select! {
                _ = again.tick() => {
                    l2.refresh();
                    l2.probe(&yielded);
                }
                Some(frame) = heard_rx.recv() => heard.push(frame),
            }
        }
        heard
    });
    Heard { _runtime: runtime, task }
}

/// A node's announcer running in its namespace, and the claims it will have heard.
struct Heard {
    _runtime: NsRuntime,
    task: tokio::task::JoinHandle<Vec<HeardFrame>>,
}

impl Heard {
    fn join(self) -> Vec<HeardFrame> {
        futures::executor::block_on(self.task).expect("the announcer ran")
    }
}

#[test]
fn responders_hear_other_speakers_claims_and_a_yielding_node_hears_the_winner_answer_its_probes() {
    require_root("the claims test (network namespaces, raw packet sockets)");
    let a = Netns::new("claim-a");
    let b = Netns::new("claim-b");
    a.link("eth0", &["198.51.100.11/24", "2001:db8:100::11/64"], &b, "eth0", &["198.51.100.12/24"]);
    b.ip(&["addr", "add", "2001:db8:100::12/64", "dev", "eth0", "nodad"]);
    let (mac_a, mac_b) = (mac_of(&a, "eth0"), mac_of(&b, "eth0"));
    let wanted: BTreeSet<IpAddr> = [V4, V6].iter().map(|ip| ip.parse().expect("address")).collect();
    let signed_by = |heard: &[HeardFrame], mac: Mac, node: &str| -> BTreeSet<IpAddr> {
        heard.iter().filter(|h| h.mac == mac && signer(&ring(1), &h.frame) == Some(node)).map(|h| h.ip).collect()
    };

    // Both announce both addresses (each side of a split): each hears the other's signed announcements.
    let (wanted_a, round) = (wanted.clone(), Round::new(2));
    let at_a = heard_by(&a, "node-a", &[V4, V6], &[], move |h| signed_by(h, mac_b, "node-b") == wanted_a, &round);
    let wanted_b = wanted.clone();
    let at_b = heard_by(&b, "node-b", &[V4, V6], &[], move |h| signed_by(h, mac_a, "node-a") == wanted_b, &round);
    let (heard_a, heard_b) = (at_a.join(), at_b.join());
    assert_eq!(signed_by(&heard_a, mac_b, "node-b"), wanted, "node-a heard node-b's claims: {heard_a:?}");
    assert_eq!(signed_by(&heard_b, mac_a, "node-a"), wanted, "node-b heard node-a's claims: {heard_b:?}");
    // Its own frames come back on each socket too: they are not claims.
    assert!(heard_a.iter().all(|h| h.mac == mac_b), "node-a reported only node-b's frames: {heard_a:?}");
    assert!(heard_b.iter().all(|h| h.mac == mac_a), "node-b reported only node-a's frames: {heard_b:?}");

    // node-b yields both to node-a: it no longer answers, but probes, and hears node-a answer the probes.
    let answered = move |heard: &[HeardFrame]| -> BTreeSet<IpAddr> {
        heard.iter().filter(|h| h.mac == mac_a && signer(&ring(1), &h.frame).is_none()).map(|h| h.ip).collect()
    };
    // Only node-b waits for something; node-a announces until it has.
    let round = Round::new(1);
    let at_a = heard_by(&a, "node-a", &[V4, V6], &[], |_| false, &round);
    let wanted_b = wanted.clone();
    let at_b = heard_by(&b, "node-b", &[], &[V4, V6], move |h| answered(h) == wanted_b, &round);
    let heard_b = at_b.join();
    assert_eq!(answered(&heard_b), wanted, "node-b heard node-a answer its probes: {heard_b:?}");
    let heard_a = at_a.join();
    assert!(heard_a.iter().all(|h| h.mac != mac_b), "node-b claimed nothing while yielding: {heard_a:?}");
}
