//! Shadow runs: a candidate plugin version computing every window the live version fires,
//! on the same key, window and events, its rows compared with the live rows instead of
//! written anywhere. The engine owns the candidate's calls and the comparison
//! ([`Shadow`]); what it found so far is shared with whoever reports it ([`ShadowRun`],
//! read as a [`ShadowReport`]).
//!
//! The candidate is called once per chunk of windows the live version was called for,
//! after the live rows were committed: the live output is written exactly as without a
//! shadow. A whole-window candidate gets the window's events in an `aggregate` call; an
//! incremental one computes each window from its events in one state (it holds no pane
//! states of its own). The candidate's filter is not called: its windows hold the events
//! the live version's filter let through. Its failures never touch the live version: they
//! are counted and reported, and after its own `quarantine_after` failures in a row the
//! shadow stops, with the reason.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::*;
use crate::plugin::thread_cpu_seconds;

/// Differing windows a report keeps, the first ones.
pub const KEPT_DIFFS: usize = 100;

/// Differing cells kept per differing window.
const KEPT_CELLS: usize = 20;

/// Bytes of a string value a differing cell keeps (longer ones are cut, with a marker), so
/// that a report stays small whatever the rows hold.
const KEPT_STRING_BYTES: usize = 256;

/// When a shadow becomes live by itself ([`ShadowReport::promote_after`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromoteAfter {
    /// At least this many windows compared.
    pub windows: u64,
    /// At most this many of them differing or failed in the candidate.
    pub differing: u64,
}

/// What a version's calls cost while the shadow ran.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// Plugin calls.
    pub calls: u64,
    /// Median wall time of a call, seconds.
    pub p50_seconds: f64,
    /// 99th percentile wall time of a call, seconds.
    pub p99_seconds: f64,
    /// CPU time of the calls, seconds.
    pub cpu_seconds: f64,
    /// Linear memory of the instance after its last call, bytes (0 when not known).
    pub memory_bytes: u64,
}

/// One cell that differs between the live and the candidate rows of a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellDiff {
    /// The row's place in its window (0 for the first row).
    pub row: usize,
    /// The output column.
    pub column: String,
    /// The live value.
    pub live: serde_json::Value,
    /// The candidate's value.
    pub candidate: serde_json::Value,
}

/// A window whose candidate rows differ from the live ones, or whose candidate call failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowDiff {
    /// The key fields and their values.
    pub key: serde_json::Map<String, serde_json::Value>,
    /// The window's start, RFC 3339 UTC.
    pub window_start: String,
    /// The window's end, RFC 3339 UTC.
    pub window_end: String,
    /// The firing's revision.
    pub revision: u32,
    /// `differing` or `error`.
    pub result: String,
    /// Rows the live version wrote for the window.
    pub live_rows: usize,
    /// Rows the candidate made (0 when it failed).
    pub candidate_rows: usize,
    /// The first differing cells of the rows both made (columns both have).
    pub cells: Vec<CellDiff>,
    /// Why the candidate failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a shadow run found so far: what `weir plugin diff` prints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShadowReport {
    /// The candidate's version id.
    pub version: String,
    /// When the shadow started, RFC 3339 UTC.
    pub since: String,
    /// Windows computed by both versions and compared.
    pub windows_compared: u64,
    /// Of those, windows whose rows were equal.
    pub windows_equal: u64,
    /// Of those, windows whose rows differed (values, row counts, columns).
    pub windows_differing: u64,
    /// Of those, windows the candidate failed on.
    pub candidate_errors: u64,
    /// Output columns the candidate has and the live version has not.
    pub columns_added: Vec<String>,
    /// Output columns the live version has and the candidate has not.
    pub columns_removed: Vec<String>,
    /// The live version's calls since the shadow started.
    pub live_cost: Cost,
    /// The candidate's calls.
    pub candidate_cost: Cost,
    /// The last failure of the candidate, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Why the shadow stopped, when it did (it failed again and again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// When it becomes live by itself, if asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote_after: Option<PromoteAfter>,
    /// The first [`KEPT_DIFFS`] differing or failed windows, in firing order.
    pub differing: Vec<WindowDiff>,
}

