//! What a pipeline's plugin calls cost, for the host's metrics: the wall time of each call
//! (a histogram), the CPU time the calling thread spent in it (a counter) and the instance's
//! linear memory after it (a gauge), handles into the host's Prometheus families. Measured around the guest call only: instantiating
//! a fresh Store after a trap is not counted.

use std::sync::atomic::AtomicU64;
use std::time::Instant;

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
        self.latency.observe(started.wall.elapsed().as_secs_f64());
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

#[cfg(test)]
mod tests {
    use super::*;

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
