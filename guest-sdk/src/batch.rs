//! [`Batch`]: a window's (or an ingest batch's) events in columnar form, and
//! [`Column`], a typed, null-aware view of one of its columns.

use std::sync::Arc;

use crate::{Error, Result, Type};

/// Events in columnar form, sorted by event time (ties in arrival order).
///
/// The host passes exactly the columns declared with
/// [`Describe::input`](crate::Describe::input), in the declared types. Read one
/// by name with [`f64`](Batch::f64), [`i64`](Batch::i64), [`str`](Batch::str)
/// or [`bool`](Batch::bool).
///
/// ```
/// use weir_guest::Batch;
///
/// let batch = Batch::new(vec![10, 20, 30])
///     .with_f64("price", vec![Some(1.5), None, Some(2.5)])
///     .with_str("side", vec![Some("buy"), Some("sell"), None]);
/// let price = batch.f64("price")?;
/// assert_eq!(price.get(1), None);
/// assert_eq!(price.non_null().sum::<f64>(), 4.0);
/// assert_eq!(batch.str("side")?.get(0), Some("buy"));
/// assert!(batch.i64("price").is_err()); // it is an f64 column
/// # Ok::<(), weir_guest::Error>(())
/// ```
///
/// A batch is a cheap view: [`slice`](Batch::slice) and `clone` share the
/// events instead of copying them.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    timestamps: Arc<Vec<i64>>,
    columns: Arc<Vec<internal::ColumnBuf>>,
    /// The events of the view: `[from, to)` of the shared lists.
    from: usize,
    to: usize,
}

impl PartialEq for Batch {
    /// Same events: equal timestamps and the same columns (name, type, values
    /// and nulls) in the same order.
    fn eq(&self, other: &Batch) -> bool {
        self.timestamps() == other.timestamps()
            && self.columns.len() == other.columns.len()
            && self
                .columns
                .iter()
                .zip(other.columns.iter())
                .all(|(a, b)| a.name == b.name && self.slice_of(a) == other.slice_of(b))
    }
}

impl Batch {
    /// A batch of events at `timestamps` (epoch milliseconds) with no columns
    /// yet; add them with the `with_*` constructors. For native tests.
    pub fn new(timestamps: Vec<i64>) -> Self {
        Batch::from_parts(timestamps, Vec::new())
    }

    /// A batch over whole lists (every column has one entry per timestamp).
    pub(crate) fn from_parts(timestamps: Vec<i64>, columns: Vec<internal::ColumnBuf>) -> Self {
        let to = timestamps.len();
        Batch {
            timestamps: Arc::new(timestamps),
            columns: Arc::new(columns),
            from: 0,
            to,
        }
    }

    /// The events `[from, from + len)` of this batch, sharing its storage
    /// (clamped to the batch's length).
    ///
    /// ```
    /// use weir_guest::Batch;
    ///
    /// let batch = Batch::new(vec![10, 20, 30]).with_i64("n", vec![Some(1), None, Some(3)]);
    /// let tail = batch.slice(1, 2);
    /// assert_eq!(tail.timestamps(), &[20, 30]);
    /// assert_eq!(tail.i64("n")?.get(0), None);
    /// assert_eq!(tail.i64("n")?.get(1), Some(3));
    /// # Ok::<(), weir_guest::Error>(())
    /// ```
    #[must_use]
    pub fn slice(&self, from: usize, len: usize) -> Batch {
        let start = self.from.saturating_add(from).min(self.to);
        let end = start.saturating_add(len).min(self.to);
        Batch {
            timestamps: Arc::clone(&self.timestamps),
            columns: Arc::clone(&self.columns),
            from: start,
            to: end,
        }
    }

