//! Plugins: loading tenant components, calling them under limits, and checking what they
//! declare against the pipeline.
//!
//! Owns the wasmtime engine, per-instance Stores, the conversions between host values and
//! WIT types, and plugin errors. It does not know about windows or sinks: the pipeline
//! hands it batches and gets rows or a [`Error`] back.

mod bindings;
mod convert;
mod logs;
mod runtime;

pub use convert::{BatchBuilder, OutputRow};
pub use logs::{GuestLog, LogBudget};
pub use runtime::{LoadLimits, Owner, PluginCode, PluginInfo, PluginInstance, Runtime};

use crate::value::FieldType;

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

/// Checks a plugin's declared inputs against the pipeline schema.
///
/// Every input must be a schema field of the same type; the error names the field, both
/// types, and the line to change.
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
            Some(t) if t != *ty => {
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

#[cfg(test)]
mod tests {
    use super::*;

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
