//! The plugin's error type: what went wrong and, optionally, how to fix it.
//! It crosses to the host as the WIT `plugin-error`; the conversion lives in
//! `adapter.rs`.

use std::fmt;

/// A plugin error: a message for the tenant and an optional hint on how to
/// fix it. Both reach the tenant's error sink.
///
/// ```
/// use weir_guest::Error;
///
/// let e = Error::new("parameter `decimals` = \"x\" is not a number").with_hint("use 0..=9");
/// assert_eq!(e.to_string(), "parameter `decimals` = \"x\" is not a number (hint: use 0..=9)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What went wrong.
    pub message: String,
    /// How to fix it, when the plugin knows.
    pub hint: Option<String>,
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with a message and no hint.
    pub fn new(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            hint: None,
        }
    }

    /// Adds (or replaces) the hint.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error::new(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error::new(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_without_hint_is_the_message() {
        assert_eq!(Error::from("boom").to_string(), "boom");
        assert_eq!(Error::from(String::from("boom")).hint, None);
    }
}
