//! `ferrolb status`: one screen that answers "which node holds this IP?" and "why is this Service pending?".
//!
//! Reads pools, LoadBalancer Services, L2Announcements, Warning Events and the speakers' membership Events on
//! Nodes, and for BGP the peers, advertisements, BGPSessions, Nodes and EndpointSlices; builds a [`Report`],
//! and prints it with [`render`] (pure, so the layout is unit-tested). Read-only: it never writes to the
//! cluster.

mod bgp;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Context;
use ferrolb_api::k8s::{EndpointSlice, Node};
use ferrolb_api::k8s::{Event, jiff};
use ferrolb_api::k8s::{ResourceExt, Service};
use ferrolb_api::{
    AddressConflict, BGPAdvertisement, BGPPeer, BGPSession, CONDITION_OVERLAPPING, IPAddressPool, L2Announcement,
    handles_service, ingress_ips, namespaced_key, service_key,
};
use ferrolb_speaker::absent::{REASON_ABSENT, REASON_JOINED, REASON_NOT_EXPECTED, REPEAT};
use ferrolb_speaker::bgp::overview::{Objects, bgp_advertisers};
use kube::Api;
use kube::api::ListParams;

use crate::cli::ClusterArgs;

/// One pool line.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolRow {
    /// Pool name.
    pub name: String,
    /// Its address entries.
    pub addresses: Vec<String>,
    /// Assigned addresses (decimal; IPv6 counts can exceed 64 bits).
    pub assigned: String,
    /// Available addresses.
    pub available: String,
}

/// One Service line.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRow {
    /// `namespace/name`.
    pub service: String,
    /// Its external IPs with the announcing node, if any.
    pub ips: Vec<(String, Option<String>)>,
    /// Why it is pending (the latest Warning Event), when it has no IP.
    pub pending: Option<String>,
}

/// Everything `ferrolb status` prints.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// Pools by name.
    pub pools: Vec<PoolRow>,
    /// LoadBalancer Services handled by ferrolb.
    pub services: Vec<ServiceRow>,
    /// Every node's BGP sessions.
    pub sessions: Vec<bgp::SessionRow>,
    /// Problems an operator should look at.
    pub problems: Vec<String>,
}

fn usage_bar(assigned: &str, available: &str) -> String {
    let (Ok(a), Ok(v)) = (assigned.parse::<u128>(), available.parse::<u128>()) else { return "?".into() };
    let total = a.saturating_add(v);
    if total == 0 {
        return "[--------------------]   -".into();
    }
    // Precision does not matter for a bar; f64 holds a /64's size well enough.
    #[allow(clippy::cast_precision_loss)]
    let fraction = a as f64 / total as f64;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let filled = ((fraction * 20.0).round() as usize).min(20);
    format!("[{}{}] {:>3.0}%", "#".repeat(filled), "-".repeat(20 - filled), fraction * 100.0)
}

