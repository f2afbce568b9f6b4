//! A sink's health as others read it while the pipeline's thread is busy in it: a sink that
//! retries a commit (a database down) blocks that thread, so the console and the metrics
//! cannot wait for the thread to tell them. The sink updates its [`Health`]; readers take
//! a copy ([`Health::retrying`], [`Health::retries`]).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A commit a sink is retrying now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Retrying {
    /// The sink, as it describes itself (`postgres table moving_averages`); never a URL.
    pub sink: String,
    /// Wall clock of the first failed attempt, epoch milliseconds.
    pub since_ms: i64,
    /// Attempts so far.
    pub attempts: u32,
    /// Why the last attempt failed (credentials never in it).
    pub error: String,
}

/// One sink's health, shared between the sink and whoever reports on it.
#[derive(Debug, Default)]
pub struct Health {
    retries: AtomicU64,
    retrying: Mutex<Option<Retrying>>,
}

impl Health {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Retrying>> {
        self.retrying.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Attempt `attempt` of a commit failed with `error`: it is tried again.
    pub fn failed(&self, sink: &str, attempt: u32, error: &str) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        let mut r = self.lock();
        let since_ms = r
            .as_ref()
            .map_or_else(|| chrono::Utc::now().timestamp_millis(), |r| r.since_ms);
        *r = Some(Retrying {
            sink: sink.to_string(),
            since_ms,
            attempts: attempt,
            error: error.to_string(),
        });
    }

    /// The commit went through, or the sink gave up (the pipeline fails and says why).
    pub fn settled(&self) {
        *self.lock() = None;
    }

    /// The commit being retried now, if any.
    pub fn retrying(&self) -> Option<Retrying> {
        self.lock().clone()
    }

    /// Failed commit attempts that were tried again, since the sink opened.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_keeps_its_start_and_ends_when_settled() {
        let h = Health::default();
        assert_eq!(h.retrying(), None);
        h.failed("postgres table t", 1, "connection refused");
        let first = h.retrying().expect("retrying");
        h.failed("postgres table t", 2, "the database is starting up");
        let second = h.retrying().expect("retrying");
        assert_eq!(second.since_ms, first.since_ms);
        assert_eq!(second.attempts, 2);
        assert_eq!(second.error, "the database is starting up");
        assert_eq!(h.retries(), 2);
        h.settled();
        assert_eq!(h.retrying(), None);
        assert_eq!(h.retries(), 2, "the count stays");
        h.failed("postgres table t", 1, "again");
        assert!(h.retrying().expect("retrying").since_ms >= first.since_ms);
    }
}
