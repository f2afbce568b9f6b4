//! `fare-totals-incremental`: the `fare-totals` plugin (trip count and
//! rounded sums of several f64 fields) as an incremental aggregate, for
//! "so far today" cumulative windows at a fine step. Same params, filter,
//! inputs and outputs as `fare-totals`; sums are added in another order, so
//! they may differ from `fare-totals` in the last bits before rounding.

use weir_guest::prelude::*;

#[path = "../../fare-totals/src/config.rs"]
mod config;
use config::Config;

/// The configured plugin.
pub struct FareTotalsIncremental(Config);

impl Incremental for FareTotalsIncremental {
    /// The trip count and one unrounded sum per field.
    type State = (u64, Vec<f64>);

    fn configure(params: &Params) -> Result<Self> {
        Config::from_params(params).map(FareTotalsIncremental)
    }

    fn describe(&self) -> Describe {
        self.0.describe()
    }

    fn filter(&self, events: &Batch) -> Result<Vec<bool>> {
        self.0.filter(events)
    }

    fn init(&self) -> (u64, Vec<f64>) {
        (0, vec![0.0; self.0.fields.len()])
    }

    fn add(&self, (trips, sums): &mut (u64, Vec<f64>), events: &Batch) -> Result<()> {
        *trips += events.len() as u64;
        for (field, sum) in self.0.fields.iter().zip(sums.iter_mut()) {
            *sum += events.f64(field)?.non_null().sum::<f64>();
        }
        Ok(())
    }

    fn merge(&self, (trips, sums): &mut (u64, Vec<f64>), (t, s): &(u64, Vec<f64>)) {
        *trips += t;
        for (sum, more) in sums.iter_mut().zip(s) {
            *sum += more;
        }
    }

    fn finish(
        &self,
        _key: &Row,
        _window: Window,
        (trips, sums): &(u64, Vec<f64>),
    ) -> Result<Vec<Row>> {
        Ok(vec![self.0.row(*trips, sums)?])
    }
}

weir_guest::export_incremental!(FareTotalsIncremental);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_guest::testing::run_incremental;

    #[test]
    fn panes_sum_like_one_window() {
        // Panes: fares 12.5 and 30.0 (tips 2.0, 5.55), then an empty pane,
        // then fare 7.25 (tips 1.0): 3 trips, fares 49.75, tips 8.55.
        let a = Batch::new(vec![1_000, 2_000])
            .with_f64("fare", vec![Some(12.5), Some(30.0)])
            .with_f64("tips", vec![Some(2.0), Some(5.55)]);
        let b = Batch::new(vec![])
            .with_f64("fare", vec![])
            .with_f64("tips", vec![]);
        let c = Batch::new(vec![3_000])
            .with_f64("fare", vec![Some(7.25)])
            .with_f64("tips", vec![Some(1.0)]);
        let w = Window {
            start: 0,
            end: 5_000,
        };
        let rows = run_incremental::<FareTotalsIncremental>(
            [("fields", "fare,tips")],
            Row::new(),
            w,
            vec![a, b, c],
        )
        .unwrap();
        assert_eq!(
            rows,
            vec![
                Row::new()
                    .i64("trips", 3)
                    .f64("fare_sum", 49.75)
                    .f64("tips_sum", 8.55)
            ]
        );
    }
}
