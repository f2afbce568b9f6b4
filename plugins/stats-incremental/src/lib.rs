//! `stats-incremental`: the `stats` plugin (count, sum, min, max, mean and
//! sample standard deviation of one f64 field) as an incremental aggregate,
//! for large or heavily overlapping windows. Same params, inputs and outputs
//! as `stats`; the standard deviation comes from merged (count, mean, M2)
//! moments (two passes per added batch, Chan et al.'s pairwise merge) instead
//! of two passes over the window, so it may differ from `stats` in the last
//! bits.

use serde::{Deserialize, Serialize};
use weir_guest::prelude::*;

#[path = "../../stats/src/config.rs"]
mod config;
use config::Config;

/// The configured plugin.
pub struct StatsIncremental(Config);

/// The moments of a set of values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    mean: f64,
    /// Sum of squared deviations from `mean`.
    m2: f64,
}

impl Incremental for StatsIncremental {
    type State = Moments;

    fn configure(params: &Params) -> Result<Self> {
        Config::from_params(params).map(StatsIncremental)
    }

    fn describe(&self) -> Describe {
        self.0.describe()
    }

    fn init(&self) -> Moments {
        Moments {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            mean: 0.0,
            m2: 0.0,
        }
    }

    fn add(&self, m: &mut Moments, events: &Batch) -> Result<()> {
        // The batch's own moments in two passes (its mean, then squared deviations from
        // it), merged in: as exact as `stats`' two passes, where Welford's one-value
        // updates lose digits when the spread is small against the mean.
        let values = events.f64(&self.0.field)?;
        let mut b = self.init();
        for v in values.non_null() {
            b.count += 1;
            b.sum += v;
            b.min = b.min.min(v);
            b.max = b.max.max(v);
        }
        if b.count == 0 {
            return Ok(());
        }
        b.mean = b.sum / b.count as f64;
        b.m2 = values.non_null().map(|v| (v - b.mean) * (v - b.mean)).sum();
        self.merge(m, &b);
        Ok(())
    }

    fn merge(&self, m: &mut Moments, later: &Moments) {
        if later.count == 0 {
            return;
        }
        if m.count == 0 {
            *m = later.clone();
            return;
        }
        // Chan, Golub and LeVeque's pairwise update.
        let (na, nb) = (m.count as f64, later.count as f64);
        let n = na + nb;
        let delta = later.mean - m.mean;
        m.m2 += later.m2 + delta * delta * na * nb / n;
        m.count += later.count;
        m.sum += later.sum;
        m.mean = m.sum / m.count as f64;
        m.min = m.min.min(later.min);
        m.max = m.max.max(later.max);
    }

    fn finish(&self, _key: &Row, _window: Window, m: &Moments) -> Result<Vec<Row>> {
        let count = usize::try_from(m.count).map_err(|_| "more values than a usize can count")?;
        let stddev = (m.count >= 2).then(|| (m.m2 / (m.count as f64 - 1.0)).sqrt());
        Ok(vec![self.0.row(count, m.sum, m.min, m.max, stddev)?])
    }
}

weir_guest::export_incremental!(StatsIncremental);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_guest::testing::{assert_rows_approx, run_incremental};

    const W: Window = Window {
        start: 0,
        end: 3_000,
    };

    fn pane(prices: &[Option<f64>]) -> Batch {
        let timestamps = (0..prices.len() as i64).map(|i| i * 100).collect();
        Batch::new(timestamps).with_f64("price", prices.to_vec())
    }

    #[test]
    fn textbook_sample_over_three_panes() {
        // 2, 4, 4, 4, 5, 5, 7, 9 and a null, split into panes: count 8, sum
        // 40, mean 5; squared deviations 9+1+1+1+0+0+4+16 = 32, variance 32/7.
        let panes = vec![
            pane(&[Some(2.0), Some(4.0), Some(4.0)]),
            pane(&[None]),
            pane(&[Some(4.0), Some(5.0), Some(5.0), Some(7.0), Some(9.0)]),
        ];
        let rows = run_incremental::<StatsIncremental>([("field", "price")], Row::new(), W, panes)
            .unwrap();
        let expected = Row::new()
            .i64("count", 8)
            .f64("sum", 40.0)
            .f64("min", 2.0)
            .f64("max", 9.0)
            .f64("avg", 5.0)
            .f64("stddev", (32.0_f64 / 7.0).sqrt());
        assert_rows_approx(&rows, &[expected], 1e-12);
    }

    #[test]
    fn empty_panes_are_the_identity() {
        // One value -3.5 between empty panes: no stddev.
        let panes = vec![pane(&[]), pane(&[None, Some(-3.5)]), pane(&[])];
        let rows = run_incremental::<StatsIncremental>([("field", "price")], Row::new(), W, panes)
            .unwrap();
        let expected = Row::new()
            .i64("count", 1)
            .f64("sum", -3.5)
            .f64("min", -3.5)
            .f64("max", -3.5)
            .f64("avg", -3.5)
            .null("stddev");
        assert_eq!(rows, vec![expected]);
        let none = run_incremental::<StatsIncremental>([("field", "price")], Row::new(), W, vec![])
            .unwrap();
        let expected = Row::new()
            .i64("count", 0)
            .f64("sum", 0.0)
            .null("min")
            .null("max")
            .null("avg")
            .null("stddev");
        assert_eq!(none, vec![expected]);
    }
}