    /// The columns' storage with only the view's entries, for comparisons.
    fn slice_of<'a>(
        &self,
        c: &'a internal::ColumnBuf,
    ) -> (internal::DataRef<'a>, Option<&'a [bool]>) {
        let r = self.from..self.to;
        (c.data.slice(r.clone()), c.nulls.as_deref().map(|n| &n[r]))
    }

    /// The whole-list storage, unshared (copied only if shared), for the
    /// SDK's own rewrites of a full batch.
    pub(crate) fn columns_mut(&mut self) -> &mut Vec<internal::ColumnBuf> {
        self.narrow();
        Arc::make_mut(&mut self.columns)
    }

    /// Makes the view cover its whole storage, copying the view's entries out
    /// when it is a part of a larger batch.
    fn narrow(&mut self) {
        if self.from == 0 && self.to == self.timestamps.len() {
            return;
        }
        let r = self.from..self.to;
        let timestamps = self.timestamps[r.clone()].to_vec();
        let columns = self
            .columns
            .iter()
            .map(|c| internal::ColumnBuf {
                name: c.name.clone(),
                data: c.data.slice(r.clone()).to_owned(),
                nulls: c.nulls.as_ref().map(|n| n[r.clone()].to_vec()),
            })
            .collect();
        *self = Batch::from_parts(timestamps, columns);
    }

    /// Adds (or replaces) an f64 column; `None` is null.
    ///
    /// # Panics
    /// If `values` does not have one entry per timestamp. This constructor is
    /// meant for tests, where a wrong length is a bug in the test.
    #[must_use]
    pub fn with_f64(self, name: impl Into<String>, values: Vec<Option<f64>>) -> Self {
        self.with(name.into(), values, internal::Data::F64)
    }

    /// Adds (or replaces) an i64 column; `None` is null.
    ///
    /// # Panics
    /// If `values` does not have one entry per timestamp (see
    /// [`with_f64`](Batch::with_f64)).
    #[must_use]
    pub fn with_i64(self, name: impl Into<String>, values: Vec<Option<i64>>) -> Self {
        self.with(name.into(), values, internal::Data::I64)
    }

    /// Adds (or replaces) a string column; `None` is null.
    ///
    /// # Panics
    /// If `values` does not have one entry per timestamp (see
    /// [`with_f64`](Batch::with_f64)).
    #[must_use]
    pub fn with_str<S: Into<String>>(
        self,
        name: impl Into<String>,
        values: Vec<Option<S>>,
    ) -> Self {
        let values = values.into_iter().map(|v| v.map(Into::into)).collect();
        self.with(name.into(), values, internal::Data::Str)
    }

    /// Adds (or replaces) a bool column; `None` is null.
    ///
    /// # Panics
    /// If `values` does not have one entry per timestamp (see
    /// [`with_f64`](Batch::with_f64)).
    #[must_use]
    pub fn with_bool(self, name: impl Into<String>, values: Vec<Option<bool>>) -> Self {
        self.with(name.into(), values, internal::Data::Bool)
    }

    fn with<T: Default>(
        mut self,
        name: String,
        values: Vec<Option<T>>,
        wrap: fn(Vec<T>) -> internal::Data,
    ) -> Self {
        self.narrow();
        assert_eq!(
            values.len(),
            self.len(),
            "column `{name}` has {} values for {} timestamps",
            values.len(),
            self.len()
        );
        let nulls: Vec<bool> = values.iter().map(Option::is_none).collect();
        let nulls = nulls.contains(&true).then_some(nulls);
        let data = wrap(values.into_iter().map(Option::unwrap_or_default).collect());
        let column = internal::ColumnBuf { name, data, nulls };
        let columns = self.columns_mut();
        match columns.iter_mut().find(|c| c.name == column.name) {
            Some(existing) => *existing = column,
            None => columns.push(column),
        }
        self
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.to - self.from
    }

    /// Whether there are no events.
    pub fn is_empty(&self) -> bool {
        self.from == self.to
    }

    /// Event time of each event, epoch milliseconds, ascending.
    pub fn timestamps(&self) -> &[i64] {
        &self.timestamps[self.from..self.to]
    }

    /// Names of the columns present, in order.
    pub fn column_names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|c| c.name.as_str())
    }

    /// Type of the column `name`, if present.
    pub fn column_type(&self, name: &str) -> Option<Type> {
        self.columns
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.data.ty())
    }

    /// The f64 column `name`; an error if it is absent or has another type.
    pub fn f64(&self, name: &str) -> Result<Column<'_, f64>> {
        self.column(name)
    }

    /// The i64 column `name`; an error if it is absent or has another type.
    pub fn i64(&self, name: &str) -> Result<Column<'_, i64>> {
        self.column(name)
    }

    /// The string column `name`; an error if it is absent or has another type.
    pub fn str(&self, name: &str) -> Result<Column<'_, String>> {
        self.column(name)
    }

    /// The bool column `name`; an error if it is absent or has another type.
    pub fn bool(&self, name: &str) -> Result<Column<'_, bool>> {
        self.column(name)
    }

    fn column<T: ColumnType>(&self, name: &str) -> Result<Column<'_, T>> {
        let Some(column) = self.columns.iter().find(|c| c.name == name) else {
            let present: Vec<String> = self.column_names().map(|n| format!("`{n}`")).collect();
            let present = if present.is_empty() {
                "the batch has no columns".to_string()
            } else {
                format!("columns present: {}", present.join(", "))
            };
            return Err(Error::new(format!(
                "input column `{name}` is not in the batch ({present})"
            ))
            .with_hint(format!(
                "declare it in `describe` with `.input(\"{name}\", Type::{:?})`",
                T::TYPE
            )));
        };
        match T::values(&column.data) {
            Some(values) => Ok(Column {
                name: &column.name,
                values: &values[self.from..self.to],
                nulls: column.nulls.as_deref().map(|n| &n[self.from..self.to]),
            }),
            None => {
                let actual = column.data.ty();
                Err(Error::new(format!(
                    "input column `{name}` is {actual}, not {}",
                    T::TYPE
                ))
                .with_hint(format!(
                    "read it with `batch.{}(\"{name}\")`, or declare it as Type::{:?}",
                    accessor(actual),
                    T::TYPE
                )))
            }
        }
    }
}

