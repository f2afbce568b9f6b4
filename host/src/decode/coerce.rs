//! Turning input scalars into typed values, shared by the JSON and CSV decoders: a
//! [`Raw`] scalar as it appeared, its coercion to a field type, the event time, and the
//! errors for missing required fields.

use std::fmt;

use super::{DecodeError, Schema};
use crate::time::TimestampFormat;
use crate::value::{FieldType, Value};

/// The error for a required field (or the timestamp) that is missing, null or empty.
pub(super) fn missing(name: &str) -> DecodeError {
    DecodeError::new(format!("missing required field `{name}`"))
}

/// Fails on the first required field whose value is null.
pub(super) fn check_required(schema: &Schema, values: &[Value]) -> Result<(), DecodeError> {
    for (i, v) in values.iter().enumerate() {
        if v.is_null() && schema.required[i] {
            return Err(missing(&schema.fields[i].0));
        }
    }
    Ok(())
}

/// A scalar as it appeared in the input, before coercion to a field type.
#[derive(Debug, Clone, Copy)]
pub(super) enum Raw<'a> {
    /// JSON `null` (or a missing member).
    Null,
    /// JSON `true` / `false`.
    Bool(bool),
    /// A JSON integer that fits `i64`.
    I64(i64),
    /// A JSON integer above `i64::MAX`.
    U64(u64),
    /// A JSON number with a fraction or exponent.
    F64(f64),
    /// A JSON string, or a CSV cell.
    Str(&'a str),
    /// A JSON object or array.
    Nested,
}

impl fmt::Display for Raw<'_> {
    /// The value as quoted in error messages: `` `abc` ``.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Raw::Null => f.write_str("null"),
            Raw::Bool(b) => write!(f, "`{b}`"),
            Raw::I64(v) => write!(f, "`{v}`"),
            Raw::U64(v) => write!(f, "`{v}`"),
            Raw::F64(v) => write!(f, "`{v}`"),
            Raw::Str(s) => write!(f, "`{s}`"),
            Raw::Nested => f.write_str("an object or array"),
        }
    }
}

/// Coerces one input scalar to a field type.
///
/// `f64` takes numbers and numeric strings; `i64` takes integers and numbers or strings
/// with a zero fraction (`"3.0"`); `string` takes strings and the text of numbers and
/// booleans; `bool` takes booleans, `"true"`/`"false"` in any case, and `1`/`0`. For every
/// type but `string` an empty (or blank) string is null; for `string` only when
/// `empty_string_is_null` (CSV cells). The error names the value, not the field.
pub(super) fn coerce(
    ty: FieldType,
    raw: Raw<'_>,
    empty_string_is_null: bool,
) -> Result<Value, String> {
    if let Raw::Null = raw {
        return Ok(Value::Null);
    }
    if let Raw::Str(s) = raw
        && ty != FieldType::Str
        && s.trim().is_empty()
    {
        return Ok(Value::Null);
    }
    match ty {
        FieldType::F64 => match raw {
            Raw::I64(v) => Ok(Value::F64(v as f64)),
            Raw::U64(v) => Ok(Value::F64(v as f64)),
            Raw::F64(v) => Ok(Value::F64(v)),
            Raw::Str(s) => match s.trim().parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(Value::F64(v)),
                _ => Err(format!("{raw} is not a number")),
            },
            _ => Err(format!("{raw} is not a number")),
        },
        FieldType::I64 => match raw {
            Raw::I64(v) => Ok(Value::I64(v)),
            Raw::U64(_) => Err(format!("{raw} is out of range for i64")),
            Raw::F64(v) => whole_f64(v).ok_or_else(|| format!("{raw} is not an integer")),
            Raw::Str(s) => {
                let t = s.trim();
                match t.parse::<i64>() {
                    Ok(v) => Ok(Value::I64(v)),
                    Err(_) => t
                        .parse::<f64>()
                        .ok()
                        .and_then(whole_f64)
                        .ok_or_else(|| format!("{raw} is not an integer")),
                }
            }
            _ => Err(format!("{raw} is not an integer")),
        },
        FieldType::Str => match raw {
            Raw::Str(s) if s.is_empty() && empty_string_is_null => Ok(Value::Null),
            Raw::Str(s) => Ok(Value::Str(s.to_owned())),
            Raw::I64(v) => Ok(Value::Str(v.to_string())),
            Raw::U64(v) => Ok(Value::Str(v.to_string())),
            Raw::F64(v) => Ok(Value::Str(v.to_string())),
            Raw::Bool(b) => Ok(Value::Str(b.to_string())),
            _ => Err(format!("{raw} is not a string")),
        },
        FieldType::Bool => match raw {
            Raw::Bool(b) => Ok(Value::Bool(b)),
            Raw::I64(0) => Ok(Value::Bool(false)),
            Raw::I64(1) => Ok(Value::Bool(true)),
            Raw::Str(s) => {
                let t = s.trim();
                if t.eq_ignore_ascii_case("true") || t == "1" {
                    Ok(Value::Bool(true))
                } else if t.eq_ignore_ascii_case("false") || t == "0" {
                    Ok(Value::Bool(false))
                } else {
                    Err(format!("{raw} is not a boolean"))
                }
            }
            _ => Err(format!("{raw} is not a boolean")),
        },
    }
}

/// `v` as an `i64` when it is a whole number in range.
fn whole_f64(v: f64) -> Option<Value> {
    // 2^63 is exactly representable; every whole f64 in [-2^63, 2^63) fits an i64.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (v.fract() == 0.0 && (-LIMIT..LIMIT).contains(&v)).then_some(Value::I64(v as i64))
}

/// Reads an event time: a string through [`TimestampFormat::parse_str`], a number through
/// [`TimestampFormat::parse_number`]. `Ok(None)` when the value is null or blank (missing).
pub(super) fn parse_timestamp(
    format: &TimestampFormat,
    raw: Raw<'_>,
) -> Result<Option<i64>, String> {
    match raw {
        Raw::Null => Ok(None),
        Raw::Str(s) if s.trim().is_empty() => Ok(None),
        Raw::Str(s) => format.parse_str(s).map(Some),
        Raw::I64(v) => format.parse_integer(v).map(Some),
        Raw::U64(v) => match i64::try_from(v) {
            Ok(v) => format.parse_integer(v),
            Err(_) => format.parse_number(v as f64),
        }
        .map(Some),
        Raw::F64(v) => format.parse_number(v).map(Some),
        Raw::Bool(_) | Raw::Nested => Err(format!("{raw} is not a timestamp")),
    }
}
