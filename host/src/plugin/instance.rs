//! A sandboxed plugin instance's lifecycle: the compiled [`PluginCode`] it runs, building
//! a Store and instantiating and configuring the guest in it, arming each call (deadline,
//! fuel), calling, and turning a failure into an [`Error`] (dropping the Store). Also
//! [`Owner`] and [`PluginInfo`]. How groups, plans and rows cross the WIT boundary is
//! `abi.rs`'s; what the guest may use is `sandbox.rs`'s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, ResourceTable};
use wasmtime::{Engine, Store, Trap};

use super::bindings::{v1, v2};
use super::convert::{BatchBuilder, OutputRow, wit1, wit2};
use super::sandbox::{HostState, MemoryLimiter, guest_wasi};
use super::{Error, Group, GroupResult, Plugin, Row, check_rows};
use crate::config::Limits;
use crate::value::{FieldType, Value};
use crate::window::Window;

/// A compiled, linked plugin, ready to instantiate any number of times.
///
/// It carries no label: the same code may be shared by several tenants' pipelines (it is
/// cached by content), so names in errors come from the instance's [`Owner`], never from
/// whoever loaded the code first.
pub struct PluginCode {
    pub(super) sha256: String,
    pub(super) pre: Pre,
    pub(super) component: Component,
    /// Size of the compiled code in memory, for the cache's bound.
    pub(super) code_bytes: u64,
    pub(super) engine: Engine,
}

/// Linked code of one contract version.
pub(super) enum Pre {
    V1(v1::AggregatorPre<HostState>),
    V2(v2::AggregatorPre<HostState>),
}

/// A live instance's exports, of the version its code was built for.
pub(super) enum Bindings {
    V1(v1::Aggregator),
    V2(v2::Aggregator),
}

impl PluginCode {
    /// The contract version the component was built for: `0.2.0` or `0.1.0`.
    pub fn contract_version(&self) -> &'static str {
        match self.pre {
            Pre::V1(_) => "0.1.0",
            Pre::V2(_) => "0.2.0",
        }
    }

    /// SHA-256 of the component bytes, hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Size of the compiled code in memory, in bytes.
    pub fn code_bytes(&self) -> u64 {
        self.code_bytes
    }
}

/// What a configured plugin says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginInfo {
    /// Plugin name.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// Input fields, in the order the host passes them.
    pub inputs: Vec<(String, FieldType)>,
    /// Output fields, in order.
    pub outputs: Vec<(String, FieldType)>,
    /// Whether the host should call `filter`.
    pub has_filter: bool,
    /// `None` for a whole-window plugin; for an incremental one, the identity of its state
    /// type (pane states pass from one version to another only when it is the same).
    pub state_type: Option<String>,
}

/// A Store with a configured instance in it.
struct Live {
    store: Store<HostState>,
    bindings: Bindings,
}

/// One sandboxed instance of a plugin, configured for one pipeline.
///
/// A failed call drops the Store; the next call builds a fresh instance and configures it
/// again, so a trap costs one call, never the pipeline.
pub struct PluginInstance {
    pub(super) code: Arc<PluginCode>,
    pub(super) limits: Limits,
    pub(super) params: Vec<(String, String)>,
    pub(super) key_fields: Vec<String>,
    pub(super) owner: Owner,
    live: Option<Live>,
    pub(super) info: PluginInfo,
    pub(super) batch: BatchBuilder,
    pub(super) restarts: u64,
    last_instantiation: Duration,
    /// The last panic the guest wrote to stderr during the current call.
    panics: super::PanicCapture,
    /// Where failures of calls are reported, if anywhere.
    pub(super) last_error: Option<super::LastError>,
    /// Where the cost of calls is measured, if anywhere.
    pub(super) meter: Option<super::CallMeter>,
}

/// Whose instance this is, for the guest's log lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owner {
    /// Tenant name (empty for `weir run`).
    pub tenant: String,
    /// Pipeline name.
    pub pipeline: String,
}

/// Converts one version's `plugin-info` (the two versions differ only in `state-type`).
macro_rules! plugin_info {
    ($raw:expr, $conv:ident, $state:expr) => {{
        let raw = $raw;
        PluginInfo {
            name: raw.name,
            version: raw.version,
            inputs: raw
                .inputs
                .into_iter()
                .map(|f| (f.name, $conv::field_type(f.ty)))
                .collect(),
            outputs: raw
                .outputs
                .into_iter()
                .map(|f| (f.name, $conv::field_type(f.ty)))
                .collect(),
            has_filter: raw.has_filter,
            state_type: $state,
        }
    }};
}

impl PluginInstance {
    /// Instantiates, configures with `params` and asks the plugin to describe itself, for
    /// a pipeline without key fields (or a caller that does not care about their names).
    pub fn new(
        code: Arc<PluginCode>,
        limits: Limits,
        params: Vec<(String, String)>,
        owner: Owner,
    ) -> Result<Self, Error> {
        Self::with_keys(code, limits, params, Vec::new(), owner)
    }

