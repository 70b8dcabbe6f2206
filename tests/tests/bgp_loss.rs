//! BGP with BFD under packet loss, on a lab of real nodes (`hack/lab up --bgp`): with 5% of the packets
//! between the router and the nodes dropped at random (nftables `numgen random` on the router's LAN
//! interface, both directions, every protocol), the default BFDProfile holds every session up for 10 minutes.
//!
//! Long by nature, so ignored by a plain `cargo test`: `hack/test --long` runs it (CI does).
//! `FERROLB_LOSS_MINUTES` shortens or lengthens the soak while trying it out.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ferrolb_api::DEFAULT_BFD_INTERVAL_MS;
use ferrolb_e2e::{Lab, node_address, wait_for};
use serde_json::Value;

const ROLL: Duration = Duration::from_secs(180);
const NODES: [&str; 3] = ["node-1", "node-2", "node-3"];
/// The nodes' LAN addresses, the router's BGP and BFD peers (its IPv6 neighbours stay idle: the lab's
/// BGPPeer is IPv4).
fn node_addresses() -> Vec<String> {
    NODES.iter().map(|n| node_address(n, false)).collect()
}
const LOSS_PERCENT: u32 = 5;

/// The router's nftables table: `LOSS_PERCENT` of what enters and leaves its LAN interface is dropped, and
/// counted (so the test knows the loss was real).
fn loss_table() -> String {
    format!(
        "table inet ferrolb_loss {{\n\
         \tchain input {{ type filter hook input priority -300; iifname \"eth0\" counter name seen_in; \
         iifname \"eth0\" numgen random mod 100 < {LOSS_PERCENT} counter name dropped_in drop; }}\n\
         \tchain output {{ type filter hook output priority -300; oifname \"eth0\" counter name seen_out; \
         oifname \"eth0\" numgen random mod 100 < {LOSS_PERCENT} counter name dropped_out drop; }}\n\
         \tcounter seen_in {{}}\n\tcounter dropped_in {{}}\n\tcounter seen_out {{}}\n\tcounter dropped_out {{}}\n\
         }}\n"
    )
}

#[tokio::test]
#[ignore = "a 10-minute soak: hack/test --long runs it"]
async fn the_default_bfd_profile_holds_every_session_through_ten_minutes_of_five_percent_loss() -> anyhow::Result<()> {
    let minutes: f64 = std::env::var("FERROLB_LOSS_MINUTES").ok().and_then(|m| m.parse().ok()).unwrap_or(10.0);
    let lab = Lab::start(3, &["--bgp"]).await?;
    let profile = lab.kubectl(&["get", "bfdprofile", "lab", "-o", "jsonpath={.spec}"])?;
    assert!(matches!(profile.trim(), "" | "{}"), "the lab's profile is the default one: {profile}");

    wait_for("every session Established with BFD Up, on both sides", ROLL, || async {
        for node in NODES {
            let status = session_status(&lab, node)?;
            if status["state"] != "Established" || status["bfd"] != "Up" {
                return Ok(None);
            }
        }
        Ok((router_bfd(&lab)?.values().filter(|p| p.up).count() == NODES.len()).then_some(()))
    })
    .await?;
    let before = Snapshot::take(&lab)?;

    let table = lab.dir().join("loss.nft");
    std::fs::write(&table, loss_table())?;
    lab.exec("router", &["nft", "-f", &table.display().to_string()])?;
    let soak = Duration::from_secs_f64(minutes * 60.0);
    let started = Instant::now();
    eprintln!("dropping {LOSS_PERCENT}% of the router's LAN packets for {soak:?}");
    // Not a sleep as synchronisation: the soak is the test. It is checked every few seconds so a flap fails
    // at once, with the state it left.
    while started.elapsed() < soak {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Snapshot::take(&lab)?.assert_unchanged_from(&before, started.elapsed())?;
    }
    let (seen, dropped) = loss_counters(&lab)?;
    lab.exec("router", &["nft", "delete", "table", "inet", "ferrolb_loss"])?;

    let share = dropped as f64 / seen.max(1) as f64 * 100.0;
    eprintln!("{dropped} of {seen} packets dropped ({share:.2}%) in {:?}; no session went down", started.elapsed());
    // Every session sends a packet each way every DEFAULT_BFD_INTERVAL_MS; most of them must have passed.
    let bfd_packets =
        NODES.len() as f64 * 2.0 * started.elapsed().as_secs_f64() * 1000.0 / f64::from(DEFAULT_BFD_INTERVAL_MS);
    assert!(seen as f64 > 0.8 * bfd_packets, "the router's LAN carried {seen} packets, BFD alone {bfd_packets:.0}");
    assert!((3.0..=7.0).contains(&share), "the loss was {share:.2}%, not about {LOSS_PERCENT}%");
    Ok(())
}

