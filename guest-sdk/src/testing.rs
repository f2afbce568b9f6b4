//! Helpers for testing a plugin natively with `cargo test`, no wasm needed.
//!
//! They drive a [`Plugin`] the way the host does: configure it from
//! `[plugin.params]`-style pairs, pass only the columns it declared as inputs,
//! and check that the rows it returns hold the declared outputs in order.
//!
//! ```
//! use weir_guest::prelude::*;
//! use weir_guest::testing;
//!
//! struct Count;
//!
//! impl Plugin for Count {
//!     fn configure(_: &Params) -> Result<Self> {
//!         Ok(Count)
//!     }
//!     fn describe(&self) -> Describe {
//!         Describe::new().output("n", Type::I64)
//!     }
//!     fn aggregate(&self, _: &Row, _: Window, events: &Batch) -> Result<Vec<Row>> {
//!         Ok(vec![Row::new().i64("n", events.len() as i64)])
//!     }
//! }
//!
//! let window = Window { start: 0, end: 10 };
//! let rows = testing::run_aggregate::<Count>(
//!     testing::NO_PARAMS,
//!     Row::new(),
//!     window,
//!     Batch::new(vec![1, 2]),
//! )?;
//! assert_eq!(rows, vec![Row::new().i64("n", 2)]);
//! // No `with_filter()`: like the host, `run_filter` keeps everything.
//! assert_eq!(testing::run_filter::<Count>(testing::NO_PARAMS, Batch::new(vec![1, 2]))?, [true, true]);
//! # Ok::<(), weir_guest::Error>(())
//! ```

use crate::batch::internal::ColumnBuf;
use crate::driver::{decode_state, encode_state};
use crate::{
    Batch, Describe, Error, Incremental, Params, Plugin, Result, Row, Type, Value, Window,
};

/// An empty parameter list, for plugins that need none.
pub const NO_PARAMS: [(&str, &str); 0] = [];

/// Configures `P` from `params` and returns its [`Describe`].
pub fn describe<P: Plugin>(
    params: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>,
) -> Result<Describe> {
    Ok(configured::<P>(params)?.1)
}

/// Configures `P` from `params`, then aggregates `events` for `key` and
/// `window` as the host would.
///
/// Like the host, it passes only the columns `P` declared as inputs; a
/// declared input missing from `events`, or of another type, is an error. The
/// returned rows are checked against the declared outputs: each must hold
/// exactly those fields, in order, each null or of the declared type.
pub fn run_aggregate<P: Plugin>(
    params: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>,
    key: Row,
    window: Window,
    events: Batch,
) -> Result<Vec<Row>> {
    let (plugin, describe) = configured::<P>(params)?;
    let events = project(events, describe.inputs())?;
    let rows = plugin.aggregate(&key, window, &events)?;
    for (i, row) in rows.iter().enumerate() {
        check_row(i, row, describe.outputs())?;
    }
    Ok(rows)
}

/// Configures `P` from `params`, then filters `events` as the host would:
/// when `P` does not declare [`Describe::with_filter`] every event is kept
/// without calling it. Only declared input columns are passed, and a result
/// with the wrong number of entries is an error.
pub fn run_filter<P: Plugin>(
    params: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>,
    events: Batch,
) -> Result<Vec<bool>> {
    let (plugin, describe) = configured::<P>(params)?;
    if !describe.has_filter() {
        return Ok(vec![true; events.len()]);
    }
    let events = project(events, describe.inputs())?;
    let keep = plugin.filter(&events)?;
    if keep.len() != events.len() {
        return Err(Error::new(format!(
            "filter returned {} entries for {} events",
            keep.len(),
            events.len()
        )));
    }
    Ok(keep)
}

/// Asserts that `actual` and `expected` have the same rows and field names,
/// with equal values except f64s, which may differ by up to `tolerance`.
///
/// # Panics
/// When they differ, at the caller's line, naming the first difference (the row count,
/// a row's fields, or the row and field whose values differ), then both row lists.
#[track_caller]
pub fn assert_rows_approx(actual: &[Row], expected: &[Row], tolerance: f64) {
    if let Some(difference) = first_difference(actual, expected, tolerance) {
        panic!(
            "rows differ: {difference} (tolerance {tolerance})\n  actual: {actual:?}\nexpected: {expected:?}"
        );
    }
}

