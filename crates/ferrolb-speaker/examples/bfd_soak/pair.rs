//! One node/router pair for one BFD profile: a node namespace running ferrolb's `BfdEndpoint`, a router
//! namespace running FRR's bfdd with the same timers, a veth link between them, nftables tables on both
//! sides (named counters, random loss, a cut), a packet tap, and readers for both sides' state changes.
//!
//! Pair `i` uses 203.0.113.(4i+1) for the router and 203.0.113.(4i+2) for the node, on a /30 of its own.
//! Namespaces are `soak-<pid>-r<i>` and `soak-<pid>-n<i>`; everything is removed on drop.

use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ferrolb_bgp::bfd::{BfdConfig, Diagnostic, SessionState};
use ferrolb_speaker::bgp::bfd::{BfdEndpoint, BfdPeer, BfdStatus};
use ferrolb_testns::{Netns, NsRuntime};
use tokio::sync::watch;

use crate::routers::{Router, start_frr};
use crate::tap::Tap;

/// A BFD profile: transmit and receive interval, and multiplier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// The interval, both directions.
    pub interval_ms: u32,
    /// The detect multiplier.
    pub mult: u8,
}

impl Profile {
    /// How long a silent peer takes to be declared down.
    pub fn detection(self) -> Duration {
        Duration::from_millis(u64::from(self.interval_ms) * u64::from(self.mult))
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ms x {}", self.interval_ms, self.mult)
    }
}

/// A state change on either side, with the wall-clock time it happened.
#[derive(Debug, Clone)]
pub struct Change {
    /// When.
    pub at: SystemTime,
    /// The new state is Up (otherwise Down, or Init on FRR's side).
    pub up: bool,
    /// A Down after Up.
    pub flap: bool,
    /// Why (ferrolb's diagnostic, or FRR's reason).
    pub reason: String,
}

/// The pair; see the module doc. Fields drop in order: the node's runtime (and its endpoint task) before
/// FRR, and both before their namespaces.
pub struct Pair {
    /// The profile under test.
    pub profile: Profile,
    router_nft: Nft,
    node_nft: Nft,
    /// The tap on the link, in the router's namespace.
    pub tap: Tap,
    status: watch::Receiver<BfdStatus>,
    node_changes: Arc<Mutex<Vec<Change>>>,
    /// The node runtime's thread id (for its CPU time).
    pub node_tid: i32,
    _node_runtime: NsRuntime,
    _endpoint: BfdEndpoint,
    frr_log: PathBuf,
    frr_log_offset: u64,
    /// FRR's bfdd and zebra.
    pub router: Router,
    _log_dir: LogDir,
    _node_ns: Netns,
}

impl Pair {
    /// Sets up pair `index` for `profile` and starts both sides (they come up on their own).
    pub fn new(index: u8, profile: Profile) -> Pair {
        let router_ip = Ipv4Addr::new(203, 0, 113, 4 * index + 1);
        let node_ip = Ipv4Addr::new(203, 0, 113, 4 * index + 2);
        let pid = std::process::id();
        let router_ns = netns(format!("soak-{pid}-r{index}"));
        let node_ns = netns(format!("soak-{pid}-n{index}"));
        node_ns.link("eth0", &[&format!("{node_ip}/30")], &router_ns, "eth0", &[&format!("{router_ip}/30")]);
        for line in [
            "add table inet soak",
            "add counter inet soak node_tx",
            "add counter inet soak node_lost",
            "add counter inet soak router_tx",
            "add counter inet soak router_lost",
            // Count first (priority -10), then lose (0); the cut (-20) is for the detection runs.
            "add chain inet soak count_in { type filter hook input priority -10; policy accept; }",
            "add chain inet soak count_out { type filter hook output priority -10; policy accept; }",
            "add chain inet soak loss_in { type filter hook input priority 0; policy accept; }",
            "add chain inet soak loss_out { type filter hook output priority 0; policy accept; }",
            "add chain inet soak cut { type filter hook output priority -20; policy accept; }",
            "add rule inet soak count_in udp dport 3784 counter name node_tx",
            "add rule inet soak count_out udp dport 3784 counter name router_tx",
        ] {
            router_ns.run("nft", &[line]);
        }
        node_ns.run("nft", &["add table inet soak"]);
        node_ns.run("nft", &["add chain inet soak cut { type filter hook output priority -20; policy accept; }"]);
        let tap = Tap::start(&router_ns.name, node_ip, router_ip);
        let router_nft = Nft::start(&router_ns);
        let node_nft = Nft::start(&node_ns);

        let log_dir = LogDir::new(index);
        let frr_log = log_dir.0.join("bfdd-us.log");
        // bfdd logs state changes with microseconds only to a target configured here (not `--log`).
        let conf = format!(
            "log file {log}
log timestamp precision 6
debug bfd peer
bfd
 peer {node_ip} local-address {router_ip}
  receive-interval {interval}
  transmit-interval {interval}
  detect-multiplier {mult}
 !
!
",
            log = frr_log.display(),
            interval = profile.interval_ms,
            mult = profile.mult,
        );
        let router = start_frr(router_ns, &[("bfdd", conf)]);

        let node_runtime = NsRuntime::new(&node_ns);
        let node_changes = Arc::new(Mutex::new(Vec::new()));
        let interval = Duration::from_millis(u64::from(profile.interval_ms));
        let peer = BfdPeer {
            peer: IpAddr::V4(router_ip),
            local: Some(IpAddr::V4(node_ip)),
            multihop: false,
            minimum_ttl: 255,
            config: BfdConfig {
                desired_min_tx: interval,
                required_min_rx: interval,
                detect_mult: profile.mult,
                passive: false,
            },
        };
        let (endpoint, status, node_tid) = node_runtime.run({
            let changes = node_changes.clone();
            async move {
                let (endpoint, task) = BfdEndpoint::start().expect("BFD sockets");
                tokio::spawn(task);
                let status = endpoint.add(peer);
                tokio::spawn(watch_node(status.clone(), changes));
                (endpoint, status, nix::unistd::gettid().as_raw())
            }
        });
        Pair {
            profile,
            router_nft,
            node_nft,
            tap,
            status,
            node_changes,
            node_tid,
            _node_runtime: node_runtime,
            _endpoint: endpoint,
            frr_log,
            frr_log_offset: 0,
            router,
            _log_dir: log_dir,
            _node_ns: node_ns,
        }
    }

