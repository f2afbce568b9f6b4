//! What one tenant's plugins may take of the host's CPU over time, beyond the per-call
//! deadline: a [`CpuBudget`] shared by all of a tenant's pipelines (`cpu` in its
//! `[[tenant]]`), and each pipeline's [`CpuShare`] of it, charged from the CPU its plugin
//! calls used. The pipeline asks it before each call of a firing, `weir serve`'s pipeline
//! threads between two batches; nothing here runs a plugin.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;

/// The longest a pipeline is held back for CPU it used: a debt deeper than this is
/// forgiven, so that a held Kafka consumer is polled long before `max.poll.interval.ms`.
pub const MAX_THROTTLE: Duration = Duration::from_secs(60);

/// A token bucket of plugin CPU seconds, refilled at `cores` seconds per wall-clock
/// second and holding at most one second's refill: the tenant's pipelines charge what their
/// plugin calls used after each batch, and wait while the bucket is in debt. Over any
/// stretch longer than a few seconds, the tenant's plugins use at most `cores` cores on
/// average, however many pipelines it has and whatever their deadlines.
#[derive(Debug)]
pub struct CpuBudget {
    cores: f64,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// CPU seconds available; negative: owed.
    tokens: f64,
    refilled: Instant,
}

impl CpuBudget {
    /// A budget of `cores` cores (positive), full.
    pub fn new(cores: f64) -> Self {
        CpuBudget {
            cores,
            bucket: Mutex::new(Bucket {
                tokens: cores,
                refilled: Instant::now(),
            }),
        }
    }

    /// The cores it allows.
    pub fn cores(&self) -> f64 {
        self.cores
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(b.refilled).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.cores).min(self.cores);
        b.refilled = now;
    }

    /// Charges `cpu_seconds` used at `now`; returns how long the caller must now wait
    /// before its next batch (none while the bucket is not in debt), at most
    /// [`MAX_THROTTLE`].
    pub fn charge(&self, cpu_seconds: f64, now: Instant) -> Option<Duration> {
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        self.refill(&mut b, now);
        if cpu_seconds.is_finite() && cpu_seconds > 0.0 {
            b.tokens -= cpu_seconds;
        }
        let floor = -MAX_THROTTLE.as_secs_f64() * self.cores;
        b.tokens = b.tokens.max(floor);
        (b.tokens < 0.0).then(|| Duration::from_secs_f64(-b.tokens / self.cores))
    }

    /// How long a pipeline must still wait at `now` (none: not in debt).
    pub fn wait(&self, now: Instant) -> Option<Duration> {
        self.charge(0.0, now)
    }
}

/// One pipeline's share of its tenant's [`CpuBudget`]: charges what its plugin calls used
/// since the last look, read from the pipeline's `weir_plugin_cpu_seconds` counter. Asked
/// between two batches by the pipeline thread and before each plugin call of a firing (so
/// one batch cannot run far past the budget: the rest of its windows stay pending).
pub struct CpuShare {
    budget: Arc<CpuBudget>,
    cpu_seconds: Counter<f64, AtomicU64>,
    seen: Mutex<f64>,
}

impl CpuShare {
    /// A share of `budget` charged from `cpu_seconds`.
    pub fn new(budget: Arc<CpuBudget>, cpu_seconds: Counter<f64, AtomicU64>) -> Self {
        let seen = Mutex::new(cpu_seconds.get());
        CpuShare {
            budget,
            cpu_seconds,
            seen,
        }
    }

    /// Charges what was used since the last look; how long to wait now (none: not in debt).
    pub fn charge(&self) -> Option<Duration> {
        let cpu = self.cpu_seconds.get();
        let used = {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            let used = cpu - *seen;
            *seen = cpu;
            used
        };
        self.budget.charge(used, Instant::now())
    }
}

impl std::fmt::Debug for CpuShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CpuShare({} cores)", self.budget.cores())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn a_budget_makes_its_users_wait_for_what_they_used_beyond_their_cores() {
        let t0 = Instant::now();
        let b = CpuBudget::new(0.5);
        // A full bucket holds one second's refill: 0.5 s of CPU goes free.
        assert_eq!(b.charge(0.5, t0), None);
        // One more second of CPU at once: owed 1 s, repaid at 0.5 core → wait 2 s.
        let wait = b.charge(1.0, t0).expect("in debt");
        assert!((wait.as_secs_f64() - 2.0).abs() < 1e-6, "{wait:?}");
        // After 1 s of wall clock, half is repaid.
        let wait = b.wait(t0 + secs(1.0)).expect("still in debt");
        assert!((wait.as_secs_f64() - 1.0).abs() < 1e-6, "{wait:?}");
        assert_eq!(b.wait(t0 + secs(2.0)), None);
    }

    #[test]
    fn over_a_long_run_a_spinning_user_gets_its_cores_and_no_more() {
        // A pipeline that burns 0.1 s of CPU per batch and obeys every wait, for 100 s of
        // simulated wall clock, under a 0.25-core budget.
        let b = CpuBudget::new(0.25);
        let t0 = Instant::now();
        let mut now = t0;
        let mut used = 0.0;
        while now < t0 + secs(100.0) {
            now += secs(0.1);
            used += 0.1;
            if let Some(w) = b.charge(0.1, now) {
                now += w;
            }
        }
        let share = used / now.duration_since(t0).as_secs_f64();
        // 0.25 cores, plus the one-second burst spread over the run.
        assert!((0.24..=0.26).contains(&share), "{share}");
    }

    #[test]
    fn debt_is_capped_at_the_longest_wait() {
        let b = CpuBudget::new(1.0);
        let now = Instant::now();
        assert_eq!(b.charge(1e6, now), Some(MAX_THROTTLE));
    }
}
