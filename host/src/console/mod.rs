//! What the web console shows beyond the admin API's views, and the page itself.
//!
//! Per pipeline, a [`Telemetry`]: the last five minutes of one-a-second [`Sample`]s (taken
//! from the host's Prometheus metrics by [`spawn_sampler`], so the console and a scrape
//! agree), and the latest result rows and error records, copied by [`TapSink`]s around the
//! pipeline's sinks. The admin API serves them as [`Activity`] (a poll, or a server-sent
//! event a second); [`assets`] holds the page, compiled into the binary.
//!
//! Memory is bounded whatever a plugin writes ([`Limits`], `[console]` in the host config):
//! each pipeline's rings by count and by bytes, every ring of one tenant by a
//! [`TenantBudget`] they share, each kept row by a cap past which its long strings are cut,
//! and each [`Activity`] by a byte budget: it carries the oldest records past the reader's
//! [`Since`] that fit, and its `next` says where the reader goes on from.

pub mod assets;
pub(crate) mod recent;
mod series;

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

pub use recent::{Keep, Page, Recent, Record, TOO_LARGE_FIELD, TapSink, TenantBudget};
pub use series::{CallQuantiles, KEPT_SAMPLES, Reading, Sample, Series};

/// Result rows kept per pipeline unless configured (`[console] keep_rows`).
pub const KEPT_ROWS: usize = 1_000;
/// Error records (late events, dead letters, plugin errors) kept per pipeline unless
/// configured (`[console] keep_errors`).
pub const KEPT_ERRORS: usize = 100;

/// What the console keeps of each pipeline and returns per read; the host's come from
/// `[console]` in its config, where each default is explained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Result rows kept (`keep_rows`, default [`KEPT_ROWS`]).
    pub keep_rows: usize,
    /// Error records kept (`keep_errors`, default [`KEPT_ERRORS`]).
    pub keep_errors: usize,
    /// Estimated bytes of the result rows kept (`keep_bytes`, default 1 MiB).
    pub keep_bytes: usize,
    /// Estimated bytes of the error records kept (`keep_error_bytes`, default 256 KiB).
    pub keep_error_bytes: usize,
    /// Estimated bytes of one kept record: a larger row is kept cut (`max_row_bytes`,
    /// default 16 KiB).
    pub max_row_bytes: usize,
    /// Estimated bytes of the rows and error records of one [`Activity`] (default
    /// [`RESPONSE_BYTES`]): error records take at most a quarter, rows the rest.
    pub response_bytes: usize,
}

/// The most bytes of records one [`Activity`] carries by default: 1 MiB (each record's
/// JSON is at most its estimate).
pub const RESPONSE_BYTES: usize = 1 << 20;

impl Limits {
    /// The limits a host config's `[console]` section sets.
    pub fn of(cfg: &crate::config::ConsoleConfig) -> Self {
        Limits {
            keep_rows: cfg.keep_rows,
            keep_errors: cfg.keep_errors,
            keep_bytes: cfg.keep_bytes.usize(),
            keep_error_bytes: cfg.keep_error_bytes.usize(),
            max_row_bytes: cfg.max_row_bytes.usize(),
            response_bytes: RESPONSE_BYTES,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            keep_rows: KEPT_ROWS,
            keep_errors: KEPT_ERRORS,
            keep_bytes: 1 << 20,
            keep_error_bytes: 256 << 10,
            max_row_bytes: 16 << 10,
            response_bytes: RESPONSE_BYTES,
        }
    }
}

/// What the console keeps of one pipeline.
#[derive(Debug)]
pub struct Telemetry {
    /// The latest result rows.
    pub rows: Arc<Recent>,
    /// The latest late events, dead letters and plugin errors.
    pub errors: Arc<Recent>,
    series: Mutex<Series>,
    response_bytes: usize,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::with_limits(&Limits::default(), None)
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

/// What a pipeline's telemetry holds past a [`Since`]: the admin API joins it with the
/// pipeline's view and key as an `Activity` (`serve::control`).
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// The columns of its result rows now, in the sink's order.
    pub columns: Vec<String>,
    /// Samples past `since.sample`, oldest first.
    pub samples: Vec<Sample>,
    /// Result rows past `since.row`, oldest first: as many as fit the read's byte budget.
    pub rows: Vec<Record>,
    /// Error records past `since.error`, oldest first: as many as fit the read's byte budget.
    pub errors: Vec<Record>,
    /// What to ask for next time: past the last record returned when some were left out.
    pub next: Since,
}

