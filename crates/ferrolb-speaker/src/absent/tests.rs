//! When a missing speaker is reported, repeated, and cleared.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::*;
use crate::desired::Selector;

fn node(name: &str, labels: &[(&str, &str)]) -> NodeInfo {
    NodeInfo {
        name: name.into(),
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        network_unavailable: false,
        unschedulable: false,
        not_ready: false,
    }
}

fn everywhere() -> Advertisement {
    Advertisement { pools: BTreeSet::new(), pool_selectors: vec![], node_selectors: vec![], interfaces: vec![] }
}

fn edge_only() -> Advertisement {
    let edge = Selector { match_labels: [("edge".to_owned(), "yes".to_owned())].into(), ..Default::default() };
    Advertisement { node_selectors: vec![edge], ..everywhere() }
}

fn view(members: &[&str]) -> View {
    View { members: members.iter().map(|m| m.to_string()).collect(), settled: true, ..View::default() }
}

fn three() -> Vec<NodeInfo> {
    vec![node("node-1", &[]), node("node-2", &[]), node("node-3", &[])]
}

fn absent(node: &str, present: usize, expected: usize) -> Notice {
    Notice::Absent { node: node.into(), present, expected }
}

/// A tracker that has already seen every node present, so nothing is inherited.
fn started(t0: Instant, nodes: &[NodeInfo], ads: &[Advertisement]) -> AbsenceTracker {
    let mut tracker = AbsenceTracker::default();
    let all: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(tracker.observe(t0, nodes, ads, &view(&all)), vec![]);
    tracker
}

#[test]
fn a_missing_node_is_reported_after_the_grace_period_not_before() {
    let t0 = Instant::now();
    let (nodes, ads) = (three(), vec![everywhere()]);
    let mut tracker = started(t0, &nodes, &ads);
    let v = view(&["node-1", "node-2"]);
    assert_eq!(tracker.observe(t0 + Duration::from_secs(1), &nodes, &ads, &v), vec![]);
    assert_eq!(tracker.next_change(t0), Some(t0 + Duration::from_secs(1) + GRACE));
    assert_eq!(tracker.observe(t0 + Duration::from_secs(10), &nodes, &ads, &v), vec![]);
    assert_eq!(tracker.observe(t0 + Duration::from_secs(11), &nodes, &ads, &v), vec![absent("node-3", 2, 3)]);
    // Reported once, not on every pass.
    assert_eq!(tracker.observe(t0 + Duration::from_secs(12), &nodes, &ads, &v), vec![]);
}

#[test]
fn a_restart_within_the_grace_period_raises_nothing() {
    let t0 = Instant::now();
    let (nodes, ads) = (three(), vec![everywhere()]);
    let mut tracker = started(t0, &nodes, &ads);
    assert_eq!(tracker.observe(t0 + Duration::from_secs(1), &nodes, &ads, &view(&["node-1", "node-2"])), vec![]);
    let all = view(&["node-1", "node-2", "node-3"]);
    assert_eq!(tracker.observe(t0 + Duration::from_secs(5), &nodes, &ads, &all), vec![]);
    assert_eq!(tracker.next_change(t0), None);
}

#[test]
fn the_warning_repeats_while_the_node_stays_missing() {
    let t0 = Instant::now();
    let (nodes, ads) = (three(), vec![everywhere()]);
    let mut tracker = started(t0, &nodes, &ads);
    let v = view(&["node-1", "node-2"]);
    tracker.observe(t0, &nodes, &ads, &v);
    let reported = t0 + GRACE;
    assert_eq!(tracker.observe(reported, &nodes, &ads, &v), vec![absent("node-3", 2, 3)]);
    assert_eq!(tracker.next_change(t0), Some(reported + REPEAT));
    assert_eq!(tracker.observe(reported + REPEAT - Duration::from_secs(1), &nodes, &ads, &v), vec![]);
    assert_eq!(tracker.observe(reported + REPEAT, &nodes, &ads, &v), vec![absent("node-3", 2, 3)]);
    assert_eq!(tracker.next_change(t0), Some(reported + REPEAT + REPEAT));
}

#[test]
fn a_reported_node_coming_back_is_announced() {
    let t0 = Instant::now();
    let (nodes, ads) = (three(), vec![everywhere()]);
    let mut tracker = started(t0, &nodes, &ads);
    let v = view(&["node-1", "node-2"]);
    tracker.observe(t0, &nodes, &ads, &v);
    tracker.observe(t0 + GRACE, &nodes, &ads, &v);
    let back = tracker.observe(t0 + Duration::from_secs(42), &nodes, &ads, &view(&["node-1", "node-2", "node-3"]));
    assert_eq!(back, vec![Notice::Joined { node: "node-3".into(), away: Duration::from_secs(42) }]);
    assert_eq!(tracker.next_change(t0), None);
}

