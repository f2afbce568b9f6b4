//! A plugin built for `weir:plugin@0.1.0` with bare `wit-bindgen` (no SDK): one window per
//! call, named rows. The host must keep loading such plugins. Outputs `count` (i64) and
//! `sum` (f64) of the `price` column, returning `sum` first to exercise the host's
//! reordering of named rows into the declared order.

wit_bindgen::generate!({
    path: "../../../wit/legacy/0.1.0",
    world: "aggregator",
});

use exports::weir::plugin::aggregate::Guest;
use weir::plugin::types::{
    Batch, ColumnData, Field, FieldType, PluginError, PluginInfo, Row, Value, Window,
};

struct Legacy;

impl Guest for Legacy {
    fn configure(_params: Vec<(String, String)>) -> Result<(), PluginError> {
        Ok(())
    }

    fn describe() -> PluginInfo {
        PluginInfo {
            name: "legacy".into(),
            version: "0.1.0".into(),
            inputs: vec![Field {
                name: "price".into(),
                ty: FieldType::F64,
            }],
            outputs: vec![
                Field {
                    name: "count".into(),
                    ty: FieldType::S64,
                },
                Field {
                    name: "sum".into(),
                    ty: FieldType::F64,
                },
            ],
            has_filter: false,
        }
    }

    fn filter(events: Batch) -> Vec<bool> {
        vec![true; events.timestamps.len()]
    }

    fn aggregate(_key: Row, _window: Window, events: Batch) -> Result<Vec<Row>, PluginError> {
        let mut sum = 0.0;
        let mut count = 0;
        for c in &events.columns {
            if let ColumnData::F64(values) = &c.data {
                for (i, v) in values.iter().enumerate() {
                    if !c.nulls.as_ref().is_some_and(|n| n[i]) {
                        sum += v;
                        count += 1;
                    }
                }
            }
        }
        Ok(vec![vec![
            ("sum".into(), Value::F64(sum)),
            ("count".into(), Value::S64(count)),
        ]])
    }
}

export!(Legacy);
