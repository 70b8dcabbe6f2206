//! Settling claims: ignored handovers, split memberships settled by rank on both sides, yields that end,
//! and RFC 5227's defend-once for foreign hosts.

use super::*;

const THEIRS: Mac = Mac([2, 0, 0, 0, 0, 0x99]);
const IP: &str = "198.51.100.10";

fn ip() -> IpAddr {
    IP.parse().unwrap()
}

/// A node's world: its view and the IP placed and announced here.
struct World {
    me: &'static str,
    live: BTreeSet<String>,
    nodes: BTreeSet<String>,
    placed: BTreeMap<IpAddr, Vec<String>>,
    announced: BTreeSet<IpAddr>,
    heard: Vec<HeardClaim>,
}

impl World {
    fn new(me: &'static str, live: &[&str]) -> World {
        World {
            me,
            live: live.iter().map(|n| (*n).to_owned()).collect(),
            nodes: ["node-1", "node-2", "node-3"].iter().map(|n| (*n).to_owned()).collect(),
            placed: [(ip(), vec!["eth0".to_owned()])].into(),
            announced: [ip()].into(),
            heard: vec![],
        }
    }

    fn hear(&mut self, signer: Option<&str>) -> &mut World {
        self.heard.push(HeardClaim {
            ip: ip(),
            mac: THEIRS,
            interface: "eth0".into(),
            signer: signer.map(|n| Signer::Verified(n.to_owned())),
        });
        self
    }

    fn settle(&mut self, tracker: &mut SplitTracker, now: Instant) -> Settlement {
        let seen = Observed {
            me: self.me,
            live: &self.live,
            nodes: &self.nodes,
            placed_here: &self.placed,
            announced: &self.announced,
            heard: &self.heard,
        };
        let out = tracker.settle(&seen, now);
        self.heard.clear();
        out
    }
}

/// Two node names and which of them ranks higher for [`IP`].
fn ranked() -> (&'static str, &'static str) {
    let (a, b) = ("node-1", "node-2");
    if election::owner(ip(), [a, b]) == Some(a) { (a, b) } else { (b, a) }
}

#[test]
fn a_claim_signed_by_a_live_member_or_by_this_node_is_a_handover_and_ignored() {
    let mut tracker = SplitTracker::default();
    let mut world = World::new("node-1", &["node-1", "node-2"]);
    world.hear(Some("node-2")).hear(Some("node-1"));
    assert_eq!(world.settle(&mut tracker, Instant::now()), Settlement::default());
}

#[test]
fn a_claim_on_an_ip_not_announced_here_is_ignored() {
    let mut tracker = SplitTracker::default();
    let mut world = World::new("node-1", &["node-1"]);
    world.announced.clear(); // placed here this pass, not yet answered for: nothing to defend
    world.hear(Some("node-2")).hear(None);
    assert_eq!(world.settle(&mut tracker, Instant::now()), Settlement::default());
}

#[test]
fn in_a_split_the_higher_ranked_speaker_defends_at_most_once_a_second() {
    let (high, low) = ranked();
    let mut tracker = SplitTracker::default();
    let mut world = World::new(high, &[high]);
    let start = Instant::now();
    let out = world.hear(Some(low)).hear(Some(low)).settle(&mut tracker, start);
    assert_eq!(out.defend, [ip()], "one defence for two claims");
    assert!(out.withhold.is_empty() && out.yielded.is_empty());
    assert_eq!(out.splits, [SplitClaim { ip: ip(), other: low.to_owned(), kept: true }]);
    assert_eq!(out.split_claims, 2);
    let out = world.hear(Some(low)).settle(&mut tracker, start + Duration::from_millis(500));
    assert!(out.defend.is_empty() && out.splits.is_empty(), "rate-limited, reported once: {out:?}");
    let out = world.hear(Some(low)).settle(&mut tracker, start + Duration::from_millis(1100));
    assert_eq!(out.defend, [ip()]);
}

