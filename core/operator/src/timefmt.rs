//! Times as the SLA report takes and shows them: Unix milliseconds, or
//! UTC in RFC 3339's `Z` form (`2026-12-02T13:00:00Z`, or a bare date
//! `2026-12-02`, meaning its midnight). No other zones: the hub's clock
//! and its buckets are UTC, so a report means the same wherever it is read.

const MS_PER_DAY: i64 = 86_400_000;

/// A time the report was given, as Unix ms; `None` when it is neither form.
pub fn parse_time_ms(text: &str) -> Option<u64> {
    if let Ok(ms) = text.parse::<u64>() {
        return Some(ms);
    }
    let (date, clock) = match text.split_once('T') {
        Some((d, rest)) => (d, Some(rest.strip_suffix('Z')?)),
        None => (text, None),
    };
    let mut ymd = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (ymd.next()??, ymd.next()??, ymd.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || y < 1970 {
        return None;
    }
    let mut ms = days_from_civil(y, m, d) * MS_PER_DAY;
    if let Some(clock) = clock {
        let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
        let mut parts = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
        let (h, min, s) = (parts.next()??, parts.next()??, parts.next()??);
        if h > 23 || min > 59 || s > 60 {
            return None;
        }
        let frac_ms = match fraction {
            "" => 0,
            f => format!("{f:0<3}")[..3].parse::<i64>().ok()?,
        };
        ms += ((h * 60 + min) * 60 + s) * 1000 + frac_ms;
    }
    u64::try_from(ms).ok()
}

/// Unix ms as `YYYY-MM-DDTHH:MM:SSZ` (whole seconds, UTC).
pub fn format_time_ms(ms: u64) -> String {
    let ms = ms as i64;
    let (y, m, d) = civil_from_days(ms.div_euclid(MS_PER_DAY));
    let secs = ms.rem_euclid(MS_PER_DAY) / 1000;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number since 1970-01-01 (the inverse of `days_from_civil`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_rfc3339_utc_when_parsed_then_unix_ms() {
        assert_eq!(parse_time_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_time_ms("2026-12-02T13:00:00Z"),
            Some(1_796_216_400_000)
        );
        assert_eq!(
            parse_time_ms("2026-12-02T13:00:00.25Z"),
            Some(1_796_216_400_250)
        );
        assert_eq!(parse_time_ms("2026-12-02"), Some(1_796_169_600_000));
        assert_eq!(parse_time_ms("1796216400000"), Some(1_796_216_400_000));
    }

    #[test]
    fn given_other_forms_when_parsed_then_refused() {
        for text in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-12-02T13:00:00+03:00",
            "2026-12-02T25:00:00Z",
        ] {
            assert_eq!(parse_time_ms(text), None, "{text}");
        }
    }

    #[test]
    fn given_times_when_formatted_then_they_parse_back() {
        for ms in [0, 951_782_400_000, 1_796_216_400_000, 4_102_444_799_000] {
            assert_eq!(parse_time_ms(&format_time_ms(ms)), Some(ms), "{ms}");
        }
    }
}
