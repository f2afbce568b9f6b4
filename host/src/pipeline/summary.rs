//! What a run did: [`Summary`], its counters and how it prints.

/// Counters of one run, printed as its summary.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Raw records received (CSV header lines excluded).
    pub events_read: u64,
    /// Records that failed to decode (sent to the dead-letter sink).
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
    /// Wall time of the run, seconds.
    pub wall_seconds: f64,
    /// `events_read / wall_seconds`.
    pub events_per_second: f64,
    /// Worker threads that held the window state (1: the pipeline's own thread).
    pub parallelism: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "  events read     {:>12}", self.events_read)?;
        writeln!(f, "  malformed       {:>12}", self.malformed)?;
        writeln!(f, "  filtered        {:>12}", self.filtered)?;
        writeln!(f, "  late            {:>12}", self.late)?;
        writeln!(f, "  windows fired   {:>12}", self.windows_fired)?;
        writeln!(f, "  rows written    {:>12}", self.rows_written)?;
        writeln!(f, "  plugin errors   {:>12}", self.plugin_errors)?;
        writeln!(f, "  parallelism     {:>12}", self.parallelism)?;
        writeln!(f, "  wall time       {:>10.3} s", self.wall_seconds)?;
        write!(
            f,
            "  throughput      {:>12.0} events/s",
            self.events_per_second
        )
    }
}
