//! One pipeline, wired: source → decode → filter → key/time → watermark → window state →
//! fire → aggregate → sinks, plus the late, dead-letter and error side outputs.
//!
//! Runs on the calling thread: sources are pulled in batches, the plugin's filter is called
//! once per batch, and the watermark advances after every event. Bounded input ends with a
//! flush of every open window.

mod admit;
mod bind;
mod columns;
#[cfg(test)]
mod eos_model_tests;
#[cfg(test)]
mod exactly_once_tests;
mod fire;
mod input;
mod offsets;
#[cfg(test)]
mod output_change_tests;
mod outputs;
mod parallel;
mod positions;
mod recompute;
mod recovery;
mod routing;
mod run;
mod shadow;
mod shard;
mod spec;
mod summary;
#[cfg(test)]
mod test_pipeline;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

pub use bind::{instantiate_checked, load_plugin};
pub use columns::{
    OutputChangeRefused, column_difference, output_change_refusal, output_columns, output_types,
};
pub use fire::{CALL_EVENTS, CALL_WINDOWS};
pub use shadow::{
    CellDiff, Cost, KEPT_DIFFS, PromoteAfter, ShadowReport, ShadowRun, ShadowTotals, WindowDiff,
    same_value,
};
pub use spec::PipelineSpec;
pub use summary::Summary;

use admit::Admitted;
use bind::*;
use columns::*;
use fire::*;
use outputs::*;
use recovery::*;
use shard::{FailedWindows, Gate, Health, Placed, Shard};

use crate::checkpoint::{self, Checkpoint, Identity};
use crate::config::{
    CsvOptions, EmitMode, Limits, PipelineConfig, SinkConfig, SinkMode, SourceConfig,
};
use crate::counters::Counters;
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
    /// Worker threads the window state is sharded over, by key, each with a plugin
    /// instance of its own (this thread keeps reading, decoding, filtering, running the
    /// watermark and writing); 0 or 1 runs on this thread. Output is the same as on one
    /// thread, byte for byte, except under a state limit: each worker holds `1/n` of
    /// `max_open_windows`, `max_buffered_events` and `max_buffered_bytes`, and an event a
    /// worker refuses has already moved the watermark. Not for `weir serve`: hot swaps and
    /// quarantine need one thread.
    pub parallelism: usize,
}

/// A pipeline ready to run.
pub struct Pipeline {
    /// The config, resolved.
    spec: PipelineSpec,
    /// Where records come from, and the batch in hand.
    input: Input,
    /// Window state and the plugin, on this thread (with workers, it holds no state).
    shard: Shard,
    /// The workers holding the window state, when `parallelism` > 1 (then `shard` holds
    /// no windows).
    shards: Option<parallel::Shards>,
    watermarks: Watermarks,
    out: Outputs,
    summary: Summary,
    opts: Options,
    /// The pipeline's log budget, shared with its guest's stdout and stderr.
    log: LogBudget,
    clocks: Clocks,
    flags: Flags,
    /// Source positions still needed, for sources that take commits.
    positions: Positions,
    /// Local checkpoints, when `[checkpoint]` is set.
    checkpoints: Option<Checkpoints>,
}

/// The source, its decoder and the buffers of the batch in hand.
struct Input {
    source: Box<dyn Source>,
    decoder: Box<dyn Decoder>,
    raws: RawBatch,
    events: Vec<(usize, Event)>,
    rejected: Vec<Rejected>,
}

/// When the run started, and when early firings, sink flushes and commits last happened.
struct Clocks {
    started: Instant,
    last_early: Instant,
    last_flush: Instant,
    last_commit: Instant,
}

impl Clocks {
    fn now() -> Self {
        let now = Instant::now();
        Clocks {
            started: now,
            last_early: now,
            last_flush: now,
            last_commit: now,
        }
    }
}

/// How the last step ended.
#[derive(Default)]
struct Flags {
    /// Whether the last end-of-input flush fired every window.
    flushed: bool,
    /// Whether a stop was asked for at the start of this step (firings are declined).
    stop_requested: bool,
    /// Whether [`Pipeline::run_until`] stopped on request.
    stopped: bool,
    /// Whether the result sink keeps the source's positions with its rows (PostgreSQL):
    /// the source's own commits are then for lag monitoring only.
    positions_in_sink: bool,
}

