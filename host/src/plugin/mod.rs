//! Plugins: loading tenant components, calling them under limits, and checking what they
//! declare against the pipeline.
//!
//! Owns the [`Plugin`] trait the pipeline calls, its wasm implementation (the wasmtime
//! engine, per-instance Stores, both WIT versions the host loads) and its native one (the
//! example plugins linked into the host, for benchmarks), and plugin errors. It does not
//! know about windows or sinks: the pipeline hands it batches of (key, window) groups or an
//! incremental plan and gets rows, states or an [`Error`] back.

//!
//! Files, one owner each:
//! - `mod.rs`: the [`Plugin`] trait, [`Group`]/[`Plan`]/[`Row`], [`Error`], and the checks of
//!   what a plugin declares and returns;
//! - `runtime.rs`: the [`Runtime`]: the wasmtime engine, linker and epoch ticker, loading a
//!   component and compiling it under a timeout;
//! - `load.rs`: what a component must be before it is compiled ([`LoadLimits`], the world
//!   and code-size parse, compile slots);
//! - `cache.rs`: compiled code kept in memory (LRU by bytes) and as artifacts on disk;
//! - `sandbox.rs`: what a guest may use: WASI with no capabilities, the Store's caps;
//! - `instance.rs`: a [`PluginInstance`]'s lifecycle (instantiate, arm, call, classify a
//!   failure), [`PluginCode`], [`Owner`], [`PluginInfo`];
//! - `abi.rs`: the [`Plugin`] calls across the WIT boundary, contracts 0.2.0 and 0.1.0;
//! - `bindings.rs`, `convert.rs`: the generated WIT bindings, the batch and value conversions;
//! - `logs.rs`, `meter.rs`, `budget.rs`: guest output, call metrics, tenants' CPU budgets;
//! - `native.rs`: the example plugins linked into the host.

mod abi;
mod bindings;
mod budget;
mod cache;
mod convert;
mod instance;
mod load;
mod logs;
mod meter;
pub mod native;
mod runtime;
mod sandbox;

pub use budget::{CpuBudget, CpuShare, MAX_THROTTLE};
pub use convert::{BatchBuilder, Column, ColumnData, Columns, OutputRow};
pub use instance::{Owner, PluginCode, PluginInfo, PluginInstance};
pub use load::{LoadLimits, debug_build};
pub use logs::{GuestLog, LogBudget, PanicCapture};
pub use meter::{CallMeter, CallQuantiles, RecentCalls, call_histogram, thread_cpu_seconds};
pub use runtime::Runtime;

use crate::config::{Limits, SandboxLimits};
use crate::value::{FieldType, Value};
use crate::window::Window;

/// One key's window in a batched whole-window call: the events `[offset, offset + len)`
/// of the call's batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The key's values, one per key field.
    pub key: Vec<Value>,
    /// The window.
    pub window: Window,
    /// Index of the first event in the batch.
    pub offset: u32,
    /// Number of events.
    pub len: u32,
}

/// How one slot of an incremental [`Plan`] gets its state (WIT `slot`).
#[derive(Debug, Clone, PartialEq)]
pub enum Slot {
    /// A state the host holds, as an earlier step returned it.
    Held(std::sync::Arc<[u8]>),
    /// `init`, then the batch's events `[offset, offset + len)` added.
    Fresh {
        /// First event.
        offset: u32,
        /// Number of events.
        len: u32,
    },
    /// An earlier slot's state with the batch's events `[offset, offset + len)` added.
    Add {
        /// The earlier slot.
        slot: u32,
        /// First event.
        offset: u32,
        /// Number of events.
        len: u32,
    },
    /// Two earlier slots merged; the first covers the earlier events.
    Merge(u32, u32),
}

/// A window to finish from a slot's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    /// The key's values.
    pub key: Vec<Value>,
    /// The window.
    pub window: Window,
    /// The slot whose state covers exactly the window's events.
    pub slot: u32,
}

/// One incremental step: slots evaluated in order, the states the host keeps, and the
/// windows finished.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// The slots.
    pub slots: Vec<Slot>,
    /// Slots whose states are returned, in order.
    pub keep: Vec<u32>,
    /// Windows to finish.
    pub finish: Vec<Finish>,
}

/// A result row, positional: one value per declared output.
pub type Row = Vec<Value>;

/// The rows of one group or finished window, or why that one failed.
pub type GroupResult = Result<Vec<Row>, Error>;

/// What a step produced.
#[derive(Debug, Clone, Default)]
pub struct PlanOutput {
    /// One state per [`Plan::keep`] entry.
    pub states: Vec<std::sync::Arc<[u8]>>,
    /// One result per [`Plan::finish`] entry.
    pub rows: Vec<GroupResult>,
}

