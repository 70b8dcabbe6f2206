use super::*;

const SETTINGS: ProbeSettings = ProbeSettings { window: Duration::from_millis(200), recheck: Duration::from_secs(60) };
const THEIRS: Mac = Mac([2, 0, 0, 0, 0, 0x99]);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ext(s: &str) -> ExternalIp {
    ExternalIp { ip: ip(s), pool: "p".into(), services: ["default/web".to_owned()].into() }
}

/// The world of one pass: the IPs in use, which of them are this node's ("node-1"), records, results.
#[derive(Default)]
struct World {
    ips: Vec<ExternalIp>,
    placed: BTreeMap<IpAddr, Placement>,
    mine: BTreeMap<IpAddr, Vec<String>>,
    records: Vec<ConflictRecord>,
    results: Vec<ProbeResult>,
    found_while_announcing: Vec<(IpAddr, Answer)>,
    live: BTreeSet<String>,
    janitor: bool,
}

impl World {
    fn with_mine(mut self, s: &str) -> World {
        self.ips.push(ext(s));
        self.placed.insert(ip(s), Placement::Announce { interfaces: vec![] });
        self.mine.insert(ip(s), vec!["eth0".into()]);
        self
    }

    fn with_other(mut self, s: &str) -> World {
        self.ips.push(ext(s));
        self.placed.insert(ip(s), Placement::OtherOwner("node-2".into()));
        self
    }

    fn decide(&self, tracker: &mut ConflictTracker, now: Instant) -> Decision {
        let links = [crate::l2::Link {
            name: "eth0".into(),
            index: 2,
            mac: Mac([2, 0, 0, 0, 0, 1]),
            networks: vec!["198.51.100.11/24".parse().unwrap()],
            member: false,
            arp: true,
        }];
        let seen = Observed {
            me: "node-1",
            janitor: self.janitor,
            live: &self.live,
            ips: &self.ips,
            placed: &self.placed,
            mine: &self.mine,
            links: &links,
            records: &self.records,
            results: &self.results,
            found_while_announcing: &self.found_while_announcing,
            wall_clock: "2026-12-02T04:00:00Z",
        };
        tracker.decide(&seen, SETTINGS, now)
    }
}

fn answered(s: &str, recheck: bool) -> ProbeResult {
    ProbeResult { ip: ip(s), answer: Some(Answer { mac: THEIRS, interface: "eth0".into() }), recheck }
}

fn quiet(s: &str, recheck: bool) -> ProbeResult {
    ProbeResult { ip: ip(s), answer: None, recheck }
}

fn record(s: &str, node: &str) -> ConflictRecord {
    ConflictRecord { ip: ip(s), node: node.into(), interface: "eth0".into(), resource_version: Some("7".into()) }
}

/// A tracker that started with nothing in use, then saw `s` appear as this node's: its probe is running.
fn probing_a_new_ip(s: &str) -> (ConflictTracker, World, Instant) {
    let mut tracker = ConflictTracker::default();
    let start = Instant::now();
    World::default().decide(&mut tracker, start);
    let world = World::default().with_mine(s);
    world.decide(&mut tracker, start);
    (tracker, world, start)
}

#[test]
fn addresses_in_use_at_start_are_announced_without_probing() {
    let mut tracker = ConflictTracker::default();
    let decision = World::default().with_mine("198.51.100.10").decide(&mut tracker, Instant::now());
    assert_eq!(decision, Decision::default(), "a restarted speaker re-announces at once");
}

#[test]
fn a_new_address_is_probed_before_it_is_announced() {
    let mut tracker = ConflictTracker::default();
    let start = Instant::now();
    World::default().decide(&mut tracker, start);
    let mut world = World::default().with_mine("198.51.100.10");
    let decision = world.decide(&mut tracker, start);
    assert_eq!(
        decision.probes,
        [ProbeOrder { ip: ip("198.51.100.10"), interfaces: vec!["eth0".into()], recheck: false }]
    );
    assert!(decision.withhold.contains(&ip("198.51.100.10")));
    assert_eq!(decision.wake_at, Some(start + SETTINGS.window + PROBE_GRACE));
    // Still probing: withheld, no second probe.
    let decision = world.decide(&mut tracker, start + Duration::from_millis(100));
    assert!(decision.probes.is_empty() && decision.withhold.contains(&ip("198.51.100.10")));
    // Nobody answered: announced from now on.
    world.results = vec![quiet("198.51.100.10", false)];
    let decision = world.decide(&mut tracker, start + Duration::from_millis(210));
    assert_eq!(decision, Decision::default());
    world.results.clear();
    assert_eq!(world.decide(&mut tracker, start + Duration::from_secs(1)), Decision::default());
}