impl ShadowReport {
    /// Whether its [`PromoteAfter`] holds now (never once stopped).
    pub fn promotable(&self) -> bool {
        self.stopped.is_none()
            && self.promote_after.is_some_and(|p| {
                self.windows_compared >= p.windows
                    && self.windows_differing + self.candidate_errors <= p.differing
            })
    }
}

/// Per pipeline, windows compared by every shadow it ran, by result (the metrics).
#[derive(Debug, Default)]
pub struct ShadowTotals {
    /// Equal windows.
    pub equal: AtomicU64,
    /// Differing windows.
    pub differing: AtomicU64,
    /// Windows the candidate failed on.
    pub error: AtomicU64,
}

/// Wall times of calls, two significant digits from 1 ns to 100 s, and their CPU time.
struct Calls {
    wall: hdrhistogram::Histogram<u64>,
    cpu_seconds: f64,
}

impl Calls {
    fn new() -> Self {
        Calls {
            wall: crate::plugin::call_histogram(),
            cpu_seconds: 0.0,
        }
    }

    fn note(&mut self, (wall, cpu): (f64, f64)) {
        self.wall.saturating_record((wall * 1e9) as u64);
        self.cpu_seconds += cpu.max(0.0);
    }

    fn cost(&self, memory_bytes: u64) -> Cost {
        let q = |q: f64| {
            if self.wall.is_empty() {
                0.0
            } else {
                self.wall.value_at_quantile(q) as f64 / 1e9
            }
        };
        Cost {
            calls: self.wall.len(),
            p50_seconds: q(0.5),
            p99_seconds: q(0.99),
            cpu_seconds: self.cpu_seconds,
            memory_bytes,
        }
    }
}

/// A shadow run as its readers share it: the report so far and the calls' costs.
pub struct ShadowRun {
    inner: Mutex<RunInner>,
    totals: Arc<ShadowTotals>,
    /// The candidate instance's memory after its last call (its call meter's gauge).
    memory: Option<prometheus_client::metrics::gauge::Gauge>,
}

struct RunInner {
    report: ShadowReport,
    live: Calls,
    candidate: Calls,
}

