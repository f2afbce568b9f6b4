//! The example plugins compiled into the host, behind the same [`Plugin`] trait as the
//! sandboxed instances: `weir run --native` and the benchmarks use them to measure what
//! the sandbox costs. They run the plugins' own code through the SDK's driver, with no
//! limits on memory or time; never a path for tenants' code.

use std::sync::Arc;

use weir_guest::driver::{self, Driver};

use super::convert::{ColumnData, Columns, sdk_type};
use super::{
    BatchBuilder, Error, Group, GroupResult, Plan, PlanOutput, Plugin, PluginInfo, Row, Slot,
    check_rows,
};
use crate::config::Limits;
use crate::value::Value;
use crate::window::Window;

/// The plugins that can run natively, by the stem of their wasm file name.
pub const NAMES: [&str; 7] = [
    "stats",
    "stats_incremental",
    "fare_totals",
    "fare_totals_incremental",
    "hotspot",
    "ticker",
    "vwap",
];

/// A plugin compiled into the host.
pub struct NativePlugin {
    /// What it was made from, for [`Plugin::fork`]: the wasm file stem, params and keys.
    made_from: (String, Vec<(String, String)>, Vec<String>),
    driver: Box<dyn Driver>,
    info: PluginInfo,
    limits: Limits,
    batch: BatchBuilder,
}

impl NativePlugin {
    /// Configures the native build of the plugin whose wasm file is `<name>.wasm` (one of
    /// [`NAMES`]) with the pipeline's params and key fields.
    pub fn new(
        name: &str,
        params: &[(String, String)],
        key_fields: &[String],
        limits: Limits,
    ) -> Result<Self, Error> {
        let p = weir_guest::Params::from_pairs(params.iter().cloned());
        let made = match name {
            "stats" => driver::whole::<stats::Stats>(&p, key_fields),
            "stats_incremental" => {
                driver::incremental::<stats_incremental::StatsIncremental>(&p, key_fields)
            }
            "fare_totals" => driver::whole::<fare_totals::FareTotals>(&p, key_fields),
            "fare_totals_incremental" => driver::incremental::<
                fare_totals_incremental::FareTotalsIncremental,
            >(&p, key_fields),
            "hotspot" => driver::whole::<hotspot::Hotspot>(&p, key_fields),
            "ticker" => driver::whole::<ticker::Ticker>(&p, key_fields),
            "vwap" => driver::whole::<vwap::Vwap>(&p, key_fields),
            other => {
                return Err(Error::Compile {
                    path: format!("{other}.wasm"),
                    message: format!(
                        "no native build of `{other}`; --native knows {}",
                        NAMES.join(", ")
                    ),
                });
            }
        };
        let driver = made.map_err(|e| Error::Configure {
            plugin: name.to_string(),
            message: e.message,
            hint: e.hint,
        })?;
        let d = driver.describe();
        let fields = |f: &[(String, weir_guest::Type)]| {
            f.iter().map(|(n, t)| (n.clone(), sdk_type(*t))).collect()
        };
        let info = PluginInfo {
            name: name.replace('_', "-"),
            version: format!("{}-native", env!("CARGO_PKG_VERSION")),
            inputs: fields(d.inputs()),
            outputs: fields(d.outputs()),
            has_filter: d.has_filter(),
            state_type: driver.state_type().map(str::to_string),
        };
        let batch = BatchBuilder::new(&info.inputs, 64);
        Ok(NativePlugin {
            made_from: (name.to_string(), params.to_vec(), key_fields.to_vec()),
            driver,
            info,
            limits,
            batch,
        })
    }

    fn sdk_batch(&mut self) -> weir_guest::Batch {
        let Columns {
            timestamps,
            columns,
        } = self.batch.take();
        let columns = columns
            .into_iter()
            .map(|c| {
                let data = match c.data {
                    ColumnData::F64(v) => driver::ColumnData::F64(v),
                    ColumnData::I64(v) => driver::ColumnData::I64(v),
                    ColumnData::Str(v) => driver::ColumnData::Str(v),
                    ColumnData::Bool(v) => driver::ColumnData::Bool(v),
                };
                (c.name, data, c.nulls)
            })
            .collect();
        driver::batch(timestamps, columns)
    }