/// A configured plugin as the pipeline calls it: the sandboxed wasm instance
/// ([`PluginInstance`]) or the same plugin compiled into the host ([`native`]).
///
/// Calls take their events from [`Plugin::batch`], filled by the caller. An `Err` from a
/// call means the whole call failed (a trap, a deadline): the caller records one failure
/// for every window of the call. An `Err` inside a [`GroupResult`] fails that window only.
pub trait Plugin: Send {
    /// What the plugin declared.
    fn info(&self) -> &PluginInfo;
    /// The limits it was created under: it enforces the sandbox group; the pipeline reads
    /// the others back from it when a new version takes over.
    fn limits(&self) -> &Limits;
    /// `<name>@<version>+<code id>`: the version id result rows carry.
    fn version_id(&self) -> String;
    /// How many times the instance was rebuilt after a failure.
    fn restarts(&self) -> u64;
    /// The batch builder for the next call, empty, laid out for the plugin's inputs.
    fn batch(&mut self) -> &mut BatchBuilder;
    /// Filters the events in the batch: one flag per event.
    fn filter(&mut self) -> Result<Vec<bool>, Error>;
    /// Whole-window: one result per group, over the events in the batch.
    fn aggregate(&mut self, groups: &[Group]) -> Result<Vec<GroupResult>, Error>;
    /// Incremental: evaluates a plan over the events in the batch.
    fn step(&mut self, plan: &Plan) -> Result<PlanOutput, Error>;
    /// A new instance of the same code, configuration and limits, with no state of this
    /// one: a worker thread's own copy (`parallelism`).
    fn fork(&self) -> Result<Box<dyn Plugin>, Error>;
}

/// Checks the rows a call returned for one window against the limits and the declared
/// outputs: at most `max_rows_per_call` rows, each of exactly `outputs` values and at most
/// `max_row_bytes` (strings by length, other values 8 bytes).
pub(crate) fn check_rows(
    plugin: &str,
    call: &'static str,
    outputs: usize,
    limits: &SandboxLimits,
    rows: &[Row],
) -> Result<(), Error> {
    let bad = |message: String| Error::BadOutput {
        plugin: plugin.to_string(),
        call,
        message,
    };
    if rows.len() as u64 > limits.max_rows_per_call {
        return Err(bad(format!(
            "returned {} rows; the limit is {} per call (max_rows_per_call)",
            rows.len(),
            limits.max_rows_per_call
        )));
    }
    for row in rows {
        if row.len() != outputs {
            return Err(bad(format!(
                "returned a row of {} values for {outputs} declared outputs",
                row.len()
            )));
        }
        let size: u64 = row
            .iter()
            .map(|v| match v {
                Value::Str(s) => s.len() as u64,
                _ => 8,
            })
            .sum();
        if size > limits.max_row_bytes {
            return Err(bad(format!(
                "returned a row of {size} bytes; the limit is {} (max_row_bytes)",
                limits.max_row_bytes
            )));
        }
    }
    Ok(())
}

/// The most bytes of a plugin's own text (an error message, a hint, a trap's message) kept
/// in an [`Error`]: 4 KiB. Longer text is cut on a character boundary and ends with a
/// marker saying how many bytes were cut, before it reaches an error record, the admin API
/// or a log line.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// Cuts `text` to at most [`MAX_MESSAGE_BYTES`] (plus the marker), on a character boundary.
pub fn bounded_message(mut text: String) -> String {
    if text.len() <= MAX_MESSAGE_BYTES {
        return text;
    }
    let mut end = MAX_MESSAGE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text.len() - end;
    text.truncate(end);
    text.shrink_to_fit();
    text.push_str(&format!("… [{cut} more bytes cut]"));
    text
}

