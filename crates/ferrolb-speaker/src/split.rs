//! Settling claims another MAC makes on an IP this node announces: the one place the speaker looks at the
//! wire rather than at the membership to decide who answers.
//!
//! Responders hear every ARP frame and neighbour advertisement for the IPs they watch; the loop checks who
//! signed each ([`crate::membership::signed_frames`]) and hands them here as [`HeardClaim`]s. Three kinds:
//!
//! - **Signed by a live member** (or by this node, from another interface): a handover the views have not
//!   both seen yet. Ignored; the membership settles it. But a split starts the same way, as the other side
//!   usually declares this node dead a moment before this node declares it dead. So when this node ranks
//!   higher than the claimer, the claim is kept for [`HANDOVER_WINDOW`] and defended the moment its signer
//!   leaves the view. (Never the other way: yielding to a member that then left might be yielding to a dead
//!   node; the winner's defence makes the lower side yield soon enough.)
//! - **Signed by a speaker outside this node's view**: the membership is split while the LAN still carries
//!   ARP, and both sides placed the IP. Both sides rank the pair the same way ([`election::owner`] over the
//!   two names, the ranking placement uses), so the higher one keeps the IP and sends one signed defence (at
//!   most one a second), and the lower one *yields*: it stops answering, remembers the winner's MAC, and
//!   probes for the IP every second. The winner answers the probes; the yield lasts while it does. It ends
//!   when the winner joins this node's view (placement then picks the winner already, since the winner of a
//!   pair is the one the whole membership would choose, so healing moves nothing), when the IP is no longer
//!   placed here, or when the winner stops answering for [`YIELD_TIMEOUT`] (it died: this node takes the IP
//!   back).
//! - **Unsigned**: another host on the LAN. RFC 5227's defend-once rule: the first claim gets one defence;
//!   a second within [`DEFEND_INTERVAL`] is an address conflict, handed to [`crate::conflicts`] as if a probe
//!   had found it (the IP is withheld and the controller moves the Service).
//!
//! A claim signed under a key this node does not hold, naming one of the cluster's nodes, counts as that
//! node's: a speaker of this cluster with another key (a rotation under way, or a wrong key, which the
//! membership keeps from announcing unless it has the majority). Naming a node the cluster does not have,
//! it is another cluster's speaker: another host.
//!
//! Pure: the caller sends the defences and probes ([`Settlement`]) and feeds the next claims back in.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_packet::Mac;

use crate::conflicts::Answer;
use crate::election;
use crate::membership::signed_frames::Signer;
use crate::wake::wake;

/// RFC 5227's DEFEND_INTERVAL: at most one defence per IP this often, and a second foreign claim within it
/// is a conflict.
pub const DEFEND_INTERVAL: Duration = Duration::from_secs(10);

/// At most one defence against a split-membership claim per IP this often.
pub const SPLIT_DEFENCE_INTERVAL: Duration = Duration::from_secs(1);

/// How often a yielding node probes for the IP (the winner's answers keep the yield).
pub const YIELD_PROBE_EVERY: Duration = Duration::from_secs(1);

/// How long a claim by a live member is kept, in case the member leaves the view (a split starting).
pub const HANDOVER_WINDOW: Duration = Duration::from_secs(2);

/// How long a yield lasts without an answer from the winner.
pub const YIELD_TIMEOUT: Duration = Duration::from_secs(3);

/// A claim another MAC made on a watched IP, with the cluster speaker that signed it, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeardClaim {
    /// The address claimed.
    pub ip: IpAddr,
    /// The MAC claiming it.
    pub mac: Mac,
    /// Where it was heard.
    pub interface: String,
    /// Who signed it; `None`: unsigned, or a forgery.
    pub signer: Option<Signer>,
}

impl HeardClaim {
    /// The cluster node that made the claim, if a speaker of this cluster did (see the module doc).
    fn speaker<'a>(&'a self, nodes: &BTreeSet<String>) -> Option<&'a String> {
        match &self.signer {
            Some(Signer::Verified(node)) => Some(node),
            Some(Signer::OtherKey(node)) => nodes.contains(node).then_some(node),
            None => None,
        }
    }
}

