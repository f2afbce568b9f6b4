//! [`Output`]: a plugin's output columns declared once, as a plain struct with
//! `#[derive(Output)]`, giving both [`Describe`](crate::Describe)'s outputs and
//! the [`Row`]s.

use crate::{Row, Type, Value};

/// One output column as a struct deriving [`Output`] declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OutputField {
    /// The column name: the field's name, or its `#[output(name = "...")]`.
    pub name: &'static str,
    /// The column type, from the field's type.
    pub ty: Type,
    /// Whether the column may be null (the field is an `Option`).
    pub nullable: bool,
}

/// A plugin's fixed output columns, as a struct: implement it with
/// `#[derive(Output)]`, declare the columns with
/// [`Describe::outputs_of`](crate::Describe::outputs_of) and return values of
/// the struct as rows (`out.into()` or [`Output::into_row`]).
///
/// A column declared but never written, or written but not declared, is then
/// a compile error (a missing or unknown struct field) instead of an error at
/// run time. Outputs whose names depend on the params are declared with
/// [`Describe::output`](crate::Describe::output) and built with the [`Row`]
/// builder instead.
///
/// ```
/// use weir_guest::prelude::*;
/// use weir_guest::{OutputField, Value};
///
/// #[derive(Output)]
/// struct Out {
///     count: i64,
///     #[output(name = "p95")]
///     p95_latency: Option<f64>,
/// }
///
/// assert_eq!(
///     Out::FIELDS,
///     &[
///         OutputField { name: "count", ty: Type::I64, nullable: false },
///         OutputField { name: "p95", ty: Type::F64, nullable: true },
///     ]
/// );
/// let row: Row = Out { count: 3, p95_latency: None }.into();
/// assert_eq!(row, Row::new().i64("count", 3).null("p95"));
/// assert_eq!(row.get("p95"), Some(&Value::Null));
/// ```
pub trait Output {
    /// The output columns, in the order of the struct's fields.
    const FIELDS: &'static [OutputField];

    /// This value as a row: one field per column, in [`FIELDS`](Output::FIELDS)
    /// order; a `None` is null.
    fn into_row(self) -> Row;
}

/// A Rust type that can be an output column: `i64`, `f64`, `bool`, `String`
/// and `Option` of each (null when `None`). Used by `#[derive(Output)]`; a
/// field of any other type is a compile error naming this trait.
pub trait OutputValue: sealed::Sealed {
    /// The column type.
    const TYPE: Type;
    /// Whether the value may be null.
    const NULLABLE: bool;
    /// The value as a row field.
    fn into_value(self) -> Value;
}

mod sealed {
    /// Only the SDK's types are output values: each maps to one [`Type`](crate::Type).
    pub trait Sealed {}
}

macro_rules! output_value {
    ($($rust:ty => $ty:ident),* $(,)?) => {
        $(
            impl sealed::Sealed for $rust {}
            impl OutputValue for $rust {
                const TYPE: Type = Type::$ty;
                const NULLABLE: bool = false;
                fn into_value(self) -> Value {
                    Value::$ty(self)
                }
            }

            impl sealed::Sealed for Option<$rust> {}
            impl OutputValue for Option<$rust> {
                const TYPE: Type = Type::$ty;
                const NULLABLE: bool = true;
                fn into_value(self) -> Value {
                    self.map_or(Value::Null, Value::$ty)
                }
            }
        )*
    };
}

output_value!(i64 => I64, f64 => F64, bool => Bool, String => Str);

#[cfg(test)]
mod tests {
    use crate::prelude::*;
    use crate::{OutputField, Value};

    #[derive(Output)]
    struct Every {
        r#i: i64,
        f: f64,
        b: bool,
        s: String,
        oi: Option<i64>,
        #[output(name = "float or null")]
        of: Option<f64>,
        ob: Option<bool>,
        os: Option<String>,
    }

    #[test]
    fn every_supported_type_maps_to_its_column() {
        let declared: Vec<(&str, Type, bool)> = Every::FIELDS
            .iter()
            .map(|&OutputField { name, ty, nullable }| (name, ty, nullable))
            .collect();
        assert_eq!(
            declared,
            [
                ("i", Type::I64, false),
                ("f", Type::F64, false),
                ("b", Type::Bool, false),
                ("s", Type::Str, false),
                ("oi", Type::I64, true),
                ("float or null", Type::F64, true),
                ("ob", Type::Bool, true),
                ("os", Type::Str, true),
            ]
        );
        let row = Every {
            i: -1,
            f: 0.5,
            b: true,
            s: "x".into(),
            oi: Some(2),
            of: None,
            ob: Some(false),
            os: None,
        }
        .into_row();
        let expected = Row::new()
            .i64("i", -1)
            .f64("f", 0.5)
            .bool("b", true)
            .str("s", "x")
            .i64("oi", 2)
            .null("float or null")
            .bool("ob", false)
            .null("os");
        assert_eq!(row, expected);
        assert_eq!(row.get("os"), Some(&Value::Null));
    }

    #[test]
    fn describe_declares_the_struct_columns_after_earlier_ones() {
        let d = Describe::new()
            .input("x", Type::F64)
            .output("first", Type::Str)
            .outputs_of::<Every>();
        let names: Vec<&str> = d.outputs().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "first",
                "i",
                "f",
                "b",
                "s",
                "oi",
                "float or null",
                "ob",
                "os"
            ]
        );
        assert_eq!(d.outputs()[6], ("float or null".to_string(), Type::F64));
    }
}
