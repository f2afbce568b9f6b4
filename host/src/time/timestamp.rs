//! Timestamp formats: epoch milliseconds or seconds, RFC 3339 (any fraction) and strftime
//! patterns, all turned into `i64` epoch milliseconds UTC.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// How a timestamp field is written in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimestampFormat {
    /// Integer (or numeric string) milliseconds since the epoch.
    EpochMs,
    /// Seconds since the epoch, integer or fractional.
    EpochS,
    /// RFC 3339 / ISO 8601 with offset, e.g. `2024-01-22T13:45:00.123456Z`.
    Rfc3339,
    /// A strftime pattern such as `%m/%d/%Y %I:%M:%S %p`, read as UTC.
    Pattern(String),
}

impl TimestampFormat {
    /// Parses the `schema.timestamp.format` value.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "epoch_ms" => Ok(Self::EpochMs),
            "epoch_s" => Ok(Self::EpochS),
            "rfc3339" => Ok(Self::Rfc3339),
            p if p.contains('%') => Ok(Self::Pattern(p.to_string())),
            other => Err(format!("`{other}` is not a timestamp format")),
        }
    }

    /// Parses a timestamp written as text.
    pub fn parse_str(&self, s: &str) -> Result<i64, String> {
        let t = s.trim();
        match self {
            Self::EpochMs => t
                .parse::<i64>()
                .or_else(|_| t.parse::<f64>().map_err(|_| ()).and_then(finite_ms))
                .map_err(|_| format!("`{s}` is not epoch milliseconds")),
            Self::EpochS => t
                .parse::<f64>()
                .map_err(|_| ())
                .and_then(|v| finite_ms(v * 1000.0))
                .map_err(|_| format!("`{s}` is not epoch seconds")),
            Self::Rfc3339 => DateTime::parse_from_rfc3339(t)
                .map(|d| d.timestamp_millis())
                .map_err(|e| format!("`{s}` is not RFC 3339 ({e})")),
            Self::Pattern(p) => {
                parse_pattern(t, p).map_err(|e| format!("`{s}` does not match `{p}` ({e})"))
            }
        }
    }

    /// Parses a timestamp written as a JSON number.
    pub fn parse_number(&self, n: f64) -> Result<i64, String> {
        match self {
            Self::EpochMs => finite_ms(n).map_err(|_| format!("{n} is not epoch milliseconds")),
            Self::EpochS => finite_ms(n * 1000.0).map_err(|_| format!("{n} is not epoch seconds")),
            Self::Rfc3339 | Self::Pattern(_) => {
                Err(format!("{n} is a number, expected a timestamp string"))
            }
        }
    }
}

fn finite_ms(v: f64) -> Result<i64, ()> {
    if v.is_finite() && v.abs() < 9.0e15 {
        Ok(v.floor() as i64)
    } else {
        Err(())
    }
}

fn parse_pattern(s: &str, pattern: &str) -> Result<i64, chrono::ParseError> {
    match DateTime::parse_from_str(s, pattern) {
        Ok(d) => Ok(d.timestamp_millis()),
        Err(_) => match NaiveDateTime::parse_from_str(s, pattern) {
            Ok(n) => Ok(n.and_utc().timestamp_millis()),
            Err(e) => NaiveDate::parse_from_str(s, pattern)
                .map(|d| {
                    d.and_hms_opt(0, 0, 0)
                        .unwrap_or_default()
                        .and_utc()
                        .timestamp_millis()
                })
                .map_err(|_| e),
        },
    }
}

/// Formats epoch milliseconds as RFC 3339 UTC with milliseconds: `2024-01-22T13:45:00.000Z`.
pub fn format_rfc3339_ms(ms: i64) -> String {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(d) => d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => ms.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_formats() {
        assert_eq!(
            TimestampFormat::EpochMs.parse_str("1700000000123"),
            Ok(1_700_000_000_123)
        );
        assert_eq!(
            TimestampFormat::EpochS.parse_str("1700000000.5"),
            Ok(1_700_000_000_500)
        );
        assert_eq!(TimestampFormat::EpochMs.parse_str("-1"), Ok(-1));
        assert_eq!(TimestampFormat::EpochS.parse_number(-1.5), Ok(-1500));
        assert!(TimestampFormat::EpochMs.parse_str("soon").is_err());
    }

    #[test]
    fn rfc3339_with_microseconds_and_offset() {
        // 2024-01-22T13:45:00Z = 19744 days * 86400 s + 13:45 → 1705931100 s.
        let f = TimestampFormat::Rfc3339;
        assert_eq!(f.parse_str("2024-01-22T13:45:00Z"), Ok(1_705_931_100_000));
        assert_eq!(
            f.parse_str("2024-01-22T13:45:00.123456Z"),
            Ok(1_705_931_100_123)
        );
        assert_eq!(
            f.parse_str("2024-01-22T14:45:00+01:00"),
            Ok(1_705_931_100_000)
        );
        assert_eq!(f.parse_str("1969-12-31T23:59:59.999Z"), Ok(-1));
    }

    #[test]
    fn us_style_pattern_with_pm() {
        let f = TimestampFormat::parse("%m/%d/%Y %I:%M:%S %p").unwrap();
        assert_eq!(f.parse_str("01/22/2024 01:45:00 PM"), Ok(1_705_931_100_000));
        assert_eq!(f.parse_str("01/22/2024 12:00:00 AM"), Ok(1_705_881_600_000));
        assert!(f.parse_str("2024-01-22").is_err());
    }

    #[test]
    fn formats_rfc3339_millis_before_and_after_epoch() {
        assert_eq!(
            format_rfc3339_ms(1_705_931_100_123),
            "2024-01-22T13:45:00.123Z"
        );
        assert_eq!(format_rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
    }
}
