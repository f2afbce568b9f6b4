//! Pipeline configuration: the TOML file a user writes, parsed and validated.
//!
//! Owns the shape of `PIPELINE.toml` and every semantic check on it (which key is wrong
//! and how to fix it). It does not open files, load plugins or build the pipeline;
//! `pipeline.rs` does that from a validated [`PipelineConfig`].
//!
//! One file per section: `source.rs`, `schema.rs` (resolved into [`Schema`]),
//! `window.rs` (resolved into [`crate::window::WindowKind`]), `watermark.rs` (with
//! `[emit]`), `plugin.rs` (with the limits, resolved into [`Limits`]) and `sink.rs`;
//! `host.rs` is `weir serve`'s `HOST.toml`, `duration.rs` the duration and size syntax.

mod checkpoint;
mod duration;
mod host;
mod plugin;
mod schema;
mod sink;
mod source;
mod watermark;
mod window;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use checkpoint::{CheckpointConfig, DEFAULT_CHECKPOINT_EVERY};
pub use duration::{ByteSize, Millis, parse_millis, parse_size};
pub use host::{AdminConfig, ConsoleConfig, HostConfig, PluginsConfig, StateConfig, TenantConfig};
pub use plugin::{Limits, LimitsConfig, PluginConfig, SandboxLimits};
pub use schema::{EventTime, Schema, SchemaConfig, TimestampConfig, TimestampFrom};
pub use sink::{SinkConfig, SinkMode};
pub use source::{
    CsvOptions, Format, GeneratorConfig, KafkaPassthrough, KafkaSourceConfig, KafkaStart,
    KafkaStop, SourceConfig, Workload,
};
pub use watermark::{DEFAULT_MAX_FUTURE, EmitConfig, EmitMode, WatermarkConfig};
pub use window::{WindowConfig, WindowKindConfig};

use crate::time::MAX_DURATION_MS;

/// A configuration error: which key, what is wrong, and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or has an unknown or mistyped key.
    #[error("{path}: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// The parser's message, which names the key, line and column.
        message: String,
    },
    /// A key has a value that is well-formed but not allowed.
    #[error("{key} {problem}; {fix}")]
    Invalid {
        /// Dotted key path, e.g. `window.slide`.
        key: String,
        /// What is wrong with it.
        problem: String,
        /// How to fix it.
        fix: String,
    },
}

