//! Benchmark: BFD profiles under random packet loss (and whatever CPU load the caller adds), to choose
//! ferrolb's default BFDProfile. Not a test: it measures and prints Markdown tables.
//!
//! For each profile (`INTERVALxMULT`, the same timers on both sides) it builds a pair of network namespaces,
//! a node running ferrolb's `BfdEndpoint` and a router running FRR's bfdd, joined by a veth link (203.0.113.0/24,
//! a /30 per pair; namespaces `soak-<pid>-*`). All pairs run at once. Then:
//! - **Soak**: once every session is Up, the router's nftables drop `--loss` percent of the BFD packets in
//!   each direction at random (`numgen random mod 100 < N drop`, input and output, UDP 3784) for
//!   `--minutes`. Reported: Down events after Up on ferrolb's side (`BfdStatus.downs`) and on FRR's side
//!   (`session-down` of `show bfd peers counters json`, and its log), FRR's uptime, the loss measured by
//!   named nft counters, packets per second per session, ferrolb's transmit gaps and the longest silence
//!   ferrolb's side saw (kernel timestamps from a packet tap in the router namespace; after a flap these
//!   include the one-second packets of slow start), CPU of ferrolb's runtime thread and of bfdd, and a
//!   model's expected false downs at that loss (see `report`).
//! - **Detection** (without loss): `--detect-runs` times per pair, the router goes silent (nft drops its BFD
//!   output) and the time until ferrolb's status turns Down is taken; then the node goes silent and the time
//!   until bfdd logs Down (microsecond timestamps in its log) is taken. Cuts are one line written to an
//!   `nft -i` already running in the namespace; times run from just before that write. Min/median/max.
//!
//! Run it through `hack/bench/bfd-soak`, which builds it in release mode, sets `TZ=UTC` (bfdd logs local
//! time), adds optional CPU load and cleans up on Ctrl-C. Directly, as root:
//!
//! ```text
//! TZ=UTC cargo run --release -p ferrolb-speaker --example bfd_soak -- \
//!     [--profiles 300x3,100x3,50x5,30x8,20x10] [--minutes 10] [--loss 5] [--detect-runs 20] [--label TEXT]
//! ```

#[path = "../../tests/routers/mod.rs"]
mod routers;

mod pair;
mod report;
mod tap;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use ferrolb_bgp::bfd::SessionState;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::pair::{Pair, Profile, poll};
use crate::report::{Detection, Soak};

/// Set by SIGINT or SIGTERM: the soak ends early, the detection runs stop, and everything is cleaned up.
static STOP: AtomicBool = AtomicBool::new(false);

struct Args {
    profiles: Vec<Profile>,
    minutes: f64,
    loss: u32,
    detect_runs: usize,
    label: String,
}

fn main() {
    ferrolb_testns::require_root("the BFD soak benchmark");
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("bfd_soak: {e}");
        std::process::exit(2);
    });
    if std::env::var("TZ").as_deref() != Ok("UTC") {
        eprintln!("bfd_soak: run with TZ=UTC (bfdd's log times are read as UTC); hack/bench/bfd-soak does");
        std::process::exit(2);
    }
    watch_signals();
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let started = SystemTime::now();

    eprintln!("setting up {} pairs", args.profiles.len());
    let mut pairs: Vec<Pair> = (0u8..).zip(&args.profiles).map(|(i, p)| Pair::new(i, *p)).collect();
    for pair in &pairs {
        assert!(pair.wait_both_up(Duration::from_secs(30)), "{}: the session did not come up", pair.profile);
    }
    // Out of slow start and through the Poll Sequence on both sides.
    pause(Duration::from_secs(3));

    let soaks = soak(&mut pairs, &args);
    let detections = if STOP.load(Ordering::Relaxed) { Vec::new() } else { detect_all(&mut pairs, &args) };
    report::print_raw(&detections);
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    report::print(&report::Run {
        label: &args.label,
        loss: args.loss,
        started,
        load_before: load_before.trim(),
        load_after: load_after.trim(),
        soaks: &soaks,
        detections: &detections,
    });
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        profiles: parse_profiles("300x3,100x3,50x5,30x8,20x10")?,
        minutes: 10.0,
        loss: 5,
        detect_runs: 20,
        label: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--profiles" => args.profiles = parse_profiles(&value()?)?,
            "--minutes" => args.minutes = value()?.parse().map_err(|e| format!("--minutes: {e}"))?,
            "--loss" => args.loss = value()?.parse().map_err(|e| format!("--loss: {e}"))?,
            "--detect-runs" => args.detect_runs = value()?.parse().map_err(|e| format!("--detect-runs: {e}"))?,
            "--label" => args.label = value()?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if args.profiles.is_empty() || args.profiles.len() > 60 {
        return Err("give 1 to 60 profiles".to_owned());
    }
    if args.loss > 100 {
        return Err("--loss is a percentage".to_owned());
    }
    Ok(args)
}

