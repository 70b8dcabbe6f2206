//! Faults a production cluster meets, tried on the lab with speakers as host processes (so that one can be
//! killed and restarted at will, and run under a stepped wall clock): a speaker killed with SIGKILL over and
//! over for two minutes, speakers whose wall clocks step forward and back by minutes, and a membership split
//! while the LAN still carries ARP. A client on the LAN watches ARP throughout (hack/lab.d/arp-watch.py):
//! the figure that matters is how long two MACs answered for an IP at once, and it must be zero (for the
//! split: no more than the settling time). Last, a host on the LAN takes an address a speaker announces, and
//! a speaker starts with a wrong membership key.
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
    lab.wait_answered_by(IP, &owner).await?;
    lab.wait_http(IP, "pod=web-1").await?;

    wall_clocks_stepped_by_minutes_move_nothing(&lab).await?;
    a_speaker_killed_every_few_seconds_never_leaves_two_macs_answering(&lab).await?;
    a_split_membership_settles_to_one_mac_per_ip_and_heals_with_no_move(&lab).await?;
    a_host_taking_an_announced_ip_is_defended_once_then_reported_as_a_conflict(&lab).await?;
    a_speaker_with_a_wrong_key_disturbs_nobody(&lab).await?;
    Ok(())
}

/// node's wall clock (its speaker runs on it).
fn clock(lab: &Lab, node: &str) -> anyhow::Result<FakeClock> {
    FakeClock::at(lab.dir().join(format!("clock-{node}")))
}

/// Kills node's speaker (if running) and starts it again under its own fake wall clock.
fn restart_speaker(lab: &Lab, node: &str) -> anyhow::Result<()> {
    restart_speaker_with(lab, node, &[])
}

