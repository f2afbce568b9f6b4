//! `ticker`: per product mean price, maximum bid and ask, mean 24 h volume
//! and the latest event time (the crypto ticker).
//!
//! - Params (all optional, naming the input fields): `price` (default
//!   `"price"`), `best_bid` (`"best_bid"`), `best_ask` (`"best_ask"`),
//!   `volume` (`"volume_24h"`).
//! - Inputs: those four fields (f64).
//! - Outputs, in order: `mean_price`, `max_best_bid`, `max_best_ask`,
//!   `mean_volume_24h` (f64, nulls skipped, null when a field has no value),
//!   `latest_time` (string, RFC 3339 UTC with milliseconds, of the latest
//!   event), `events` (i64). Output names do not change with the params.

use weir_guest::prelude::*;
use weir_guest::time::rfc3339_ms;

/// The configured plugin: the input field names.
pub struct Ticker {
    price: String,
    best_bid: String,
    best_ask: String,
    volume: String,
}

impl Plugin for Ticker {
    fn configure(params: &Params) -> Result<Self> {
        let field =
            |name: &str, default: &str| params.get(name).map_or(default, str::trim).to_string();
        Ok(Ticker {
            price: field("price", "price"),
            best_bid: field("best_bid", "best_bid"),
            best_ask: field("best_ask", "best_ask"),
            volume: field("volume", "volume_24h"),
        })
    }

    fn describe(&self) -> Describe {
        Describe::new()
            .input(&self.price, Type::F64)
            .input(&self.best_bid, Type::F64)
            .input(&self.best_ask, Type::F64)
            .input(&self.volume, Type::F64)
            .outputs_of::<TickerRow>()
    }

    fn aggregate(&self, _key: &Row, _window: Window, events: &Batch) -> Result<Vec<Row>> {
        let count = i64::try_from(events.len()).map_err(|_| "more events than an i64 can count")?;
        let latest = events.timestamps().iter().max().map(|&ts| rfc3339_ms(ts));
        Ok(vec![
            TickerRow {
                mean_price: mean(events.f64(&self.price)?),
                max_best_bid: max(events.f64(&self.best_bid)?),
                max_best_ask: max(events.f64(&self.best_ask)?),
                mean_volume_24h: mean(events.f64(&self.volume)?),
                latest_time: latest,
                events: count,
            }
            .into(),
        ])
    }
}

/// The output columns, in order; their names do not change with the params.
#[derive(Output)]
struct TickerRow {
    mean_price: Option<f64>,
    max_best_bid: Option<f64>,
    max_best_ask: Option<f64>,
    mean_volume_24h: Option<f64>,
    latest_time: Option<String>,
    events: i64,
}

fn mean(column: Column<'_, f64>) -> Option<f64> {
    let (sum, n) = column
        .non_null()
        .fold((0.0, 0_usize), |(sum, n), v| (sum + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

fn max(column: Column<'_, f64>) -> Option<f64> {
    column.non_null().reduce(f64::max)
}

weir_guest::export_plugin!(Ticker);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_guest::testing::{NO_PARAMS, run_aggregate};

    const W: Window = Window {
        start: 1_705_931_040_000,
        end: 1_705_931_160_000,
    };

    #[test]
    fn summarises_a_window() {
        // 2024-01-22T13:45:00.000Z = 1_705_931_100_000 (19_744 days * 86_400 s
        // + 13:45 = 49_500 s); the last event is 250 ms later.
        let t = 1_705_931_100_000;
        let batch = Batch::new(vec![t - 1_000, t, t + 250])
            .with_f64("price", vec![Some(100.0), Some(101.0), Some(105.0)])
            .with_f64("best_bid", vec![Some(99.5), None, Some(104.5)])
            .with_f64("best_ask", vec![Some(100.5), Some(101.5), None])
            .with_f64("volume_24h", vec![None, Some(2_000.0), Some(3_000.0)]);
        let rows =
            run_aggregate::<Ticker>(NO_PARAMS, Row::new().str("product_id", "BTC-USD"), W, batch);
        let expected = Row::new()
            .f64("mean_price", 102.0) // (100 + 101 + 105) / 3 = 306 / 3
            .f64("max_best_bid", 104.5)
            .f64("max_best_ask", 101.5)
            .f64("mean_volume_24h", 2_500.0) // (2000 + 3000) / 2, null skipped
            .str("latest_time", "2024-01-22T13:45:00.250Z")
            .i64("events", 3);
        assert_eq!(rows.unwrap(), vec![expected]);
    }

    #[test]
    fn renamed_fields_and_all_null_columns() {
        let batch = Batch::new(vec![0])
            .with_f64("px", vec![Some(1.5)])
            .with_f64("bid", vec![None])
            .with_f64("ask", vec![None])
            .with_f64("vol", vec![None]);
        let params = [
            ("price", "px"),
            ("best_bid", "bid"),
            ("best_ask", "ask"),
            ("volume", "vol"),
        ];
        let rows = run_aggregate::<Ticker>(params, Row::new(), W, batch).unwrap();
        let expected = Row::new()
            .f64("mean_price", 1.5)
            .null("max_best_bid")
            .null("max_best_ask")
            .null("mean_volume_24h")
            .str("latest_time", "1970-01-01T00:00:00.000Z")
            .i64("events", 1);
        assert_eq!(rows, vec![expected]);
    }
}
