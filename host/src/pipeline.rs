//! One pipeline, wired: source → decode → filter → key/time → watermark → window state →
//! fire → aggregate → sinks, plus the late, dead-letter and error side outputs.
//!
//! Runs on the calling thread: sources are pulled in batches, the plugin's filter is called
//! once per batch, and the watermark advances after every event. Bounded input ends with a
//! flush of every open window.

#[cfg(test)]
mod exactly_once_tests;
mod offsets;
#[cfg(test)]
mod output_change_tests;
mod parallel;
#[cfg(test)]
mod test_pipeline;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::checkpoint::{self, Checkpoint, Counters, Identity};
use crate::config::{
    CsvOptions, EmitMode, Limits, PipelineConfig, SinkConfig, SinkMode, SourceConfig,
};
use crate::decode::{self, Decoder, Event, Schema};
use crate::plugin::LogBudget;
use crate::plugin::{
    self, Finish, Owner, Plan, Plugin, PluginCode, PluginInfo, PluginInstance, Runtime, Slot,
};
use crate::sink::{self, Cell, Sink, SinkRole};
use crate::source::{
    FileSource, GeneratorSource, KafkaSource, Poll, RawBatch, RawRecord, Rejected, SizeHint,
    Source, StdinSource,
};
use crate::time::{NO_WATERMARK, Watermarks, format_rfc3339_ms};
use crate::value::{Key, Value};
use crate::window::panes::{Planner, StateRef};
use crate::window::{Due, Placement, StoredEvent, Window, WindowOperator};

/// How often sinks are flushed while input keeps coming (rows of an unbounded source reach
/// their files within about this long).
pub const SINK_FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Records decoded and filtered per plugin `filter` call.
pub const BATCH_SIZE: usize = 4096;

/// Counters of one run, printed as its summary.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Raw records received (CSV header lines excluded).
    pub events_read: u64,
    /// Records that failed to decode (sent to the dead-letter sink).
    pub malformed: u64,
    /// Events the plugin's filter dropped.
    pub filtered: u64,
    /// Events late for every window that contains them.
    pub late: u64,
    /// Windows fired (each firing of each key's window counts once).
    pub windows_fired: u64,
    /// Result rows written.
    pub rows_written: u64,
    /// Plugin calls that failed (error records written).
    pub plugin_errors: u64,
    /// Wall time of the run, seconds.
    pub wall_seconds: f64,
    /// `events_read / wall_seconds`.
    pub events_per_second: f64,
    /// Worker threads that held the window state (1: the pipeline's own thread).
    pub parallelism: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "  events read     {:>12}", self.events_read)?;
        writeln!(f, "  malformed       {:>12}", self.malformed)?;
        writeln!(f, "  filtered        {:>12}", self.filtered)?;
        writeln!(f, "  late            {:>12}", self.late)?;
        writeln!(f, "  windows fired   {:>12}", self.windows_fired)?;
        writeln!(f, "  rows written    {:>12}", self.rows_written)?;
        writeln!(f, "  plugin errors   {:>12}", self.plugin_errors)?;
        writeln!(f, "  parallelism     {:>12}", self.parallelism)?;
        writeln!(f, "  wall time       {:>10.3} s", self.wall_seconds)?;
        write!(
            f,
            "  throughput      {:>12.0} events/s",
            self.events_per_second
        )
    }
}

/// Loads a pipeline's plugin from its `plugin.path`, configures it and checks it against
/// the schema.
///
/// This is all of `weir check` beyond config validation, and the first step of a run. A
/// component that passes is kept in the runtime's compiled caches ([`Runtime::keep`]).
pub fn load_plugin(
    cfg: &PipelineConfig,
    schema: &Schema,
    runtime: &Runtime,
) -> anyhow::Result<PluginInstance> {
    let path = cfg.resolve(&cfg.plugin.path);
    let code: Arc<PluginCode> = runtime.load_file(&path).map_err(|e| {
        anyhow::anyhow!(
            "{e}{}",
            if path.exists() {
                String::new()
            } else {
                "; plugin.path is relative to the pipeline file — build the plugin first (see README)".to_string()
            }
        )
    })?;
    let owner = Owner {
        tenant: String::new(),
        pipeline: cfg.name.clone(),
    };
    let inst = instantiate_checked(
        cfg,
        schema,
        code.clone(),
        cfg.plugin.limits.resolve(None),
        owner,
    )?;
    // Validated: cache the compiled code (on disk too when the runtime has a cache dir).
    runtime.keep(&code);
    Ok(inst)
}

/// Instantiates compiled plugin code for a pipeline: configures it with the pipeline's
/// params, checks its declared inputs against the schema and its outputs against the
/// columns the host writes ([`plugin::check_outputs`]). Used at start-up and for
/// every hot swap, so both validate the same way.
pub fn instantiate_checked(
    cfg: &PipelineConfig,
    schema: &Schema,
    code: Arc<PluginCode>,
    limits: Limits,
    owner: Owner,
) -> Result<PluginInstance, plugin::Error> {
    let params = cfg
        .plugin
        .params
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let inst = PluginInstance::with_keys(code, limits, params, cfg.schema.key.clone(), owner)?;
    plugin::check_inputs(inst.info(), |n| schema.type_of(n))?;
    plugin::check_outputs(inst.info(), &cfg.schema.key)?;
    Ok(inst)
}

/// How a pipeline runs: alone (`weir run`) or as one of a host's (`weir serve`).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Whose pipeline this is (tenant empty for `weir run`).
    pub owner: Owner,
    /// Add a `plugin_version` column to result rows (serve: versions change under a run).
    pub version_column: bool,
    /// Stop calling the plugin after `quarantine_after` failures in a row (serve only: a
    /// quarantined `weir run` would never end).
    pub quarantine: bool,
    /// Raised by the host when a control message (a swap, a pause) is waiting: firings are
    /// deferred — their windows stay pending — so that the current batch ends at once, even
    /// when every plugin call runs to its deadline.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Remove the pipeline's checkpoint before starting instead of restoring it (the
    /// operator's answer to a checkpoint that is refused).
    pub discard_checkpoint: bool,
    /// Keep a copy of the latest result rows and error records here, for the console
    /// (`weir serve`, `weir run --console`).
    pub console: Option<Arc<crate::console::Telemetry>>,
    /// Asked before each plugin call of a firing: while the tenant's CPU budget is in debt,
    /// the remaining windows are declined and stay pending, as for an interrupt
    /// (`weir serve`).
    pub cpu: Option<Arc<crate::plugin::CpuShare>>,
}

/// The columns of a result row, in order: key fields, window bounds, `revision` (when
/// windows can fire more than once), `plugin_version` (in serve), then the plugin's outputs.
pub fn output_columns(cfg: &PipelineConfig, info: &PluginInfo, opts: &Options) -> Vec<String> {
    let mut cols: Vec<String> = cfg.schema.key.clone();
    cols.push("window_start".into());
    cols.push("window_end".into());
    if has_revisions(cfg) {
        cols.push("revision".into());
    }
    if opts.version_column {
        cols.push("plugin_version".into());
    }
    cols.extend(info.outputs.iter().map(|(n, _)| n.clone()));
    cols
}

/// A hot swap refused because the new version's output columns differ from the live
/// one's and the result sink is CSV, whose header is fixed.
#[derive(Debug, thiserror::Error)]
#[error(
    "the new version's output columns differ from the live version's ({difference}) and the sink ({sink}) is CSV with a fixed header: deploy a version with the same outputs, or ask the operator to set `allow_output_change = true` in the pipeline's [plugin] section (a new file is then started)"
)]
pub struct OutputChangeRefused {
    /// The result sink, described.
    pub sink: String,
    /// What differs: columns removed, added, or the same columns in another order.
    pub difference: String,
}

/// Why pipeline `cfg` may not change its output columns from `old` to `new`: its result
/// sink is CSV and `[plugin] allow_output_change` is off. `None` when it may.
pub fn output_change_refusal(
    cfg: &PipelineConfig,
    old: &[String],
    new: &[String],
) -> Option<OutputChangeRefused> {
    let csv = sink_format(&cfg.sink) == crate::config::Format::Csv;
    (old != new && csv && !cfg.plugin.allow_output_change).then(|| OutputChangeRefused {
        sink: describe_sink(cfg, &cfg.sink),
        difference: column_difference(old, new),
    })
}

/// A sink of pipeline `cfg` as its checkpoint identity and its errors name it:
/// `file /abs/out.csv (Csv)`, `kafka topic out (Jsonl)`, `stdout (Jsonl)`.
fn describe_sink(cfg: &PipelineConfig, c: &SinkConfig) -> String {
    match c {
        SinkConfig::File { path, format, .. } => {
            format!("file {} ({format:?})", cfg.resolve(path).display())
        }
        SinkConfig::Kafka { topic, format, .. } => format!("kafka topic {topic} ({format:?})"),
        SinkConfig::Stdout { format } => format!("stdout ({format:?})"),
        SinkConfig::Stderr { format } => format!("stderr ({format:?})"),
    }
}

/// The format rows are written in by a sink.
fn sink_format(cfg: &SinkConfig) -> crate::config::Format {
    match cfg {
        SinkConfig::Stdout { format }
        | SinkConfig::Stderr { format }
        | SinkConfig::File { format, .. }
        | SinkConfig::Kafka { format, .. } => *format,
    }
}

/// `removed: a, b; added: c`, or `same columns in another order: …`.
pub fn column_difference(old: &[String], new: &[String]) -> String {
    let removed: Vec<&str> = old
        .iter()
        .filter(|c| !new.contains(c))
        .map(String::as_str)
        .collect();
    let added: Vec<&str> = new
        .iter()
        .filter(|c| !old.contains(c))
        .map(String::as_str)
        .collect();
    let mut parts = Vec::new();
    if !removed.is_empty() {
        parts.push(format!("removed: {}", removed.join(", ")));
    }
    if !added.is_empty() {
        parts.push(format!("added: {}", added.join(", ")));
    }
    if parts.is_empty() {
        parts.push(format!("same columns in another order: {}", new.join(", ")));
    }
    parts.join("; ")
}

/// Where a CSV file is set aside when the output columns change at `at`:
/// `out/rides.csv` → `out/rides.20261123T213000Z.csv`, with `-2`, `-3`… if taken.
fn set_aside_name(path: &Path, at: chrono::DateTime<chrono::Utc>) -> PathBuf {
    let stem = path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let ext = path
        .extension()
        .map_or_else(String::new, |e| format!(".{}", e.to_string_lossy()));
    let stamp = at.format("%Y%m%dT%H%M%SZ");
    let mut n = 1;
    loop {
        let suffix = if n == 1 {
            String::new()
        } else {
            format!("-{n}")
        };
        let candidate = path.with_file_name(format!("{stem}.{stamp}{suffix}{ext}"));
        if !candidate.exists() {
            return candidate;
        }
        n += 1;
    }
}

