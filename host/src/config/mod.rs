//! Pipeline configuration: the TOML file a user writes, parsed and validated.
//!
//! Owns the shape of `PIPELINE.toml` and every semantic check on it (which key is wrong
//! and how to fix it). It does not open files, load plugins or build the pipeline;
//! `pipeline.rs` does that from a validated [`PipelineConfig`].

mod duration;
mod host;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use duration::{ByteSize, Millis, parse_millis, parse_size};
pub use host::{AdminConfig, HostConfig, PluginsConfig, TenantConfig};

use crate::time::MAX_DURATION_MS;
use crate::value::FieldType;

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
        message: e.to_string(),
    })?;
    let base_dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    Ok((value, base_dir))
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
    /// Directory the config was read from; relative paths resolve against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// `[source]`: where raw records come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum SourceConfig {
    /// Bounded: one file or a glob of files, read in sorted path order.
    File {
        /// A path or glob pattern (`data/*.csv`), relative to the config file.
        path: String,
        /// Record format.
        #[serde(default)]
        format: Format,
        /// CSV options.
        #[serde(default)]
        csv: CsvOptions,
    },
    /// Unbounded until EOF: standard input.
    Stdin {
        /// Record format.
        #[serde(default)]
        format: Format,
        /// CSV options.
        #[serde(default)]
        csv: CsvOptions,
    },
    /// Synthetic events: the seed workloads' random producers.
    Generator(GeneratorConfig),
}

/// Record framing and encoding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One JSON object per line.
    #[default]
    Jsonl,
    /// Comma-separated values, one record per line.
    Csv,
}

/// `[source.csv]`: CSV options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CsvOptions {
    /// The first line of each file names the columns (default true).
    pub header: bool,
    /// Column names when there is no header line.
    pub columns: Vec<String>,
    /// Field delimiter, one ASCII character (default `,`).
    pub delimiter: char,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            header: true,
            columns: Vec::new(),
            delimiter: ',',
        }
    }
}

/// Which synthetic workload the generator produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Stock ticks: `ts` (RFC 3339), `symbol`, `price`, `volume`.
    Stocks,
    /// Taxi trips, CSV-like with US-style timestamps and empty cells.
    Taxi,
    /// Crypto ticker: numbers sent as strings, µs RFC 3339 times.
    Ticker,
}

/// `[source]` with `kind = "generator"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    /// Which workload.
    pub workload: Workload,
    /// How many events (default 100 000).
    #[serde(default = "default_count")]
    pub count: u64,
    /// Events per second of wall time; 0 means as fast as possible (default 0).
    #[serde(default)]
    pub rate: u64,
    /// Number of distinct keys (symbols, pickup areas, products; default 10).
    #[serde(default = "default_keys")]
    pub keys: u32,
    /// Event-time spacing between consecutive events (default `10ms`).
    #[serde(default = "default_interval")]
    pub interval: Millis,
    /// Out-of-order jitter: each event's time is moved back by up to this much (default `0s`).
    #[serde(default)]
    pub jitter: Millis,
    /// Random seed; the same seed gives the same events (default 42).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Event time of the first event, RFC 3339 (default `2024-01-22T00:00:00Z`).
    #[serde(default)]
    pub start: Option<String>,
    /// Encoding of the generated records (default `jsonl`; `csv` starts with a header line).
    #[serde(default)]
    pub format: Format,
}

fn default_count() -> u64 {
    100_000
}
fn default_keys() -> u32 {
    10
}
fn default_interval() -> Millis {
    Millis(10)
}
fn default_seed() -> u64 {
    42
}

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

/// `[window]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// `tumbling`, `sliding`, `session` or `cumulative`.
    pub kind: WindowKindName,
    /// Window length (tumbling, sliding, cumulative).
    #[serde(default)]
    pub size: Option<Millis>,
    /// Distance between window starts (sliding).
    #[serde(default)]
    pub slide: Option<Millis>,
    /// Inactivity gap that closes a session (session).
    #[serde(default)]
    pub gap: Option<Millis>,
    /// Growth step of the cumulative window (cumulative).
    #[serde(default)]
    pub step: Option<Millis>,
    /// How long a fired window keeps its state for late events, which re-fire it (default 0).
    #[serde(default)]
    pub allowed_lateness: Millis,
}

/// The name of a window kind, as written in `window.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowKindName {
    /// Fixed-size, non-overlapping.
    Tumbling,
    /// Fixed-size, overlapping by `size - slide`.
    Sliding,
    /// Per-key activity sessions.
    Session,
    /// Growing windows within a tumbling period ("so far today").
    Cumulative,
}