/// What the tracker reads on one pass.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// This node.
    pub me: &'a str,
    /// The live members of this node's view.
    pub live: &'a BTreeSet<String>,
    /// Every node of the cluster (the Node objects).
    pub nodes: &'a BTreeSet<String>,
    /// The IPs placed here to announce this pass, with their interfaces.
    pub placed_here: &'a BTreeMap<IpAddr, Vec<String>>,
    /// The IPs this node announced after the last pass (only those can be defended).
    pub announced: &'a BTreeSet<IpAddr>,
    /// Claims heard since the last pass.
    pub heard: &'a [HeardClaim],
}

/// Two sides of a split that claimed one IP, for the Event and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitClaim {
    /// The IP.
    pub ip: IpAddr,
    /// The other speaker, outside this node's view.
    pub other: String,
    /// Whether this node keeps the IP (it ranks higher) or yields it.
    pub kept: bool,
}

/// What the tracker decided on one pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settlement {
    /// IPs placed here that must not be answered (yielded).
    pub withhold: BTreeSet<IpAddr>,
    /// The yielded IPs with their interfaces, whose claims the responders keep hearing.
    pub yielded: BTreeMap<IpAddr, Vec<String>>,
    /// IPs to defend now with one gratuitous announcement.
    pub defend: Vec<IpAddr>,
    /// Yielded IPs to probe now.
    pub probe: BTreeMap<IpAddr, Vec<String>>,
    /// Address conflicts found while announcing (a second foreign claim within the defend interval).
    pub conflicts: Vec<(IpAddr, Answer)>,
    /// Split-membership claims settled for the first time in this split (one Event each).
    pub splits: Vec<SplitClaim>,
    /// How many claims signed by a speaker outside the view were heard (the metric).
    pub split_claims: u64,
    /// When the next pass must run at the latest (the next probe, a yield running out).
    pub wake_at: Option<Instant>,
}

/// A yield to another speaker.
#[derive(Debug, Clone)]
struct Yield {
    winner: String,
    mac: Mac,
    heard: Instant,
    probed: Instant,
}

/// What the speaker remembers about claims from one pass to the next.
#[derive(Debug, Default)]
pub struct SplitTracker {
    /// When each IP was last defended.
    defended: BTreeMap<IpAddr, Instant>,
    /// The first unanswered foreign claim on each IP, for defend-once.
    foreign: BTreeMap<IpAddr, Instant>,
    /// IPs yielded to a speaker outside the view.
    yielded: BTreeMap<IpAddr, Yield>,
    /// (IP, other speaker) pairs already reported in this split.
    reported: BTreeSet<(IpAddr, String)>,
    /// Claims by live members, ignored as handovers, kept for [`HANDOVER_WINDOW`].
    handovers: BTreeMap<IpAddr, (HeardClaim, Instant)>,
}