/// Why a plugin could not be loaded or a call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The file is not a valid component for this host (bad bytes, wrong world, unknown imports).
    #[error("plugin {path}: cannot load: {message}")]
    Compile {
        /// The plugin file.
        path: String,
        /// Why.
        message: String,
    },
    /// The component loads but does not fit the pipeline (missing field, wrong type).
    #[error("plugin {plugin}: {message}; {hint}")]
    Incompatible {
        /// Plugin name.
        plugin: String,
        /// What does not fit.
        message: String,
        /// How to fix it.
        hint: String,
    },
    /// `configure` rejected the pipeline's params.
    #[error("plugin {plugin}: configure failed: {message}{}", hint.as_ref().map(|h| format!("; {h}")).unwrap_or_default())]
    Configure {
        /// Plugin name.
        plugin: String,
        /// The plugin's message.
        message: String,
        /// The plugin's hint.
        hint: Option<String>,
    },
    /// The call trapped (panic, unreachable, out-of-bounds, …).
    #[error("plugin {plugin} trapped in {call}: {message}")]
    Trap {
        /// Plugin name.
        plugin: String,
        /// The export called.
        call: &'static str,
        /// The trap message.
        message: String,
    },
    /// The call ran past its CPU deadline and was interrupted.
    #[error("plugin {plugin} exceeded its {deadline_ms} ms deadline in {call}")]
    Deadline {
        /// Plugin name.
        plugin: String,
        /// The export called.
        call: &'static str,
        /// The deadline.
        deadline_ms: u64,
    },
    /// The call tried to grow memory past the instance's cap.
    #[error("plugin {plugin} exceeded its memory limit of {limit_bytes} bytes in {call}")]
    Memory {
        /// Plugin name.
        plugin: String,
        /// The export called.
        call: &'static str,
        /// The cap.
        limit_bytes: u64,
    },
    /// The call ran out of fuel.
    #[error("plugin {plugin} ran out of fuel ({fuel}) in {call}")]
    Fuel {
        /// Plugin name.
        plugin: String,
        /// The export called.
        call: &'static str,
        /// Fuel per call.
        fuel: u64,
    },
    /// The plugin returned an error for this call.
    #[error("plugin {plugin} returned an error: {message}{}", hint.as_ref().map(|h| format!("; {h}")).unwrap_or_default())]
    Failed {
        /// Plugin name.
        plugin: String,
        /// The plugin's message.
        message: String,
        /// The plugin's hint.
        hint: Option<String>,
    },
    /// The plugin's answer breaks the contract (wrong filter length, …).
    #[error("plugin {plugin}: bad output from {call}: {message}")]
    BadOutput {
        /// Plugin name.
        plugin: String,
        /// The export called.
        call: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl Error {
    /// Short machine-readable kind, for error records and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Compile { .. } => "compile",
            Error::Incompatible { .. } => "incompatible",
            Error::Configure { .. } => "configure",
            Error::Trap { .. } => "trap",
            Error::Deadline { .. } => "deadline",
            Error::Memory { .. } => "memory",
            Error::Fuel { .. } => "fuel",
            Error::Failed { .. } => "failed",
            Error::BadOutput { .. } => "bad_output",
        }
    }
}

/// The last failure of a plugin's calls, shared between the instances of one pipeline and
/// whoever reports it (the admin API).
#[derive(Debug, Clone, Default)]
pub struct LastError {
    inner: std::sync::Arc<std::sync::Mutex<Option<Failure>>>,
}

/// One failure of a plugin call, as [`LastError`] keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What failed.
    pub message: String,
    /// When, Unix milliseconds.
    pub at_ms: i64,
    /// The version whose call failed.
    pub version: String,
}

impl LastError {
    /// Records `e`, a failure of version `version`, as the last failure, now.
    pub fn record(&self, e: &Error, version: &str) {
        let failure = Failure {
            message: e.to_string(),
            at_ms: chrono::Utc::now().timestamp_millis(),
            version: version.to_string(),
        };
        *self.inner.lock().unwrap_or_else(|p| p.into_inner()) = Some(failure);
    }

