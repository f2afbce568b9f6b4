//! How calls cross the WIT boundary: the [`Plugin`] implementation of [`PluginInstance`],
//! marshalling batches, groups and incremental plans to the 0.2.0 contract and back, and
//! 0.1.0 plugins' one call per group with their named rows made positional. Building,
//! calling and failing instances are `instance.rs`'s; value conversions are `convert.rs`'s.

use std::sync::Arc;

use super::bindings::{v1, v2};
use super::convert::{BatchBuilder, Columns, wit1, wit2};
use super::instance::{Bindings, Pre};
use super::{
    Error, Group, GroupResult, Plan, PlanOutput, Plugin, PluginInfo, PluginInstance, Slot,
};
use crate::config::Limits;
use crate::value::Value;

impl Plugin for PluginInstance {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }

    /// `<name>@<version>+<first 12 hex digits of the component's SHA-256>`.
    fn version_id(&self) -> String {
        let sha = self.code.sha256.get(..12).unwrap_or(&self.code.sha256);
        format!("{}@{}+{sha}", self.info.name, self.info.version)
    }

    /// Instantiates the same compiled code again (no Cranelift) and configures it the same.
    fn fork(&self) -> Result<Box<dyn Plugin>, Error> {
        let mut fork = PluginInstance::with_keys(
            self.code.clone(),
            self.limits,
            self.params.clone(),
            self.key_fields.clone(),
            self.owner.clone(),
        )?;
        fork.last_error = self.last_error.clone();
        fork.meter = self.meter.clone();
        Ok(Box::new(fork))
    }

    fn restarts(&self) -> u64 {
        self.restarts
    }

    fn batch(&mut self) -> &mut BatchBuilder {
        &mut self.batch
    }

    fn filter(&mut self) -> Result<Vec<bool>, Error> {
        let batch: Columns = self.batch.take();
        let n = batch.timestamps.len();
        let keep = self.call("filter", |b, s| match b {
            Bindings::V1(b) => b
                .weir_plugin_aggregate()
                .call_filter(s, &wit1::batch(batch)),
            Bindings::V2(b) => b
                .weir_plugin_aggregate()
                .call_filter(s, &wit2::batch(batch)),
        })?;
        if keep.len() != n {
            return Err(self.bad_output(
                "filter",
                format!("returned {} flags for {n} events", keep.len()),
            ));
        }
        Ok(keep)
    }

    fn aggregate(&mut self, groups: &[Group]) -> Result<Vec<GroupResult>, Error> {
        let batch = self.batch.take();
        if matches!(self.code.pre, Pre::V1(_)) {
            return self.aggregate_v1(groups, &batch);
        }
        let wgroups: Vec<v2::weir::plugin::types::Group> = groups
            .iter()
            .map(|g| v2::weir::plugin::types::Group {
                key: g.key.iter().map(wit2::to_wit).collect(),
                window: v2::weir::plugin::types::Window {
                    start: g.window.start,
                    end: g.window.end,
                },
                events: v2::weir::plugin::types::Span {
                    offset: g.offset,
                    len: g.len,
                },
            })
            .collect();
        let wbatch = wit2::batch(batch);
        let results = self.call("aggregate", |b, s| match b {
            Bindings::V2(b) => b
                .weir_plugin_aggregate()
                .call_aggregate(s, &wgroups, &wbatch),
            Bindings::V1(_) => Err(wasmtime::Error::msg("a 0.1.0 instance of 0.2.0 code")),
        })?;
        if results.len() != groups.len() {
            return Err(self.bad_output(
                "aggregate",
                format!(
                    "returned {} results for {} windows",
                    results.len(),
                    groups.len()
                ),
            ));
        }
        Ok(results
            .into_iter()
            .map(|r| match r {
                Ok(rows) => self.checked(
                    "aggregate",
                    rows.into_iter()
                        .map(|r| r.into_iter().map(wit2::from_wit).collect())
                        .collect(),
                ),
                Err(e) => Err(self.failed(e.message, e.hint)),
            })
            .collect())
    }

    fn step(&mut self, plan: &Plan) -> Result<PlanOutput, Error> {
        use v2::weir::plugin::types as w;
        let batch = self.batch.take();
        if matches!(self.code.pre, Pre::V1(_)) || self.info.state_type.is_none() {
            return Err(self.bad_output(
                "step",
                "the plugin is not incremental; the host must call aggregate".into(),
            ));
        }
        let n_keep = plan.keep.len();
        let n_finish = plan.finish.len();
        let wplan = w::Plan {
            slots: plan
                .slots
                .iter()
                .map(|s| match *s {
                    Slot::Held(ref bytes) => w::Slot::Held(bytes.to_vec()),
                    Slot::Fresh { offset, len } => w::Slot::Fresh(w::Span { offset, len }),
                    Slot::Add { slot, offset, len } => {
                        w::Slot::Add((slot, w::Span { offset, len }))
                    }
                    Slot::Merge(a, b) => w::Slot::Merge((a, b)),
                })
                .collect(),
            keep: plan.keep.clone(),
            finish: plan
                .finish
                .iter()
                .map(|f| w::Finish {
                    key: f.key.iter().map(wit2::to_wit).collect(),
                    window: w::Window {
                        start: f.window.start,
                        end: f.window.end,
                    },
                    slot: f.slot,
                })
                .collect(),
        };
        let wbatch = wit2::batch(batch);
        let out = self.call("step", |b, s| match b {
            Bindings::V2(b) => b.weir_plugin_aggregate().call_step(s, &wplan, &wbatch),
            Bindings::V1(_) => Err(wasmtime::Error::msg("a 0.1.0 instance of 0.2.0 code")),
        })?;
        let out = out.map_err(|e| self.failed(e.message, e.hint))?;
        if out.states.len() != n_keep || out.rows.len() != n_finish {
            return Err(self.bad_output(
                "step",
                format!(
                    "returned {} states and {} results for {n_keep} and {n_finish}",
                    out.states.len(),
                    out.rows.len()
                ),
            ));
        }
        Ok(PlanOutput {
            states: out.states.into_iter().map(Arc::from).collect(),
            rows: out
                .rows
                .into_iter()
                .map(|r| match r {
                    Ok(rows) => self.checked(
                        "step",
                        rows.into_iter()
                            .map(|r| r.into_iter().map(wit2::from_wit).collect())
                            .collect(),
                    ),
                    Err(e) => Err(self.failed(e.message, e.hint)),
                })
                .collect(),
        })
    }
}

