//! When the next pass must run at the latest: each part of a pass (endpoints settling, a drain, a probe, a
//! yield) names a deadline, and the pass wakes at the earliest of them.

use std::time::Instant;

/// Moves `deadline` to `at` if `at` is earlier (or `deadline` is unset); `at` may be `None` (no deadline).
pub(crate) fn wake(deadline: &mut Option<Instant>, at: impl Into<Option<Instant>>) {
    if let Some(at) = at.into() {
        *deadline = Some(deadline.map_or(at, |d| d.min(at)));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_earliest_deadline_wins_and_none_changes_nothing() {
        let now = Instant::now();
        let mut deadline = None;
        wake(&mut deadline, None);
        assert_eq!(deadline, None);
        wake(&mut deadline, now + Duration::from_secs(2));
        wake(&mut deadline, Some(now + Duration::from_secs(1)));
        wake(&mut deadline, now + Duration::from_secs(3));
        wake(&mut deadline, None);
        assert_eq!(deadline, Some(now + Duration::from_secs(1)));
    }
}