fn parse_profiles(list: &str) -> Result<Vec<Profile>, String> {
    list.split(',')
        .map(|p| {
            let (interval, mult) = p.trim().split_once('x').ok_or_else(|| format!("profile {p}: not INTERVALxMULT"))?;
            let interval_ms: u32 = interval.parse().map_err(|e| format!("profile {p}: {e}"))?;
            let mult: u8 = mult.parse().map_err(|e| format!("profile {p}: {e}"))?;
            // FRR's bfdd takes 10 to 60000 ms.
            if !(10..=60_000).contains(&interval_ms) || mult < 2 {
                return Err(format!("profile {p}: interval 10-60000 ms, multiplier 2-255"));
            }
            Ok(Profile { interval_ms, mult })
        })
        .collect()
}

fn watch_signals() {
    std::thread::spawn(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("signal runtime");
        runtime.block_on(async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        });
        eprintln!("bfd_soak: stopping; cleaning up");
        STOP.store(true, Ordering::Relaxed);
    });
}

/// Sleeps for `d` unless stopped first; false when stopped.
fn pause(d: Duration) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if STOP.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep((until - Instant::now()).min(Duration::from_millis(100)));
    }
    !STOP.load(Ordering::Relaxed)
}

/// The soak: every pair at once, loss on for `args.minutes`.
fn soak(pairs: &mut [Pair], args: &Args) -> Vec<Soak> {
    let baselines: Vec<_> = pairs
        .iter_mut()
        .map(|p| {
            p.frr_changes();
            let downs = p.node_status().downs;
            let frr_downs = p.frr_counters()["session-down"].as_u64().unwrap_or(0);
            (downs, frr_downs, p.nft_counters(), p.node_cpu(), p.bfdd_cpu(), p.node_changes(0).1)
        })
        .collect();
    for pair in pairs.iter_mut() {
        pair.tap.reset();
        pair.loss_on(args.loss);
    }
    let start = Instant::now();
    let wall_start = SystemTime::now();
    eprintln!("soaking for {} min at {}% loss", args.minutes, args.loss);
    let total = Duration::from_secs_f64(args.minutes * 60.0);
    let mut next_progress = Duration::from_secs(60);
    while start.elapsed() < total && pause(Duration::from_secs(1).min(total.saturating_sub(start.elapsed()))) {
        if start.elapsed() >= next_progress {
            next_progress += Duration::from_secs(60);
            let downs: Vec<String> = (0..pairs.len())
                .map(|i| format!("{}: {}", pairs[i].profile, pairs[i].node_status().downs - baselines[i].0))
                .collect();
            eprintln!("{:.0} s: ferrolb downs {}", start.elapsed().as_secs_f64(), downs.join(", "));
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let mut soaks = Vec::new();
    for (pair, (downs, frr_downs, counters, node_cpu, bfdd_cpu, change_index)) in pairs.iter_mut().zip(baselines) {
        pair.loss_off();
        let tap = pair.tap.snapshot();
        let end_counters = pair.nft_counters();
        let frr_flap_times: Vec<f64> = pair
            .frr_changes()
            .iter()
            .filter(|c| c.flap)
            .map(|c| c.at.duration_since(wall_start).unwrap_or_default().as_secs_f64())
            .collect();
        let node_flap_times: Vec<f64> = pair
            .node_changes(change_index)
            .0
            .iter()
            .filter(|c| c.flap)
            .map(|c| c.at.duration_since(wall_start).unwrap_or_default().as_secs_f64())
            .collect();
        let peer = pair.frr_peer();
        soaks.push(Soak {
            profile: pair.profile,
            seconds,
            loss: args.loss,
            node_downs: pair.node_status().downs - downs,
            node_flap_times,
            node_up_at_end: pair.node_status().state == SessionState::Up,
            frr_downs: pair.frr_counters()["session-down"].as_u64().unwrap_or(0) - frr_downs,
            frr_flap_times,
            frr_uptime: peer["uptime"].as_u64(),
            counters: std::array::from_fn(|i| end_counters[i] - counters[i]),
            tap,
            node_cpu: pair.node_cpu().saturating_sub(node_cpu),
            bfdd_cpu: pair.bfdd_cpu().saturating_sub(bfdd_cpu),
        });
    }
    soaks
}

/// The detection runs: each pair in a thread of its own, all pairs at once.
fn detect_all(pairs: &mut [Pair], args: &Args) -> Vec<Detection> {
    eprintln!("detection: {} runs per pair and direction", args.detect_runs);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0u64..)
            .zip(pairs.iter_mut())
            .map(|(i, pair)| scope.spawn(move || detect(pair, args.detect_runs, i)))
            .collect();
        threads.into_iter().map(|t| t.join().expect("detection thread")).collect()
    })
}

