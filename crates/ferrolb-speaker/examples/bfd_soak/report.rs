//! The benchmark's figures and their Markdown tables, and the loss model the soak is compared with.
//!
//! The model: a session goes down falsely when the gap between two packets that arrive exceeds the
//! detection time `mult x interval`. Each sender shortens every interval by a random 0-25% (RFC 5880 section
//! 6.8.7; ferrolb and FRR both do), so after an arriving packet, `k` lost ones and the next arriving one
//! span `k + 1` intervals each uniform in [0.75, 1] x interval. With independent loss `p` per packet,
//! P(down after an arriving packet) = sum over k of p^k (1 - p) P(sum of k + 1 such intervals > mult).

use std::time::{Duration, SystemTime};

use crate::pair::Profile;
use crate::tap::TapStats;

/// One pair's soak.
#[derive(Debug)]
pub struct Soak {
    /// The profile.
    pub profile: Profile,
    /// How long the loss was on.
    pub seconds: f64,
    /// The loss asked for, percent.
    pub loss: u32,
    /// ferrolb's Downs after Up during the soak.
    pub node_downs: u64,
    /// When (seconds into the soak).
    pub node_flap_times: Vec<f64>,
    /// ferrolb's side was Up at the end.
    pub node_up_at_end: bool,
    /// FRR's `session-down` counter over the soak.
    pub frr_downs: u64,
    /// FRR's logged Downs after Up (seconds into the soak).
    pub frr_flap_times: Vec<f64>,
    /// FRR's `uptime` at the end (seconds), if Up.
    pub frr_uptime: Option<u64>,
    /// The router's nft counters over the soak: from the node, of them lost, from the router, of them lost.
    pub counters: [u64; 4],
    /// The tap's gaps over the soak.
    pub tap: TapStats,
    /// CPU of ferrolb's runtime thread for this session.
    pub node_cpu: Duration,
    /// CPU of this pair's bfdd.
    pub bfdd_cpu: Duration,
}

/// One pair's detection runs, in milliseconds from the cut.
#[derive(Debug)]
pub struct Detection {
    /// The profile.
    pub profile: Profile,
    /// The router went silent: until ferrolb's side was Down.
    pub node: Vec<f64>,
    /// The node went silent: until FRR's side was Down.
    pub frr: Vec<f64>,
    /// Runs that did not come up again or saw no Down in time (or the wrong reason).
    pub failed: usize,
}

/// Everything a run prints.
pub struct Run<'a> {
    /// The caller's label (e.g. the load).
    pub label: &'a str,
    /// The loss, percent.
    pub loss: u32,
    /// When the run started.
    pub started: SystemTime,
    /// /proc/loadavg before and after.
    pub load_before: &'a str,
    /// See `load_before`.
    pub load_after: &'a str,
    /// The soaks.
    pub soaks: &'a [Soak],
    /// The detection runs.
    pub detections: &'a [Detection],
}

/// Prints the tables on stdout.
pub fn print(run: &Run<'_>) {
    let started = run.started.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
    println!("## BFD soak {}", run.label);
    println!();
    println!("started at unix time {started}; load average before: {}; after: {}", run.load_before, run.load_after);
    println!();
    if let Some(first) = run.soaks.first() {
        println!(
            "### Soak: {:.1} min at {}% random loss each way (ferrolb BfdEndpoint vs FRR bfdd)",
            first.seconds / 60.0,
            run.loss
        );
        println!();
        println!(
            "| profile | detection | false downs ferrolb | false downs FRR (counter / log) | FRR uptime at end | measured loss node→router / router→node | model: expected false downs | packets/s per session |"
        );
        println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        for s in run.soaks {
            let [node_tx, node_lost, router_tx, router_lost] = s.counters;
            println!(
                "| {} | {} ms | {}{} | {} / {} | {} | {:.2}% / {:.2}% | {} | {:.1} |",
                s.profile,
                s.profile.detection().as_millis(),
                s.node_downs,
                if s.node_up_at_end { "" } else { " (Down at end)" },
                s.frr_downs,
                s.frr_flap_times.len(),
                s.frr_uptime.map_or("down".to_owned(), |u| format!("{u} s")),
                percent(node_lost, node_tx),
                percent(router_lost, router_tx),
                expected(s),
                (node_tx + router_tx) as f64 / s.seconds,
            );
        }
        println!();
        println!("### Soak: timing and cost");
        println!();
        println!(
            "| profile | ferrolb transmit gap p50 / p99.9 / max (ms) | longest silence ferrolb saw (ms, share of detection) | CPU ferrolb / bfdd per session (% of a core) | flap times (s into the soak; ferrolb / FRR) |"
        );
        println!("| --- | ---: | ---: | ---: | --- |");
        for s in run.soaks {
            let gaps = &s.tap.from_node;
            let silence = s.tap.from_router.quantile_ms(1.0);
            println!(
                "| {} | {:.1} / {:.1} / {:.1} | {:.0} ({:.0}%) | {:.2} / {:.2} | {} / {} |",
                s.profile,
                gaps.quantile_ms(0.5),
                gaps.quantile_ms(0.999),
                gaps.quantile_ms(1.0),
                silence,
                silence / s.profile.detection().as_secs_f64() / 10.0,
                s.node_cpu.as_secs_f64() / s.seconds * 100.0,
                s.bfdd_cpu.as_secs_f64() / s.seconds * 100.0,
                times(&s.node_flap_times),
                times(&s.frr_flap_times),
            );
        }
        println!();
    }
    if !run.detections.is_empty() {
        println!("### Detection (no loss): from the cut to Down, ms");
        println!();
        println!(
            "| profile | detection | ferrolb sees the router silent: min / median / max | FRR sees the node silent: min / median / max | runs | failed |"
        );
        println!("| --- | ---: | ---: | ---: | ---: | ---: |");
        for d in run.detections {
            println!(
                "| {} | {} ms | {} | {} | {} + {} | {} |",
                d.profile,
                d.profile.detection().as_millis(),
                spread(&d.node),
                spread(&d.frr),
                d.node.len(),
                d.frr.len(),
                d.failed,
            );
        }
        println!();
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 * 100.0 / whole as f64 }
}

