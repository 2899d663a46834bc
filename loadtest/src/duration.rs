//! Parsing of human durations on the command line (`10s`, `500ms`, `2m`).

use std::time::Duration;

/// Parses `<number><unit>` with unit `ms`, `s` or `m`; a bare number means seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 =
        number.parse().map_err(|_| format!("duration \"{text}\": expected a number and a unit"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        other => return Err(format!("duration \"{text}\": unknown unit \"{other}\" (ms, s or m)")),
    };
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(format!("duration \"{text}\": must be positive"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse_duration("").is_err());
        assert!(parse_duration("10h").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("s").is_err());
    }
}