/// For a source that takes commits: which of its records are still needed.
#[derive(Default)]
struct Positions {
    /// The offsets of the records still needed.
    offsets: Option<offsets::Offsets>,
    /// Per record of the batch in hand, when it is released ([`offsets`]).
    releases: Vec<i64>,
    /// Per partition id, what its last commit recorded when it was assigned
    /// ([`Source::replay_floor`]).
    floors: Vec<Option<crate::source::ReplayFloor>>,
    /// Per partition id, whether its replay of records read before its last commit is
    /// still going on ([`Pipeline::ends_replay`]).
    replaying: Vec<bool>,
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
    /// The file sinks' lengths when the run first started (empty until the first
    /// checkpoint): kept in every checkpoint for `--discard-checkpoint`.
    start_sinks: BTreeMap<String, u64>,
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
    /// Opens the source and sinks around an instantiated, checked plugin, and starts
    /// `opts.parallelism` workers when it is over 1 ([`Options::parallelism`]).
    pub fn build(
        spec: PipelineSpec,
        plugin: impl Plugin + 'static,
        opts: Options,
    ) -> anyhow::Result<Self> {
        let plugin: Box<dyn Plugin> = Box::new(plugin);
        let (cfg, schema) = (&spec.cfg, &spec.schema);
        let inputs = input_indices(schema, plugin.info());
        let max_record = plugin.limits().max_record_bytes;
        // Exactly-once: the transactional producer starts before the source reads the
        // group's offsets, so that the transaction a dead predecessor left is completed or
        // aborted first and the offsets read are the last committed ones.
        // A PostgreSQL result sink opens first too: the source resumes from the positions
        // its table keeps.
        let postgres = matches!(cfg.sink, SinkConfig::Postgres { .. });
        let transactional = if cfg.sink.exactly_once() || postgres {
            let columns = output_columns(cfg, plugin.info(), &opts);
            let types = output_types(cfg, schema, plugin.info(), &opts);
            Some(sink::open_results(cfg, columns, &types).context("sink")?)
        } else {
            None
        };
        let store = transactional.as_ref().and_then(|s| s.keeps_positions());
        let (mut source, decoder): (Box<dyn Source>, Box<dyn Decoder>) = match &cfg.source {
            SourceConfig::File { path, format, csv } => (
                Box::new(FileSource::open(path, &cfg.base_dir)?.with_max_record_bytes(max_record)),
                decode::decoder(*format, csv, schema),
            ),
            SourceConfig::Stdin { format, csv } => (
                Box::new(StdinSource::new().with_max_record_bytes(max_record)),
                decode::decoder(*format, csv, schema),
            ),
            SourceConfig::Generator(g) => (
                Box::new(GeneratorSource::new(g)?),
                decode::decoder(g.format, &CsvOptions::default(), schema),
            ),
            SourceConfig::Kafka(k) => (
                Box::new(KafkaSource::open(
                    k,
                    max_record,
                    cfg.sink.exactly_once() || postgres,
                )?),
                decode::decoder(k.format, &k.csv, schema),
            ),
        };
        let positions_in_sink = store.is_some();
        if let Some(store) = store {
            source.keep_positions_in(store)?;
        }
        let columns = output_columns(cfg, plugin.info(), &opts);
        let base = cfg.base_dir.clone();
        let identity = identity(cfg, schema, source.as_ref());
        let restored = match &cfg.checkpoint {
            Some(c) => read_checkpoint(cfg, &cfg.resolve(&c.dir), &identity, &opts)?,
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
        let mut operator = WindowOperator::new(spec.window, cfg.window.allowed_lateness.0);
        let watermarks = Watermarks::new(
            cfg.watermark.delay.0,
            cfg.watermark
                .idle_timeout
                .map(|m| Duration::from_millis(m.0 as u64)),
        );
        // The operator checks the state limits per window created and refuses an event
        // whole; they change only here and at a swap.
        operator.set_limits(plugin.limits().state);
        let log = LogBudget::for_pipeline(
            &opts.owner.tenant,
            &cfg.name,
            plugin.limits().sandbox.log_lines_per_second,
        );
        let parallelism = opts.parallelism;
        let mut p = Pipeline {
            spec,
            input: Input {
                source,
                decoder,
                raws: RawBatch::with_capacity(BATCH_SIZE),
                events: Vec::with_capacity(BATCH_SIZE),
                rejected: Vec::new(),
            },
            shard: Shard::new(operator, plugin, inputs),
            shards: None,
            watermarks,
            out,
            summary: Summary {
                parallelism: 1,
                ..Summary::default()
            },
            opts,
            log,
            clocks: Clocks::now(),
            flags: Flags {
                positions_in_sink,
                ..Flags::default()
            },
            positions: Positions::default(),
            checkpoints: None,
        }
        .tracking_offsets()
        .keeping_failed_windows()
        .checkpointing(identity, restored)?;
        p.start_workers(parallelism)?;
        // The window state read from the checkpoint goes to this thread's operator, or by
        // key to the workers.
        p.restore_state()?;
        if !resumed {
            // A first checkpoint before any sink is written: a run killed before its first
            // periodic checkpoint restarts from here, its sinks cut back to where they were.
            p.write_checkpoint()?;
        }
        Ok(p)
    }

    /// Starts `n` workers when `n` > 1 ([`Options::parallelism`]); at build only.
    fn start_workers(&mut self, n: usize) -> anyhow::Result<()> {
        if n <= 1 {
            return Ok(());
        }
        anyhow::ensure!(
            !self.opts.quarantine && self.opts.interrupt.is_none(),
            "parallelism > 1 is for weir run; a pipeline under weir serve runs on one thread"
        );
        let setup = parallel::WorkerSetup {
            name: self.spec.cfg.name.clone(),
            kind: self.shard.operator.kind(),
            lateness: self.spec.cfg.window.allowed_lateness.0,
            limits: self.shard.limits().state,
            inputs: self.shard.inputs.clone(),
            log: self.log.clone(),
        };
        self.shards = Some(parallel::Shards::start(
            n,
            self.shard.plugin.as_ref(),
            &setup,
        )?);
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
        self.swap_boxed(Box::new(plugin))
    }

    /// [`Pipeline::swap_plugin`] of a boxed instance.
    fn swap_boxed(&mut self, plugin: Box<dyn Plugin>) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.shards.is_none(),
            "a hot swap needs the pipeline on one thread (parallelism = 1)"
        );
        let old = output_columns(&self.spec.cfg, self.shard.plugin.info(), &self.opts);
        let new = output_columns(&self.spec.cfg, plugin.info(), &self.opts);
        if let Some(refused) = output_change_refusal(&self.spec.cfg, &old, &new) {
            return Err(refused.into());
        }
        let inputs = input_indices(&self.spec.schema, plugin.info());
        if old != new {
            tracing::info!(pipeline = %self.spec.cfg.name, version = %plugin.version_id(), change = %column_difference(&old, &new), "output columns changed");
            self.change_output_columns(new)?;
        }
        self.shard.replace(plugin, inputs);
        self.recompute_failed()?;
        self.fire_due()
    }

    /// Starts a shadow run of `plugin` beside the live version, reporting into `run`
    /// ([`shadow`]): from the next firing on, every window the live version computes is
    /// computed by it too and compared. Replaces the shadow running before, if any.
    pub fn start_shadow(
        &mut self,
        plugin: impl Plugin + 'static,
        run: Arc<ShadowRun>,
    ) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.shards.is_none(),
            "a shadow run needs the pipeline on one thread (parallelism = 1)"
        );
        let cfg = &self.spec.cfg;
        self.shard.shadow = Some(shadow::Shadow::new(
            Box::new(plugin),
            &self.spec.schema,
            self.shard.operator.kind(),
            &cfg.schema.key,
            self.shard.plugin.info(),
            run,
        ));
        Ok(())
    }

    /// Ends the shadow run, if one runs; its report stays with whoever holds its
    /// [`ShadowRun`]. The candidate's version id.
    pub fn discard_shadow(&mut self) -> Option<String> {
        self.shard.shadow.take().map(|s| s.version())
    }

    /// The shadow run's candidate version, while it runs (not once it stopped).
    pub fn shadow_version(&self) -> Option<String> {
        self.shard.shadow.as_ref().map(|s| s.version())
    }

    /// Whether the shadow's own promotion policy holds now ([`PromoteAfter`]).
    pub fn shadow_promotable(&self) -> bool {
        self.shard
            .shadow
            .as_ref()
            .is_some_and(|s| s.run().promotable())
    }

    /// Makes the shadow's candidate the live version: a hot swap to it
    /// ([`Pipeline::swap_plugin`]'s rules), and the shadow run ends. `Ok(None)` when no
    /// shadow runs; an output change the sink refuses is an error and leaves the shadow
    /// running.
    pub fn promote_shadow(&mut self) -> anyhow::Result<Option<String>> {
        let Some(s) = &self.shard.shadow else {
            return Ok(None);
        };
        let old = output_columns(&self.spec.cfg, self.shard.plugin.info(), &self.opts);
        let new = output_columns(&self.spec.cfg, s.info(), &self.opts);
        if let Some(refused) = output_change_refusal(&self.spec.cfg, &old, &new) {
            return Err(refused.into());
        }
        let Some(s) = self.shard.shadow.take() else {
            return Ok(None);
        };
        let version = s.version();
        self.swap_boxed(s.into_plugin())?;
        Ok(Some(version))
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
        self.input.source.hold(held);
    }

    /// Keeps a held source's session alive without reading ([`Source::keep_alive`]).
    pub fn keep_source_alive(&mut self) -> anyhow::Result<()> {
        Ok(self.input.source.keep_alive()?)
    }

    /// The live plugin version id.
    pub fn version(&self) -> &str {
        &self.shard.version
    }

    /// Why the pipeline is quarantined, if it is.
    pub fn quarantined(&self) -> Option<&str> {
        self.shard.health.quarantined()
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
            self.shard.operator.open_windows(),
            self.shard.operator.buffered_events(),
        )
    }

    /// The plugin (for restart counts).
    pub fn plugin(&self) -> &dyn Plugin {
        self.shard.plugin.as_ref()
    }

    /// The plugin as loaded.
    pub fn plugin_info(&self) -> &PluginInfo {
        self.shard.plugin.info()
    }

    /// A description of the source, for logs.
    pub fn source_description(&self) -> String {
        self.input.source.describe()
    }

    /// The health of its sinks that report one (PostgreSQL): readable while this pipeline's
    /// thread is blocked in a commit the sink retries.
    pub fn sink_health(&self) -> Vec<Arc<crate::sink::Health>> {
        self.out.health()
    }

    /// How far this pipeline's reader is behind the end of each of its partitions (Kafka).
    pub fn partition_lag(&self) -> Vec<crate::source::PartitionLag> {
        self.input.source.partition_lag()
    }

    /// The pipeline's config, resolved.
    pub fn spec(&self) -> &PipelineSpec {
        &self.spec
    }

    /// Whether [`Pipeline::run_until`] ended because it was asked to stop.
    pub fn was_stopped(&self) -> bool {
        self.flags.stopped
    }

    /// Reads, decodes, filters and places one batch of input, firing what becomes ready;
    /// at the end of input, flushes every open window and the sinks.
    pub fn step(&mut self) -> anyhow::Result<Step> {
        self.step_until(&AtomicBool::new(false))
    }

    /// [`Pipeline::step`], declining firings once `stop` is raised.
    fn step_until(&mut self, stop: &AtomicBool) -> anyhow::Result<Step> {
        let mut raws = std::mem::take(&mut self.input.raws);
        let mut events = std::mem::take(&mut self.input.events);
        raws.clear();
        let result = self.step_with(&mut raws, &mut events, stop);
        self.input.raws = raws;
        self.input.events = events;
        let step = result?;
        self.take_revoked()?;
        // A finished run checkpoints too: a restart then reads nothing twice.
        if step == Step::Finished || self.checkpoint_due() {
            self.write_checkpoint()?;
        }
        let wall = self.clocks.started.elapsed().as_secs_f64();
        self.summary.wall_seconds = wall;
        self.summary.events_per_second = if wall > 0.0 {
            self.summary.counters.events_read as f64 / wall
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
        self.flags.stop_requested = stop.load(Ordering::Relaxed);
        let poll = self.input.source.poll(raws, BATCH_SIZE)?;
        let mut assigned = Vec::new();
        self.input.source.take_assigned(&mut assigned);
        for p in assigned {
            self.watermarks.expect(p, Instant::now());
            let i = p as usize;
            if self.positions.floors.len() <= i {
                self.positions.floors.resize(i + 1, None);
                self.positions.replaying.resize(i + 1, false);
            }
            self.positions.floors[i] = self.input.source.replay_floor(p);
            self.positions.replaying[i] = self.positions.floors[i].is_some();
            let kept = self.input.source.take_kept(p);
            if !kept.is_empty() {
                if self.shards.is_some() {
                    // Written first: the workers take the windows between batches.
                    self.drain_workers()?;
                    if let Some(sh) = self.shards.as_mut() {
                        sh.expect_replayed(kept)?;
                    }
                } else {
                    self.shard.operator.expect_replayed(kept);
                }
            }
        }
        let mut rejected = std::mem::take(&mut self.input.rejected);
        self.input.source.take_rejected(&mut rejected);
        for r in rejected.drain(..) {
            self.summary.counters.events_read += 1;
            let raw = RawRecord {
                partition: 0,
                origin: &r.origin,
                offset: r.offset,
                payload: &r.head,
                timestamp: None,
            };
            self.dead_letter(&raw, &r.reason)?;
        }
        self.input.rejected = rejected;
        self.decode_batch(raws, events)?;
        self.filter_batch(raws, events)?;
        self.refuse_outlying_anchors(raws, events)?;
        if self.positions.offsets.is_some() {
            self.positions.releases.clear();
            self.positions
                .releases
                .resize(raws.len(), offsets::RELEASED);
        }
        if self.shards.is_some() {
            return self.step_parallel(raws, events, poll);
        }
        let now = Instant::now();
        for (i, ev) in events.drain(..) {
            self.place(i, &raws.get(i), ev, now)?;
        }
        self.record_offsets(raws);
        let every = Duration::from_millis(self.spec.cfg.emit.every.0.max(1) as u64);
        if self.spec.cfg.emit.mode == EmitMode::Update && self.clocks.last_early.elapsed() >= every
        {
            self.clocks.last_early = Instant::now();
            self.fire(FireMode::Early)?;
        }
        if poll == Poll::Ready {
            if self.clocks.last_flush.elapsed() >= self.flush_every() {
                self.flush_on_time()?;
            }
            return Ok(Step::More);
        }
        self.fire(FireMode::Flush)?;
        self.flush_sinks()?;
        if !self.flags.flushed {
            // Windows were left pending (quarantine, or a waiting control message); the
            // flush is retried at the next step, when the exhausted source says Done again.
            return Ok(Step::More);
        }
        Ok(Step::Finished)
    }

    /// Flushes every sink's buffer and commits the source's positions (unless checkpoints
    /// do).
    pub fn flush_sinks(&mut self) -> anyhow::Result<()> {
        self.flush_outputs(true)
    }

    /// The periodic flush while input keeps coming: commits only once the source's
    /// `commit_every` has passed since the last commit.
    fn flush_on_time(&mut self) -> anyhow::Result<()> {
        let commit = self
            .input
            .source
            .commit_every()
            .is_none_or(|every| self.clocks.last_commit.elapsed() >= every);
        self.flush_outputs(commit)
    }

    fn flush_outputs(&mut self, commit: bool) -> anyhow::Result<()> {
        self.clocks.last_flush = Instant::now();
        // With workers, every batch they have is written first, so that what is flushed
        // is all that was read.
        self.drain_workers()?;
        for role in Outputs::ORDER {
            if let Some(s) = self.out.get_mut(role) {
                s.flush()?;
            }
        }
        if self.checkpoints.is_some() || !commit {
            // With checkpoints, offsets are committed once a checkpoint is written: a
            // restart from the last checkpoint must find every record after its positions
            // still uncommitted.
            return Ok(());
        }
        self.commit_offsets()
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
        assert_eq!(p.summary().counters.rows_written, 0);
        assert_eq!(p.summary().counters.windows_fired, 0);
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
        assert_eq!(p.summary().counters.rows_written, 6);
    }
}
