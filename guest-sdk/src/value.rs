//! Field types, single values and rows: what keys and results are made of.

use std::fmt;

/// The type of a field, in declared inputs and outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Type {
    /// 64-bit float.
    F64,
    /// 64-bit signed integer.
    I64,
    /// UTF-8 string.
    Str,
    /// Boolean.
    Bool,
}

impl fmt::Display for Type {
    /// The names used in a pipeline's `[schema] fields`: `f64`, `i64`,
    /// `string`, `bool`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::F64 => "f64",
            Type::I64 => "i64",
            Type::Str => "string",
            Type::Bool => "bool",
        })
    }
}

/// A single typed value, as found in keys and result rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// No value.
    Null,
    /// A 64-bit float.
    F64(f64),
    /// A 64-bit signed integer.
    I64(i64),
    /// A string.
    Str(String),
    /// A boolean.
    Bool(bool),
}

impl Value {
    /// The float, if this is [`Value::F64`] (no conversion from other types).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::F64(v) => Some(*v),
            _ => None,
        }
    }

    /// The integer, if this is [`Value::I64`].
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::I64(v) => Some(*v),
            _ => None,
        }
    }

    /// The string, if this is [`Value::Str`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(v) => Some(v),
            _ => None,
        }
    }

    /// The boolean, if this is [`Value::Bool`].
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(v) => Some(*v),
            _ => None,
        }
    }

    /// Whether this is [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value's type; `None` for [`Value::Null`].
    pub fn ty(&self) -> Option<Type> {
        match self {
            Value::Null => None,
            Value::F64(_) => Some(Type::F64),
            Value::I64(_) => Some(Type::I64),
            Value::Str(_) => Some(Type::Str),
            Value::Bool(_) => Some(Type::Bool),
        }
    }
}

/// A flat record of named values, in order: a result row, or a window's key
/// (the pipeline's key fields by name).
///
/// ```
/// use weir_guest::{Row, Value};
///
/// let row = Row::new().str("symbol", "AAPL").i64("count", 3).opt_f64("avg", None);
/// assert_eq!(row.get("count"), Some(&Value::I64(3)));
/// assert_eq!(row.get("avg"), Some(&Value::Null));
/// assert_eq!(row.get("symbol").and_then(Value::as_str), Some("AAPL"));
/// assert_eq!(row.len(), 3);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    fields: Vec<(String, Value)>,
}

impl Row {
    /// An empty row.
    pub fn new() -> Self {
        Row::default()
    }

    /// Appends a field holding any [`Value`].
    #[must_use]
    pub fn value(mut self, name: impl Into<String>, value: Value) -> Self {
        self.fields.push((name.into(), value));
        self
    }

    /// Appends an f64 field.
    #[must_use]
    pub fn f64(self, name: impl Into<String>, value: f64) -> Self {
        self.value(name, Value::F64(value))
    }

    /// Appends an f64 field, null when `value` is `None`.
    #[must_use]
    pub fn opt_f64(self, name: impl Into<String>, value: Option<f64>) -> Self {
        self.value(name, value.map_or(Value::Null, Value::F64))
    }

    /// Appends an i64 field.
    #[must_use]
    pub fn i64(self, name: impl Into<String>, value: i64) -> Self {
        self.value(name, Value::I64(value))
    }

    /// Appends a string field.
    #[must_use]
    pub fn str(self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.value(name, Value::Str(value.into()))
    }

    /// Appends a bool field.
    #[must_use]
    pub fn bool(self, name: impl Into<String>, value: bool) -> Self {
        self.value(name, Value::Bool(value))
    }

    /// Appends a null field.
    #[must_use]
    pub fn null(self, name: impl Into<String>) -> Self {
        self.value(name, Value::Null)
    }

    /// The value of the first field called `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// All fields, in order.
    pub fn fields(&self) -> &[(String, Value)] {
        &self.fields
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether the row has no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The fields, by value.
    pub fn into_fields(self) -> Vec<(String, Value)> {
        self.fields
    }
}

impl From<Vec<(String, Value)>> for Row {
    fn from(fields: Vec<(String, Value)>) -> Self {
        Row { fields }
    }
}

impl FromIterator<(String, Value)> for Row {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        Row {
            fields: iter.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_keeps_order_and_get_finds_first() {
        let row = Row::new().bool("a", true).null("b").i64("a", 2);
        let names: Vec<&str> = row.fields().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b", "a"]);
        assert_eq!(row.get("a"), Some(&Value::Bool(true)));
        assert_eq!(row.get("zzz"), None);
        assert!(Row::new().is_empty());
    }

    #[test]
    fn accessors_do_not_convert() {
        assert_eq!(Value::I64(3).as_f64(), None);
        assert_eq!(Value::F64(1.5).as_f64(), Some(1.5));
        assert_eq!(Value::I64(3).as_i64(), Some(3));
        assert_eq!(Value::Str("x".into()).as_str(), Some("x"));
        assert_eq!(Value::Null.as_str(), None);
        assert_eq!(Value::Null.ty(), None);
        assert_eq!(Value::Bool(false).ty(), Some(Type::Bool));
        assert_eq!(Type::Str.to_string(), "string");
    }
}