fn has_revisions(cfg: &PipelineConfig) -> bool {
    cfg.window.allowed_lateness.0 > 0 || cfg.emit.mode == EmitMode::Update
}

const DEAD_LETTER_COLUMNS: [&str; 5] = ["pipeline", "origin", "offset", "reason", "record"];
const ERROR_COLUMNS: [&str; 8] = [
    "pipeline",
    "plugin",
    "kind",
    "error",
    "key",
    "window_start",
    "window_end",
    "revision",
];

fn default_side_sink() -> SinkConfig {
    SinkConfig::Stderr {
        format: crate::config::Format::Jsonl,
    }
}

/// `sink`, the sink of `role`, copying its rows into the console's telemetry when there is
/// one (result rows into its rows, the rest into its error records).
fn tap(
    console: Option<&Arc<crate::console::Telemetry>>,
    sink: Box<dyn Sink>,
    columns: Vec<String>,
    role: SinkRole,
) -> Box<dyn Sink> {
    match console {
        None => sink,
        Some(t) => {
            let recent = if role == SinkRole::Results {
                t.rows.clone()
            } else {
                t.errors.clone()
            };
            Box::new(crate::console::TapSink::new(sink, columns, role, recent))
        }
    }
}

fn owned(columns: &[&str]) -> Vec<String> {
    columns.iter().map(|c| c.to_string()).collect()
}

struct Outputs {
    results: Box<dyn Sink>,
    late: Option<Box<dyn Sink>>,
    dead_letter: Box<dyn Sink>,
    errors: Box<dyn Sink>,
}

impl Outputs {
    /// The order sinks are flushed and checkpointed in: the results first, the optional
    /// late sink last.
    const ORDER: [SinkRole; 4] = [
        SinkRole::Results,
        SinkRole::DeadLetter,
        SinkRole::Errors,
        SinkRole::Late,
    ];

    /// The sink of `role`, if the pipeline has one.
    fn get_mut(&mut self, role: SinkRole) -> Option<&mut Box<dyn Sink>> {
        match role {
            SinkRole::Results => Some(&mut self.results),
            SinkRole::Late => self.late.as_mut(),
            SinkRole::DeadLetter => Some(&mut self.dead_letter),
            SinkRole::Errors => Some(&mut self.errors),
        }
    }
}

/// A pipeline ready to run.
pub struct Pipeline {
    cfg: PipelineConfig,
    schema: Schema,
    source: Box<dyn Source>,
    decoder: Box<dyn Decoder>,
    plugin: Box<dyn Plugin>,
    /// Schema index of each plugin input, in input order.
    inputs: Vec<usize>,
    operator: WindowOperator,
    watermarks: Watermarks,
    out: Outputs,
    summary: Summary,
    opts: Options,
    version: String,
    limits: Limits,
    /// Plugin failures in a row; reset by a success or a new version.
    failures_in_a_row: u32,
    quarantined: Option<String>,
    /// Whether the last end-of-input flush fired every window.
    flushed: bool,
    started: Instant,
    last_early: Instant,
    last_flush: Instant,
    raws: RawBatch,
    events: Vec<(usize, Event)>,
    rejected: Vec<Rejected>,
    /// Whether a stop was asked for at the start of this step (firings are declined).
    stop_requested: bool,
    /// Whether [`Pipeline::run_until`] stopped on request.
    stopped: bool,
    /// The pipeline's log budget, shared with its guest's stdout and stderr.
    log: LogBudget,
    /// The workers holding the window state, when `parallelism` > 1 (then `operator`
    /// holds nothing).
    shards: Option<parallel::Shards>,
    /// For a source that takes commits: the offsets of the records still needed.
    offsets: Option<offsets::Offsets>,
    /// Per record of the batch in hand, when it is released ([`offsets`]).
    releases: Vec<i64>,
    /// Local checkpoints, when `[checkpoint]` is set.
    checkpoints: Option<Checkpoints>,
    /// Per partition id, what its last commit recorded when it was assigned
    /// ([`Source::replay_floor`]).
    floors: Vec<Option<(i64, u64)>>,
}

/// A pipeline's local checkpoints.
struct Checkpoints {
    dir: PathBuf,
    every: Duration,
    last: Instant,
    identity: Identity,
    /// Window state read from the checkpoint, handed to the window operator (or to the
    /// workers, by key) before the first batch.
    restore: Option<Vec<Vec<u8>>>,
}

/// What one step of a pipeline did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// More input may come.
    More,
    /// The input ended and every window was flushed.
    Finished,
}

impl Pipeline {
    /// Opens the source and sinks around an instantiated, checked plugin.
    pub fn build(
        cfg: PipelineConfig,
        plugin: impl Plugin + 'static,
        opts: Options,
    ) -> anyhow::Result<Self> {
        let plugin: Box<dyn Plugin> = Box::new(plugin);
        let schema = Schema::new(&cfg.schema).map_err(|e| anyhow::anyhow!("schema: {e}"))?;
        // The per-event window budget under the limits in force (a tenant's ceiling may be
        // lower than the pipeline's own), before any sink is opened.
        let budget = plugin.limits().state.max_windows_per_event;
        let own = cfg.plugin.limits.resolve(None).state.max_windows_per_event;
        let budget_key = if budget < own {
            "the tenant's limits.max_windows_per_event"
        } else {
            "plugin.limits.max_windows_per_event"
        };
        cfg.check_window_budget(budget, budget_key)?;
        let inputs = input_indices(&schema, plugin.info());
        let max_record = plugin.limits().max_record_bytes;
        // Exactly-once: the transactional producer starts before the source reads the
        // group's offsets, so that the transaction a dead predecessor left is completed or
        // aborted first and the offsets read are the last committed ones.
        let transactional = if cfg.sink.exactly_once() {
            let columns = output_columns(&cfg, plugin.info(), &opts);
            Some(sink::open_results(&cfg, columns).context("sink")?)
        } else {
            None
        };
        let (source, decoder): (Box<dyn Source>, Box<dyn Decoder>) = match &cfg.source {
            SourceConfig::File { path, format, csv } => (
                Box::new(FileSource::open(path, &cfg.base_dir)?.with_max_record_bytes(max_record)),
                decode::decoder(*format, csv, &schema),
            ),
            SourceConfig::Stdin { format, csv } => (
                Box::new(StdinSource::new().with_max_record_bytes(max_record)),
                decode::decoder(*format, csv, &schema),
            ),
            SourceConfig::Generator(g) => (
                Box::new(GeneratorSource::new(g)?),
                decode::decoder(g.format, &CsvOptions::default(), &schema),
            ),
            SourceConfig::Kafka(k) => (
                Box::new(KafkaSource::open(k, max_record)?),
                decode::decoder(k.format, &k.csv, &schema),
            ),
        };
        let columns = output_columns(&cfg, plugin.info(), &opts);
        let base = cfg.base_dir.clone();
        let identity = identity(&cfg, &schema, source.as_ref());
        let restored = match &cfg.checkpoint {
            Some(c) => read_checkpoint(&cfg, &cfg.resolve(&c.dir), &identity, &opts)?,
            None => None,
        };
        let resumed = restored.is_some();
        let open = |c: &SinkConfig, cols: Vec<String>| {
            sink::open_for(&resuming(c, resumed), &base, cols, &cfg.name)
        };
        let mut late_cols = vec![
            "pipeline".to_string(),
            "reason".into(),
            "watermark".into(),
            "ts".into(),
        ];
        late_cols.extend(schema.fields.iter().map(|(n, _)| n.clone()));
        let side = |c: &Option<SinkConfig>, cols: &[&str]| {
            open(
                c.as_ref().unwrap_or(&default_side_sink()),
                cols.iter().map(|s| s.to_string()).collect(),
            )
        };
        let tap = |sink: Box<dyn Sink>, cols: Vec<String>, role: SinkRole| {
            tap(opts.console.as_ref(), sink, cols, role)
        };
        let out = Outputs {
            results: tap(
                transactional
                    .map_or_else(|| open(&cfg.sink, columns.clone()), Ok)
                    .context(SinkRole::Results.key())?,
                columns,
                SinkRole::Results,
            ),
            late: cfg
                .late_sink
                .as_ref()
                .map(|c| open(c, late_cols.clone()))
                .transpose()
                .context(SinkRole::Late.key())?
                .map(|s| tap(s, late_cols, SinkRole::Late)),
            dead_letter: tap(
                side(&cfg.dead_letter, &DEAD_LETTER_COLUMNS).context(SinkRole::DeadLetter.key())?,
                owned(&DEAD_LETTER_COLUMNS),
                SinkRole::DeadLetter,
            ),
            errors: tap(
                side(&cfg.error_sink, &ERROR_COLUMNS).context(SinkRole::Errors.key())?,
                owned(&ERROR_COLUMNS),
                SinkRole::Errors,
            ),
        };
        let mut operator = WindowOperator::new(cfg.window_kind(), cfg.window.allowed_lateness.0);
        let watermarks = Watermarks::new(
            cfg.watermark.delay.0,
            cfg.watermark
                .idle_timeout
                .map(|m| Duration::from_millis(m.0 as u64)),
        );
        let limits = *plugin.limits();
        // The operator checks the state limits per window created and refuses an event
        // whole; they change only here and at a swap.
        operator.set_limits(limits.state);
        let version = plugin.version_id();
        let log = LogBudget::for_pipeline(
            &opts.owner.tenant,
            &cfg.name,
            limits.sandbox.log_lines_per_second,
        );
        Pipeline {
            cfg,
            schema,
            source,
            decoder,
            plugin,
            inputs,
            operator,
            watermarks,
            out,
            summary: Summary {
                parallelism: 1,
                ..Summary::default()
            },
            opts,
            version,
            limits,
            failures_in_a_row: 0,
            quarantined: None,
            flushed: false,
            started: Instant::now(),
            last_early: Instant::now(),
            last_flush: Instant::now(),
            raws: RawBatch::with_capacity(BATCH_SIZE),
            events: Vec::with_capacity(BATCH_SIZE),
            rejected: Vec::new(),
            stop_requested: false,
            stopped: false,
            log,
            shards: None,
            offsets: None,
            releases: Vec::new(),
            checkpoints: None,
            floors: Vec::new(),
        }
        .tracking_offsets()
        .checkpointing(identity, restored)
    }

