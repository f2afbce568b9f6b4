//! `[schema]`: typed fields, where event time comes from and the grouping key, resolved once
//! into the [`Schema`] the decoders use (defined here, so that config needs nothing above it).
//! Every schema check lives here; `decode/` trusts it.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::{Error, SourceConfig};
use crate::time::TimestampFormat;
use crate::value::FieldType;

/// `[schema]`: typed fields, the event-time field and the grouping key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaConfig {
    /// The event-time field and its format.
    pub timestamp: TimestampConfig,
    /// Fields that group events; each must be declared in `fields` (may be empty).
    #[serde(default)]
    pub key: Vec<String>,
    /// Field names and types (`f64`, `i64`, `string`, `bool`).
    pub fields: BTreeMap<String, FieldType>,
    /// Fields that may be missing or empty (null) without making the record malformed.
    /// Key fields and the timestamp are always required. Default: every non-key field is optional.
    #[serde(default)]
    pub required: Option<Vec<String>>,
}

/// `schema.timestamp`: a field and its format (`{ field = "ts", format = "epoch_ms" }`), or
/// the record's own timestamp (`{ from = "kafka" }`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimestampConfig {
    /// The field holding event time.
    #[serde(default)]
    pub field: Option<String>,
    /// `epoch_ms`, `epoch_s`, `rfc3339`, or a strftime pattern such as `%m/%d/%Y %I:%M:%S %p`
    /// (read as UTC).
    #[serde(default)]
    pub format: Option<String>,
    /// `kafka`: event time is the Kafka record's timestamp (its create or log-append time,
    /// as the topic's `message.timestamp.type` says), instead of a field.
    #[serde(default)]
    pub from: Option<TimestampFrom>,
}

/// `schema.timestamp.from`: where event time comes from when it is not a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimestampFrom {
    /// The Kafka record's timestamp, epoch milliseconds.
    Kafka,
}

/// How `schema.timestamp` is written when it is a field, for the fixes of error messages.
const FIELD_EXAMPLE: &str = "timestamp = { field = \"ts\", format = \"epoch_ms\" }";

