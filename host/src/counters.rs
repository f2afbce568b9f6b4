//! What a pipeline counts: [`Counters`], the one set of counters its summary, its
//! checkpoint, the metrics, the console and the admin API's views all read.

use serde::{Deserialize, Serialize};

/// The counters of a pipeline since it started (carried on across a restart from a
/// checkpoint). Their order is part of the checkpoint format: add new ones at the end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Raw records received (CSV header lines excluded).
    pub events_read: u64,
    /// Records sent to the dead letter (malformed, or refused with a reason).
    pub malformed: u64,
    /// Events the plugin's filter dropped.
    pub filtered: u64,
    /// Events late for every window that contains them.
    pub late: u64,
    /// Windows fired (each firing of each key's window counts once).
    pub windows_fired: u64,
    /// Result rows written.
    pub rows_written: u64,
    /// Plugin calls that failed (error records written).
    pub plugin_errors: u64,
    /// Windows a failed call left without rows that a later version computed.
    pub windows_recomputed: u64,
}

impl Counters {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Counters) {
        self.events_read += other.events_read;
        self.malformed += other.malformed;
        self.filtered += other.filtered;
        self.late += other.late;
        self.windows_fired += other.windows_fired;
        self.rows_written += other.rows_written;
        self.plugin_errors += other.plugin_errors;
        self.windows_recomputed += other.windows_recomputed;
    }
}
