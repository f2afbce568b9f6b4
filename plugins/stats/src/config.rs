//! What the whole-window `stats` plugin and its incremental twin share: the
//! params, the declared fields and the output row. Included by both crates
//! with `#[path]`, so that neither links the other's exports.

use weir_guest::num::round_half_away;
use weir_guest::prelude::*;

/// The configured parameters.
pub struct Config {
    /// The f64 field summarised.
    pub field: String,
    /// Places the f64 outputs are rounded to, if any.
    pub decimals: Option<u32>,
}

impl Config {
    /// Reads `field` (required) and `decimals` (optional).
    pub fn from_params(params: &Params) -> Result<Self> {
        Ok(Config {
            field: params.required("field")?.to_string(),
            decimals: params.parse("decimals")?,
        })
    }

    /// One f64 input, the six outputs of [`StatsRow`].
    pub fn describe(&self) -> Describe {
        Describe::new()
            .input(&self.field, Type::F64)
            .outputs_of::<StatsRow>()
    }

    /// The output row from the summary of `count` values; `min`, `max` and
    /// `avg` are null without values, `stddev` (sample) below two.
    pub fn row(
        &self,
        count: usize,
        sum: f64,
        min: f64,
        max: f64,
        stddev: Option<f64>,
    ) -> Result<Row> {
        let counted = i64::try_from(count).map_err(|_| "more values than an i64 can count")?;
        let round = |v: f64| self.decimals.map_or(v, |d| round_half_away(v, d));
        let avg = (count > 0).then(|| sum / count as f64);
        Ok(StatsRow {
            count: counted,
            sum: round(sum),
            min: (count > 0).then(|| round(min)),
            max: (count > 0).then(|| round(max)),
            avg: avg.map(round),
            stddev: stddev.filter(|_| count >= 2).map(round),
        }
        .into())
    }
}

/// The output columns, in order.
#[derive(Output)]
pub struct StatsRow {
    /// Non-null values.
    pub count: i64,
    /// Their sum, 0 without values.
    pub sum: f64,
    /// Smallest value, null without values.
    pub min: Option<f64>,
    /// Largest value, null without values.
    pub max: Option<f64>,
    /// Mean, null without values.
    pub avg: Option<f64>,
    /// Sample standard deviation, null below two values.
    pub stddev: Option<f64>,
}