    /// The last failure, if any.
    pub fn get(&self) -> Option<Failure> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Checks a plugin's declared inputs against the pipeline schema.
///
/// Every input must be a schema field of the same type, or an `i64` field read as `f64`
/// (each value widened, as the decoder widens an integer in an `f64` field); the error
/// names the field, both types, and the line to change.
pub fn check_inputs(
    info: &PluginInfo,
    type_of: impl Fn(&str) -> Option<FieldType>,
) -> Result<(), Error> {
    for (name, ty) in &info.inputs {
        match type_of(name) {
            None => {
                return Err(Error::Incompatible {
                    plugin: info.name.clone(),
                    message: format!(
                        "needs input field `{name}` ({ty}), which the schema does not declare"
                    ),
                    hint: format!(
                        "add `{name} = \"{ty}\"` to [schema.fields], or point the plugin at another field in [plugin.params]"
                    ),
                });
            }
            Some(t) if t != *ty && !(t == FieldType::I64 && *ty == FieldType::F64) => {
                return Err(Error::Incompatible {
                    plugin: info.name.clone(),
                    message: format!(
                        "needs input field `{name}` as {ty}, but the schema declares it as {t}"
                    ),
                    hint: format!("declare `{name} = \"{ty}\"` in [schema.fields]"),
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The columns the host writes into every result row beside the plugin's outputs (the key
/// fields come on top): a plugin output of one of these names would give a row two values
/// of one column, and readers would take the plugin's for the host's.
pub const HOST_COLUMNS: [&str; 4] = ["window_start", "window_end", "revision", "plugin_version"];

/// Checks a plugin's declared outputs: each named once, none empty, and none a column the
/// host writes itself (the pipeline's `key` fields and [`HOST_COLUMNS`], whether or not this
/// pipeline writes `revision` or `plugin_version` today, so that a version that runs under
/// `weir run` also deploys under `weir serve`). The error names the column; the tenant fixes
/// it by renaming the output.
pub fn check_outputs(info: &PluginInfo, key: &[String]) -> Result<(), Error> {
    let refuse = |message: String| Error::BadOutput {
        plugin: info.name.clone(),
        call: "describe",
        message,
    };
    let mut seen = std::collections::HashSet::new();
    for (name, _) in &info.outputs {
        if name.is_empty() {
            return Err(refuse(
                "declares an output column with an empty name".into(),
            ));
        }
        if key.iter().any(|k| k == name) {
            return Err(refuse(format!(
                "declares output column `{name}`, which is a key field of the pipeline: the host writes it in every row; rename the output"
            )));
        }
        if HOST_COLUMNS.contains(&name.as_str()) {
            return Err(refuse(format!(
                "declares output column `{name}`, which the host writes in result rows ({}); rename the output",
                HOST_COLUMNS.join(", ")
            )));
        }
        if !seen.insert(name.as_str()) {
            return Err(refuse(format!(
                "declares output column `{name}` twice; give each output its own name"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The component of example plugin `name`, if `scripts/setup.sh` built it; for the tests
    /// of every file of this module.
    pub(super) fn plugin_wasm(name: &str) -> Option<Vec<u8>> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/wasm32-wasip2/plugin")
            .join(format!("{name}.wasm"));
        std::fs::read(path).ok()
    }

    fn info(outputs: &[&str]) -> PluginInfo {
        PluginInfo {
            name: "t".into(),
            version: "1".into(),
            inputs: Vec::new(),
            outputs: outputs
                .iter()
                .map(|n| (n.to_string(), FieldType::F64))
                .collect(),
            has_filter: false,
            state_type: None,
        }
    }

    #[test]
    fn an_f64_input_takes_an_i64_field_and_nothing_else_narrows_or_changes_kind() {
        let reads = |ty: FieldType| PluginInfo {
            inputs: vec![("x".to_string(), ty)],
            ..info(&[])
        };
        let schema = |t: FieldType| move |n: &str| (n == "x").then_some(t);
        assert!(check_inputs(&reads(FieldType::F64), schema(FieldType::I64)).is_ok());
        assert!(check_inputs(&reads(FieldType::F64), schema(FieldType::F64)).is_ok());
        for (plugin, field) in [
            (FieldType::I64, FieldType::F64),
            (FieldType::Str, FieldType::I64),
            (FieldType::F64, FieldType::Str),
            (FieldType::Bool, FieldType::I64),
        ] {
            let e = check_inputs(&reads(plugin), schema(field)).unwrap_err();
            assert!(
                e.to_string().contains(&format!(
                    "as {plugin}, but the schema declares it as {field}"
                )),
                "{e}"
            );
        }
    }

    #[test]
    fn outputs_named_like_host_columns_or_key_fields_are_refused_by_name() {
        let key = vec!["symbol".to_string()];
        assert!(check_outputs(&info(&["avg", "count"]), &key).is_ok());
        for (outputs, column) in [
            (&["avg", "window_start"][..], "`window_start`"),
            (&["window_end"][..], "`window_end`"),
            (&["revision"][..], "`revision`"),
            (&["plugin_version"][..], "`plugin_version`"),
            (&["symbol", "avg"][..], "`symbol`"),
            (&["avg", "avg"][..], "`avg` twice"),
        ] {
            let e = check_outputs(&info(outputs), &key).unwrap_err();
            assert_eq!(e.kind(), "bad_output", "{outputs:?}");
            assert!(e.to_string().contains(column), "{outputs:?}: {e}");
        }
        assert!(check_outputs(&info(&[""]), &key).is_err());
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary_with_a_marker() {
        assert_eq!(bounded_message("short".into()), "short");
        let exact = "x".repeat(MAX_MESSAGE_BYTES);
        assert_eq!(bounded_message(exact.clone()), exact);
        // 4 095 ASCII bytes, then 'é' (2 bytes) straddles the limit: it goes whole.
        let text = format!(
            "{}é{}",
            "a".repeat(MAX_MESSAGE_BYTES - 1),
            "b".repeat(12 << 20)
        );
        let total = text.len();
        let cut = bounded_message(text);
        let kept = MAX_MESSAGE_BYTES - 1;
        assert_eq!(
            cut,
            format!("{}… [{} more bytes cut]", "a".repeat(kept), total - kept)
        );
    }
}
