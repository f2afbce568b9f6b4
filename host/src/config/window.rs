//! `[window]`: the window kind with the sizes it takes, and the allowed lateness every kind
//! shares, resolved into the operator's [`WindowKind`].
//!
//! The keys each kind takes are a serde enum tagged by `kind`, so a missing or foreign key
//! is caught by the parser; this module turns serde's terse messages into ones that name
//! the key and the fix. The size checks serde cannot make (positive, bounded, dividing)
//! are in [`WindowConfig::validate`]. Assigning events to windows is `window/`'s.

use std::fmt;

use serde::de::value::MapDeserializer;
use serde::de::{Deserializer, IntoDeserializer, Visitor};
use serde::{Deserialize, forward_to_deserialize_any};

use super::{Error, Millis, check_duration, too_long};
use crate::time::MAX_DURATION_MS;
use crate::window::WindowKind;

/// `[window]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    /// `kind` and the sizes that kind takes.
    pub kind: WindowKindConfig,
    /// How long a fired window keeps its state for late events, which re-fire it (default 0).
    pub allowed_lateness: Millis,
}

/// `window.kind` with the keys of that kind; any other key is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum WindowKindConfig {
    /// Fixed-size, non-overlapping.
    Tumbling {
        /// Window length.
        size: Millis,
    },
    /// Fixed-size, overlapping by `size - slide`.
    Sliding {
        /// Window length.
        size: Millis,
        /// Distance between window starts; divides `size`.
        slide: Millis,
    },
    /// Per-key activity sessions.
    Session {
        /// Inactivity gap that closes a session.
        gap: Millis,
    },
    /// Growing windows within a tumbling period ("so far today").
    Cumulative {
        /// Period length.
        size: Millis,
        /// Growth step of the window; divides `size`.
        step: Millis,
    },
}

/// The kinds, as written in `window.kind`.
const KINDS: [&str; 4] = ["tumbling", "sliding", "session", "cumulative"];

/// Every key some kind takes, besides `kind` and `allowed_lateness`.
const SIZE_KEYS: [&str; 4] = ["size", "slide", "gap", "step"];

/// The example value a message suggests for `key` of a `kind` window.
fn example(kind: &str, key: &str) -> &'static str {
    match (kind, key) {
        ("tumbling", "size") => "\"5s\"",
        ("sliding", "size") => "\"3s\"",
        ("sliding", "slide") => "\"1s\"",
        ("session", "gap") => "\"30s\"",
        ("cumulative", "size") => "\"1d\"",
        ("cumulative", "step") => "\"1h\"",
        _ => "\"1s\"",
    }
}

impl WindowKindConfig {
    /// The name written in `window.kind`.
    pub fn name(&self) -> &'static str {
        match self {
            WindowKindConfig::Tumbling { .. } => "tumbling",
            WindowKindConfig::Sliding { .. } => "sliding",
            WindowKindConfig::Session { .. } => "session",
            WindowKindConfig::Cumulative { .. } => "cumulative",
        }
    }

    /// The kind's durations with their keys, in the order they are checked.
    fn durations(&self) -> Vec<(&'static str, Millis)> {
        match *self {
            WindowKindConfig::Tumbling { size } => vec![("size", size)],
            WindowKindConfig::Sliding { size, slide } => vec![("size", size), ("slide", slide)],
            WindowKindConfig::Session { gap } => vec![("gap", gap)],
            WindowKindConfig::Cumulative { size, step } => vec![("size", size), ("step", step)],
        }
    }
}