impl SchemaConfig {
    /// Checks this section and resolves it into the decoders' [`Schema`]: event time comes
    /// from a named field of a known format or from the record, and every key and required
    /// field is declared. Whether the source can give the record's timestamp is
    /// [`SchemaConfig::check_source`]'s business.
    pub fn resolve(&self) -> Result<Schema, Error> {
        let fields = &self.fields;
        let time = self.event_time()?;
        // Fields in a fixed order: sorted by name, as the map holds them.
        let position = |name: &str| fields.keys().position(|k| k == name);
        let key = self
            .key
            .iter()
            .enumerate()
            .map(|(i, k)| {
                position(k).ok_or_else(|| {
                    Error::invalid(
                        format!("schema.key[{i}]"),
                        format!("names `{k}`, which is not declared"),
                        format!("add `{k} = \"string\"` (or its type) to [schema.fields]"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut required: Vec<bool> = (0..fields.len()).map(|i| key.contains(&i)).collect();
        for (i, k) in self.required.iter().flatten().enumerate() {
            let at = position(k).ok_or_else(|| {
                Error::invalid(
                    format!("schema.required[{i}]"),
                    format!("names `{k}`, which is not declared"),
                    format!("declare `{k}` in [schema.fields] or remove it"),
                )
            })?;
            required[at] = true;
        }
        Ok(Schema::from_parts(
            fields.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            time,
            key,
            required,
        ))
    }

    /// Where event time comes from: `from`, or a named field with a known format.
    fn event_time(&self) -> Result<EventTime, Error> {
        let t = &self.timestamp;
        if let Some(TimestampFrom::Kafka) = t.from {
            let extra = [("field", t.field.is_some()), ("format", t.format.is_some())];
            if let Some((key, _)) = extra.iter().find(|(_, set)| *set) {
                return Err(Error::invalid(
                    format!("schema.timestamp.{key}"),
                    "is set together with from = \"kafka\"",
                    "use either from = \"kafka\" (the record's timestamp) or a field and its format, not both",
                ));
            }
            return Ok(EventTime::Record);
        }
        let name = match t.field.as_deref() {
            None => {
                return Err(Error::invalid(
                    "schema.timestamp.field",
                    "is missing",
                    format!(
                        "name the field that holds event time ({FIELD_EXAMPLE}), or use timestamp = {{ from = \"kafka\" }} with a Kafka source"
                    ),
                ));
            }
            Some("") => {
                return Err(Error::invalid(
                    "schema.timestamp.field",
                    "is empty",
                    "name the field that holds event time",
                ));
            }
            Some(name) => name,
        };
        let Some(format) = t.format.as_deref() else {
            return Err(Error::invalid(
                "schema.timestamp.format",
                "is missing",
                format!(
                    "say how `{name}` is written: epoch_ms, epoch_s, rfc3339 or a strftime pattern"
                ),
            ));
        };
        let format = TimestampFormat::parse(format).map_err(|e| {
            Error::invalid(
                "schema.timestamp.format",
                e,
                "use epoch_ms, epoch_s, rfc3339 or a strftime pattern such as \"%m/%d/%Y %I:%M:%S %p\"",
            )
        })?;
        Ok(EventTime::Field {
            name: name.to_string(),
            format,
        })
    }

    /// Checks that event time can come from where `source` reads: `from = "kafka"` needs a
    /// Kafka source, whose records carry a timestamp.
    pub fn check_source(&self, source: &SourceConfig) -> Result<(), Error> {
        let kind = match source {
            SourceConfig::Kafka(_) => return Ok(()),
            SourceConfig::File { .. } => "file",
            SourceConfig::Stdin { .. } => "stdin",
            SourceConfig::Generator(_) => "generator",
        };
        match self.timestamp.from {
            Some(TimestampFrom::Kafka) => Err(Error::invalid(
                "schema.timestamp.from",
                format!(
                    "is \"kafka\" but [source] kind is \"{kind}\", whose records have no Kafka timestamp"
                ),
                format!(
                    "name the field that holds event time ({FIELD_EXAMPLE}), or read from a Kafka source (kind = \"kafka\")"
                ),
            )),
            None => Ok(()),
        }
    }
}

/// The pipeline schema, resolved for fast decoding.
#[derive(Debug, Clone)]
pub struct Schema {
    /// Field names and types, in a fixed order (sorted by name).
    pub fields: Vec<(String, FieldType)>,
    index: HashMap<String, usize>,
    /// Where event time comes from.
    pub time: EventTime,
    /// Indices of the key fields, in key order.
    pub key: Vec<usize>,
    /// Per field: whether a missing or null value makes the record malformed.
    pub required: Vec<bool>,
}

impl Schema {
    /// Resolves a `[schema]` section; the checks live in [`SchemaConfig::resolve`], the one
    /// place they are made.
    pub fn new(cfg: &SchemaConfig) -> Result<Self, Error> {
        cfg.resolve()
    }

    /// A schema from parts already checked by [`SchemaConfig::resolve`]: `key` holds
    /// indices into `fields`, `required` one flag per field.
    fn from_parts(
        fields: Vec<(String, FieldType)>,
        time: EventTime,
        key: Vec<usize>,
        required: Vec<bool>,
    ) -> Self {
        let index = fields
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.clone(), i))
            .collect();
        Schema {
            fields,
            index,
            time,
            key,
            required,
        }
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

/// Where event time comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventTime {
    /// A field of the record (it may also be one of [`Schema::fields`]).
    Field {
        /// The field's name.
        name: String,
        /// How it is written.
        format: TimestampFormat,
    },
    /// The record's own timestamp (`RawRecord::timestamp`: a Kafka message's create or
    /// log-append time).
    Record,
}

impl EventTime {
    /// The event-time field's name, when event time is a field.
    pub fn field(&self) -> Option<&str> {
        match self {
            EventTime::Field { name, .. } => Some(name),
            EventTime::Record => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{EventTime, Schema};
    use crate::config::PipelineConfig;

    /// A pipeline over `source` (the `[source]` table's keys) with `schema.timestamp = ts`.
    fn parse(source: &str, ts: &str) -> Result<PipelineConfig, String> {
        PipelineConfig::parse(&format!(
            r#"name = "t"
[source]
{source}
[schema]
timestamp = {ts}
key = ["symbol"]
fields = {{ symbol = "string", price = "f64" }}
[window]
kind = "tumbling"
size = "1s"
[plugin]
path = "p.wasm"
[sink]
kind = "stdout"
"#
        ))
        .map_err(|e| e.to_string())
    }

    const KAFKA: &str =
        "kind = \"kafka\"\nbrokers = \"127.0.0.1:9092\"\ntopics = [\"t\"]\ngroup_id = \"g\"";

    #[test]
    fn event_time_from_kafka_is_the_record_timestamp() {
        let cfg = parse(KAFKA, "{ from = \"kafka\" }").unwrap();
        let schema = Schema::new(&cfg.schema).unwrap();
        assert_eq!(schema.time, EventTime::Record);
        assert_eq!(schema.time.field(), None);
    }

    #[test]
    fn event_time_from_kafka_with_another_source_names_the_key_and_the_fix() {
        for (source, kind) in [
            ("kind = \"stdin\"", "stdin"),
            ("kind = \"file\"\npath = \"in.jsonl\"", "file"),
        ] {
            let err = parse(source, "{ from = \"kafka\" }").unwrap_err();
            assert!(err.contains("schema.timestamp.from"), "{err}");
            assert!(err.contains(&format!("kind is \"{kind}\"")), "{err}");
            assert!(
                err.contains("field = \"ts\"") && err.contains("kind = \"kafka\""),
                "{err}"
            );
        }
    }

    #[test]
    fn from_with_a_field_or_without_either_is_refused() {
        let err = parse(KAFKA, "{ from = \"kafka\", field = \"ts\" }").unwrap_err();
        assert!(err.contains("schema.timestamp.field"), "{err}");
        assert!(err.contains("not both"), "{err}");
        let err = parse(KAFKA, "{ from = \"kafka\", format = \"epoch_ms\" }").unwrap_err();
        assert!(err.contains("schema.timestamp.format"), "{err}");
        let err = parse(KAFKA, "{ format = \"epoch_ms\" }").unwrap_err();
        assert!(
            err.contains("schema.timestamp.field") && err.contains("from = \"kafka\""),
            "{err}"
        );
        let err = parse(KAFKA, "{ field = \"ts\" }").unwrap_err();
        assert!(err.contains("schema.timestamp.format"), "{err}");
        let err = parse(KAFKA, "{ from = \"wall\" }").unwrap_err();
        assert!(err.contains("wall"), "{err}");
    }
}
