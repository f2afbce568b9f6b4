//! [`Driver`]: a configured plugin of either style behind one object-safe
//! interface shaped like the WIT contract (batched groups, incremental
//! steps), in SDK types.
//!
//! The wasm exports (`adapter.rs`) convert WIT values and call a driver; a
//! host that links plugins natively (Weir's benchmarks, to measure what the
//! sandbox costs) calls the same driver directly. Tenants never use this
//! module: they implement [`Plugin`] or [`Incremental`].

use crate::{Batch, Describe, Error, Incremental, Params, Plugin, Result, Row, Value, Window};

/// The values of one column of a [`batch`], one entry per event.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    /// f64 values.
    F64(Vec<f64>),
    /// i64 values.
    I64(Vec<i64>),
    /// Strings.
    Str(Vec<String>),
    /// Booleans.
    Bool(Vec<bool>),
}

/// A batch from whole columns, moved in without copying: `(name, values, nulls)`, where a
/// null entry holds the type's zero value and `nulls[i]` marks it.
///
/// # Panics
/// If a column does not have one entry per timestamp.
pub fn batch(timestamps: Vec<i64>, columns: Vec<(String, ColumnData, Option<Vec<bool>>)>) -> Batch {
    use crate::batch::internal::{ColumnBuf, Data};
    let n = timestamps.len();
    let columns = columns
        .into_iter()
        .map(|(name, data, nulls)| {
            let data = match data {
                ColumnData::F64(v) => Data::F64(v),
                ColumnData::I64(v) => Data::I64(v),
                ColumnData::Str(v) => Data::Str(v),
                ColumnData::Bool(v) => Data::Bool(v),
            };
            let len = match &data {
                Data::F64(v) => v.len(),
                Data::I64(v) => v.len(),
                Data::Str(v) => v.len(),
                Data::Bool(v) => v.len(),
            };
            assert!(
                len == n && nulls.as_ref().is_none_or(|m| m.len() == n),
                "column `{name}` has {len} values for {n} timestamps"
            );
            ColumnBuf { name, data, nulls }
        })
        .collect();
    Batch::from_parts(timestamps, columns)
}

/// One key's window in a batched whole-window call: the events
/// `[offset, offset + len)` of the call's batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The key's values, one per key field.
    pub key: Vec<Value>,
    /// The window.
    pub window: Window,
    /// Index of the first event.
    pub offset: u32,
    /// Number of events.
    pub len: u32,
}

/// How one slot of a [`Step`] gets its state (see the WIT `slot`).
#[derive(Debug, Clone, PartialEq)]
pub enum Slot {
    /// A state the host holds, as an earlier step returned it.
    Held(Vec<u8>),
    /// `init`, then the events `[offset, offset + len)` added.
    Fresh(u32, u32),
    /// An earlier slot's state with the events `[offset, offset + len)` added.
    Add(u32, u32, u32),
    /// Two earlier slots merged, the first covering the earlier events.
    Merge(u32, u32),
}

/// A window to finish from a slot's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    /// The key's values, one per key field.
    pub key: Vec<Value>,
    /// The window.
    pub window: Window,
    /// The slot whose state covers exactly the window's events.
    pub slot: u32,
}

/// One incremental step: slots evaluated in order, states kept, windows
/// finished.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Step {
    /// The slots.
    pub slots: Vec<Slot>,
    /// The slots whose encoded states are returned, in order.
    pub keep: Vec<u32>,
    /// The windows to finish.
    pub finish: Vec<Finish>,
}

/// What a step produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepOutput {
    /// One encoded state per [`Step::keep`] entry.
    pub states: Vec<Vec<u8>>,
    /// One result per [`Step::finish`] entry: positional rows.
    pub rows: Vec<Result<Vec<Vec<Value>>>>,
}

/// A configured plugin, whole-window or incremental, as a host drives it.
pub trait Driver: Send {
    /// The plugin's inputs, outputs and filter flag.
    fn describe(&self) -> &Describe;
    /// `Some(identity of the state type)` for an incremental plugin.
    fn state_type(&self) -> Option<&str>;
    /// Filters an ingest batch: one flag per event.
    fn filter(&self, events: &Batch) -> Result<Vec<bool>>;
    /// Whole-window: one result per group, rows positional in output order.
    fn aggregate(&self, groups: &[Group], events: &Batch) -> Vec<Result<Vec<Vec<Value>>>>;
    /// Incremental: evaluates a step.
    fn step(&self, step: &Step, events: &Batch) -> Result<StepOutput>;
}