impl SplitTracker {
    /// One pass.
    pub fn settle(&mut self, seen: &Observed<'_>, now: Instant) -> Settlement {
        let mut out = Settlement::default();
        // A handover whose signer has left the view since was the start of a split.
        self.handovers.retain(|ip, (_, at)| {
            now < *at + HANDOVER_WINDOW && seen.placed_here.contains_key(ip) && seen.announced.contains(ip)
        });
        let started: Vec<HeardClaim> = self
            .handovers
            .values()
            .filter(|(claim, _)| claim.speaker(seen.nodes).is_some_and(|n| !seen.live.contains(n)))
            .map(|(claim, _)| claim.clone())
            .collect();
        for claim in seen.heard.iter().chain(&started) {
            if let Some(y) = self.yielded.get_mut(&claim.ip) {
                if claim.mac == y.mac {
                    y.heard = now;
                }
                continue;
            }
            if !seen.placed_here.contains_key(&claim.ip) || !seen.announced.contains(&claim.ip) {
                continue;
            }
            match claim.speaker(seen.nodes) {
                Some(node) if node == seen.me => {}
                Some(node) if seen.live.contains(node) => {
                    if outranks(claim.ip, seen.me, node) {
                        self.handovers.insert(claim.ip, (claim.clone(), now));
                    }
                }
                Some(node) => {
                    self.handovers.remove(&claim.ip);
                    out.split_claims += 1;
                    let kept = outranks(claim.ip, seen.me, node);
                    if kept {
                        self.defend(claim.ip, SPLIT_DEFENCE_INTERVAL, now, &mut out);
                    } else {
                        let y = Yield { winner: node.clone(), mac: claim.mac, heard: now, probed: now };
                        self.yielded.insert(claim.ip, y);
                    }
                    if self.reported.insert((claim.ip, node.clone())) {
                        out.splits.push(SplitClaim { ip: claim.ip, other: node.clone(), kept });
                    }
                }
                None => {
                    let second = self.foreign.get(&claim.ip).is_some_and(|first| now < *first + DEFEND_INTERVAL);
                    if second {
                        self.foreign.remove(&claim.ip);
                        let answer = Answer { mac: claim.mac, interface: claim.interface.clone() };
                        out.conflicts.push((claim.ip, answer));
                    } else {
                        self.foreign.insert(claim.ip, now);
                        self.defend(claim.ip, DEFEND_INTERVAL, now, &mut out);
                    }
                }
            }
        }

        // Yields last while the winner answers, is outside the view and the IP is still placed here.
        self.yielded.retain(|ip, y| {
            seen.placed_here.contains_key(ip) && !seen.live.contains(&y.winner) && now < y.heard + YIELD_TIMEOUT
        });
        for (ip, y) in &mut self.yielded {
            let interfaces = seen.placed_here.get(ip).cloned().unwrap_or_default();
            if now >= y.probed + YIELD_PROBE_EVERY {
                y.probed = now;
                out.probe.insert(*ip, interfaces.clone());
            }
            out.withhold.insert(*ip);
            out.yielded.insert(*ip, interfaces);
            wake(&mut out.wake_at, (y.probed + YIELD_PROBE_EVERY).min(y.heard + YIELD_TIMEOUT));
        }

        // A pair is reported again in a later split, once the other speaker has been seen live in between.
        self.reported.retain(|(ip, node)| !seen.live.contains(node) && seen.placed_here.contains_key(ip));
        self.defended.retain(|_, at| now < *at + DEFEND_INTERVAL);
        self.foreign.retain(|ip, at| now < *at + DEFEND_INTERVAL && seen.placed_here.contains_key(ip));
        out
    }

    /// Defends `ip` unless it was defended less than `interval` ago.
    fn defend(&mut self, ip: IpAddr, interval: Duration, now: Instant, out: &mut Settlement) {
        if self.defended.get(&ip).is_some_and(|at| now < *at + interval) || out.defend.contains(&ip) {
            return;
        }
        self.defended.insert(ip, now);
        out.defend.push(ip);
    }
}

/// Whether `me` ranks higher than `other` for `ip`, as placement ranks them.
fn outranks(ip: IpAddr, me: &str, other: &str) -> bool {
    election::owner(ip, [me, other]) == Some(me)
}

/// The Warning Event's note for a split claim `me` settled, naming what each side sees.
pub fn split_note(me: &str, claim: &SplitClaim, live: &BTreeSet<String>) -> String {
    let members = live.iter().map(String::as_str).collect::<Vec<_>>().join(", ");
    let outcome = if claim.kept {
        format!("{me} ranks higher for it, keeps it and defended it; {} yields", claim.other)
    } else {
        format!("{} ranks higher for it; {me} yields it and answers again if {} stops", claim.other, claim.other)
    };
    format!(
        "the speaker membership is split: {other} announced {ip} although {me} places it on itself, and {other} \
         is not in {me}'s membership ({me} sees: {members}); {outcome}. Check UDP on the membership port \
         between the nodes",
        other = claim.other,
        ip = claim.ip,
    )
}

#[cfg(test)]
mod tests;