    /// Instantiates, configures with `params` and the pipeline's key fields (a 0.2.0
    /// plugin names each group's key values with them) and asks the plugin to describe
    /// itself.
    pub fn with_keys(
        code: Arc<PluginCode>,
        limits: Limits,
        params: Vec<(String, String)>,
        key_fields: Vec<String>,
        owner: Owner,
    ) -> Result<Self, Error> {
        // Until the plugin names itself, errors name the pipeline it runs for (errors read
        // "plugin <name> …": "plugin of acme/stocks trapped in configure: …").
        let placeholder = PluginInfo {
            name: if owner.tenant.is_empty() {
                format!("of pipeline {}", owner.pipeline)
            } else {
                format!("of {}/{}", owner.tenant, owner.pipeline)
            },
            version: String::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            has_filter: false,
            state_type: None,
        };
        let mut inst = PluginInstance {
            code,
            limits,
            params,
            key_fields,
            owner,
            live: None,
            info: placeholder,
            batch: BatchBuilder::new(&[], 0),
            restarts: 0,
            last_instantiation: Duration::ZERO,
            panics: super::PanicCapture::default(),
            last_error: None,
            meter: None,
        };
        inst.info = inst.call("describe", |b, s| match b {
            Bindings::V1(b) => Ok(plugin_info!(
                b.weir_plugin_aggregate().call_describe(s)?,
                wit1,
                None
            )),
            Bindings::V2(b) => {
                let raw = b.weir_plugin_aggregate().call_describe(s)?;
                let state = raw.state_type.clone();
                Ok(plugin_info!(raw, wit2, state))
            }
        })?;
        inst.batch = BatchBuilder::new(&inst.info.inputs, 64);
        Ok(inst)
    }

    /// Reports every later failure of a call (a trap, a deadline, an error the plugin
    /// returned, a bad output) to `slot`, also from forks of this instance.
    pub fn report_errors_to(&mut self, slot: super::LastError) {
        self.last_error = Some(slot);
    }

    /// Measures every later call (its wall time and the thread's CPU time in it) into
    /// `meter`, also in forks of this instance.
    pub fn meter_calls(&mut self, meter: super::CallMeter) {
        self.meter = Some(meter);
    }

    /// Records `e` in the error slot, if there is one, and returns it.
    fn noted(&self, e: Error) -> Error {
        if let Some(slot) = &self.last_error {
            slot.record(&e, &self.version_id());
        }
        e
    }

    /// How long the latest instantiation (with `configure`) took.
    pub fn last_instantiation(&self) -> Duration {
        self.last_instantiation
    }

    /// The compiled code this instance runs.
    pub fn code(&self) -> &Arc<PluginCode> {
        &self.code
    }

    /// Calls the aggregate for one key and window on the events pushed into
    /// [`PluginInstance::batch`]; rows come back named by the declared outputs.
    pub fn aggregate_one(
        &mut self,
        key: &[Value],
        window: Window,
    ) -> Result<Vec<OutputRow>, Error> {
        let len = u32::try_from(self.batch.len()).unwrap_or(u32::MAX);
        let group = Group {
            key: key.to_vec(),
            window,
            offset: 0,
            len,
        };
        let mut results = Plugin::aggregate(self, &[group])?;
        let rows = results.pop().unwrap_or_else(|| Ok(Vec::new()))?;
        let names = self.info.outputs.iter().map(|(n, _)| n.clone());
        Ok(rows
            .into_iter()
            .map(|r| names.clone().zip(r).collect())
            .collect())
    }

    /// A [`Error::BadOutput`] of `call`, recorded in the error slot.
    pub(super) fn bad_output(&self, call: &'static str, message: String) -> Error {
        self.noted(Error::BadOutput {
            plugin: self.info.name.clone(),
            call,
            message,
        })
    }

    /// A [`Error::Failed`]: the plugin returned an error; recorded in the error slot.
    pub(super) fn failed(&self, message: String, hint: Option<String>) -> Error {
        self.noted(Error::Failed {
            plugin: self.info.name.clone(),
            message: super::bounded_message(message),
            hint: hint.map(super::bounded_message),
        })
    }

    /// Checks one window's rows; `Err` fails that window only.
    pub(super) fn checked(&self, call: &'static str, rows: Vec<Row>) -> GroupResult {
        check_rows(
            &self.info.name,
            call,
            self.info.outputs.len(),
            &self.limits.sandbox,
            &rows,
        )
        .map_err(|e| self.noted(e))?;
        Ok(rows)
    }