impl ShadowRun {
    /// A run of candidate `version`, promoted by itself after `promote_after`; its windows
    /// are also counted in `totals`; `memory` is the candidate's memory gauge, if metered.
    pub fn new(
        version: &str,
        promote_after: Option<PromoteAfter>,
        totals: Arc<ShadowTotals>,
        memory: Option<prometheus_client::metrics::gauge::Gauge>,
    ) -> Self {
        ShadowRun {
            inner: Mutex::new(RunInner {
                report: ShadowReport {
                    version: version.to_string(),
                    since: crate::time::format_rfc3339_ms(chrono::Utc::now().timestamp_millis()),
                    promote_after,
                    ..ShadowReport::default()
                },
                live: Calls::new(),
                candidate: Calls::new(),
            }),
            totals,
            memory,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RunInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The report so far, costs included (the live version's memory is the caller's to
    /// fill in).
    pub fn report(&self) -> ShadowReport {
        let inner = self.lock();
        let mut r = inner.report.clone();
        r.live_cost = inner.live.cost(0);
        let memory = self
            .memory
            .as_ref()
            .map_or(0, |g| u64::try_from(g.get()).unwrap_or(0));
        r.candidate_cost = inner.candidate.cost(memory);
        r
    }

    /// Whether the report's [`PromoteAfter`] holds now.
    pub fn promotable(&self) -> bool {
        self.lock().report.promotable()
    }

    /// Notes a live call of `(wall, cpu)` seconds.
    pub(super) fn live_call(&self, took: (f64, f64)) {
        self.lock().live.note(took);
    }

    /// Whether it stopped.
    pub fn stopped(&self) -> Option<String> {
        self.lock().report.stopped.clone()
    }
}

/// Measures a call: `(wall, cpu)` seconds.
pub(super) struct Timer(Instant, f64);

impl Timer {
    pub(super) fn start() -> Self {
        Timer(Instant::now(), thread_cpu_seconds())
    }

    pub(super) fn took(self) -> (f64, f64) {
        (
            self.0.elapsed().as_secs_f64(),
            thread_cpu_seconds() - self.1,
        )
    }
}

/// A window the live version wrote, waiting for the candidate: its rows.
pub(super) struct Written {
    pub(super) due: Due,
    pub(super) key: Vec<Value>,
    pub(super) window: Window,
    pub(super) revision: u32,
    pub(super) rows: Vec<plugin::Row>,
}

/// The candidate of a shadow run, on the pipeline's thread.
pub struct Shadow {
    plugin: Box<dyn Plugin>,
    /// Schema index of each candidate input.
    inputs: Vec<usize>,
    mode: AggregationMode,
    run: Arc<ShadowRun>,
    /// The key fields' names.
    key_names: Vec<String>,
    live_columns: Vec<String>,
    /// Per live output column, the candidate's column of the same name.
    matched: Vec<Option<usize>>,
    failures_in_a_row: u32,
}

impl Shadow {
    /// The candidate `plugin` beside a live version with outputs `live`, over `kind`
    /// windows of `schema`, keyed by `key_names`, reporting into `run`.
    pub(super) fn new(
        plugin: Box<dyn Plugin>,
        schema: &Schema,
        kind: crate::window::WindowKind,
        key_names: &[String],
        live: &PluginInfo,
        run: Arc<ShadowRun>,
    ) -> Self {
        let inputs = input_indices(schema, plugin.info());
        let mode = AggregationMode::of(plugin.info(), kind);
        let mut s = Shadow {
            plugin,
            inputs,
            mode,
            run,
            key_names: key_names.to_vec(),
            live_columns: Vec::new(),
            matched: Vec::new(),
            failures_in_a_row: 0,
        };
        s.live_changed(live);
        s
    }

    /// The live version changed (a swap): its output columns are matched again.
    pub(super) fn live_changed(&mut self, live: &PluginInfo) {
        let cand: Vec<&str> = self
            .plugin
            .info()
            .outputs
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        self.live_columns = live.outputs.iter().map(|(n, _)| n.clone()).collect();
        self.matched = self
            .live_columns
            .iter()
            .map(|c| cand.iter().position(|n| n == c))
            .collect();
        let mut inner = self.run.lock();
        inner.report.columns_removed = self
            .live_columns
            .iter()
            .zip(&self.matched)
            .filter(|(_, m)| m.is_none())
            .map(|(c, _)| c.clone())
            .collect();
        inner.report.columns_added = cand
            .iter()
            .filter(|c| !self.live_columns.iter().any(|l| l == *c))
            .map(|c| c.to_string())
            .collect();
    }

    /// The candidate as it describes itself.
    pub fn info(&self) -> &PluginInfo {
        self.plugin.info()
    }

    /// The candidate's version id.
    pub fn version(&self) -> String {
        self.plugin.version_id()
    }

    /// What it reports into.
    pub fn run(&self) -> &Arc<ShadowRun> {
        &self.run
    }

    /// Takes the candidate instance (a promotion).
    pub(super) fn into_plugin(self) -> Box<dyn Plugin> {
        self.plugin
    }

    /// Computes `written`, windows of `operator` whose live rows were just committed, with
    /// the candidate, and compares. Their events must still be held (before
    /// [`WindowOperator::fired`]).
    pub(super) fn compare(&mut self, operator: &mut WindowOperator, written: &[Written]) {
        if written.is_empty() || self.run.stopped().is_some() {
            return;
        }
        let timer = Timer::start();
        let results = self.call(operator, written);
        let took = timer.took();
        let results = match results {
            Ok(r) => r,
            Err(e) if written.len() == 1 => vec![Err(e)],
            // The chunk failed as a whole: each window alone, so that a failure is
            // recorded against the window that causes it.
            Err(_) => written
                .iter()
                .map(|w| {
                    let t = Timer::start();
                    let r = self
                        .call(operator, std::slice::from_ref(w))
                        .and_then(|mut r| r.pop().unwrap_or_else(|| Ok(Vec::new())));
                    self.run.lock().candidate.note(t.took());
                    r
                })
                .collect(),
        };
        let mut inner = self.run.lock();
        inner.candidate.note(took);
        let was_stopped = inner.report.stopped.is_some();
        let limit = self.plugin.limits().quarantine_after;
        for (w, result) in written.iter().zip(results) {
            let r = &mut inner.report;
            // Stopped: the rest of the chunk is not counted.
            if r.stopped.is_some() {
                break;
            }
            r.windows_compared += 1;
            match result {
                Ok(rows) => {
                    self.failures_in_a_row = 0;
                    let cells = self.differences(&w.rows, &rows);
                    if cells.is_empty() && rows.len() == w.rows.len() {
                        r.windows_equal += 1;
                        self.run.totals.equal.fetch_add(1, Ordering::Relaxed);
                    } else {
                        r.windows_differing += 1;
                        self.run.totals.differing.fetch_add(1, Ordering::Relaxed);
                        if r.differing.len() < KEPT_DIFFS {
                            let diff = self.diff(w, "differing", rows.len(), cells, None);
                            r.differing.push(diff);
                        }
                    }
                }
                Err(e) => {
                    self.failures_in_a_row += 1;
                    r.candidate_errors += 1;
                    self.run.totals.error.fetch_add(1, Ordering::Relaxed);
                    let message = e.to_string();
                    r.last_error = Some(message.clone());
                    if r.differing.len() < KEPT_DIFFS {
                        let diff = self.diff(w, "error", 0, Vec::new(), Some(message.clone()));
                        r.differing.push(diff);
                    }
                    if self.failures_in_a_row >= limit && r.stopped.is_none() {
                        r.stopped = Some(format!(
                            "the candidate failed {} times in a row, the last: {message}",
                            self.failures_in_a_row
                        ));
                    }
                }
            }
        }
        if !was_stopped && let Some(reason) = &inner.report.stopped {
            tracing::warn!(version = %self.plugin.version_id(), %reason, "shadow stopped");
        }
    }

    /// One candidate call for `written`: a result per window.
    fn call(
        &mut self,
        operator: &mut WindowOperator,
        written: &[Written],
    ) -> Result<Vec<plugin::GroupResult>, plugin::Error> {
        match self.mode {
            AggregationMode::Whole => {
                let mut groups = Vec::with_capacity(written.len());
                for w in written {
                    let b = self.plugin.batch();
                    let offset = b.len() as u32;
                    if let Some((f, _)) = operator.firing(w.due) {
                        for e in f.events {
                            b.push(e.ts, self.inputs.iter().map(|&i| &e.values[i]));
                        }
                    }
                    groups.push(plugin::Group {
                        key: w.key.clone(),
                        window: w.window,
                        offset,
                        len: b.len() as u32 - offset,
                    });
                }
                self.plugin.aggregate(&groups)
            }
            AggregationMode::Incremental { .. } => {
                let mut plan = Plan::default();
                for w in written {
                    let events: Vec<&StoredEvent> = operator
                        .firing(w.due)
                        .map(|(f, _)| f.events.collect())
                        .unwrap_or_default();
                    let mut planner = HostPlanner {
                        plan: &mut plan,
                        batch: self.plugin.batch(),
                        inputs: &self.inputs,
                    };
                    let state = planner.fresh(&events);
                    let slot = planner.slot(state);
                    plan.finish.push(Finish {
                        key: w.key.clone(),
                        window: w.window,
                        slot,
                    });
                }
                self.plugin.step(&plan).map(|o| o.rows)
            }
        }
    }

    /// The differing cells of the rows both made, in the columns both have.
    fn differences(&self, live: &[plugin::Row], cand: &[plugin::Row]) -> Vec<CellDiff> {
        let mut out = Vec::new();
        for (row, (l, c)) in live.iter().zip(cand).enumerate() {
            for ((name, m), lv) in self.live_columns.iter().zip(&self.matched).zip(l) {
                let Some(cv) = m.and_then(|m| c.get(m)) else {
                    continue;
                };
                if !same_value(lv, cv) {
                    out.push(CellDiff {
                        row,
                        column: name.clone(),
                        live: kept_json(lv),
                        candidate: kept_json(cv),
                    });
                }
            }
        }
        out
    }

    fn diff(
        &self,
        w: &Written,
        result: &str,
        candidate_rows: usize,
        mut cells: Vec<CellDiff>,
        error: Option<String>,
    ) -> WindowDiff {
        cells.truncate(KEPT_CELLS);
        WindowDiff {
            key: self
                .key_names
                .iter()
                .cloned()
                .zip(w.key.iter().map(Value::to_json))
                .collect(),
            window_start: crate::time::format_rfc3339_ms(w.window.start),
            window_end: crate::time::format_rfc3339_ms(w.window.end),
            revision: w.revision,
            result: result.to_string(),
            live_rows: w.rows.len(),
            candidate_rows,
            cells,
            error,
        }
    }
}

/// `v` as JSON, a string cut to [`KEPT_STRING_BYTES`] as the console cuts one.
fn kept_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Str(s) if s.len() > KEPT_STRING_BYTES => {
            serde_json::Value::String(crate::console::recent::cut_string(s, KEPT_STRING_BYTES))
        }
        other => other.to_json(),
    }
}

/// Whether two output values are the same: floats (and a float beside an integer) within
/// a relative 1e-9, or an absolute 1e-9 below 1; anything else exactly.
pub fn same_value(a: &Value, b: &Value) -> bool {
    let num = |v: &Value| match v {
        Value::F64(x) => Some(*x),
        Value::I64(x) => Some(*x as f64),
        _ => None,
    };
    match (a, b) {
        (Value::I64(x), Value::I64(y)) => x == y,
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => {
                (x.is_nan() && y.is_nan())
                    || x == y
                    || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
            }
            _ => a == b,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_agree_within_a_relative_or_small_absolute_tolerance() {
        use Value::*;
        assert!(same_value(&F64(1e12), &F64(1e12 + 1.0)), "1e-12 relative");
        assert!(!same_value(&F64(1e12), &F64(1e12 + 1e4)), "1e-8 relative");
        assert!(same_value(&F64(0.0), &F64(5e-10)), "below 1: absolute");
        assert!(!same_value(&F64(0.0), &F64(2e-9)));
        assert!(same_value(&F64(f64::NAN), &F64(f64::NAN)));
        assert!(same_value(&I64(3), &F64(3.0)));
        assert!(!same_value(&I64(3), &I64(4)));
        assert!(!same_value(&Str("a".into()), &Str("b".into())));
        assert!(!same_value(&Null, &F64(0.0)));
    }

    #[test]
    fn a_long_string_in_a_diff_is_cut_with_its_length() {
        let long = Value::Str("é".repeat(300));
        let kept = kept_json(&long);
        let text = kept.as_str().expect("a string");
        assert!(text.ends_with("…(600 bytes)"), "{text}");
        assert!(text.len() <= KEPT_STRING_BYTES + 32, "{}", text.len());
        assert!(text.starts_with("éé"));
        assert_eq!(kept_json(&Value::Str("short".into())), "short");
    }

    #[test]
    fn a_policy_promotes_after_enough_windows_with_few_enough_differences() {
        let mut r = ShadowReport {
            promote_after: Some(PromoteAfter {
                windows: 10,
                differing: 0,
            }),
            windows_compared: 9,
            ..ShadowReport::default()
        };
        assert!(!r.promotable());
        r.windows_compared = 10;
        assert!(r.promotable());
        r.candidate_errors = 1;
        assert!(!r.promotable(), "a candidate error counts as a difference");
        r.candidate_errors = 0;
        r.stopped = Some("failed".into());
        assert!(!r.promotable());
        r.stopped = None;
        r.promote_after = None;
        assert!(!r.promotable());
    }
}