    /// Sets up checkpoints and takes back the state of the one read at start, if any: the
    /// source's position (and the header of the input it resumes in), the watermarks and
    /// the counters now, the window state before the first batch.
    fn checkpointing(
        mut self,
        identity: Identity,
        restored: Option<Checkpoint>,
    ) -> anyhow::Result<Self> {
        let Some(c) = &self.cfg.checkpoint else {
            return Ok(self);
        };
        let mut cp = Checkpoints {
            dir: self.cfg.resolve(&c.dir),
            every: Duration::from_millis(c.every.0.max(1) as u64),
            last: Instant::now(),
            identity,
            restore: None,
        };
        if let Some(r) = restored {
            let mut headers = RawBatch::with_capacity(1);
            self.source
                .restore(&r.source, &mut headers)
                .context("checkpoint")?;
            for h in headers.iter() {
                self.decoder.prime(&h);
            }
            self.watermarks.restore(&r.watermarks, Instant::now());
            let n = r.counters;
            let s = &mut self.summary;
            s.events_read = n.events_read;
            s.malformed = n.malformed;
            s.filtered = n.filtered;
            s.late = n.late;
            s.windows_fired = n.windows_fired;
            s.rows_written = n.rows_written;
            s.plugin_errors = n.plugin_errors;
            tracing::info!(
                pipeline = %self.cfg.name,
                dir = %cp.dir.display(),
                source = ?r.source,
                watermark = r.watermarks.current,
                "resuming from the checkpoint"
            );
            if let Some(o) = &mut self.offsets
                && !r.offsets.is_empty()
            {
                *o = postcard::from_bytes(&r.offsets).map_err(|e| {
                    anyhow::anyhow!("checkpoint: the source offsets do not decode: {e}")
                })?;
            }
            cp.restore = Some(r.state);
        }
        self.checkpoints = Some(cp);
        Ok(self)
    }

    /// Hands the window state read from the checkpoint to the operator or the workers
    /// (once, before the first batch).
    fn restore_state(&mut self) -> anyhow::Result<()> {
        let Some(blobs) = self.checkpoints.as_mut().and_then(|c| c.restore.take()) else {
            return Ok(());
        };
        let mut keys = Vec::new();
        for b in &blobs {
            keys.extend(
                WindowOperator::decode_snapshot(b)
                    .map_err(|e| anyhow::anyhow!("checkpoint: the window state does not decode: {e}; discard it with weir run --discard-checkpoint"))?,
            );
        }
        match &mut self.shards {
            Some(sh) => sh.restore(keys)?,
            None => {
                for k in keys {
                    self.operator.restore(k);
                }
            }
        }
        // Nothing fires here: windows made pending again by late events fire at the next
        // watermark change, as they would have without the restart.
        Ok(())
    }

    /// Whether a checkpoint is due.
    fn checkpoint_due(&self) -> bool {
        self.checkpoints
            .as_ref()
            .is_some_and(|c| c.last.elapsed() >= c.every)
    }

    /// Writes a checkpoint: every batch read is written out, the sinks are flushed and
    /// synced, and the state, watermarks and positions are written atomically.
    pub fn write_checkpoint(&mut self) -> anyhow::Result<()> {
        if self.checkpoints.is_none() {
            return Ok(());
        }
        self.restore_state()?;
        let started = Instant::now();
        self.flush_sinks()?;
        let mut sinks = BTreeMap::new();
        for role in Outputs::ORDER {
            if let Some(s) = self.out.get_mut(role)
                && let Some(len) = s.checkpoint()?
            {
                sinks.insert(role.key().to_string(), len);
            }
        }
        let state = match &mut self.shards {
            Some(sh) => sh.snapshot()?,
            None => vec![
                self.operator
                    .snapshot()
                    .map_err(|e| anyhow::anyhow!("checkpoint: encoding window state: {e}"))?,
            ],
        };
        let Some(source) = self.source.checkpoint() else {
            anyhow::bail!(
                "checkpoint: {} cannot be read again from a position",
                self.source.describe()
            );
        };
        let offsets = match &self.offsets {
            Some(o) => postcard::to_allocvec(o)
                .map_err(|e| anyhow::anyhow!("checkpoint: encoding source offsets: {e}"))?,
            None => Vec::new(),
        };
        let s = &self.summary;
        let Some(c) = &mut self.checkpoints else {
            return Ok(());
        };
        let cp = Checkpoint {
            identity: c.identity.clone(),
            written_at_ms: chrono::Utc::now().timestamp_millis(),
            source,
            watermarks: self.watermarks.snapshot(),
            sinks,
            counters: Counters {
                events_read: s.events_read,
                malformed: s.malformed,
                filtered: s.filtered,
                late: s.late,
                windows_fired: s.windows_fired,
                rows_written: s.rows_written,
                plugin_errors: s.plugin_errors,
            },
            offsets,
            state,
        };
        let bytes = checkpoint::write(&c.dir, &cp)?;
        c.last = Instant::now();
        self.commit_offsets()?;
        tracing::debug!(
            pipeline = %self.cfg.name,
            bytes,
            ms = started.elapsed().as_secs_f64() * 1e3,
            "checkpoint written"
        );
        Ok(())
    }

    /// How often sinks are flushed (and source offsets committed) while input keeps coming.
    fn flush_every(&self) -> Duration {
        self.source
            .commit_every()
            .map_or(SINK_FLUSH_EVERY, |c| c.min(SINK_FLUSH_EVERY))
    }

    /// Keeps the offsets of the records still needed when the source takes commits.
    fn tracking_offsets(mut self) -> Self {
        if self.source.commits() {
            self.offsets = Some(offsets::Offsets::default());
        }
        self
    }

    /// The watermark at which the last window containing an event at `ts` has fired and
    /// is purged: the end of its last window plus the allowed lateness. Sessions can grow
    /// without bound, so their events are never released (a restart replays them).
    fn release_of(&self, ts: i64) -> i64 {
        match self.operator.kind().ends(ts) {
            Ok(Some((_, last))) => last.saturating_add(self.cfg.window.allowed_lateness.0),
            Ok(None) => i64::MAX,
            Err(_) => offsets::RELEASED,
        }
    }

    /// Notes when record `i` of the batch in hand, an event at `ts` placed in window state,
    /// is released.
    fn placed(&mut self, i: usize, ts: i64) {
        if self.offsets.is_some() {
            let release = self.release_of(ts);
            if let Some(slot) = self.releases.get_mut(i) {
                *slot = release;
            }
        }
    }

    /// Records the batch's offsets with their release times.
    fn record_offsets(&mut self, raws: &RawBatch) {
        if let Some(o) = &mut self.offsets {
            for (i, raw) in raws.iter().enumerate() {
                let release = self.releases.get(i).copied().unwrap_or(offsets::RELEASED);
                o.record(raw.partition, raw.offset, release);
            }
        }
    }

    /// Commits the source's positions up to the records still needed, once the sinks
    /// acknowledged every row (called right after they are flushed).
    fn commit_offsets(&mut self) -> anyhow::Result<()> {
        let Some(o) = &mut self.offsets else {
            return Ok(());
        };
        // A window held back (quarantine, a stop, a waiting control message) has not
        // fired: records it holds are not released, whatever the watermark.
        let mut w = self.watermarks.current();
        if self.shards.is_none() {
            w = w.min(self.operator.first_pending_end().saturating_sub(1));
        }
        let due = o.due(w);
        if self.out.results.transactional() {
            // Exactly-once: the positions go in the result sink's transaction, with the
            // rows; the source commits nothing itself.
            let consumed = if due.is_empty() {
                None
            } else {
                self.source.consumed(&due, w)?
            };
            self.out.results.commit_transaction(consumed)?;
        } else if !due.is_empty() {
            self.source.commit(&due, w)?;
        }
        Ok(())
    }

    /// Takes the partitions a consumer-group rebalance gave to another process: flushes the
    /// sinks and commits while they are still this consumer's (the revocation completes at
    /// the next poll), then drops, without firing, the window state of the keys read from
    /// them, their watermarks and their offsets. Their new owner reads them from the
    /// committed offsets and rebuilds those windows.
    fn take_revoked(&mut self) -> anyhow::Result<()> {
        let mut revoked = Vec::new();
        self.source.take_revoked(&mut revoked);
        if revoked.is_empty() {
            return Ok(());
        }
        if self.checkpoints.is_some() {
            // Offsets are committed once a checkpoint holds what is before them.
            self.write_checkpoint()?;
        } else {
            self.flush_sinks()?;
        }
        let keys = match &mut self.shards {
            Some(sh) => sh.revoke(&revoked)?,
            None => self.operator.drop_partitions(&revoked),
        };
        for &p in &revoked {
            if let Some(f) = self.floors.get_mut(p as usize) {
                *f = None;
            }
            self.watermarks.forget(p);
            if let Some(o) = &mut self.offsets {
                o.forget(p);
            }
        }
        tracing::info!(pipeline = %self.cfg.name, partitions = ?revoked, keys, "partitions revoked: their open windows dropped, left to their new owner");
        Ok(())
    }

    /// Shards the window state by key over `n` worker threads, each with an instance of
    /// the plugin of its own (this thread keeps reading, decoding, filtering, running the
    /// watermark and writing). Output is the same as on one thread, byte for byte, except
    /// under a state limit: each worker holds `1/n` of `max_open_windows`,
    /// `max_buffered_events` and `max_buffered_bytes`, and an event a worker refuses has
    /// already moved the watermark. `n` ≤ 1 runs on this thread. Not for `weir serve`:
    /// hot swaps and quarantine need one thread.
    pub fn set_parallelism(&mut self, n: usize) -> anyhow::Result<()> {
        self.shards = None;
        self.summary.parallelism = 1;
        if n <= 1 {
            return Ok(());
        }
        anyhow::ensure!(
            !self.opts.quarantine && self.opts.interrupt.is_none(),
            "parallelism > 1 is for weir run; a pipeline under weir serve runs on one thread"
        );
        let setup = parallel::WorkerSetup {
            name: self.cfg.name.clone(),
            kind: self.operator.kind(),
            lateness: self.cfg.window.allowed_lateness.0,
            limits: self.limits.state,
            inputs: self.inputs.clone(),
            log: self.log.clone(),
        };
        self.shards = Some(parallel::Shards::start(n, self.plugin.as_ref(), &setup)?);
        self.summary.parallelism = n as u64;
        Ok(())
    }

