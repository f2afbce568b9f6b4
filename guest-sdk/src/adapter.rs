//! The bridge between the WIT exports and a [`Plugin`]: keeps the configured
//! instance, converts WIT types to SDK types and back, and maps errors.
//! The `#[unsafe(export_name)]` functions themselves come from the export
//! macro that `wit_bindgen::generate!` writes, invoked by
//! [`export_plugin!`](crate::export_plugin) with a type implementing
//! [`Export`].

use std::cell::RefCell;
use std::thread::LocalKey;

use crate::batch::internal::{ColumnBuf, Data};
use crate::bindings::exports::weir::plugin::aggregate::Guest;
use crate::bindings::weir::plugin::types as wit;
use crate::driver::{Driver, Finish, Group, Slot, Step};
use crate::{Batch, Describe, Error, Params, Result, Type, Value, Window};

/// What [`export_plugin!`](crate::export_plugin) and
/// [`export_incremental!`](crate::export_incremental) generate for a plugin
/// type: its name, version, how to configure it, and the thread-local slot
/// holding the configured driver. Every `Export` is a WIT `Guest` through the
/// blanket impl below.
pub trait Export: 'static {
    /// Reported plugin name (the plugin crate's `CARGO_PKG_NAME`).
    const NAME: &'static str;
    /// Reported plugin version (the plugin crate's `CARGO_PKG_VERSION`).
    const VERSION: &'static str;
    /// Configures the plugin type as a driver.
    fn make(params: &Params, key_fields: &[String]) -> Result<Box<dyn Driver>>;
    /// The slot holding the configured driver, `None` until `configure`.
    fn instance() -> &'static LocalKey<RefCell<Option<Box<dyn Driver>>>>;
}

impl<E: Export> Guest for E {
    fn configure(
        params: Vec<(String, String)>,
        key_fields: Vec<String>,
    ) -> Result<(), wit::PluginError> {
        let params = Params::from_pairs(params);
        E::instance().with(|slot| {
            *slot.borrow_mut() = None;
            let driver = E::make(&params, &key_fields).map_err(plugin_error)?;
            *slot.borrow_mut() = Some(driver);
            Ok(())
        })
    }

    fn describe() -> wit::PluginInfo {
        E::instance().with(|slot| match slot.borrow().as_deref() {
            Some(d) => plugin_info(E::NAME, E::VERSION, d.describe(), d.state_type()),
            None => plugin_info(E::NAME, E::VERSION, &Describe::new(), None),
        })
    }

    fn filter(events: wit::Batch) -> Vec<bool> {
        let events = batch_from_wit(events);
        let keep = E::instance().with(|slot| match slot.borrow().as_deref() {
            Some(d) => d.filter(&events),
            None => Err(not_configured()),
        });
        match keep {
            Ok(keep) => keep,
            // `filter` has no error channel: trap, and the host records a
            // plugin failure for this batch.
            Err(e) => panic!("filter failed: {e}"),
        }
    }

    fn aggregate(
        groups: Vec<wit::Group>,
        events: wit::Batch,
    ) -> Vec<Result<Vec<wit::Row>, wit::PluginError>> {
        let events = batch_from_wit(events);
        let groups: Vec<Group> = groups
            .into_iter()
            .map(|g| Group {
                key: g.key.into_iter().map(value_from_wit).collect(),
                window: window_from_wit(g.window),
                offset: g.events.offset,
                len: g.events.len,
            })
            .collect();
        let results = E::instance().with(|slot| match slot.borrow().as_deref() {
            Some(d) => d.aggregate(&groups, &events),
            None => groups.iter().map(|_| Err(not_configured())).collect(),
        });
        results.into_iter().map(rows_to_wit).collect()
    }

    fn step(plan: wit::Plan, events: wit::Batch) -> Result<wit::PlanOutput, wit::PluginError> {
        let events = batch_from_wit(events);
        let step = Step {
            slots: plan
                .slots
                .into_iter()
                .map(|s| match s {
                    wit::Slot::Held(bytes) => Slot::Held(bytes),
                    wit::Slot::Fresh(span) => Slot::Fresh(span.offset, span.len),
                    wit::Slot::Add((i, span)) => Slot::Add(i, span.offset, span.len),
                    wit::Slot::Merge((a, b)) => Slot::Merge(a, b),
                })
                .collect(),
            keep: plan.keep,
            finish: plan
                .finish
                .into_iter()
                .map(|f| Finish {
                    key: f.key.into_iter().map(value_from_wit).collect(),
                    window: window_from_wit(f.window),
                    slot: f.slot,
                })
                .collect(),
        };
        let out = E::instance()
            .with(|slot| match slot.borrow().as_deref() {
                Some(d) => d.step(&step, &events),
                None => Err(not_configured()),
            })
            .map_err(plugin_error)?;
        Ok(wit::PlanOutput {
            states: out.states,
            rows: out.rows.into_iter().map(rows_to_wit).collect(),
        })
    }
}

fn not_configured() -> Error {
    Error::new("not configured")
        .with_hint("the host must call `configure` before `filter`, `aggregate` and `step`")
}

fn window_from_wit(w: wit::Window) -> Window {
    Window {
        start: w.start,
        end: w.end,
    }
}

