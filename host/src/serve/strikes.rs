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
    /// Whether the pipeline was quarantined after its last batch (a new quarantine is a
    /// strike).
    was_quarantined: bool,
    /// A fresh version waiting out the strikes: it reads no input before then.
    waits_until: Option<Instant>,
}

impl Strikes {
    /// The wait after a pipeline's second quarantine in a row.
    pub const BASE: Duration = Duration::from_secs(5);
    /// The longest wait.
    pub const MAX_WAIT: Duration = Duration::from_secs(300);
    /// A quarantine this long after the previous one counts as the first again.
    pub const FORGET_AFTER: Duration = Duration::from_secs(600);

    /// After a batch: a pipeline that is `quarantined` now and was not before takes a strike.
    pub fn observe(&mut self, quarantined: bool, now: Instant) {
        if quarantined && !self.was_quarantined {
            self.quarantined(now);
        }
        self.was_quarantined = quarantined;
    }

    /// A new version went live (which lifts any quarantine): a `fresh` one waits out the
    /// strikes, a rollback does not. Returns the wait.
    pub fn new_version(&mut self, fresh: bool, now: Instant) -> Duration {
        self.was_quarantined = false;
        let wait = if fresh {
            self.wait(now)
        } else {
            Duration::ZERO
        };
        self.waits_until = (!wait.is_zero()).then(|| now + wait);
        wait
    }

    /// Until when the live version still waits, if it does at `now`.
    pub fn waits_until(&self, now: Instant) -> Option<Instant> {
        self.waits_until.filter(|t| *t > now)
    }

    /// Whether a fresh version's wait has ended by `now`: true once, the first time it is
    /// asked after the end.
    pub fn wait_ended(&mut self, now: Instant) -> bool {
        match self.waits_until {
            Some(t) if t <= now => {
                self.waits_until = None;
                true
            }
            _ => false,
        }
    }

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

    #[test]
    fn a_quarantine_is_one_strike_however_many_batches_it_lasts_and_a_fresh_version_waits() {
        let t0 = Instant::now();
        let mut s = Strikes::default();
        for i in 0..5 {
            s.observe(true, t0 + secs(f64::from(i)));
        }
        assert_eq!(s.count(), 1);
        // A rollback never waits; a fresh version after the second strike waits BASE.
        assert_eq!(s.new_version(true, t0 + secs(5.0)), Duration::ZERO);
        s.observe(true, t0 + secs(6.0));
        assert_eq!(s.count(), 2);
        assert_eq!(s.new_version(false, t0 + secs(7.0)), Duration::ZERO);
        assert_eq!(s.waits_until(t0 + secs(7.0)), None);
        let at = t0 + secs(8.0);
        assert_eq!(s.new_version(true, at), Strikes::BASE);
        assert_eq!(s.waits_until(at), Some(at + Strikes::BASE));
        assert!(!s.wait_ended(at + secs(1.0)));
        assert!(s.wait_ended(at + Strikes::BASE));
        assert!(!s.wait_ended(at + Strikes::BASE + secs(1.0)));
        assert_eq!(s.waits_until(at + Strikes::BASE), None);
    }
}