fn table(out: &mut String, rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// The text of a report.
pub fn render(report: &Report) -> String {
    let mut out = String::from("POOLS\n");
    let mut rows = vec![["NAME", "ADDRESSES", "ASSIGNED", "AVAILABLE", "USAGE"].map(String::from).to_vec()];
    for p in &report.pools {
        rows.push(vec![
            p.name.clone(),
            p.addresses.join(","),
            p.assigned.clone(),
            p.available.clone(),
            usage_bar(&p.assigned, &p.available),
        ]);
    }
    table(&mut out, &rows);
    out.push_str("\nSERVICES\n");
    let mut rows = vec![["SERVICE", "EXTERNAL-IP", "NODE"].map(String::from).to_vec()];
    for s in &report.services {
        if s.ips.is_empty() {
            let why = s.pending.clone().unwrap_or_else(|| "waiting for the controller".into());
            rows.push(vec![s.service.clone(), "<pending>".into(), why]);
        }
        for (i, (ip, node)) in s.ips.iter().enumerate() {
            let name = if i == 0 { s.service.clone() } else { String::new() };
            rows.push(vec![name, ip.clone(), node.clone().unwrap_or_else(|| "<not announced>".into())]);
        }
    }
    table(&mut out, &rows);
    if !report.sessions.is_empty() {
        out.push_str("\nBGP SESSIONS\n");
        let mut rows = vec![["NODE", "PEER", "ADDRESS", "STATE", "PREFIXES", "LAST ERROR"].map(String::from).to_vec()];
        for s in &report.sessions {
            rows.push(vec![
                s.node.clone(),
                s.peer.clone(),
                s.address.clone(),
                s.state.clone(),
                s.prefixes.to_string(),
                s.last_error.clone().unwrap_or_default(),
            ]);
        }
        table(&mut out, &rows);
    }
    if report.problems.is_empty() {
        out.push_str("\nNo problems found.\n");
    } else {
        out.push_str("\nPROBLEMS\n");
        for p in &report.problems {
            let _ = writeln!(out, "- {p}");
        }
    }
    out
}

/// What [`report`] reads.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// Every IPAddressPool.
    pub pools: &'a [IPAddressPool],
    /// Every Service.
    pub services: &'a [Service],
    /// Every L2Announcement.
    pub records: &'a [L2Announcement],
    /// Warning Events (any object).
    pub warnings: &'a [Event],
    /// The speakers' membership Events on Nodes (Warning and Normal).
    pub membership: &'a [Event],
    /// Every Node.
    pub nodes: &'a [Node],
    /// Every EndpointSlice.
    pub slices: &'a [EndpointSlice],
    /// Every BGPPeer.
    pub bgp_peers: &'a [BGPPeer],
    /// Every BGPAdvertisement.
    pub bgp_advertisements: &'a [BGPAdvertisement],
    /// Every BGPSession.
    pub bgp_sessions: &'a [BGPSession],
    /// Every AddressConflict.
    pub conflicts: &'a [AddressConflict],
    /// The loadBalancerClass handled.
    pub class: &'a str,
    /// Whether Services without a class are handled.
    pub unclassed: bool,
    /// The current time, to tell a current missing speaker from an old report.
    pub now: jiff::Timestamp,
}

/// How old a missing-speaker Warning may be and still count: the speakers repeat it every [`REPEAT`] while
/// the node stays missing, and a stopped repeat means the janitor saw it come back or no one is watching.
const MISSING_FRESH: std::time::Duration = REPEAT.saturating_add(std::time::Duration::from_secs(300));