fn times(t: &[f64]) -> String {
    if t.is_empty() {
        return "-".to_owned();
    }
    t.iter().map(|s| format!("{s:.0}")).collect::<Vec<_>>().join(" ")
}

fn spread(values: &[f64]) -> String {
    if values.is_empty() {
        return "-".to_owned();
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let median = if v.len() % 2 == 1 { v[v.len() / 2] } else { (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0 };
    format!("{:.0} / {:.0} / {:.0}", v[0], median, v[v.len() - 1])
}

/// The model's expected false downs over the soak, both directions, from the packets that really arrived.
fn expected(s: &Soak) -> String {
    let [node_tx, node_lost, router_tx, router_lost] = s.counters;
    let p = f64::from(s.loss) / 100.0;
    let per_packet = false_down_probability(p, s.profile.mult);
    let arrived = (node_tx - node_lost + router_tx - router_lost) as f64;
    let e = arrived * per_packet;
    if e == 0.0 {
        return "0".to_owned();
    }
    let hours = s.seconds / e / 3600.0;
    let every = if hours < 1.0 {
        format!("{:.0} min", hours * 60.0)
    } else if hours < 10_000.0 {
        format!("{hours:.0} h")
    } else {
        format!("{hours:.1e} h")
    };
    format!("{e:.2e} (one per {every})")
}

/// Every detection time on stderr, for the record.
pub fn print_raw(detections: &[Detection]) {
    for d in detections {
        for (side, values) in [("ferrolb", &d.node), ("FRR", &d.frr)] {
            let list: Vec<String> = values.iter().map(|v| format!("{v:.1}")).collect();
            eprintln!("detection {} {side}: {}", d.profile, list.join(" "));
        }
    }
}

/// P(a session goes down falsely after an arriving packet); see the module doc.
pub fn false_down_probability(p: f64, mult: u8) -> f64 {
    let m = f64::from(mult);
    (usize::from(mult)..usize::from(mult) * 2 + 40)
        .map(|k| p.powi(i32::try_from(k).unwrap_or(i32::MAX)) * (1.0 - p) * sum_exceeds(k + 1, m))
        .sum()
}

/// P(the sum of `n` independent intervals, each uniform in [0.75, 1], exceeds `m`), from the Irwin-Hall
/// distribution of a sum of uniforms on [0, 1].
fn sum_exceeds(n: usize, m: f64) -> f64 {
    let nf = n as f64;
    let x = (m - 0.75 * nf) / 0.25;
    if x <= 0.0 {
        return 1.0;
    }
    if x >= nf {
        return 0.0;
    }
    // P(IH > x) = P(IH < n - x) by symmetry; sum from the nearer end for fewer cancelling terms.
    let (y, upper) = if x > nf / 2.0 { (nf - x, false) } else { (x, true) };
    let cdf = irwin_hall_cdf(n, y);
    if upper { 1.0 - cdf } else { cdf }
}

fn irwin_hall_cdf(n: usize, x: f64) -> f64 {
    let mut sum = 0.0;
    let mut binomial = 1.0;
    let mut factorial = 1.0;
    for i in 1..=n {
        factorial *= i as f64;
    }
    for k in 0..=(x.floor() as usize).min(n) {
        if k > 0 {
            binomial *= (n - k + 1) as f64 / k as f64;
        }
        let sign = if k % 2 == 0 { 1.0 } else { -1.0 };
        sum += sign * binomial * (x - k as f64).powi(i32::try_from(n).unwrap_or(i32::MAX));
    }
    sum / factorial
}