    /// ferrolb's side now.
    pub fn node_status(&self) -> BfdStatus {
        *self.status.borrow()
    }

    /// ferrolb's state changes since `from` (an index into all of them), and the new index.
    pub fn node_changes(&self, from: usize) -> (Vec<Change>, usize) {
        let changes = self.node_changes.lock().expect("node changes");
        (changes.get(from..).unwrap_or_default().to_vec(), changes.len())
    }

    /// FRR's peer as `show bfd peers json` has it (Null when there is none).
    pub fn frr_peer(&self) -> serde_json::Value {
        self.router.vtysh("show bfd peers json").get(0).cloned().unwrap_or_default()
    }

    /// FRR's counters (`show bfd peers counters json`).
    pub fn frr_counters(&self) -> serde_json::Value {
        self.router.vtysh("show bfd peers counters json").get(0).cloned().unwrap_or_default()
    }

    /// FRR's state changes logged since the last call.
    pub fn frr_changes(&mut self) -> Vec<Change> {
        let Ok(mut file) = std::fs::File::open(&self.frr_log) else { return Vec::new() };
        if file.seek(SeekFrom::Start(self.frr_log_offset)).is_err() {
            return Vec::new();
        }
        let mut changes = Vec::new();
        let mut reader = BufReader::new(file);
        let mut line = String::new();
        // Only whole lines: a half-written one is read again next time.
        while reader.read_line(&mut line).unwrap_or(0) > 0 && line.ends_with('\n') {
            self.frr_log_offset += line.len() as u64;
            changes.extend(parse_frr_change(&line));
            line.clear();
        }
        changes
    }

    /// Both sides are Up.
    pub fn both_up(&self) -> bool {
        self.node_status().state == SessionState::Up && self.frr_peer()["status"] == "up"
    }

    /// Waits until both sides are Up; false after `timeout`.
    pub fn wait_both_up(&self, timeout: Duration) -> bool {
        poll(timeout, Duration::from_millis(50), || self.both_up().then_some(())).is_some()
    }

    /// Starts losing `percent`% of the BFD packets in each direction, at random (in the router).
    pub fn loss_on(&mut self, percent: u32) {
        self.router_nft.send(&format!(
            "add rule inet soak loss_in udp dport 3784 numgen random mod 100 < {percent} counter name node_lost drop"
        ));
        self.router_nft.send(&format!(
            "add rule inet soak loss_out udp dport 3784 numgen random mod 100 < {percent} counter name router_lost drop"
        ));
    }

    /// Stops losing packets.
    pub fn loss_off(&mut self) {
        self.router_nft.send("flush chain inet soak loss_in");
        self.router_nft.send("flush chain inet soak loss_out");
    }

    /// The router's named counters: packets from the node, of them lost, from the router, of them lost.
    pub fn nft_counters(&self) -> [u64; 4] {
        let out = self.router.netns.run("nft", &["-j", "list", "counters", "table", "inet", "soak"]);
        let json: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        let packets = |name: &str| {
            json["nftables"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|o| o["counter"]["name"] == name)
                .and_then(|o| o["counter"]["packets"].as_u64())
                .unwrap_or(0)
        };
        [packets("node_tx"), packets("node_lost"), packets("router_tx"), packets("router_lost")]
    }

    /// Silences the router (its BFD packets stop leaving) and returns the wall-clock time just before.
    pub fn cut_router(&mut self) -> SystemTime {
        let at = SystemTime::now();
        self.router_nft.send("add rule inet soak cut udp dport 3784 drop");
        at
    }