/// `[watermark]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatermarkConfig {
    /// How far behind the largest event time seen the watermark trails (default 0).
    #[serde(default)]
    pub delay: Millis,
    /// A partition with no data for this long stops holding back the watermark (default: never).
    #[serde(default)]
    pub idle_timeout: Option<Millis>,
    /// How far ahead an event may be (default `7d`): of the pipeline watermark for bounded
    /// sources (files, the generator), of wall clock for live ones (stdin). An event further
    /// ahead goes to the dead letter and does not move the watermark. Until a bounded source
    /// has a watermark (before its first event), wall clock stands in.
    #[serde(default = "default_max_future")]
    pub max_future: Millis,
}

impl Default for WatermarkConfig {
    fn default() -> Self {
        WatermarkConfig {
            delay: Millis(0),
            idle_timeout: None,
            max_future: default_max_future(),
        }
    }
}

/// Default of `watermark.max_future`: 7 days.
pub const DEFAULT_MAX_FUTURE: Millis = Millis(7 * 86_400_000);

fn default_max_future() -> Millis {
    DEFAULT_MAX_FUTURE
}

/// `[emit]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmitConfig {
    /// `append` (one final row set per window) or `update` (also early firings).
    #[serde(default)]
    pub mode: EmitMode,
    /// Processing-time interval of early firings in `update` mode (default `1s`).
    #[serde(default = "default_emit_every")]
    pub every: Millis,
}

impl Default for EmitConfig {
    fn default() -> Self {
        EmitConfig {
            mode: EmitMode::Append,
            every: default_emit_every(),
        }
    }
}

fn default_emit_every() -> Millis {
    Millis(1000)
}

/// Emission mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmitMode {
    /// Rows once per window, when the watermark passes its end.
    #[default]
    Append,
    /// Also early rows every `emit.every` for windows that changed.
    Update,
}

/// `[plugin]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Path of the `.wasm` component, relative to the config file.
    pub path: PathBuf,
    /// Passed to the plugin's `configure`.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Resource limits for this plugin's instance.
    #[serde(default)]
    pub limits: LimitsConfig,
}

/// `[plugin.limits]` of a pipeline, or `[tenants.limits]` of a host: resource limits.
///
/// Every key is optional. In `weir serve` a tenant's limits are ceilings: a pipeline may ask
/// for less, never more. Unset keys take the defaults of [`Limits`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Guest memory cap per instance: all linear memories of its Store together (default
    /// `64MiB`).
    pub memory: Option<ByteSize>,
    /// CPU deadline per plugin call, enforced by epoch interruption in 1 ms ticks
    /// (default `1s`).
    pub deadline: Option<Millis>,
    /// Fuel per call (roughly, instructions); off by default because it slows guests.
    pub fuel: Option<u64>,
    /// Most rows one `aggregate` call may return (default 10 000).
    pub max_rows_per_call: Option<u64>,
    /// Largest result row, in bytes of its JSON encoding (default `64KiB`).
    pub max_row_bytes: Option<ByteSize>,
    /// Most windows open at once over all keys of a pipeline (default 1 000 000).
    pub max_open_windows: Option<u64>,
    /// Most events held in window state at once (default 10 000 000).
    pub max_buffered_events: Option<u64>,
    /// Plugin failures in a row after which `weir serve` quarantines the pipeline
    /// (default 10; `weir run` never quarantines).
    pub quarantine_after: Option<u32>,
    /// Lines per second of guest stdout/stderr that reach the tenant's log (default 10).
    pub log_lines_per_second: Option<u32>,
    /// Most windows one event may belong to: `size / slide` (sliding) or `size / step`
    /// (cumulative), checked when the pipeline is built (default 10 000).
    pub max_windows_per_event: Option<u64>,
    /// Largest input record, in bytes; a longer record goes to the dead letter, cut short
    /// (default `1MiB`).
    pub max_record_bytes: Option<ByteSize>,
    /// Most bytes of events held in window state at once, estimated from their values
    /// (default `1GiB`); like `max_buffered_events`, an event over it goes to the dead letter.
    pub max_buffered_bytes: Option<ByteSize>,
}