    fn instantiate(&mut self) -> Result<Live, Error> {
        let started = Instant::now();
        let wasi = guest_wasi(
            &self.owner,
            self.limits.sandbox.log_lines_per_second,
            &self.panics,
        );
        let mut store = Store::new(
            &self.code.engine,
            HostState {
                wasi,
                table: ResourceTable::new(),
                limiter: MemoryLimiter::new(
                    usize::try_from(self.limits.sandbox.memory_bytes).unwrap_or(usize::MAX),
                ),
            },
        );
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        self.arm(&mut store);
        let configured = match &self.code.pre {
            Pre::V1(pre) => {
                let b = pre
                    .instantiate(&mut store)
                    .map_err(|e| self.classify(&store, "instantiate", e))?;
                let r = b
                    .weir_plugin_aggregate()
                    .call_configure(&mut store, &self.params)
                    .map_err(|e| self.classify(&store, "configure", e))?
                    .map_err(|e| (e.message, e.hint));
                (Bindings::V1(b), r)
            }
            Pre::V2(pre) => {
                let b = pre
                    .instantiate(&mut store)
                    .map_err(|e| self.classify(&store, "instantiate", e))?;
                let r = b
                    .weir_plugin_aggregate()
                    .call_configure(&mut store, &self.params, &self.key_fields)
                    .map_err(|e| self.classify(&store, "configure", e))?
                    .map_err(|e| (e.message, e.hint));
                (Bindings::V2(b), r)
            }
        };
        let (bindings, result) = configured;
        if let Err((message, hint)) = result {
            return Err(Error::Configure {
                plugin: self.info.name.clone(),
                message: super::bounded_message(message),
                hint: hint.map(super::bounded_message),
            });
        }
        self.last_instantiation = started.elapsed();
        Ok(Live { store, bindings })
    }

    /// Sets the per-call deadline (and fuel) on a store.
    fn arm(&self, store: &mut Store<HostState>) {
        store.set_epoch_deadline(self.limits.sandbox.deadline_ms.max(1));
        if let Some(fuel) = self.limits.sandbox.fuel {
            // Fails only when the engine has fuel off, in which case there is nothing to set.
            let _ = store.set_fuel(fuel);
        }
        store.data_mut().limiter.refused = false;
        self.panics.clear();
    }

    /// Calls export `name` through `f` on the live instance (instantiating and configuring
    /// one first if there is none), armed with a fresh deadline and measured. A failure
    /// drops the Store and comes back classified and recorded.
    pub(super) fn call<R>(
        &mut self,
        name: &'static str,
        f: impl FnOnce(&Bindings, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, Error> {
        let mut live = match self.live.take() {
            Some(live) => live,
            None => self.instantiate().map_err(|e| self.noted(e))?,
        };
        self.arm(&mut live.store);
        let started = self.meter.as_ref().map(|_| super::CallMeter::start());
        let result = f(&live.bindings, &mut live.store);
        if let (Some(meter), Some(started)) = (&self.meter, started) {
            meter.record(started, live.store.data().limiter.memory);
        }
        match result {
            Ok(r) => {
                self.live = Some(live);
                Ok(r)
            }
            Err(e) => {
                // The Store may be poisoned: drop it, the next call starts fresh.
                self.restarts += 1;
                Err(self.noted(self.classify(&live.store, name, e)))
            }
        }
    }

    fn classify(&self, store: &Store<HostState>, call: &'static str, e: wasmtime::Error) -> Error {
        let plugin = self.info.name.clone();
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => Error::Deadline {
                plugin,
                call,
                deadline_ms: self.limits.sandbox.deadline_ms,
            },
            Some(Trap::OutOfFuel) => Error::Fuel {
                plugin,
                call,
                fuel: self.limits.sandbox.fuel.unwrap_or(0),
            },
            _ if store.data().limiter.refused => Error::Memory {
                plugin,
                call,
                limit_bytes: self.limits.sandbox.memory_bytes,
            },
            _ => {
                // The tenant gets the panic and where it happened (or the trap's one-line
                // reason); the wasm backtrace is for the operator's debug log.
                tracing::debug!(tenant = %self.owner.tenant, pipeline = %self.owner.pipeline, call, backtrace = %format!("{e:?}"), "plugin trap");
                let message = match (self.panics.take(), e.downcast_ref::<Trap>()) {
                    (Some(panic), _) => panic,
                    (None, Some(trap)) => format!("wasm trap: {trap}"),
                    (None, None) => format!("{:#}", e.root_cause()),
                };
                Error::Trap {
                    plugin,
                    call,
                    message: super::bounded_message(message),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::Runtime;
    use crate::plugin::tests::plugin_wasm;

    fn limits() -> Limits {
        crate::config::LimitsConfig::default().resolve(None)
    }

    #[test]
    fn cached_code_never_shows_another_tenants_name() {
        let stats = plugin_wasm("stats").expect("plugins built by scripts/setup.sh");
        let runtime = Runtime::new(false).unwrap();
        let code = runtime.load_bytes(&stats, "acme/target (api)").unwrap();
        runtime.keep(&code);
        // The same bytes for another tenant: a cache hit, then a configure failure (no
        // `field` param) whose error must name globex's pipeline, never acme's.
        let shared = runtime.load_bytes(&stats, "globex/victim (api)").unwrap();
        assert!(Arc::ptr_eq(&code, &shared), "a cache hit");
        let owner = Owner {
            tenant: "globex".into(),
            pipeline: "victim".into(),
        };
        let e = PluginInstance::new(shared, limits(), Vec::new(), owner)
            .err()
            .expect("configure fails without `field`")
            .to_string();
        assert!(e.contains("globex/victim"), "{e}");
        assert!(!e.contains("acme"), "{e}");
    }
}
