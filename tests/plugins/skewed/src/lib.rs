//! Test plugin: a candidate version of `stats` that differs on purpose, for shadow runs.
//! Outputs `count` (i64) and `max` (f64) of the f64 field named by the param `field`
//! (default `price`), as `stats` does, except:
//!
//! - for the key `symbol = "MSFT"`, `max` is one more than the true maximum;
//! - for the key `symbol = "GOOG"`, `aggregate` panics (traps).

use weir_guest::prelude::*;

/// Counts and takes the maximum, wrongly for MSFT, not at all for GOOG.
pub struct Skewed {
    field: String,
}

impl Plugin for Skewed {
    fn configure(params: &Params) -> Result<Self> {
        Ok(Skewed {
            field: params.get("field").unwrap_or("price").to_string(),
        })
    }

    fn describe(&self) -> Describe {
        Describe::new()
            .input(&self.field, Type::F64)
            .output("count", Type::I64)
            .output("max", Type::F64)
    }

    fn aggregate(&self, key: &Row, _window: Window, events: &Batch) -> Result<Vec<Row>> {
        let symbol = key.get("symbol").and_then(Value::as_str);
        if symbol == Some("GOOG") {
            panic!("skewed: refusing key symbol = \"GOOG\"");
        }
        let values = events.f64(&self.field)?;
        let (mut count, mut max) = (0_i64, f64::NEG_INFINITY);
        for v in values.non_null() {
            count += 1;
            max = max.max(v);
        }
        if symbol == Some("MSFT") {
            max += 1.0;
        }
        Ok(vec![Row::new().i64("count", count).f64("max", max)])
    }
}

weir_guest::export_plugin!(Skewed);
