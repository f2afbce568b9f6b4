//! Adversarial test plugin: `aggregate` returns 1,000,000 rows per call,
//! `n` = 0, 1, ..., 999_999 (i64). No inputs.

use weir_guest::prelude::*;

/// Rows returned by every `aggregate` call.
pub const ROWS: i64 = 1_000_000;

/// Returns [`ROWS`] rows per call.
pub struct Huge;

impl Plugin for Huge {
    fn configure(_params: &Params) -> Result<Self> {
        Ok(Huge)
    }

    fn describe(&self) -> Describe {
        Describe::new().output("n", Type::I64)
    }

    fn aggregate(&self, _key: &Row, _window: Window, _events: &Batch) -> Result<Vec<Row>> {
        Ok((0..ROWS).map(|n| Row::new().i64("n", n)).collect())
    }
}

weir_guest::export_plugin!(Huge);
