//! Durations as Kubernetes writes them (`metav1.Duration`, Go's syntax): `90s`, `1m30s`, `500ms`, `1.5h`.
//! BGPPeer timers use this form, as MetalLB's do, so its objects convert unchanged; the CRD checks the
//! syntax with CEL's `duration()`, and this parser reads the same strings.

use std::time::Duration;

/// A duration string Go's `time.ParseDuration` would refuse, or a negative or too large one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a duration like 90s, 1m30s or 500ms")]
pub struct DurationError(pub String);

/// Parses a Go duration (units ns, us, µs, ms, s, m, h; decimals allowed; `0` alone is zero).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let bad = || DurationError(text.to_owned());
    let mut rest = text.trim();
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total_ns: u128 = 0;
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let (number, tail) = rest.split_at(number_end);
        let unit_end = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let per_unit: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() {
            return Err(bad());
        }
        let whole: u128 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| bad())? };
        let mut value = whole.checked_mul(per_unit).ok_or_else(bad)?;
        let mut scale = per_unit;
        for digit in fraction.chars() {
            scale /= 10;
            value += u128::from(digit.to_digit(10).ok_or_else(bad)?) * scale;
        }
        total_ns = total_ns.checked_add(value).ok_or_else(bad)?;
        rest = tail;
    }
    let secs = u64::try_from(total_ns / 1_000_000_000).map_err(|_| bad())?;
    Ok(Duration::new(secs, u32::try_from(total_ns % 1_000_000_000).map_err(|_| bad())?))
}

/// Writes a duration the way Kubernetes prints one (`1m30s`, `500ms`, `0s`), so it parses back.
pub fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() != 0 && d.as_secs() == 0 {
        return format!("{}ms", d.as_millis());
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_go_durations() {
        let ms = Duration::from_millis;
        for (text, want) in [
            ("90s", ms(90_000)),
            ("1m30s", ms(90_000)),
            ("500ms", ms(500)),
            ("1.5h", ms(5_400_000)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("300us", Duration::from_micros(300)),
            ("2h45m", ms(9_900_000)),
        ] {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        for bad in ["", "90", "s", "-1s", "1x", "1.2.3s", "99999999999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn formats_what_parses_back() {
        for d in
            [Duration::ZERO, Duration::from_millis(300), Duration::from_secs(90), Duration::from_secs(3 * 3600 + 5)]
        {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
    }
}