fn rows_to_wit(rows: Result<Vec<Vec<Value>>>) -> Result<Vec<wit::Row>, wit::PluginError> {
    rows.map(|rows| {
        rows.into_iter()
            .map(|r| r.into_iter().map(value_to_wit).collect())
            .collect()
    })
    .map_err(plugin_error)
}

fn plugin_info(
    name: &str,
    version: &str,
    describe: &Describe,
    state_type: Option<&str>,
) -> wit::PluginInfo {
    let fields = |fields: &[(String, Type)]| {
        fields
            .iter()
            .map(|(name, ty)| wit::Field {
                name: name.clone(),
                ty: field_type(*ty),
            })
            .collect()
    };
    wit::PluginInfo {
        name: name.to_string(),
        version: version.to_string(),
        inputs: fields(describe.inputs()),
        outputs: fields(describe.outputs()),
        has_filter: describe.has_filter(),
        state_type: state_type.map(str::to_string),
    }
}

// Conversions are free functions and private methods, not `From` impls, so
// that no WIT type shows up in the SDK's public documentation.

fn plugin_error(e: Error) -> wit::PluginError {
    wit::PluginError {
        message: e.message,
        hint: e.hint,
    }
}

fn field_type(ty: Type) -> wit::FieldType {
    match ty {
        Type::F64 => wit::FieldType::F64,
        Type::I64 => wit::FieldType::S64,
        Type::Str => wit::FieldType::String,
        Type::Bool => wit::FieldType::Bool,
    }
}

fn value_from_wit(value: wit::Value) -> Value {
    match value {
        wit::Value::Null => Value::Null,
        wit::Value::F64(v) => Value::F64(v),
        wit::Value::S64(v) => Value::I64(v),
        wit::Value::String(v) => Value::Str(v),
        wit::Value::Bool(v) => Value::Bool(v),
    }
}

fn value_to_wit(value: Value) -> wit::Value {
    match value {
        Value::Null => wit::Value::Null,
        Value::F64(v) => wit::Value::F64(v),
        Value::I64(v) => wit::Value::S64(v),
        Value::Str(v) => wit::Value::String(v),
        Value::Bool(v) => wit::Value::Bool(v),
    }
}

/// Moves the host's lists into a [`Batch`]; no values are copied.
fn batch_from_wit(batch: wit::Batch) -> Batch {
    let columns = batch
        .columns
        .into_iter()
        .map(|c| {
            let data = match c.data {
                wit::ColumnData::F64(v) => Data::F64(v),
                wit::ColumnData::S64(v) => Data::I64(v),
                wit::ColumnData::String(v) => Data::Str(v),
                wit::ColumnData::Bool(v) => Data::Bool(v),
            };
            ColumnBuf {
                name: c.name,
                data,
                nulls: c.nulls,
            }
        })
        .collect();
    Batch::from_parts(batch.timestamps, columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wit_batch_and_values_convert_without_loss() {
        let wit_batch = wit::Batch {
            timestamps: vec![5, 6],
            columns: vec![
                wit::Column {
                    name: "p".into(),
                    data: wit::ColumnData::F64(vec![1.5, 0.0]),
                    nulls: Some(vec![false, true]),
                },
                wit::Column {
                    name: "s".into(),
                    data: wit::ColumnData::String(vec!["a".into(), "b".into()]),
                    nulls: None,
                },
                wit::Column {
                    name: "i".into(),
                    data: wit::ColumnData::S64(vec![7, 8]),
                    nulls: None,
                },
                wit::Column {
                    name: "b".into(),
                    data: wit::ColumnData::Bool(vec![true, false]),
                    nulls: None,
                },
            ],
        };
        let expected = Batch::new(vec![5, 6])
            .with_f64("p", vec![Some(1.5), None])
            .with_str("s", vec![Some("a"), Some("b")])
            .with_i64("i", vec![Some(7), Some(8)])
            .with_bool("b", vec![Some(true), Some(false)]);
        assert_eq!(batch_from_wit(wit_batch), expected);

        for v in [
            Value::Null,
            Value::F64(1.5),
            Value::I64(-2),
            Value::Str("x".into()),
            Value::Bool(true),
        ] {
            assert_eq!(value_from_wit(value_to_wit(v.clone())), v);
        }
    }

    #[test]
    fn errors_types_and_info_map_to_wit() {
        let e = plugin_error(Error::new("m").with_hint("h"));
        assert_eq!((e.message.as_str(), e.hint.as_deref()), ("m", Some("h")));
        assert!(matches!(field_type(Type::F64), wit::FieldType::F64));
        assert!(matches!(field_type(Type::Str), wit::FieldType::String));
        assert!(matches!(field_type(Type::Bool), wit::FieldType::Bool));
        let d = Describe::new().input("x", Type::I64).output("n", Type::I64);
        let info = plugin_info("p", "1.2.3", &d, Some("S/v1"));
        assert_eq!((info.name.as_str(), info.version.as_str()), ("p", "1.2.3"));
        assert_eq!(info.outputs[0].name, "n");
        assert_eq!(info.state_type.as_deref(), Some("S/v1"));
        assert!(!info.has_filter);
    }
}
