//! What a run did: [`Summary`], its counters and how it prints.

use crate::counters::Counters;

/// Counters of one run, printed as its summary.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    /// What the run counted (in the JSON summary, at the top level).
    #[serde(flatten)]
    pub counters: Counters,
    /// Wall time of the run, seconds.
    pub wall_seconds: f64,
    /// `events_read / wall_seconds`.
    pub events_per_second: f64,
    /// Worker threads that held the window state (1: the pipeline's own thread).
    pub parallelism: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "  events read     {:>12}", self.counters.events_read)?;
        writeln!(f, "  malformed       {:>12}", self.counters.malformed)?;
        writeln!(f, "  filtered        {:>12}", self.counters.filtered)?;
        writeln!(f, "  late            {:>12}", self.counters.late)?;
        writeln!(f, "  windows fired   {:>12}", self.counters.windows_fired)?;
        writeln!(f, "  rows written    {:>12}", self.counters.rows_written)?;
        writeln!(f, "  plugin errors   {:>12}", self.counters.plugin_errors)?;
        writeln!(f, "  parallelism     {:>12}", self.parallelism)?;
        writeln!(f, "  wall time       {:>10.3} s", self.wall_seconds)?;
        write!(
            f,
            "  throughput      {:>12.0} events/s",
            self.events_per_second
        )
    }
}
