//! Timestamp formats: epoch milliseconds or seconds, RFC 3339 (any fraction) and strftime
//! patterns, all turned into `i64` epoch milliseconds UTC.
//!
//! Every parsed timestamp is checked against the valid event-time range
//! [`MIN_EVENT_TIME`] ..= [`MAX_EVENT_TIME`] (years 1000 to 9999 UTC), whatever its format
//! and however it was encoded (a JSON number, a JSON string, a CSV cell). Window arithmetic
//! relies on it: with durations bounded by [`MAX_DURATION_MS`], no window bound computed
//! from an in-range time can overflow an `i64`.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// Earliest valid event time: `1000-01-01T00:00:00Z`, in epoch ms.
pub const MIN_EVENT_TIME: i64 = -30_610_224_000_000;

/// Latest valid event time: `9999-12-31T23:59:59.999Z`, in epoch ms.
pub const MAX_EVENT_TIME: i64 = 253_402_300_799_999;

/// The valid event-time range as written in error messages.
pub const EVENT_TIME_RANGE: &str = "1000-01-01T00:00:00Z ..= 9999-12-31T23:59:59.999Z";

/// Longest duration allowed in `[window]` and `[watermark]`: 365 250 days (1000 years of
/// 365.25 days), 31 557 600 000 000 ms.
///
/// Chosen so that event time plus or minus any sum of four such durations (size, allowed
/// lateness, watermark delay, `max_future`) stays far inside `i64`: the range spans about
/// 2.8e14 ms, four durations 1.3e14 ms, and `i64` reaches 9.2e18.
pub const MAX_DURATION_MS: i64 = 365_250 * 86_400_000;

/// Whether `ms` is inside the valid event-time range.
pub fn in_range(ms: i64) -> bool {
    (MIN_EVENT_TIME..=MAX_EVENT_TIME).contains(&ms)
}

/// `Ok(ms)` inside the valid range, else the reason naming the value as written and the range.
fn check_range(ms: i64, written: &dyn std::fmt::Display) -> Result<i64, String> {
    if in_range(ms) {
        Ok(ms)
    } else {
        Err(format!(
            "`{written}` is outside the event-time range {EVENT_TIME_RANGE}"
        ))
    }
}

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

    /// Parses a timestamp written as text; the result is inside the valid event-time range.
    pub fn parse_str(&self, s: &str) -> Result<i64, String> {
        self.parse_str_unchecked(s)
            .and_then(|ms| check_range(ms, &s))
    }

    fn parse_str_unchecked(&self, s: &str) -> Result<i64, String> {
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

    /// Parses a timestamp written as a JSON number; the result is inside the valid
    /// event-time range.
    pub fn parse_number(&self, n: f64) -> Result<i64, String> {
        self.parse_number_unchecked(n)
            .and_then(|ms| check_range(ms, &n))
    }

    /// Parses a timestamp written as a JSON integer, exactly (no detour through `f64`); the
    /// result is inside the valid event-time range.
    pub fn parse_integer(&self, n: i64) -> Result<i64, String> {
        match self {
            // Saturating: an overflowing product is far outside the range and refused there.
            Self::EpochMs => check_range(n, &n),
            Self::EpochS => check_range(n.saturating_mul(1000), &n),
            Self::Rfc3339 | Self::Pattern(_) => {
                Err(format!("{n} is a number, expected a timestamp string"))
            }
        }
    }

    fn parse_number_unchecked(&self, n: f64) -> Result<i64, String> {
        match self {
            Self::EpochMs => finite_ms(n).map_err(|_| format!("{n} is not epoch milliseconds")),
            Self::EpochS => finite_ms(n * 1000.0).map_err(|_| format!("{n} is not epoch seconds")),
            Self::Rfc3339 | Self::Pattern(_) => {
                Err(format!("{n} is a number, expected a timestamp string"))
            }
        }
    }
}