    /// Swaps in a new plugin instance between two batches, hence between two window
    /// firings. Windows that fire from now on use it, including windows opened before: the
    /// host holds every schema field of their events. Lifts a quarantine.
    ///
    /// An incremental version with the same state type takes over the pane states held;
    /// with another state type (or none) they are dropped and rebuilt from the events the
    /// host holds, by the new version, at the next firing: nothing is lost or counted twice.
    ///
    /// A version whose output columns differ from the live one's is refused with
    /// [`OutputChangeRefused`], before anything changes, when the result sink is CSV and
    /// `[plugin] allow_output_change` is off; when it is on, a CSV file sink is set aside
    /// and a new file started ([`Pipeline::change_output_columns`]).
    pub fn swap_plugin(&mut self, plugin: impl Plugin + 'static) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.shards.is_none(),
            "a hot swap needs the pipeline on one thread (parallelism = 1)"
        );
        let old = output_columns(&self.cfg, self.plugin.info(), &self.opts);
        let new = output_columns(&self.cfg, plugin.info(), &self.opts);
        if let Some(refused) = output_change_refusal(&self.cfg, &old, &new) {
            return Err(refused.into());
        }
        if plugin.info().state_type != self.plugin.info().state_type {
            self.operator.clear_stacks();
        }
        self.inputs = input_indices(&self.schema, plugin.info());
        if old != new {
            tracing::info!(pipeline = %self.cfg.name, version = %plugin.version_id(), change = %column_difference(&old, &new), "output columns changed");
            self.change_output_columns(new)?;
        }
        self.version = plugin.version_id();
        self.limits = *plugin.limits();
        self.operator.set_limits(self.limits.state);
        self.plugin = Box::new(plugin);
        self.failures_in_a_row = 0;
        self.quarantined = None;
        self.fire_due()
    }

    /// Writes rows in `columns` from now on. JSON lines name their columns, so the sink only
    /// learns the new ones; a CSV file sink is flushed, renamed to `<stem>.<UTC time of the
    /// change>.csv` and a new file started with the new header; CSV on stdout or stderr is
    /// opened again, which writes the new header line; a Kafka CSV sink writes the new
    /// columns in order.
    fn change_output_columns(&mut self, columns: Vec<String>) -> anyhow::Result<()> {
        let csv = sink_format(&self.cfg.sink) == crate::config::Format::Csv;
        let reopen = match &self.cfg.sink {
            SinkConfig::File { path, .. } if csv => {
                self.out.results.flush().context("sink")?;
                let path = self.cfg.resolve(path);
                let aside = set_aside_name(&path, chrono::Utc::now());
                std::fs::rename(&path, &aside).with_context(|| {
                    format!(
                        "setting {} aside as {} for the new output columns",
                        path.display(),
                        aside.display()
                    )
                })?;
                tracing::info!(pipeline = %self.cfg.name, old = %aside.display(), new = %path.display(), "output columns changed: the CSV file was set aside and a new one started");
                true
            }
            SinkConfig::Stdout { .. } | SinkConfig::Stderr { .. } if csv => {
                self.out.results.flush().context("sink")?;
                true
            }
            _ => false,
        };
        if reopen {
            let sink = sink::open_for(
                &self.cfg.sink,
                &self.cfg.base_dir,
                columns.clone(),
                &self.cfg.name,
            )
            .context("sink")?;
            self.out.results = tap(self.opts.console.as_ref(), sink, columns, SinkRole::Results);
        } else {
            self.out.results.set_columns(columns);
        }
        Ok(())
    }

    /// Fires the windows that are due at the current watermark: those held back by a
    /// quarantine or an interrupt.
    pub fn fire_due(&mut self) -> anyhow::Result<()> {
        if self.shards.is_some() {
            // Workers fire at every watermark change and never hold a window back.
            return Ok(());
        }
        self.fire(FireMode::Watermark(self.watermarks.current()))
    }

    /// Holds the source while the pipeline is paused or quarantined, or releases it
    /// ([`Source::hold`]); while held, call [`Pipeline::keep_source_alive`] instead of
    /// [`Pipeline::step`].
    pub fn hold_source(&mut self, held: bool) {
        self.source.hold(held);
    }

    /// Keeps a held source's session alive without reading ([`Source::keep_alive`]).
    pub fn keep_source_alive(&mut self) -> anyhow::Result<()> {
        Ok(self.source.keep_alive()?)
    }

    /// The live plugin version id.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Why the pipeline is quarantined, if it is.
    pub fn quarantined(&self) -> Option<&str> {
        self.quarantined.as_deref()
    }

    /// Counters so far (wall time and rate are filled in by [`Pipeline::run`]).
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// The event-time watermark (epoch ms), `None` before the first event.
    pub fn watermark(&self) -> Option<i64> {
        let w = self.watermarks.current();
        (w != NO_WATERMARK).then_some(w)
    }

    /// Windows open and events buffered in window state.
    pub fn state_size(&self) -> (usize, usize) {
        if let Some(sh) = &self.shards {
            return sh.state_size();
        }
        (
            self.operator.open_windows(),
            self.operator.buffered_events(),
        )
    }

    /// The plugin (for restart counts).
    pub fn plugin(&self) -> &dyn Plugin {
        self.plugin.as_ref()
    }

    /// The plugin as loaded.
    pub fn plugin_info(&self) -> &PluginInfo {
        self.plugin.info()
    }

    /// A description of the source, for logs.
    pub fn source_description(&self) -> String {
        self.source.describe()
    }

    /// How far this pipeline's reader is behind the end of each of its partitions (Kafka).
    pub fn partition_lag(&self) -> Vec<crate::source::PartitionLag> {
        self.source.partition_lag()
    }

    /// Runs until the source is exhausted, then flushes every open window.
    pub fn run(&mut self, progress: bool) -> anyhow::Result<Summary> {
        self.run_until(progress, &AtomicBool::new(false))
    }

    /// Runs until the source is exhausted (then flushes every open window) or `stop` is
    /// raised. A stop is seen between two batches: the batch in hand is read and placed,
    /// its firings after the stop are declined (their windows stay pending, like every
    /// other open window: they are not final, so they are not fired), and every sink is
    /// flushed. [`Pipeline::was_stopped`] then says so.
    pub fn run_until(&mut self, progress: bool, stop: &AtomicBool) -> anyhow::Result<Summary> {
        self.run_observed(progress, stop, &mut |_| {})
    }

    /// [`Pipeline::run_until`], calling `after_batch` with the pipeline after every batch
    /// (`weir run --metrics-addr` publishes its metrics there).
    pub fn run_observed(
        &mut self,
        progress: bool,
        stop: &AtomicBool,
        after_batch: &mut dyn FnMut(&Pipeline),
    ) -> anyhow::Result<Summary> {
        self.started = Instant::now();
        self.restore_state()?;
        let bar = progress.then(|| progress_bar(self.source.size_hint()));
        loop {
            if stop.load(Ordering::Relaxed) {
                self.stopped = true;
                self.drain_workers()?;
                self.flush_sinks()?;
                self.write_checkpoint()?;
                break;
            }
            let step = self.step_until(stop)?;
            after_batch(self);
            if step == Step::Finished {
                break;
            }
            if let Some(bar) = &bar {
                bar.set_position(self.source.position());
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        Ok(self.summary.clone())
    }

    /// Whether [`Pipeline::run_until`] ended because it was asked to stop.
    pub fn was_stopped(&self) -> bool {
        self.stopped
    }

    /// Reads, decodes, filters and places one batch of input, firing what becomes ready;
    /// at the end of input, flushes every open window and the sinks.
    pub fn step(&mut self) -> anyhow::Result<Step> {
        self.step_until(&AtomicBool::new(false))
    }

    /// [`Pipeline::step`], declining firings once `stop` is raised.
    fn step_until(&mut self, stop: &AtomicBool) -> anyhow::Result<Step> {
        self.restore_state()?;
        let mut raws = std::mem::take(&mut self.raws);
        let mut events = std::mem::take(&mut self.events);
        raws.clear();
        let result = self.step_with(&mut raws, &mut events, stop);
        self.raws = raws;
        self.events = events;
        let step = result?;
        self.take_revoked()?;
        // A finished run checkpoints too: a restart then reads nothing twice.
        if step == Step::Finished || self.checkpoint_due() {
            self.write_checkpoint()?;
        }
        let wall = self.started.elapsed().as_secs_f64();
        self.summary.wall_seconds = wall;
        self.summary.events_per_second = if wall > 0.0 {
            self.summary.events_read as f64 / wall
        } else {
            0.0
        };
        Ok(step)
    }

    fn step_with(
        &mut self,
        raws: &mut RawBatch,
        events: &mut Vec<(usize, Event)>,
        stop: &AtomicBool,
    ) -> anyhow::Result<Step> {
        self.stop_requested = stop.load(Ordering::Relaxed);
        let poll = self.source.poll(raws, BATCH_SIZE)?;
        let mut assigned = Vec::new();
        self.source.take_assigned(&mut assigned);
        for p in assigned {
            self.watermarks.expect(p, Instant::now());
            let i = p as usize;
            if self.floors.len() <= i {
                self.floors.resize(i + 1, None);
            }
            self.floors[i] = self.source.replay_floor(p);
        }
        let mut rejected = std::mem::take(&mut self.rejected);
        self.source.take_rejected(&mut rejected);
        for r in rejected.drain(..) {
            self.summary.events_read += 1;
            let raw = RawRecord {
                partition: 0,
                origin: &r.origin,
                offset: r.offset,
                payload: &r.head,
                timestamp: None,
            };
            self.dead_letter(&raw, &r.reason)?;
        }
        self.rejected = rejected;
        self.decode_batch(raws, events)?;
        self.filter_batch(raws, events)?;
        self.refuse_outlying_anchors(raws, events)?;
        if self.offsets.is_some() {
            self.releases.clear();
            self.releases.resize(raws.len(), offsets::RELEASED);
        }
        if self.shards.is_some() {
            return self.step_parallel(raws, events, poll);
        }
        let now = Instant::now();
        for (i, ev) in events.drain(..) {
            self.place(i, &raws.get(i), ev, now)?;
        }
        self.record_offsets(raws);
        let every = Duration::from_millis(self.cfg.emit.every.0.max(1) as u64);
        if self.cfg.emit.mode == EmitMode::Update && self.last_early.elapsed() >= every {
            self.last_early = Instant::now();
            self.fire(FireMode::Early)?;
        }
        if poll == Poll::Ready {
            if self.last_flush.elapsed() >= self.flush_every() {
                self.flush_sinks()?;
            }
            return Ok(Step::More);
        }
        self.fire(FireMode::Flush)?;
        self.flush_sinks()?;
        if !self.flushed {
            // Windows were left pending (quarantine, or a waiting control message); the
            // flush is retried at the next step, when the exhausted source says Done again.
            return Ok(Step::More);
        }
        Ok(Step::Finished)
    }

    /// Flushes every sink's buffer.
    pub fn flush_sinks(&mut self) -> anyhow::Result<()> {
        self.last_flush = Instant::now();
        // With workers, every batch they have is written first, so that what is flushed
        // is all that was read.
        self.drain_workers()?;
        for role in Outputs::ORDER {
            if let Some(s) = self.out.get_mut(role) {
                s.flush()?;
            }
        }
        if self.checkpoints.is_some() {
            // With checkpoints, offsets are committed once a checkpoint is written: a
            // restart from the last checkpoint must find every record after its positions
            // still uncommitted.
            return Ok(());
        }
        self.commit_offsets()
    }

    fn decode_batch(
        &mut self,
        raws: &RawBatch,
        events: &mut Vec<(usize, Event)>,
    ) -> anyhow::Result<()> {
        for (i, raw) in raws.iter().enumerate() {
            match self.decoder.decode(&raw) {
                Ok(Some(ev)) => {
                    self.summary.events_read += 1;
                    events.push((i, ev));
                }
                Ok(None) => {}
                Err(e) => {
                    self.summary.events_read += 1;
                    self.dead_letter(&raw, &e.reason)?;
                }
            }
        }
        Ok(())
    }

    /// Sends a record to the dead letter, with the reason, and counts it; with workers,
    /// after the outputs of earlier input.
    fn dead_letter(&mut self, raw: &RawRecord<'_>, reason: &str) -> anyhow::Result<()> {
        self.summary.malformed += 1;
        if let Some(sh) = &mut self.shards {
            let pos = sh.next_pos();
            sh.pending.push(parallel::Out::DeadLetter {
                pos,
                origin: raw.origin.clone(),
                offset: raw.offset,
                payload: raw.payload.to_string(),
                reason: reason.to_string(),
            });
            return Ok(());
        }
        self.write_dead_letter(raw, reason)
    }

    fn write_dead_letter(&mut self, raw: &RawRecord<'_>, reason: &str) -> anyhow::Result<()> {
        let row = [
            Cell::Str(&self.cfg.name),
            Cell::Str(raw.origin),
            Cell::I64(raw.offset as i64),
            Cell::Str(reason),
            Cell::Str(raw.payload),
        ];
        self.out.dead_letter.write(&row)?;
        Ok(())
    }

    fn filter_batch(
        &mut self,
        raws: &RawBatch,
        events: &mut Vec<(usize, Event)>,
    ) -> anyhow::Result<()> {
        if !self.plugin.info().has_filter || events.is_empty() {
            return Ok(());
        }
        let b = self.plugin.batch();
        for (_, ev) in events.iter() {
            b.push(ev.ts, self.inputs.iter().map(|&i| &ev.values[i]));
        }
        match self.plugin.filter() {
            Ok(keep) => {
                self.failures_in_a_row = 0;
                let mut k = keep.into_iter();
                let before = events.len();
                events.retain(|_| k.next().unwrap_or(true));
                self.summary.filtered += (before - events.len()) as u64;
            }
            Err(e) => {
                // Nothing is dropped silently: the batch goes to the dead letter with the reason.
                if let Some(dropped) = self.log.admit() {
                    tracing::warn!(pipeline = %self.cfg.name, error = %e, dropped_before = dropped, "plugin filter failed");
                }
                self.summary.plugin_errors += 1;
                let after = self.quarantine_after();
                count_failure(
                    &mut self.failures_in_a_row,
                    after,
                    &mut self.quarantined,
                    &self.cfg.name,
                    &e,
                );
                match &mut self.shards {
                    Some(sh) => {
                        let pos = sh.next_pos();
                        sh.pending.push(parallel::Out::FilterError {
                            pos,
                            error: e.clone(),
                        });
                    }
                    None => self.error_record(&e, None)?,
                }
                let reason = format!("plugin filter failed: {e}");
                for (i, _) in std::mem::take(events) {
                    self.dead_letter(&raws.get(i), &reason)?;
                }
            }
        }
        Ok(())
    }

    /// [`Pipeline::step`] with workers: routes the batch's events to the workers that own
    /// their keys, with the watermark changes, then writes the outputs of the previous
    /// batch (of every batch at the end of input).
    fn step_parallel(
        &mut self,
        raws: &mut RawBatch,
        events: &mut Vec<(usize, Event)>,
        poll: Poll,
    ) -> anyhow::Result<Step> {
        let now = Instant::now();
        let n = self.shards.as_ref().map_or(1, parallel::Shards::len);
        let mut work: Vec<Vec<parallel::Routed>> = (0..n)
            .map(|_| Vec::with_capacity(events.len() / n + 1))
            .collect();
        let mut changes = Vec::new();
        for (i, ev) in events.drain(..) {
            let raw = raws.get(i);
            let ts = ev.ts;
            // What a worker would refuse whatever its state is refused here, before the
            // watermark sees it, as on one thread.
            if let Some(reason) = self.too_far_ahead(ts).or_else(|| self.operator.refuses(ts)) {
                self.dead_letter(&raw, &reason)?;
                continue;
            }
            self.placed(i, ts);
            let key = self.key_of(&ev.values);
            let before = self.watermarks.current();
            let (at, replayed) = self.replay_floor(&raw, before);
            let Some(sh) = self.shards.as_mut() else {
                break;
            };
            let pos = sh.next_pos();
            work[sh.shard_of(&key)].push(parallel::Routed {
                pos,
                raw: i as u32,
                ts,
                key,
                values: ev.values.into_boxed_slice(),
                before: at,
                partition: raw.partition,
                replayed,
            });
            let w = self.watermarks.observe(raw.partition, ts, now);
            if w != before {
                changes.push((sh.next_pos(), w));
            }
        }
        let every = Duration::from_millis(self.cfg.emit.every.0.max(1) as u64);
        let early_due =
            self.cfg.emit.mode == EmitMode::Update && self.last_early.elapsed() >= every;
        if early_due {
            self.last_early = Instant::now();
        }
        let Some(sh) = self.shards.as_mut() else {
            anyhow::bail!("the pipeline's workers are gone");
        };
        let early = early_due.then(|| sh.next_pos());
        let flush = (poll == Poll::Done).then(|| sh.next_pos());
        self.record_offsets(raws);
        let Some(sh) = self.shards.as_mut() else {
            anyhow::bail!("the pipeline's workers are gone");
        };
        sh.dispatch(work, changes, early, flush, raws)?;
        if poll == Poll::Ready {
            // One batch stays with the workers while the next one is read.
            self.write_workers(1)?;
            if self.last_flush.elapsed() >= self.flush_every() {
                self.flush_sinks()?;
            }
            return Ok(Step::More);
        }
        self.drain_workers()?;
        self.flush_sinks()?;
        self.flushed = self.shards.as_ref().is_some_and(parallel::Shards::finished);
        anyhow::ensure!(
            self.flushed,
            "the end-of-input flush left windows pending on a worker"
        );
        Ok(Step::Finished)
    }

    /// Writes the outputs of every batch the workers have.
    fn drain_workers(&mut self) -> anyhow::Result<()> {
        self.write_workers(0)
    }

    /// Writes the outputs of the batches the workers have, oldest first, until `keep`
    /// are left with them.
    fn write_workers(&mut self, keep: usize) -> anyhow::Result<()> {
        loop {
            let merged = match &mut self.shards {
                Some(sh) if sh.in_flight() > keep => sh.collect()?,
                _ => return Ok(()),
            };
            let Some(merged) = merged else {
                return Ok(());
            };
            let raws = self.write_merged(merged)?;
            if let Some(sh) = &mut self.shards {
                sh.recycle(raws);
            }
        }
    }

    /// Writes one batch's merged outputs to the sinks, counting them, and hands back its
    /// records.
    fn write_merged(&mut self, merged: parallel::Merged) -> anyhow::Result<RawBatch> {
        use parallel::Out;
        let parallel::Merged { outs, raws } = merged;
        let revisions = has_revisions(&self.cfg);
        for out in outs {
            match out {
                Out::Late {
                    before, ts, values, ..
                } => self.late(before, ts, &values)?,
                Out::Refused { raw, reason, .. } => {
                    self.summary.malformed += 1;
                    self.write_dead_letter(&raws.get(raw as usize), &reason)?;
                }
                Out::DeadLetter {
                    origin,
                    offset,
                    payload,
                    reason,
                    ..
                } => {
                    let raw = RawRecord {
                        partition: 0,
                        origin: &origin,
                        offset,
                        payload: &payload,
                        timestamp: None,
                    };
                    self.write_dead_letter(&raw, &reason)?;
                }
                Out::FilterError { error, .. } => self.error_record(&error, None)?,
                Out::Fired {
                    window,
                    key,
                    revision,
                    result,
                    ..
                } => {
                    let mut writer = SinkWriter {
                        out: &mut self.out,
                        pipeline: &self.cfg.name,
                        key_names: &self.cfg.schema.key,
                        revisions,
                        version: self.opts.version_column.then_some(self.version.as_str()),
                    };
                    self.summary.windows_fired += 1;
                    match result {
                        Ok(rows) => {
                            self.summary.rows_written += rows.len() as u64;
                            writer.rows(&key.0, window, revision, rows)?;
                        }
                        Err(e) => {
                            self.summary.plugin_errors += 1;
                            writer.error(&key.0, window, revision, e)?;
                        }
                    }
                }
            }
        }
        self.out.results.commit()?;
        Ok(raws)
    }

    /// An event's key: its `schema.key` fields.
    fn key_of(&self, values: &[Value]) -> Key {
        Key(self.schema.key.iter().map(|&k| values[k].clone()).collect())
    }

    /// Counts an event late for every window (at watermark `before`) and writes it to the
    /// late sink, if there is one.
    fn late(&mut self, before: i64, ts: i64, values: &[Value]) -> anyhow::Result<()> {
        self.summary.late += 1;
        if let Some(late) = &mut self.out.late {
            let mut row = vec![
                Cell::Str(&self.cfg.name),
                Cell::Str("late for every window"),
                Cell::Time(before),
                Cell::Time(ts),
            ];
            row.extend(values.iter().map(Cell::Value));
            late.write(&row)?;
        }
        Ok(())
    }

    fn place(
        &mut self,
        i: usize,
        raw: &RawRecord<'_>,
        ev: Event,
        now: Instant,
    ) -> anyhow::Result<()> {
        let ts = ev.ts;
        if let Some(reason) = self.too_far_ahead(ts) {
            // Dead-lettered before the watermark sees it: a runaway time never moves W.
            return self.dead_letter(raw, &reason);
        }
        self.placed(i, ts);
        let key = self.key_of(&ev.values);
        let before = self.watermarks.current();
        let (at, replayed) = self.replay_floor(raw, before);
        self.operator.set_partition(raw.partition);
        // The whole event is kept, not just the plugin's inputs: a hot-swapped version may
        // read other fields of events already in open windows.
        let placed = self
            .operator
            .process(ts, key, ev.values.into_boxed_slice(), at);
        if let Placement::Refused(reason) = placed {
            // Over a state limit: not stored, and it does not move time either.
            return self.dead_letter(raw, &reason);
        }
        if let Placement::Late(values) = placed
            && !replayed
        {
            self.late(at, ts, &values)?;
        }
        let w = self.watermarks.observe(raw.partition, ts, now);
        // Below `next_due` nothing fires and nothing is purged.
        if w != before && w >= self.operator.next_due() {
            self.fire(FireMode::Watermark(w))?;
        }
        Ok(())
    }

    /// The watermark a record is placed at, and whether it is a replay: for a partition
    /// read again from a commit ([`Source::replay_floor`]), windows ending at or before the
    /// commit's watermark fired already and take none of its records, and a record the
    /// previous reader had read (below the commit's read position) is not reported late
    /// again.
    fn replay_floor(&self, raw: &RawRecord<'_>, before: i64) -> (i64, bool) {
        match self.floors.get(raw.partition as usize) {
            Some(Some((w, read))) => (before.max(*w), raw.offset < *read),
            _ => (before, false),
        }
    }

    /// Before a bounded source's watermark exists, its first record would anchor it alone:
    /// one record at epoch 0 would make every later one "too far ahead", one two years
    /// ahead would make every later one late. So the first record must agree with the
    /// records read after it ([`crate::time::outlying_anchor`] over up to
    /// [`crate::time::ANCHOR_WITNESSES`] of this batch): one that lies more than
    /// `watermark.max_future` from most of them goes to the dead letter with the reason, and
    /// the next record is the candidate. Live sources compare with wall clock instead.
    fn refuse_outlying_anchors(
        &mut self,
        raws: &RawBatch,
        events: &mut Vec<(usize, Event)>,
    ) -> anyhow::Result<()> {
        if self.source.is_live() || self.watermarks.current() != NO_WATERMARK {
            return Ok(());
        }
        let max_future = self.cfg.watermark.max_future;
        let mut at = 0;
        while at < events.len() {
            let ts = events[at].1.ts;
            // Too far ahead of wall clock: `place` dead-letters it; the next one is up.
            if self.too_far_ahead(ts).is_some() {
                at += 1;
                continue;
            }
            let witnesses: Vec<i64> = events[at + 1..]
                .iter()
                .map(|(_, e)| e.ts)
                .filter(|&t| self.too_far_ahead(t).is_none())
                .take(crate::time::ANCHOR_WITNESSES)
                .collect();
            let Some((way, against)) = crate::time::outlying_anchor(ts, &witnesses, max_future.0)
            else {
                return Ok(());
            };
            let (i, _) = events.remove(at);
            let way = match way {
                crate::time::Outlier::Behind => "behind",
                crate::time::Outlier::Ahead => "ahead of",
            };
            let reason = format!(
                "event time {} is more than watermark.max_future ({max_future}) {way} {against} of the {} records read after it; as the first record it would anchor the watermark there, so it is left out: fix the record's time",
                format_rfc3339_ms(ts),
                witnesses.len()
            );
            self.dead_letter(&raws.get(i), &reason)?;
        }
        Ok(())
    }

    /// Why an event at `ts` is too far ahead to be let in (`watermark.max_future`), if it is:
    /// ahead of wall clock for a live source, of the pipeline watermark for a bounded one.
    /// Before its first event a bounded source has no watermark yet; until it has one, wall
    /// clock stands in, so a runaway first record cannot set the watermark either.
    fn too_far_ahead(&self, ts: i64) -> Option<String> {
        let max_future = self.cfg.watermark.max_future;
        let wall = || (chrono::Utc::now().timestamp_millis(), "wall clock");
        let (reference, what) = if self.source.is_live() {
            wall()
        } else {
            match self.watermarks.current() {
                NO_WATERMARK => wall(),
                w => (w, "the watermark"),
            }
        };
        // Saturating: both are inside the valid range plus a bounded duration, far from
        // i64::MAX; saturation could only let a time through, never wrap.
        (ts > reference.saturating_add(max_future.0)).then(|| {
            format!(
                "event time {} is more than watermark.max_future ({max_future}) ahead of {what} ({}); fix the record's time, or raise watermark.max_future",
                format_rfc3339_ms(ts),
                format_rfc3339_ms(reference)
            )
        })
    }

    fn fire(&mut self, mode: FireMode) -> anyhow::Result<()> {
        if let FireMode::Watermark(_) = mode
            && self.declining()
        {
            // Every due window would be declined and handed back one by one, at every
            // watermark move of the batch: leave them where they are (and purge nothing);
            // the next firing that is not declined takes them.
            return Ok(());
        }
        let due = match mode {
            FireMode::Watermark(w) => self.operator.take_due(Some(w)),
            FireMode::Early | FireMode::Flush => self.operator.take_due(None),
        };
        let pane = self
            .plugin
            .info()
            .state_type
            .is_some()
            .then(|| self.operator.kind().pane());
        let quarantine_after = self.quarantine_after();
        let mut writer = SinkWriter {
            out: &mut self.out,
            pipeline: &self.cfg.name,
            key_names: &self.cfg.schema.key,
            revisions: has_revisions(&self.cfg),
            version: self.opts.version_column.then_some(self.version.as_str()),
        };
        let mut emitter = Emitter {
            pipeline: &self.cfg.name,
            inputs: &self.inputs,
            plugin: self.plugin.as_mut(),
            out: &mut writer,
            summary: &mut self.summary,
            failures_in_a_row: &mut self.failures_in_a_row,
            quarantine_after,
            quarantined: &mut self.quarantined,
            interrupt: self.opts.interrupt.as_deref(),
            cpu: self.opts.cpu.as_deref(),
            stop: self.stop_requested,
            log: &self.log,
            failed: None,
            pane,
            uncommitted: Vec::new(),
        };
        emitter.emit_all(&mut self.operator, due);
        let failed = emitter.failed.take();
        match mode {
            FireMode::Watermark(w) => self.operator.purge_due(w),
            FireMode::Early => {}
            FireMode::Flush => self.flushed = self.operator.finish(),
        }
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Plugin failures in a row that quarantine the pipeline (never for `weir run`).
    fn quarantine_after(&self) -> u32 {
        if self.opts.quarantine {
            self.limits.quarantine_after
        } else {
            u32::MAX
        }
    }

    /// Whether a firing now would decline every window from the first: the same reasons
    /// as [`Emitter::declining`] before any sink has failed.
    fn declining(&self) -> bool {
        self.stop_requested
            || self.quarantined.is_some()
            || self
                .opts
                .interrupt
                .as_deref()
                .is_some_and(|i| i.load(Ordering::Relaxed))
            || self
                .opts
                .cpu
                .as_deref()
                .is_some_and(|c| c.charge().is_some())
    }

    fn error_record(
        &mut self,
        e: &plugin::Error,
        at: Option<(&Key, crate::window::Window, u32)>,
    ) -> anyhow::Result<()> {
        write_error_row(
            &mut *self.out.errors,
            &self.cfg.name,
            &self.cfg.schema.key,
            e,
            at,
        )?;
        Ok(())
    }
}

/// Counts a failed plugin call; at `quarantine_after` failures in a row, quarantines the
/// pipeline with the reason, logged once at error level. The one place quarantine is
/// decided, for filter and aggregate calls alike.
fn count_failure(
    failures_in_a_row: &mut u32,
    quarantine_after: u32,
    quarantined: &mut Option<String>,
    pipeline: &str,
    e: &plugin::Error,
) {
    *failures_in_a_row += 1;
    if *failures_in_a_row >= quarantine_after && quarantined.is_none() {
        let reason = format!("{failures_in_a_row} plugin failures in a row, the last: {e}");
        tracing::error!(pipeline = %pipeline, %reason, "pipeline quarantined");
        *quarantined = Some(reason);
    }
}

enum FireMode {
    Watermark(i64),
    Early,
    Flush,
}

/// Most events in one plugin call of a firing step: due windows are sent in chunks of at
/// most this many events (a window with more goes alone; an incremental window counts only
/// the events of its panes not accumulated yet), so one call stays well inside the plugin's
/// memory cap and CPU deadline.
pub const CALL_EVENTS: usize = 16 * 1024;

/// Most windows in one plugin call of a firing step.
pub const CALL_WINDOWS: usize = 2048;

/// Turns due windows into plugin calls and rows: whole-window plugins get the windows of a
/// chunk as groups of one call; incremental plugins get one plan per chunk that adds new
/// panes, merges pane states and finishes the windows.
struct Emitter<'a> {
    pipeline: &'a str,
    inputs: &'a [usize],
    plugin: &'a mut dyn Plugin,
    out: &'a mut dyn WindowSink,
    summary: &'a mut Summary,
    failures_in_a_row: &'a mut u32,
    quarantine_after: u32,
    quarantined: &'a mut Option<String>,
    interrupt: Option<&'a AtomicBool>,
    /// The tenant's CPU budget: in debt, firings are declined.
    cpu: Option<&'a crate::plugin::CpuShare>,
    /// A stop was asked for: every firing is declined.
    stop: bool,
    log: &'a LogBudget,
    /// The first sink error: every later firing is declined, so its window stays pending.
    failed: Option<sink::Error>,
    /// `Some` for an incremental plugin: the pane length (`None` for sessions, whose
    /// windows are accumulated whole).
    pane: Option<Option<i64>>,
    /// Windows whose rows are in the result sink's buffer, not yet committed, with their
    /// row counts: they count as fired only once [`Emitter::commit`] hands them to the OS.
    uncommitted: Vec<(Due, u64)>,
}

/// Builds an incremental plan's slots, pushing new panes' events into the plugin's batch.
struct HostPlanner<'a> {
    plan: &'a mut Plan,
    batch: &'a mut plugin::BatchBuilder,
    inputs: &'a [usize],
}

