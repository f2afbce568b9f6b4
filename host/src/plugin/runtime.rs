//! The wasmtime engine, compiled plugin code and sandboxed plugin instances.
//!
//! Isolation as DESIGN.md measured it: a trap poisons a whole Store, so each instance owns
//! one Store and drops it after any failure; the next call re-instantiates (≈ tens of µs via
//! `InstancePre`) and re-runs `configure`. Every call has a CPU deadline (epoch
//! interruption, one tick per millisecond), every Store a memory cap, optional fuel, and
//! WASI with no capabilities at all.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::Error;
use super::bindings::{Aggregator, AggregatorPre};
use super::convert::{BatchBuilder, OutputRow, field_type, from_wit, to_wit};
use crate::config::Limits;
use crate::value::{FieldType, Value};
use crate::window::Window;

/// Epoch tick length: the granularity of CPU deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// The wasmtime engine shared by every plugin of a host, with its epoch ticker.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<HostState>>,
    /// Compiled code by SHA-256 of the component bytes.
    compiled: Arc<Mutex<HashMap<String, Arc<PluginCode>>>>,
    /// Where precompiled artifacts are kept across restarts, if anywhere.
    cache_dir: Option<PathBuf>,
}

impl Runtime {
    /// A runtime; `fuel` enables fuel metering for every plugin (slower, opt-in).
    pub fn new(fuel: bool) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.consume_fuel(fuel);
        config.wasm_component_model(true);
        let engine =
            Engine::new(&config).map_err(|e| anyhow::anyhow!("creating the wasm engine: {e:#}"))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| anyhow::anyhow!("linking WASI: {e:#}"))?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("weir-epoch".into())
            .spawn(move || {
                // One tick per elapsed millisecond of wall time, not per wake-up: sleeps
                // overshoot, and counting wake-ups would stretch every deadline.
                let start = Instant::now();
                let mut ticks: u128 = 0;
                while let Some(engine) = weak.upgrade() {
                    let due = start.elapsed().as_millis();
                    while ticks < due {
                        engine.increment_epoch();
                        ticks += 1;
                    }
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })?;
        Ok(Runtime {
            engine,
            linker: Arc::new(linker),
            compiled: Arc::new(Mutex::new(HashMap::new())),
            cache_dir: None,
        })
    }

    /// Keeps precompiled artifacts in `dir` (`<sha256>.cwasm`), so a restart does not
    /// recompile a component it has seen. The directory must be private to this host: its
    /// files are loaded as native code.
    pub fn with_cache_dir(mut self, dir: PathBuf) -> Self {
        self.cache_dir = Some(dir);
        self
    }

    /// Compiles a component file and links it against the host (WASI with no capabilities).
    pub fn load_file(&self, path: &Path) -> Result<Arc<PluginCode>, Error> {
        let bytes = std::fs::read(path).map_err(|e| Error::Compile {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        self.load_bytes(&bytes, &path.display().to_string())
    }

    /// Compiles component bytes; `label` names them in errors (a path or a version).
    ///
    /// Code is cached by the SHA-256 of the bytes: loading the same component again (a
    /// rollback, a second pipeline) costs a hash, not a compilation.
    pub fn load_bytes(&self, bytes: &[u8], label: &str) -> Result<Arc<PluginCode>, Error> {
        let sha256 = hex(&Sha256::digest(bytes));
        if let Some(code) = self.lock_compiled().get(&sha256) {
            return Ok(code.clone());
        }
        let compile = |message: String| Error::Compile {
            path: label.to_string(),
            message,
        };
        let component = self.compile(bytes, &sha256).map_err(|e| {
            compile(format!(
                "not a WebAssembly component built for wasm32-wasip2: {e:#}"
            ))
        })?;
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            compile(format!(
                "imports something the host does not provide (plugins get WASI with no capabilities): {e:#}"
            ))
        })?;
        let pre = AggregatorPre::new(pre).map_err(|e| {
            compile(format!(
                "does not export the weir:plugin@0.1.0 `aggregator` world; build it with weir-guest: {e:#}"
            ))
        })?;
        let code = Arc::new(PluginCode {
            label: label.to_string(),
            sha256: sha256.clone(),
            pre,
            engine: self.engine.clone(),
        });
        self.lock_compiled().insert(sha256, code.clone());
        Ok(code)
    }

    fn lock_compiled(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<PluginCode>>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.compiled.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Compiles with Cranelift, or loads the precompiled artifact from the cache dir.
    fn compile(&self, bytes: &[u8], sha256: &str) -> wasmtime::Result<Component> {
        let Some(dir) = &self.cache_dir else {
            return Component::new(&self.engine, bytes);
        };
        let path = dir.join(format!("{sha256}.cwasm"));
        if path.exists() {
            // SAFETY: the cache dir is private to this host and holds only artifacts this
            // engine configuration wrote (checked by wasmtime's compatibility header).
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring unusable cached artifact")
                }
            }
        }
        let artifact = self.engine.precompile_component(bytes)?;
        if let Err(e) = std::fs::create_dir_all(dir).and_then(|()| {
            let tmp = dir.join(format!(".{sha256}.tmp"));
            std::fs::write(&tmp, &artifact)?;
            std::fs::rename(&tmp, &path)
        }) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot write the compiled-artifact cache");
        }
        // SAFETY: `artifact` was produced just now by this engine.
        unsafe { Component::deserialize(&self.engine, &artifact) }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A compiled, linked plugin, ready to instantiate any number of times.
