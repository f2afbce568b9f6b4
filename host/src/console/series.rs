//! A pipeline's health over the last minutes, one [`Sample`] a second: rates (events, late
//! events, dead letters, window firings, rows, plugin errors per second) worked out from
//! the growth of the host's counters between two readings, plugin call latency quantiles
//! of the calls made in between, and the gauges (watermark, lag, open windows, memory).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::counters::Counters;
pub use crate::plugin::CallQuantiles;

/// How many samples a series keeps: five minutes at one a second.
pub const KEPT_SAMPLES: usize = 300;

/// What the host's metrics say of one pipeline at one moment ([`crate::serve::Metrics::reading`]):
/// counters since the pipeline started, and gauges.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Reading {
    /// The pipeline's counters, as a scrape shows them.
    pub counters: Counters,
    /// Windows open.
    pub open_windows: u64,
    /// The event-time watermark, epoch milliseconds, once an event came.
    pub watermark_ms: Option<i64>,
    /// Linear memory of the plugin instance after its last call.
    pub memory_bytes: u64,
    /// CPU seconds the pipeline's thread spent in plugin calls since it started.
    pub cpu_seconds: f64,
    /// The calls since the previous reading, if any were made.
    pub calls: Option<CallQuantiles>,
}

/// One second of a pipeline's life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Its place in the series: 1 for the first sample.
    pub seq: u64,
    /// Wall clock when it was taken, epoch milliseconds.
    pub at_ms: i64,
    /// Records read per second since the previous sample.
    pub events_per_s: f64,
    /// Late events per second.
    pub late_per_s: f64,
    /// Dead letters (malformed records) per second.
    pub malformed_per_s: f64,
    /// Window firings per second.
    pub fired_per_s: f64,
    /// Result rows per second.
    pub rows_per_s: f64,
    /// Failed plugin calls per second.
    pub plugin_errors_per_s: f64,
    /// Plugin calls since the previous sample.
    pub calls: u64,
    /// Their median wall time, milliseconds (absent when no call was made).
    pub call_p50_ms: Option<f64>,
    /// Their 99th percentile, milliseconds.
    pub call_p99_ms: Option<f64>,
    /// The event-time watermark, epoch milliseconds (absent before the first event).
    pub watermark_ms: Option<i64>,
    /// How far the watermark is behind the wall clock, seconds.
    pub lag_seconds: Option<f64>,
    /// Windows open.
    pub open_windows: u64,
    /// Linear memory of the plugin instance, bytes.
    pub memory_bytes: u64,
    /// CPU seconds spent in the plugin's calls since the pipeline started: what the
    /// tenant's plugin cost (`weir_plugin_cpu_seconds_total`).
    pub cpu_seconds: f64,
    /// Cores the plugin's calls kept busy since the previous sample (CPU seconds per
    /// second).
    pub cpu_cores: f64,
    /// What the pipeline counted since it started.
    #[serde(flatten)]
    pub counters: Counters,
    /// Dead letters and failed plugin calls in the last 60 s.
    pub errors_last_minute: u64,
}

/// The samples of one pipeline, oldest first, at most [`KEPT_SAMPLES`].
#[derive(Debug, Default)]
pub struct Series {
    samples: VecDeque<Sample>,
    last_seq: u64,
    previous: Option<(i64, Reading)>,
}

impl Series {
    /// Adds the sample that `reading`, taken at `at_ms`, makes with the previous reading.
    /// The first reading's rates count from 0 over one second: the counters start at 0
    /// when the pipeline starts.
    pub fn record(&mut self, at_ms: i64, reading: Reading) {
        let (before_ms, before) = self.previous.unwrap_or((at_ms - 1000, Reading::default()));
        let seconds = ((at_ms - before_ms) as f64 / 1e3).max(1e-3);
        let rate = |now: u64, then: u64| now.saturating_sub(then) as f64 / seconds;
        let errors = reading.counters.malformed + reading.counters.plugin_errors;
        // The newest sample at least a minute old; before any is, the pipeline's start
        // (while every sample is still kept) or the oldest sample kept.
        let minute_ago = self
            .samples
            .iter()
            .rev()
            .find(|s| s.at_ms <= at_ms - 60_000)
            .or_else(|| self.samples.front().filter(|s| s.seq != 1))
            .map_or(0, |s| s.counters.malformed + s.counters.plugin_errors);
        self.last_seq += 1;
        let ms = |s: f64| s * 1e3;
        let sample = Sample {
            seq: self.last_seq,
            at_ms,
            events_per_s: rate(reading.counters.events_read, before.counters.events_read),
            late_per_s: rate(reading.counters.late, before.counters.late),
            malformed_per_s: rate(reading.counters.malformed, before.counters.malformed),
            fired_per_s: rate(
                reading.counters.windows_fired,
                before.counters.windows_fired,
            ),
            rows_per_s: rate(reading.counters.rows_written, before.counters.rows_written),
            plugin_errors_per_s: rate(
                reading.counters.plugin_errors,
                before.counters.plugin_errors,
            ),
            calls: reading.calls.map_or(0, |c| c.calls),
            call_p50_ms: reading.calls.map(|c| ms(c.p50_seconds)),
            call_p99_ms: reading.calls.map(|c| ms(c.p99_seconds)),
            watermark_ms: reading.watermark_ms,
            lag_seconds: reading.watermark_ms.map(|w| (at_ms - w) as f64 / 1e3),
            open_windows: reading.open_windows,
            memory_bytes: reading.memory_bytes,
            cpu_seconds: reading.cpu_seconds,
            cpu_cores: (reading.cpu_seconds - before.cpu_seconds).max(0.0) / seconds,
            counters: reading.counters,
            errors_last_minute: errors.saturating_sub(minute_ago),
        };
        if self.samples.len() == KEPT_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
        self.previous = Some((at_ms, reading));
    }

