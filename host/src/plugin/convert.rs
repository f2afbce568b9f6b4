//! The columnar batch the host builds for a call, and conversions between host values and
//! the WIT types of both contract versions (`weir:plugin@0.1.0` and `@0.2.0`).
//!
//! Only this file, `runtime.rs`, `instance.rs` and `abi.rs` see WIT types; the rest of the
//! host speaks [`Value`].

use super::bindings::{v1, v2};
use crate::value::{FieldType, Value};

/// A result row of a single-window call, named: field names and values in order.
pub type OutputRow = Vec<(String, Value)>;

/// The values of one column, one entry per event.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    /// f64 values.
    F64(Vec<f64>),
    /// i64 values.
    I64(Vec<i64>),
    /// Strings.
    Str(Vec<String>),
    /// Booleans.
    Bool(Vec<bool>),
}

/// One named column of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// The field name.
    pub name: String,
    /// The values; a null entry holds the type's zero value.
    pub data: ColumnData,
    /// `nulls[i]` when event `i` has no value; absent when the column has no nulls.
    pub nulls: Option<Vec<bool>>,
}

/// Events in columnar form, ready for a call of either WIT version or a native plugin.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Columns {
    /// Event times, epoch ms.
    pub timestamps: Vec<i64>,
    /// The plugin's input columns, in its input order.
    pub columns: Vec<Column>,
}

impl Columns {
    /// The events `[offset, offset + len)` as a batch of their own (copied).
    pub fn slice(&self, offset: usize, len: usize) -> Columns {
        let end = offset.saturating_add(len).min(self.timestamps.len());
        let r = offset.min(end)..end;
        Columns {
            timestamps: self.timestamps[r.clone()].to_vec(),
            columns: self
                .columns
                .iter()
                .map(|c| Column {
                    name: c.name.clone(),
                    data: match &c.data {
                        ColumnData::F64(v) => ColumnData::F64(v[r.clone()].to_vec()),
                        ColumnData::I64(v) => ColumnData::I64(v[r.clone()].to_vec()),
                        ColumnData::Str(v) => ColumnData::Str(v[r.clone()].to_vec()),
                        ColumnData::Bool(v) => ColumnData::Bool(v[r.clone()].to_vec()),
                    },
                    nulls: c
                        .nulls
                        .as_ref()
                        .map(|n| n[r.clone()].to_vec())
                        .filter(|n| n.contains(&true)),
                })
                .collect(),
        }
    }
}

enum ColumnBuf {
    F64(Vec<f64>),
    I64(Vec<i64>),
    Str(Vec<String>),
    Bool(Vec<bool>),
}

/// Builds a columnar batch for a plugin call, one event at a time.
///
/// Column order and types follow the plugin's declared inputs; a value whose type does not
/// match (which decoding prevents) is passed as null.
pub struct BatchBuilder {
    names: Vec<String>,
    timestamps: Vec<i64>,
    columns: Vec<ColumnBuf>,
    nulls: Vec<Vec<bool>>,
    any_null: Vec<bool>,
}

impl BatchBuilder {
    /// A builder for the given input fields, with room for `capacity` events.
    pub fn new(inputs: &[(String, FieldType)], capacity: usize) -> Self {
        BatchBuilder {
            names: inputs.iter().map(|(n, _)| n.clone()).collect(),
            timestamps: Vec::with_capacity(capacity),
            columns: inputs
                .iter()
                .map(|(_, t)| match t {
                    FieldType::F64 => ColumnBuf::F64(Vec::with_capacity(capacity)),
                    FieldType::I64 => ColumnBuf::I64(Vec::with_capacity(capacity)),
                    FieldType::Str => ColumnBuf::Str(Vec::with_capacity(capacity)),
                    FieldType::Bool => ColumnBuf::Bool(Vec::with_capacity(capacity)),
                })
                .collect(),
            nulls: inputs
                .iter()
                .map(|_| Vec::with_capacity(capacity))
                .collect(),
            any_null: vec![false; inputs.len()],
        }
    }

