//! Adversarial test plugin: `aggregate` panics (traps) when the key field
//! `symbol` is `"BAD"`, otherwise returns the number of events as `n`
//! (i64). No inputs. With the param `panic_in_configure` set, `configure` panics.

use weir_guest::prelude::*;

/// Panics on the key `symbol = "BAD"`.
pub struct Panicky;

impl Plugin for Panicky {
    fn configure(params: &Params) -> Result<Self> {
        if params.get("panic_in_configure").is_some() {
            panic!("panicky: told to panic in configure");
        }
        Ok(Panicky)
    }

    fn describe(&self) -> Describe {
        Describe::new().output("n", Type::I64)
    }

    fn aggregate(&self, key: &Row, _window: Window, events: &Batch) -> Result<Vec<Row>> {
        if key.get("symbol").and_then(Value::as_str) == Some("BAD") {
            panic!("panicky: refusing key symbol = \"BAD\"");
        }
        let n = i64::try_from(events.len()).map_err(|_| "more events than an i64 can count")?;
        Ok(vec![Row::new().i64("n", n)])
    }
}

weir_guest::export_plugin!(Panicky);
