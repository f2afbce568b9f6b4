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

use super::bindings::{v1, v2};
use super::convert::{BatchBuilder, Columns, OutputRow, wit1, wit2};
use super::load::{CompileSlots, LoadLimits, Version, check_world, too_big};
use super::{Error, Group, GroupResult, Plan, PlanOutput, Plugin, Row, Slot, check_rows};
use crate::config::Limits;
use crate::value::{FieldType, Value};
use crate::window::Window;

/// Epoch tick length: the granularity of CPU deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Compiled code by SHA-256, bounded by bytes, least recently used evicted first.
#[derive(Default)]
struct CodeCache {
    entries: HashMap<String, CacheEntry>,
    /// Sum of the entries' `bytes`.
    total: u64,
    /// A counter standing for time: larger is more recent.
    clock: u64,
}

struct CacheEntry {
    code: Arc<PluginCode>,
    bytes: u64,
    used: u64,
}

impl CodeCache {
    fn get(&mut self, sha256: &str) -> Option<Arc<PluginCode>> {
        self.clock = self.clock.wrapping_add(1);
        let e = self.entries.get_mut(sha256)?;
        e.used = self.clock;
        Some(e.code.clone())
    }

    /// Inserts `code`, then evicts least recently used code nobody else holds until the
    /// cache is within `cap` (it may stay above while pipelines hold more than `cap`).
    fn insert(&mut self, code: Arc<PluginCode>, cap: u64) {
        self.clock = self.clock.wrapping_add(1);
        let bytes = code.code_bytes;
        let sha = code.sha256.clone();
        if let Some(old) = self.entries.insert(
            sha.clone(),
            CacheEntry {
                code,
                bytes,
                used: self.clock,
            },
        ) {
            self.total = self.total.saturating_sub(old.bytes);
        }
        // Saturating: a sum of in-memory sizes cannot reach u64::MAX, but it costs nothing.
        self.total = self.total.saturating_add(bytes);
        self.trim(cap, Some(&sha));
    }

    /// Evicts least recently used code nobody else holds until the cache is within `cap`;
    /// `spare` (just inserted) is not evicted.
    fn trim(&mut self, cap: u64, spare: Option<&str>) {
        while self.total > cap {
            // Only the map holds it: no pipeline keeps this version, nobody is using it.
            let victim = self
                .entries
                .iter()
                .filter(|(k, e)| Some(k.as_str()) != spare && Arc::strong_count(&e.code) == 1)
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone());
            let Some(victim) = victim else { break };
            if let Some(e) = self.entries.remove(&victim) {
                self.total = self.total.saturating_sub(e.bytes);
                tracing::debug!(sha256 = %victim, bytes = e.bytes, "compiled code evicted");
            }
        }
    }
}

/// The wasmtime engine shared by every plugin of a host, with its epoch ticker.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<HostState>>,
    /// Compiled code of validated versions by SHA-256 of the component bytes.
    compiled: Arc<Mutex<CodeCache>>,
    /// Where precompiled artifacts are kept across restarts, if anywhere.
    cache_dir: Option<PathBuf>,
    limits: LoadLimits,
    /// Where Cranelift compile times are recorded, if anywhere.
    compile_seconds: Option<prometheus_client::metrics::histogram::Histogram>,
    /// The compiles running now.
    compiles: Arc<CompileSlots>,
}

