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
use crate::{Batch, Describe, Error, Params, Plugin, Result, Row, Type, Value, Window};

/// What [`export_plugin!`](crate::export_plugin) generates for a plugin type:
/// its name, version and the thread-local slot holding the configured
/// instance. Every `Export` is a WIT `Guest` through the blanket impl below.
pub trait Export: 'static {
    /// The plugin type.
    type Plugin: Plugin;
    /// Reported plugin name (the plugin crate's `CARGO_PKG_NAME`).
    const NAME: &'static str;
    /// Reported plugin version (the plugin crate's `CARGO_PKG_VERSION`).
    const VERSION: &'static str;
    /// The slot holding the configured instance, `None` until `configure`.
    fn instance() -> &'static LocalKey<RefCell<Option<Self::Plugin>>>;
}

impl<E: Export> Guest for E {
    fn configure(params: Vec<(String, String)>) -> Result<(), wit::PluginError> {
        let params = Params::from_pairs(params);
        E::instance()
            .with(|slot| configure(slot, &params))
            .map_err(plugin_error)
    }

    fn describe() -> wit::PluginInfo {
        E::instance().with(|slot| {
            let describe = describe(slot);
            plugin_info(E::NAME, E::VERSION, &describe)
        })
    }

    fn filter(events: wit::Batch) -> Vec<bool> {
        let events = batch_from_wit(events);
        match E::instance().with(|slot| filter(slot, &events)) {
            Ok(keep) => keep,
            // `filter` has no error channel: trap, and the host records a
            // plugin failure for this batch.
            Err(e) => panic!("filter failed: {e}"),
        }
    }

    fn aggregate(
        key: wit::Row,
        window: wit::Window,
        events: wit::Batch,
    ) -> Result<Vec<wit::Row>, wit::PluginError> {
        let key = Row::from_wit(key);
        let window = Window {
            start: window.start,
            end: window.end,
        };
        let events = batch_from_wit(events);
        E::instance()
            .with(|slot| aggregate(slot, &key, window, &events))
            .map(|rows| rows.into_iter().map(Row::into_wit).collect())
            .map_err(plugin_error)
    }
}

fn not_configured() -> Error {
    Error::new("not configured")
        .with_hint("the host must call `configure` before `filter` and `aggregate`")
}

/// Configures a plugin into `slot`; a failure leaves the slot empty.
pub(crate) fn configure<P: Plugin>(slot: &RefCell<Option<P>>, params: &Params) -> Result<()> {
    *slot.borrow_mut() = None;
    let plugin = P::configure(params)?;
    *slot.borrow_mut() = Some(plugin);
    Ok(())
}

/// The configured plugin's description; empty before `configure`.
pub(crate) fn describe<P: Plugin>(slot: &RefCell<Option<P>>) -> Describe {
    slot.borrow().as_ref().map(P::describe).unwrap_or_default()
}

/// Runs the filter, checking that it returned one entry per event.
pub(crate) fn filter<P: Plugin>(slot: &RefCell<Option<P>>, events: &Batch) -> Result<Vec<bool>> {
    let slot = slot.borrow();
    let plugin = slot.as_ref().ok_or_else(not_configured)?;
    let keep = plugin.filter(events)?;
    if keep.len() != events.len() {
        return Err(Error::new(format!(
            "filter returned {} entries for {} events",
            keep.len(),
            events.len()
        ))
        .with_hint("return one bool per event of the batch"));
    }
    Ok(keep)
}

/// Runs the aggregate.
pub(crate) fn aggregate<P: Plugin>(
    slot: &RefCell<Option<P>>,
    key: &Row,
    window: Window,
    events: &Batch,
) -> Result<Vec<Row>> {
    let slot = slot.borrow();
    let plugin = slot.as_ref().ok_or_else(not_configured)?;
    plugin.aggregate(key, window, events)
}

