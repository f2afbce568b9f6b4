//! `[plugin]` and its `[plugin.limits]` (also a host's `[tenants.limits]`): the tenant's
//! component, its params, and the limits it runs under, resolved into groups by consumer:
//! the sandbox's ([`SandboxLimits`]), the window state's ([`StateLimits`]), input framing's
//! and quarantine's. Enforcing them is `plugin/`'s, `window/`'s and `source/`'s.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{ByteSize, Millis};
use crate::window::StateLimits;

/// `[plugin]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Path of the `.wasm` component, relative to the config file.
    pub path: PathBuf,
    /// Passed to the plugin's `configure`.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Resource limits for this plugin's instance.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Under `weir serve`: whether a deploy or rollback may change the output columns when
    /// the result sink is CSV, whose header (or position of each value) is fixed (default
    /// false: such a deploy is refused, listing the difference). When true, a CSV file sink
    /// is set aside (renamed with the time of the change) and a new file is started with
    /// the new header; CSV on stdout or stderr gets a new header line.
    #[serde(default)]
    pub allow_output_change: bool,
    /// Under `weir serve`: how many windows whose plugin call failed keep their events, so
    /// that the next version deployed or rolled back to computes them (default 1 000; 0
    /// keeps none). The oldest go first, and past [`PluginConfig::keep_failed_events`]
    /// events in all; a window no longer kept is named by its error record only.
    #[serde(default = "default_keep_failed_windows")]
    pub keep_failed_windows: usize,
    /// Under `weir serve`: most events the kept failed windows hold together (default
    /// 100 000).
    #[serde(default = "default_keep_failed_events")]
    pub keep_failed_events: usize,
}

fn default_keep_failed_windows() -> usize {
    1_000
}

fn default_keep_failed_events() -> usize {
    100_000
}

/// `[plugin.limits]` of a pipeline, or `[tenants.limits]` of a host: resource limits.
///
/// Every key is optional. In `weir serve` a tenant's limits are ceilings: a pipeline may ask
/// for less, never more. Unset keys take the defaults of [`Limits`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Guest memory cap per instance: all linear memories of its Store together (default
    /// `64MiB`).
    pub memory: Option<ByteSize>,
    /// CPU deadline per plugin call, enforced by epoch interruption in 1 ms ticks
    /// (default `1s`).
    pub deadline: Option<Millis>,
    /// Fuel per call (roughly, instructions); off by default because it slows guests.
    pub fuel: Option<u64>,
    /// Most rows one `aggregate` call may return (default 10 000).
    pub max_rows_per_call: Option<u64>,
    /// Largest result row, in bytes of its JSON encoding (default `64KiB`).
    pub max_row_bytes: Option<ByteSize>,
    /// Most windows open at once over all keys of a pipeline (default 1 000 000).
    pub max_open_windows: Option<u64>,
    /// Most events held in window state at once (default 10 000 000).
    pub max_buffered_events: Option<u64>,
    /// Plugin failures in a row after which `weir serve` quarantines the pipeline
    /// (default 10; `weir run` never quarantines).
    pub quarantine_after: Option<u32>,
    /// Lines per second of guest stdout/stderr that reach the tenant's log (default 10).
    pub log_lines_per_second: Option<u32>,
    /// Most windows one event may belong to: `size / slide` (sliding) or `size / step`
    /// (cumulative), checked when the pipeline is built (default 10 000).
    pub max_windows_per_event: Option<u64>,
    /// Largest input record, in bytes; a longer record goes to the dead letter, cut short
    /// (default `1MiB`).
    pub max_record_bytes: Option<ByteSize>,
    /// Most bytes of events held in window state at once, estimated from their values
    /// (default `1GiB`); like `max_buffered_events`, an event over it goes to the dead letter.
    pub max_buffered_bytes: Option<ByteSize>,
}

/// Resolved limits, every one with a value, grouped by the part of the host that enforces
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// What one plugin instance may use: the wasm runtime enforces these.
    pub sandbox: SandboxLimits,
    /// What a pipeline's window state may hold: the window operator enforces these.
    pub state: StateLimits,
    /// Plugin failures in a row before `weir serve` quarantines the pipeline (at least 1).
    pub quarantine_after: u32,
    /// Largest input record, bytes (at least 1): the source enforces it.
    pub max_record_bytes: u64,
}