/// Configures a whole-window plugin as a driver; `key_fields` names the
/// values of every group's key.
pub fn whole<P: Plugin + Send>(params: &Params, key_fields: &[String]) -> Result<Box<dyn Driver>> {
    let plugin = P::configure(params)?;
    let describe = plugin.describe();
    Ok(Box::new(Whole {
        plugin,
        describe,
        key_fields: key_fields.to_vec(),
    }))
}

/// Configures an incremental plugin as a driver.
pub fn incremental<P: Incremental + Send>(
    params: &Params,
    key_fields: &[String],
) -> Result<Box<dyn Driver>> {
    let plugin = P::configure(params)?;
    let describe = plugin.describe();
    Ok(Box::new(Inc {
        plugin,
        describe,
        key_fields: key_fields.to_vec(),
        state_type: state_type::<P>(),
    }))
}

/// The identity of `P`'s state type: its Rust type name and
/// [`Incremental::STATE_VERSION`].
pub fn state_type<P: Incremental>() -> String {
    format!(
        "{}/v{}",
        std::any::type_name::<P::State>(),
        P::STATE_VERSION
    )
}

struct Whole<P> {
    plugin: P,
    describe: Describe,
    key_fields: Vec<String>,
}

struct Inc<P> {
    plugin: P,
    describe: Describe,
    key_fields: Vec<String>,
    state_type: String,
}

/// Names a group's key values with the key fields.
fn key_row(key_fields: &[String], key: &[Value]) -> Row {
    key_fields
        .iter()
        .cloned()
        .zip(key.iter().cloned())
        .collect()
}

/// Checks a filter result's length.
fn checked_filter(keep: Vec<bool>, events: &Batch) -> Result<Vec<bool>> {
    if keep.len() != events.len() {
        return Err(Error::new(format!(
            "filter returned {} entries for {} events",
            keep.len(),
            events.len()
        ))
        .with_hint("return one bool per event of the batch"));
    }
    Ok(keep)
}

/// Turns named rows into positional rows in the declared output order.
///
/// A row whose fields are exactly the outputs, in order, is taken as is. A
/// row in another order is reordered; a declared output it lacks is null; a
/// field that is not a declared output is an error.
pub(crate) fn positional(describe: &Describe, rows: Vec<Row>) -> Result<Vec<Vec<Value>>> {
    let outputs = describe.outputs();
    rows.into_iter()
        .map(|row| {
            let in_order = row.len() == outputs.len()
                && row
                    .fields()
                    .iter()
                    .zip(outputs)
                    .all(|((n, _), (o, _))| n == o);
            if in_order {
                return Ok(row.into_fields().into_iter().map(|(_, v)| v).collect());
            }
            let mut values = vec![Value::Null; outputs.len()];
            for (name, value) in row.into_fields() {
                let Some(at) = outputs.iter().position(|(o, _)| *o == name) else {
                    return Err(Error::new(format!(
                        "the row has a field `{name}` that is not a declared output"
                    ))
                    .with_hint(format!(
                        "declare it in `describe` with `.output(\"{name}\", …)`, or drop it"
                    )));
                };
                values[at] = value;
            }
            Ok(values)
        })
        .collect()
}

impl<P: Plugin + Send> Driver for Whole<P> {
    fn describe(&self) -> &Describe {
        &self.describe
    }

    fn state_type(&self) -> Option<&str> {
        None
    }

    fn filter(&self, events: &Batch) -> Result<Vec<bool>> {
        checked_filter(self.plugin.filter(events)?, events)
    }

    fn aggregate(&self, groups: &[Group], events: &Batch) -> Vec<Result<Vec<Vec<Value>>>> {
        groups
            .iter()
            .map(|g| {
                let key = key_row(&self.key_fields, &g.key);
                let part = events.slice(g.offset as usize, g.len as usize);
                let rows = self.plugin.aggregate(&key, g.window, &part)?;
                positional(&self.describe, rows)
            })
            .collect()
    }

    fn step(&self, _step: &Step, _events: &Batch) -> Result<StepOutput> {
        Err(Error::new("this plugin is not incremental")
            .with_hint("the host calls `aggregate` for whole-window plugins"))
    }
}

impl<P: Incremental + Send> Driver for Inc<P> {
    fn describe(&self) -> &Describe {
        &self.describe
    }