/// Resolved limits, every one with a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Guest memory cap (all memories of the Store together), bytes.
    pub memory_bytes: u64,
    /// CPU deadline per call, milliseconds.
    pub deadline_ms: u64,
    /// Fuel per call, if metering is on.
    pub fuel: Option<u64>,
    /// Most rows per `aggregate` call.
    pub max_rows_per_call: u64,
    /// Largest row, bytes.
    pub max_row_bytes: u64,
    /// Most open windows.
    pub max_open_windows: u64,
    /// Most buffered events.
    pub max_buffered_events: u64,
    /// Failures in a row before quarantine.
    pub quarantine_after: u32,
    /// Guest log lines per second.
    pub log_lines_per_second: u32,
    /// Most windows per event.
    pub max_windows_per_event: u64,
    /// Largest input record, bytes.
    pub max_record_bytes: u64,
    /// Most bytes buffered in window state.
    pub max_buffered_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            deadline_ms: 1000,
            fuel: None,
            max_rows_per_call: 10_000,
            max_row_bytes: 64 << 10,
            max_open_windows: 1_000_000,
            max_buffered_events: 10_000_000,
            quarantine_after: 10,
            log_lines_per_second: 10,
            max_windows_per_event: 10_000,
            max_record_bytes: 1 << 20,
            max_buffered_bytes: 1 << 30,
        }
    }
}

impl LimitsConfig {
    /// Resolves these limits under an optional ceiling (a tenant's limits): each key takes
    /// the smaller of the two values that are set, else the default.
    pub fn resolve(&self, ceiling: Option<&LimitsConfig>) -> Limits {
        fn pick<T: Ord + Copy>(own: Option<T>, cap: Option<T>, default: T) -> T {
            match (own, cap) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => default,
            }
        }
        let c = ceiling.cloned().unwrap_or_default();
        let d = Limits::default();
        Limits {
            memory_bytes: pick(
                self.memory.map(|b| b.0),
                c.memory.map(|b| b.0),
                d.memory_bytes,
            ),
            deadline_ms: pick(
                self.deadline.map(|m| m.0.max(1) as u64),
                c.deadline.map(|m| m.0.max(1) as u64),
                d.deadline_ms,
            ),
            fuel: match (self.fuel, c.fuel) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            max_rows_per_call: pick(
                self.max_rows_per_call,
                c.max_rows_per_call,
                d.max_rows_per_call,
            ),
            max_row_bytes: pick(
                self.max_row_bytes.map(|b| b.0),
                c.max_row_bytes.map(|b| b.0),
                d.max_row_bytes,
            ),
            max_open_windows: pick(
                self.max_open_windows,
                c.max_open_windows,
                d.max_open_windows,
            ),
            max_buffered_events: pick(
                self.max_buffered_events,
                c.max_buffered_events,
                d.max_buffered_events,
            ),
            quarantine_after: pick(
                self.quarantine_after,
                c.quarantine_after,
                d.quarantine_after,
            )
            .max(1),
            log_lines_per_second: pick(
                self.log_lines_per_second,
                c.log_lines_per_second,
                d.log_lines_per_second,
            ),
            max_windows_per_event: pick(
                self.max_windows_per_event,
                c.max_windows_per_event,
                d.max_windows_per_event,
            )
            .max(1),
            max_record_bytes: pick(
                self.max_record_bytes.map(|b| b.0),
                c.max_record_bytes.map(|b| b.0),
                d.max_record_bytes,
            )
            .max(1),
            max_buffered_bytes: pick(
                self.max_buffered_bytes.map(|b| b.0),
                c.max_buffered_bytes.map(|b| b.0),
                d.max_buffered_bytes,
            ),
        }
    }
}

/// A sink: `[sink]`, `[late_sink]`, `[dead_letter]` or `[error_sink]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum SinkConfig {
    /// Standard output.
    Stdout {
        /// Row encoding.
        #[serde(default)]
        format: Format,
    },
    /// Standard error.
    Stderr {
        /// Row encoding.
        #[serde(default)]
        format: Format,
    },
    /// A file, created with its parent directories if missing.
    File {
        /// Path, relative to the config file.
        path: PathBuf,
        /// Row encoding.
        #[serde(default)]
        format: Format,
        /// What to do with an existing file: `append` (default) keeps it and adds rows at
        /// its end (a CSV file keeps its one header, which must match the columns);
        /// `truncate` empties it when the pipeline starts.
        #[serde(default)]
        mode: SinkMode,
        /// `sync_data` the file at every flush (about once a second, and at stop), so that
        /// flushed rows survive a machine crash, not only a process crash (default false).
        #[serde(default)]
        sync: bool,
    },
}

