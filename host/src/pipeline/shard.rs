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
    /// The live plugin's failures in a row and quarantine.
    pub(super) health: Health,
    /// The live plugin's version id (shared: every result row under `weir serve` names it).
    pub(super) version: Arc<str>,
    /// Windows whose plugin call failed, with their events, for the next version
    /// (`weir serve` only).
    pub(super) failed: Option<FailedWindows>,
    /// A candidate version computing the same windows, compared with the live rows
    /// (`weir serve` only).
    pub(super) shadow: Option<super::shadow::Shadow>,
}

/// Windows whose plugin call failed, kept with their events (oldest first) so that the next
/// version computes them, within a count and an event budget.
#[derive(Debug, Default)]
pub(super) struct FailedWindows {
    windows: std::collections::VecDeque<FailedWindow>,
    events: usize,
    max_windows: usize,
    max_events: usize,
}

/// One window a failed call left without rows.
#[derive(Debug)]
pub(super) struct FailedWindow {
    pub(super) key: Key,
    pub(super) window: Window,
    /// The revision the failed firing had: the one its rows take.
    pub(super) revision: u32,
    pub(super) events: Vec<StoredEvent>,
}

impl FailedWindows {
    /// Keeps at most `max_windows` windows and `max_events` events.
    pub(super) fn new(max_windows: usize, max_events: usize) -> Self {
        FailedWindows {
            max_windows,
            max_events,
            ..FailedWindows::default()
        }
    }

    /// Keeps the window `d` of `operator`, whose call just failed, dropping the oldest kept
    /// ones past the budget.
    pub(super) fn keep(&mut self, operator: &mut WindowOperator, d: Due) {
        if self.max_windows == 0 {
            return;
        }
        let Some((f, _)) = operator.firing(d) else {
            return;
        };
        let events: Vec<StoredEvent> = f.events.cloned().collect();
        if events.len() > self.max_events {
            return;
        }
        self.events += events.len();
        self.windows.push_back(FailedWindow {
            key: f.key.clone(),
            window: f.window,
            revision: f.revision,
            events,
        });
        while self.windows.len() > self.max_windows || self.events > self.max_events {
            let Some(gone) = self.windows.pop_front() else {
                break;
            };
            self.events -= gone.events.len();
        }
    }

    /// Takes every kept window.
    pub(super) fn take(&mut self) -> Vec<FailedWindow> {
        self.events = 0;
        self.windows.drain(..).collect()
    }
}

/// A plugin's failures in a row and whether they quarantined it: the one place a
/// quarantine is decided and logged, for filter and aggregate calls alike.
#[derive(Debug, Default)]
pub(super) struct Health {
    /// Plugin failures in a row; reset by a success or a new version.
    failures_in_a_row: u32,
    /// Why the shard is quarantined, if it is.
    quarantined: Option<String>,
}

impl Health {
    /// A call succeeded.
    pub(super) fn succeeded(&mut self) {
        self.failures_in_a_row = 0;
    }

    /// A `call` (`filter`, `aggregate`) failed with `e`: logs it within the pipeline's log
    /// budget and counts it; at the gate's `quarantine_after` failures in a row,
    /// quarantines with the reason, logged once at error level.
    pub(super) fn failed(&mut self, call: &str, e: &plugin::Error, gate: &Gate<'_>) {
        if let Some(dropped) = gate.log.admit() {
            tracing::warn!(pipeline = %gate.pipeline, call, error = %e, kind = e.kind(), dropped_before = dropped, "plugin call failed");
        }
        self.failures_in_a_row += 1;
        if self.failures_in_a_row >= gate.quarantine_after && self.quarantined.is_none() {
            let reason = format!(
                "{} plugin failures in a row, the last: {e}",
                self.failures_in_a_row
            );
            tracing::error!(pipeline = %gate.pipeline, %reason, "pipeline quarantined");
            self.quarantined = Some(reason);
        }
    }

    /// Why the plugin is quarantined, if it is.
    pub(super) fn quarantined(&self) -> Option<&str> {
        self.quarantined.as_deref()
    }

    /// A new version starts clean: no failures, no quarantine.
    pub(super) fn reset(&mut self) {
        *self = Health::default();
    }
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
#[derive(Clone, Copy)]
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

impl Gate<'_> {
    /// Whether a firing is declined now for a reason outside the shard: a stop was asked
    /// for, a control message waits (the windows fire after it) or the tenant's CPU budget
    /// is in debt (they fire once the pipeline thread has waited it out).
    pub(super) fn holds(&self) -> bool {
        self.stop
            || self.interrupt.is_some_and(|i| i.load(Ordering::Relaxed))
            || self.cpu.is_some_and(|c| c.charge().is_some())
    }
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
            inputs,
            health: Health::default(),
            version: plugin.version_id().into(),
            plugin,
            failed: None,
            shadow: None,
        }
    }

    /// The live plugin's limits.
    pub(super) fn limits(&self) -> &Limits {
        self.plugin.limits()
    }

    /// Replaces the plugin with a new version, clean of failures and quarantine. With
    /// another state type, the pane states held are dropped (rebuilt from the events at
    /// the next firing).
    pub(super) fn replace(&mut self, plugin: Box<dyn Plugin>, inputs: Vec<usize>) {
        if plugin.info().state_type != self.plugin.info().state_type {
            self.operator.clear_stacks();
        }
        self.inputs = inputs;
        self.version = plugin.version_id().into();
        self.operator.set_limits(plugin.limits().state);
        if let Some(s) = &mut self.shadow {
            s.live_changed(plugin.info());
        }
        self.plugin = plugin;
        self.health.reset();
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
        self.operator.set_replaying(replayed);
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
        let Shard {
            operator,
            plugin,
            inputs,
            health,
            failed,
            shadow,
            ..
        } = self;
        let mode = AggregationMode::of(plugin.info(), operator.kind());
        let mut emitter = Emitter {
            inputs,
            plugin: plugin.as_mut(),
            out,
            counted: Counters::default(),
            health,
            gate,
            failed: None,
            mode,
            uncommitted: Vec::new(),
            kept: failed.as_mut(),
            shadow: shadow.as_mut(),
            written: Vec::new(),
        };
        emitter.emit_all(operator, due);
        let done = (emitter.counted, emitter.failed);
        // A shadow that stopped (it failed again and again) lets its instance go; its
        // report stays with its readers.
        if shadow.as_ref().is_some_and(|s| s.run().stopped().is_some()) {
            *shadow = None;
        }
        done
    }
}
