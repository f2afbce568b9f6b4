//! `hotspot`: event count per key and window, optionally with the number of
//! distinct values of one field (the taxi pick-up hot spots).
//!
//! - Params: `distinct` (optional), a field whose distinct non-null values
//!   are counted; `distinct_type` (`"string"` or `"i64"`, default
//!   `"string"`), that field's type in the pipeline schema.
//! - Inputs: `<distinct>` (string or i64) when set, otherwise none.
//! - Outputs, in order: `count` (i64, events), and when `distinct` is set
//!   `distinct_<distinct>` (i64).

use std::collections::HashSet;

use weir_guest::prelude::*;

/// The configured plugin.
pub struct Hotspot {
    distinct: Option<(String, Type)>,
}

impl Plugin for Hotspot {
    fn configure(params: &Params) -> Result<Self> {
        let ty = match params.get("distinct_type").map(str::trim) {
            None | Some("string") => Type::Str,
            Some("i64") => Type::I64,
            Some(other) => {
                return Err(Error::new(format!(
                    "parameter `distinct_type` = {other:?} is not \"string\" or \"i64\""
                ))
                .with_hint("use the type the pipeline's [schema] gives the field"));
            }
        };
        let distinct = match params.get("distinct") {
            None => None,
            Some(_) => Some((params.required("distinct")?.to_string(), ty)),
        };
        Ok(Hotspot { distinct })
    }

    fn describe(&self) -> Describe {
        let describe = Describe::new().output("count", Type::I64);
        match &self.distinct {
            Some((field, ty)) => describe
                .input(field, *ty)
                .output(format!("distinct_{field}"), Type::I64),
            None => describe,
        }
    }

    fn aggregate(&self, _key: &Row, _window: Window, events: &Batch) -> Result<Vec<Row>> {
        let count = to_i64(events.len())?;
        let mut row = Row::new().i64("count", count);
        if let Some((field, ty)) = &self.distinct {
            let distinct = match ty {
                Type::I64 => events.i64(field)?.non_null().collect::<HashSet<_>>().len(),
                _ => events.str(field)?.non_null().collect::<HashSet<_>>().len(),
            };
            row = row.i64(format!("distinct_{field}"), to_i64(distinct)?);
        }
        Ok(vec![row])
    }
}

fn to_i64(n: usize) -> Result<i64> {
    i64::try_from(n).map_err(|_| Error::new(format!("count {n} does not fit an i64")))
}

weir_guest::export_plugin!(Hotspot);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_guest::testing::{NO_PARAMS, run_aggregate};

    const W: Window = Window {
        start: 0,
        end: 60_000,
    };

    fn key() -> Row {
        Row::new().str("pickup_area", "8")
    }

    #[test]
    fn counts_events_without_params() {
        let batch = Batch::new(vec![1, 2, 3]);
        let rows = run_aggregate::<Hotspot>(NO_PARAMS, key(), W, batch).unwrap();
        assert_eq!(rows, vec![Row::new().i64("count", 3)]);
    }

    #[test]
    fn counts_distinct_strings_ignoring_nulls() {
        // 5 events; taxis "a", "b", "a", null, "c": 3 distinct.
        let batch = Batch::new(vec![1, 2, 3, 4, 5]).with_str(
            "taxi_id",
            vec![Some("a"), Some("b"), Some("a"), None, Some("c")],
        );
        let rows = run_aggregate::<Hotspot>([("distinct", "taxi_id")], key(), W, batch).unwrap();
        assert_eq!(
            rows,
            vec![Row::new().i64("count", 5).i64("distinct_taxi_id", 3)]
        );
    }

    #[test]
    fn counts_distinct_integers() {
        // 4 events; locations 7, 7, 9, 7: 2 distinct.
        let batch =
            Batch::new(vec![1, 2, 3, 4]).with_i64("loc", vec![Some(7), Some(7), Some(9), Some(7)]);
        let params = [("distinct", "loc"), ("distinct_type", "i64")];
        let rows = run_aggregate::<Hotspot>(params, key(), W, batch).unwrap();
        assert_eq!(
            rows,
            vec![Row::new().i64("count", 4).i64("distinct_loc", 2)]
        );
    }

    #[test]
    fn unknown_distinct_type_is_rejected() {
        let params = [("distinct", "loc"), ("distinct_type", "f64")];
        let err = run_aggregate::<Hotspot>(params, key(), W, Batch::new(vec![])).unwrap_err();
        assert_eq!(
            err.message,
            "parameter `distinct_type` = \"f64\" is not \"string\" or \"i64\""
        );
    }
}
