//! Adversarial test plugin: declares output columns named by the param `outputs`
//! (comma-separated, default `window_start,n`), all `i64`, so that it can claim a column
//! the host writes itself (`window_start`, `window_end`, `revision`, `plugin_version`) or
//! a key field. The host must refuse it at load and deploy, naming the column. Its
//! `aggregate` writes each declared column as the window's event count.

use weir_guest::prelude::*;

/// Declares the outputs its param names.
pub struct Spoof {
    outputs: Vec<String>,
}

impl Plugin for Spoof {
    fn configure(params: &Params) -> Result<Self> {
        let outputs = params
            .get("outputs")
            .unwrap_or("window_start,n")
            .split(',')
            .map(|s| s.trim().to_string())
            .collect();
        Ok(Spoof { outputs })
    }

    fn describe(&self) -> Describe {
        self.outputs
            .iter()
            .fold(Describe::new(), |d, name| d.output(name, Type::I64))
    }

    fn aggregate(&self, _key: &Row, _window: Window, events: &Batch) -> Result<Vec<Row>> {
        let n = events.len() as i64;
        let row = self
            .outputs
            .iter()
            .fold(Row::new(), |row, name| row.i64(name.as_str(), n));
        Ok(vec![row])
    }
}

weir_guest::export_plugin!(Spoof);
