//! Wall-clock instants as the control plane records them: whole seconds since the Unix epoch,
//! written as RFC 3339 in UTC (`2026-12-03T12:00:00Z`), the form Kubernetes' `metav1.Time`
//! uses for `lastTransitionTime`. The pure modules never read a clock: the caller passes the
//! time in.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Seconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The instant `secs` seconds after the epoch.
    pub const fn from_unix(secs: u64) -> Timestamp {
        Timestamp(secs)
    }

    /// Seconds since the epoch.
    pub const fn unix(self) -> u64 {
        self.0
    }

    /// The current time of `clock` (e.g. `SystemTime::now()`), truncated to the second;
    /// instants before the epoch read as the epoch.
    pub fn from_system(clock: std::time::SystemTime) -> Timestamp {
        Timestamp(clock.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0 / 86_400;
        let secs = self.0 % 86_400;
        let (y, m, d) = civil_from_days(days as i64);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            secs / 3600,
            secs % 3600 / 60,
            secs % 60
        )
    }
}

/// Why a string is not an RFC 3339 UTC time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("time {input:?}: expected RFC 3339 UTC like 2026-12-03T12:00:00Z")]
pub struct ParseTimestampError {
    input: String,
}

impl FromStr for Timestamp {
    type Err = ParseTimestampError;

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (the fraction is dropped).
    fn from_str(s: &str) -> Result<Timestamp, ParseTimestampError> {
        let err = || ParseTimestampError { input: s.to_owned() };
        let b = s.as_bytes();
        if !s.is_ascii()
            || b.len() < 20
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b'T'
            || b[13] != b':'
        {
            return Err(err());
        }
        if b[16] != b':' || b[b.len() - 1] != b'Z' {
            return Err(err());
        }
        let rest = &s[19..s.len() - 1];
        let fraction_ok = rest.is_empty()
            || (rest.starts_with('.')
                && rest.len() > 1
                && rest[1..].bytes().all(|c| c.is_ascii_digit()));
        if !fraction_ok {
            return Err(err());
        }
        let num = |r: std::ops::Range<usize>| -> Result<u64, ParseTimestampError> {
            let part = &s[r];
            if part.bytes().all(|c| c.is_ascii_digit()) {
                part.parse().map_err(|_| err())
            } else {
                Err(err())
            }
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if y < 1970
            || !(1..=12).contains(&mo)
            || d == 0
            || d > days_in_month(y, mo)
            || h > 23
            || mi > 59
            || sec > 59
        {
            return Err(err());
        }
        let days = days_from_civil(y as i64, mo as u32, d as u32) as u64;
        Ok(Timestamp(days * 86_400 + h * 3600 + mi * 60 + sec))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Howard Hinnant's `civil_from_days`: days since the epoch → (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Howard Hinnant's `days_from_civil`: (year, month, day) → days since the epoch.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_instants() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(Timestamp(951_782_400).to_string(), "2000-02-29T00:00:00Z");
        assert_eq!(Timestamp(1_796_299_200).to_string(), "2026-12-03T12:00:00Z");
        assert_eq!("2026-12-03T12:00:00Z".parse(), Ok(Timestamp(1_796_299_200)));
        assert_eq!("2026-12-03T12:00:00.123Z".parse(), Ok(Timestamp(1_796_299_200)));
    }

    #[test]
    fn malformed_times_are_refused() {
        for bad in [
            "",
            "2026-12-03 12:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-12-03T12:00:00+01:00",
            "2026-12-03T24:00:00Z",
            "2026-12-03T12:00:00.Z",
            "+026-12-03T12:00:00Z",
            "2026-12-03T12:00:0\u{e9}Z",
            "2026-12-03T12:00:00.\u{e9}Z",
        ] {
            let err = bad.parse::<Timestamp>().unwrap_err();
            assert!(err.to_string().starts_with("time "), "{bad}: {err}");
        }
    }

    proptest! {
        #[test]
        fn display_and_parse_round_trip(secs in 0u64..=253_402_300_799) {
            let t = Timestamp(secs);
            prop_assert_eq!(t.to_string().parse::<Timestamp>(), Ok(t));
        }
    }
}