impl PluginInstance {
    /// A 0.1.0 plugin's named rows in the declared output order (a declared output it
    /// lacks is null; a field it does not declare fails the window).
    fn positional(&self, rows: Vec<v1::weir::plugin::types::Row>) -> GroupResult {
        let outputs = &self.info.outputs;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut values = vec![Value::Null; outputs.len()];
            for (name, v) in row {
                let Some(at) = outputs.iter().position(|(o, _)| *o == name) else {
                    return Err(self.bad_output(
                        "aggregate",
                        format!("returned a field `{name}` it does not declare as an output"),
                    ));
                };
                values[at] = wit1::from_wit(v);
            }
            out.push(values);
        }
        self.checked("aggregate", out)
    }

    /// A 0.1.0 plugin: one call per group, each on its own slice of the batch. A call that
    /// traps fails the whole step (its Store is gone); a returned error fails its group.
    fn aggregate_v1(
        &mut self,
        groups: &[Group],
        batch: &Columns,
    ) -> Result<Vec<GroupResult>, Error> {
        use v1::weir::plugin::types as w;
        let mut out = Vec::with_capacity(groups.len());
        for g in groups {
            let key: Vec<(String, w::Value)> = self
                .key_fields
                .iter()
                .cloned()
                .zip(g.key.iter().map(wit1::to_wit))
                .collect();
            let window = w::Window {
                start: g.window.start,
                end: g.window.end,
            };
            let part = wit1::batch(batch.slice(g.offset as usize, g.len as usize));
            let r = self.call("aggregate", |b, s| match b {
                Bindings::V1(b) => b
                    .weir_plugin_aggregate()
                    .call_aggregate(s, &key, window, &part),
                Bindings::V2(_) => Err(wasmtime::Error::msg("a 0.2.0 instance of 0.1.0 code")),
            })?;
            out.push(match r {
                Ok(rows) => self.positional(rows),
                Err(e) => Err(self.failed(e.message, e.hint)),
            });
        }
        Ok(out)
    }
}