fn accessor(ty: Type) -> &'static str {
    match ty {
        Type::F64 => "f64",
        Type::I64 => "i64",
        Type::Str => "str",
        Type::Bool => "bool",
    }
}

/// A typed, null-aware view of one batch column, one entry per event.
///
/// `T` is the stored type: `f64`, `i64`, `bool` or `String`. Entries are read
/// as [`ColumnType::Item`]: the value itself, or `&str` for strings.
pub struct Column<'a, T> {
    name: &'a str,
    values: &'a [T],
    nulls: Option<&'a [bool]>,
}

impl<T> Clone for Column<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Column<'_, T> {}

impl<T: std::fmt::Debug> std::fmt::Debug for Column<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Column")
            .field("name", &self.name)
            .field("values", &self.values)
            .field("nulls", &self.nulls)
            .finish()
    }
}

impl<'a, T: ColumnType> Column<'a, T> {
    /// The column's name.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// Number of entries (one per event).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the column has no entries.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Whether entry `i` is null (false when `i` is out of range).
    pub fn is_null(&self, i: usize) -> bool {
        self.nulls.and_then(|n| n.get(i)).copied().unwrap_or(false)
    }

    /// Number of null entries.
    pub fn null_count(&self) -> usize {
        self.nulls
            .map_or(0, |n| n.iter().filter(|&&null| null).count())
    }

    /// Entry `i`; `None` when it is null or out of range.
    pub fn get(&self, i: usize) -> Option<T::Item<'a>> {
        if self.is_null(i) {
            return None;
        }
        self.values.get(i).map(T::item)
    }

    /// Every entry in event order, `None` for nulls.
    pub fn iter(&self) -> impl Iterator<Item = Option<T::Item<'a>>> + 'a {
        let nulls = self.nulls;
        self.values.iter().enumerate().map(move |(i, v)| {
            let null = nulls.and_then(|n| n.get(i)).copied().unwrap_or(false);
            (!null).then(|| T::item(v))
        })
    }

    /// The non-null entries in event order.
    pub fn non_null(&self) -> impl Iterator<Item = T::Item<'a>> + 'a {
        self.iter().flatten()
    }

    /// The raw values; null entries hold the type's zero value (0, "", false).
    pub fn values(&self) -> &'a [T] {
        self.values
    }
}

/// A type a [`Column`] can hold: `f64`, `i64`, `bool` or `String`. Sealed.
pub trait ColumnType: internal::Sealed + Sized + 'static {
    /// What one entry reads as: the value for numbers and booleans, `&str`
    /// for strings.
    type Item<'a>: Copy;

    /// The field type of such a column.
    const TYPE: Type;

    #[doc(hidden)]
    fn item(value: &Self) -> Self::Item<'_>;

    #[doc(hidden)]
    fn values(data: &internal::Data) -> Option<&[Self]>;
}

macro_rules! column_type {
    ($ty:ty, $item:ty, $variant:ident, |$v:ident| $read:expr) => {
        impl internal::Sealed for $ty {}
        impl ColumnType for $ty {
            type Item<'a> = $item;
            const TYPE: Type = Type::$variant;
            fn item($v: &Self) -> Self::Item<'_> {
                $read
            }
            fn values(data: &internal::Data) -> Option<&[Self]> {
                match data {
                    internal::Data::$variant(values) => Some(values),
                    _ => None,
                }
            }
        }
    };
}

