//! The engine every pipeline runs, on its own thread or on each of N workers: a [`Shard`]
//! holds window state and a plugin instance, places admitted events in their windows and
//! fires due windows through the one [`Emitter`]. What is placed where, what is late, how a
//! firing calls the plugin, counts and decides quarantine is written here once; the callers
//! differ only in where they write (the sinks, or a worker's captured outputs) and in what
//! may hold a firing back ([`Gate`]).

use super::*;

/// Window state and the plugin that aggregates it.
pub(super) struct Shard {
    /// Open windows and their events.
    pub(super) operator: WindowOperator,
    /// The plugin instance windows fire with.
    pub(super) plugin: Box<dyn Plugin>,
    /// Schema index of each plugin input, in input order.
    pub(super) inputs: Vec<usize>,
    /// Plugin failures in a row; reset by a success or a new version.
    pub(super) failures_in_a_row: u32,
    /// Why the shard is quarantined, if it is.
    pub(super) quarantined: Option<String>,
}

/// What placing an event came to, for its caller to write.
pub(super) enum Placed {
    /// In its windows (or a replayed record late for all of them: already reported once).
    Stored,
    /// Late for every window: its values, for the late sink.
    Late(Box<[Value]>),
    /// Refused whole with the reason (a state limit): for the dead letter.
    Refused(String),
}

/// What may hold a firing back, and where it logs.
pub(super) struct Gate<'a> {
    /// The pipeline's name, for log lines.
    pub(super) pipeline: &'a str,
    /// Failures in a row that quarantine (`u32::MAX`: never).
    pub(super) quarantine_after: u32,
    /// Raised by the host when a control message waits.
    pub(super) interrupt: Option<&'a AtomicBool>,
    /// The tenant's CPU budget.
    pub(super) cpu: Option<&'a crate::plugin::CpuShare>,
    /// A stop was asked for.
    pub(super) stop: bool,
    /// The pipeline's log budget.
    pub(super) log: &'a LogBudget,
}

impl Shard {
    /// A shard of `plugin` over `operator`'s windows, reading the schema fields `inputs`.
    pub(super) fn new(
        operator: WindowOperator,
        plugin: Box<dyn Plugin>,
        inputs: Vec<usize>,
    ) -> Self {
        Shard {
            operator,
            plugin,
            inputs,
            failures_in_a_row: 0,
            quarantined: None,
        }
    }

    /// Places an event of `partition` at `ts` with `key` and `values` in its windows, at
    /// watermark `at`; a `replayed` record late for every window is not reported again.
    pub(super) fn place(
        &mut self,
        partition: u32,
        ts: i64,
        key: Key,
        values: Box<[Value]>,
        at: i64,
        replayed: bool,
    ) -> Placed {
        self.operator.set_partition(partition);
        match self.operator.process(ts, key, values, at) {
            Placement::Added(_) => Placed::Stored,
            Placement::Late(_) if replayed => Placed::Stored,
            Placement::Late(values) => Placed::Late(values),
            Placement::Refused(reason) => Placed::Refused(reason),
        }
    }

    /// Fires `due` into `out`, as far as `gate` lets it: what was fired, written and failed,
    /// and the sink error that stopped it, if one did.
    pub(super) fn fire(
        &mut self,
        due: Vec<Due>,
        out: &mut dyn WindowSink,
        gate: &Gate<'_>,
    ) -> (Counters, Option<sink::Error>) {
        let mode = AggregationMode::of(self.plugin.info(), self.operator.kind());
        let mut emitter = Emitter {
            pipeline: gate.pipeline,
            inputs: &self.inputs,
            plugin: self.plugin.as_mut(),
            out,
            counted: Counters::default(),
            failures_in_a_row: &mut self.failures_in_a_row,
            quarantine_after: gate.quarantine_after,
            quarantined: &mut self.quarantined,
            interrupt: gate.interrupt,
            cpu: gate.cpu,
            stop: gate.stop,
            log: gate.log,
            failed: None,
            mode,
            uncommitted: Vec::new(),
        };
        emitter.emit_all(&mut self.operator, due);
        (emitter.counted, emitter.failed)
    }
}
