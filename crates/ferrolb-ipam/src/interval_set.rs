//! A set of `u128` values stored as sorted, disjoint, non-adjacent inclusive intervals.
//!
//! This is the one data structure behind pools and usage: a /64 is one interval, and the lowest value not in
//! the set at or after some point is found in O(log n) because intervals are kept maximal.

use std::collections::BTreeMap;
use std::ops::Bound;

/// Sorted disjoint intervals over `u128`; adjacent intervals are always merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntervalSet {
    /// start -> end (inclusive). Invariant: for consecutive entries, `prev.end + 1 < next.start`.
    intervals: BTreeMap<u128, u128>,
}

impl IntervalSet {
    /// An empty set.
    pub fn new() -> IntervalSet {
        IntervalSet::default()
    }

    /// Whether the set holds no value.
    pub fn is_empty(&self) -> bool {
        self.intervals.is_empty()
    }

    /// Number of intervals (not values).
    pub fn n_intervals(&self) -> usize {
        self.intervals.len()
    }

    /// Number of values, saturating at `u128::MAX` (only the whole IPv6 space reaches it).
    pub fn len(&self) -> u128 {
        self.intervals.iter().fold(0u128, |acc, (s, e)| acc.saturating_add((e - s).saturating_add(1)))
    }

    /// How many values of `start..=end` are in the set (saturating at `u128::MAX`).
    pub fn count_within(&self, start: u128, end: u128) -> u128 {
        let before = self.containing(start).map(|(_, e)| (start, e.min(end)));
        let after =
            self.intervals.range((Bound::Excluded(start), Bound::Included(end))).map(|(s, e)| (*s, (*e).min(end)));
        before.into_iter().chain(after).fold(0u128, |acc, (s, e)| acc.saturating_add((e - s).saturating_add(1)))
    }

    /// The intervals in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = (u128, u128)> + '_ {
        self.intervals.iter().map(|(s, e)| (*s, *e))
    }

    /// The interval containing `value`, if any.
    fn containing(&self, value: u128) -> Option<(u128, u128)> {
        let (s, e) = self.intervals.range(..=value).next_back()?;
        (*e >= value).then_some((*s, *e))
    }

    /// Whether `value` is in the set.
    pub fn contains(&self, value: u128) -> bool {
        self.containing(value).is_some()
    }

    /// Whether any value of `start..=end` is in the set.
    pub fn intersects(&self, start: u128, end: u128) -> bool {
        if self.contains(start) {
            return true;
        }
        self.intervals.range((Bound::Excluded(start), Bound::Included(end))).next().is_some()
    }

    /// The lowest value `>= from` that is not in the set, or `None` if every such value is.
    pub fn first_absent_from(&self, from: u128) -> Option<u128> {
        match self.containing(from) {
            Some((_, end)) => end.checked_add(1),
            None => Some(from),
        }
    }

    /// Adds `start..=end`, merging with overlapping or adjacent intervals.
    pub fn insert(&mut self, start: u128, end: u128) {
        debug_assert!(start <= end);
        let mut new_start = start;
        let mut new_end = end;
        // An interval starting before `start` may overlap or touch it.
        if let Some((s, e)) = self.intervals.range(..start).next_back().map(|(s, e)| (*s, *e))
            && e.saturating_add(1) >= start
        {
            new_start = s;
            new_end = new_end.max(e);
            self.intervals.remove(&s);
        }
        // Intervals starting inside `start..=end+1` overlap or touch it.
        loop {
            let upper = end.saturating_add(1);
            let Some((s, e)) = self.intervals.range(start..=upper).next().map(|(s, e)| (*s, *e)) else {
                break;
            };
            new_end = new_end.max(e);
            self.intervals.remove(&s);
        }
        self.intervals.insert(new_start, new_end);
    }

    /// Removes `start..=end`, splitting intervals that stick out on either side.
    pub fn remove(&mut self, start: u128, end: u128) {
        debug_assert!(start <= end);
        let mut touched = Vec::new();
        if let Some((s, e)) = self.containing(start) {
            touched.push((s, e));
        }
        touched.extend(self.intervals.range((Bound::Excluded(start), Bound::Included(end))).map(|(s, e)| (*s, *e)));
        for (s, e) in touched {
            self.intervals.remove(&s);
            if s < start {
                self.intervals.insert(s, start - 1);
            }
            if e > end {
                self.intervals.insert(end + 1, e);
            }
        }
    }

    /// Adds one value.
    pub fn insert_one(&mut self, value: u128) {
        self.insert(value, value);
    }

    /// Removes one value.
    pub fn remove_one(&mut self, value: u128) {
        self.remove(value, value);
    }
}

#[cfg(test)]
mod tests;