impl WindowConfig {
    /// The checks serde cannot make: every size positive and at most [`MAX_DURATION_MS`], a
    /// slide or step that divides the size, a lateness that is not negative.
    pub(super) fn validate(&self) -> Result<(), Error> {
        let name = self.kind.name();
        for (key, d) in self.kind.durations() {
            if d.0 > MAX_DURATION_MS {
                return Err(too_long(&format!("window.{key}"), d));
            }
            if d.0 <= 0 {
                return Err(Error::invalid(
                    format!("window.{key}"),
                    format!("must be positive, got {}ms", d.0),
                    format!("use a duration such as {}", example(name, key)),
                ));
            }
        }
        match self.kind {
            WindowKindConfig::Sliding { size, slide } => {
                if slide > size {
                    return Err(Error::invalid(
                        "window.slide",
                        format!("({slide}) is larger than window.size ({size})"),
                        "use a slide no larger than the size (equal makes it tumbling)",
                    ));
                }
                if size.0 % slide.0 != 0 {
                    return Err(Error::invalid(
                        "window.slide",
                        format!("({slide}) must divide window.size ({size})"),
                        "pick a slide that divides the size, e.g. size \"3s\" with slide \"1s\"",
                    ));
                }
            }
            WindowKindConfig::Cumulative { size, step } => {
                if step > size || size.0 % step.0 != 0 {
                    return Err(Error::invalid(
                        "window.step",
                        format!("({step}) must divide window.size ({size})"),
                        "pick a step that divides the size, e.g. size \"1d\" with step \"1h\"",
                    ));
                }
            }
            WindowKindConfig::Tumbling { .. } | WindowKindConfig::Session { .. } => {}
        }
        if self.allowed_lateness.0 < 0 {
            return Err(Error::invalid(
                "window.allowed_lateness",
                "is negative",
                "use 0s or a positive duration",
            ));
        }
        check_duration("window.allowed_lateness", self.allowed_lateness)
    }

    /// The window assigner this section describes (checked by `WindowConfig::validate`
    /// when the config was loaded).
    pub fn window_kind(&self) -> WindowKind {
        match self.kind {
            WindowKindConfig::Tumbling { size } => WindowKind::Tumbling { size: size.0 },
            WindowKindConfig::Sliding { size, slide } => WindowKind::Sliding {
                size: size.0,
                slide: slide.0,
            },
            WindowKindConfig::Session { gap } => WindowKind::Session { gap: gap.0 },
            WindowKindConfig::Cumulative { size, step } => WindowKind::Cumulative {
                size: size.0,
                step: step.0,
            },
        }
    }

    /// Checks the per-event window budget: an event belongs to `size / slide` sliding or
    /// `size / step` cumulative windows, which must be at most `limit` (named by
    /// `limit_key` in the message).
    pub(super) fn check_budget(&self, limit: u64, limit_key: &str) -> Result<(), Error> {
        let kind = self.window_kind();
        let n = kind.windows_per_event();
        if n <= limit {
            return Ok(());
        }
        let (key, name, size, by) = match kind {
            WindowKind::Sliding { size, slide } => ("window.slide", "slide", size, slide),
            WindowKind::Cumulative { size, step } => ("window.step", "step", size, step),
            _ => return Ok(()),
        };
        // The smallest slide/step that keeps the count within the limit (it must also divide
        // the size): ceil(size / limit), in whole milliseconds.
        let limit_i = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        let at_least = Millis((size / limit_i + i64::from(size % limit_i != 0)).max(1));
        Err(Error::invalid(
            key,
            format!(
                "({}) puts every event in {n} windows (window.size {} / window.{name} {}), over the limit of {limit} ({limit_key})",
                Millis(by),
                Millis(size),
                Millis(by)
            ),
            format!(
                "use a larger {name}, at least {at_least} and dividing the size, or raise {limit_key}"
            ),
        ))
    }
}

impl<'de> Deserialize<'de> for WindowConfig {
    /// `allowed_lateness` is taken out of the table by hand (serde's `flatten` cannot be
    /// combined with `deny_unknown_fields`); the rest is the tagged [`WindowKindConfig`].
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut table = toml::Table::deserialize(d)?;
        let allowed_lateness = match table.remove("allowed_lateness") {
            Some(v) => duration("", "allowed_lateness", &v).map_err(D::Error::custom)?,
            None => Millis(0),
        };
        let entries = table.clone().into_iter().map(|(k, v)| (k, Cell(v)));
        let kind = WindowKindConfig::deserialize(MapDeserializer::new(entries))
            .map_err(|e| D::Error::custom(e.explain(&table)))?;
        Ok(WindowConfig {
            kind,
            allowed_lateness,
        })
    }
}