impl HostPlanner<'_> {
    fn push(&mut self, slot: Slot) -> StateRef {
        self.plan.slots.push(slot);
        StateRef::Slot(self.plan.slots.len() as u32 - 1)
    }

    /// The slot index of a state, adding a `held` slot for bytes.
    fn slot(&mut self, r: StateRef) -> u32 {
        match r {
            StateRef::Slot(i) => i,
            StateRef::Held(bytes) => match self.push(Slot::Held(bytes)) {
                StateRef::Slot(i) => i,
                StateRef::Held(_) => unreachable!("push returns a slot"),
            },
        }
    }
}

impl Planner for HostPlanner<'_> {
    fn fresh(&mut self, events: &[&StoredEvent]) -> StateRef {
        let offset = self.batch.len() as u32;
        for e in events {
            self.batch
                .push(e.ts, self.inputs.iter().map(|&i| &e.values[i]));
        }
        self.push(Slot::Fresh {
            offset,
            len: events.len() as u32,
        })
    }

    fn merge(&mut self, a: &StateRef, b: &StateRef) -> StateRef {
        let a = self.slot(a.clone());
        let b = self.slot(b.clone());
        self.push(Slot::Merge(a, b))
    }
}

impl Emitter<'_> {
    /// Whether firings are declined now: a sink failed, a stop was asked for, the
    /// pipeline is quarantined (the plugin is not called again until a new version), a
    /// control message waits (the windows fire after it) or the tenant's CPU budget is in
    /// debt (they fire once the pipeline thread has waited it out).
    fn declining(&self) -> bool {
        self.failed.is_some()
            || self.stop
            || self.quarantined.is_some()
            || self.interrupt.is_some_and(|i| i.load(Ordering::Relaxed))
            || self.cpu.is_some_and(|c| c.charge().is_some())
    }

    /// Fires the due windows in order, in chunks of at most [`CALL_EVENTS`] events and
    /// [`CALL_WINDOWS`] windows per plugin call. Every window is either fired (its rows or
    /// its error record were handed to the OS, [`Sink::commit`]) or declined (it stays
    /// pending); once one is declined, so is every later one.
    fn emit_all(&mut self, operator: &mut WindowOperator, due: Vec<Due>) {
        let mut i = 0;
        while i < due.len() {
            if self.declining() {
                for &d in &due[i..] {
                    operator.declined(d);
                }
                return;
            }
            let mut events = 0usize;
            let mut end = i;
            while end < due.len() && end - i < CALL_WINDOWS {
                // The events this window adds to the call: all of them for a whole-window
                // plugin, only its panes not accumulated yet for an incremental one.
                let n = operator
                    .firing(due[end])
                    .map_or(0, |(f, stacks)| match self.pane {
                        Some(Some(_)) => stacks.unpushed_events(f.window, f.events),
                        _ => f.events.len(),
                    });
                if end > i && events + n > CALL_EVENTS {
                    break;
                }
                events += n;
                end += 1;
            }
            let chunk = &due[i..end];
            match self.pane {
                None => self.emit_whole(operator, chunk),
                Some(pane) => self.emit_incremental(operator, chunk, pane),
            }
            self.commit(operator);
            i = end;
        }
    }

    /// Hands the rows of the windows written since the last commit to the OS (one
    /// `write(2)` per call's worth of rows, not per window) and marks those windows fired;
    /// if the commit fails, or a write failed before it, they stay pending instead, and
    /// every later window is declined.
    fn commit(&mut self, operator: &mut WindowOperator) {
        if self.uncommitted.is_empty() {
            return;
        }
        if self.failed.is_none()
            && let Err(e) = self.out.commit()
        {
            self.failed = Some(e);
        }
        for (d, n) in std::mem::take(&mut self.uncommitted) {
            if self.failed.is_some() {
                operator.declined(d);
            } else {
                operator.fired(d);
                self.summary.rows_written += n;
                self.summary.windows_fired += 1;
            }
        }
    }

    /// One `aggregate` call for the chunk: its windows are groups of one batch.
    fn emit_whole(&mut self, operator: &mut WindowOperator, chunk: &[Due]) {
        let mut groups = Vec::with_capacity(chunk.len());
        let mut fired = Vec::with_capacity(chunk.len());
        for &d in chunk {
            let Some((f, _)) = operator.firing(d) else {
                continue;
            };
            let b = self.plugin.batch();
            let offset = b.len() as u32;
            for e in f.events {
                b.push(e.ts, self.inputs.iter().map(|&i| &e.values[i]));
            }
            groups.push(plugin::Group {
                key: f.key.0.clone(),
                window: f.window,
                offset,
                len: b.len() as u32 - offset,
            });
            fired.push((d, f.revision));
        }
        let windows: Vec<(&[Value], Window)> =
            groups.iter().map(|g| (&g.key[..], g.window)).collect();
        match self.plugin.aggregate(&groups) {
            Ok(results) => self.write_all(operator, &fired, &windows, results),
            Err(e) => self.retry_alone(operator, &fired, &windows, e),
        }
    }

    /// One `step` call for the chunk: each window's state is planned over its key's pane
    /// stacks. If the call fails, the stacks it would have filled are cleared (they refer
    /// to states the call did not return).
    fn emit_incremental(
        &mut self,
        operator: &mut WindowOperator,
        chunk: &[Due],
        pane: Option<i64>,
    ) {
        let mut plan = Plan::default();
        let mut fired = Vec::with_capacity(chunk.len());
        for &d in chunk {
            let Some((f, stacks)) = operator.firing(d) else {
                continue;
            };
            let mut planner = HostPlanner {
                plan: &mut plan,
                batch: self.plugin.batch(),
                inputs: self.inputs,
            };
            let state = match pane {
                Some(pane) => stacks.window(f.window, pane, f.events, &mut planner),
                None => planner.fresh(&f.events.collect::<Vec<_>>()),
            };
            let slot = planner.slot(state);
            plan.finish.push(Finish {
                key: f.key.0.clone(),
                window: f.window,
                slot,
            });
            fired.push((d, f.revision));
        }
        // Every state the stacks still refer to is kept, once.
        let mut keep_of: std::collections::HashMap<u32, usize> = Default::default();
        for &(d, _) in &fired {
            if let Some(stacks) = operator.stacks_mut(d.key) {
                for r in stacks.refs_mut() {
                    if let StateRef::Slot(i) = r {
                        let next = keep_of.len();
                        keep_of.entry(*i).or_insert_with(|| {
                            plan.keep.push(*i);
                            next
                        });
                    }
                }
            }
        }
        let result = self.plugin.step(&plan);
        for &(d, _) in &fired {
            let Some(stacks) = operator.stacks_mut(d.key) else {
                continue;
            };
            match &result {
                Ok(out) => {
                    for r in stacks.refs_mut() {
                        if let StateRef::Slot(i) = r
                            && let Some(state) = keep_of.get(i).and_then(|&k| out.states.get(k))
                        {
                            *r = StateRef::Held(state.clone());
                        }
                    }
                }
                Err(_) => stacks.clear(),
            }
        }
        let windows: Vec<(&[Value], Window)> =
            plan.finish.iter().map(|f| (&f.key[..], f.window)).collect();
        match result {
            Ok(out) => self.write_all(operator, &fired, &windows, out.rows),
            Err(e) => self.retry_alone(operator, &fired, &windows, e),
        }
    }

    /// Writes the results of a call, one per window, in order; once one window cannot be
    /// written, it and every later one are declined.
    fn write_all(
        &mut self,
        operator: &mut WindowOperator,
        fired: &[(Due, u32)],
        windows: &[(&[Value], Window)],
        results: Vec<plugin::GroupResult>,
    ) {
        for ((&(d, rev), &(key, window)), result) in fired.iter().zip(windows).zip(results) {
            if !self.window_done(operator, d, key, window, rev, result) {
                return self.decline_after(operator, fired, d);
            }
        }
    }

    /// The call for a chunk failed as a whole (a trap, a deadline): each window is called
    /// again alone, so a failure is recorded against the window that causes it, as with one
    /// call per window. A chunk of one window records the failure at once.
    fn retry_alone(
        &mut self,
        operator: &mut WindowOperator,
        fired: &[(Due, u32)],
        windows: &[(&[Value], Window)],
        error: plugin::Error,
    ) {
        let mut first = (fired.len() == 1).then_some(error);
        for (&(d, rev), &(key, window)) in fired.iter().zip(windows) {
            if self.declining() {
                return self.decline_after(operator, fired, d);
            }
            let result = match first.take() {
                Some(e) => Err(e),
                None => match self.call_alone(operator, d, key, window) {
                    Some(result) => result,
                    None => continue,
                },
            };
            if !self.window_done(operator, d, key, window, rev, result) {
                return self.decline_after(operator, fired, d);
            }
        }
    }

    /// One window in a call of its own: whole-window, or incremental accumulated from its
    /// events (no pane states). `None` if the window is gone.
    fn call_alone(
        &mut self,
        operator: &mut WindowOperator,
        d: Due,
        key: &[Value],
        window: Window,
    ) -> Option<plugin::GroupResult> {
        let (f, _) = operator.firing(d)?;
        let events: Vec<&StoredEvent> = f.events.collect();
        let first = |rows: Vec<plugin::GroupResult>| {
            rows.into_iter().next().unwrap_or_else(|| Ok(Vec::new()))
        };
        Some(if self.pane.is_some() {
            let mut one = Plan::default();
            let mut planner = HostPlanner {
                plan: &mut one,
                batch: self.plugin.batch(),
                inputs: self.inputs,
            };
            let state = planner.fresh(&events);
            let slot = planner.slot(state);
            one.finish.push(Finish {
                key: key.to_vec(),
                window,
                slot,
            });
            self.plugin.step(&one).and_then(|o| first(o.rows))
        } else {
            let b = self.plugin.batch();
            for e in &events {
                b.push(e.ts, self.inputs.iter().map(|&i| &e.values[i]));
            }
            let one = plugin::Group {
                key: key.to_vec(),
                window,
                offset: 0,
                len: events.len() as u32,
            };
            self.plugin.aggregate(&[one]).and_then(first)
        })
    }

    /// Declines `from` and every window after it in `fired`.
    fn decline_after(&self, operator: &mut WindowOperator, fired: &[(Due, u32)], from: Due) {
        let at = fired
            .iter()
            .position(|(d, _)| *d == from)
            .unwrap_or(fired.len());
        for (d, _) in &fired[at..] {
            operator.declined(*d);
        }
    }

    /// Writes one window's rows (fired at the next [`Emitter::commit`]) or its error record
    /// (fired at once). Returns false, leaving the window to the caller to decline, when
    /// the pipeline got quarantined before it, or the sink failed.
    ///
    /// A window is handled only once its rows, or its error record, were handed to the
    /// operating system ([`Sink::commit`]): a window whose rows could not be written or
    /// committed stays pending, as does every later window of the step, and
    /// `rows_written` counts only committed rows. Rows of a window that failed part-way may
    /// be in the file already; the window fires again, whole, if the pipeline goes on (at
    /// least once).
    fn window_done(
        &mut self,
        operator: &mut WindowOperator,
        d: Due,
        key: &[Value],
        window: Window,
        revision: u32,
        result: plugin::GroupResult,
    ) -> bool {
        if self.failed.is_some() || self.quarantined.is_some() {
            return false;
        }
        let written = match result {
            Ok(rows) => {
                *self.failures_in_a_row = 0;
                let n = rows.len() as u64;
                self.out
                    .rows(key, window, revision, rows)
                    .map(|()| self.uncommitted.push((d, n)))
            }
            Err(e) => {
                self.summary.plugin_errors += 1;
                if let Some(dropped) = self.log.admit() {
                    tracing::warn!(pipeline = %self.pipeline, error = %e, kind = e.kind(), dropped_before = dropped, "plugin call failed");
                }
                count_failure(
                    self.failures_in_a_row,
                    self.quarantine_after,
                    self.quarantined,
                    self.pipeline,
                    &e,
                );
                self.out.error(key, window, revision, e).map(|()| {
                    self.summary.windows_fired += 1;
                    operator.fired(d);
                })
            }
        };
        match written {
            Ok(()) => true,
            Err(e) => {
                self.failed = Some(e);
                false
            }
        }
    }
}

