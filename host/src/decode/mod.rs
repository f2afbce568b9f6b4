//! Decoding: raw records (JSON lines, CSV lines) into typed events of the pipeline schema.
//!
//! Owns the schema's field layout, type coercions (numbers sent as strings, empty CSV cells
//! as null) and event time (a field, or the record's own timestamp). It never drops a bad record silently: every failure is
//! an [`DecodeError`] with the reason, which the pipeline routes to the dead-letter sink.

mod coerce;
mod csv;
mod json;
#[cfg(test)]
mod props;

pub use self::csv::CsvDecoder;
pub use self::json::JsonDecoder;

use crate::config::{CsvOptions, Format};
pub use crate::config::{EventTime, Schema};
use crate::source::RawRecord;

use crate::value::Value;

/// A decoded event: event time plus the value of every schema field, in schema order.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Event time, epoch milliseconds UTC.
    pub ts: i64,
    /// One value per [`Schema::fields`] entry (`Value::Null` when absent and optional).
    pub values: Vec<Value>,
}

/// Event time from the record's own timestamp: a record without one (or with one outside the
/// valid range) cannot be placed in time.
pub(crate) fn record_time(raw: &RawRecord<'_>) -> Result<i64, DecodeError> {
    match raw.timestamp {
        Some(ms) if crate::time::in_range(ms) => Ok(ms),
        Some(ms) => Err(DecodeError::new(format!(
            "the record's timestamp {ms} (epoch ms) is outside the event-time range {} (schema.timestamp.from = \"kafka\")",
            crate::time::EVENT_TIME_RANGE
        ))),
        None => Err(DecodeError::new(
            "the record has no timestamp (schema.timestamp.from = \"kafka\"); produce it with a create time, or set the topic's message.timestamp.type = LogAppendTime",
        )),
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

    /// Takes the header line of an input the source resumed in, from a checkpoint (its
    /// first line was read by the run before): a CSV decoder reads its columns from it,
    /// others ignore it.
    fn prime(&mut self, header: &RawRecord<'_>) {
        let _ = header;
    }
}

/// Builds the decoder for a source format.
pub fn decoder(format: Format, csv: &CsvOptions, schema: &Schema) -> Box<dyn Decoder> {
    match format {
        Format::Jsonl => Box::new(JsonDecoder::new(schema.clone())),
        Format::Csv => Box::new(CsvDecoder::new(schema.clone(), csv.clone())),
    }
}
