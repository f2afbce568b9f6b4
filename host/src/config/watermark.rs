//! `[watermark]` and `[emit]`: when event time counts as complete, and when windows emit
//! their rows. The watermark itself is tracked in `time/watermark.rs`.

use serde::Deserialize;

use super::{Error, Millis, check_duration};

/// `[watermark]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatermarkConfig {
    /// How far behind the largest event time seen the watermark trails (default 0).
    #[serde(default)]
    pub delay: Millis,
    /// A partition with no data for this long stops holding back the watermark (default: never).
    #[serde(default)]
    pub idle_timeout: Option<Millis>,
    /// How far ahead an event may be (default `7d`): of the pipeline watermark for bounded
    /// sources (files, the generator), of wall clock for live ones (stdin). An event further
    /// ahead goes to the dead letter and does not move the watermark. Until a bounded source
    /// has a watermark (before its first event), wall clock stands in.
    #[serde(default = "default_max_future")]
    pub max_future: Millis,
}

impl Default for WatermarkConfig {
    fn default() -> Self {
        WatermarkConfig {
            delay: Millis(0),
            idle_timeout: None,
            max_future: default_max_future(),
        }
    }
}

/// Default of `watermark.max_future`: 7 days.
pub const DEFAULT_MAX_FUTURE: Millis = Millis(7 * 86_400_000);

fn default_max_future() -> Millis {
    DEFAULT_MAX_FUTURE
}

/// `[emit]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmitConfig {
    /// `append` (one final row set per window) or `update` (also early firings).
    #[serde(default)]
    pub mode: EmitMode,
    /// Processing-time interval of early firings in `update` mode (default `1s`).
    #[serde(default = "default_emit_every")]
    pub every: Millis,
}

impl Default for EmitConfig {
    fn default() -> Self {
        EmitConfig {
            mode: EmitMode::Append,
            every: default_emit_every(),
        }
    }
}

fn default_emit_every() -> Millis {
    Millis(1000)
}

/// Emission mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmitMode {
    /// Rows once per window, when the watermark passes its end.
    #[default]
    Append,
    /// Also early rows every `emit.every` for windows that changed.
    Update,
}

impl WatermarkConfig {
    /// Both durations at most the longest supported one; `max_future` positive.
    pub(super) fn validate(&self) -> Result<(), Error> {
        check_duration("watermark.delay", self.delay)?;
        check_duration("watermark.max_future", self.max_future)?;
        if self.max_future.0 <= 0 {
            return Err(Error::invalid(
                "watermark.max_future",
                "must be positive",
                "use a duration such as \"7d\" (events further ahead of the watermark go to the dead letter)",
            ));
        }
        Ok(())
    }
}

impl EmitConfig {
    /// `every` positive in update mode.
    pub(super) fn validate(&self) -> Result<(), Error> {
        if self.mode == EmitMode::Update && self.every.0 <= 0 {
            return Err(Error::invalid(
                "emit.every",
                "must be positive in update mode",
                "use a duration such as \"1s\"",
            ));
        }
        Ok(())
    }
}