/// node's BGPSession status with the router.
fn session_status(lab: &Lab, node: &str) -> anyhow::Result<Value> {
    let json = lab.kubectl(&["get", "bgpsession", "-n", "ferrolb-system", &format!("{node}.router"), "-o", "json"])?;
    Ok(serde_json::from_str::<Value>(&json)?["status"].clone())
}

/// The router's BFD view of one node.
#[derive(Debug, PartialEq, Eq)]
struct RouterBfd {
    up: bool,
    session_downs: u64,
}

/// The router's BFD peers, by node address.
fn router_bfd(lab: &Lab) -> anyhow::Result<BTreeMap<String, RouterBfd>> {
    let peers = lab.vtysh_json("show bfd peers json")?;
    let counters = lab.vtysh_json("show bfd peers counters json")?;
    let nodes = node_addresses();
    let mut out = BTreeMap::new();
    for peer in peers.as_array().into_iter().flatten() {
        let Some(address) = peer["peer"].as_str().filter(|a| nodes.iter().any(|n| n == a)) else { continue };
        let session_downs = counters
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["peer"] == address)
            .and_then(|c| c["session-down"].as_u64())
            .unwrap_or(0);
        out.insert(address.to_owned(), RouterBfd { up: peer["status"] == "up", session_downs });
    }
    Ok(out)
}

/// The router's nftables counters: packets seen and dropped on its LAN interface, both directions.
fn loss_counters(lab: &Lab) -> anyhow::Result<(u64, u64)> {
    let json: Value = serde_json::from_str(
        &lab.exec("router", &["nft", "-j", "list", "counters", "table", "inet", "ferrolb_loss"])?,
    )?;
    let mut by_name = BTreeMap::new();
    for item in json["nftables"].as_array().into_iter().flatten() {
        let counter = &item["counter"];
        if let (Some(name), Some(packets)) = (counter["name"].as_str(), counter["packets"].as_u64()) {
            by_name.insert(name.to_owned(), packets);
        }
    }
    let get = |name: &str| by_name.get(name).copied().unwrap_or(0);
    Ok((get("seen_in") + get("seen_out"), get("dropped_in") + get("dropped_out")))
}

/// What must not change during the soak: each side's record of every session.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    /// The speakers' view: per node, the BGP state, the BFD state, when the session was established and how
    /// often BFD went down (`ferrolb_speaker_bgp_bfd_downs_total`).
    speakers: BTreeMap<String, (String, String, String, u64)>,
    /// The router's view: its BFD peers and how often each went down, and its BGP neighbours'
    /// established-connection counts.
    router_bfd: BTreeMap<String, RouterBfd>,
    router_bgp: BTreeMap<String, (String, u64)>,
}

impl Snapshot {
    fn take(lab: &Lab) -> anyhow::Result<Snapshot> {
        let mut speakers = BTreeMap::new();
        for node in NODES {
            let status = session_status(lab, node)?;
            let text = |key: &str| status[key].as_str().unwrap_or("").to_owned();
            let downs = lab.speaker_metric(node, "ferrolb_speaker_bgp_bfd_downs_total{peer=\"router\"}")? as u64;
            speakers.insert(node.to_owned(), (text("state"), text("bfd"), text("establishedSince"), downs));
        }
        let neighbors = lab.vtysh_json("show bgp neighbors json")?;
        let router_bgp = neighbors
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(address, _)| node_addresses().contains(address))
            .map(|(address, n)| {
                let state = n["bgpState"].as_str().unwrap_or("").to_owned();
                (address.clone(), (state, n["connectionsEstablished"].as_u64().unwrap_or(0)))
            })
            .collect();
        Ok(Snapshot { speakers, router_bfd: router_bfd(lab)?, router_bgp })
    }

    fn assert_unchanged_from(&self, before: &Snapshot, after: Duration) -> anyhow::Result<()> {
        anyhow::ensure!(
            self == before,
            "a session changed {after:?} into the loss:\nbefore: {before:#?}\nnow: {self:#?}"
        );
        Ok(())
    }
}
