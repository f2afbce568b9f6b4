//! Decoding: raw records (JSON lines, CSV lines) into typed events of the pipeline schema.
//!
//! Owns the schema's field layout, type coercions (numbers sent as strings, empty CSV cells
//! as null) and the event-time field. It never drops a bad record silently: every failure is
//! an [`DecodeError`] with the reason, which the pipeline routes to the dead-letter sink.

mod coerce;
mod csv;
mod json;
#[cfg(test)]
mod props;

use std::collections::HashMap;

pub use self::csv::CsvDecoder;
pub use self::json::JsonDecoder;

use crate::config::{CsvOptions, Format, SchemaConfig};
use crate::source::RawRecord;
use crate::time::TimestampFormat;
use crate::value::{FieldType, Value};

/// A decoded event: event time plus the value of every schema field, in schema order.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Event time, epoch milliseconds UTC.
    pub ts: i64,
    /// One value per [`Schema::fields`] entry (`Value::Null` when absent and optional).
    pub values: Vec<Value>,
}

/// The pipeline schema, resolved for fast decoding.
#[derive(Debug, Clone)]
pub struct Schema {
    /// Field names and types, in a fixed order (sorted by name).
    pub fields: Vec<(String, FieldType)>,
    index: HashMap<String, usize>,
    /// Index in `fields` of the timestamp field, when it is also declared as a field.
    pub timestamp_field: String,
    /// How the timestamp is written.
    pub timestamp_format: TimestampFormat,
    /// Indices of the key fields, in key order.
    pub key: Vec<usize>,
    /// Per field: whether a missing or null value makes the record malformed.
    pub required: Vec<bool>,
}

impl Schema {
    /// Resolves a validated `[schema]` section.
    pub fn new(cfg: &SchemaConfig) -> Result<Self, String> {
        let fields: Vec<(String, FieldType)> =
            cfg.fields.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let index: HashMap<String, usize> = fields
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.clone(), i))
            .collect();
        let key = cfg
            .key
            .iter()
            .map(|k| {
                index
                    .get(k)
                    .copied()
                    .ok_or_else(|| format!("key field `{k}` is not declared"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let required = fields
            .iter()
            .enumerate()
            .map(|(i, (n, _))| {
                key.contains(&i) || cfg.required.as_ref().is_some_and(|r| r.contains(n))
            })
            .collect();
        Ok(Schema {
            timestamp_format: TimestampFormat::parse(&cfg.timestamp.format)?,
            timestamp_field: cfg.timestamp.field.clone(),
            fields,
            index,
            key,
            required,
        })
    }

    /// Position of a field by name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// The type of a field by name.
    pub fn type_of(&self, name: &str) -> Option<FieldType> {
        self.index_of(name).map(|i| self.fields[i].1)
    }
}

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reason}")]
pub struct DecodeError {
    /// What is wrong, naming the field: "field `price`: `abc` is not a number".
    pub reason: String,
}

impl DecodeError {
    /// An error with this reason.
    pub fn new(reason: impl Into<String>) -> Self {
        DecodeError {
            reason: reason.into(),
        }
    }
}

/// Turns raw records into events of one schema.
pub trait Decoder: Send {
    /// Decodes one record. `Ok(None)` means the record carries no event (a CSV header line).
    fn decode(&mut self, raw: &RawRecord<'_>) -> Result<Option<Event>, DecodeError>;
}

/// Builds the decoder for a source format.
pub fn decoder(format: Format, csv: &CsvOptions, schema: &Schema) -> Box<dyn Decoder> {
    match format {
        Format::Jsonl => Box::new(JsonDecoder::new(schema.clone())),
        Format::Csv => Box::new(CsvDecoder::new(schema.clone(), csv.clone())),
    }
}
