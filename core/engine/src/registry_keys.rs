//! A participant's signature keys in the registry file (`keys = [...]`,
//! docs/registry.md "Signature keys"), read into a `gonets_trust::KeyRing`
//! at load, and the RFC 3339 times that bound a key's validity.

use crate::registry::RegistryError;
use gonets_trust::{KeyRing, RegisteredKey};
use serde::Deserialize;

/// One entry of a participant's `keys` array.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyEntry {
    id: String,
    algorithm: String,
    public_key: String,
    /// A TOML datetime or an RFC 3339 string, UTC or with an offset.
    valid_from: Option<toml::Value>,
    /// As `valid_from`; the key is not valid from this instant on.
    valid_until: Option<toml::Value>,
}

/// The key ring of `participant` from its entries; errors name the
/// participant and the key.
pub(crate) fn key_ring(participant: &str, entries: &[KeyEntry]) -> Result<KeyRing, RegistryError> {
    let invalid = |key: &str, why: String| {
        RegistryError::Invalid(format!("participant {participant}: key {key:?}: {why}"))
    };
    let mut keys = Vec::with_capacity(entries.len());
    for e in entries {
        let verifier = gonets_trust::verifier(&e.algorithm, &e.public_key)
            .map_err(|err| invalid(&e.id, err.to_string()))?;
        let time = |name: &str, v: &Option<toml::Value>| match v {
            None => Ok(None),
            Some(v) => instant_ms(v)
                .map(Some)
                .map_err(|why| invalid(&e.id, format!("{name}: {why}"))),
        };
        keys.push(RegisteredKey {
            key_id: e.id.clone(),
            verifier,
            valid_from_ms: time("valid_from", &e.valid_from)?,
            valid_until_ms: time("valid_until", &e.valid_until)?,
        });
    }
    KeyRing::new(keys)
        .map_err(|why| RegistryError::Invalid(format!("participant {participant}: {why}")))
}

/// Ms since the Unix epoch of a TOML datetime or an RFC 3339 string
/// (`2026-01-01T00:00:00Z`, fractions of a second and offsets allowed; a
/// date or time without an offset is refused: it names no instant).
fn instant_ms(v: &toml::Value) -> Result<u64, String> {
    let text = match v {
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::String(s) => s.clone(),
        other => return Err(format!("{other} is not an RFC 3339 date-time")),
    };
    rfc3339_ms(&text).ok_or_else(|| {
        format!("{text:?} is not an RFC 3339 date-time with an offset (e.g. 2026-01-01T00:00:00Z)")
    })
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff…](Z|±HH:MM)` at or after 1970.
pub(crate) fn rfc3339_ms(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let s = b.get(from..from + len)?;
        s.iter()
            .all(u8::is_ascii_digit)
            .then(|| s.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let sep = |at: usize, c: &[u8]| b.get(at).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut at = 19;
    let mut millis = 0i64;
    if sep(at, b".") {
        let digits = b[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 {
            return None;
        }
        let ms_digits = digits.min(3);
        millis = num(at + 1, ms_digits)? * 10i64.pow(3 - ms_digits as u32);
        at += 1 + digits;
    }
    let offset_s = match &b[at..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (num(at + 1, 2)?, num(at + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let s = h * 3600 + m * 60;
            if *sign == b'+' {
                s
            } else {
                -s
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_s;
    u64::try_from(seconds * 1000 + millis).ok()
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_rfc3339_texts_when_parsed_then_utc_ms_or_none() {
        assert_eq!(rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_ms("2026-01-01T00:00:00Z"), Some(1_767_225_600_000));
        assert_eq!(
            rfc3339_ms("2024-02-29T12:00:00.5Z"),
            Some(1_709_208_000_500)
        );
        assert_eq!(
            rfc3339_ms("2026-01-01T03:00:00+03:00"),
            rfc3339_ms("2026-01-01T00:00:00Z")
        );
        assert_eq!(
            rfc3339_ms("2026-01-01T00:00:00.123456-01:30"),
            Some(1_767_231_000_123)
        );
        for bad in [
            "2026-01-01",
            "2026-01-01T00:00:00",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:00.Z",
            "1969-12-31T23:59:59Z",
            "2026-01-01T00:00:00Zjunk",
            "twenty",
        ] {
            assert_eq!(rfc3339_ms(bad), None, "{bad}");
        }
    }
}