/// What serde found wrong with the `[window]` keys, kept structured so that the message
/// can name the key, the kind and the fix.
#[derive(Debug)]
enum ShapeError {
    /// A key the kind needs is absent (or `kind` itself).
    Missing(&'static str),
    /// A key the kind does not take.
    Unknown(String, &'static [&'static str]),
    /// A value of the wrong type or form, or a `kind` that names no kind.
    Value(String),
}

impl ShapeError {
    /// The message for the user, given the `[window]` table (without `allowed_lateness`).
    fn explain(self, table: &toml::Table) -> String {
        let kind = table
            .get("kind")
            .and_then(toml::Value::as_str)
            .unwrap_or("");
        let error = match self {
            ShapeError::Missing("kind") => Error::invalid(
                "window.kind",
                "is required",
                format!(
                    "add `kind = \"tumbling\"` (or {}) under [window]",
                    KINDS[1..].join(", ")
                ),
            ),
            ShapeError::Missing(key) => Error::invalid(
                format!("window.{key}"),
                format!("is required for a {kind} window"),
                format!("add `{key} = {}` under [window]", example(kind, key)),
            ),
            ShapeError::Unknown(key, _) if SIZE_KEYS.contains(&key.as_str()) => Error::invalid(
                format!("window.{key}"),
                format!("does not apply to a {kind} window"),
                format!("remove `{key}` from [window]"),
            ),
            ShapeError::Unknown(key, takes) => {
                let takes: Vec<String> = takes
                    .iter()
                    .chain(&["allowed_lateness"])
                    .map(|k| format!("`{k}`"))
                    .collect();
                Error::invalid(
                    format!("window.{key}"),
                    format!("is not a window option (unknown field `{key}`)"),
                    format!(
                        "remove it or fix its spelling (a {kind} window takes `kind`, {})",
                        takes.join(", ")
                    ),
                )
            }
            ShapeError::Value(message) => {
                // serde does not say which key a bad value was under (nor, for the tag,
                // that it was an unknown variant): find it.
                for (key, v) in table {
                    if key == "kind" {
                        match v.as_str() {
                            None => {
                                return Error::invalid(
                                    "window.kind",
                                    format!("is not a string (found {})", v.type_str()),
                                    format!("write one of {} in quotes", KINDS.join(", ")),
                                )
                                .to_string();
                            }
                            Some(name) if !KINDS.contains(&name) => {
                                return unknown_kind(name).to_string();
                            }
                            Some(_) => {}
                        }
                    } else if let Err(e) = duration(kind, key, v) {
                        return e;
                    }
                }
                return format!("window: {message}");
            }
        };
        error.to_string()
    }
}

/// The error for a `window.kind` that names no kind.
fn unknown_kind(name: &str) -> Error {
    Error::invalid(
        "window.kind",
        format!("`{name}` is not a window kind"),
        format!("use one of {}", KINDS.join(", ")),
    )
}

/// Reads one `[window]` duration; the error names the key (`window.size: ...`) and the fix.
fn duration(kind: &str, key: &str, v: &toml::Value) -> Result<Millis, String> {
    if v.as_str().is_none() {
        return Err(Error::invalid(
            format!("window.{key}"),
            format!("is not a duration string (found {})", v.type_str()),
            format!("write it in quotes, e.g. `{key} = {}`", example(kind, key)),
        )
        .to_string());
    }
    // The parser's message already says how to write a duration.
    Millis::deserialize(v.clone()).map_err(|e| format!("window.{key}: {}", e.message()))
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShapeError::Missing(key) => write!(f, "missing field `{key}`"),
            ShapeError::Unknown(key, _) => write!(f, "unknown field `{key}`"),
            ShapeError::Value(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for ShapeError {}

impl serde::de::Error for ShapeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ShapeError::Value(msg.to_string())
    }

    fn missing_field(field: &'static str) -> Self {
        ShapeError::Missing(field)
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        ShapeError::Unknown(field.to_string(), expected)
    }
}

/// One `[window]` value, read by serde with [`ShapeError`] as its error type.
struct Cell(toml::Value);

