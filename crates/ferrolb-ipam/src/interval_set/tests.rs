use std::collections::BTreeSet;

use proptest::prelude::*;

use super::IntervalSet;

fn check(ops: &[(bool, u128, u128)], expected: &[(u128, u128)]) {
    let mut set = IntervalSet::new();
    for &(add, s, e) in ops {
        if add { set.insert(s, e) } else { set.remove(s, e) }
    }
    assert_eq!(set.iter().collect::<Vec<_>>(), expected);
}

#[test]
fn merges_and_splits() {
    check(&[(true, 1, 3), (true, 4, 6)], &[(1, 6)]);
    check(&[(true, 1, 3), (true, 5, 6)], &[(1, 3), (5, 6)]);
    check(&[(true, 1, 3), (true, 5, 6), (true, 0, 10)], &[(0, 10)]);
    check(&[(true, 0, 10), (false, 3, 4)], &[(0, 2), (5, 10)]);
    check(&[(true, 0, 10), (false, 0, 10)], &[]);
    check(&[(true, 5, 5), (true, 7, 7), (true, 6, 6)], &[(5, 7)]);
    check(&[(true, u128::MAX - 1, u128::MAX), (true, 0, 0)], &[(0, 0), (u128::MAX - 1, u128::MAX)]);
    check(&[(true, 0, u128::MAX), (false, 1, 1)], &[(0, 0), (2, u128::MAX)]);
}

#[test]
fn first_absent() {
    let mut set = IntervalSet::new();
    set.insert(10, 20);
    assert_eq!(set.first_absent_from(5), Some(5));
    assert_eq!(set.first_absent_from(10), Some(21));
    assert_eq!(set.first_absent_from(20), Some(21));
    set.insert(u128::MAX - 3, u128::MAX);
    assert_eq!(set.first_absent_from(u128::MAX), None);
}

#[test]
fn len_of_a_slash_64_is_exact() {
    let mut set = IntervalSet::new();
    set.insert(1 << 64, (2 << 64) - 1);
    assert_eq!(set.len(), 1u128 << 64);
}

proptest! {
    /// The interval set behaves like a plain set of small numbers.
    #[test]
    fn matches_a_btreeset(ops in prop::collection::vec((any::<bool>(), 0u128..64, 0u128..8), 0..60)) {
        let mut set = IntervalSet::new();
        let mut model = BTreeSet::new();
        for (add, s, len) in ops {
            let e = s + len;
            if add { set.insert(s, e); model.extend(s..=e); } else { set.remove(s, e); for v in s..=e { model.remove(&v); } }
        }
        let flat: BTreeSet<u128> = set.iter().flat_map(|(s, e)| s..=e).collect();
        prop_assert_eq!(&flat, &model);
        prop_assert_eq!(set.len(), model.len() as u128);
        let pairs: Vec<_> = set.iter().collect();
        for w in pairs.windows(2) {
            prop_assert!(w[0].1 + 1 < w[1].0, "intervals not merged: {:?}", w);
        }
        for v in 0..80u128 {
            prop_assert_eq!(set.contains(v), model.contains(&v));
            let expected = (v..).find(|x| !model.contains(x));
            prop_assert_eq!(set.first_absent_from(v), expected);
        }
    }
}

#[test]
fn count_within_counts_only_the_overlap() {
    let mut set = IntervalSet::new();
    set.insert(10, 20);
    set.insert(30, 40);
    assert_eq!(set.count_within(0, 100), 22);
    assert_eq!(set.count_within(15, 35), 12);
    assert_eq!(set.count_within(21, 29), 0);
    assert_eq!(set.count_within(40, 40), 1);
    let mut all = IntervalSet::new();
    all.insert(0, u128::MAX);
    assert_eq!(all.count_within(0, u128::MAX), u128::MAX, "saturates");
}