#[test]
fn nodes_no_advertisement_selects_are_not_expected() {
    let t0 = Instant::now();
    let nodes = vec![node("node-1", &[("edge", "yes")]), node("node-2", &[])];
    let ads = vec![edge_only()];
    let mut tracker = started(t0, &nodes, &ads);
    let alone = view(&["node-1"]);
    tracker.observe(t0, &nodes, &ads, &alone);
    assert_eq!(tracker.observe(t0 + GRACE + GRACE, &nodes, &ads, &alone), vec![]);
    // No L2Advertisement at all: nobody is expected.
    assert_eq!(tracker.observe(t0 + GRACE + GRACE, &nodes, &[], &view(&[])), vec![]);
}

#[test]
fn excluded_and_network_unavailable_nodes_are_not_expected() {
    let t0 = Instant::now();
    let mut nodes = vec![node("node-1", &[]), node("node-2", &[(EXCLUDE_LABEL, "")]), node("node-3", &[])];
    nodes[2].network_unavailable = true;
    let ads = vec![everywhere()];
    let mut tracker = started(t0, &nodes, &ads);
    let alone = view(&["node-1"]);
    tracker.observe(t0, &nodes, &ads, &alone);
    assert_eq!(tracker.observe(t0 + GRACE + GRACE, &nodes, &ads, &alone), vec![]);
    assert_eq!(expected_nodes(&nodes, &ads), BTreeSet::from(["node-1"]));
}

#[test]
fn a_reported_node_that_is_excluded_or_deleted_is_cleared() {
    let t0 = Instant::now();
    let (mut nodes, ads) = (three(), vec![everywhere()]);
    let mut tracker = started(t0, &nodes, &ads);
    let v = view(&["node-1", "node-2"]);
    tracker.observe(t0, &nodes, &ads, &v);
    tracker.observe(t0 + GRACE, &nodes, &ads, &v);
    nodes[2].labels.insert(EXCLUDE_LABEL.into(), String::new());
    let cleared = tracker.observe(t0 + GRACE + GRACE, &nodes, &ads, &v);
    let why = "the Node is labelled node.kubernetes.io/exclude-from-external-load-balancers";
    assert_eq!(cleared, vec![Notice::NotExpected { node: "node-3".into(), why }]);

    let (nodes, ads) = (three(), vec![everywhere()]);
    let mut tracker = started(t0, &nodes, &ads);
    tracker.observe(t0, &nodes, &ads, &v);
    tracker.observe(t0 + GRACE, &nodes, &ads, &v);
    let cleared = tracker.observe(t0 + GRACE + GRACE, &nodes[..2], &ads, &v);
    assert_eq!(cleared, vec![Notice::NotExpected { node: "node-3".into(), why: "the Node is gone" }]);
}

#[test]
fn nothing_is_reported_before_the_view_settles() {
    let t0 = Instant::now();
    let (nodes, ads) = (three(), vec![everywhere()]);
    let mut tracker = AbsenceTracker::default();
    let unsettled = View { members: ["node-1".to_owned()].into(), settled: false, ..View::default() };
    assert_eq!(tracker.observe(t0, &nodes, &ads, &unsettled), vec![]);
    assert_eq!(tracker.observe(t0 + GRACE + GRACE, &nodes, &ads, &unsettled), vec![]);
    assert_eq!(tracker.next_change(t0), None);
    // Settled with everyone: still nothing, and the unsettled time does not count as missing.
    assert_eq!(tracker.observe(t0 + GRACE + GRACE, &nodes, &ads, &view(&["node-1", "node-2", "node-3"])), vec![]);
}

#[test]
fn a_node_missing_from_the_first_view_is_announced_when_it_returns_even_before_the_grace() {
    // Another janitor may have reported it before this speaker started.
    let t0 = Instant::now();
    let (nodes, ads) = (three(), vec![everywhere()]);
    let mut tracker = AbsenceTracker::default();
    assert_eq!(tracker.observe(t0, &nodes, &ads, &view(&["node-1", "node-2"])), vec![]);
    let back = tracker.observe(t0 + Duration::from_secs(2), &nodes, &ads, &view(&["node-1", "node-2", "node-3"]));
    assert_eq!(back, vec![Notice::Joined { node: "node-3".into(), away: Duration::from_secs(2) }]);
}

#[test]
fn notes_say_who_saw_what_and_what_to_check() {
    assert_eq!(
        absent("node-3", 2, 3).note("node-1", 7947),
        "speaker not in the membership seen by node-1 (2 of 3 expected speakers present): not running, \
         UDP 7947 blocked, or another membership key"
    );
    let joined = Notice::Joined { node: "node-3".into(), away: Duration::from_secs(754) };
    assert_eq!(joined.note("node-1", 7947), "speaker in the membership seen by node-1 again after 12m");
    assert_eq!((joined.reason().as_str(), joined.reason().warning()), (REASON_JOINED, false));
    assert_eq!((absent("n", 1, 1).reason().as_str(), absent("n", 1, 1).reason().warning()), (REASON_ABSENT, true));
}
