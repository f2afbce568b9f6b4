//! What the whole-window `fare-totals` plugin and its incremental twin share:
//! the params, the declared fields, the filter and the output row. Included
//! by both crates with `#[path]`, so that neither links the other's exports.

use weir_guest::num::round_half_away;
use weir_guest::prelude::*;

/// The configured parameters.
pub struct Config {
    /// The f64 fields summed.
    pub fields: Vec<String>,
    /// Places the sums are rounded to.
    pub decimals: u32,
}

impl Config {
    /// Reads `fields` (required, comma-separated, each once) and `decimals`
    /// (default 2).
    pub fn from_params(params: &Params) -> Result<Self> {
        params.required("fields")?;
        let fields = params.list("fields").unwrap_or_default();
        if fields.is_empty() {
            return Err(Error::new("parameter `fields` names no field")
                .with_hint("list the fields to sum, e.g. fields = \"fare,tips,trip_total\""));
        }
        if let Some((i, dup)) = fields
            .iter()
            .enumerate()
            .find(|(i, f)| fields[..*i].contains(f))
        {
            return Err(Error::new(format!(
                "parameter `fields` lists `{dup}` twice (item {})",
                i + 1
            ))
            .with_hint("list each field once"));
        }
        Ok(Config {
            fields,
            decimals: params.parse_or("decimals", 2)?,
        })
    }

    /// One f64 input per field; `trips`, then one sum per field.
    pub fn describe(&self) -> Describe {
        let mut describe = Describe::new().output("trips", Type::I64).with_filter();
        for field in &self.fields {
            describe = describe
                .input(field, Type::F64)
                .output(format!("{field}_sum"), Type::F64);
        }
        describe
    }

    /// Keeps events where every field has a value.
    pub fn filter(&self, events: &Batch) -> Result<Vec<bool>> {
        let mut keep = vec![true; events.len()];
        for field in &self.fields {
            let column = events.f64(field)?;
            for (keep, value) in keep.iter_mut().zip(column.iter()) {
                *keep &= value.is_some();
            }
        }
        Ok(keep)
    }

    /// The output row: the trip count and the rounded sums, in field order.
    pub fn row(&self, trips: u64, sums: &[f64]) -> Result<Row> {
        let trips = i64::try_from(trips).map_err(|_| "more events than an i64 can count")?;
        let mut row = Row::new().i64("trips", trips);
        for (field, sum) in self.fields.iter().zip(sums) {
            row = row.f64(format!("{field}_sum"), round_half_away(*sum, self.decimals));
        }
        Ok(row)
    }
}