    /// Number of events pushed.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// Whether no event was pushed.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// Adds one event: its time and one value per input field, in input order.
    pub fn push<'v>(&mut self, ts: i64, values: impl IntoIterator<Item = &'v Value>) {
        self.timestamps.push(ts);
        for (i, v) in values.into_iter().enumerate().take(self.columns.len()) {
            let null = match (&mut self.columns[i], v) {
                (ColumnBuf::F64(c), Value::F64(x)) => {
                    c.push(*x);
                    false
                }
                (ColumnBuf::F64(c), Value::I64(x)) => {
                    c.push(*x as f64);
                    false
                }
                (ColumnBuf::I64(c), Value::I64(x)) => {
                    c.push(*x);
                    false
                }
                (ColumnBuf::Str(c), Value::Str(s)) => {
                    c.push(s.clone());
                    false
                }
                (ColumnBuf::Bool(c), Value::Bool(b)) => {
                    c.push(*b);
                    false
                }
                (ColumnBuf::F64(c), _) => {
                    c.push(0.0);
                    true
                }
                (ColumnBuf::I64(c), _) => {
                    c.push(0);
                    true
                }
                (ColumnBuf::Str(c), _) => {
                    c.push(String::new());
                    true
                }
                (ColumnBuf::Bool(c), _) => {
                    c.push(false);
                    true
                }
            };
            self.nulls[i].push(null);
            self.any_null[i] |= null;
        }
    }

    /// The batch; the builder is emptied and can be reused with the same inputs.
    pub fn take(&mut self) -> Columns {
        let columns = self
            .columns
            .iter_mut()
            .zip(&mut self.nulls)
            .zip(&mut self.any_null)
            .zip(&self.names)
            .map(|(((col, nulls), any), name)| {
                let data = match col {
                    ColumnBuf::F64(c) => ColumnData::F64(std::mem::take(c)),
                    ColumnBuf::I64(c) => ColumnData::I64(std::mem::take(c)),
                    ColumnBuf::Str(c) => ColumnData::Str(std::mem::take(c)),
                    ColumnBuf::Bool(c) => ColumnData::Bool(std::mem::take(c)),
                };
                let nulls = std::mem::take(nulls);
                let had_null = std::mem::take(any);
                Column {
                    name: name.clone(),
                    data,
                    nulls: had_null.then_some(nulls),
                }
            })
            .collect();
        Columns {
            timestamps: std::mem::take(&mut self.timestamps),
            columns,
        }
    }
}

/// Conversions for one WIT version's `types` interface (both versions share these shapes).
macro_rules! wit_conversions {
    ($wit:path) => {
        use super::{ColumnData, Columns};
        use crate::value::{FieldType, Value};
        use $wit as wit;

        /// The batch in this version's WIT types (vectors moved, not copied).
        pub(crate) fn batch(c: Columns) -> wit::Batch {
            wit::Batch {
                timestamps: c.timestamps,
                columns: c
                    .columns
                    .into_iter()
                    .map(|c| wit::Column {
                        name: c.name,
                        data: match c.data {
                            ColumnData::F64(v) => wit::ColumnData::F64(v),
                            ColumnData::I64(v) => wit::ColumnData::S64(v),
                            ColumnData::Str(v) => wit::ColumnData::String(v),
                            ColumnData::Bool(v) => wit::ColumnData::Bool(v),
                        },
                        nulls: c.nulls,
                    })
                    .collect(),
            }
        }

        /// Host value to WIT value.
        pub(crate) fn to_wit(v: &Value) -> wit::Value {
            match v {
                Value::Null => wit::Value::Null,
                Value::F64(x) => wit::Value::F64(*x),
                Value::I64(x) => wit::Value::S64(*x),
                Value::Str(s) => wit::Value::String(s.clone()),
                Value::Bool(b) => wit::Value::Bool(*b),
            }
        }

        /// WIT value to host value.
        pub(crate) fn from_wit(v: wit::Value) -> Value {
            match v {
                wit::Value::Null => Value::Null,
                wit::Value::F64(x) => Value::F64(x),
                wit::Value::S64(x) => Value::I64(x),
                wit::Value::String(s) => Value::Str(s),
                wit::Value::Bool(b) => Value::Bool(b),
            }
        }

        /// WIT field type to host field type.
        pub(crate) fn field_type(t: wit::FieldType) -> FieldType {
            match t {
                wit::FieldType::F64 => FieldType::F64,
                wit::FieldType::S64 => FieldType::I64,
                wit::FieldType::String => FieldType::Str,
                wit::FieldType::Bool => FieldType::Bool,
            }
        }
    };
}

/// `weir:plugin@0.1.0`.
pub(crate) mod wit1 {
    wit_conversions!(super::v1::weir::plugin::types);
}

/// `weir:plugin@0.2.0`.
pub(crate) mod wit2 {
    wit_conversions!(super::v2::weir::plugin::types);
}

/// Host field type, for the native path.
pub(crate) fn sdk_type(t: weir_guest::Type) -> FieldType {
    match t {
        weir_guest::Type::F64 => FieldType::F64,
        weir_guest::Type::I64 => FieldType::I64,
        weir_guest::Type::Str => FieldType::Str,
        weir_guest::Type::Bool => FieldType::Bool,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_are_masked_and_mask_omitted_when_absent() {
        let inputs = vec![
            ("price".to_string(), FieldType::F64),
            ("sym".to_string(), FieldType::Str),
        ];
        let mut b = BatchBuilder::new(&inputs, 2);
        b.push(1, &[Value::F64(1.5), Value::Str("A".into())]);
        b.push(2, &[Value::Null, Value::Str("B".into())]);
        let batch = b.take();
        assert_eq!(batch.timestamps, vec![1, 2]);
        assert!(matches!(&batch.columns[0].data, ColumnData::F64(v) if v == &vec![1.5, 0.0]));
        assert_eq!(batch.columns[0].nulls, Some(vec![false, true]));
        assert_eq!(batch.columns[1].nulls, None);
        assert!(b.is_empty(), "take empties the builder");
        // A slice keeps a null mask only where one of its events is null.
        assert_eq!(batch.slice(0, 1).columns[0].nulls, None);
        assert_eq!(batch.slice(1, 5).columns[0].nulls, Some(vec![true]));
        assert_eq!(batch.slice(1, 5).timestamps, vec![2]);
    }
}