    /// The samples whose `seq` is above `after` (all for `None`), and the last `seq`.
    pub fn since(&self, after: Option<u64>) -> (Vec<Sample>, u64) {
        let after = after.unwrap_or(0);
        (
            self.samples
                .iter()
                .filter(|s| s.seq > after)
                .cloned()
                .collect(),
            self.last_seq,
        )
    }

    /// The newest sample.
    pub fn latest(&self) -> Option<&Sample> {
        self.samples.back()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(events: u64, malformed: u64) -> Reading {
        Reading {
            counters: Counters {
                events_read: events,
                malformed,
                ..Counters::default()
            },
            ..Reading::default()
        }
    }

    #[test]
    fn rates_are_the_counters_growth_over_the_time_between_readings() {
        let mut s = Series::default();
        let t0 = 1_700_000_000_000;
        s.record(t0, reading(500, 0));
        // 1 500 more events in 2 s, 4 more dead letters, 0.5 s more of plugin CPU.
        s.record(
            t0 + 2_000,
            Reading {
                cpu_seconds: 0.5,
                ..reading(2_000, 4)
            },
        );
        let (all, last) = s.since(None);
        assert_eq!(last, 2);
        assert_eq!(all[0].events_per_s, 500.0);
        assert_eq!(all[1].events_per_s, 750.0);
        assert_eq!(all[1].malformed_per_s, 2.0);
        assert_eq!(all[1].counters.events_read, 2_000);
        assert_eq!(all[1].cpu_seconds, 0.5);
        assert_eq!(all[1].cpu_cores, 0.25);
        assert_eq!(s.since(Some(1)).0.len(), 1);
    }

    #[test]
    fn watermark_lag_and_call_quantiles_are_carried_in_milliseconds_and_seconds() {
        let mut s = Series::default();
        let at = 1_705_881_690_500;
        s.record(
            at,
            Reading {
                watermark_ms: Some(1_705_881_600_000),
                calls: Some(CallQuantiles {
                    calls: 10,
                    p50_seconds: 0.000_25,
                    p99_seconds: 0.002,
                }),
                ..Reading::default()
            },
        );
        let x = s.latest().unwrap();
        assert_eq!(x.lag_seconds, Some(90.5));
        assert_eq!(x.call_p50_ms, Some(0.25));
        assert_eq!(x.call_p99_ms, Some(2.0));
        assert_eq!(x.calls, 10);
        s.record(at + 1000, Reading::default());
        assert_eq!(s.latest().unwrap().call_p50_ms, None);
    }

    #[test]
    fn errors_of_the_last_minute_leave_out_older_ones() {
        let mut s = Series::default();
        let t0 = 1_700_000_000_000;
        // 3 errors in the first second, then 1 more every 10 s for 90 s.
        s.record(t0, reading(0, 3));
        for i in 1..=9 {
            s.record(t0 + i * 10_000, reading(0, 3 + i as u64));
        }
        // At t0 + 90 s, the newest sample at least 60 s old is t0 + 30 s (6 errors); 12 now.
        assert_eq!(s.latest().unwrap().errors_last_minute, 6);
        // Before a minute has passed, every error since the start counts.
        let mut young = Series::default();
        young.record(t0, reading(0, 3));
        young.record(t0 + 1_000, reading(0, 5));
        assert_eq!(young.latest().unwrap().errors_last_minute, 5);
    }

    #[test]
    fn the_series_keeps_five_minutes() {
        let mut s = Series::default();
        for i in 0..(KEPT_SAMPLES as i64 + 20) {
            s.record(i * 1000, reading(i as u64, 0));
        }
        let (all, last) = s.since(None);
        assert_eq!(all.len(), KEPT_SAMPLES);
        assert_eq!(last, KEPT_SAMPLES as u64 + 20);
        assert_eq!(all[0].seq, 21);
    }
}
