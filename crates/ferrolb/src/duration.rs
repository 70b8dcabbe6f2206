//! The one way every duration flag is written and checked: `15s`, `500ms`, `2m`, `1h`, or a bare number of
//! seconds, at most [`MAX`], and zero only where a flag says it means "off".

use std::time::Duration;

/// The longest duration any flag takes: far beyond any sensible setting, and small enough that adding it to
/// any clock reading can never overflow.
pub const MAX: Duration = Duration::from_secs(7 * 24 * 3600);

/// Parses a duration; `0` is allowed (use [`parse_positive`] where it makes no sense).
pub fn parse(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let split = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let usage = || format!("{text:?} is not a duration like 15s, 500ms, 2m or 1h");
    if number.is_empty() {
        return Err(usage());
    }
    let too_long = || format!("{text:?} is longer than the most this flag takes ({}h)", MAX.as_secs() / 3600);
    // Digits only, so a parse failure here means the number does not fit.
    let n: u64 = number.parse().map_err(|_| too_long())?;
    let per_unit_ms: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("{text:?} has an unknown unit; use ms, s, m or h")),
    };
    let ms = n.checked_mul(per_unit_ms).ok_or_else(too_long)?;
    let duration = Duration::from_millis(ms);
    if duration > MAX {
        return Err(too_long());
    }
    Ok(duration)
}

/// Parses a duration that must not be zero.
pub fn parse_positive(text: &str) -> Result<Duration, String> {
    let duration = parse(text)?;
    if duration.is_zero() {
        return Err(format!("{text:?}: zero makes no sense here; give a positive duration like 15s"));
    }
    Ok(duration)
}

/// The longest address probe: a new Service's address is dark while it is probed.
pub const MAX_PROBE: Duration = Duration::from_secs(10);

/// An address probe's window: 0 (no probing) or 10 ms to [`MAX_PROBE`].
pub fn parse_probe(text: &str) -> Result<Duration, String> {
    let duration = parse(text)?;
    if !duration.is_zero() && (duration < Duration::from_millis(10) || duration > MAX_PROBE) {
        return Err(format!(
            "{text:?}: a probe listens 10ms to 10s (0 turns probing off; the default is 200ms): a new Service's \
             address is not announced while it is probed"
        ));
    }
    Ok(duration)
}

/// A lease duration: whole seconds (a Lease records seconds), at least 1 s.
pub fn parse_lease(text: &str) -> Result<Duration, String> {
    let duration = parse_positive(text)?;
    if duration < Duration::from_secs(1) || duration.subsec_nanos() != 0 {
        return Err(format!("{text:?}: a lease duration is whole seconds, at least 1s (the default is 15s)"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_unit_and_bare_seconds() {
        assert_eq!(parse("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse("15"), Ok(Duration::from_secs(15)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse(" 3s "), Ok(Duration::from_secs(3)));
    }

    #[test]
    fn refuses_junk_overflow_and_what_is_too_long_with_a_message() {
        for bad in ["", "s", "-1s", "1.5s", "15 s", "15x", "abc"] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
        for huge in [
            "18446744073709551615",
            "18446744073709551615m",
            "307445734561825861m",
            "999999999999999999999h",
            "169h",
            "604801",
        ] {
            let e = parse(huge).unwrap_err();
            assert!(e.contains("longer than the most"), "{huge:?}: {e}");
        }
        assert_eq!(parse("168h"), Ok(MAX));
        assert!(parse_positive("0s").unwrap_err().contains("zero makes no sense"));
        assert!(parse_lease("500ms").is_err() && parse_lease("1500ms").is_err() && parse_lease("0").is_err());
        assert_eq!(parse_lease("15s"), Ok(Duration::from_secs(15)));
    }

    #[test]
    fn the_longest_accepted_duration_fits_on_every_clock() {
        assert!(std::time::Instant::now().checked_add(MAX).is_some());
        assert!(tokio::time::Instant::now().checked_add(MAX).is_some());
        assert!(std::time::SystemTime::now().checked_add(MAX).is_some());
        assert!(i32::try_from(MAX.as_secs()).is_ok(), "a Lease stores seconds as i32");
    }
}
