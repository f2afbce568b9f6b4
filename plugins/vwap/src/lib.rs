//! `vwap`: volume-weighted average price, a price percentile and the total
//! volume per key and window.
//!
//! - Params: `price` (default `"price"`) and `volume` (default `"volume"`),
//!   the input fields; `percentile` (default `"50"`), a whole number from 0
//!   to 100.
//! - Inputs: `<price>` (f64), `<volume>` (f64).
//! - Outputs, in order: `vwap` (f64, `sum(price * volume) / sum(volume)` over
//!   events with both values, null when that volume sum is 0), `price_p<N>`
//!   (f64, e.g. `price_p50`: linear interpolation between the closest ranks
//!   of the non-null prices, as numpy's default and Spark's exact
//!   `percentile`; null with no prices), `volume` (f64, sum of all non-null
//!   volumes).

use weir_guest::prelude::*;

/// The configured plugin.
pub struct Vwap {
    price: String,
    volume: String,
    percentile: u32,
}

impl Plugin for Vwap {
    fn configure(params: &Params) -> Result<Self> {
        let percentile = match params.get("percentile").map(str::trim) {
            None => 50,
            Some(raw) => raw.parse().ok().filter(|p| *p <= 100).ok_or_else(|| {
                Error::new(format!(
                    "parameter `percentile` = {raw:?} is not a whole number from 0 to 100"
                ))
                .with_hint("e.g. percentile = \"95\" for the 95th percentile of prices")
            })?,
        };
        let field = |name: &str| params.get(name).map_or(name, str::trim).to_string();
        Ok(Vwap {
            price: field("price"),
            volume: field("volume"),
            percentile,
        })
    }

    fn describe(&self) -> Describe {
        Describe::new()
            .input(&self.price, Type::F64)
            .input(&self.volume, Type::F64)
            .output("vwap", Type::F64)
            .output(format!("price_p{}", self.percentile), Type::F64)
            .output("volume", Type::F64)
    }

    fn aggregate(&self, _key: &Row, _window: Window, events: &Batch) -> Result<Vec<Row>> {
        let prices = events.f64(&self.price)?;
        let volumes = events.f64(&self.volume)?;
        let (mut notional, mut traded) = (0.0, 0.0);
        for (p, v) in prices.iter().zip(volumes.iter()) {
            if let (Some(p), Some(v)) = (p, v) {
                notional += p * v;
                traded += v;
            }
        }
        let vwap = (traded != 0.0).then(|| notional / traded);
        let mut sorted: Vec<f64> = prices.non_null().collect();
        sorted.sort_by(f64::total_cmp);
        Ok(vec![
            Row::new()
                .opt_f64("vwap", vwap)
                .opt_f64(
                    format!("price_p{}", self.percentile),
                    percentile(&sorted, self.percentile),
                )
                .f64("volume", volumes.non_null().sum()),
        ])
    }
}

/// The `pct`-th percentile of ascending `sorted`: rank `pct / 100 * (n - 1)`,
/// interpolated linearly between the values at the ranks around it.
fn percentile(sorted: &[f64], pct: u32) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    // Exact in f64 for any realistic batch (n < 2^53 / 100).
    let rank = f64::from(pct) * last as f64 / 100.0;
    let lo = rank.floor();
    let (lo_value, hi_value) = (sorted.get(lo as usize)?, sorted.get(rank.ceil() as usize)?);
    Some(lo_value + (hi_value - lo_value) * (rank - lo))
}

weir_guest::export_plugin!(Vwap);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_guest::testing::{NO_PARAMS, assert_rows_approx, run_aggregate};

    const W: Window = Window {
        start: 0,
        end: 1_000,
    };

    fn trades() -> Batch {
        // Out of price order on purpose: the percentile sorts.
        Batch::new(vec![1, 2, 3, 4, 5])
            .with_f64(
                "price",
                vec![Some(30.0), Some(10.0), Some(40.0), Some(20.0), None],
            )
            .with_f64(
                "volume",
                vec![Some(3.0), Some(1.0), Some(4.0), Some(2.0), Some(5.0)],
            )
    }

    fn run(params: &[(&str, &str)]) -> Result<Vec<Row>> {
        run_aggregate::<Vwap>(
            params.iter().copied(),
            Row::new().str("symbol", "X"),
            W,
            trades(),
        )
    }

    #[test]
    fn vwap_median_and_volume() {
        // Pairs with both values: 30*3 + 10*1 + 40*4 + 20*2 = 90 + 10 + 160 + 40
        // = 300 over volume 3 + 1 + 4 + 2 = 10, so vwap 30. Prices sorted
        // 10, 20, 30, 40: p50 rank 0.5 * 3 = 1.5, 20 + 0.5 * (30 - 20) = 25.
        // Volume counts the null-price event too: 10 + 5 = 15.
        let expected = Row::new()
            .f64("vwap", 30.0)
            .f64("price_p50", 25.0)
            .f64("volume", 15.0);
        assert_eq!(run(&[]).unwrap(), vec![expected]);
    }

    #[test]
    fn other_percentiles_interpolate() {
        // p90: rank 0.9 * 3 = 2.7, 30 + 0.7 * (40 - 30) = 37.
        let p90 = run(&[("percentile", "90")]).unwrap();
        let expected = Row::new()
            .f64("vwap", 30.0)
            .f64("price_p90", 37.0)
            .f64("volume", 15.0);
        assert_rows_approx(&p90, &[expected], 1e-9);
        // p0 and p100 are the extremes.
        assert_eq!(
            run(&[("percentile", "0")]).unwrap()[0].get("price_p0"),
            Some(&Value::F64(10.0))
        );
        assert_eq!(
            run(&[("percentile", "100")]).unwrap()[0].get("price_p100"),
            Some(&Value::F64(40.0))
        );
    }

    #[test]
    fn zero_volume_and_no_prices_are_null() {
        let batch = Batch::new(vec![1, 2])
            .with_f64("px", vec![None, None])
            .with_f64("qty", vec![Some(0.0), None]);
        let params = [("price", "px"), ("volume", "qty")];
        let rows = run_aggregate::<Vwap>(params, Row::new(), W, batch).unwrap();
        assert_eq!(
            rows,
            vec![Row::new().null("vwap").null("price_p50").f64("volume", 0.0)]
        );
    }

    #[test]
    fn percentile_out_of_range_is_rejected() {
        for bad in ["101", "-5", "ninety", "99.9"] {
            let err = run(&[("percentile", bad)]).unwrap_err();
            assert!(
                err.message.contains("is not a whole number from 0 to 100"),
                "{err}"
            );
            assert!(err.hint.is_some());
        }
        assert!(run_aggregate::<Vwap>(NO_PARAMS, Row::new(), W, trades()).is_ok());
    }
}
