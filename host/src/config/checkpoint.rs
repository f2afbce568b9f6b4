//! `[checkpoint]`: where and how often a pipeline writes its local checkpoint. Writing and
//! reading checkpoints is `checkpoint.rs`'s.

use std::path::PathBuf;

use serde::Deserialize;

use super::{Error, Millis, SourceConfig};

/// How often a checkpoint is written when `[checkpoint] every` is left out.
pub const DEFAULT_CHECKPOINT_EVERY: Millis = Millis(10_000);

/// `[checkpoint]`: window state, watermarks, source and sink positions, written atomically
/// to `dir` every `every` (and when the pipeline stops or finishes), and restored at start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Directory of the checkpoint, relative to the config file; created if missing. One
    /// pipeline per directory.
    pub dir: PathBuf,
    /// Interval between two checkpoints (default `"10s"`).
    #[serde(default = "default_every")]
    pub every: Millis,
}

fn default_every() -> Millis {
    DEFAULT_CHECKPOINT_EVERY
}

impl CheckpointConfig {
    /// Checks the interval and that the source can be read again from a position.
    pub(super) fn validate(&self, source: &SourceConfig) -> Result<(), Error> {
        if self.every.0 <= 0 {
            return Err(Error::invalid(
                "checkpoint.every",
                "must be positive",
                "use a duration such as \"10s\"",
            ));
        }
        if self.dir.as_os_str().is_empty() {
            return Err(Error::invalid(
                "checkpoint.dir",
                "is empty",
                "name a directory for this pipeline's checkpoint, e.g. \"checkpoints/my-pipeline\"",
            ));
        }
        if let SourceConfig::Stdin { .. } = source {
            return Err(Error::invalid(
                "checkpoint",
                "is set for a stdin source, which cannot be read again from a position",
                "use a file, generator or Kafka source, or remove [checkpoint]",
            ));
        }
        Ok(())
    }
}