/// The first way `actual` differs from `expected` beyond `tolerance`, if any.
fn first_difference(actual: &[Row], expected: &[Row], tolerance: f64) -> Option<String> {
    if actual.len() != expected.len() {
        return Some(format!(
            "{} rows, expected {}",
            actual.len(),
            expected.len()
        ));
    }
    let names = |row: &Row| {
        row.fields()
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (index, (a, e)) in actual.iter().zip(expected).enumerate() {
        let (got, wanted) = (names(a), names(e));
        if got != wanted {
            return Some(format!(
                "row {index} has fields [{got}], expected [{wanted}]"
            ));
        }
        for ((name, av), (_, ev)) in a.fields().iter().zip(e.fields()) {
            let apart = match (av, ev) {
                (Value::F64(x), Value::F64(y)) if x == y || (x - y).abs() <= tolerance => {
                    continue;
                }
                (Value::F64(x), Value::F64(y)) => format!(", {} apart", (x - y).abs()),
                _ if av == ev => continue,
                _ => String::new(),
            };
            return Some(format!(
                "row {index} field `{name}` is {av:?}, expected {ev:?}{apart}"
            ));
        }
    }
    None
}

fn configured<P: Plugin>(
    params: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>,
) -> Result<(P, Describe)> {
    let plugin = P::configure(&Params::from_pairs(params))?;
    let describe = plugin.describe();
    Ok((plugin, describe))
}

/// Configures the incremental `P` from `params`, then computes `window`'s rows
/// for `key` the way the host does: each entry of `panes` (a pane's events,
/// sorted by time) is added to a fresh state, every state makes a round trip
/// through the bytes the host would hold, the pane states are merged left to
/// right, and the result is finished.
///
/// Rows are checked against the declared outputs like
/// [`run_aggregate`]'s. Comparing its rows with a whole-window version's over
/// the same events tests that `add` and `merge` agree with it.
pub fn run_incremental<P: Incremental>(
    params: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>,
    key: Row,
    window: Window,
    panes: Vec<Batch>,
) -> Result<Vec<Row>> {
    let plugin = P::configure(&Params::from_pairs(params))?;
    let describe = plugin.describe();
    let mut state = plugin.init();
    for pane in panes {
        let pane = project(pane, describe.inputs())?;
        let mut s = plugin.init();
        plugin.add(&mut s, &pane)?;
        let s: P::State = decode_state(&encode_state(&s)?)?;
        plugin.merge(&mut state, &s);
    }
    let state: P::State = decode_state(&encode_state(&state)?)?;
    let rows = plugin.finish(&key, window, &state)?;
    for (i, row) in rows.iter().enumerate() {
        check_row(i, row, describe.outputs())?;
    }
    Ok(rows)
}

/// Keeps only the declared input columns, as the host does.
fn project(mut events: Batch, inputs: &[(String, Type)]) -> Result<Batch> {
    let mut columns: Vec<ColumnBuf> = Vec::with_capacity(inputs.len());
    let present = events.columns_mut();
    for (name, ty) in inputs {
        let Some(at) = present.iter().position(|c| &c.name == name) else {
            return Err(Error::new(format!(
                "the plugin declares input `{name}` but the test batch has no such column"
            ))
            .with_hint(format!("add it with `Batch::with_{}`", with_suffix(*ty))));
        };
        let column = present.swap_remove(at);
        if column.data.ty() != *ty {
            return Err(Error::new(format!(
                "the plugin declares input `{name}` as {ty} but the test batch has it as {}",
                column.data.ty()
            )));
        }
        columns.push(column);
    }
    *present = columns;
    Ok(events)
}

fn with_suffix(ty: Type) -> &'static str {
    match ty {
        Type::F64 => "f64",
        Type::I64 => "i64",
        Type::Str => "str",
        Type::Bool => "bool",
    }
}

