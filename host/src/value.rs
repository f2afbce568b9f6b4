//! Typed values and field types shared by decoding, window state, plugins and sinks.
//!
//! Owns the host's own value model; the WIT types live in `plugin::bindings` and are
//! converted at the plugin boundary only.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The type of a schema field, as written in `[schema.fields]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// 64-bit float (`"f64"`).
    F64,
    /// 64-bit signed integer (`"i64"`).
    I64,
    /// UTF-8 string (`"string"`).
    #[serde(rename = "string")]
    Str,
    /// Boolean (`"bool"`).
    Bool,
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldType::F64 => "f64",
            FieldType::I64 => "i64",
            FieldType::Str => "string",
            FieldType::Bool => "bool",
        })
    }
}

/// One typed value of an event field, a key or an output row.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub enum Value {
    /// No value (an empty CSV cell, a JSON `null`, a missing optional field).
    #[default]
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
    /// Rank of the variant, used to order values of different types.
    fn rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::I64(_) | Value::F64(_) => 2,
            Value::Str(_) => 3,
        }
    }

    /// Total order used to order keys when windows fire: null < bool < number < string;
    /// numbers compare by value (`f64::total_cmp` for floats).
    pub fn total_cmp(&self, other: &Value) -> Ordering {
        match (self, other) {
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (Value::I64(a), Value::I64(b)) => a.cmp(b),
            (Value::F64(a), Value::F64(b)) => a.total_cmp(b),
            (Value::I64(a), Value::F64(b)) => (*a as f64).total_cmp(b),
            (Value::F64(a), Value::I64(b)) => a.total_cmp(&(*b as f64)),
            (Value::Str(a), Value::Str(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }

    /// Whether this is [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Converts to a JSON value (non-finite floats become `null`).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::F64(v) => serde_json::Number::from_f64(*v)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::I64(v) => serde_json::Value::from(*v),
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Bool(b) => serde_json::Value::Bool(*b),
        }
    }
}

impl fmt::Display for Value {
    /// Plain text form, as written in CSV cells (null is the empty string).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => Ok(()),
            Value::F64(v) => write!(f, "{v}"),
            Value::I64(v) => write!(f, "{v}"),
            Value::Str(s) => f.write_str(s),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// A grouping key: the values of the pipeline's `schema.key` fields, in order.
///
/// Equality, hashing and order agree, so a key is one group in hash maps and one position
/// when windows fire: float values are compared after [`key_f64`] (`-0.0` is `0.0`, every
/// NaN is one value, ordered after +∞), and values of different variants are never equal
/// (an `I64` and an `F64` of the same number order by value, then `I64` first).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Key(pub Vec<Value>);

/// The float a key compares and hashes: `-0.0` becomes `0.0` and every NaN the one
/// canonical (positive, quiet) NaN, so that `0.0`/`-0.0` form one group, as do all NaNs.
pub fn key_f64(x: f64) -> f64 {
    if x.is_nan() {
        f64::NAN
    } else if x == 0.0 {
        0.0
    } else {
        x
    }
}

/// Order of two key values: [`Value::total_cmp`] on normalized floats, with ties between
/// different variants broken by variant so that only identical values are equal.
fn key_value_cmp(a: &Value, b: &Value) -> Ordering {
    let norm = |v: &Value| match v {
        Value::F64(x) => Value::F64(key_f64(*x)),
        other => other.clone(),
    };
    let (a, b) = match (a, b) {
        (Value::F64(_), _) | (_, Value::F64(_)) => (norm(a), norm(b)),
        _ => return a.total_cmp(b),
    };
    a.total_cmp(&b).then_with(|| {
        let variant = |v: &Value| matches!(v, Value::F64(_)) as u8;
        variant(&a).cmp(&variant(&b))
    })
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Key {}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.len().hash(state);
        for v in &self.0 {
            std::mem::discriminant(v).hash(state);
            match v {
                Value::Null => {}
                Value::F64(x) => key_f64(*x).to_bits().hash(state),
                Value::I64(x) => x.hash(state),
                Value::Str(s) => s.hash(state),
                Value::Bool(b) => b.hash(state),
            }
        }
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        for (a, b) in self.0.iter().zip(&other.0) {
            match key_value_cmp(a, b) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        self.0.len().cmp(&other.0.len())
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_by_fields_then_type_rank() {
        let a = Key(vec![Value::Str("AAPL".into())]);
        let b = Key(vec![Value::Str("MSFT".into())]);
        assert!(a < b);
        assert!(Key(vec![Value::Null]) < Key(vec![Value::I64(-5)]));
        assert!(Key(vec![Value::I64(2)]) < Key(vec![Value::F64(2.5)]));
    }

    fn hash_of(k: &Key) -> u64 {
        use std::hash::{Hash, Hasher};
        // One fixed hasher for both keys compared.
        let mut h = std::hash::DefaultHasher::new();
        k.hash(&mut h);
        h.finish()
    }

    #[test]
    fn zero_and_negative_zero_keys_are_one_group() {
        let pos = Key(vec![Value::F64(0.0)]);
        let neg = Key(vec![Value::F64(-0.0)]);
        assert_eq!(pos, neg);
        assert_eq!(pos.cmp(&neg), Ordering::Equal);
        assert_eq!(hash_of(&pos), hash_of(&neg));
        let mut groups = std::collections::HashMap::new();
        *groups.entry(pos).or_insert(0) += 1;
        *groups.entry(neg).or_insert(0) += 1;
        assert_eq!(groups.len(), 1);
        assert_eq!(groups.values().next(), Some(&2));
    }

    #[test]
    fn nan_keys_group_together_and_sort_last() {
        // Two NaNs with different bit patterns (sign and payload).
        let a = Key(vec![Value::F64(f64::NAN)]);
        let b = Key(vec![Value::F64(f64::from_bits(0xfff8_0000_0000_0001))]);
        assert!(b.0[0] != b.0[0], "it is a NaN");
        assert_eq!(a, b);
        assert_eq!(hash_of(&a), hash_of(&b));
        let mut groups = std::collections::HashMap::new();
        for k in [a.clone(), b, a.clone()] {
            *groups.entry(k).or_insert(0) += 1;
        }
        assert_eq!(groups.len(), 1, "{groups:?}");
        assert!(Key(vec![Value::F64(f64::INFINITY)]) < a);
        assert!(Key(vec![Value::F64(-1.0)]) < Key(vec![Value::F64(-0.0)]));
        assert!(Key(vec![Value::F64(-0.0)]) < Key(vec![Value::F64(1e-300)]));
    }

    #[test]
    fn values_of_different_variants_are_different_keys() {
        let i = Key(vec![Value::I64(2)]);
        let f = Key(vec![Value::F64(2.0)]);
        assert_ne!(i, f);
        assert!(i < f, "same number: I64 first");
    }

    #[test]
    fn csv_text_of_null_is_empty() {
        assert_eq!(Value::Null.to_string(), "");
        assert_eq!(Value::F64(1.5).to_string(), "1.5");
    }
}
