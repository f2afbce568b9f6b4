//! What a tenant must match to write a plugin for a pipeline (`weir plugin schema`, `GET
//! …/schema`, the console's Schema section): the fields its events have and their types,
//! the key, the window, the watermark, the params its plugin's `configure` gets, and the
//! columns the live version's rows have.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::WindowKindConfig;
use crate::pipeline::PipelineSpec;

/// One field of a pipeline's events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldView {
    /// Its name.
    pub name: String,
    /// Its type: `f64`, `i64`, `string` or `bool` (an `f64` input reads an `i64` field).
    #[serde(rename = "type")]
    pub ty: String,
    /// Whether a record without it is malformed (key fields always are).
    pub required: bool,
    /// Whether it is one of the key fields.
    pub key: bool,
}

/// A pipeline as a plugin sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaView {
    /// Every field, by name.
    pub fields: Vec<FieldView>,
    /// The key fields, in key order: each row starts with them.
    pub key: Vec<String>,
    /// Where event time comes from: `ts (rfc3339)`, or `the record's timestamp`.
    pub timestamp: String,
    /// The window: `tumbling 1s`, `sliding 3s every 1s`, `session gap 30s`,
    /// `cumulative 1d every 1h`.
    pub window: String,
    /// How long a fired window takes late events (which fire it again, with a revision).
    pub allowed_lateness: String,
    /// How far the watermark trails the largest event time.
    pub watermark_delay: String,
    /// What `configure` gets.
    pub params: BTreeMap<String, String>,
    /// The columns of the live version's result rows, in order (the key fields and the
    /// host's columns included).
    pub output_columns: Vec<String>,
}

impl SchemaView {
    /// The view of `spec`, whose live version's rows have `output_columns`.
    pub fn of(spec: &PipelineSpec, output_columns: Vec<String>) -> Self {
        let cfg = &spec.cfg;
        let schema = &spec.schema;
        let key: Vec<String> = cfg.schema.key.clone();
        let fields = schema
            .fields
            .iter()
            .zip(&schema.required)
            .map(|((name, ty), &required)| FieldView {
                name: name.clone(),
                ty: ty.to_string(),
                required,
                key: key.contains(name),
            })
            .collect();
        let timestamp = match (&cfg.schema.timestamp.field, &cfg.schema.timestamp.format) {
            (Some(field), Some(format)) => format!("{field} ({format})"),
            (Some(field), None) => field.clone(),
            _ => "the record's timestamp".to_string(),
        };
        let window = match cfg.window.kind {
            WindowKindConfig::Tumbling { size } => format!("tumbling {size}"),
            WindowKindConfig::Sliding { size, slide } => format!("sliding {size} every {slide}"),
            WindowKindConfig::Session { gap } => format!("session gap {gap}"),
            WindowKindConfig::Cumulative { size, step } => {
                format!("cumulative {size} every {step}")
            }
        };
        SchemaView {
            fields,
            key,
            timestamp,
            window,
            allowed_lateness: cfg.window.allowed_lateness.to_string(),
            watermark_delay: cfg.watermark.delay.to_string(),
            params: cfg.plugin.params.clone(),
            output_columns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipeline_reads_as_its_fields_key_window_watermark_and_params() {
        let cfg: crate::config::PipelineConfig = toml::from_str(
            r#"
name = "ticks"
[source]
kind = "stdin"
[schema]
timestamp = { field = "ts", format = "rfc3339" }
key = ["symbol"]
fields = { symbol = "string", price = "f64", volume = "i64" }
required = ["price"]
[window]
kind = "sliding"
size = "3s"
slide = "1s"
allowed_lateness = "500ms"
[watermark]
delay = "2s"
[plugin]
path = "p.wasm"
params = { field = "price" }
[sink]
kind = "stdout"
"#,
        )
        .expect("config");
        let spec = PipelineSpec::resolve(cfg, None).expect("spec");
        let v = SchemaView::of(&spec, vec!["symbol".into(), "avg".into()]);
        assert_eq!(v.window, "sliding 3s every 1s");
        assert_eq!(v.allowed_lateness, "500ms");
        assert_eq!(v.watermark_delay, "2s");
        assert_eq!(v.timestamp, "ts (rfc3339)");
        assert_eq!(v.key, ["symbol"]);
        let field = |n: &str| v.fields.iter().find(|f| f.name == n).expect(n).clone();
        assert_eq!(
            field("price"),
            FieldView {
                name: "price".into(),
                ty: "f64".into(),
                required: true,
                key: false
            }
        );
        assert!(field("symbol").key && field("symbol").required);
        assert!(!field("volume").required);
        assert_eq!(field("volume").ty, "i64");
        let text = crate::admin::render_schema("acme", "ticks", &v);
        assert!(
            text.contains("window:     sliding 3s every 1s (allowed lateness 500ms)"),
            "{text}"
        );
        assert!(text.contains("  price f64 (required)"), "{text}");
        assert!(text.contains("  field = \"price\""), "{text}");
    }
}
