//! What a pipeline's plugin calls cost, for the host's metrics: the wall time of each call
//! (a histogram), the CPU time the calling thread spent in it (a counter) and the instance's
//! linear memory after it (a gauge), handles into the host's Prometheus families. Measured around the guest call only: instantiating
//! a fresh Store after a trap is not counted.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hdrhistogram::Histogram as Hdr;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

/// Where one pipeline's plugin calls are measured.
#[derive(Clone, Debug)]
pub struct CallMeter {
    /// Seconds per call.
    pub latency: Histogram,
    /// CPU seconds of the calling thread inside calls.
    pub cpu_seconds: Counter<f64, AtomicU64>,
    /// Bytes of linear memory the instance holds after its last call.
    pub memory_bytes: Gauge,
    /// The calls since the console's last sample, for their exact quantiles.
    pub recent: RecentCalls,
}

/// The wall times of the calls since they were last taken ([`RecentCalls::take`]), with
/// two significant digits from 1 ns to 100 s: the console's p50 and p99 per second, which
/// the Prometheus histogram's buckets (4× apart) are too coarse for.
#[derive(Clone, Debug)]
pub struct RecentCalls(Arc<Mutex<Hdr<u64>>>);

impl Default for RecentCalls {
    fn default() -> Self {
        RecentCalls(Arc::new(Mutex::new(call_histogram())))
    }
}

/// An empty histogram of call wall times in nanoseconds: 1 ns to 100 s, two significant
/// digits.
pub fn call_histogram() -> Hdr<u64> {
    // The bounds are constants that hdrhistogram accepts.
    Hdr::new_with_bounds(1, 100_000_000_000, 2).unwrap_or_else(|_| {
        unreachable!("1 ns to 100 s with 2 significant digits are valid bounds")
    })
}

impl RecentCalls {
    fn lock(&self) -> std::sync::MutexGuard<'_, Hdr<u64>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes one call of `seconds`.
    pub fn record(&self, seconds: f64) {
        self.lock().saturating_record((seconds * 1e9) as u64);
    }

    /// The count, median and 99th percentile of the calls noted since the last take, which
    /// are then forgotten; `None` if there were none.
    pub fn take(&self) -> Option<CallQuantiles> {
        let mut hdr = self.lock();
        if hdr.is_empty() {
            return None;
        }
        let q = CallQuantiles {
            calls: hdr.len(),
            p50_seconds: hdr.value_at_quantile(0.5) as f64 / 1e9,
            p99_seconds: hdr.value_at_quantile(0.99) as f64 / 1e9,
        };
        hdr.reset();
        Some(q)
    }
}

/// A call being measured: started by [`CallMeter::start`], ended by [`Started::stop`].
pub struct Started {
    wall: Instant,
    cpu: f64,
}

impl CallMeter {
    /// Notes the wall clock and the thread's CPU time before a call.
    pub fn start() -> Started {
        Started {
            wall: Instant::now(),
            cpu: thread_cpu_seconds(),
        }
    }

    /// Records the call that began at `started`, after which the instance holds
    /// `memory_bytes` of linear memory.
    pub fn record(&self, started: Started, memory_bytes: usize) {
        self.memory_bytes
            .set(i64::try_from(memory_bytes).unwrap_or(i64::MAX));
        let wall = started.wall.elapsed().as_secs_f64();
        self.latency.observe(wall);
        self.recent.record(wall);
        let cpu = thread_cpu_seconds() - started.cpu;
        if cpu > 0.0 {
            self.cpu_seconds.inc_by(cpu);
        }
    }
}

/// CPU time the calling thread has used, in seconds (`CLOCK_THREAD_CPUTIME_ID`); 0 if the
/// clock cannot be read.
pub fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the call only writes it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// The quantiles of the plugin calls made since the previous reading.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CallQuantiles {
    /// Calls made.
    pub calls: u64,
    /// Median wall time of a call, seconds.
    pub p50_seconds: f64,
    /// 99th percentile, seconds.
    pub p99_seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_calls_give_their_quantiles_once() {
        let r = RecentCalls::default();
        assert_eq!(r.take(), None);
        // 98 calls of 100 µs, 2 of 5 ms: the median is 100 µs, the 99th percentile 5 ms.
        for _ in 0..98 {
            r.record(100e-6);
        }
        r.record(5e-3);
        r.record(5e-3);
        let q = r.take().unwrap();
        assert_eq!(q.calls, 100);
        // Two significant digits: within 1 %.
        assert!((q.p50_seconds - 100e-6).abs() < 1e-6, "{q:?}");
        assert!((q.p99_seconds - 5e-3).abs() < 5e-5, "{q:?}");
        assert_eq!(r.take(), None);
    }

    #[test]
    fn thread_cpu_time_grows_with_work_on_the_thread() {
        let before = thread_cpu_seconds();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        std::hint::black_box(x);
        assert!(thread_cpu_seconds() > before);
    }
}
