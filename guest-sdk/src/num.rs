//! Numeric helpers shared by plugins.

/// Rounds `value` to `decimals` decimal places, half away from zero, on the
/// number's shortest decimal representation (the digits `{}` prints).
///
/// So `2.675` rounds to `2.68` and `1.005` to `1.01`, as a person (or Spark's
/// `round` on a double) expects, although the nearest doubles are slightly
/// below those values and `(x * 100.0).round() / 100.0` gives `2.67` and
/// `1.0`. NaN and infinities are returned unchanged.
///
/// ```
/// use weir_guest::num::round_half_away;
///
/// assert_eq!(round_half_away(2.675, 2), 2.68);
/// assert_eq!(round_half_away(-2.5, 0), -3.0);
/// assert_eq!(round_half_away(1.234, 5), 1.234);
/// ```
pub fn round_half_away(value: f64, decimals: u32) -> f64 {
    if !value.is_finite() || value == 0.0 {
        return value;
    }
    // `{:e}` prints the shortest digits that round-trip: "2.675e0", "1e-7".
    let sci = format!("{:e}", value.abs());
    let Some((mantissa, exponent)) = sci.split_once('e') else {
        return value;
    };
    let Ok(exponent) = exponent.parse::<i64>() else {
        return value;
    };
    let digits: Vec<u8> = mantissa
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect();
    // value = 0.d1 d2 d3 ... * 10^(exponent + 1); keep the digits down to the
    // `decimals`-th place after the point.
    let keep = exponent + 1 + i64::from(decimals);
    let Ok(keep) = usize::try_from(keep) else {
        return 0.0_f64.copysign(value);
    };
    if keep >= digits.len() {
        return value;
    }
    let mut kept = digits[..keep]
        .iter()
        .fold(0u64, |acc, &d| acc * 10 + u64::from(d));
    if digits[keep] >= 5 {
        kept += 1;
    }
    // `kept` units of 10^(exponent + 1 - keep) = 10^(-decimals); parsing the
    // decimal string gives the correctly rounded double.
    let rounded: f64 = format!("{kept}e-{decimals}").parse().unwrap_or(value.abs());
    rounded.copysign(value)
}

#[cfg(test)]
mod tests {
    use super::round_half_away;

    #[test]
    fn rounds_half_away_from_zero_on_decimal_digits() {
        assert_eq!(round_half_away(1.005, 2), 1.01);
        assert_eq!(round_half_away(-1.005, 2), -1.01);
        assert_eq!(round_half_away(0.125, 2), 0.13);
        assert_eq!(round_half_away(0.5, 0), 1.0);
        assert_eq!(round_half_away(0.4, 0), 0.0);
        assert_eq!(round_half_away(9.995, 2), 10.0);
        assert_eq!(round_half_away(123.456, 1), 123.5);
        assert_eq!(round_half_away(1234.5, 0), 1235.0);
    }

    #[test]
    fn tiny_and_special_values() {
        // 0.004 rounded to 2 places: keep = -3 + 1 + 2 = 0 digits, next digit 4.
        assert_eq!(round_half_away(0.004, 2), 0.0);
        assert_eq!(round_half_away(0.005, 2), 0.01);
        assert_eq!(round_half_away(1e-9, 2), 0.0);
        assert!(round_half_away(-1e-9, 2).is_sign_negative());
        assert!(round_half_away(f64::NAN, 2).is_nan());
        assert_eq!(round_half_away(f64::INFINITY, 2), f64::INFINITY);
        assert_eq!(round_half_away(1e300, 2), 1e300);
        assert_eq!(round_half_away(0.0, 2), 0.0);
    }
}