    fn state_type(&self) -> Option<&str> {
        Some(&self.state_type)
    }

    fn filter(&self, events: &Batch) -> Result<Vec<bool>> {
        checked_filter(self.plugin.filter(events)?, events)
    }

    fn aggregate(&self, groups: &[Group], _events: &Batch) -> Vec<Result<Vec<Vec<Value>>>> {
        groups
            .iter()
            .map(|_| {
                Err(Error::new("this plugin is incremental")
                    .with_hint("the host calls `step` for incremental plugins"))
            })
            .collect()
    }

    fn step(&self, step: &Step, events: &Batch) -> Result<StepOutput> {
        let p = &self.plugin;
        let mut slots: Vec<P::State> = Vec::with_capacity(step.slots.len());
        let earlier = |slots: &[P::State], i: u32| -> Result<P::State> {
            slots.get(i as usize).cloned().ok_or_else(|| {
                Error::new(format!(
                    "step slot {} names slot {i}, which is not an earlier slot",
                    slots.len()
                ))
            })
        };
        for slot in &step.slots {
            let state = match slot {
                Slot::Held(bytes) => decode_state::<P::State>(bytes)?,
                Slot::Fresh(offset, len) => {
                    let mut s = p.init();
                    p.add(&mut s, &events.slice(*offset as usize, *len as usize))?;
                    s
                }
                Slot::Add(i, offset, len) => {
                    let mut s = earlier(&slots, *i)?;
                    p.add(&mut s, &events.slice(*offset as usize, *len as usize))?;
                    s
                }
                Slot::Merge(a, b) => {
                    let mut s = earlier(&slots, *a)?;
                    let later = slots.get(*b as usize).ok_or_else(|| {
                        Error::new(format!("step slot merges slot {b}, which is not earlier"))
                    })?;
                    p.merge(&mut s, later);
                    s
                }
            };
            slots.push(state);
        }
        let slot = |i: u32| {
            slots
                .get(i as usize)
                .ok_or_else(|| Error::new(format!("step names slot {i}, which does not exist")))
        };
        let states = step
            .keep
            .iter()
            .map(|&i| encode_state(slot(i)?))
            .collect::<Result<Vec<_>>>()?;
        let rows = step
            .finish
            .iter()
            .map(|f| {
                let key = key_row(&self.key_fields, &f.key);
                let rows = p.finish(&key, f.window, slot(f.slot)?)?;
                positional(&self.describe, rows)
            })
            .collect();
        Ok(StepOutput { states, rows })
    }
}

/// Encodes a state for the host.
pub(crate) fn encode_state<S: serde::Serialize>(state: &S) -> Result<Vec<u8>> {
    postcard::to_stdvec(state).map_err(|e| Error::new(format!("cannot encode the state: {e}")))
}