    /// Silences the node (its BFD packets stop leaving) and returns the wall-clock time just before.
    pub fn cut_node(&mut self) -> SystemTime {
        let at = SystemTime::now();
        self.node_nft.send("add rule inet soak cut udp dport 3784 drop");
        at
    }

    /// Lifts both cuts.
    pub fn restore(&mut self) {
        self.router_nft.send("flush chain inet soak cut");
        self.node_nft.send("flush chain inet soak cut");
    }

    /// The node runtime's CPU time so far (user plus system).
    pub fn node_cpu(&self) -> Duration {
        cpu_time(&format!("/proc/self/task/{}/stat", self.node_tid))
    }

    /// bfdd's CPU time so far.
    pub fn bfdd_cpu(&self) -> Duration {
        let pid = std::fs::read_to_string(format!("/var/run/frr/{}/bfdd.pid", self.router.handle)).unwrap_or_default();
        cpu_time(&format!("/proc/{}/stat", pid.trim()))
    }
}

/// Records every change of ferrolb's status with the time it was seen.
async fn watch_node(mut status: watch::Receiver<BfdStatus>, changes: Arc<Mutex<Vec<Change>>>) {
    let mut downs = 0;
    while status.changed().await.is_ok() {
        let s = *status.borrow_and_update();
        let change = Change {
            at: SystemTime::now(),
            up: s.state == SessionState::Up,
            flap: s.downs > downs,
            reason: diagnostic_name(s.diagnostic).to_owned(),
        };
        downs = s.downs;
        changes.lock().expect("node changes").push(change);
    }
}

fn diagnostic_name(d: Diagnostic) -> &'static str {
    match d {
        Diagnostic::None => "none",
        Diagnostic::DetectionTimeExpired => "detection-time-expired",
        Diagnostic::NeighborDown => "neighbor-down",
        Diagnostic::AdminDown => "admin-down",
        _ => "other",
    }
}

/// A namespace with our own prefix (the testns constructor would name it `flb-t-...`), `lo` up.
fn netns(name: String) -> Netns {
    ferrolb_testns::ip(&["netns", "add", &name]);
    let netns = Netns { name };
    netns.ip(&["link", "set", "lo", "up"]);
    netns
}

/// An interactive `nft` in a namespace: a rule change is one line down a pipe, with no process start, so
/// the moment of a cut is known to well under a millisecond.
struct Nft {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Nft {
    fn start(netns: &Netns) -> Nft {
        let mut child =
            netns.command("nft", &["-i"]).stdin(Stdio::piped()).stdout(Stdio::null()).spawn().expect("start nft -i");
        let stdin = child.stdin.take();
        Nft { child, stdin }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("nft's stdin");
        stdin.write_all(format!("{line}\n").as_bytes()).and_then(|()| stdin.flush()).expect("write to nft");
    }
}

impl Drop for Nft {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// A directory bfdd can write its precise log to, removed on drop.
struct LogDir(PathBuf);

impl LogDir {
    fn new(index: u8) -> LogDir {
        let dir = std::env::temp_dir().join(format!("ferrolb-bfd-soak-{}-{index}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("log dir");
        let _ = Command::new("chown").args(["frr:frr"]).arg(&dir).status();
        LogDir(dir)
    }
}

impl Drop for LogDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A line of bfdd's log such as `2026/12/01 23:55:41.557949 BFD: [SEY1D-NT8EQ] state-change: [mhop:no
/// peer:... vrf:default] up -> down reason:control-expired`, read as UTC (the wrapper sets TZ=UTC).
fn parse_frr_change(line: &str) -> Option<Change> {
    let rest = line.split("state-change: [").nth(1)?;
    let transition = rest.split("] ").nth(1)?;
    let mut words = transition.split_whitespace();
    let from = words.next()?;
    let _arrow = words.next().filter(|w| *w == "->")?;
    let to = words.next()?;
    let reason = words.next().and_then(|w| w.strip_prefix("reason:")).unwrap_or("").to_owned();
    Some(Change { at: parse_frr_time(line)?, up: to == "up", flap: from == "up" && to != "up", reason })
}

fn parse_frr_time(line: &str) -> Option<SystemTime> {
    let (date, time) = (line.get(0..10)?, line.get(11..26)?);
    let mut d = date.split('/').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, micros) = time.split_once('.')?;
    let mut t = hms.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (t.next()??, t.next()??, t.next()??);
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    let seconds = days * 86_400 + h * 3600 + m * 60 + s;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds) + Duration::from_micros(micros.parse().ok()?))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's well-known civil-date formula).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// utime + stime of a `/proc/.../stat` file (fields 14 and 15, after the parenthesised name).
fn cpu_time(path: &str) -> Duration {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(") ").map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let ticks: u64 = [11, 12].iter().filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok())).sum();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// Calls `probe` every `every` until it gives a value, or `None` once `timeout` has passed.
pub fn poll<T>(timeout: Duration, every: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}
