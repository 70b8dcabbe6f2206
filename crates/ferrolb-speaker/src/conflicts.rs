//! Address conflict detection: before a node first announces an IP, it asks the LAN whether someone already
//! has it (RFC 5227's ARP probe from 0.0.0.0; for IPv6, a duplicate address detection solicitation from
//! `::`). A host that answers is a conflict: the IP is not announced, an `AddressConflict` record tells the
//! controller to hand it to nobody (the Service gets another address), and the node that found it checks
//! again every so often, deleting the record once nobody answers.
//!
//! The same holds for a conflict found while announcing ([`crate::split`] hands those in): the IP is
//! withheld, recorded and re-checked the same way.
//!
//! Only new addresses are probed: an IP this speaker saw announced (by any node) or found in use when it
//! started is taken over without probing, so a failover never waits, and a restarted speaker does not
//! probe the IPs it announced a moment ago. An IP that leaves every Service is forgotten; handed out again
//! later, it is probed again.
//!
//! Pure: the caller runs the probes ([`ProbeOrder`]) and passes their results ([`ProbeResult`]) and the
//! records back in on a later pass.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_api::{AddressConflictSpec, address_conflict_name};
use ferrolb_packet::Mac;

use crate::desired::{ExternalIp, Placement};
use crate::wake::wake;

/// How long past its window a probe may take to report before the IP is announced anyway (a probe that
/// never reports must not keep an IP dark).
pub const PROBE_GRACE: Duration = Duration::from_secs(2);

/// The probe's timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSettings {
    /// How long a probe listens for an answer (three probes are sent across it).
    pub window: Duration,
    /// How often the node that found a conflict checks whether it is gone.
    pub recheck: Duration,
}

/// A probe to run: for `ip`, on these interfaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOrder {
    /// The address.
    pub ip: IpAddr,
    /// The interfaces to probe on.
    pub interfaces: Vec<String>,
    /// A re-check of a known conflict (else the probe before a first announcement).
    pub recheck: bool,
}

/// Who answered a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The hardware address that answered.
    pub mac: Mac,
    /// Where.
    pub interface: String,
}

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    /// The address.
    pub ip: IpAddr,
    /// The first answer, if any.
    pub answer: Option<Answer>,
    /// It was a re-check.
    pub recheck: bool,
}

/// An `AddressConflict` that exists, as the tracker reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictRecord {
    /// The address.
    pub ip: IpAddr,
    /// The node that found it.
    pub node: String,
    /// The interface it was found on.
    pub interface: String,
    /// The version read (deletes carry it).
    pub resource_version: Option<String>,
}

/// An `AddressConflict` write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConflictWrite {
    /// Create (or replace) the record.
    Apply {
        /// Object name.
        name: String,
        /// Its spec.
        spec: AddressConflictSpec,
    },
    /// Delete it if it is still at `resource_version`.
    Delete {
        /// Object name.
        name: String,
        /// The version read.
        resource_version: Option<String>,
    },
}

/// What the tracker reads on one pass.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// This node.
    pub me: &'a str,
    /// Whether this node is the janitor (it re-checks conflicts whose finder left the membership).
    pub janitor: bool,
    /// Live members.
    pub live: &'a BTreeSet<String>,
    /// Every external IP in use.
    pub ips: &'a [ExternalIp],
    /// The placement of every IP this pass.
    pub placed: &'a BTreeMap<IpAddr, Placement>,
    /// The IPs this node would announce, with their interfaces.
    pub mine: &'a BTreeMap<IpAddr, Vec<String>>,
    /// The interfaces this node has, with their networks (for a re-check whose interface is gone).
    pub links: &'a [crate::l2::Link],
    /// The `AddressConflict` records that exist.
    pub records: &'a [ConflictRecord],
    /// Probe results since the last pass.
    pub results: &'a [ProbeResult],
    /// Conflicts found on IPs this node announces (another host claimed one twice, [`crate::split`]).
    pub found_while_announcing: &'a [(IpAddr, Answer)],
    /// The wall-clock time, RFC 3339, for a new record.
    pub wall_clock: &'a str,
}

