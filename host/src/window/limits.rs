//! [`StateLimits`]: the caps on one pipeline's window state, and the refusal they give.

/// Caps on the state of one pipeline, checked as an event is placed: an event that would
/// go over any of them is refused whole (nothing of it is stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateLimits {
    /// Most windows one event may belong to (checked before its windows are computed).
    pub max_windows_per_event: u64,
    /// Most live windows over all keys, counting the windows this event would create.
    pub max_open_windows: u64,
    /// Most events held over all keys.
    pub max_buffered_events: u64,
    /// Most estimated bytes held over all keys
    /// ([`StoredEvent::estimated_bytes`](super::StoredEvent::estimated_bytes)).
    pub max_buffered_bytes: u64,
}

impl StateLimits {
    /// No caps at all.
    pub const UNLIMITED: StateLimits = StateLimits {
        max_windows_per_event: u64::MAX,
        max_open_windows: u64::MAX,
        max_buffered_events: u64::MAX,
        max_buffered_bytes: u64::MAX,
    };

    /// Why an event belonging to `per_event` windows is refused, if it is: more windows than
    /// [`max_windows_per_event`](Self::max_windows_per_event).
    pub(super) fn over_windows_per_event(&self, per_event: u64) -> Option<String> {
        (per_event > self.max_windows_per_event).then(|| {
            format!(
                "limit reached: the event belongs to {per_event} windows, over max_windows_per_event {}",
                self.max_windows_per_event
            )
        })
    }
}

impl Default for StateLimits {
    fn default() -> Self {
        Self::UNLIMITED
    }
}