impl<'de> IntoDeserializer<'de, ShapeError> for Cell {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> Deserializer<'de> for Cell {
    type Error = ShapeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeError> {
        self.0
            .deserialize_any(visitor)
            .map_err(|e| ShapeError::Value(e.message().to_string()))
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error a `[window]` section gives, as the user reads it (without the position
    /// the TOML parser adds before it).
    fn window_error(body: &str) -> String {
        let table: toml::Table = toml::from_str(body).expect("valid TOML");
        let err = WindowConfig::deserialize(toml::Value::Table(table)).expect_err("refused");
        err.message().to_string()
    }

    fn window(body: &str) -> WindowConfig {
        let table: toml::Table = toml::from_str(body).expect("valid TOML");
        WindowConfig::deserialize(toml::Value::Table(table)).expect("a window")
    }

    #[test]
    fn each_kind_reads_its_keys() {
        assert_eq!(
            window("kind = \"tumbling\"\nsize = \"5s\""),
            WindowConfig {
                kind: WindowKindConfig::Tumbling { size: Millis(5000) },
                allowed_lateness: Millis(0),
            }
        );
        assert_eq!(
            window("kind = \"sliding\"\nsize = \"3s\"\nslide = \"1s\"\nallowed_lateness = \"2s\""),
            WindowConfig {
                kind: WindowKindConfig::Sliding {
                    size: Millis(3000),
                    slide: Millis(1000)
                },
                allowed_lateness: Millis(2000),
            }
        );
        assert_eq!(
            window("kind = \"session\"\ngap = \"30s\"").window_kind(),
            WindowKind::Session { gap: 30_000 }
        );
        assert_eq!(
            window("kind = \"cumulative\"\nsize = \"1d\"\nstep = \"1h\"").window_kind(),
            WindowKind::Cumulative {
                size: 86_400_000,
                step: 3_600_000
            }
        );
    }

    #[test]
    fn sliding_window_without_slide_says_what_to_add() {
        assert_eq!(
            window_error("kind = \"sliding\"\nsize = \"3s\""),
            "window.slide is required for a sliding window; add `slide = \"1s\"` under [window]"
        );
    }

    #[test]
    fn tumbling_window_with_gap_says_to_remove_it() {
        assert_eq!(
            window_error("kind = \"tumbling\"\nsize = \"5s\"\ngap = \"30s\""),
            "window.gap does not apply to a tumbling window; remove `gap` from [window]"
        );
    }

    #[test]
    fn unknown_kind_lists_the_kinds() {
        assert_eq!(
            window_error("kind = \"hopping\"\nsize = \"5s\""),
            "window.kind `hopping` is not a window kind; use one of tumbling, sliding, session, cumulative"
        );
        assert_eq!(
            window_error("size = \"5s\""),
            "window.kind is required; add `kind = \"tumbling\"` (or sliding, session, cumulative) under [window]"
        );
        assert_eq!(
            window_error("kind = 5\nsize = \"5s\""),
            "window.kind is not a string (found integer); write one of tumbling, sliding, session, cumulative in quotes"
        );
    }

    #[test]
    fn misspelt_key_is_named_with_the_keys_of_its_kind() {
        assert_eq!(
            window_error("kind = \"session\"\ngap = \"30s\"\ngapp = \"1s\""),
            "window.gapp is not a window option (unknown field `gapp`); remove it or fix its spelling (a session window takes `kind`, `gap`, `allowed_lateness`)"
        );
    }

    #[test]
    fn bad_duration_names_its_key() {
        let err = window_error("kind = \"cumulative\"\nsize = \"1d\"\nstep = \"soon\"");
        assert!(
            err.starts_with("window.step: `soon` is not a duration"),
            "{err}"
        );
        assert!(err.contains("write e.g. \"500ms\""), "{err}");
        assert_eq!(
            window_error("kind = \"tumbling\"\nsize = 5"),
            "window.size is not a duration string (found integer); write it in quotes, e.g. `size = \"5s\"`"
        );
        let err = window_error("kind = \"tumbling\"\nsize = \"5s\"\nallowed_lateness = \"x\"");
        assert!(
            err.starts_with("window.allowed_lateness: `x` is not a duration"),
            "{err}"
        );
    }
}