#[test]
fn an_answered_probe_is_a_conflict_until_a_recheck_finds_nobody() {
    let (mut tracker, mut world, start) = probing_a_new_ip("198.51.100.10");
    world.results = vec![answered("198.51.100.10", false)];
    let decision = world.decide(&mut tracker, start + Duration::from_millis(50));
    assert_eq!(decision.found, [(ip("198.51.100.10"), Answer { mac: THEIRS, interface: "eth0".into() })]);
    assert!(decision.withhold.contains(&ip("198.51.100.10")));
    let [ConflictWrite::Apply { name, spec }] = decision.writes.as_slice() else { panic!("{:?}", decision.writes) };
    assert_eq!(name, "ip-198-51-100-10");
    assert_eq!(
        (spec.mac.as_str(), spec.node.as_str(), spec.services.as_slice()),
        ("02:00:00:00:00:99", "node-1", &["default/web".to_owned()][..])
    );
    // The controller moves the Service: the IP leaves, the record stays; the recheck comes after a minute.
    world.results.clear();
    world = World { records: vec![record("198.51.100.10", "node-1")], ..World::default() };
    let decision = world.decide(&mut tracker, start + Duration::from_secs(1));
    assert!(decision.probes.is_empty());
    assert_eq!(decision.wake_at, Some(start + Duration::from_millis(50) + SETTINGS.recheck));
    let due = start + Duration::from_secs(61);
    let decision = world.decide(&mut tracker, due);
    assert_eq!(
        decision.probes,
        [ProbeOrder { ip: ip("198.51.100.10"), interfaces: vec!["eth0".into()], recheck: true }]
    );
    // Still answered: nothing written, checked again a minute later.
    world.results = vec![answered("198.51.100.10", true)];
    let decision = world.decide(&mut tracker, due + Duration::from_millis(200));
    assert!(decision.writes.is_empty() && decision.probes.is_empty());
    world.results = vec![];
    let decision = world.decide(&mut tracker, due + Duration::from_secs(61));
    assert_eq!(decision.probes.len(), 1);
    world.results = vec![quiet("198.51.100.10", true)];
    let decision = world.decide(&mut tracker, due + Duration::from_secs(62));
    assert_eq!(
        decision.writes,
        [ConflictWrite::Delete { name: "ip-198-51-100-10".into(), resource_version: Some("7".into()) }]
    );
}

#[test]
fn a_takeover_of_an_announced_address_is_not_probed() {
    let mut tracker = ConflictTracker::default();
    let start = Instant::now();
    World::default().decide(&mut tracker, start);
    World::default().with_other("198.51.100.10").decide(&mut tracker, start);
    // node-2 dies: node-1 takes the IP over at once.
    let decision = World::default().with_mine("198.51.100.10").decide(&mut tracker, start + Duration::from_secs(1));
    assert_eq!(decision, Decision::default());
}

#[test]
fn a_probe_that_never_reports_does_not_keep_the_address_dark() {
    let (mut tracker, world, start) = probing_a_new_ip("198.51.100.10");
    let decision = world.decide(&mut tracker, start + SETTINGS.window + PROBE_GRACE);
    assert!(decision.withhold.is_empty(), "announced once the probe is overdue");
}

#[test]
fn a_recorded_conflict_is_not_announced_by_anyone_and_the_janitor_rechecks_for_a_finder_that_left() {
    let mut tracker = ConflictTracker::default();
    let start = Instant::now();
    let mut world = World::default().with_mine("198.51.100.10");
    world.records = vec![record("198.51.100.10", "node-3")];
    let decision = world.decide(&mut tracker, start);
    assert!(decision.withhold.contains(&ip("198.51.100.10")), "another node found it: not announced here either");
    assert!(decision.probes.is_empty(), "node-3 looks after it while it is a member");
    world.live = ["node-1".to_owned(), "node-3".to_owned()].into();
    assert!(world.decide(&mut tracker, start + Duration::from_secs(61)).probes.is_empty());
    // node-3 left: the janitor takes over its re-checks (a minute after it started looking after it).
    world.live = ["node-1".to_owned()].into();
    world.janitor = true;
    assert!(world.decide(&mut tracker, start + Duration::from_secs(62)).probes.is_empty());
    let decision = world.decide(&mut tracker, start + Duration::from_secs(123));
    assert_eq!(decision.probes.len(), 1);
    assert!(decision.probes[0].recheck);
}

#[test]
fn a_record_that_never_appeared_is_written_again_each_interval() {
    let (mut tracker, mut world, start) = probing_a_new_ip("198.51.100.10");
    world.results = vec![answered("198.51.100.10", false)];
    assert_eq!(world.decide(&mut tracker, start).writes.len(), 1);
    world.results.clear();
    // The write was given up: no record, the IP still in use and dark.
    let decision = world.decide(&mut tracker, start + Duration::from_secs(30));
    assert!(decision.writes.is_empty() && decision.withhold.contains(&ip("198.51.100.10")));
    let decision = world.decide(&mut tracker, start + Duration::from_secs(60));
    assert!(matches!(decision.writes.as_slice(), [ConflictWrite::Apply { .. }]), "{:?}", decision.writes);
    assert!(world.decide(&mut tracker, start + Duration::from_secs(61)).writes.is_empty(), "once per interval");
}

#[test]
fn a_conflict_found_while_announcing_is_withheld_recorded_and_rechecked() {
    let mut tracker = ConflictTracker::default();
    let start = Instant::now();
    let mut world = World::default().with_mine("198.51.100.10");
    assert_eq!(world.decide(&mut tracker, start), Decision::default(), "announced, known");
    let answer = Answer { mac: THEIRS, interface: "eth0".into() };
    world.found_while_announcing = vec![(ip("198.51.100.10"), answer.clone())];
    let decision = world.decide(&mut tracker, start + Duration::from_secs(1));
    assert_eq!(decision.found, [(ip("198.51.100.10"), answer)]);
    assert!(decision.withhold.contains(&ip("198.51.100.10")));
    assert!(matches!(decision.writes.as_slice(), [ConflictWrite::Apply { name, .. }] if name == "ip-198-51-100-10"));
    // Reported once; withheld from then on, and re-checked by probing once the record exists.
    world.found_while_announcing.clear();
    world.records = vec![record("198.51.100.10", "node-1")];
    let decision = world.decide(&mut tracker, start + Duration::from_secs(2));
    assert!(decision.found.is_empty() && decision.writes.is_empty());
    assert!(decision.withhold.contains(&ip("198.51.100.10")));
    let decision = world.decide(&mut tracker, start + Duration::from_secs(62));
    assert_eq!(
        decision.probes,
        [ProbeOrder { ip: ip("198.51.100.10"), interfaces: vec!["eth0".into()], recheck: true }]
    );
}