fn detect(pair: &mut Pair, runs: usize, seed: u64) -> Detection {
    let mut rng = StdRng::seed_from_u64(seed ^ u64::from(std::process::id()));
    let mut result = Detection { profile: pair.profile, node: Vec::new(), frr: Vec::new(), failed: 0 };
    let timeout = pair.profile.detection() + Duration::from_secs(3);
    // Up on both sides, at the fast rate, then a random part of an interval so cuts fall at any phase.
    let settle = |pair: &Pair, rng: &mut StdRng| {
        pair.wait_both_up(Duration::from_secs(20))
            && pause(
                Duration::from_secs(2)
                    + Duration::from_micros(rng.random_range(0..u64::from(pair.profile.interval_ms) * 1000)),
            )
    };
    for _ in 0..runs {
        if !settle(pair, &mut rng) {
            result.failed += 1;
            continue;
        }
        // The router goes silent: ferrolb's side must notice.
        let from = pair.node_changes(0).1;
        let cut = pair.cut_router();
        let down = poll(timeout, Duration::from_millis(5), || pair.node_changes(from).0.into_iter().find(|c| !c.up));
        pair.restore();
        match down {
            Some(c) if c.reason == "detection-time-expired" => result.node.push(ms_since(cut, c.at)),
            _ => result.failed += 1,
        }
        if !settle(pair, &mut rng) {
            result.failed += 1;
            continue;
        }
        // The node goes silent: FRR's side must notice.
        pair.frr_changes();
        let cut = pair.cut_node();
        let down = poll(timeout, Duration::from_millis(10), || pair.frr_changes().into_iter().find(|c| c.flap));
        pair.restore();
        match down {
            Some(c) if c.reason == "control-expired" => result.frr.push(ms_since(cut, c.at)),
            _ => result.failed += 1,
        }
    }
    result
}

fn ms_since(from: SystemTime, to: SystemTime) -> f64 {
    match to.duration_since(from) {
        Ok(d) => d.as_secs_f64() * 1000.0,
        Err(e) => -e.duration().as_secs_f64() * 1000.0,
    }
}