fn check_row(index: usize, row: &Row, outputs: &[(String, Type)]) -> Result<()> {
    let names = |fields: &mut dyn Iterator<Item = &String>| {
        fields.map(String::as_str).collect::<Vec<_>>().join(", ")
    };
    let got = names(&mut row.fields().iter().map(|(n, _)| n));
    let declared = names(&mut outputs.iter().map(|(n, _)| n));
    if got != declared {
        return Err(Error::new(format!(
            "row {index} has fields [{got}] but `describe` declares outputs [{declared}]"
        ))
        .with_hint("write every declared output, in the declared order"));
    }
    for ((name, value), (_, ty)) in row.fields().iter().zip(outputs) {
        if let Some(actual) = value.ty().filter(|actual| actual != ty) {
            return Err(Error::new(format!(
                "row {index} field `{name}` is {actual} but `describe` declares it as {ty}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Declares `x` (f64) and outputs `sum` (f64), but writes `sum` as an i64
    /// when the param `bad` is set.
    struct Sum {
        bad: bool,
    }

    impl Plugin for Sum {
        fn configure(params: &Params) -> Result<Self> {
            Ok(Sum {
                bad: params.get("bad").is_some(),
            })
        }
        fn describe(&self) -> Describe {
            Describe::new()
                .input("x", Type::F64)
                .output("sum", Type::F64)
                .with_filter()
        }
        fn filter(&self, events: &Batch) -> Result<Vec<bool>> {
            Ok(events.f64("x")?.iter().map(|v| v.is_some()).collect())
        }
        fn aggregate(&self, _: &Row, _: Window, events: &Batch) -> Result<Vec<Row>> {
            // Undeclared columns are not passed.
            assert!(events.column_names().all(|n| n == "x"));
            let sum: f64 = events.f64("x")?.non_null().sum();
            Ok(vec![if self.bad {
                Row::new().i64("sum", 0)
            } else {
                Row::new().f64("sum", sum)
            }])
        }
    }

    fn batch() -> Batch {
        Batch::new(vec![1, 2, 3])
            .with_f64("x", vec![Some(0.5), None, Some(2.0)])
            .with_str("extra", vec![Some("a"), Some("b"), Some("c")])
    }

    const W: Window = Window { start: 0, end: 10 };

    #[test]
    fn runs_like_the_host() {
        // 0.5 + 2.0 = 2.5; the null is skipped.
        let rows = run_aggregate::<Sum>(NO_PARAMS, Row::new(), W, batch()).unwrap();
        assert_eq!(rows, vec![Row::new().f64("sum", 2.5)]);
        assert_eq!(
            run_filter::<Sum>(NO_PARAMS, batch()).unwrap(),
            [true, false, true]
        );
        assert!(describe::<Sum>(NO_PARAMS).unwrap().has_filter());
    }

    #[test]
    fn wrong_output_type_is_reported() {
        let err = run_aggregate::<Sum>([("bad", "1")], Row::new(), W, batch()).unwrap_err();
        assert_eq!(
            err.message,
            "row 0 field `sum` is i64 but `describe` declares it as f64"
        );
    }

    #[test]
    fn missing_or_mistyped_declared_input_is_reported() {
        let err = run_aggregate::<Sum>(NO_PARAMS, Row::new(), W, Batch::new(vec![1])).unwrap_err();
        assert_eq!(
            err.message,
            "the plugin declares input `x` but the test batch has no such column"
        );
        let mistyped = Batch::new(vec![1]).with_i64("x", vec![Some(1)]);
        let err = run_filter::<Sum>(NO_PARAMS, mistyped).unwrap_err();
        assert_eq!(
            err.message,
            "the plugin declares input `x` as f64 but the test batch has it as i64"
        );
    }

    #[test]
    fn approx_rows_compare_floats_with_tolerance() {
        let a = [Row::new().f64("v", 0.1 + 0.2).str("s", "x")];
        assert_rows_approx(&a, &[Row::new().f64("v", 0.3).str("s", "x")], 1e-12);
        let outcome = std::panic::catch_unwind(|| {
            assert_rows_approx(&a, &[Row::new().f64("v", 0.31).str("s", "x")], 1e-3)
        });
        assert!(outcome.is_err());
    }

    /// The message of the panic `f` raises, and the line it was raised at.
    fn panic_of(f: impl FnOnce() + std::panic::UnwindSafe) -> (String, u32) {
        use std::sync::{Arc, Mutex};
        let line = Arc::new(Mutex::new(0));
        let seen = line.clone();
        // Tests run on threads side by side: only this thread's panic is ours.
        let this = std::thread::current().id();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let ours = std::thread::current().id() == this;
            if let Some(at) = info.location().filter(|at| ours && at.file() == file!()) {
                *seen.lock().unwrap() = at.line();
            }
        }));
        let payload = std::panic::catch_unwind(f).expect_err("it panics");
        std::panic::set_hook(previous);
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        let line = *line.lock().unwrap();
        (message, line)
    }

    #[test]
    fn a_difference_is_named_at_the_callers_line() {
        let actual = [
            Row::new().str("k", "a").f64("v", 1.0),
            Row::new().str("k", "b").f64("v", 0.1 + 0.2),
        ];
        let expected = [
            Row::new().str("k", "a").f64("v", 1.0),
            Row::new().str("k", "b").f64("v", 0.31),
        ];
        let call = line!() + 1;
        let (message, line) = panic_of(|| assert_rows_approx(&actual, &expected, 1e-3));
        assert_eq!(
            line, call,
            "the panic is at the call, not inside the helper"
        );
        let first = message.lines().next().unwrap();
        // 0.1 + 0.2 is 0.30000000000000004, 0.31 - that apart.
        assert_eq!(
            first,
            format!(
                "rows differ: row 1 field `v` is F64({:?}), expected F64(0.31), {} apart (tolerance 0.001)",
                0.1 + 0.2,
                (0.1_f64 + 0.2 - 0.31).abs()
            )
        );
        assert!(message.contains("  actual: [Row"), "{message}");

        let other_string = [Row::new().str("k", "a").f64("v", 1.0)];
        let (message, _) = panic_of(|| {
            assert_rows_approx(
                &other_string,
                &[Row::new().str("k", "z").f64("v", 1.0)],
                0.5,
            )
        });
        assert!(
            message.starts_with(
                "rows differ: row 0 field `k` is Str(\"a\"), expected Str(\"z\") (tolerance 0.5)"
            ),
            "{message}"
        );
        let (message, _) = panic_of(|| {
            assert_rows_approx(&other_string, &[Row::new().str("k", "a").i64("n", 1)], 0.5)
        });
        assert!(
            message.starts_with("rows differ: row 0 has fields [k, v], expected [k, n]"),
            "{message}"
        );
        let (message, _) = panic_of(|| assert_rows_approx(&actual, &expected[..1], 0.5));
        assert!(
            message.starts_with("rows differ: 2 rows, expected 1"),
            "{message}"
        );
    }
}