    fn rows(
        &self,
        call: &'static str,
        r: weir_guest::Result<Vec<Vec<weir_guest::Value>>>,
    ) -> GroupResult {
        let rows: Vec<Row> = r
            .map_err(|e| Error::Failed {
                plugin: self.info.name.clone(),
                message: e.message,
                hint: e.hint,
            })?
            .into_iter()
            .map(|r| r.into_iter().map(from_sdk).collect())
            .collect();
        check_rows(
            &self.info.name,
            call,
            self.info.outputs.len(),
            &self.limits.sandbox,
            &rows,
        )?;
        Ok(rows)
    }
}

fn from_sdk(v: weir_guest::Value) -> Value {
    match v {
        weir_guest::Value::Null => Value::Null,
        weir_guest::Value::F64(x) => Value::F64(x),
        weir_guest::Value::I64(x) => Value::I64(x),
        weir_guest::Value::Str(s) => Value::Str(s),
        weir_guest::Value::Bool(b) => Value::Bool(b),
    }
}

fn to_sdk(v: &Value) -> weir_guest::Value {
    match v {
        Value::Null => weir_guest::Value::Null,
        Value::F64(x) => weir_guest::Value::F64(*x),
        Value::I64(x) => weir_guest::Value::I64(*x),
        Value::Str(s) => weir_guest::Value::Str(s.clone()),
        Value::Bool(b) => weir_guest::Value::Bool(*b),
    }
}

fn window(w: Window) -> weir_guest::Window {
    weir_guest::Window {
        start: w.start,
        end: w.end,
    }
}

impl Plugin for NativePlugin {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }

    fn version_id(&self) -> String {
        format!("{}@{}", self.info.name, self.info.version)
    }

    fn fork(&self) -> Result<Box<dyn Plugin>, Error> {
        let (name, params, keys) = &self.made_from;
        Ok(Box::new(NativePlugin::new(
            name,
            params,
            keys,
            self.limits,
        )?))
    }

    fn restarts(&self) -> u64 {
        0
    }

    fn batch(&mut self) -> &mut BatchBuilder {
        &mut self.batch
    }

    fn filter(&mut self) -> Result<Vec<bool>, Error> {
        let batch = self.sdk_batch();
        self.driver.filter(&batch).map_err(|e| Error::BadOutput {
            plugin: self.info.name.clone(),
            call: "filter",
            message: e.to_string(),
        })
    }

    fn aggregate(&mut self, groups: &[Group]) -> Result<Vec<GroupResult>, Error> {
        let batch = self.sdk_batch();
        let groups: Vec<driver::Group> = groups
            .iter()
            .map(|g| driver::Group {
                key: g.key.iter().map(to_sdk).collect(),
                window: window(g.window),
                offset: g.offset,
                len: g.len,
            })
            .collect();
        let results = self.driver.aggregate(&groups, &batch);
        Ok(results
            .into_iter()
            .map(|r| self.rows("aggregate", r))
            .collect())
    }

    fn step(&mut self, plan: &Plan) -> Result<PlanOutput, Error> {
        let batch = self.sdk_batch();
        let step = driver::Step {
            slots: plan
                .slots
                .iter()
                .map(|s| match *s {
                    Slot::Held(ref b) => driver::Slot::Held(b.to_vec()),
                    Slot::Fresh { offset, len } => driver::Slot::Fresh(offset, len),
                    Slot::Add { slot, offset, len } => driver::Slot::Add(slot, offset, len),
                    Slot::Merge(a, b) => driver::Slot::Merge(a, b),
                })
                .collect(),
            keep: plan.keep.clone(),
            finish: plan
                .finish
                .iter()
                .map(|f| driver::Finish {
                    key: f.key.iter().map(to_sdk).collect(),
                    window: window(f.window),
                    slot: f.slot,
                })
                .collect(),
        };
        let out = self.driver.step(&step, &batch).map_err(|e| Error::Failed {
            plugin: self.info.name.clone(),
            message: e.message,
            hint: e.hint,
        })?;
        Ok(PlanOutput {
            states: out.states.into_iter().map(Arc::from).collect(),
            rows: out.rows.into_iter().map(|r| self.rows("step", r)).collect(),
        })
    }
}