/// Where an [`Emitter`] hands each fired window: the pipeline's sinks ([`SinkWriter`]), or a
/// worker's list of outputs, merged back into input order by the pipeline's thread
/// (`parallelism`).
pub(crate) trait WindowSink {
    /// A window's rows, buffered until [`WindowSink::commit`].
    fn rows(
        &mut self,
        key: &[Value],
        window: Window,
        revision: u32,
        rows: Vec<plugin::Row>,
    ) -> Result<(), sink::Error>;
    /// A window's error record, handed to the operating system at once.
    fn error(
        &mut self,
        key: &[Value],
        window: Window,
        revision: u32,
        e: plugin::Error,
    ) -> Result<(), sink::Error>;
    /// Hands the buffered rows to the operating system.
    fn commit(&mut self) -> Result<(), sink::Error>;
}

/// Writes fired windows into a pipeline's result and error sinks, in the columns of
/// [`output_columns`].
pub(crate) struct SinkWriter<'a> {
    out: &'a mut Outputs,
    pipeline: &'a str,
    key_names: &'a [String],
    revisions: bool,
    version: Option<&'a str>,
}

impl WindowSink for SinkWriter<'_> {
    fn rows(
        &mut self,
        key: &[Value],
        window: Window,
        revision: u32,
        rows: Vec<plugin::Row>,
    ) -> Result<(), sink::Error> {
        self.write_rows(key, window, revision, &rows)
    }

    fn error(
        &mut self,
        key: &[Value],
        window: Window,
        revision: u32,
        e: plugin::Error,
    ) -> Result<(), sink::Error> {
        let k = Key(key.to_vec());
        let at = Some((&k, window, revision));
        // Error records are rare and wanted at once: no buffering.
        write_error_row(&mut *self.out.errors, self.pipeline, self.key_names, &e, at)?;
        self.out.errors.flush()
    }

    fn commit(&mut self) -> Result<(), sink::Error> {
        self.out.results.commit()
    }
}

