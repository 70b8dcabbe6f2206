//! Faults a production cluster meets, tried on the lab with speakers as host processes (so that one can be
//! killed and restarted at will, and run under a stepped wall clock): a speaker killed with SIGKILL over and
//! over for two minutes, and speakers whose wall clocks step forward and back by minutes. A client on the LAN
//! watches ARP throughout (hack/lab.d/arp-watch.py): the figure that matters is how long two MACs answered
//! for the IP at once, and it must be zero.
//!
//! (The control plane restarting is tried in tests/cluster.rs, on the helm-installed lab.)

use std::time::{Duration, Instant};

use ferrolb_e2e::{FakeClock, Lab, repo_root, wait_for, wait_for_blocking};

const SOON: Duration = Duration::from_secs(30);
const IP: &str = "198.51.100.192";
const NODES: [&str; 3] = ["node-1", "node-2", "node-3"];

#[tokio::test]
async fn speakers_killed_over_and_over_or_with_stepped_clocks_never_leave_two_macs_answering() -> anyhow::Result<()> {
    let lab = Lab::start(3, &["--install", "processes"]).await?;
    // Every speaker runs under libfaketime with its own clock file (at +0 until the clock test steps it):
    // only the wall clock is faked, the monotonic one stays true.
    for node in NODES {
        restart_speaker(&lab, node)?;
    }
    lab.lab(&["pod", "add", "web-1", "--node", "node-1", "--labels", "app=web"])?;
    lab.apply_file(&repo_root().join("hack/lab.d/demo.yaml"))?;
    lab.apply_file(&repo_root().join("hack/lab.d/l2advertisement.yaml"))?;
    let owner = wait_for("an owner for the demo IP", SOON, || async { lab.recorded_owner(IP) }).await?;
    let owner_mac = lab.node_mac(&owner)?;
    wait_for("the owner alone answering ARP", SOON, || async {
        Ok((lab.arp_answers(IP)? == [owner_mac.clone()]).then_some(()))
    })
    .await?;
    lab.wait_http(IP, "pod=web-1").await?;

    wall_clocks_stepped_by_minutes_move_nothing(&lab).await?;
    a_speaker_killed_every_few_seconds_never_leaves_two_macs_answering(&lab).await?;
    Ok(())
}

/// node's wall clock (its speaker runs on it).
fn clock(lab: &Lab, node: &str) -> anyhow::Result<FakeClock> {
    FakeClock::at(lab.dir().join(format!("clock-{node}")))
}

