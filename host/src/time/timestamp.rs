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
            Self::Rfc3339 => match parse_rfc3339_fast(t.as_bytes()) {
                Some(ms) => Ok(ms),
                None => DateTime::parse_from_rfc3339(t)
                    .map(|d| d.timestamp_millis())
                    .map_err(|e| format!("`{s}` is not RFC 3339 ({e})")),
            },
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
///
/// Years outside 0000–9999 are written as chrono writes them (`+10000-…`, `-0001-…`); a time
/// chrono cannot represent at all is written as the number of milliseconds.
pub fn format_rfc3339_ms(ms: i64) -> String {
    let mut out = String::with_capacity(24);
    push_rfc3339_ms(ms, &mut out);
    out
}

/// Appends what [`format_rfc3339_ms`] returns to a byte buffer (a sink's), without a
/// strftime pass.
pub fn write_rfc3339_ms(ms: i64, out: &mut Vec<u8>) {
    match fast_rfc3339_ms(ms) {
        Some(text) => out.extend_from_slice(&text),
        None => out.extend_from_slice(slow_rfc3339_ms(ms).as_bytes()),
    }
}

/// Appends what [`format_rfc3339_ms`] returns to a string.
pub fn push_rfc3339_ms(ms: i64, out: &mut String) {
    match fast_rfc3339_ms(ms) {
        // Only ASCII digits and separators are written.
        Some(text) => out.extend(text.iter().map(|&b| char::from(b))),
        None => out.push_str(&slow_rfc3339_ms(ms)),
    }
}

/// Milliseconds from 0000-01-01T00:00:00Z to the epoch (719 528 days).
const YEAR_0_MS: i64 = -62_167_219_200_000;

/// Milliseconds from the epoch to 10000-01-01T00:00:00Z.
const YEAR_10000_MS: i64 = 253_402_300_800_000;

/// Chrono's strftime, for the years [`fast_rfc3339_ms`] leaves to it.
fn slow_rfc3339_ms(ms: i64) -> String {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(d) => d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => ms.to_string(),
    }
}

/// The 24 bytes of `YYYY-MM-DDTHH:MM:SS.mmmZ`, digit by digit, for years 0000–9999 (every
/// valid event time and more); `None` for other years.
fn fast_rfc3339_ms(ms: i64) -> Option<[u8; 24]> {
    if !(YEAR_0_MS..YEAR_10000_MS).contains(&ms) {
        return None;
    }
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (secs, milli) = (in_day / 1000, in_day % 1000);
    let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
    // Every argument is in 0..10.
    let digit = |v: i64| b'0' + v as u8;
    Some([
        digit(y / 1000),
        digit(y / 100 % 10),
        digit(y / 10 % 10),
        digit(y % 10),
        b'-',
        digit(m / 10),
        digit(m % 10),
        b'-',
        digit(d / 10),
        digit(d % 10),
        b'T',
        digit(hh / 10),
        digit(hh % 10),
        b':',
        digit(mm / 10),
        digit(mm % 10),
        b':',
        digit(ss / 10),
        digit(ss % 10),
        b'.',
        digit(milli / 100),
        digit(milli / 10 % 10),
        digit(milli % 10),
        b'Z',
    ])
}

/// Proleptic Gregorian (year, month, day) of a day number counted from 1970-01-01
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Day number counted from 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`); the date must exist.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The common shape of RFC 3339, `YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|±HH:MM)`, parsed without
/// chrono; `None` for anything else (another separator, a leap second, an impossible date),
/// which the caller hands to chrono so that what is accepted and every error message stay
/// chrono's.
fn parse_rfc3339_fast(b: &[u8]) -> Option<i64> {
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(r)?;
        digits.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(at(4, b'-') && at(7, b'-') && at(10, b'T') && at(13, b':') && at(16, b':')) {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo) || d < 1 || d > month_days[(mo - 1) as usize] {
        return None;
    }
    if h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let mut i = 19;
    let mut milli = 0;
    if at(i, b'.') {
        let start = i + 1;
        let len = b[start..].iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&len) {
            return None;
        }
        for k in 0..3 {
            let c = if k < len { b[start + k] - b'0' } else { 0 };
            milli = milli * 10 + i64::from(c);
        }
        i = start + len;
    }
    let offset_min = match b.get(i)? {
        b'Z' if i + 1 == b.len() => 0,
        &sign @ (b'+' | b'-') if i + 6 == b.len() && at(i + 3, b':') => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let m = oh * 60 + om;
            if sign == b'-' { -m } else { m }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset_min * 60;
    Some(secs * 1000 + milli)
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
        fn fast_formatting_is_chronos_over_the_whole_range(
            ts in prop_oneof![
                MIN_EVENT_TIME..=MAX_EVENT_TIME,
                -1_000_000_000i64..1_000_000_000,
                YEAR_0_MS - 5..YEAR_0_MS + 5,
                YEAR_10000_MS - 5..YEAR_10000_MS + 5,
                any::<i64>(),
            ],
        ) {
            let chrono = match DateTime::<Utc>::from_timestamp_millis(ts) {
                Some(d) => d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                None => ts.to_string(),
            };
            prop_assert_eq!(format_rfc3339_ms(ts), chrono.clone());
            let mut bytes = b"x".to_vec();
            write_rfc3339_ms(ts, &mut bytes);
            prop_assert_eq!(bytes, format!("x{chrono}").into_bytes());
        }

        #[test]
        fn fast_rfc3339_parsing_agrees_with_chrono(
            s in "[0-9]{4}-[01][0-9]-[0-3][0-9][Tt ][0-2][0-9]:[0-6][0-9]:[0-6][0-9](\\.[0-9]{0,11})?(Z|z|[+-][0-2][0-9]:[0-6][0-9])?",
        ) {
            let chrono = DateTime::parse_from_rfc3339(&s).map(|d| d.timestamp_millis()).ok();
            if let Some(fast) = parse_rfc3339_fast(s.as_bytes()) {
                prop_assert_eq!(Some(fast), chrono, "{}", s);
            }
            prop_assert_eq!(TimestampFormat::Rfc3339.parse_str_unchecked(&s).ok(), chrono);
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