/// What the tracker decided on one pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// IPs this node would announce but must not (being probed, or in conflict).
    pub withhold: BTreeSet<IpAddr>,
    /// Probes to start.
    pub probes: Vec<ProbeOrder>,
    /// Conflicts found in this pass (for the Events and the metric).
    pub found: Vec<(IpAddr, Answer)>,
    /// Record writes.
    pub writes: Vec<ConflictWrite>,
    /// When the next pass must run at the latest.
    pub wake_at: Option<Instant>,
}

/// What the speaker remembers about conflicts from one pass to the next.
#[derive(Debug, Default)]
pub struct ConflictTracker {
    /// IPs announced by some node, or in use when this speaker started; `None` before the first settled pass.
    known: Option<BTreeSet<IpAddr>>,
    /// First-announcement probes in flight, since when.
    probing: BTreeMap<IpAddr, Instant>,
    /// Conflicts this node found, for as long as the IP stays in use.
    found: BTreeMap<IpAddr, Answer>,
    /// Re-checks in flight, since when.
    rechecking: BTreeMap<IpAddr, Instant>,
    /// When each record this node looks after is checked next.
    next_recheck: BTreeMap<IpAddr, Instant>,
}

impl ConflictTracker {
    /// One pass, on a settled view (before it settles nothing is placed, so nothing is decided).
    pub fn decide(&mut self, seen: &Observed<'_>, settings: ProbeSettings, now: Instant) -> Decision {
        let mut decision = Decision::default();
        let in_use: BTreeSet<IpAddr> = seen.ips.iter().map(|e| e.ip).collect();
        let known = self.known.get_or_insert_with(|| in_use.clone());
        let records: BTreeMap<IpAddr, &ConflictRecord> = seen.records.iter().map(|r| (r.ip, r)).collect();

        // Conflicts found in this pass: answered first-announcement probes, and claims while announcing.
        let mut found_now: Vec<(IpAddr, &Answer)> = Vec::new();
        for result in seen.results {
            if result.recheck {
                self.rechecking.remove(&result.ip);
                self.next_recheck.insert(result.ip, now + settings.recheck);
                if let (None, Some(record)) = (&result.answer, records.get(&result.ip)) {
                    decision.writes.push(ConflictWrite::Delete {
                        name: address_conflict_name(result.ip),
                        resource_version: record.resource_version.clone(),
                    });
                }
                continue;
            }
            if self.probing.remove(&result.ip).is_none() {
                continue; // the IP left in the meantime
            }
            match &result.answer {
                None => {
                    known.insert(result.ip);
                }
                Some(answer) => found_now.push((result.ip, answer)),
            }
        }
        found_now
            .extend(seen.found_while_announcing.iter().filter(|(ip, _)| in_use.contains(ip)).map(|(ip, a)| (*ip, a)));
        for (ip, answer) in found_now {
            if self.found.contains_key(&ip) {
                continue; // already reported (a probe never runs for such an IP)
            }
            self.found.insert(ip, answer.clone());
            decision.found.push((ip, answer.clone()));
            decision.writes.push(record_write(seen, ip, answer));
            // The first check that it is gone comes one interval from now.
            self.next_recheck.insert(ip, now + settings.recheck);
        }

        // What another node announces is known: taking it over later is a handover, not a new address.
        for (ip, placement) in seen.placed {
            if matches!(placement, Placement::OtherOwner(_)) && !self.probing.contains_key(ip) {
                known.insert(*ip);
            }
        }
        for (ip, interfaces) in seen.mine {
            if records.contains_key(ip) || self.found.contains_key(ip) {
                decision.withhold.insert(*ip);
            } else if known.contains(ip) {
                // Announced as usual.
            } else if let Some(started) = self.probing.get(ip) {
                let deadline = *started + settings.window + PROBE_GRACE;
                if now >= deadline {
                    known.insert(*ip);
                } else {
                    decision.withhold.insert(*ip);
                    wake(&mut decision.wake_at, deadline);
                }
            } else {
                self.probing.insert(*ip, now);
                decision.probes.push(ProbeOrder { ip: *ip, interfaces: interfaces.clone(), recheck: false });
                decision.withhold.insert(*ip);
                wake(&mut decision.wake_at, now + settings.window + PROBE_GRACE);
            }
        }

        // Re-checks: the finder looks after its records, the janitor after those whose finder left.
        let responsible = |r: &ConflictRecord| r.node == seen.me || (seen.janitor && !seen.live.contains(&r.node));
        for record in seen.records.iter().filter(|r| responsible(r)) {
            if let Some(started) = self.rechecking.get(&record.ip) {
                if now < *started + settings.window + PROBE_GRACE {
                    continue;
                }
                self.rechecking.remove(&record.ip); // never reported: try again
            }
            let due = *self.next_recheck.entry(record.ip).or_insert(now + settings.recheck);
            if now < due {
                wake(&mut decision.wake_at, due);
                continue;
            }
            let interfaces = recheck_interfaces(record, seen.links);
            if interfaces.is_empty() {
                self.next_recheck.insert(record.ip, now + settings.recheck);
                continue;
            }
            self.rechecking.insert(record.ip, now);
            decision.probes.push(ProbeOrder { ip: record.ip, interfaces, recheck: true });
            wake(&mut decision.wake_at, now + settings.window + PROBE_GRACE);
        }

        // A conflict found here whose record never appeared (the API was away longer than the writer
        // retries): written again each interval, or the controller would never move the Service.
        for (ip, answer) in self.found.iter().filter(|(ip, _)| in_use.contains(ip) && !records.contains_key(ip)) {
            let due = self.next_recheck.entry(*ip).or_insert(now + settings.recheck);
            if now < *due {
                wake(&mut decision.wake_at, *due);
                continue;
            }
            *due = now + settings.recheck;
            decision.writes.push(record_write(seen, *ip, answer));
        }

        // Forget what is no longer in use or recorded; an address handed out again is probed again.
        known.retain(|ip| in_use.contains(ip));
        self.probing.retain(|ip, _| in_use.contains(ip));
        self.found.retain(|ip, _| in_use.contains(ip) || records.contains_key(ip));
        self.rechecking.retain(|ip, _| records.contains_key(ip));
        self.next_recheck.retain(|ip, _| records.contains_key(ip) || self.found.contains_key(ip));
        decision
    }
}

