//! `stats`: count, sum, min, max, mean and sample standard deviation of one
//! f64 field, per key and window (the stock-ticks moving average).
//!
//! - Params: `field` (required), the field to summarise; `decimals`
//!   (optional), round the f64 outputs to that many places, half away from
//!   zero.
//! - Inputs: `<field>` (f64).
//! - Outputs, in order: `count` (i64, non-null values), `sum` (f64, 0 when
//!   there are none), `min`, `max`, `avg` (f64, null when `count` is 0),
//!   `stddev` (f64, sample standard deviation as Spark's `stddev`, null when
//!   `count` < 2).

use weir_guest::prelude::*;

mod config;
use config::Config;

/// The configured plugin.
pub struct Stats(Config);

impl Plugin for Stats {
    fn configure(params: &Params) -> Result<Self> {
        Config::from_params(params).map(Stats)
    }

    fn describe(&self) -> Describe {
        self.0.describe()
    }

    fn aggregate(&self, _key: &Row, _window: Window, events: &Batch) -> Result<Vec<Row>> {
        let values = events.f64(&self.0.field)?;
        let (mut count, mut sum) = (0_usize, 0.0);
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.non_null() {
            count += 1;
            sum += v;
            min = min.min(v);
            max = max.max(v);
        }
        // Two passes: the mean first, then squared deviations from it, which
        // is exact enough where the one-pass sum-of-squares formula cancels.
        let stddev = (count >= 2).then(|| {
            let mean = sum / count as f64;
            let squares: f64 = values.non_null().map(|v| (v - mean) * (v - mean)).sum();
            (squares / (count as f64 - 1.0)).sqrt()
        });
        Ok(vec![self.0.row(count, sum, min, max, stddev)?])
    }
}

weir_guest::export_plugin!(Stats);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_guest::testing::{assert_rows_approx, run_aggregate};

    const W: Window = Window {
        start: 0,
        end: 3_000,
    };

    fn run(params: &[(&str, &str)], prices: Vec<Option<f64>>) -> Result<Vec<Row>> {
        let timestamps = (0..prices.len() as i64).map(|i| i * 100).collect();
        let batch = Batch::new(timestamps).with_f64("price", prices);
        run_aggregate::<Stats>(
            params.iter().copied(),
            Row::new().str("symbol", "AAPL"),
            W,
            batch,
        )
    }

    #[test]
    fn textbook_sample() {
        // 2, 4, 4, 4, 5, 5, 7, 9 and a null: count 8, sum 40, mean 5;
        // squared deviations 9+1+1+1+0+0+4+16 = 32, sample variance 32/7.
        let prices = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0].map(Some);
        let mut prices = prices.to_vec();
        prices.insert(3, None);
        let rows = run(&[("field", "price")], prices).unwrap();
        let expected = Row::new()
            .i64("count", 8)
            .f64("sum", 40.0)
            .f64("min", 2.0)
            .f64("max", 9.0)
            .f64("avg", 5.0)
            .f64("stddev", (32.0_f64 / 7.0).sqrt()); // 2.138089935...
        assert_rows_approx(&rows, &[expected], 1e-12);
    }

    #[test]
    fn decimals_round_every_f64_output() {
        // 1, 2, 2: sum 5, mean 5/3 = 1.666.. -> 1.67; deviations -2/3, 1/3, 1/3,
        // squares 4/9 + 1/9 + 1/9 = 2/3, / (3 - 1) = 1/3, sqrt = 0.57735.. -> 0.58.
        let rows = run(
            &[("field", "price"), ("decimals", "2")],
            vec![Some(1.0), Some(2.0), Some(2.0)],
        );
        let expected = Row::new()
            .i64("count", 3)
            .f64("sum", 5.0)
            .f64("min", 1.0)
            .f64("max", 2.0)
            .f64("avg", 1.67)
            .f64("stddev", 0.58);
        assert_eq!(rows.unwrap(), vec![expected]);
    }

    #[test]
    fn one_value_has_no_stddev_and_no_values_have_no_extrema() {
        let one = run(&[("field", "price")], vec![None, Some(-3.5)]).unwrap();
        let expected = Row::new()
            .i64("count", 1)
            .f64("sum", -3.5)
            .f64("min", -3.5)
            .f64("max", -3.5)
            .f64("avg", -3.5)
            .null("stddev");
        assert_eq!(one, vec![expected]);

        let none = run(&[("field", "price")], vec![None, None]).unwrap();
        let expected = Row::new()
            .i64("count", 0)
            .f64("sum", 0.0)
            .null("min")
            .null("max")
            .null("avg")
            .null("stddev");
        assert_eq!(none, vec![expected]);
    }

    #[test]
    fn bad_params_are_reported_with_the_param_name() {
        let missing = run(&[], vec![Some(1.0)]).unwrap_err();
        assert_eq!(missing.message, "missing required parameter `field`");
        let bad = run(&[("field", "price"), ("decimals", "-1")], vec![Some(1.0)]).unwrap_err();
        assert!(bad.message.contains("`decimals` = \"-1\""), "{bad}");
    }
}