impl SinkWriter<'_> {
    /// Writes a window's rows (positional, in the plugin's output order) after its key,
    /// bounds, revision and version, straight into the result sink's buffer.
    fn write_rows(
        &mut self,
        key: &[Value],
        window: Window,
        revision: u32,
        rows: &[plugin::Row],
    ) -> Result<(), sink::Error> {
        let mut cells: Vec<Cell<'_>> =
            Vec::with_capacity(key.len() + 4 + rows.first().map_or(0, Vec::len));
        for r in rows {
            cells.clear();
            cells.extend(key.iter().map(Cell::Value));
            cells.push(Cell::Time(window.start));
            cells.push(Cell::Time(window.end));
            if self.revisions {
                cells.push(Cell::I64(i64::from(revision)));
            }
            if let Some(v) = self.version {
                cells.push(Cell::Str(v));
            }
            cells.extend(r.iter().map(Cell::Value));
            self.out.results.write(&cells)?;
        }
        Ok(())
    }
}

/// What a checkpoint of this pipeline must have been written for: the settings that give
/// its state, positions and sink lengths their meaning. The plugin is not among them (the
/// host holds the events; pane states are rebuilt), nor is `parallelism` (keys are
/// routed again).
fn identity(cfg: &PipelineConfig, schema: &Schema, source: &dyn Source) -> Identity {
    let mut id = Identity::new();
    let mut put = |k: &str, v: String| {
        id.insert(k.to_string(), v);
    };
    put("name", cfg.name.clone());
    put(
        "window",
        format!(
            "{:?}, allowed_lateness {}",
            cfg.window_kind(),
            cfg.window.allowed_lateness
        ),
    );
    put("emit", format!("{:?}", cfg.emit.mode));
    put("key", format!("{:?}", cfg.schema.key));
    put(
        "fields",
        schema
            .fields
            .iter()
            .map(|(n, t)| format!("{n}: {t}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    put("timestamp", format!("{:?}", cfg.schema.timestamp));
    put("source", source.describe());
    let sink = |c: &SinkConfig| describe_sink(cfg, c);
    for role in SinkRole::ALL {
        put(
            role.key(),
            role.config(cfg).map_or_else(|| "(default)".into(), sink),
        );
    }
    id
}

/// Reads the pipeline's checkpoint at start (after removing it when the operator discards
/// it), checks it was written for this pipeline, and cuts every file sink back to the
/// length it recorded.
fn read_checkpoint(
    cfg: &PipelineConfig,
    dir: &std::path::Path,
    identity: &Identity,
    opts: &Options,
) -> anyhow::Result<Option<Checkpoint>> {
    if opts.discard_checkpoint {
        checkpoint::discard(dir)?;
        tracing::warn!(pipeline = %cfg.name, dir = %dir.display(), "checkpoint discarded: the run starts from the beginning of its source");
        return Ok(None);
    }
    let Some(cp) = checkpoint::read(dir)? else {
        return Ok(None);
    };
    let changes = checkpoint::differences(&cp.identity, identity);
    if !changes.is_empty() {
        return Err(checkpoint::Error::Changed {
            path: checkpoint::path_in(dir),
            changes: changes.join("; "),
        }
        .into());
    }
    for role in SinkRole::ALL {
        if let (Some(c), Some(&len)) = (role.config(cfg), cp.sinks.get(role.key())) {
            sink::cut_back(c, &cfg.base_dir, len).context(role.key())?;
        }
    }
    Ok(Some(cp))
}

/// A sink's config for a run that resumes from a checkpoint: a file is never emptied (it
/// was cut back to its checkpointed length instead).
fn resuming(c: &SinkConfig, resumed: bool) -> SinkConfig {
    match c {
        SinkConfig::File {
            path, format, sync, ..
        } if resumed => SinkConfig::File {
            path: path.clone(),
            format: *format,
            mode: SinkMode::Append,
            sync: *sync,
        },
        other => other.clone(),
    }
}

/// Schema index of each plugin input, in input order (inputs were checked against the schema).
fn input_indices(schema: &Schema, info: &PluginInfo) -> Vec<usize> {
    info.inputs
        .iter()
        .filter_map(|(n, _)| schema.index_of(n))
        .collect()
}

/// Writes one error record, in [`ERROR_COLUMNS`]; the key and window columns are absent for
/// a failure outside a window (a filter call).
fn write_error_row(
    sink: &mut dyn Sink,
    pipeline: &str,
    key_names: &[String],
    e: &plugin::Error,
    at: Option<(&Key, crate::window::Window, u32)>,
) -> Result<(), sink::Error> {
    let plugin_name = match e {
        plugin::Error::Trap { plugin, .. }
        | plugin::Error::Deadline { plugin, .. }
        | plugin::Error::Memory { plugin, .. }
        | plugin::Error::Fuel { plugin, .. }
        | plugin::Error::Failed { plugin, .. }
        | plugin::Error::BadOutput { plugin, .. }
        | plugin::Error::Configure { plugin, .. }
        | plugin::Error::Incompatible { plugin, .. } => plugin,
        plugin::Error::Compile { path, .. } => path,
    };
    let message = e.to_string();
    let key = at.map(|(key, _, _)| {
        let key_json: serde_json::Map<String, serde_json::Value> = key_names
            .iter()
            .cloned()
            .zip(key.0.iter().map(Value::to_json))
            .collect();
        serde_json::Value::Object(key_json).to_string()
    });
    let mut row = [
        Cell::Str(pipeline),
        Cell::Str(plugin_name),
        Cell::Str(e.kind()),
        Cell::Str(&message),
        Cell::Absent,
        Cell::Absent,
        Cell::Absent,
        Cell::Absent,
    ];
    if let (Some(key), Some((_, w, rev))) = (&key, at) {
        row[4] = Cell::Str(key);
        row[5] = Cell::Time(w.start);
        row[6] = Cell::Time(w.end);
        row[7] = Cell::I64(i64::from(rev));
    }
    sink.write(&row)
}

fn progress_bar(hint: Option<SizeHint>) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressStyle};
    match hint {
        Some(SizeHint::Bytes(n)) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        Some(SizeHint::Records(n)) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template(
                "{bar:40} {human_pos}/{human_len} events {per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Committed rows as (symbol, window_start, count).
    type Rows = Arc<Mutex<Vec<(String, String, i64)>>>;

    /// Accepts `ok` rows, then fails every write, like a full disk.
    struct FailAfter {
        ok: usize,
        taken: usize,
        buffered: Vec<(String, String, i64)>,
        committed: Rows,
    }

    impl Sink for FailAfter {
        fn write(&mut self, row: &[Cell<'_>]) -> Result<(), sink::Error> {
            if self.taken == self.ok {
                return Err(sink::Error::Write {
                    sink: "fake".into(),
                    source: std::io::ErrorKind::StorageFull.into(),
                });
            }
            self.taken += 1;
            // Columns: symbol, window_start, window_end, then stats' count, sum, ...
            let [
                Cell::Value(Value::Str(sym)),
                Cell::Time(start),
                _,
                Cell::Value(Value::I64(n)),
                ..,
            ] = row
            else {
                panic!("unexpected row {row:?}");
            };
            self.buffered
                .push((sym.clone(), format_rfc3339_ms(*start), *n));
            Ok(())
        }
        fn set_columns(&mut self, _columns: Vec<String>) {}
        fn commit(&mut self) -> Result<(), sink::Error> {
            self.committed.lock().unwrap().append(&mut self.buffered);
            Ok(())
        }
        fn flush(&mut self) -> Result<(), sink::Error> {
            self.commit()
        }
        fn describe(&self) -> String {
            "fake".into()
        }
    }

    #[test]
    fn a_failing_sink_leaves_every_window_of_the_call_it_failed_in_and_every_later_one_pending() {
        let dir = tempfile::tempdir().unwrap();
        // Two keys, three 1 s windows each; the 5 s delay holds them until `C` at 10 s moves
        // W to 5 s and fires all six in one step, in (end, start, key) order.
        let events = [
            ("A", 100),
            ("B", 200),
            ("A", 1100),
            ("B", 1200),
            ("B", 1300),
            ("A", 2100),
            ("B", 2200),
            ("C", 10_000),
        ];
        let lines: Vec<String> = events
            .iter()
            .map(|(s, t)| format!("{{\"symbol\":\"{s}\",\"t\":{t},\"price\":1.0}}"))
            .collect();
        std::fs::write(dir.path().join("in.jsonl"), lines.join("\n")).unwrap();
        let mut p = test_pipeline::tick_pipeline(
            "failing-sink",
            dir.path(),
            "in.jsonl",
            "[watermark]\ndelay = \"5s\"\n[error_sink]\nkind = \"file\"\npath = \"errors.jsonl\"",
        );
        let committed = Rows::default();
        p.out.results = Box::new(FailAfter {
            ok: 3,
            taken: 0,
            buffered: Vec::new(),
            committed: committed.clone(),
        });
        let err = p.step().unwrap_err().to_string();
        assert!(err.contains("writing to fake"), "{err}");
        let start = |ms: i64| format_rfc3339_ms(ms);
        let row = |s: &str, ms: i64, n: i64| (s.to_string(), start(ms), n);
        // The six windows fire in one call; the fourth row's write fails, so nothing of
        // the call is committed: no row counts as written, no window as fired.
        assert!(committed.lock().unwrap().is_empty());
        assert_eq!(p.summary().rows_written, 0);
        assert_eq!(p.summary().windows_fired, 0);
        // All six stay pending, and C's window is open: 7 windows holding all 8 events.
        assert_eq!(p.state_size(), (7, 8));
        // Once the sink works again, the pending windows fire at the same watermark, whole.
        let again = Rows::default();
        p.out.results = Box::new(FailAfter {
            ok: usize::MAX,
            taken: 0,
            buffered: Vec::new(),
            committed: again.clone(),
        });
        p.fire_due().unwrap();
        assert_eq!(
            *again.lock().unwrap(),
            [
                row("A", 0, 1),
                row("B", 0, 1),
                row("A", 1000, 1),
                row("B", 1000, 2),
                row("A", 2000, 1),
                row("B", 2000, 1)
            ]
        );
        assert_eq!(p.state_size(), (1, 1));
        assert_eq!(p.summary().rows_written, 6);
    }
}
