//! How often a pipeline was quarantined lately, and so how long a new version waits before
//! it runs ([`Strikes`]): `weir serve`'s pipeline threads (`worker.rs`) record quarantines
//! and make fresh versions wait; nothing here runs a plugin.

use std::time::{Duration, Instant};

/// How many times a pipeline was quarantined lately, and so how long a new version waits
/// before it runs: quarantine follows the tenant's pipeline, not the component's hash, so
/// redeploying a spinning plugin with one byte changed does not buy a fresh start.
///
/// The first quarantine costs nothing more. After the n-th within [`Strikes::FORGET_AFTER`]
/// of the one before it, a new version deployed waits `BASE × 2^(n-1)`, at most
/// [`Strikes::MAX_WAIT`], before it reads input. A rollback to a version that was live
/// before does not wait.
#[derive(Debug, Clone, Default)]
pub struct Strikes {
    count: u32,
    last: Option<Instant>,
}

impl Strikes {
    /// The wait after a pipeline's second quarantine in a row.
    pub const BASE: Duration = Duration::from_secs(5);
    /// The longest wait.
    pub const MAX_WAIT: Duration = Duration::from_secs(300);
    /// A quarantine this long after the previous one counts as the first again.
    pub const FORGET_AFTER: Duration = Duration::from_secs(600);

    /// Records a quarantine at `now`.
    pub fn quarantined(&mut self, now: Instant) {
        let recent = self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < Self::FORGET_AFTER);
        self.count = if recent {
            self.count.saturating_add(1)
        } else {
            1
        };
        self.last = Some(now);
    }

    /// Quarantines counted (within [`Strikes::FORGET_AFTER`] of each other).
    pub fn count(&self) -> u32 {
        self.count
    }

    /// How long a version deployed at `now` waits before it runs.
    pub fn wait(&self, now: Instant) -> Duration {
        let recent = self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < Self::FORGET_AFTER);
        if !recent || self.count < 2 {
            return Duration::ZERO;
        }
        let doublings = (self.count - 2).min(16);
        Self::BASE
            .saturating_mul(1 << doublings)
            .min(Self::MAX_WAIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn strikes_double_the_wait_and_are_forgotten_after_a_quiet_spell() {
        let t0 = Instant::now();
        let mut s = Strikes::default();
        assert_eq!(s.wait(t0), Duration::ZERO);
        s.quarantined(t0);
        // One quarantine: the fix runs at once.
        assert_eq!(s.wait(t0), Duration::ZERO);
        s.quarantined(t0 + secs(10.0));
        assert_eq!(s.wait(t0 + secs(10.0)), Strikes::BASE);
        s.quarantined(t0 + secs(20.0));
        assert_eq!(s.wait(t0 + secs(20.0)), Strikes::BASE * 2);
        for i in 0..20 {
            s.quarantined(t0 + secs(30.0 + f64::from(i)));
        }
        assert_eq!(s.wait(t0 + secs(50.0)), Strikes::MAX_WAIT);
        // Ten quiet minutes later the next quarantine is a first one again.
        let later = t0 + secs(50.0) + Strikes::FORGET_AFTER;
        assert_eq!(s.wait(later), Duration::ZERO);
        s.quarantined(later);
        assert_eq!(s.count(), 1);
        assert_eq!(s.wait(later), Duration::ZERO);
    }
}