/// [`restart_speaker`] with more environment for `hack/lab start-speaker`.
fn restart_speaker_with(lab: &Lab, node: &str, more: &[(&str, &str)]) -> anyhow::Result<()> {
    if let Ok(pid) = lab.lab(&["ferrolb-pid", "speaker", node]) {
        kill(pid.trim())?;
    }
    let mut env = clock(lab, node)?.env()?;
    let binary = ferrolb_e2e::ferrolb_binary()?;
    env.push(("FERROLB_BIN".to_owned(), binary.to_str().expect("utf-8 path").to_owned()));
    env.extend(more.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
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

/// The lab's speakers' membership port (the default, `ferrolb_speaker::membership::DEFAULT_PORT`).
const MEMBERSHIP_PORT: &str = "7947";

/// The ARP watch's interval (hack/lab.d/arp-watch.py's default), to turn rounds into time.
const ARP_ROUND_MS: u64 = 20;

/// Waits until `node` has answered `count` more ARP requests (the client's ARP watch asks 50 a second): a
/// stretch of traffic, not of time, for a state that must hold for a while.
async fn answers_more(lab: &Lab, node: &str, count: f64, what: &str) -> anyhow::Result<()> {
    const ANSWERED: &str = r#"ferrolb_speaker_requests_answered_total{protocol="arp"}"#;
    let before = lab.speaker_metric(node, ANSWERED)?;
    wait_for(what, SOON, || async { Ok((lab.speaker_metric(node, ANSWERED)? >= before + count).then_some(())) }).await
}

/// Cuts (or restores) `node`'s membership traffic with nftables in its namespace: UDP to and from the
/// membership port is dropped, everything else (ARP, the API server, Services) still flows.
fn cut_membership(lab: &Lab, node: &str, cut: bool) -> anyhow::Result<()> {
    let commands: Vec<String> = if cut {
        vec![
            "add table inet ferrolb-split-test".into(),
            "add chain inet ferrolb-split-test input { type filter hook input priority 0 ; }".into(),
            "add chain inet ferrolb-split-test output { type filter hook output priority 0 ; }".into(),
            format!("add rule inet ferrolb-split-test input udp dport {MEMBERSHIP_PORT} drop"),
            format!("add rule inet ferrolb-split-test output udp dport {MEMBERSHIP_PORT} drop"),
        ]
    } else {
        vec!["delete table inet ferrolb-split-test".into()]
    };
    for command in &commands {
        lab.exec(node, &["nft", command])?;
    }
    Ok(())
}

/// A new LoadBalancer Service for the web pods (named `prefix`-N) whose IP (IPv4) another node than `not`
/// announces; returns its name, the IP and its owner.
async fn service_owned_elsewhere(lab: &Lab, prefix: &str, not: &str) -> anyhow::Result<(String, String, String)> {
    for i in 1..=8 {
        let name = format!("{prefix}-{i}");
        lab.apply_yaml(&format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  type: \
             LoadBalancer\n  selector: {{app: web}}\n  ports: [{{port: 80, targetPort: 8080}}]\n"
        ))?;
        let ip = wait_for(&format!("an IP for {name}"), SOON, || async {
            let ips = lab.kubectl(&["get", "svc", &name, "-o", "jsonpath={.status.loadBalancer.ingress[*].ip}"])?;
            Ok(ips.split_whitespace().find(|ip| !ip.contains(':')).map(str::to_owned))
        })
        .await?;
        let owner = wait_for(&format!("an owner for {ip}"), SOON, || async { lab.recorded_owner(&ip) }).await?;
        if owner != not {
            return Ok((name, ip, owner));
        }
    }
    anyhow::bail!("eight new Services, none announced by another node than {not}")
}

/// The membership splits while the LAN still carries ARP: `cut`, the demo IP's owner, loses UDP on the
/// membership port to and from the others, so each side believes the other died and places every IP
/// without it. `cut` claims an IP another node owns (it ranks lower for it), and that node's side claims
/// the demo IP (`cut` ranks higher). Each pair settles by rank through signed announcements: the client
/// watching both IPs sees two MACs answer for no more than 2 s, both sides count the split claims and say so
/// in a `MembershipSplit` Event. Once the cut heals, nothing moves: no takeover, the same owners, one MAC.
async fn a_split_membership_settles_to_one_mac_per_ip_and_heals_with_no_move(lab: &Lab) -> anyhow::Result<()> {
    all_members(lab).await?;
    let cut = lab.recorded_owner(IP)?.ok_or_else(|| anyhow::anyhow!("no owner"))?;
    let (_, other_ip, other_owner) = service_owned_elsewhere(lab, "split", &cut).await?;
    let owners = [(IP.to_owned(), cut.clone()), (other_ip.clone(), other_owner.clone())];
    for (ip, owner) in &owners {
        lab.wait_answered_by(ip, owner).await?;
    }
    let rest: Vec<&str> = NODES.iter().copied().filter(|n| *n != cut).collect();
    let mut watches = Vec::new();
    for (ip, _) in &owners {
        watches.push(lab.watch_arp(ip).await?);
    }
    const SPLIT_CLAIMS: &str = "ferrolb_speaker_membership_split_claims_total";
    let claims_before = (lab.speaker_metric(&cut, SPLIT_CLAIMS)?, lab.speaker_metric(&other_owner, SPLIT_CLAIMS)?);

    cut_membership(lab, &cut, true)?;
    wait_for("the membership to split", SOON, || async {
        let mut split = lab.speaker_metric(&cut, "ferrolb_speaker_membership_size")? == 1.0;
        for node in &rest {
            split &= lab.speaker_metric(node, "ferrolb_speaker_membership_size")? == 2.0;
        }
        Ok(split.then_some(()))
    })
    .await?;
    // The cut-off node hears the other owner defend its IP; the other owner hears the cut-off node's claim.
    wait_for("both sides to hear the other's claims", SOON, || async {
        let cut_heard = lab.speaker_metric(&cut, SPLIT_CLAIMS)? > claims_before.0;
        let other_heard = lab.speaker_metric(&other_owner, SPLIT_CLAIMS)? > claims_before.1;
        Ok((cut_heard && other_heard).then_some(()))
    })
    .await?;
    let events = wait_for("MembershipSplit Events from both sides", SOON, || async {
        let events = lab.kubectl(&[
            "get",
            "events",
            "-A",
            "--field-selector",
            "reason=MembershipSplit",
            "-o",
            "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}",
        ])?;
        let from = |node: &str| events.lines().any(|l| l.contains(&format!("({node} sees: ")));
        Ok((from(&cut) && from(&other_owner)).then_some(events))
    })
    .await?;
    // Settled: the split runs on while the client keeps asking (each owner answers 50 requests a second).
    let takeovers = lab.speakers_total(3, TAKEOVERS)?;
    answers_more(lab, &cut, 250.0, "the split to run settled for a few seconds").await?;
    assert_eq!(lab.speakers_total(3, TAKEOVERS)?, takeovers, "an IP moved while the split was settled");

    cut_membership(lab, &cut, false)?;
    all_members(lab).await?;
    for (ip, owner) in &owners {
        lab.wait_answered_by(ip, owner).await?;
        let recorded = wait_for(&format!("{ip}'s record after the heal"), SOON, || async {
            Ok(lab.recorded_owner(ip)?.filter(|o| o == owner))
        })
        .await?;
        assert_eq!(&recorded, owner);
    }
    assert_eq!(lab.speakers_total(3, TAKEOVERS)?, takeovers, "an IP moved when the split healed");
    let mut reports = Vec::new();
    for watch in watches {
        reports.push(watch.finish().await?);
    }
    for ((ip, _), arp) in owners.iter().zip(&reports) {
        assert_answered(arp, 95, &format!("for {ip} during the split"))?;
        let two_macs_ms = arp["two_macs_rounds"].as_u64().unwrap_or(u64::MAX).saturating_mul(ARP_ROUND_MS);
        assert!(two_macs_ms <= 2000, "two MACs answered for {ip} for {two_macs_ms} ms during the split: {arp}");
        assert!(arp["max_gap_ms"].as_u64().unwrap_or(u64::MAX) < 2000, "{ip} went unanswered: {arp}");
    }
    eprintln!(
        "split: {cut} cut off; {IP} (kept by {cut}) ARP {}; {other_ip} (kept by {other_owner}) ARP {}\n{events}",
        reports[0], reports[1]
    );
    Ok(())
}

/// A host on the LAN (the client) starts using an address a speaker announces and says so with gratuitous
/// ARPs. The first is defended once (RFC 5227): the owner sends one gratuitous announcement and keeps the
/// address. The second, a moment later, is a conflict: the owner stops answering, an AddressConflict names
/// the host's MAC, the Service gets a Warning saying what happened and the controller gives it another
/// address, which the speakers announce.
async fn a_host_taking_an_announced_ip_is_defended_once_then_reported_as_a_conflict(lab: &Lab) -> anyhow::Result<()> {
    let (service, ip, owner) = service_owned_elsewhere(lab, "claimed", "").await?;
    let (owner_mac, client_mac) = (lab.node_mac(&owner)?, lab.mac("client", "eth0")?);
    let garp = repo_root().join("hack/lab.d/garp.py");
    let garp = garp.to_str().expect("utf-8 path");
    const DEFENCES: &str = "ferrolb_speaker_defences_sent_total";
    let defences = lab.speaker_metric(&owner, DEFENCES)?;
    lab.exec("client", &["python3", garp, "eth0", &ip])?;
    wait_for(&format!("{owner} to defend {ip}"), SOON, || async {
        Ok((lab.speaker_metric(&owner, DEFENCES)? > defences).then_some(()))
    })
    .await?;
    assert_eq!(lab.arp_answers(&ip)?, [owner_mac.as_str()], "{owner} still answers for {ip} after one claim");
    assert!(lab.kubectl(&["get", "addressconflicts", "-o", "name"])?.is_empty(), "one claim is no conflict");

    lab.exec("client", &["python3", garp, "eth0", &ip])?;
    let conflict = wait_for("the AddressConflict", SOON, || async {
        let found = lab.kubectl(&[
            "get",
            "addressconflicts",
            "-o",
            "jsonpath={range .items[*]}{.spec.ip}/{.spec.mac}/{.spec.node}{\"\\n\"}{end}",
        ])?;
        Ok(found.lines().find(|l| l.starts_with(&format!("{ip}/"))).map(str::to_owned))
    })
    .await?;
    assert_eq!(conflict, format!("{ip}/{client_mac}/{owner}"), "the record names the host and the finder");
    let moved = wait_for(&format!("{service} to get another address"), SOON, || async {
        let ips = lab.kubectl(&["get", "svc", &service, "-o", "jsonpath={.status.loadBalancer.ingress[*].ip}"])?;
        Ok(ips.split_whitespace().find(|i| !i.contains(':') && *i != ip).map(str::to_owned))
    })
    .await?;
    assert!(lab.arp_answers(&ip)?.iter().all(|m| *m != owner_mac), "{owner} still answers for the taken {ip}");
    let new_owner = wait_for(&format!("an owner for {moved}"), SOON, || async { lab.recorded_owner(&moved) }).await?;
    lab.wait_answered_by(&moved, &new_owner).await?;
    let events = lab.kubectl(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={service},reason=AddressConflict"),
        "-o",
        "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}",
    ])?;
    assert!(
        events.contains(&format!("{ip} is claimed by another host on the LAN: {client_mac} sent a gratuitous ARP")),
        "{events}"
    );
    Ok(())
}