/// `[sink] mode`: what opening a file sink does to an existing file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkMode {
    /// Keep what is there and add rows at the end (the default: a restart never erases the
    /// results of the run before).
    #[default]
    Append,
    /// Empty the file when the pipeline starts (each run replaces the last one's rows).
    Truncate,
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
            message: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Resolves a path from the config against the config file's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        resolve_path(&self.base_dir, path)
    }

    /// Every semantic check that the types alone do not make.
    fn validate(&self) -> Result<(), Error> {
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
        let fields = &self.schema.fields;
        let ts = &self.schema.timestamp.field;
        if !fields.contains_key(ts) && ts.is_empty() {
            return Err(Error::invalid(
                "schema.timestamp.field",
                "is empty",
                "name the field that holds event time",
            ));
        }
        crate::time::TimestampFormat::parse(&self.schema.timestamp.format).map_err(|e| {
            Error::invalid(
                "schema.timestamp.format",
                e,
                "use epoch_ms, epoch_s, rfc3339 or a strftime pattern such as \"%m/%d/%Y %I:%M:%S %p\"",
            )
        })?;
        for (i, k) in self.schema.key.iter().enumerate() {
            if !fields.contains_key(k) {
                return Err(Error::invalid(
                    format!("schema.key[{i}]"),
                    format!("names `{k}`, which is not declared"),
                    format!("add `{k} = \"string\"` (or its type) to [schema.fields]"),
                ));
            }
        }
        if let Some(req) = &self.schema.required {
            for (i, k) in req.iter().enumerate() {
                if !fields.contains_key(k) {
                    return Err(Error::invalid(
                        format!("schema.required[{i}]"),
                        format!("names `{k}`, which is not declared"),
                        format!("declare `{k}` in [schema.fields] or remove it"),
                    ));
                }
            }
        }
        if let SourceConfig::File { csv, format, .. } | SourceConfig::Stdin { csv, format } =
            &self.source
        {
            if *format == Format::Csv && !csv.header && csv.columns.is_empty() {
                return Err(Error::invalid(
                    "source.csv.columns",
                    "is empty while source.csv.header = false",
                    "list the column names in order, or set header = true",
                ));
            }
            if !csv.delimiter.is_ascii() {
                return Err(Error::invalid(
                    "source.csv.delimiter",
                    format!("`{}` is not an ASCII character", csv.delimiter),
                    "use a single ASCII character such as \",\" or \";\"",
                ));
            }
        }
        if let SourceConfig::Generator(g) = &self.source {
            if g.keys == 0 {
                return Err(Error::invalid("source.keys", "is 0", "use at least 1 key"));
            }
            if let Some(start) = &g.start {
                crate::time::TimestampFormat::Rfc3339
                    .parse_str(start)
                    .map_err(|e| {
                        Error::invalid(
                            "source.start",
                            e,
                            "write it as RFC 3339, e.g. \"2024-01-22T00:00:00Z\"",
                        )
                    })?;
            }
        }
        self.window_kind()?;
        check_duration("watermark.delay", self.watermark.delay)?;
        check_duration("watermark.max_future", self.watermark.max_future)?;
        if self.watermark.max_future.0 <= 0 {
            return Err(Error::invalid(
                "watermark.max_future",
                "must be positive",
                "use a duration such as \"7d\" (events further ahead of the watermark go to the dead letter)",
            ));
        }
        let own = self.plugin.limits.resolve(None).max_windows_per_event;
        self.check_window_budget(own, "plugin.limits.max_windows_per_event")?;
        if self.plugin.limits.deadline.is_some_and(|d| d.0 <= 0) {
            return Err(Error::invalid(
                "plugin.limits.deadline",
                "must be positive",
                "use a duration such as \"500ms\"",
            ));
        }
        if self.emit.mode == EmitMode::Update && self.emit.every.0 <= 0 {
            return Err(Error::invalid(
                "emit.every",
                "must be positive in update mode",
                "use a duration such as \"1s\"",
            ));
        }
        Ok(())
    }

    /// The window assigner this config describes, with sizes checked.
    pub fn window_kind(&self) -> Result<crate::window::WindowKind, Error> {
        use crate::window::WindowKind;
        let w = &self.window;
        let need = |v: Option<Millis>, key: &str, example: &str| -> Result<i64, Error> {
            match v {
                Some(Millis(ms)) if ms > MAX_DURATION_MS => {
                    Err(too_long(&format!("window.{key}"), Millis(ms)))
                }
                Some(Millis(ms)) if ms > 0 => Ok(ms),
                Some(Millis(ms)) => Err(Error::invalid(
                    format!("window.{key}"),
                    format!("must be positive, got {ms}ms"),
                    format!("use a duration such as {example}"),
                )),
                None => Err(Error::invalid(
                    format!("window.{key}"),
                    format!("is required for a {:?} window", w.kind).to_lowercase(),
                    format!("add `{key} = {example}` under [window]"),
                )),
            }
        };
        let forbid = |v: Option<Millis>, key: &str| -> Result<(), Error> {
            match v {
                Some(_) => Err(Error::invalid(
                    format!("window.{key}"),
                    format!("does not apply to a {:?} window", w.kind).to_lowercase(),
                    format!("remove `{key}` from [window]"),
                )),
                None => Ok(()),
            }
        };
        let kind = match w.kind {
            WindowKindName::Tumbling => {
                forbid(w.slide, "slide")?;
                forbid(w.gap, "gap")?;
                forbid(w.step, "step")?;
                WindowKind::Tumbling {
                    size: need(w.size, "size", "\"5s\"")?,
                }
            }
            WindowKindName::Sliding => {
                forbid(w.gap, "gap")?;
                forbid(w.step, "step")?;
                let size = need(w.size, "size", "\"3s\"")?;
                let slide = need(w.slide, "slide", "\"1s\"")?;
                if slide > size {
                    return Err(Error::invalid(
                        "window.slide",
                        format!(
                            "({}) is larger than window.size ({})",
                            Millis(slide),
                            Millis(size)
                        ),
                        "use a slide no larger than the size (equal makes it tumbling)",
                    ));
                }
                if size % slide != 0 {
                    return Err(Error::invalid(
                        "window.slide",
                        format!(
                            "({}) must divide window.size ({})",
                            Millis(slide),
                            Millis(size)
                        ),
                        "pick a slide that divides the size, e.g. size \"3s\" with slide \"1s\"",
                    ));
                }
                WindowKind::Sliding { size, slide }
            }
            WindowKindName::Session => {
                forbid(w.size, "size")?;
                forbid(w.slide, "slide")?;
                forbid(w.step, "step")?;
                WindowKind::Session {
                    gap: need(w.gap, "gap", "\"30s\"")?,
                }
            }
            WindowKindName::Cumulative => {
                forbid(w.slide, "slide")?;
                forbid(w.gap, "gap")?;
                let size = need(w.size, "size", "\"1d\"")?;
                let step = need(w.step, "step", "\"1h\"")?;
                if step > size || size % step != 0 {
                    return Err(Error::invalid(
                        "window.step",
                        format!(
                            "({}) must divide window.size ({})",
                            Millis(step),
                            Millis(size)
                        ),
                        "pick a step that divides the size, e.g. size \"1d\" with step \"1h\"",
                    ));
                }
                WindowKind::Cumulative { size, step }
            }
        };
        if w.allowed_lateness.0 < 0 {
            return Err(Error::invalid(
                "window.allowed_lateness",
                "is negative",
                "use 0s or a positive duration",
            ));
        }
        check_duration("window.allowed_lateness", w.allowed_lateness)?;
        Ok(kind)
    }

    /// Checks the per-event window budget: an event belongs to `size / slide` sliding or
    /// `size / step` cumulative windows, which must be at most `limit` (the resolved
    /// `max_windows_per_event`, named by `limit_key` in the message).
    ///
    /// Checked when the config is validated (against the pipeline's own limit) and when the
    /// pipeline is built (against the limit resolved under the tenant's ceiling).
    pub fn check_window_budget(&self, limit: u64, limit_key: &str) -> Result<(), Error> {
        let kind = self.window_kind()?;
        let n = kind.windows_per_event();
        if n <= limit {
            return Ok(());
        }
        let (key, name, size, by) = match kind {
            crate::window::WindowKind::Sliding { size, slide } => {
                ("window.slide", "slide", size, slide)
            }
            crate::window::WindowKind::Cumulative { size, step } => {
                ("window.step", "step", size, step)
            }
            _ => return Ok(()),
        };
        // The smallest slide/step that keeps the count within the limit (it must also divide
        // the size): ceil(size / limit), in whole milliseconds.
        let limit_i = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        let at_least = Millis((size / limit_i + i64::from(size % limit_i != 0)).max(1));
        Err(Error::invalid(
            key,
            format!(
                "({}) puts every event in {n} windows (window.size {} / window.{name} {}), over the limit of {limit} ({limit_key})",
                Millis(by),
                Millis(size),
                Millis(by)
            ),
            format!(
                "use a larger {name}, at least {at_least} and dividing the size, or raise {limit_key}"
            ),
        ))
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
    fn sliding_window_parses_durations() {
        let cfg = with_window("kind = \"sliding\"\nsize = \"3s\"\nslide = \"1s\"").unwrap();
        assert_eq!(
            cfg.window_kind().unwrap(),
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