impl Error {
    fn invalid(key: impl Into<String>, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Error::Invalid {
            key: key.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

/// Reads and parses a TOML file; returns the value and the file's directory, against
/// which the file's relative paths resolve.
fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<(T, PathBuf), Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let value = toml::from_str(&text).map_err(|e| Error::Parse {
        path: path.to_path_buf(),
        message: parse_message(&e),
    })?;
    let base_dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    Ok((value, base_dir))
}

/// The parser's message, or for a missing top-level key or section a sentence that names
/// it and how to add it instead of the parser's "at line 1, column 1".
fn parse_message(e: &toml::de::Error) -> String {
    let missing = e
        .message()
        .strip_prefix("missing field `")
        .and_then(|m| m.strip_suffix('`'))
        // A field missing from the top level is reported at the empty span 0..0; one
        // missing from a table spans the table.
        .filter(|_| e.span().is_none_or(|s| s.is_empty() && s.start == 0));
    match missing {
        Some("plugin") => "no [plugin] section: a pipeline names the plugin it runs, e.g.\n\
             [plugin]\n\
             path = \"plugins/my-plugin.wasm\"\n\
             Under `weir serve` this is the version the pipeline starts with; tenants deploy \
             later versions over it."
            .to_string(),
        Some(key) => format!(
            "no `{key}`: this file needs it at its top level (a `{key} = …` key or a [{key}] \
             section, see the README's reference for this file); add it"
        ),
        None => sink::parse_hint(e.to_string()),
    }
}

/// `path` as is when absolute, else relative to `base_dir`.
fn resolve_path(base_dir: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    }
}

/// One pipeline: source, schema, window, watermark, plugin and sinks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Pipeline name; appears in logs, metrics and dead-letter records.
    pub name: String,
    /// Where events come from.
    pub source: SourceConfig,
    /// How raw records become typed events.
    pub schema: SchemaConfig,
    /// How events are grouped in time.
    pub window: WindowConfig,
    /// How far event time may run ahead of the watermark.
    #[serde(default)]
    pub watermark: WatermarkConfig,
    /// When windows emit rows.
    #[serde(default)]
    pub emit: EmitConfig,
    /// The tenant's plugin.
    pub plugin: PluginConfig,
    /// Where result rows go.
    pub sink: SinkConfig,
    /// Where events late for all their windows go (default: dropped and counted).
    #[serde(default)]
    pub late_sink: Option<SinkConfig>,
    /// Where malformed records go, with their position and reason (default: stderr).
    #[serde(default)]
    pub dead_letter: Option<SinkConfig>,
    /// Where plugin failures go, one record per failed call (default: stderr).
    #[serde(default)]
    pub error_sink: Option<SinkConfig>,
    /// Worker threads of `weir run`, each owning the window state of a share of the keys
    /// and a plugin instance (default: the number of cores). Output is the same for every
    /// value. `weir serve` runs each pipeline on one thread.
    #[serde(default)]
    pub parallelism: Option<usize>,
    /// Local checkpoints (default: none; a restart rebuilds state from the source).
    #[serde(default)]
    pub checkpoint: Option<CheckpointConfig>,
    /// Directory the config was read from; relative paths resolve against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

impl PipelineConfig {
    /// Reads, parses and validates a pipeline file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let (mut cfg, base_dir): (PipelineConfig, _) = read_toml(path)?;
        cfg.base_dir = base_dir;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses and validates pipeline TOML; relative paths resolve against the current directory.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let cfg: PipelineConfig = toml::from_str(text).map_err(|e| Error::Parse {
            path: PathBuf::from("<inline>"),
            message: parse_message(&e),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Resolves a path from the config against the config file's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        resolve_path(&self.base_dir, path)
    }

    /// Every semantic check that the types alone do not make, section by section: what
    /// [`PipelineConfig::load`] runs, again for a config changed after loading.
    pub fn validate(&self) -> Result<(), Error> {
        if self.parallelism == Some(0) {
            return Err(Error::invalid(
                "parallelism",
                "is 0",
                "use at least 1 (worker threads that share the keys), or leave it out for one per core",
            ));
        }
        if self.name.trim().is_empty() {
            return Err(Error::invalid(
                "name",
                "is empty",
                "give the pipeline a name",
            ));
        }
        self.schema.resolve()?;
        self.source.validate()?;
        self.schema.check_source(&self.source)?;
        if let Some(c) = &self.checkpoint {
            c.validate(&self.source)?;
        }
        self.check_exactly_once()?;
        self.window.validate()?;
        self.watermark.validate()?;
        let own = self.plugin.limits.resolve(None).state.max_windows_per_event;
        self.check_window_budget(own, "plugin.limits.max_windows_per_event")?;
        if self.plugin.limits.deadline.is_some_and(|d| d.0 <= 0) {
            return Err(Error::invalid(
                "plugin.limits.deadline",
                "must be positive",
                "use a duration such as \"500ms\"",
            ));
        }
        self.emit.validate()
    }

    /// The window assigner this config describes (its sizes were checked when the config
    /// was loaded).
    pub fn window_kind(&self) -> crate::window::WindowKind {
        self.window.window_kind()
    }

    /// Checks the per-event window budget: an event belongs to `size / slide` sliding or
    /// `size / step` cumulative windows, which must be at most `limit` (the resolved
    /// `max_windows_per_event`, named by `limit_key` in the message).
    ///
    /// Checked when the config is validated (against the pipeline's own limit) and when the
    /// pipeline is built (against the limit resolved under the tenant's ceiling).
    pub fn check_window_budget(&self, limit: u64, limit_key: &str) -> Result<(), Error> {
        self.window.check_budget(limit, limit_key)
    }
}

/// The error for a `[window]` or `[watermark]` duration longer than [`MAX_DURATION_MS`].
fn too_long(key: &str, d: Millis) -> Error {
    Error::invalid(
        key,
        format!(
            "({d}) is longer than the longest supported duration ({})",
            Millis(MAX_DURATION_MS)
        ),
        format!(
            "use at most {} (1000 years); event time itself only spans years 1000 to 9999",
            Millis(MAX_DURATION_MS)
        ),
    )
}

/// A `[window]` or `[watermark]` duration is at most [`MAX_DURATION_MS`], so that window
/// bounds computed from any valid event time fit in an `i64`.
fn check_duration(key: &str, d: Millis) -> Result<(), Error> {
    if d.0 > MAX_DURATION_MS {
        Err(too_long(key, d))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
name = "t"
[source]
kind = "stdin"
[schema]
timestamp = { field = "ts", format = "epoch_ms" }
key = ["symbol"]
fields = { symbol = "string", price = "f64" }
[plugin]
path = "p.wasm"
[sink]
kind = "stdout"
"#;

    fn with_window(window: &str) -> Result<PipelineConfig, Error> {
        PipelineConfig::parse(&format!("{BASE}\n[window]\n{window}"))
    }

    #[test]
    fn missing_plugin_section_says_what_to_add_not_line_one() {
        let text = BASE.replace("[plugin]\npath = \"p.wasm\"\n", "");
        let err = PipelineConfig::parse(&format!(
            "{text}\n[window]\nkind = \"tumbling\"\nsize = \"1s\""
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("no [plugin] section"), "{err}");
        assert!(err.contains("path = \"plugins/my-plugin.wasm\""), "{err}");
        assert!(err.contains("weir serve"), "{err}");
        assert!(!err.contains("line 1, column 1"), "{err}");
    }

    #[test]
    fn missing_key_inside_a_table_is_the_parsers_message() {
        let text = BASE.replace("kind = \"stdin\"", "kind = \"file\"");
        let err = PipelineConfig::parse(&format!(
            "{text}\n[window]\nkind = \"tumbling\"\nsize = \"1s\""
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("missing field `path`"), "{err}");
        assert!(!err.contains("top level"), "{err}");
    }

    #[test]
    fn missing_top_level_key_is_named_with_the_fix() {
        let text = BASE.replace("name = \"t\"\n", "");
        let err = PipelineConfig::parse(&format!(
            "{text}\n[window]\nkind = \"tumbling\"\nsize = \"1s\""
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("no `name`: this file needs it at its top level"),
            "{err}"
        );
    }

    #[test]
    fn sliding_window_parses_durations() {
        let cfg = with_window("kind = \"sliding\"\nsize = \"3s\"\nslide = \"1s\"").unwrap();
        assert_eq!(
            cfg.window_kind(),
            crate::window::WindowKind::Sliding {
                size: 3000,
                slide: 1000
            }
        );
    }

    #[test]
    fn slide_that_does_not_divide_size_names_the_key_and_fix() {
        let err = with_window("kind = \"sliding\"\nsize = \"3s\"\nslide = \"2s\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("window.slide (2s) must divide window.size (3s)"),
            "{err}"
        );
        assert!(err.contains("pick a slide"), "{err}");
    }

    #[test]
    fn missing_size_says_what_to_add() {
        let err = with_window("kind = \"tumbling\"").unwrap_err().to_string();
        assert!(err.contains("window.size"), "{err}");
        assert!(err.contains("add `size = "), "{err}");
    }

    #[test]
    fn unknown_key_is_rejected_with_its_name() {
        let err = with_window("kind = \"tumbling\"\nsize = \"1s\"\nsizee = \"2s\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sizee"), "{err}");
    }

    #[test]
    fn undeclared_key_field_is_named() {
        let text = BASE.replace("key = [\"symbol\"]", "key = [\"sym\"]");
        let err = PipelineConfig::parse(&format!(
            "{text}\n[window]\nkind = \"tumbling\"\nsize = \"1s\""
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("schema.key[0]") && err.contains("`sym`"),
            "{err}"
        );
    }

    #[test]
    fn bad_timestamp_format_is_named() {
        let text = BASE.replace("epoch_ms", "iso");
        let err = PipelineConfig::parse(&format!(
            "{text}\n[window]\nkind = \"tumbling\"\nsize = \"1s\""
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("schema.timestamp.format"), "{err}");
    }

    #[test]
    fn window_budget_names_the_key_count_limit_and_fix() {
        let err = with_window("kind = \"sliding\"\nsize = \"100d\"\nslide = \"1ms\"")
            .unwrap_err()
            .to_string();
        // 100 days = 8 640 000 000 ms.
        assert!(
            err.starts_with("window.slide (1ms) puts every event in 8640000000 windows"),
            "{err}"
        );
        assert!(
            err.contains("over the limit of 10000 (plugin.limits.max_windows_per_event)"),
            "{err}"
        );
        // ceil(8 640 000 000 / 10 000) = 864 000 ms = 864s.
        assert!(err.contains("at least 864s"), "{err}");
        assert!(
            err.contains("or raise plugin.limits.max_windows_per_event"),
            "{err}"
        );
        // 100 years of 365.25 days, step 1 ms.
        let err = with_window("kind = \"cumulative\"\nsize = \"100y\"\nstep = \"1ms\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("window.step (1ms) puts every event in 3155760000000 windows"),
            "{err}"
        );
    }

    #[test]
    fn legitimate_large_budgets_pass_with_the_default() {
        with_window("kind = \"cumulative\"\nsize = \"1d\"\nstep = \"1m\"").unwrap();
        with_window("kind = \"sliding\"\nsize = \"1h\"\nslide = \"1s\"").unwrap();
        // A pipeline may raise its own budget.
        PipelineConfig::parse(&format!(
            "{BASE}\n[window]\nkind = \"sliding\"\nsize = \"1d\"\nslide = \"1s\"\n"
        ))
        .unwrap_err();
        let text = BASE.replace(
            "path = \"p.wasm\"",
            "path = \"p.wasm\"\nlimits = { max_windows_per_event = 86400 }",
        );
        PipelineConfig::parse(&format!(
            "{text}\n[window]\nkind = \"sliding\"\nsize = \"1d\"\nslide = \"1s\"\n"
        ))
        .unwrap();
    }

    #[test]
    fn durations_are_bounded() {
        let err = with_window("kind = \"tumbling\"\nsize = \"365251d\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "window.size (365251d) is longer than the longest supported duration (365250d)"
            ),
            "{err}"
        );
        assert!(err.contains("use at most 365250d"), "{err}");
        with_window("kind = \"tumbling\"\nsize = \"365250d\"").unwrap();
        let err = with_window("kind = \"tumbling\"\nsize = \"1s\"\nallowed_lateness = \"400000d\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("window.allowed_lateness (400000d)"),
            "{err}"
        );
        let err = with_window("kind = \"session\"\ngap = \"400000d\"")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("window.gap (400000d)"), "{err}");
        let wm = |w: &str| {
            PipelineConfig::parse(&format!(
                "{BASE}\n[window]\nkind = \"tumbling\"\nsize = \"1s\"\n[watermark]\n{w}"
            ))
        };
        let err = wm("delay = \"400000d\"").unwrap_err().to_string();
        assert!(
            err.starts_with("watermark.delay (400000d) is longer"),
            "{err}"
        );
        let err = wm("max_future = \"400000d\"").unwrap_err().to_string();
        assert!(
            err.starts_with("watermark.max_future (400000d) is longer"),
            "{err}"
        );
        let err = wm("max_future = \"0\"").unwrap_err().to_string();
        assert!(
            err.starts_with("watermark.max_future must be positive"),
            "{err}"
        );
        assert_eq!(
            wm("delay = \"1s\"").unwrap().watermark.max_future,
            Millis(7 * 86_400_000)
        );
        assert_eq!(
            wm("max_future = \"1h\"").unwrap().watermark.max_future,
            Millis(3_600_000)
        );
    }
}