/// The `AddressConflict` for `ip`, found by this node now.
fn record_write(seen: &Observed<'_>, ip: IpAddr, answer: &Answer) -> ConflictWrite {
    let services = seen.ips.iter().find(|e| e.ip == ip).map(|e| e.services.clone());
    ConflictWrite::Apply {
        name: address_conflict_name(ip),
        spec: AddressConflictSpec {
            ip: ip.to_string(),
            mac: answer.mac.to_string(),
            node: seen.me.to_owned(),
            interface: answer.interface.clone(),
            detected: seen.wall_clock.to_owned(),
            services: services.into_iter().flatten().collect(),
        },
    }
}

/// Where to re-check `record`: its interface if this node has it, else the interfaces on the IP's subnet.
fn recheck_interfaces(record: &ConflictRecord, links: &[crate::l2::Link]) -> Vec<String> {
    if links.iter().any(|l| l.name == record.interface) {
        return vec![record.interface.clone()];
    }
    links.iter().filter(|l| l.networks.iter().any(|n| n.contains(&record.ip))).map(|l| l.name.clone()).collect()
}

/// The Warning Event's note for a conflict `me` found.
pub fn conflict_note(me: &str, ip: IpAddr, answer: &Answer) -> String {
    let how = if ip.is_ipv4() { "ARP probe" } else { "duplicate address detection" };
    format!(
        "{ip} is already in use on the LAN: {} answered {me}'s {how} on {}; not announcing it (the controller \
         assigns another address; kubectl get addressconflicts)",
        answer.mac, answer.interface
    )
}

/// The Warning Event's note for a conflict `me` found while announcing the IP.
pub fn found_while_announcing_note(me: &str, ip: IpAddr, answer: &Answer) -> String {
    let what = if ip.is_ipv4() { "gratuitous ARP" } else { "neighbour advertisement" };
    format!(
        "{ip} is claimed by another host on the LAN: {} sent a {what} for it on {} again after {me} defended it; \
         no longer announcing it (the controller assigns another address; kubectl get addressconflicts)",
        answer.mac, answer.interface
    )
}

#[cfg(test)]
mod tests;