/// A finite float of milliseconds, floored. Values beyond ±9e15 (far outside the valid
/// range) become `i64::MAX` / `i64::MIN`, which the range check then refuses naming the value
/// as written; only NaN and infinities are not numbers of milliseconds at all.
fn finite_ms(v: f64) -> Result<i64, ()> {
    if !v.is_finite() {
        Err(())
    } else if v.abs() < 9.0e15 {
        Ok(v.floor() as i64)
    } else if v > 0.0 {
        Ok(i64::MAX)
    } else {
        Ok(i64::MIN)
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

    fn out_of_range(r: Result<i64, String>) -> String {
        let e = r.expect_err("out of range");
        assert!(e.contains(EVENT_TIME_RANGE), "{e}");
        e
    }

    #[test]
    fn range_edges_for_every_format() {
        // 1000-01-01T00:00:00Z: 970 years before the epoch, 354 285 days → -30 610 224 000 s.
        let ms = TimestampFormat::EpochMs;
        assert_eq!(ms.parse_str("-30610224000000"), Ok(MIN_EVENT_TIME));
        assert_eq!(ms.parse_str("253402300799999"), Ok(MAX_EVENT_TIME));
        out_of_range(ms.parse_str("-30610224000001"));
        out_of_range(ms.parse_str("253402300800000"));
        assert_eq!(ms.parse_integer(MAX_EVENT_TIME), Ok(MAX_EVENT_TIME));
        out_of_range(ms.parse_integer(MAX_EVENT_TIME + 1));
        out_of_range(ms.parse_number(2.6e14));
        let s = TimestampFormat::EpochS;
        assert_eq!(s.parse_str("253402300799.999"), Ok(MAX_EVENT_TIME));
        assert_eq!(s.parse_integer(-30_610_224_000), Ok(MIN_EVENT_TIME));
        out_of_range(s.parse_integer(253_402_300_800));
        out_of_range(s.parse_integer(i64::MAX));
        let r = TimestampFormat::Rfc3339;
        assert_eq!(r.parse_str("1000-01-01T00:00:00Z"), Ok(MIN_EVENT_TIME));
        assert_eq!(r.parse_str("9999-12-31T23:59:59.999Z"), Ok(MAX_EVENT_TIME));
        // An offset can push a 9999 date past the end of the range.
        out_of_range(r.parse_str("9999-12-31T23:59:59.999-01:00"));
        out_of_range(r.parse_str("0999-12-31T23:59:59.999Z"));
        out_of_range(r.parse_str("0000-01-01T00:00:00Z"));
        assert!(r.parse_str("10000-01-01T00:00:00Z").is_err());
        let p = TimestampFormat::parse("%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!(p.parse_str("1000-01-01 00:00:00"), Ok(MIN_EVENT_TIME));
        out_of_range(p.parse_str("0999-12-31 23:59:59"));
        assert!(p.parse_str("12000-01-01 00:00:00").is_err());
    }

    #[test]
    fn huge_epoch_strings_are_refused_naming_the_value() {
        let ms = TimestampFormat::EpochMs;
        let e = out_of_range(ms.parse_str("9223372036854775807"));
        assert!(e.starts_with("`9223372036854775807` is outside"), "{e}");
        out_of_range(ms.parse_str("-9223372036854775808"));
        out_of_range(ms.parse_str("99999999999999999999999"));
        out_of_range(ms.parse_str("1e300"));
        out_of_range(ms.parse_number(-1e300));
        out_of_range(TimestampFormat::EpochS.parse_str("9223372036854775.807"));
        assert_eq!(
            ms.parse_str("NaN"),
            Err("`NaN` is not epoch milliseconds".into())
        );
        assert!(TimestampFormat::EpochS.parse_number(f64::INFINITY).is_err());
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

/// Property tests (`proptest`; `cargo fuzz` needs nightly): parsing never panics, whatever the
/// text or number, and every accepted time is inside the range. Bounded, fixed seed, no
/// persistence files.
#[cfg(test)]
mod props {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed};

    use super::*;

    fn formats() -> impl Strategy<Value = TimestampFormat> {
        prop_oneof![
            Just(TimestampFormat::EpochMs),
            Just(TimestampFormat::EpochS),
            Just(TimestampFormat::Rfc3339),
            Just(TimestampFormat::Pattern("%Y-%m-%d %H:%M:%S".into())),
            Just(TimestampFormat::Pattern("%m/%d/%Y %I:%M:%S %p".into())),
            Just(TimestampFormat::Pattern("%s".into())),
        ]
    }

    /// Text shaped like timestamps (digits, signs, separators), plus any string.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[-+]?[0-9]{1,25}(\\.[0-9]{0,6})?([eE][-+]?[0-9]{1,3})?",
            "[+-]?[0-9]{1,6}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})?",
            "[0-9]{2}/[0-9]{2}/[0-9]{1,6} [0-9]{2}:[0-9]{2}:[0-9]{2} (AM|PM)",
        ]
    }

    fn config() -> Config {
        Config {
            cases: 1024,
            failure_persistence: None,
            rng_seed: RngSeed::Fixed(0x7135),
            ..Config::default()
        }
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn parsing_text_never_panics_and_stays_in_range(f in formats(), s in text()) {
            if let Ok(ms) = f.parse_str(&s) {
                prop_assert!(in_range(ms), "{s} -> {ms}");
            }
        }

        #[test]
        fn parsing_numbers_never_panics_and_stays_in_range(
            f in formats(),
            n in prop_oneof![any::<f64>(), (-3.0e14f64..3.0e14)],
            i in prop_oneof![any::<i64>(), (MIN_EVENT_TIME - 5..MAX_EVENT_TIME + 5)],
        ) {
            if let Ok(ms) = f.parse_number(n) {
                prop_assert!(in_range(ms), "{n} -> {ms}");
            }
            if let Ok(ms) = f.parse_integer(i) {
                prop_assert!(in_range(ms), "{i} -> {ms}");
            }
        }

        #[test]
        fn in_range_times_round_trip(ts in MIN_EVENT_TIME..=MAX_EVENT_TIME) {
            prop_assert_eq!(TimestampFormat::Rfc3339.parse_str(&format_rfc3339_ms(ts)), Ok(ts));
            prop_assert_eq!(TimestampFormat::EpochMs.parse_str(&ts.to_string()), Ok(ts));
            prop_assert_eq!(TimestampFormat::EpochMs.parse_integer(ts), Ok(ts));
            let s = ts.div_euclid(1000);
            prop_assert_eq!(TimestampFormat::EpochS.parse_integer(s), Ok(s * 1000));
        }
    }
}
