//! Formatting event times (epoch milliseconds, UTC) without external crates.

/// Formats `epoch_ms` (milliseconds since the Unix epoch) as RFC 3339 in UTC
/// with millisecond precision, e.g. `2024-01-22T13:45:00.000Z`.
///
/// Times before 1970 are handled (the fraction is never negative). Years
/// outside 0000..=9999, which RFC 3339 cannot express, are printed with as
/// many digits as needed and a leading `-` before year 0.
///
/// ```
/// use weir_guest::time::rfc3339_ms;
///
/// assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
/// assert_eq!(rfc3339_ms(1_705_931_100_000), "2024-01-22T13:45:00.000Z");
/// assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
/// ```
pub fn rfc3339_ms(epoch_ms: i64) -> String {
    const MS_PER_DAY: i64 = 86_400_000;
    let days = epoch_ms.div_euclid(MS_PER_DAY);
    let ms_of_day = epoch_ms.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60);
    let (second, milli) = (ms_of_day / 1_000 % 60, ms_of_day % 1_000);
    let year = if year < 0 {
        format!("-{:04}", -year)
    } else {
        format!("{year:04}")
    };
    format!("{year}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z")
}

/// Proleptic Gregorian (year, month, day) of a count of days since
/// 1970-01-01, by Howard Hinnant's `civil_from_days`: shift to eras of 400
/// years starting on March 1st, so the leap day is the last day of a year.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1st
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are in range by construction: day in 1..=31, month in 1..=12.
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        // 2000-03-01 is day 11_017: 30 years of 365 days = 10_950, plus 7 leap
        // days (1972..=1996), plus 31 (Jan) + 29 (Feb 2000) = 10_950 + 7 + 60.
        assert_eq!(rfc3339_ms(11_017 * 86_400_000), "2000-03-01T00:00:00.000Z");
        // The day before is the leap day.
        assert_eq!(rfc3339_ms(11_016 * 86_400_000), "2000-02-29T00:00:00.000Z");
        // 1_000_000_000 s = 11_574 days + 6_400 s: 2001-09-09T01:46:40Z.
        assert_eq!(rfc3339_ms(1_000_000_000_123), "2001-09-09T01:46:40.123Z");
        // 2024-01-22T13:45:00Z: 19_744 days (54 years, 13 leap days 1972..=2020,
        // 19_710 + 13 = 19_723 to 2024-01-01, + 21) * 86_400 + 49_500 s.
        assert_eq!(
            rfc3339_ms((19_744 * 86_400 + 49_500) * 1_000),
            "2024-01-22T13:45:00.000Z"
        );
        // 2024-12-31T23:59:59.999Z: 2024 is a leap year, 19_723 + 366 = 20_089
        // days to 2025-01-01, minus 1 ms.
        assert_eq!(
            rfc3339_ms(20_089 * 86_400_000 - 1),
            "2024-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn before_1970() {
        // -1 day -1 ms: 1969-12-30T23:59:59.999Z.
        assert_eq!(rfc3339_ms(-86_400_001), "1969-12-30T23:59:59.999Z");
        // 1900-01-01 is 70 years before 1970 with 17 leap days (1904..=1968,
        // 1900 is not a leap year): -(70 * 365 + 17) = -25_567 days.
        assert_eq!(rfc3339_ms(-25_567 * 86_400_000), "1900-01-01T00:00:00.000Z");
        // 400 Gregorian years are 146_097 days, so 1600-03-01 is
        // 2000-03-01 (day 11_017) - 146_097 = day -135_080.
        assert_eq!(
            rfc3339_ms(-135_080 * 86_400_000 + 1),
            "1600-03-01T00:00:00.001Z"
        );
        // 0000-03-01 is 5 eras before 2000-03-01: 11_017 - 5 * 146_097 = -719_468.
        assert_eq!(
            rfc3339_ms(-719_468 * 86_400_000),
            "0000-03-01T00:00:00.000Z"
        );
        // Its day before is 0000-02-29 (year 0 is a leap year).
        assert_eq!(
            rfc3339_ms(-719_469 * 86_400_000),
            "0000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn extremes_do_not_overflow() {
        assert!(rfc3339_ms(i64::MAX).ends_with(".807Z"));
        assert!(rfc3339_ms(i64::MIN).starts_with('-'));
    }
}
