//! Which speakers are missing from the membership: nodes that should be announcing (some L2Advertisement or
//! BGPAdvertisement selects them, they are not excluded by label and not NetworkUnavailable) but whose speaker is not a live
//! member. Placement silently skips such a node; this module turns it into Events on the Node, so
//! `ferrolb status` can name it without the speaker reading or writing anything more than Events.
//!
//! Pure: the caller passes the clock in, wakes up at [`AbsenceTracker::next_change`] and publishes the
//! returned [`Notice`]s only if it is the janitor (the first live member by name), so each change gives one
//! Event, not one per speaker. Every speaker still runs the tracker, so a new janitor knows what was
//! reported. A node counts as missing only once the view has settled and after [`GRACE`], so a restarting
//! speaker raises nothing; while it stays missing the Warning is repeated every [`REPEAT`], which lets a
//! reader tell a current problem from an old one.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::desired::{Advertisement, EXCLUDE_LABEL, NodeInfo};
use crate::events::Reason;
use crate::membership::View;

/// How long an expected node must be missing before it is reported (a restart takes a few seconds).
pub const GRACE: Duration = Duration::from_secs(10);

/// How often the Warning is repeated while the node stays missing.
pub const REPEAT: Duration = Duration::from_secs(600);

/// Warning Event reason: the node's speaker is not in the membership.
pub const REASON_ABSENT: &str = "SpeakerNotInMembership";

/// Normal Event reason: a reported node's speaker is back in the membership.
pub const REASON_JOINED: &str = "SpeakerJoinedMembership";

/// Normal Event reason: a reported node no longer needs a speaker (deleted, excluded, or not selected).
pub const REASON_NOT_EXPECTED: &str = "SpeakerNoLongerExpected";

/// Something to tell operators about one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The node's speaker is missing (first report, or a repeat).
    Absent {
        /// The node.
        node: String,
        /// How many expected nodes this speaker's view holds (itself included).
        present: usize,
        /// How many nodes are expected.
        expected: usize,
    },
    /// A reported node's speaker is a member again.
    Joined {
        /// The node.
        node: String,
        /// How long it was missing, as far as this speaker saw.
        away: Duration,
    },
    /// A reported node is no longer expected to run a speaker.
    NotExpected {
        /// The node.
        node: String,
        /// Why: the Node is gone, excluded, NetworkUnavailable, or selected by no L2Advertisement.
        why: &'static str,
    },
}

impl Notice {
    /// The Node the Event is about.
    pub fn node(&self) -> &str {
        match self {
            Notice::Absent { node, .. } | Notice::Joined { node, .. } | Notice::NotExpected { node, .. } => node,
        }
    }

    /// The Event reason.
    pub fn reason(&self) -> Reason {
        match self {
            Notice::Absent { .. } => Reason::SpeakerNotInMembership,
            Notice::Joined { .. } => Reason::SpeakerJoinedMembership,
            Notice::NotExpected { .. } => Reason::SpeakerNoLongerExpected,
        }
    }

    /// The Event note, as written by speaker `reporter` whose membership listens on UDP `port`.
    pub fn note(&self, reporter: &str, port: u16) -> String {
        match self {
            Notice::Absent { present, expected, .. } => format!(
                "speaker not in the membership seen by {reporter} ({present} of {expected} expected speakers \
                 present): not running, UDP {port} blocked, or another membership key"
            ),
            Notice::Joined { away, .. } => {
                format!("speaker in the membership seen by {reporter} again after {}", human(*away))
            }
            Notice::NotExpected { why, .. } => format!("speaker no longer expected in the membership: {why}"),
        }
    }
}

/// Remembers since when each expected node has been missing and when it was last reported.
#[derive(Debug, Default)]
pub struct AbsenceTracker {
    missing: BTreeMap<String, Missing>,
    started: bool,
}

#[derive(Debug)]
struct Missing {
    since: Instant,
    reported_at: Option<Instant>,
    /// Missing already in this speaker's first settled view: another janitor may have reported it, so its
    /// return is announced even if this speaker never reported it.
    inherited: bool,
}

impl AbsenceTracker {
    /// Records the view at `now` and returns what to report.
    pub fn observe(
        &mut self,
        now: Instant,
        nodes: &[NodeInfo],
        advertisements: &[Advertisement],
        view: &View,
    ) -> Vec<Notice> {
        // Before the view settles this speaker may believe it is alone: everyone would look missing.
        if !view.settled {
            return Vec::new();
        }
        let inherited = !self.started;
        self.started = true;
        let expected = expected_nodes(nodes, advertisements);
        let missing_now: BTreeSet<&str> = expected.iter().copied().filter(|n| !view.members.contains(*n)).collect();
        let mut notices = Vec::new();
        self.missing.retain(|node, m| {
            if missing_now.contains(node.as_str()) {
                return true;
            }
            if m.reported_at.is_some() || m.inherited {
                notices.push(if expected.contains(node.as_str()) {
                    Notice::Joined { node: node.clone(), away: now.saturating_duration_since(m.since) }
                } else {
                    Notice::NotExpected { node: node.clone(), why: why_not_expected(node, nodes, advertisements) }
                });
            }
            false
        });
        let present = expected.len() - missing_now.len();
        for node in missing_now {
            let m = self.missing.entry(node.to_owned()).or_insert(Missing { since: now, reported_at: None, inherited });
            let due = match m.reported_at {
                None => now >= m.since + GRACE,
                Some(at) => now >= at + REPEAT,
            };
            if due {
                m.reported_at = Some(now);
                notices.push(Notice::Absent { node: node.to_owned(), present, expected: expected.len() });
            }
        }
        notices
    }

    /// When a missing node is next due to be reported after `now`, so the caller must call [`Self::observe`]
    /// again.
    pub fn next_change(&self, now: Instant) -> Option<Instant> {
        self.missing
            .values()
            .map(|m| m.reported_at.map_or(m.since + GRACE, |at| at + REPEAT))
            .filter(|t| *t > now)
            .min()
    }
}

/// Nodes that should run a live speaker: not excluded, not NetworkUnavailable, selected by an L2Advertisement.
pub fn expected_nodes<'a>(nodes: &'a [NodeInfo], advertisements: &[Advertisement]) -> BTreeSet<&'a str> {
    nodes.iter().filter(|n| not_expected_because(n, advertisements).is_none()).map(|n| n.name.as_str()).collect()
}

fn not_expected_because(node: &NodeInfo, advertisements: &[Advertisement]) -> Option<&'static str> {
    if node.labels.contains_key(EXCLUDE_LABEL) {
        Some("the Node is labelled node.kubernetes.io/exclude-from-external-load-balancers")
    } else if node.network_unavailable {
        Some("the Node is NetworkUnavailable")
    } else if !advertisements.iter().any(|a| a.selects(node)) {
        Some("no L2Advertisement selects the Node")
    } else {
        None
    }
}

fn why_not_expected(name: &str, nodes: &[NodeInfo], advertisements: &[Advertisement]) -> &'static str {
    match nodes.iter().find(|n| n.name == name) {
        None => "the Node is gone",
        Some(node) => not_expected_because(node, advertisements).unwrap_or("it is expected"),
    }
}

/// A duration as people read it: `42s`, `12m`, `3h`.
fn human(d: Duration) -> String {
    match d.as_secs() {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s => format!("{}h", s / 3600),
    }
}

#[cfg(test)]
mod tests;
