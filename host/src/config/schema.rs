//! `[schema]`: typed fields, the event-time field and the grouping key, resolved once into
//! the [`Schema`] the decoders use. Every schema check lives here; `decode/` trusts it.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Error;
use crate::decode::Schema;
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

/// `schema.timestamp`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimestampConfig {
    /// The field holding event time.
    pub field: String,
    /// `epoch_ms`, `epoch_s`, `rfc3339`, or a strftime pattern such as `%m/%d/%Y %I:%M:%S %p`
    /// (read as UTC).
    pub format: String,
}

impl SchemaConfig {
    /// Checks this section and resolves it into the decoders' [`Schema`]: the timestamp
    /// field is named, its format is known, and every key and required field is declared.
    pub fn resolve(&self) -> Result<Schema, Error> {
        let fields = &self.fields;
        let ts = &self.timestamp.field;
        if !fields.contains_key(ts) && ts.is_empty() {
            return Err(Error::invalid(
                "schema.timestamp.field",
                "is empty",
                "name the field that holds event time",
            ));
        }
        let format = TimestampFormat::parse(&self.timestamp.format).map_err(|e| {
            Error::invalid(
                "schema.timestamp.format",
                e,
                "use epoch_ms, epoch_s, rfc3339 or a strftime pattern such as \"%m/%d/%Y %I:%M:%S %p\"",
            )
        })?;
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
            ts.clone(),
            format,
            key,
            required,
        ))
    }
}