/// The sandbox's share of [`Limits`]: what one plugin instance may use per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxLimits {
    /// Guest memory cap (all memories of the Store together), bytes.
    pub memory_bytes: u64,
    /// CPU deadline per call, milliseconds.
    pub deadline_ms: u64,
    /// Fuel per call, if metering is on.
    pub fuel: Option<u64>,
    /// Most rows per `aggregate` call.
    pub max_rows_per_call: u64,
    /// Largest row, bytes.
    pub max_row_bytes: u64,
    /// Guest log lines per second.
    pub log_lines_per_second: u32,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits {
            memory_bytes: 64 << 20,
            deadline_ms: 1000,
            fuel: None,
            max_rows_per_call: 10_000,
            max_row_bytes: 64 << 10,
            log_lines_per_second: 10,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            sandbox: SandboxLimits::default(),
            state: StateLimits {
                max_windows_per_event: 10_000,
                max_open_windows: 1_000_000,
                max_buffered_events: 10_000_000,
                max_buffered_bytes: 1 << 30,
            },
            quarantine_after: 10,
            max_record_bytes: 1 << 20,
        }
    }
}

impl LimitsConfig {
    /// Resolves these limits under an optional ceiling (a tenant's limits): each key takes
    /// the smaller of the two values that are set, else the default.
    pub fn resolve(&self, ceiling: Option<&LimitsConfig>) -> Limits {
        fn pick<T: Ord + Copy>(own: Option<T>, cap: Option<T>, default: T) -> T {
            match (own, cap) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => default,
            }
        }
        let c = ceiling.cloned().unwrap_or_default();
        let d = Limits::default();
        let bytes = |b: Option<ByteSize>| b.map(|b| b.0);
        let ms = |m: Option<Millis>| m.map(|m| m.0.max(1) as u64);
        Limits {
            sandbox: SandboxLimits {
                memory_bytes: pick(bytes(self.memory), bytes(c.memory), d.sandbox.memory_bytes),
                deadline_ms: pick(ms(self.deadline), ms(c.deadline), d.sandbox.deadline_ms),
                fuel: match (self.fuel, c.fuel) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                },
                max_rows_per_call: pick(
                    self.max_rows_per_call,
                    c.max_rows_per_call,
                    d.sandbox.max_rows_per_call,
                ),
                max_row_bytes: pick(
                    bytes(self.max_row_bytes),
                    bytes(c.max_row_bytes),
                    d.sandbox.max_row_bytes,
                ),
                log_lines_per_second: pick(
                    self.log_lines_per_second,
                    c.log_lines_per_second,
                    d.sandbox.log_lines_per_second,
                ),
            },
            state: StateLimits {
                max_windows_per_event: pick(
                    self.max_windows_per_event,
                    c.max_windows_per_event,
                    d.state.max_windows_per_event,
                )
                .max(1),
                max_open_windows: pick(
                    self.max_open_windows,
                    c.max_open_windows,
                    d.state.max_open_windows,
                ),
                max_buffered_events: pick(
                    self.max_buffered_events,
                    c.max_buffered_events,
                    d.state.max_buffered_events,
                ),
                max_buffered_bytes: pick(
                    bytes(self.max_buffered_bytes),
                    bytes(c.max_buffered_bytes),
                    d.state.max_buffered_bytes,
                ),
            },
            quarantine_after: pick(
                self.quarantine_after,
                c.quarantine_after,
                d.quarantine_after,
            )
            .max(1),
            max_record_bytes: pick(
                bytes(self.max_record_bytes),
                bytes(c.max_record_bytes),
                d.max_record_bytes,
            )
            .max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_land_in_their_groups_and_a_ceiling_caps_them() {
        let own: LimitsConfig = toml::from_str(
            "memory = \"32MiB\"\ndeadline = \"200ms\"\nmax_open_windows = 50\nquarantine_after = 4\nmax_record_bytes = 100\nmax_buffered_bytes = \"2KiB\"",
        )
        .expect("limits");
        let tenant: LimitsConfig = toml::from_str(
            "memory = \"16MiB\"\nmax_windows_per_event = 7\nlog_lines_per_second = 3",
        )
        .expect("limits");
        let l = own.resolve(Some(&tenant));
        // The smaller of the two where both are set, the one set, else the default.
        assert_eq!(
            l.sandbox,
            SandboxLimits {
                memory_bytes: 16 << 20,
                deadline_ms: 200,
                fuel: None,
                max_rows_per_call: 10_000,
                max_row_bytes: 64 << 10,
                log_lines_per_second: 3,
            }
        );
        assert_eq!(
            l.state,
            StateLimits {
                max_windows_per_event: 7,
                max_open_windows: 50,
                max_buffered_events: 10_000_000,
                max_buffered_bytes: 2048,
            }
        );
        assert_eq!((l.quarantine_after, l.max_record_bytes), (4, 100));
        assert_eq!(LimitsConfig::default().resolve(None), Limits::default());
    }
}