impl Telemetry {
    /// Telemetry that keeps the last `rows` result rows and `errors` error records, within
    /// the default byte bounds of [`Limits`].
    pub fn new(rows: usize, errors: usize) -> Self {
        let limits = Limits {
            keep_rows: rows,
            keep_errors: errors,
            ..Limits::default()
        };
        Telemetry::with_limits(&limits, None)
    }

    /// Telemetry that keeps what `limits` allow, its rings charging `tenant`'s budget when
    /// there is one.
    pub fn with_limits(limits: &Limits, tenant: Option<Arc<TenantBudget>>) -> Self {
        let ring = |records, bytes| {
            Arc::new(Recent::with_limits(
                Keep {
                    records,
                    bytes,
                    row_bytes: limits.max_row_bytes,
                },
                tenant.clone(),
            ))
        };
        Telemetry {
            rows: ring(limits.keep_rows, limits.keep_bytes),
            errors: ring(limits.keep_errors, limits.keep_error_bytes),
            series: Mutex::new(Series::default()),
            response_bytes: limits.response_bytes,
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

    /// What the pipeline did past `since`: every sample (five minutes at most), and the
    /// oldest error records and rows that fit the response's byte budget (errors a quarter
    /// of it at most, rows the rest; at least one of each when there is one). `next` goes
    /// on from the last record returned.
    pub fn recorded(&self, since: &Since) -> Recorded {
        let (samples, sample) = self.series().since(since.sample);
        let errors = self.errors.since(since.error, self.response_bytes / 4);
        let rows = self
            .rows
            .since(since.row, self.response_bytes.saturating_sub(errors.bytes));
        Recorded {
            columns: self.rows.columns(),
            samples,
            rows: rows.records,
            errors: errors.records,
            next: Since {
                sample: Some(sample),
                row: Some(rows.next),
                error: Some(errors.next),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::{Cell, Sink};

    #[test]
    fn an_activity_over_its_budget_is_cut_and_next_goes_on_from_its_last_record() {
        let limits = Limits {
            response_bytes: 64 << 10,
            keep_bytes: 1 << 20,
            ..Limits::default()
        };
        let t = Telemetry::with_limits(&limits, None);
        let mut rows = TapSink::new(
            Box::<recent::Lengths>::default(),
            vec!["symbol".into(), "n".into()],
            crate::sink::SinkRole::Results,
            t.rows.clone(),
        );
        let mut errors = TapSink::new(
            Box::<recent::Lengths>::default(),
            vec!["record".into()],
            crate::sink::SinkRole::DeadLetter,
            t.errors.clone(),
        );
        // 100 rows of about 4 KiB (400 KiB, all kept) and 30 dead letters of about 2 KiB.
        let text = "x".repeat(4000);
        for n in 1..=100 {
            rows.write(&[Cell::Str(&text), Cell::I64(n)]).unwrap();
        }
        for _ in 0..30 {
            errors.write(&[Cell::Str(&text[..2000])]).unwrap();
        }
        let mut since = Since::default();
        let (mut seen_rows, mut seen_errors, mut reads) = (Vec::new(), 0, 0);
        loop {
            let a = t.recorded(&since);
            reads += 1;
            let json = serde_json::to_string(&a.rows).unwrap().len()
                + serde_json::to_string(&a.errors).unwrap().len();
            assert!(json <= limits.response_bytes, "read {reads}: {json} bytes");
            let errors_json = serde_json::to_string(&a.errors).unwrap().len();
            assert!(errors_json <= limits.response_bytes / 4 + 2);
            if let Some(last) = a.rows.last() {
                assert_eq!(a.next.row, Some(last.seq));
            }
            seen_rows.extend(a.rows.iter().map(|r| r.fields["n"].as_i64().unwrap()));
            seen_errors += a.errors.len();
            if a.rows.is_empty() && a.errors.is_empty() {
                assert_eq!(a.next.row, Some(100));
                assert_eq!(a.next.error, Some(30));
                break;
            }
            since = a.next;
        }
        // Every row once, in order, over several reads; every error record once.
        assert_eq!(seen_rows, (1..=100).collect::<Vec<_>>());
        assert_eq!(seen_errors, 30);
        // 400 KiB of rows at most 64 KiB a read: at least 7 reads, and the empty one.
        assert!(reads >= 8, "{reads}");
    }
}
