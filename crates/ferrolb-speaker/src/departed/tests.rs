use super::*;

fn node(name: &str, not_ready: bool) -> NodeInfo {
    NodeInfo { name: name.into(), labels: BTreeMap::new(), network_unavailable: false, unschedulable: false, not_ready }
}

fn view(members: &[&str], settled: bool) -> View {
    View { members: members.iter().map(|m| (*m).to_owned()).collect(), settled, ..View::default() }
}

fn names(set: BTreeSet<String>) -> Vec<String> {
    set.into_iter().collect()
}

#[test]
fn a_member_that_leaves_is_departed_until_it_rejoins() {
    let nodes = [node("a", false), node("b", false), node("c", false)];
    let mut departures = Departures::default();
    assert!(departures.observe(&view(&["a", "b", "c"], true), &nodes).is_empty());
    assert_eq!(names(departures.observe(&view(&["a", "c"], true), &nodes)), ["b"]);
    assert_eq!(names(departures.observe(&view(&["a", "c"], true), &nodes)), ["b"], "it stays departed");
    assert!(departures.observe(&view(&["a", "b", "c"], true), &nodes).is_empty(), "it rejoined");
}

#[test]
fn nodes_never_seen_and_unsettled_views_depart_nothing() {
    let nodes = [node("a", false), node("b", false), node("no-speaker", false)];
    let mut departures = Departures::default();
    // Before the view settles this speaker may believe it is alone.
    assert!(departures.observe(&view(&["a"], false), &nodes).is_empty());
    assert!(departures.observe(&view(&["a", "b"], true), &nodes).is_empty(), "no-speaker was never a member");
    assert_eq!(names(departures.observe(&view(&["a"], true), &nodes)), ["b"]);
    // An unsettled view changes nothing.
    assert_eq!(names(departures.observe(&view(&["a"], false), &nodes)), ["b"]);
}

#[test]
fn a_deleted_node_is_forgotten() {
    let mut departures = Departures::default();
    departures.observe(&view(&["a", "b"], true), &[node("a", false), node("b", false)]);
    assert!(departures.observe(&view(&["a"], true), &[node("a", false)]).is_empty());
    // Created again with the same name, it must be a member first before it can depart.
    assert!(departures.observe(&view(&["a"], true), &[node("a", false), node("b", false)]).is_empty());
}

#[test]
fn a_node_kubernetes_saw_not_ready_then_ready_is_taken_back() {
    let mut departures = Departures::default();
    departures.observe(&view(&["a", "b"], true), &[node("a", false), node("b", false)]);
    let live = view(&["a"], true);
    assert_eq!(names(departures.observe(&live, &[node("a", false), node("b", false)])), ["b"]);
    assert_eq!(names(departures.observe(&live, &[node("a", false), node("b", true)])), ["b"], "NotReady");
    // Its kubelet is back while its speaker stays away: Kubernetes says its pods are worth trying.
    assert!(departures.observe(&live, &[node("a", false), node("b", false)]).is_empty());
    assert!(departures.observe(&live, &[node("a", false), node("b", false)]).is_empty(), "until it joins again");
}