pub struct PluginCode {
    label: String,
    sha256: String,
    pre: AggregatorPre<HostState>,
    engine: Engine,
}

impl PluginCode {
    /// Where the code came from.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// SHA-256 of the component bytes, hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
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
}

/// Size of a value in a row, for the `max_row_bytes` limit: strings by length, others 8.
fn value_size(v: &super::bindings::weir::plugin::types::Value) -> usize {
    use super::bindings::weir::plugin::types::Value as V;
    match v {
        V::String(s) => s.len(),
        _ => 8,
    }
}

/// WASI that grants nothing: no preopened files, no environment, no arguments, no
/// sockets or name lookups (denied explicitly, on top of wasmtime-wasi's defaults). Clocks
/// and random numbers stay available (Rust's `HashMap` seeds itself from them). Stdout
/// and stderr go to the tenant's log, rate-limited.
fn guest_wasi(owner: &Owner, lines_per_second: u32) -> WasiCtx {
    let log =
        |stream| super::GuestLog::new(&owner.tenant, &owner.pipeline, stream, lines_per_second);
    WasiCtxBuilder::new()
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .stdout(log("stdout"))
        .stderr(log("stderr"))
        .build()
}

/// Store data: WASI with no capabilities, and the memory limiter.
struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps linear memory and remembers whether it had to refuse a growth.
struct MemoryLimiter {
    cap: usize,
    refused: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.cap;
        self.refused |= !ok;
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

struct Live {
    store: Store<HostState>,
    bindings: Aggregator,
}

/// One sandboxed instance of a plugin, configured for one pipeline.
///
/// A failed call drops the Store; the next call builds a fresh instance and configures it
/// again, so a trap costs one call, never the pipeline.
pub struct PluginInstance {
    code: Arc<PluginCode>,
    limits: Limits,
    params: Vec<(String, String)>,
    owner: Owner,
    live: Option<Live>,
    info: PluginInfo,
    batch: BatchBuilder,
    restarts: u64,
    last_instantiation: Duration,
}

/// Whose instance this is, for the guest's log lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owner {
    /// Tenant name (empty for `weir run`).
    pub tenant: String,
    /// Pipeline name.
    pub pipeline: String,
}

impl PluginInstance {
    /// Instantiates, configures with `params` and asks the plugin to describe itself.
    pub fn new(
        code: Arc<PluginCode>,
        limits: Limits,
        params: Vec<(String, String)>,
        owner: Owner,
    ) -> Result<Self, Error> {
        let placeholder = PluginInfo {
            name: code.label.clone(),
            version: String::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            has_filter: false,
        };
        let mut inst = PluginInstance {
            code,
            limits,
            params,
            owner,
            live: None,
            info: placeholder,
            batch: BatchBuilder::new(&[], 0),
            restarts: 0,
            last_instantiation: Duration::ZERO,
        };
        let raw = inst.call("describe", |b, s| {
            b.weir_plugin_aggregate().call_describe(s)
        })?;
        inst.info = PluginInfo {
            name: raw.name,
            version: raw.version,
            inputs: raw
                .inputs
                .into_iter()
                .map(|f| (f.name, field_type(f.ty)))
                .collect(),
            outputs: raw
                .outputs
                .into_iter()
                .map(|f| (f.name, field_type(f.ty)))
                .collect(),
            has_filter: raw.has_filter,
        };
        inst.batch = BatchBuilder::new(&inst.info.inputs, 64);
        Ok(inst)
    }

    /// The plugin's description as configured.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// How many times the instance was rebuilt after a failure.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// How long the latest instantiation (with `configure`) took.
    pub fn last_instantiation(&self) -> Duration {
        self.last_instantiation
    }

    /// The compiled code this instance runs.
    pub fn code(&self) -> &Arc<PluginCode> {
        &self.code
    }

    /// The limits this instance runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// `<name>@<version>+<first 12 hex digits of the component's SHA-256>`: the version id
    /// result rows carry.
    pub fn version_id(&self) -> String {
        let sha = self.code.sha256.get(..12).unwrap_or(&self.code.sha256);
        format!("{}@{}+{sha}", self.info.name, self.info.version)
    }

    /// The batch builder for the next call, empty, laid out for the plugin's inputs.
    pub fn batch(&mut self) -> &mut BatchBuilder {
        &mut self.batch
    }