/// A speaker restarted with a membership key nobody else has (a node whose Secret differs) is alone in its
/// membership, but it hears the others under a key it lacks and knows it is outvoted: it announces nothing.
/// The others report it missing and carry on: one MAC per IP throughout, no takeover, no conflict. With the
/// right key again it rejoins and takes its IPs back.
async fn a_speaker_with_a_wrong_key_disturbs_nobody(lab: &Lab) -> anyhow::Result<()> {
    all_members(lab).await?;
    let wrong = lab.recorded_owner(IP)?.ok_or_else(|| anyhow::anyhow!("no owner"))?;
    let key = lab.dir().join("wrong-membership.key");
    std::fs::write(&key, "c29tZSBvdGhlciBrZXkgdGhhdCBubyBvdGhlciBzcGVha2VyIGhvbGRzIQ==\n")?;
    let key = key.to_str().expect("utf-8 path").to_owned();
    let watch = lab.watch_arp(IP).await?;
    restart_speaker_with(lab, &wrong, &[("LAB_MEMBERSHIP_KEY_FILE", &key)])?;
    wait_for(&format!("{wrong} to know its key is the wrong one"), SOON, || async {
        Ok((lab.speaker_metric(&wrong, "ferrolb_speaker_membership_outvoted")? == 1.0).then_some(()))
    })
    .await?;
    let new_owner = wait_for(&format!("{IP} to move off {wrong}"), SOON, || async {
        Ok(lab.recorded_owner(IP)?.filter(|o| *o != wrong))
    })
    .await?;
    // A while with the wrong key (each other speaker answers the client's requests meanwhile).
    answers_more(lab, &new_owner, 150.0, "the others to run on for a few seconds").await?;
    assert_eq!(lab.speaker_metric(&wrong, "ferrolb_speaker_owned_ips")?, 0.0, "{wrong} announces with a wrong key");
    assert!(lab.kubectl(&["get", "addressconflicts", "-o", "name"])?.lines().all(|l| !l.contains("198-51-100-192")));
    restart_speaker(lab, &wrong)?;
    all_members(lab).await?;
    let mac = lab.node_mac(&wrong)?;
    wait_for(&format!("{wrong} to take {IP} back"), SOON, || async {
        Ok((lab.recorded_owner(IP)?.as_deref() == Some(wrong.as_str()) && lab.arp_answers(IP)? == [mac.clone()])
            .then_some(()))
    })
    .await?;
    let arp = watch.finish().await?;
    assert_eq!(arp["two_macs_rounds"], 0, "two MACs answered while {wrong} had a wrong key: {arp}");
    assert_answered(&arp, 90, &format!("while {wrong} had a wrong key"))?;
    Ok(())
}