column_type!(f64, f64, F64, |v| *v);
column_type!(i64, i64, I64, |v| *v);
column_type!(bool, bool, Bool, |v| *v);
column_type!(String, &'a str, Str, |v| v.as_str());

pub(crate) mod internal {
    //! Storage behind [`Batch`](super::Batch); public only so the sealed
    //! [`ColumnType`](super::ColumnType) can name it. Not reachable from
    //! outside the crate.
    use crate::Type;

    pub trait Sealed {}

    #[derive(Debug, Clone, PartialEq)]
    pub struct ColumnBuf {
        pub name: String,
        pub data: Data,
        pub nulls: Option<Vec<bool>>,
    }

    #[derive(Debug, Clone, PartialEq)]
    pub enum Data {
        F64(Vec<f64>),
        I64(Vec<i64>),
        Str(Vec<String>),
        Bool(Vec<bool>),
    }

    /// A borrowed part of a [`Data`].
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub enum DataRef<'a> {
        F64(&'a [f64]),
        I64(&'a [i64]),
        Str(&'a [String]),
        Bool(&'a [bool]),
    }

    impl DataRef<'_> {
        pub fn to_owned(self) -> Data {
            match self {
                DataRef::F64(v) => Data::F64(v.to_vec()),
                DataRef::I64(v) => Data::I64(v.to_vec()),
                DataRef::Str(v) => Data::Str(v.to_vec()),
                DataRef::Bool(v) => Data::Bool(v.to_vec()),
            }
        }
    }

    impl Data {
        pub fn slice(&self, r: std::ops::Range<usize>) -> DataRef<'_> {
            match self {
                Data::F64(v) => DataRef::F64(&v[r]),
                Data::I64(v) => DataRef::I64(&v[r]),
                Data::Str(v) => DataRef::Str(&v[r]),
                Data::Bool(v) => DataRef::Bool(&v[r]),
            }
        }

        pub fn ty(&self) -> Type {
            match self {
                Data::F64(_) => Type::F64,
                Data::I64(_) => Type::I64,
                Data::Str(_) => Type::Str,
                Data::Bool(_) => Type::Bool,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> Batch {
        Batch::new(vec![1, 2, 3])
            .with_i64("n", vec![Some(5), None, Some(-1)])
            .with_bool("ok", vec![Some(true), Some(false), Some(true)])
    }

    #[test]
    fn column_reads_values_and_nulls() {
        let b = batch();
        let n = b.i64("n").unwrap();
        assert_eq!(n.len(), 3);
        assert_eq!(n.values(), &[5, 0, -1]);
        assert_eq!(n.iter().collect::<Vec<_>>(), [Some(5), None, Some(-1)]);
        assert_eq!(n.non_null().collect::<Vec<_>>(), [5, -1]);
        assert_eq!(n.null_count(), 1);
        assert!(n.is_null(1) && !n.is_null(0) && !n.is_null(99));
        assert_eq!(n.get(99), None);
        assert_eq!(n.name(), "n");
        let ok = b.bool("ok").unwrap();
        assert_eq!(ok.null_count(), 0);
        assert_eq!(ok.get(1), Some(false));
    }

    #[test]
    fn absent_column_error_lists_present_columns() {
        let err = batch().f64("price").unwrap_err();
        assert_eq!(
            err.message,
            "input column `price` is not in the batch (columns present: `n`, `ok`)"
        );
        assert_eq!(
            err.hint.as_deref(),
            Some("declare it in `describe` with `.input(\"price\", Type::F64)`")
        );
        let empty = Batch::new(vec![]).str("s").unwrap_err();
        assert_eq!(
            empty.message,
            "input column `s` is not in the batch (the batch has no columns)"
        );
    }

    #[test]
    fn wrong_type_error_names_both_types() {
        let err = batch().f64("n").unwrap_err();
        assert_eq!(err.message, "input column `n` is i64, not f64");
        assert_eq!(
            err.hint.as_deref(),
            Some("read it with `batch.i64(\"n\")`, or declare it as Type::F64")
        );
    }

    #[test]
    fn with_replaces_a_column_of_the_same_name() {
        let b = batch().with_str("n", vec![Some("a"), Some("b"), Some("c")]);
        assert_eq!(b.column_names().collect::<Vec<_>>(), ["n", "ok"]);
        assert_eq!(b.column_type("n"), Some(Type::Str));
        assert_eq!(b.str("n").unwrap().values(), ["a", "b", "c"]);
    }

    #[test]
    #[should_panic(expected = "column `x` has 1 values for 3 timestamps")]
    fn with_panics_on_length_mismatch() {
        let _ = batch().with_f64("x", vec![Some(1.0)]);
    }
}