/// Decodes a state the host held.
pub(crate) fn decode_state<S: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<S> {
    postcard::from_bytes(bytes).map_err(|e| {
        Error::new(format!("cannot decode a state the host held: {e}")).with_hint(
            "the state type changed without a new STATE_VERSION; bump Incremental::STATE_VERSION",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Type;

    /// Count and sum of `x`, incremental.
    struct Sum;

    impl Incremental for Sum {
        type State = (i64, f64);
        fn configure(_: &Params) -> Result<Self> {
            Ok(Sum)
        }
        fn describe(&self) -> Describe {
            Describe::new()
                .input("x", Type::F64)
                .output("n", Type::I64)
                .output("sum", Type::F64)
        }
        fn init(&self) -> (i64, f64) {
            (0, 0.0)
        }
        fn add(&self, s: &mut (i64, f64), events: &Batch) -> Result<()> {
            for x in events.f64("x")?.non_null() {
                s.0 += 1;
                s.1 += x;
            }
            Ok(())
        }
        fn merge(&self, s: &mut (i64, f64), later: &(i64, f64)) {
            s.0 += later.0;
            s.1 += later.1;
        }
        fn finish(&self, key: &Row, _: Window, s: &(i64, f64)) -> Result<Vec<Row>> {
            if key.get("k") == Some(&Value::Str("fail".into())) {
                return Err(Error::new("asked to fail"));
            }
            // Built in reverse order: the driver puts it in declared order.
            Ok(vec![Row::new().f64("sum", s.1).i64("n", s.0)])
        }
    }

    /// Event count per window, whole-window.
    struct Count;

    impl Plugin for Count {
        fn configure(_: &Params) -> Result<Self> {
            Ok(Count)
        }
        fn describe(&self) -> Describe {
            Describe::new()
                .output("key", Type::Str)
                .output("n", Type::I64)
        }
        fn aggregate(&self, key: &Row, _: Window, events: &Batch) -> Result<Vec<Row>> {
            let k = key.get("k").and_then(Value::as_str).unwrap_or("?");
            if k == "bad" {
                return Ok(vec![Row::new().i64("undeclared", 1)]);
            }
            Ok(vec![Row::new().str("key", k).i64("n", events.len() as i64)])
        }
    }

    const W: Window = Window { start: 0, end: 10 };

    fn events() -> Batch {
        Batch::new(vec![1, 2, 3, 4, 5])
            .with_f64("x", vec![Some(1.0), Some(2.0), None, Some(4.0), Some(8.0)])
    }

    fn key(k: &str) -> Vec<Value> {
        vec![Value::Str(k.into())]
    }

    #[test]
    fn whole_window_groups_are_slices_of_the_batch() {
        let d = whole::<Count>(&Params::new(), &["k".into()]).unwrap();
        assert_eq!(d.state_type(), None);
        let g = |k: &str, offset, len| Group {
            key: key(k),
            window: W,
            offset,
            len,
        };
        let out = d.aggregate(&[g("a", 0, 2), g("bad", 2, 1), g("c", 2, 3)], &events());
        assert_eq!(
            out[0].as_ref().unwrap(),
            &vec![vec![Value::Str("a".into()), Value::I64(2)]]
        );
        let err = out[1].as_ref().unwrap_err();
        assert!(err.message.contains("`undeclared`"), "{err}");
        // A failed group does not fail the next one: events 2, 3 and 4.
        assert_eq!(
            out[2].as_ref().unwrap(),
            &vec![vec![Value::Str("c".into()), Value::I64(3)]]
        );
    }

    #[test]
    fn a_step_adds_merges_keeps_and_finishes() {
        let d = incremental::<Sum>(&Params::new(), &["k".into()]).unwrap();
        assert!(d.state_type().unwrap().ends_with("/v1"));
        // Pane A = events 0..2 (1 + 2), pane B = events 2..4 (null, 4), then
        // event 4 (8) added to B; the window merges A and B+.
        let step = Step {
            slots: vec![
                Slot::Fresh(0, 2),
                Slot::Fresh(2, 2),
                Slot::Add(1, 4, 1),
                Slot::Merge(0, 2),
            ],
            keep: vec![0, 2],
            finish: vec![
                Finish {
                    key: key("x"),
                    window: W,
                    slot: 3,
                },
                Finish {
                    key: key("fail"),
                    window: W,
                    slot: 0,
                },
            ],
        };
        let out = d.step(&step, &events()).unwrap();
        // The window: n = 2 + 2 = 4, sum = 3 + 12 = 15, in declared order.
        assert_eq!(
            out.rows[0].as_ref().unwrap(),
            &vec![vec![Value::I64(4), Value::F64(15.0)]]
        );
        assert_eq!(out.rows[1].as_ref().unwrap_err().message, "asked to fail");
        assert_eq!(out.states.len(), 2);
        // A held state comes back as it was: B+ (2, 12.0) merged after A (2, 3.0).
        let again = Step {
            slots: vec![
                Slot::Held(out.states[0].clone()),
                Slot::Held(out.states[1].clone()),
                Slot::Merge(0, 1),
            ],
            keep: vec![],
            finish: vec![Finish {
                key: key("y"),
                window: W,
                slot: 2,
            }],
        };
        let out = d.step(&again, &Batch::new(vec![])).unwrap();
        assert_eq!(
            out.rows[0].as_ref().unwrap(),
            &vec![vec![Value::I64(4), Value::F64(15.0)]]
        );
    }

    #[test]
    fn a_step_naming_a_later_slot_or_holding_garbage_fails() {
        let d = incremental::<Sum>(&Params::new(), &[]).unwrap();
        let forward = Step {
            slots: vec![Slot::Fresh(0, 1), Slot::Merge(0, 1)],
            ..Step::default()
        };
        assert!(d.step(&forward, &events()).is_err());
        let garbage = Step {
            slots: vec![Slot::Held(vec![0xff])],
            ..Step::default()
        };
        let err = d.step(&garbage, &events()).unwrap_err();
        assert!(err.message.contains("cannot decode"), "{err}");
    }
}
