use std::time::{Duration, Instant};

use super::FlowTable;

const IDLE: Duration = Duration::from_secs(60);

fn secs(start: Instant, n: u64) -> Instant {
    start + Duration::from_secs(n)
}

fn keys<V>(flows: Vec<(u32, V)>) -> Vec<u32> {
    flows.into_iter().map(|(key, _)| key).collect()
}

#[test]
fn a_flow_expires_after_the_idle_time_and_not_before() {
    let t0 = Instant::now();
    let mut table = FlowTable::new(10, IDLE);
    assert_eq!(table.insert(1u32, "a", t0), None);
    assert_eq!(table.next_expiry(), Some(secs(t0, 60)));
    assert!(keys(table.expire(secs(t0, 59))).is_empty());
    assert_eq!(keys(table.expire(secs(t0, 60))), vec![1]);
    assert_eq!(table.len(), 0);
    assert_eq!(table.next_expiry(), None);
}

#[test]
fn activity_postpones_expiry() {
    let t0 = Instant::now();
    let mut table = FlowTable::new(10, IDLE);
    table.insert(1u32, "a", t0);
    table.insert(2u32, "b", secs(t0, 10));
    assert_eq!(table.touch(&1, secs(t0, 50)), Some(&"a"));
    assert_eq!(table.next_expiry(), Some(secs(t0, 70)));
    assert_eq!(keys(table.expire(secs(t0, 70))), vec![2]);
    assert_eq!(keys(table.expire(secs(t0, 109))), Vec::<u32>::new());
    assert_eq!(keys(table.expire(secs(t0, 110))), vec![1]);
}

#[test]
fn touching_with_an_older_time_does_not_move_a_flow_back() {
    let t0 = Instant::now();
    let mut table = FlowTable::new(10, IDLE);
    table.insert(1u32, "a", secs(t0, 30));
    assert_eq!(table.touch(&1, t0), Some(&"a"));
    assert_eq!(table.next_expiry(), Some(secs(t0, 90)));
    assert_eq!(table.touch(&2, t0), None);
}

#[test]
fn a_full_table_evicts_the_least_recently_active_flow() {
    let t0 = Instant::now();
    let mut table = FlowTable::new(2, IDLE);
    table.insert(1u32, "a", t0);
    table.insert(2u32, "b", secs(t0, 1));
    table.touch(&1, secs(t0, 2));
    assert_eq!(table.insert(3u32, "c", secs(t0, 3)), Some((2, "b")));
    assert_eq!(table.len(), 2);
    assert_eq!(table.touch(&1, secs(t0, 4)), Some(&"a"));
    assert_eq!(table.touch(&3, secs(t0, 4)), Some(&"c"));
}

#[test]
fn reinserting_a_key_replaces_it_without_evicting_others() {
    let t0 = Instant::now();
    let mut table = FlowTable::new(2, IDLE);
    table.insert(1u32, "a", t0);
    table.insert(2u32, "b", t0);
    assert_eq!(table.insert(1u32, "a2", secs(t0, 1)), Some((1, "a")));
    assert_eq!(table.len(), 2);
    assert_eq!(table.touch(&1, secs(t0, 1)), Some(&"a2"));
}

#[test]
fn a_capacity_of_zero_still_holds_one_flow() {
    let t0 = Instant::now();
    let mut table = FlowTable::new(0, IDLE);
    assert_eq!(table.insert(1u32, "a", t0), None);
    assert_eq!(table.insert(2u32, "b", t0), Some((1, "a")));
}

#[test]
fn remove_where_takes_only_the_matching_flows() {
    let t0 = Instant::now();
    let mut table = FlowTable::new(10, IDLE);
    for key in 1u32..=4 {
        table.insert(key, key * 10, secs(t0, u64::from(key)));
    }
    let mut removed = keys(table.remove_where(|key, _| key % 2 == 0));
    removed.sort_unstable();
    assert_eq!(removed, vec![2, 4]);
    assert_eq!(table.len(), 2);
    assert_eq!(table.next_expiry(), Some(secs(t0, 61)));
    assert_eq!(keys(table.expire(secs(t0, 63))), vec![1, 3]);
}
