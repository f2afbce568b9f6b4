//! What the web console shows beyond the admin API's views, and the page itself.
//!
//! Per pipeline, a [`Telemetry`]: the last five minutes of one-a-second [`Sample`]s (taken
//! from the host's Prometheus metrics by [`spawn_sampler`], so the console and a scrape
//! agree), and the latest result rows and error records, copied by [`TapSink`]s around the
//! pipeline's sinks. The admin API serves them as [`Activity`] (a poll, or a server-sent
//! event a second); [`assets`] holds the page, compiled into the binary.

pub mod assets;
mod recent;
mod series;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use recent::{Recent, Record, TapSink};
pub use series::{CallQuantiles, KEPT_SAMPLES, Reading, Sample, Series};

use crate::serve::{Metrics, PipelineId, PipelineView};

/// Result rows kept per pipeline unless configured (`[console] keep_rows`).
pub const KEPT_ROWS: usize = 1_000;
/// Error records (late events, dead letters, plugin errors) kept per pipeline unless
/// configured (`[console] keep_errors`).
pub const KEPT_ERRORS: usize = 100;

/// What the console keeps of one pipeline.
#[derive(Debug)]
pub struct Telemetry {
    /// The latest result rows.
    pub rows: Arc<Recent>,
    /// The latest late events, dead letters and plugin errors.
    pub errors: Arc<Recent>,
    series: Mutex<Series>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new(KEPT_ROWS, KEPT_ERRORS)
    }
}

/// Where a console client stands: the last sample, row and error record it has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Since {
    /// The last sample's `seq` (none: every sample kept).
    pub sample: Option<u64>,
    /// The last result row's `seq`.
    pub row: Option<u64>,
    /// The last error record's `seq`.
    pub error: Option<u64>,
}

/// A pipeline as the console's pipeline page shows it: its view, and what it did past a
/// [`Since`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    /// State, versions, counters.
    pub pipeline: PipelineView,
    /// The key fields of its result rows (one chart line per key).
    pub key: Vec<String>,
    /// The columns of its result rows now, in the sink's order.
    pub columns: Vec<String>,
    /// Samples past `since.sample`, oldest first.
    pub samples: Vec<Sample>,
    /// Result rows past `since.row`, oldest first.
    pub rows: Vec<Record>,
    /// Error records past `since.error`, oldest first.
    pub errors: Vec<Record>,
    /// What to ask for next time.
    pub next: Since,
}

/// `GET /v1/whoami`: who the token belongs to, and whether the host takes control actions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhoAmI {
    /// The operator, or one tenant.
    pub principal: crate::serve::Principal,
    /// Whether deploy, rollback, pause and resume are offered.
    pub controls: bool,
}

/// One line of `GET /v1/overview`: a pipeline the caller may see, with its newest sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverviewItem {
    /// State, versions, counters.
    pub pipeline: PipelineView,
    /// The newest sample (none in the first second).
    pub sample: Option<Sample>,
}

impl Telemetry {
    /// Telemetry that keeps the last `rows` result rows and `errors` error records.
    pub fn new(rows: usize, errors: usize) -> Self {
        Telemetry {
            rows: Arc::new(Recent::new(rows)),
            errors: Arc::new(Recent::new(errors)),
            series: Mutex::new(Series::default()),
        }
    }

    fn series(&self) -> std::sync::MutexGuard<'_, Series> {
        self.series.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds the sample of `reading`, taken at `at_ms`.
    pub fn record(&self, at_ms: i64, reading: Reading) {
        self.series().record(at_ms, reading);
    }

    /// The newest sample.
    pub fn latest(&self) -> Option<Sample> {
        self.series().latest().cloned()
    }

    /// What pipeline `pipeline`, whose rows are keyed by `key`, did past `since`.
    pub fn activity(&self, pipeline: PipelineView, key: Vec<String>, since: &Since) -> Activity {
        let (samples, sample) = self.series().since(since.sample);
        let (rows, row) = self.rows.since(since.row);
        let (errors, error) = self.errors.since(since.error);
        Activity {
            pipeline,
            key,
            columns: self.rows.columns(),
            samples,
            rows,
            errors,
            next: Since {
                sample: Some(sample),
                row: Some(row),
                error: Some(error),
            },
        }
    }
}

/// Takes a sample of every pipeline in `pipelines` from `metrics` each second, on a thread
/// of its own, until `stop` is raised.
///
/// # Errors
///
/// The thread could not be started.
pub fn spawn_sampler(
    metrics: Arc<Metrics>,
    pipelines: Vec<(PipelineId, Arc<Telemetry>)>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("weir-console".into())
        .spawn(move || {
            let tick = Duration::from_secs(1);
            let mut next = std::time::Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let now = chrono::Utc::now().timestamp_millis();
                for (id, telemetry) in &pipelines {
                    telemetry.record(now, metrics.reading(id));
                }
                next += tick;
                // Behind by more than a tick (a stalled machine): take the next one a tick
                // from now rather than several at once.
                let now = std::time::Instant::now();
                if next + tick < now {
                    next = now + tick;
                }
                // Sleep in short steps so that a stop is seen within 100 ms.
                while !stop.load(Ordering::Relaxed) {
                    let left = next.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    std::thread::sleep(left.min(Duration::from_millis(100)));
                }
            }
        })
}