    /// Calls `filter` on the events pushed into [`PluginInstance::batch`].
    pub fn filter(&mut self) -> Result<Vec<bool>, Error> {
        let batch = self.batch.take();
        let n = batch.timestamps.len();
        let keep = self.call("filter", |b, s| {
            b.weir_plugin_aggregate().call_filter(s, &batch)
        })?;
        if keep.len() != n {
            return Err(Error::BadOutput {
                plugin: self.info.name.clone(),
                call: "filter",
                message: format!("returned {} flags for {n} events", keep.len()),
            });
        }
        Ok(keep)
    }

    /// Calls `aggregate` for one key and window on the events pushed into
    /// [`PluginInstance::batch`].
    pub fn aggregate(
        &mut self,
        key: &[(String, Value)],
        window: Window,
    ) -> Result<Vec<OutputRow>, Error> {
        let batch = self.batch.take();
        let key: Vec<(String, super::bindings::weir::plugin::types::Value)> =
            key.iter().map(|(k, v)| (k.clone(), to_wit(v))).collect();
        let w = super::bindings::weir::plugin::types::Window {
            start: window.start,
            end: window.end,
        };
        let result = self.call("aggregate", |b, s| {
            b.weir_plugin_aggregate().call_aggregate(s, &key, w, &batch)
        })?;
        let rows = match result {
            Ok(rows) => rows,
            Err(e) => {
                return Err(Error::Failed {
                    plugin: self.info.name.clone(),
                    message: super::bounded_message(e.message),
                    hint: e.hint.map(super::bounded_message),
                });
            }
        };
        if rows.len() as u64 > self.limits.max_rows_per_call {
            return Err(self.bad_output(format!(
                "returned {} rows; the limit is {} per call (max_rows_per_call)",
                rows.len(),
                self.limits.max_rows_per_call
            )));
        }
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let size: u64 = row
                .iter()
                .map(|(k, v)| (k.len() + value_size(v)) as u64)
                .sum();
            if size > self.limits.max_row_bytes {
                return Err(self.bad_output(format!(
                    "returned a row of {size} bytes; the limit is {} (max_row_bytes)",
                    self.limits.max_row_bytes
                )));
            }
            out.push(row.into_iter().map(|(k, v)| (k, from_wit(v))).collect());
        }
        Ok(out)
    }

    fn bad_output(&self, message: String) -> Error {
        Error::BadOutput {
            plugin: self.info.name.clone(),
            call: "aggregate",
            message,
        }
    }

    fn instantiate(&mut self) -> Result<Live, Error> {
        let started = Instant::now();
        let wasi = guest_wasi(&self.owner, self.limits.log_lines_per_second);
        let mut store = Store::new(
            &self.code.engine,
            HostState {
                wasi,
                table: ResourceTable::new(),
                limiter: MemoryLimiter {
                    cap: usize::try_from(self.limits.memory_bytes).unwrap_or(usize::MAX),
                    refused: false,
                },
            },
        );
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        self.arm(&mut store);
        let bindings = self
            .code
            .pre
            .instantiate(&mut store)
            .map_err(|e| self.classify(&store, "instantiate", e))?;
        let configured = bindings
            .weir_plugin_aggregate()
            .call_configure(&mut store, &self.params)
            .map_err(|e| self.classify(&store, "configure", e))?;
        if let Err(e) = configured {
            return Err(Error::Configure {
                plugin: self.info.name.clone(),
                message: super::bounded_message(e.message),
                hint: e.hint.map(super::bounded_message),
            });
        }
        self.last_instantiation = started.elapsed();
        Ok(Live { store, bindings })
    }

    /// Sets the per-call deadline (and fuel) on a store.
    fn arm(&self, store: &mut Store<HostState>) {
        store.set_epoch_deadline(self.limits.deadline_ms.max(1));
        if let Some(fuel) = self.limits.fuel {
            // Fails only when the engine has fuel off, in which case there is nothing to set.
            let _ = store.set_fuel(fuel);
        }
        store.data_mut().limiter.refused = false;
    }

    fn call<R>(
        &mut self,
        name: &'static str,
        f: impl FnOnce(&Aggregator, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, Error> {
        let mut live = match self.live.take() {
            Some(live) => live,
            None => self.instantiate()?,
        };
        self.arm(&mut live.store);
        match f(&live.bindings, &mut live.store) {
            Ok(r) => {
                self.live = Some(live);
                Ok(r)
            }
            Err(e) => {
                // The Store may be poisoned: drop it, the next call starts fresh.
                self.restarts += 1;
                Err(self.classify(&live.store, name, e))
            }
        }
    }

    fn classify(&self, store: &Store<HostState>, call: &'static str, e: wasmtime::Error) -> Error {
        let plugin = self.info.name.clone();
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => Error::Deadline {
                plugin,
                call,
                deadline_ms: self.limits.deadline_ms,
            },
            Some(Trap::OutOfFuel) => Error::Fuel {
                plugin,
                call,
                fuel: self.limits.fuel.unwrap_or(0),
            },
            _ if store.data().limiter.refused => Error::Memory {
                plugin,
                call,
                limit_bytes: self.limits.memory_bytes,
            },
            _ => Error::Trap {
                plugin,
                call,
                message: super::bounded_message(format!("{e:#}")),
            },
        }
    }
}