/// Kills node's speaker (if running) and starts it again under its own fake wall clock.
fn restart_speaker(lab: &Lab, node: &str) -> anyhow::Result<()> {
    if let Ok(pid) = lab.lab(&["ferrolb-pid", "speaker", node]) {
        kill(pid.trim())?;
    }
    let mut env = clock(lab, node)?.env()?;
    let binary = ferrolb_e2e::ferrolb_binary()?;
    env.push(("FERROLB_BIN".to_owned(), binary.to_str().expect("utf-8 path").to_owned()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    lab.lab_with_env(&["start-speaker", node], &env)?;
    Ok(())
}

/// SIGKILLs `pid` and returns once it is gone (or a zombie): `hack/lab start-speaker` starts nothing while
/// the old process still runs.
fn kill(pid: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill").args(["-KILL", pid]).status()?;
    anyhow::ensure!(status.success(), "kill -KILL {pid} failed");
    wait_for_blocking(&format!("process {pid} to end"), Duration::from_secs(10), || {
        Ok(std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_or(true, |stat| stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z'))))
    })
}

const DOWNS: &str = r#"ferrolb_speaker_membership_transitions_total{kind="down"}"#;
const TAKEOVERS: &str = "ferrolb_speaker_ownership_takeovers_total";
const SKEW: &str = "ferrolb_speaker_membership_clock_skew_seconds";

/// Every node's membership size, once all three see each other.
async fn all_members(lab: &Lab) -> anyhow::Result<()> {
    wait_for("every speaker to see all three", SOON, || async {
        for node in NODES {
            if lab.speaker_metric(node, "ferrolb_speaker_membership_size")? != 3.0 {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })
    .await
}

/// The owner's wall clock steps 3 minutes forward, then to 3 minutes behind, then back, while the client
/// watches ARP and opens a connection every 10 ms; then a second node's clock does the same. The other
/// speakers see the offset (`membership_clock_skew_seconds`, so the step really happened), yet nobody is
/// declared down, no IP changes owner, no connection fails and no two MACs ever answer: membership timeouts,
/// damping and placement run on the monotonic clock.
async fn wall_clocks_stepped_by_minutes_move_nothing(lab: &Lab) -> anyhow::Result<()> {
    all_members(lab).await?;
    let owner = lab.recorded_owner(IP)?.ok_or_else(|| anyhow::anyhow!("no owner"))?;
    let other = NODES.iter().find(|n| **n != owner).copied().unwrap_or("node-1");
    let (downs, takeovers) = (lab.speakers_total(3, DOWNS)?, lab.speakers_total(3, TAKEOVERS)?);
    let watch = lab.watch_arp(IP).await?;
    let report = lab
        .probe_while(IP, 80, 0, || {
            for node in [owner.as_str(), other] {
                let observer = NODES.iter().find(|n| **n != node).copied().unwrap_or("node-1");
                for (offset, seen) in [("+180", 170.0_f64), ("-180", -170.0), ("+0", 0.0)] {
                    clock(lab, node)?.step(offset)?;
                    // The step is in effect once another speaker sees it in node's datagrams; then the
                    // membership runs on for a few seconds of traffic under the stepped clock.
                    wait_for_blocking(&format!("{observer} to see {node}'s clock at {offset}"), SOON, || {
                        let skew = lab.speaker_metric(observer, SKEW)?;
                        Ok(if seen == 0.0 { skew.abs() < 10.0 } else { skew * seen.signum() >= seen.abs() })
                    })?;
                    let accepted = r#"ferrolb_speaker_membership_accepted_total{key="current"}"#;
                    let before = lab.speaker_metric(node, accepted)?;
                    wait_for_blocking(&format!("{node} to take 100 datagrams at {offset}"), SOON, || {
                        Ok(lab.speaker_metric(node, accepted)? >= before + 100.0)
                    })?;
                }
            }
            Ok(())
        })
        .await?;
    let arp = watch.finish().await?;
    assert_eq!(report["failures"], 0, "connections failed while clocks stepped: {report}");
    assert_answered(&arp, 99, "while clocks stepped")?;
    assert_eq!(arp["two_macs_rounds"], 0, "two MACs answered while clocks stepped: {arp}");
    assert!(arp["max_gap_ms"].as_u64().unwrap_or(u64::MAX) < 1000, "ARP went unanswered: {arp}");
    assert_eq!(lab.speakers_total(3, DOWNS)?, downs, "a speaker was declared down when a clock stepped");
    assert_eq!(lab.speakers_total(3, TAKEOVERS)?, takeovers, "an IP moved when a clock stepped");
    assert_eq!(lab.recorded_owner(IP)?.as_deref(), Some(owner.as_str()));
    Ok(())
}

/// The ARP watch saw answers in at least `percent` of its rounds (its other figures say nothing otherwise).
fn assert_answered(arp: &serde_json::Value, percent: u64, what: &str) -> anyhow::Result<()> {
    let rounds = arp["rounds"].as_u64().unwrap_or(0);
    let answered = arp["answered"].as_u64().unwrap_or(0);
    anyhow::ensure!(rounds > 0 && answered * 100 >= rounds * percent, "ARP mostly unanswered {what}: {arp}");
    Ok(())
}

/// For two minutes, whichever speaker owns the IP is killed with SIGKILL, the IP fails over, the killed
/// speaker is started again and, a few seconds after it has rejoined, the next owner is killed. The client
/// watching ARP never sees two MACs answer at once and never waits more than a few seconds for an answer;
/// new connections keep working through every failover (kube-proxy on the killed speaker's node still
/// delivers until the client moves); the membership ends whole and one MAC answers.
async fn a_speaker_killed_every_few_seconds_never_leaves_two_macs_answering(lab: &Lab) -> anyhow::Result<()> {
    let watch = lab.watch_arp(IP).await?;
    let mut kills = 0u64;
    let report = lab
        .probe_while(IP, 80, 0, || {
            let end = Instant::now() + Duration::from_secs(120);
            while Instant::now() < end {
                let owner = lab.recorded_owner(IP)?.ok_or_else(|| anyhow::anyhow!("no owner"))?;
                kill(lab.lab(&["ferrolb-pid", "speaker", &owner])?.trim())?;
                kills += 1;
                wait_for_blocking(&format!("the IP to fail over from {owner}"), SOON, || {
                    Ok(lab.recorded_owner(IP)?.is_some_and(|o| o != owner))
                })?;
                restart_speaker(lab, &owner)?;
                wait_for_blocking(&format!("{owner}'s speaker to rejoin"), SOON, || {
                    Ok(lab.speaker_metric(&owner, "ferrolb_speaker_membership_size")? == 3.0)
                })?;
                // The cadence of the fault ("every few seconds"), not synchronisation.
                std::thread::sleep(Duration::from_secs(2));
            }
            Ok(())
        })
        .await?;
    let arp = watch.finish().await?;
    assert!(kills >= 10, "only {kills} kills in two minutes");
    // Each failover leaves the IP dark for about 0.3 s: most rounds, not all, are answered.
    assert_answered(&arp, 75, &format!("during {kills} kills"))?;
    assert_eq!(arp["two_macs_rounds"], 0, "two MACs answered at once during {kills} kills: {arp}");
    let gap = arp["max_gap_ms"].as_u64().unwrap_or(u64::MAX);
    assert!(gap < 3000, "the IP went unanswered for {gap} ms during {kills} kills: {arp}");
    // A kill and a takeback per round: at most one reset per path change (see assert_handover_lost_nothing).
    Lab::assert_handover_lost_nothing(&report, 2 * kills, &format!("during {kills} SIGKILLs"));
    assert_eq!(report["last_second_ok"], true, "{report}");
    all_members(lab).await?;
    let owner = lab.recorded_owner(IP)?.ok_or_else(|| anyhow::anyhow!("no owner at the end"))?;
    assert_eq!(lab.arp_answers(IP)?, [lab.node_mac(&owner)?], "not exactly the owner answers at the end");
    eprintln!("{kills} SIGKILLs: ARP {arp}\nconnections {report}");
    Ok(())
}