#[test]
fn in_a_split_the_lower_ranked_speaker_yields_while_the_winner_answers_its_probes() {
    let (high, low) = ranked();
    let mut tracker = SplitTracker::default();
    let mut world = World::new(low, &[low]);
    let start = Instant::now();
    let out = world.hear(Some(high)).settle(&mut tracker, start);
    assert!(out.defend.is_empty());
    assert_eq!(out.withhold, [ip()].into());
    assert_eq!(out.yielded, [(ip(), vec!["eth0".to_owned()])].into());
    assert_eq!(out.splits, [SplitClaim { ip: ip(), other: high.to_owned(), kept: false }]);
    assert_eq!(out.wake_at, Some(start + YIELD_PROBE_EVERY));
    // Not announced any more; still yielded, probed each second; the winner's (unsigned) answers renew it.
    world.announced.clear();
    let mut now = start;
    for _ in 0..5 {
        now += YIELD_PROBE_EVERY;
        let out = world.hear(None).settle(&mut tracker, now);
        assert_eq!(out.probe, [(ip(), vec!["eth0".to_owned()])].into());
        assert_eq!(out.withhold, [ip()].into());
        assert!(out.splits.is_empty() && out.conflicts.is_empty(), "{out:?}");
    }
    // The winner stops answering: the yield ends after the timeout and the IP is this node's again.
    let out = world.settle(&mut tracker, now + YIELD_TIMEOUT - Duration::from_millis(1));
    assert_eq!(out.withhold, [ip()].into());
    let out = world.settle(&mut tracker, now + YIELD_TIMEOUT);
    assert!(out.withhold.is_empty() && out.yielded.is_empty(), "{out:?}");
}

#[test]
fn a_yield_ends_when_the_winner_joins_the_view_or_the_ip_leaves() {
    let (high, low) = ranked();
    let start = Instant::now();
    let mut tracker = SplitTracker::default();
    let mut world = World::new(low, &[low]);
    assert_eq!(world.hear(Some(high)).settle(&mut tracker, start).withhold, [ip()].into());
    world.live.insert(high.to_owned());
    assert_eq!(world.settle(&mut tracker, start + Duration::from_millis(10)), Settlement::default());

    let mut tracker = SplitTracker::default();
    let mut world = World::new(low, &[low]);
    assert_eq!(world.hear(Some(high)).settle(&mut tracker, start).withhold, [ip()].into());
    world.placed.clear();
    assert_eq!(world.settle(&mut tracker, start + Duration::from_millis(10)), Settlement::default());
}

#[test]
fn a_split_is_reported_again_after_the_other_side_was_seen_in_between() {
    let (high, low) = ranked();
    let mut tracker = SplitTracker::default();
    let mut world = World::new(high, &[high]);
    let start = Instant::now();
    assert_eq!(world.hear(Some(low)).settle(&mut tracker, start).splits.len(), 1);
    world.live.insert(low.to_owned());
    world.settle(&mut tracker, start + Duration::from_secs(1));
    world.live.remove(low);
    assert_eq!(world.hear(Some(low)).settle(&mut tracker, start + Duration::from_secs(2)).splits.len(), 1);
}

#[test]
fn a_foreign_host_is_defended_once_and_its_second_claim_is_a_conflict() {
    let mut tracker = SplitTracker::default();
    let mut world = World::new("node-1", &["node-1", "node-2"]);
    let start = Instant::now();
    let out = world.hear(None).settle(&mut tracker, start);
    assert_eq!(out.defend, [ip()]);
    assert!(out.conflicts.is_empty() && out.split_claims == 0);
    let out = world.hear(None).settle(&mut tracker, start + Duration::from_secs(3));
    assert_eq!(out.conflicts, [(ip(), Answer { mac: THEIRS, interface: "eth0".into() })]);
    assert!(out.defend.is_empty());
}

#[test]
fn foreign_claims_further_apart_than_the_defend_interval_are_each_defended() {
    let mut tracker = SplitTracker::default();
    let mut world = World::new("node-1", &["node-1"]);
    let start = Instant::now();
    assert_eq!(world.hear(None).settle(&mut tracker, start).defend, [ip()]);
    let out = world.hear(None).settle(&mut tracker, start + DEFEND_INTERVAL);
    assert_eq!(out.defend, [ip()]);
    assert!(out.conflicts.is_empty());
}