/// When an Event happened (the last time, for a series).
fn event_time(ev: &Event) -> Option<jiff::Timestamp> {
    ev.series
        .as_ref()
        .map(|s| s.last_observed_time.0)
        .or_else(|| ev.event_time.as_ref().map(|t| t.0))
        .or_else(|| ev.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// One problem line per Node whose newest membership Event is a fresh "not in the membership" Warning.
fn missing_speakers(membership: &[Event], now: jiff::Timestamp) -> Vec<String> {
    let reasons = [REASON_ABSENT, REASON_JOINED, REASON_NOT_EXPECTED];
    let mut newest: BTreeMap<&str, (jiff::Timestamp, &Event)> = BTreeMap::new();
    for ev in membership.iter().filter(|e| e.reason.as_deref().is_some_and(|r| reasons.contains(&r))) {
        let Some(node) = ev.regarding.as_ref().filter(|r| r.kind.as_deref() == Some("Node")) else { continue };
        let (Some(node), Some(when)) = (node.name.as_deref(), event_time(ev)) else { continue };
        if newest.get(node).is_none_or(|(t, _)| *t < when) {
            newest.insert(node, (when, ev));
        }
    }
    let fresh_after = now.checked_sub(MISSING_FRESH).unwrap_or(now);
    newest
        .into_iter()
        .filter(|(_, (when, ev))| ev.reason.as_deref() == Some(REASON_ABSENT) && *when >= fresh_after)
        .map(|(node, (when, ev))| {
            let note = ev.note.as_deref().unwrap_or("speaker not in the membership");
            format!("{node}: {note} (reported at {} UTC)", when.strftime("%H:%M:%S"))
        })
        .collect()
}

/// How long a `MembershipSplit` Warning counts as current: the split it reports may have healed since.
const SPLIT_FRESH: std::time::Duration = std::time::Duration::from_secs(600);

/// At most this many split lines, newest first (a split over many IPs gives an Event per IP and side).
const SPLIT_LINES: usize = 5;

/// One problem line per recent `MembershipSplit` Warning (distinct notes, newest first).
fn split_memberships(warnings: &[Event], now: jiff::Timestamp) -> Vec<String> {
    let reason = ferrolb_speaker::events::Reason::MembershipSplit.as_str();
    let fresh_after = now.checked_sub(SPLIT_FRESH).unwrap_or(now);
    let mut recent: Vec<(jiff::Timestamp, &str)> = warnings
        .iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| Some((event_time(e)?, e.note.as_deref()?)))
        .filter(|(when, _)| *when >= fresh_after)
        .collect();
    recent.sort_by(|a, b| b.cmp(a));
    let mut seen = std::collections::BTreeSet::new();
    recent.retain(|(_, note)| seen.insert(*note));
    let more = recent.len().saturating_sub(SPLIT_LINES);
    let mut lines: Vec<String> = recent
        .iter()
        .take(SPLIT_LINES)
        .map(|(when, note)| format!("{note} (reported at {} UTC)", when.strftime("%H:%M:%S")))
        .collect();
    if more > 0 {
        lines.push(format!(
            "{more} more MembershipSplit Warnings (kubectl get events -A --field-selector reason={reason})"
        ));
    }
    lines
}

/// Builds the report from the objects read.
pub fn report(inputs: &Inputs<'_>) -> Report {
    let Inputs { pools, services, records, warnings, membership, class, unclassed, now, .. } = *inputs;
    let advertisers = bgp_advertisers(&Objects {
        services,
        nodes: inputs.nodes,
        slices: inputs.slices,
        pools,
        peers: inputs.bgp_peers,
        advertisements: inputs.bgp_advertisements,
        sessions: inputs.bgp_sessions,
        class,
        unclassed,
    });
    let mut problems = Vec::new();
    let pool_rows = pools
        .iter()
        .map(|p| {
            let status = p.status.clone().unwrap_or_default();
            for c in status.conditions.iter().filter(|c| c.type_ == CONDITION_OVERLAPPING && c.status == "True") {
                problems.push(format!("pool {}: {}", p.name_any(), c.message));
            }
            PoolRow {
                name: p.name_any(),
                addresses: p.spec.addresses.clone(),
                assigned: status.assigned.unwrap_or_else(|| "0".into()),
                available: status.available.unwrap_or_else(|| "?".into()),
            }
        })
        .collect();
    let owners: BTreeMap<&str, &str> = records.iter().map(|r| (r.spec.ip.as_str(), r.spec.node.as_str())).collect();
    // The newest Warning per Service.
    let mut latest: BTreeMap<String, (&Event, Option<jiff::Timestamp>)> = BTreeMap::new();
    for ev in warnings {
        let Some(regarding) = ev.regarding.as_ref().filter(|r| r.kind.as_deref() == Some("Service")) else { continue };
        let key = namespaced_key(
            regarding.namespace.as_deref().unwrap_or_default(),
            regarding.name.as_deref().unwrap_or_default(),
        );
        let when = event_time(ev);
        if latest.get(&key).is_none_or(|(_, w)| *w < when) {
            latest.insert(key, (ev, when));
        }
    }
    let mut service_rows = Vec::new();
    for svc in services.iter().filter(|s| s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")) {
        if !handles_service(svc, class, unclassed) {
            continue;
        }
        let key = service_key(svc);
        let ips: Vec<(String, Option<String>)> = ingress_ips(svc)
            .into_iter()
            .map(|ip| {
                let l2 = owners.get(ip.to_string().as_str()).map(|n| (*n).to_owned());
                let bgp = advertisers
                    .get(&ip)
                    .filter(|nodes| !nodes.is_empty())
                    .map(|nodes| format!("bgp: {}", nodes.iter().map(String::as_str).collect::<Vec<_>>().join(",")));
                let owner = match (l2, bgp) {
                    (Some(l2), Some(bgp)) => Some(format!("{l2}; {bgp}")),
                    (l2, bgp) => l2.or(bgp),
                };
                (ip.to_string(), owner)
            })
            .collect();
        let warning = latest.get(&key).and_then(|(ev, _)| ev.note.clone());
        if ips.is_empty() {
            problems.push(format!("{key} is pending: {}", warning.clone().unwrap_or_else(|| "no Event yet".into())));
        }
        for (ip, owner) in &ips {
            if owner.is_none() {
                let why = warning.clone().unwrap_or_else(|| "no node has recorded it yet".into());
                problems.push(format!("{ip} ({key}) is not announced: {why}"));
            }
        }
        service_rows.push(ServiceRow { service: key, pending: if ips.is_empty() { warning } else { None }, ips });
    }
    problems.extend(missing_speakers(membership, now));
    problems.extend(split_memberships(warnings, now));
    let sessions = bgp::session_rows(inputs.bgp_sessions);
    problems.extend(bgp::session_problems(&sessions));
    problems.extend(inputs.conflicts.iter().map(|c| {
        let s = &c.spec;
        format!(
            "{} is answered by another host on the LAN ({} on {}'s {}, since {}): handed out to no Service until \
             it stops",
            s.ip, s.mac, s.node, s.interface, s.detected
        )
    }));
    Report { pools: pool_rows, services: service_rows, sessions, problems }
}

/// Runs the subcommand.
pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let client = ferrolb_runtime::client(args.kubeconfig.as_deref()).await?;
    let lp = ListParams::default();
    let pools = Api::<IPAddressPool>::all(client.clone()).list(&lp).await.context("listing IPAddressPools")?;
    let services = Api::<Service>::all(client.clone()).list(&lp).await.context("listing Services")?;
    let records = Api::<L2Announcement>::all(client.clone()).list(&lp).await.context("listing L2Announcements")?;
    let warnings = Api::<Event>::all(client.clone())
        .list(&ListParams::default().fields("type=Warning"))
        .await
        .context("listing Warning Events")?;
    // By reason: a field selector cannot say "any of", and listing every Normal Event could be large.
    let mut membership = Vec::new();
    for reason in [REASON_ABSENT, REASON_JOINED, REASON_NOT_EXPECTED] {
        let events = Api::<Event>::all(client.clone())
            .list(&ListParams::default().fields(&format!("reason={reason}")))
            .await
            .with_context(|| format!("listing {reason} Events"))?;
        membership.extend(events.items);
    }
    let nodes = Api::<Node>::all(client.clone()).list(&lp).await.context("listing Nodes")?;
    let slices = Api::<EndpointSlice>::all(client.clone()).list(&lp).await.context("listing EndpointSlices")?;
    let bgp_peers = Api::<BGPPeer>::all(client.clone()).list(&lp).await.context("listing BGPPeers")?;
    let bgp_advertisements =
        Api::<BGPAdvertisement>::all(client.clone()).list(&lp).await.context("listing BGPAdvertisements")?;
    let bgp_sessions = Api::<BGPSession>::all(client.clone()).list(&lp).await.context("listing BGPSessions")?;
    let conflicts = Api::<AddressConflict>::all(client.clone()).list(&lp).await.context("listing AddressConflicts")?;
    let report = report(&Inputs {
        pools: &pools.items,
        services: &services.items,
        records: &records.items,
        warnings: &warnings.items,
        membership: &membership,
        nodes: &nodes.items,
        slices: &slices.items,
        bgp_peers: &bgp_peers.items,
        bgp_advertisements: &bgp_advertisements.items,
        bgp_sessions: &bgp_sessions.items,
        conflicts: &conflicts.items,
        class: &args.load_balancer_class,
        unclassed: !args.ignore_unclassed,
        now: jiff::Timestamp::now(),
    });
    print!("{}", render(&report));
    Ok(())
}

#[cfg(test)]
mod tests;