impl Runtime {
    /// Records the wall time of every Cranelift compile (not cache hits) in `histogram`.
    pub fn with_compile_meter(
        mut self,
        histogram: prometheus_client::metrics::histogram::Histogram,
    ) -> Self {
        self.compile_seconds = Some(histogram);
        self
    }

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
            compiled: Arc::new(Mutex::new(CodeCache::default())),
            cache_dir: None,
            limits: LoadLimits::default(),
            compile_seconds: None,
            compiles: Arc::default(),
        })
    }

    /// Keeps precompiled artifacts in `dir` (`<sha256>.cwasm`), so a restart does not
    /// recompile a component it has seen. The directory must be private to this host: its
    /// files are loaded as native code.
    pub fn with_cache_dir(mut self, dir: PathBuf) -> Self {
        self.cache_dir = Some(dir);
        self
    }

    /// Sets what loading a component may cost (see [`LoadLimits`] for the defaults).
    pub fn with_limits(mut self, limits: LoadLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The limits components are loaded under.
    pub fn limits(&self) -> &LoadLimits {
        &self.limits
    }

    /// Bytes of compiled code in the in-memory cache, and how many components.
    pub fn compiled_cache_size(&self) -> (u64, usize) {
        let cache = self.lock_compiled();
        (cache.total, cache.entries.len())
    }

    /// Compiles a component file and links it against the host (WASI with no capabilities).
    /// The size cap is checked from the file's metadata before it is read.
    pub fn load_file(&self, path: &Path) -> Result<Arc<PluginCode>, Error> {
        let label = path.display().to_string();
        let error = |message: String| Error::Compile {
            path: label.clone(),
            message,
        };
        let len = std::fs::metadata(path)
            .map_err(|e| error(e.to_string()))?
            .len();
        if len > self.limits.max_bytes {
            return Err(error(too_big(len, self.limits.max_bytes)));
        }
        let bytes = std::fs::read(path).map_err(|e| error(e.to_string()))?;
        self.load_bytes(&bytes, &label)
    }

    /// Compiles component bytes; `label` names them in errors (a path or a version).
    ///
    /// Before anything is compiled, the size cap is checked and the component's imports and
    /// exports are read (a parse, not a compilation): a component of another world, or one
    /// importing something other than WASI, is refused in milliseconds. Compilation then has
    /// [`LoadLimits::compile_timeout`].
    ///
    /// Code of versions that passed validation ([`Runtime::keep`]) is cached by the SHA-256
    /// of the bytes: loading the same component again (a rollback, a second pipeline) costs a
    /// hash, not a compilation. Code returned here is not cached until it is kept.
    pub fn load_bytes(&self, bytes: &[u8], label: &str) -> Result<Arc<PluginCode>, Error> {
        self.load_bytes_as(bytes, label, "")
    }

    /// [`Runtime::load_bytes`] for tenant `owner` (empty: the host's own), whose compiles
    /// count against [`LoadLimits::max_compiles_per_tenant`].
    pub fn load_bytes_as(
        &self,
        bytes: &[u8],
        label: &str,
        owner: &str,
    ) -> Result<Arc<PluginCode>, Error> {
        let compile = |message: String| Error::Compile {
            path: label.to_string(),
            message,
        };
        let len = bytes.len() as u64;
        if len > self.limits.max_bytes {
            return Err(compile(too_big(len, self.limits.max_bytes)));
        }
        let sha256 = hex(&Sha256::digest(bytes));
        if let Some(code) = self.lock_compiled().get(&sha256) {
            return Ok(code);
        }
        let shape = check_world(bytes).map_err(compile)?;
        shape.check(&self.limits).map_err(compile)?;
        let version = shape.version;
        let component = self.compile(bytes, &sha256, owner).map_err(compile)?;
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            compile(format!(
                "imports something the host does not provide (plugins get WASI with no capabilities): {e:#}"
            ))
        })?;
        let wrong_world = |e: wasmtime::Error| {
            compile(format!(
                "does not export the weir:plugin `aggregator` world it names; build it with weir-guest: {e:#}"
            ))
        };
        let pre = match version {
            Version::V2 => Pre::V2(v2::AggregatorPre::new(pre).map_err(wrong_world)?),
            Version::V1 => Pre::V1(v1::AggregatorPre::new(pre).map_err(wrong_world)?),
        };
        let image = component.image_range();
        let code_bytes = (image.end as usize).saturating_sub(image.start as usize) as u64;
        Ok(Arc::new(PluginCode {
            sha256,
            pre,
            component,
            code_bytes,
            engine: self.engine.clone(),
        }))
    }

    /// Caches code of a version that passed validation (instantiated, configured, described,
    /// inputs checked): in memory, bounded by [`LoadLimits::compiled_cache_bytes`], and as an
    /// artifact in the cache dir, bounded by [`LoadLimits::cache_dir_bytes`]. Code of a
    /// rejected version is never passed here, so it is never cached anywhere.
    pub fn keep(&self, code: &Arc<PluginCode>) {
        self.lock_compiled()
            .insert(code.clone(), self.limits.compiled_cache_bytes);
        let Some(dir) = &self.cache_dir else { return };
        let path = dir.join(format!("{}.cwasm", code.sha256));
        if path.exists() {
            return;
        }
        let written = code
            .component
            .serialize()
            .map_err(|e| std::io::Error::other(format!("{e:#}")))
            .and_then(|artifact| {
                std::fs::create_dir_all(dir)?;
                let tmp = dir.join(format!(".{}.tmp", code.sha256));
                std::fs::write(&tmp, &artifact)?;
                std::fs::rename(&tmp, &path)
            });
        match written {
            Ok(()) => trim_cache_dir(dir, &path, self.limits.cache_dir_bytes),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot write the compiled-artifact cache")
            }
        }
    }

    /// Evicts cached code that no longer has a holder (e.g. a version a pipeline just
    /// stopped keeping) until the cache is within its bound.
    pub fn trim_compiled(&self) {
        self.lock_compiled()
            .trim(self.limits.compiled_cache_bytes, None);
    }

    fn lock_compiled(&self) -> std::sync::MutexGuard<'_, CodeCache> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.compiled.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Loads the precompiled artifact from the cache dir, or compiles with Cranelift on a
    /// thread of its own, waiting at most [`LoadLimits::compile_timeout`].
    fn compile(&self, bytes: &[u8], sha256: &str, owner: &str) -> Result<Component, String> {
        if let Some(dir) = &self.cache_dir {
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
        }
        let not_component = |e: wasmtime::Error| {
            format!(
                "a damaged WebAssembly component (it does not compile: {}); build it again for wasm32-wasip2",
                e.root_cause()
            )
        };
        let timeout = self.limits.compile_timeout;
        let slot = self.compiles.take(owner, &self.limits, timeout)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let engine = self.engine.clone();
        let owned = bytes.to_vec();
        // Cranelift cannot be interrupted: on timeout the thread finishes on its own and its
        // result is dropped (never cached). It keeps its slot until then, so compiles over
        // their timeout never pile up; the code-size caps bound how long one can be.
        let spawned = std::thread::Builder::new()
            .name("weir-compile".into())
            .spawn(move || {
                let _ = tx.send(Component::new(&engine, &owned));
                drop(slot);
            });
        if let Err(e) = spawned {
            return Err(format!("cannot start a compiler thread: {e}"));
        }
        let started = std::time::Instant::now();
        match rx.recv_timeout(timeout) {
            Ok(result) => {
                if let Some(h) = &self.compile_seconds {
                    h.observe(started.elapsed().as_secs_f64());
                }
                result.map_err(not_component)
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(format!(
                "compiling took longer than {} ms (plugins.compile_timeout); make the component smaller or ask the operator to raise the limit",
                timeout.as_millis()
            )),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                Err("the compiler thread failed".into())
            }
        }
    }
}