#[test]
fn the_note_says_who_sees_whom_and_who_keeps_the_ip() {
    let live: BTreeSet<String> = ["node-1".to_owned()].into();
    let kept = SplitClaim { ip: ip(), other: "node-2".into(), kept: true };
    let note = split_note("node-1", &kept, &live);
    assert!(note.contains("node-2 announced 198.51.100.10"), "{note}");
    assert!(note.contains("node-1 sees: node-1"), "{note}");
    assert!(note.contains("node-1 ranks higher for it, keeps it"), "{note}");
    let yielded = SplitClaim { kept: false, ..kept };
    assert!(split_note("node-1", &yielded, &live).contains("node-1 yields it"));
}

#[test]
fn a_handover_whose_lower_ranked_signer_leaves_the_view_soon_after_is_defended_as_a_split() {
    let (high, low) = ranked();
    let start = Instant::now();
    // The other side declared this node dead first: its claim comes while it is still in this node's view.
    let mut tracker = SplitTracker::default();
    let mut world = World::new(high, &[high, low]);
    assert_eq!(world.hear(Some(low)).settle(&mut tracker, start), Settlement::default());
    world.live.remove(low);
    let out = world.settle(&mut tracker, start + Duration::from_millis(300));
    assert_eq!(out.defend, [ip()], "defended as soon as the claimer left the view");
    assert_eq!(out.splits, [SplitClaim { ip: ip(), other: low.to_owned(), kept: true }]);
    assert!(world.settle(&mut tracker, start + Duration::from_millis(400)).defend.is_empty(), "settled once");

    // The lower-ranked side waits for the winner's defence: the claimer that left may have died.
    let mut tracker = SplitTracker::default();
    let mut world = World::new(low, &[high, low]);
    world.hear(Some(high)).settle(&mut tracker, start);
    world.live.remove(high);
    assert_eq!(world.settle(&mut tracker, start + Duration::from_millis(300)), Settlement::default());

    // A real handover: the claimer stays in the view (and this node's placement moves on); after the window
    // a later departure means nothing.
    let mut tracker = SplitTracker::default();
    let mut world = World::new(high, &[high, low]);
    world.hear(Some(low)).settle(&mut tracker, start);
    world.live.remove(low);
    assert_eq!(world.settle(&mut tracker, start + HANDOVER_WINDOW), Settlement::default());
}

#[test]
fn a_claim_under_another_key_counts_as_the_named_node_if_the_cluster_has_it_else_as_another_host() {
    let (high, low) = ranked();
    let start = Instant::now();
    let other_key = |node: &str| HeardClaim {
        ip: ip(),
        mac: THEIRS,
        interface: "eth0".into(),
        signer: Some(Signer::OtherKey(node.to_owned())),
    };
    let mut tracker = SplitTracker::default();
    let mut world = World::new(high, &[high]);
    world.heard.push(other_key(low));
    let out = world.settle(&mut tracker, start);
    assert_eq!((out.defend.as_slice(), out.split_claims), ([ip()].as_slice(), 1), "ranked as a split: {out:?}");
    world.heard = vec![other_key(low)];
    assert!(world.settle(&mut tracker, start + Duration::from_millis(100)).conflicts.is_empty(), "never a conflict");

    // Another cluster's speaker (a node this cluster does not have) is another host: defend once, then a conflict.
    let mut tracker = SplitTracker::default();
    let mut world = World::new(high, &[high]);
    world.heard.push(other_key("elsewhere-1"));
    let out = world.settle(&mut tracker, start);
    assert_eq!((out.defend.as_slice(), out.split_claims), ([ip()].as_slice(), 0));
    world.heard = vec![other_key("elsewhere-1")];
    assert_eq!(world.settle(&mut tracker, start + Duration::from_secs(1)).conflicts.len(), 1);
}
