//! `fare-totals`: trip count and rounded sums of several f64 fields per
//! window (the taxi trips' fare/tips/total sums).
//!
//! - Params: `fields` (required), comma-separated field names, e.g.
//!   `"fare,tips,trip_total"`; `decimals` (default 2), places the sums are
//!   rounded to, half away from zero.
//! - Inputs: each field (f64).
//! - Filter: drops events where any configured field is null (pandas'
//!   `dropna` on those columns).
//! - Outputs, in order: `trips` (i64, events in the window), then
//!   `<field>_sum` (f64) for each field.

use weir_guest::prelude::*;

mod config;
use config::Config;

/// The configured plugin.
pub struct FareTotals(Config);

impl Plugin for FareTotals {
    fn configure(params: &Params) -> Result<Self> {
        Config::from_params(params).map(FareTotals)
    }

    fn describe(&self) -> Describe {
        self.0.describe()
    }

    fn filter(&self, events: &Batch) -> Result<Vec<bool>> {
        self.0.filter(events)
    }

    fn aggregate(&self, _key: &Row, _window: Window, events: &Batch) -> Result<Vec<Row>> {
        let sums = self
            .0
            .fields
            .iter()
            .map(|f| Ok(events.f64(f)?.non_null().sum()))
            .collect::<Result<Vec<f64>>>()?;
        Ok(vec![self.0.row(events.len() as u64, &sums)?])
    }
}

weir_guest::export_plugin!(FareTotals);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_guest::testing::{describe, run_aggregate, run_filter};

    const PARAMS: [(&str, &str); 1] = [("fields", "fare, tips")];

    fn trips() -> Batch {
        Batch::new(vec![1_000, 2_000, 3_000, 4_000])
            .with_f64("fare", vec![Some(12.5), None, Some(7.25), Some(30.0)])
            .with_f64("tips", vec![Some(2.0), Some(1.0), None, Some(5.55)])
            .with_str("vendor", vec![Some("a"), Some("b"), Some("c"), Some("d")])
    }

    #[test]
    fn filter_drops_events_with_any_null_field() {
        // Event 1 lacks a fare, event 2 lacks tips.
        assert_eq!(
            run_filter::<FareTotals>(PARAMS, trips()).unwrap(),
            [true, false, false, true]
        );
    }

    #[test]
    fn sums_are_rounded() {
        // Events 0 and 3 survive the filter: fares 12.5 + 30.0 = 42.5,
        // tips 2.0 + 5.55 = 7.55.
        let kept = Batch::new(vec![1_000, 4_000])
            .with_f64("fare", vec![Some(12.5), Some(30.0)])
            .with_f64("tips", vec![Some(2.0), Some(5.55)]);
        let w = Window {
            start: 0,
            end: 5_000,
        };
        let rows = run_aggregate::<FareTotals>(PARAMS, Row::new(), w, kept.clone()).unwrap();
        assert_eq!(
            rows,
            vec![
                Row::new()
                    .i64("trips", 2)
                    .f64("fare_sum", 42.5)
                    .f64("tips_sum", 7.55)
            ]
        );
        // With one decimal, half away from zero: 42.5 stays, 7.55 -> 7.6.
        let params = [("fields", "fare,tips"), ("decimals", "1")];
        let rows = run_aggregate::<FareTotals>(params, Row::new(), w, kept).unwrap();
        assert_eq!(
            rows,
            vec![
                Row::new()
                    .i64("trips", 2)
                    .f64("fare_sum", 42.5)
                    .f64("tips_sum", 7.6)
            ]
        );
    }

    #[test]
    fn describes_one_input_and_sum_per_field() {
        let d = describe::<FareTotals>([("fields", "fare,tips,trip_total")]).unwrap();
        let outputs: Vec<&str> = d.outputs().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(outputs, ["trips", "fare_sum", "tips_sum", "trip_total_sum"]);
        assert_eq!(d.inputs().len(), 3);
        assert!(d.has_filter());
    }

    #[test]
    fn bad_field_lists_are_rejected() {
        let empty = describe::<FareTotals>([("fields", " , ")]).unwrap_err();
        assert_eq!(empty.message, "parameter `fields` names no field");
        let dup = describe::<FareTotals>([("fields", "fare,tips,fare")]).unwrap_err();
        assert_eq!(
            dup.message,
            "parameter `fields` lists `fare` twice (item 3)"
        );
        let missing = describe::<FareTotals>(weir_guest::testing::NO_PARAMS).unwrap_err();
        assert_eq!(missing.message, "missing required parameter `fields`");
    }
}