/// Deletes the oldest `*.cwasm` files in `dir` (by modification time) until their total
/// is at most `cap`; `keep` (just written) is never deleted.
fn trim_cache_dir(dir: &Path, keep: &Path, cap: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((m.modified().ok()?, m.len(), e.path()))
        })
        .collect();
    let mut total = files.iter().fold(0u64, |t, f| t.saturating_add(f.1));
    files.sort();
    for (_, len, path) in files {
        if total <= cap {
            break;
        }
        if path == keep {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => total = total.saturating_sub(len),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot trim the compiled-artifact cache")
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A compiled, linked plugin, ready to instantiate any number of times.
///
/// It carries no label: the same code may be shared by several tenants' pipelines (it is
/// cached by content), so names in errors come from the instance's [`Owner`], never from
/// whoever loaded the code first.
pub struct PluginCode {
    sha256: String,
    pre: Pre,
    component: Component,
    /// Size of the compiled code in memory, for the cache's bound.
    code_bytes: u64,
    engine: Engine,
}

/// Linked code of one contract version.
enum Pre {
    V1(v1::AggregatorPre<HostState>),
    V2(v2::AggregatorPre<HostState>),
}

/// A live instance's exports, of the version its code was built for.
enum Bindings {
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

/// WASI that grants nothing: no preopened files, no environment, no arguments, no
/// sockets or name lookups (denied explicitly, on top of wasmtime-wasi's defaults). Clocks
/// and random numbers stay available (Rust's `HashMap` seeds itself from them). Stdout
/// and stderr go to the tenant's log, rate-limited; panics written to stderr are also kept
/// in `panics`.
fn guest_wasi(owner: &Owner, lines_per_second: u32, panics: &super::PanicCapture) -> WasiCtx {
    let log =
        |stream| super::GuestLog::new(&owner.tenant, &owner.pipeline, stream, lines_per_second);
    WasiCtxBuilder::new()
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .stdout(log("stdout"))
        .stderr(log("stderr").with_panic_capture(panics.clone()))
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

/// The most table elements one Store may hold, summed over all its tables: 100 000.
/// A Rust plugin's function tables hold a few hundred to a few thousand entries; without a
/// cap, tables sit outside the memory cap (a million elements is 8 MB of host memory each).
pub const MAX_TABLE_ELEMENTS: usize = 100_000;

/// The most core instances one Store may create: 64 (a wasip2 component built by
/// `cargo`/`wit-bindgen` creates about ten, its WASI adapter included).
pub const MAX_INSTANCES: usize = 64;

/// The most linear memories one Store may hold: 8 (such components have one or two).
pub const MAX_MEMORIES: usize = 8;

/// The most tables one Store may hold: 32.
pub const MAX_TABLES: usize = 32;

/// Caps a Store's resources and remembers whether it had to refuse a growth.
///
/// The memory cap applies to the **sum** of all linear memories of the Store, not to each
/// memory: a component can hold several (its own and an adapter's), and a per-memory cap
/// would let it use a multiple of `cap`. Tables are capped by elements in total
/// ([`MAX_TABLE_ELEMENTS`]); instances, memories and tables are capped in number.
pub(crate) struct MemoryLimiter {
    cap: usize,
    /// Bytes of linear memory the Store holds now, all memories together.
    memory: usize,
    /// Elements of all tables together.
    elements: usize,
    table_cap: usize,
    refused: bool,
}

impl MemoryLimiter {
    pub(crate) fn new(cap: usize) -> Self {
        MemoryLimiter {
            cap,
            memory: 0,
            elements: 0,
            table_cap: MAX_TABLE_ELEMENTS,
            refused: false,
        }
    }

    /// Grows `total` by `desired - current` if the result stays within `cap`. Checked and
    /// saturating: `desired` comes from the guest and may be anything.
    fn grow(total: &mut usize, current: usize, desired: usize, cap: usize) -> bool {
        let after = total
            .saturating_sub(current)
            .checked_add(desired)
            .filter(|after| *after <= cap);
        match after {
            Some(after) => {
                *total = after;
                true
            }
            None => false,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = Self::grow(&mut self.memory, current, desired, self.cap);
        self.refused |= !ok;
        Ok(ok)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // The growth was counted but did not happen; the Store is dropped after a failure
        // anyway, so the count is only ever too high, never too low.
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // A refused table growth is a trap, not a memory error: `refused` stays as it is.
        Ok(Self::grow(
            &mut self.elements,
            current,
            desired,
            self.table_cap,
        ))
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

struct Live {
    store: Store<HostState>,
    bindings: Bindings,
}

/// One sandboxed instance of a plugin, configured for one pipeline.
///
/// A failed call drops the Store; the next call builds a fresh instance and configures it
/// again, so a trap costs one call, never the pipeline.
pub struct PluginInstance {
    code: Arc<PluginCode>,
    limits: Limits,
    params: Vec<(String, String)>,
    key_fields: Vec<String>,
    owner: Owner,
    live: Option<Live>,
    info: PluginInfo,
    batch: BatchBuilder,
    restarts: u64,
    last_instantiation: Duration,
    /// The last panic the guest wrote to stderr during the current call.
    panics: super::PanicCapture,
    /// Where failures of calls are reported, if anywhere.
    last_error: Option<super::LastError>,
    /// Where the cost of calls is measured, if anywhere.
    meter: Option<super::CallMeter>,
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
            slot.record(&e);
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

    fn bad_output(&self, call: &'static str, message: String) -> Error {
        self.noted(Error::BadOutput {
            plugin: self.info.name.clone(),
            call,
            message,
        })
    }

    fn failed(&self, message: String, hint: Option<String>) -> Error {
        self.noted(Error::Failed {
            plugin: self.info.name.clone(),
            message: super::bounded_message(message),
            hint: hint.map(super::bounded_message),
        })
    }

    /// Checks one window's rows; `Err` fails that window only.
    fn checked(&self, call: &'static str, rows: Vec<Row>) -> GroupResult {
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

    fn call<R>(
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

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn the_memory_cap_is_the_sum_of_all_memories_of_a_store() {
        // wasmtime calls `memory_growing(current, desired)` per memory, also for a memory's
        // initial size (current = 0). Two memories of 6 MiB under a 10 MiB cap: the second
        // must be refused although each alone fits.
        let mut l = MemoryLimiter::new(10 * MIB);
        assert!(l.memory_growing(0, 6 * MIB, None).unwrap(), "first memory");
        assert!(
            !l.memory_growing(0, 6 * MIB, None).unwrap(),
            "second memory"
        );
        assert!(l.refused);
        // A second memory of 3 MiB fits (6 + 3 = 9 MiB); then the first may grow by what
        // is left, 1 MiB, and not a byte more.
        assert!(
            l.memory_growing(0, 3 * MIB, None).unwrap(),
            "3 MiB second memory"
        );
        assert!(
            !l.memory_growing(6 * MIB, 8 * MIB, None).unwrap(),
            "6 → 8 MiB: 11 MiB"
        );
        assert!(
            l.memory_growing(6 * MIB, 7 * MIB, None).unwrap(),
            "6 → 7 MiB: 10 MiB"
        );
        assert!(
            !l.memory_growing(3 * MIB, 3 * MIB + 1, None).unwrap(),
            "one byte over"
        );
    }

    #[test]
    fn a_hostile_desired_size_does_not_overflow() {
        let mut l = MemoryLimiter::new(usize::MAX);
        assert!(l.memory_growing(0, 1, None).unwrap());
        assert!(!l.memory_growing(0, usize::MAX, None).unwrap());
        let mut l = MemoryLimiter::new(10);
        assert!(!l.table_growing(0, usize::MAX, None).unwrap());
    }

    #[test]
    fn tables_are_capped_in_elements_across_the_store() {
        let mut l = MemoryLimiter::new(usize::MAX);
        assert!(l.table_growing(0, MAX_TABLE_ELEMENTS - 10, None).unwrap());
        assert!(l.table_growing(0, 10, None).unwrap());
        assert!(!l.table_growing(0, 1, None).unwrap(), "over the cap by one");
        assert!(!l.table_growing(10, 1_000_000, None).unwrap());
        assert!(
            !l.refused,
            "a table refusal is not reported as a memory overrun"
        );
        assert_eq!(l.instances(), MAX_INSTANCES);
        assert_eq!(l.memories(), MAX_MEMORIES);
        assert_eq!(l.tables(), MAX_TABLES);
    }

    /// A component: header, then `sections` as (id, payload).
    fn component(sections: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let mut out = b"\0asm\x0d\0\x01\0".to_vec();
        for (id, payload) in sections {
            out.push(*id);
            leb(&mut out, payload.len());
            out.extend_from_slice(payload);
        }
        out
    }

    fn leb(out: &mut Vec<u8>, mut n: usize) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn custom(size: usize) -> (u8, Vec<u8>) {
        let mut p = vec![4];
        p.extend_from_slice(b"pad\0");
        p.resize(size, 0);
        (0, p)
    }

    #[test]
    fn the_world_is_checked_without_compiling() {
        let core = b"\0asm\x01\0\0\0";
        let e = check_world(core).unwrap_err();
        assert!(
            e.starts_with("not a WebAssembly component: it is a core wasm module")
                && e.contains("--target wasm32-wasip2"),
            "{e}"
        );
        let e = check_world(b"garbage!").unwrap_err();
        assert_eq!(
            e,
            "not a WebAssembly component: the first bytes look like text (\"garbage!\"), not wasm"
        );
        // An empty component, and one padded with a 32 MiB custom section: both refused for
        // exporting nothing, the large one as fast as a parse of its section headers.
        let e = check_world(&component(&[])).unwrap_err();
        assert!(
            e.contains("does not export the weir:plugin `aggregator` world"),
            "{e}"
        );
        let big = component(&[custom(32 * MIB)]);
        let started = Instant::now();
        let e = check_world(&big).unwrap_err();
        assert!(e.contains("does not export"), "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn bytes_that_are_not_wasm_get_one_line_saying_what_they_are() {
        let one = |bytes: &[u8]| check_world(bytes).unwrap_err();
        assert_eq!(one(b""), "not a WebAssembly component: the file is empty");
        let elf = one(b"\x7fELF\x02\x01\x01\0\0\0");
        assert!(
            elf.starts_with("not a WebAssembly component: it is an ELF executable or library"),
            "{elf}"
        );
        assert_eq!(
            one(b"[pipeline]\nname = 1\n"),
            "not a WebAssembly component: the first bytes look like text (\"[pipeline]\"), not wasm"
        );
        assert_eq!(
            one(&[0xff, 0x00, 0x12, 0x34, 0x56]),
            "not a WebAssembly component: it does not start with the wasm magic number (it starts with ff 00 12 34)"
        );
        for e in [elf, one(b"\x1f\x8b\x08"), one(b"MZ\x90\0")] {
            assert!(!e.contains('\n') && !e.contains("magic header"), "{e}");
        }
        // The magic number and then garbage: a damaged component, in one line.
        let e = one(b"\0asm\x0d\0\x01\0\xff\xff");
        assert!(
            e.starts_with("a damaged WebAssembly component: ") && !e.contains('\n'),
            "{e}"
        );
    }

    fn plugin_wasm(name: &str) -> Option<Vec<u8>> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/wasm32-wasip2/plugin")
            .join(format!("{name}.wasm"));
        std::fs::read(path).ok()
    }

    #[test]
    fn real_components_pass_or_fail_the_world_check_by_their_world() {
        let (Some(stats), Some(importer), Some(wrong)) = (
            plugin_wasm("stats"),
            plugin_wasm("importer"),
            plugin_wasm("wrong_world"),
        ) else {
            eprintln!("plugins not built (scripts/setup.sh); skipping");
            return;
        };
        assert_eq!(check_world(&stats).map(|s| s.version), Ok(Version::V2));
        if let Some(legacy) = plugin_wasm("legacy") {
            assert_eq!(check_world(&legacy).map(|s| s.version), Ok(Version::V1));
        }
        let e = check_world(&importer).unwrap_err();
        assert!(
            e.contains("imports something the host does not provide"),
            "{e}"
        );
        assert!(e.contains("fetch"), "{e}");
        let e = check_world(&wrong).unwrap_err();
        assert!(
            e.contains("does not export the weir:plugin `aggregator` world"),
            "{e}"
        );
    }

    #[test]
    fn code_size_caps_refuse_a_component_before_it_is_compiled() {
        let stats = plugin_wasm("stats").expect("plugins built by scripts/setup.sh");
        let shape = check_world(&stats).expect("stats is a plugin");
        // Its function bodies are most of its ~150 KiB file; its largest is far smaller.
        assert!(
            shape.code_bytes > 20_000 && shape.code_bytes < stats.len() as u64,
            "{shape:?}"
        );
        assert!(shape.largest_function < shape.code_bytes, "{shape:?}");
        assert_eq!(shape.check(&LoadLimits::default()), Ok(()));
        let tight = |max_code_bytes, max_function_bytes| {
            Runtime::new(false).unwrap().with_limits(LoadLimits {
                max_code_bytes,
                max_function_bytes,
                // A compile would take longer than this: a refusal here was not a compile.
                compile_timeout: Duration::from_micros(1),
                ..LoadLimits::default()
            })
        };
        let e = tight(shape.code_bytes - 1, u64::MAX)
            .load_bytes(&stats, "acme/ticks (api)")
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("plugins.max_code_bytes"), "{e}");
        assert!(e.contains(&shape.code_bytes.to_string()), "{e}");
        let e = tight(u64::MAX, shape.largest_function - 1)
            .load_bytes(&stats, "acme/ticks (api)")
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("plugins.max_function_bytes"), "{e}");
    }

    #[test]
    fn compile_slots_bound_compiles_host_wide_and_per_tenant() {
        let slots = Arc::new(CompileSlots::default());
        let limits = LoadLimits {
            max_compiles: 1,
            max_compiles_per_tenant: 1,
            ..LoadLimits::default()
        };
        let wait = Duration::from_millis(50);
        let acme = slots.take("acme", &limits, wait).expect("a free slot");
        // acme's second compile is refused at once, without waiting.
        let started = Instant::now();
        let e = slots
            .take("acme", &limits, Duration::from_secs(30))
            .err()
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(e.contains("plugins.max_compiles_per_tenant"), "{e}");
        // globex waits for the host-wide slot, then is refused with the reason.
        let e = slots.take("globex", &limits, wait).err().unwrap();
        assert!(e.contains("plugins.max_compiles"), "{e}");
        // Once acme's compile ends, a waiting globex gets its slot.
        let waiter = {
            let slots = Arc::clone(&slots);
            std::thread::spawn(move || {
                slots
                    .take("globex", &limits, Duration::from_secs(30))
                    .map(|_| ())
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        drop(acme);
        assert_eq!(waiter.join().unwrap(), Ok(()));
        assert_eq!(slots.lock().all, 0);
        assert!(slots.lock().by_owner.is_empty());
    }

    #[test]
    fn a_compile_over_its_timeout_keeps_its_slot_until_it_ends() {
        let stats = plugin_wasm("stats").expect("plugins built by scripts/setup.sh");
        let runtime = Runtime::new(false).unwrap().with_limits(LoadLimits {
            compile_timeout: Duration::from_micros(1),
            ..LoadLimits::default()
        });
        let e = runtime.load_bytes_as(&stats, "acme/ticks (api)", "acme");
        assert!(e.is_err(), "a compile within 1 µs");
        // The compile goes on in the background, holding acme's one slot: a second
        // deploy of acme's is refused at once rather than starting a second compile.
        let again = runtime
            .load_bytes_as(&variant(&stats, 1), "acme/ticks (api)", "acme")
            .err()
            .expect("refused")
            .to_string();
        assert!(
            again.contains("plugins.max_compiles_per_tenant")
                || again.contains("plugins.compile_timeout"),
            "{again}"
        );
        // Once it ends, the slot is free again.
        let until = Instant::now() + Duration::from_secs(60);
        while runtime.compiles.lock().all > 0 {
            assert!(Instant::now() < until, "the background compile never ended");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn variant(component: &[u8], tag: u8) -> Vec<u8> {
        let mut out = component.to_vec();
        // A custom section `pad` holding `tag`, appended at the end.
        out.extend_from_slice(&[0, 5, 3, b'p', b'a', b'd', tag]);
        out
    }

    fn limits() -> Limits {
        crate::config::LimitsConfig::default().resolve(None)
    }

    #[test]
    fn the_size_cap_is_checked_before_anything_else() {
        let runtime = Runtime::new(false).unwrap().with_limits(LoadLimits {
            max_bytes: 100,
            ..LoadLimits::default()
        });
        let e = runtime
            .load_bytes(&[0u8; 101], "acme/target (api)")
            .err()
            .expect("refused");
        let e = e.to_string();
        assert!(
            e.contains("plugins.max_bytes") && e.contains("101 bytes"),
            "{e}"
        );
    }

    #[test]
    fn a_compile_over_its_budget_is_rejected_and_not_cached() {
        let Some(stats) = plugin_wasm("stats") else {
            return;
        };
        let runtime = Runtime::new(false).unwrap().with_limits(LoadLimits {
            compile_timeout: Duration::from_micros(1),
            ..LoadLimits::default()
        });
        let e = runtime.load_bytes(&stats, "x").err().expect("too slow");
        assert!(e.to_string().contains("plugins.compile_timeout"), "{e}");
        assert_eq!(runtime.compiled_cache_size(), (0, 0));
    }

    #[test]
    fn cached_code_never_shows_another_tenants_name() {
        let Some(stats) = plugin_wasm("stats") else {
            return;
        };
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

    #[test]
    fn the_compiled_cache_evicts_unheld_code_by_bytes_and_keeps_held_code() {
        let Some(stats) = plugin_wasm("stats") else {
            return;
        };
        let runtime = Runtime::new(false).unwrap();
        let a = runtime.load_bytes(&variant(&stats, 1), "a").unwrap();
        let size = a.code_bytes();
        assert!(size > 0);
        // Room for two components' code.
        let runtime = runtime.with_limits(LoadLimits {
            compiled_cache_bytes: 2 * size + size / 2,
            ..LoadLimits::default()
        });
        runtime.keep(&a); // held by the test, like a pipeline's kept version
        for tag in 2..=5 {
            let code = runtime.load_bytes(&variant(&stats, tag), "v").unwrap();
            runtime.keep(&code);
            // `code` dropped here: only the cache holds it.
        }
        // a (held) + the most recent unheld variant fit; 2, 3, 4 were evicted oldest first.
        let (bytes, count) = runtime.compiled_cache_size();
        assert_eq!(count, 2, "{bytes} bytes");
        let hit = |tag| {
            let sha = hex(&Sha256::digest(variant(&stats, tag)));
            runtime.lock_compiled().entries.contains_key(&sha)
        };
        assert!(hit(1) && hit(5) && !hit(2) && !hit(3) && !hit(4));
        // Once nobody holds `a`, a trim evicts it too (over the cap with both).
        drop(a);
        runtime.trim_compiled();
        assert_eq!(
            runtime.compiled_cache_size().1,
            2,
            "within the cap: nothing to evict"
        );
    }

    #[test]
    fn the_disk_cache_is_trimmed_oldest_first_and_never_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, len: usize| {
            let p = dir.path().join(name);
            std::fs::write(&p, vec![0u8; len]).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            p
        };
        write("a.cwasm", 100);
        write("b.cwasm", 100);
        write("notes.txt", 1000);
        let newest = write("c.cwasm", 100);
        trim_cache_dir(dir.path(), &newest, 250);
        let left = |n: &str| dir.path().join(n).exists();
        assert!(!left("a.cwasm") && left("b.cwasm") && left("c.cwasm") && left("notes.txt"));
        trim_cache_dir(dir.path(), &newest, 0);
        assert!(!left("b.cwasm") && left("c.cwasm"));
    }
}