fn plugin_info(name: &str, version: &str, describe: &Describe) -> wit::PluginInfo {
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

impl Row {
    fn from_wit(row: wit::Row) -> Row {
        row.into_iter()
            .map(|(name, value)| {
                let value = match value {
                    wit::Value::Null => Value::Null,
                    wit::Value::F64(v) => Value::F64(v),
                    wit::Value::S64(v) => Value::I64(v),
                    wit::Value::String(v) => Value::Str(v),
                    wit::Value::Bool(v) => Value::Bool(v),
                };
                (name, value)
            })
            .collect()
    }

    fn into_wit(self) -> wit::Row {
        self.into_fields()
            .into_iter()
            .map(|(name, value)| {
                let value = match value {
                    Value::Null => wit::Value::Null,
                    Value::F64(v) => wit::Value::F64(v),
                    Value::I64(v) => wit::Value::S64(v),
                    Value::Str(v) => wit::Value::String(v),
                    Value::Bool(v) => wit::Value::Bool(v),
                };
                (name, value)
            })
            .collect()
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
    Batch {
        timestamps: batch.timestamps,
        columns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Doubler;

    impl Plugin for Doubler {
        fn configure(params: &Params) -> Result<Self> {
            params.required("ok")?;
            Ok(Doubler)
        }
        fn describe(&self) -> Describe {
            Describe::new()
                .input("x", Type::I64)
                .output("n", Type::I64)
                .with_filter()
        }
        fn filter(&self, events: &Batch) -> Result<Vec<bool>> {
            // Deliberately one entry short.
            Ok(vec![true; events.len().saturating_sub(1)])
        }
        fn aggregate(&self, _key: &Row, _window: Window, events: &Batch) -> Result<Vec<Row>> {
            let n = i64::try_from(events.len()).map_err(|_| "too many events")?;
            Ok(vec![Row::new().i64("n", 2 * n)])
        }
    }

    #[test]
    fn unconfigured_plugin_describes_nothing_and_refuses_calls() {
        let slot = RefCell::new(None::<Doubler>);
        assert_eq!(describe(&slot), Describe::new());
        let info = plugin_info("p", "1.2.3", &describe(&slot));
        assert_eq!((info.name.as_str(), info.version.as_str()), ("p", "1.2.3"));
        assert!(info.inputs.is_empty() && info.outputs.is_empty() && !info.has_filter);
        let batch = Batch::new(vec![1]);
        let err = aggregate(&slot, &Row::new(), Window { start: 0, end: 1 }, &batch).unwrap_err();
        assert_eq!(err.message, "not configured");
        assert_eq!(filter(&slot, &batch).unwrap_err().message, "not configured");
    }

    #[test]
    fn failed_configure_leaves_the_slot_empty() {
        let slot = RefCell::new(None::<Doubler>);
        configure(&slot, &Params::from_pairs([("ok", "yes")])).unwrap();
        assert!(slot.borrow().is_some());
        let err = configure(&slot, &Params::new()).unwrap_err();
        assert_eq!(err.message, "missing required parameter `ok`");
        assert!(slot.borrow().is_none());
    }

    #[test]
    fn configured_plugin_aggregates_and_wrong_filter_length_is_an_error() {
        let slot = RefCell::new(None::<Doubler>);
        configure(&slot, &Params::from_pairs([("ok", "yes")])).unwrap();
        let info = plugin_info("p", "1", &describe(&slot));
        assert_eq!(info.outputs.len(), 1);
        assert_eq!(info.outputs[0].name, "n");
        assert!(matches!(info.outputs[0].ty, wit::FieldType::S64));
        assert!(info.has_filter);
        let batch = Batch::new(vec![1, 2, 3]);
        // 3 events doubled = 6.
        let rows = aggregate(&slot, &Row::new(), Window { start: 0, end: 5 }, &batch).unwrap();
        assert_eq!(rows, vec![Row::new().i64("n", 6)]);
        let err = filter(&slot, &batch).unwrap_err();
        assert_eq!(err.message, "filter returned 2 entries for 3 events");
    }

    #[test]
    fn wit_batch_and_rows_convert_without_loss() {
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

        let row = Row::new()
            .null("n")
            .f64("f", 1.5)
            .i64("i", -2)
            .str("s", "x")
            .bool("b", true);
        assert_eq!(Row::from_wit(row.clone().into_wit()), row);
    }

    #[test]
    fn errors_and_types_map_to_wit() {
        let e = plugin_error(Error::new("m").with_hint("h"));
        assert_eq!((e.message.as_str(), e.hint.as_deref()), ("m", Some("h")));
        assert!(matches!(field_type(Type::F64), wit::FieldType::F64));
        assert!(matches!(field_type(Type::Str), wit::FieldType::String));
        assert!(matches!(field_type(Type::Bool), wit::FieldType::Bool));
    }
}
