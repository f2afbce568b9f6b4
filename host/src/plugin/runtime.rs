//! The wasmtime engine shared by every plugin of a host: its configuration (epoch
//! interruption, one tick per millisecond, optional fuel), the linker (WASI with no
//! capabilities), the epoch ticker, and loading a component: size cap, cache lookup,
//! the pre-compile checks of `load.rs`, a Cranelift compile with its timeout, linking.
//! The caches themselves are `cache.rs`'s, instances `instance.rs`'s.
//!
//! Isolation as DESIGN.md measured it: a trap poisons a whole Store, so each instance owns
//! one Store and drops it after any failure; the next call re-instantiates (≈ tens of µs via
//! `InstancePre`) and re-runs `configure`. Every call has a CPU deadline (epoch
//! interruption, one tick per millisecond), every Store a memory cap, optional fuel, and
//! WASI with no capabilities at all.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

use super::Error;
use super::bindings::{v1, v2};
use super::cache::{CodeCache, hex, read_artifact, write_artifact};
use super::instance::{PluginCode, Pre};
use super::load::{CompileSlots, LoadLimits, Version, check_world, too_big};
use super::sandbox::HostState;

/// Epoch tick length: the granularity of CPU deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

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
        if let Some(dir) = &self.cache_dir {
            write_artifact(dir, code, self.limits.cache_dir_bytes);
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
        if let Some(dir) = &self.cache_dir
            && let Some(component) = read_artifact(&self.engine, dir, sha256)
        {
            return Ok(component);
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
                let compiled = Component::new(&engine, &owned);
                // Given back before the result: a caller that has the result can start its
                // next compile at once.
                drop(slot);
                let _ = tx.send(compiled);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::tests::plugin_wasm;

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

    #[test]
    fn a_tenants_compiles_one_after_another_are_never_refused() {
        // With one compile slot per tenant, a compile whose result its caller has must
        // already have given its slot back: the next one starts at once. (The thread gave
        // the slot back after sending the result, and a tenant's second pipeline at
        // start-up was sometimes refused.)
        let spin = plugin_wasm("spin").expect("plugins built by scripts/setup.sh");
        let runtime = Runtime::new(false).unwrap();
        for tag in 0..32 {
            let loaded = runtime.load_bytes_as(&variant(&spin, tag), "acme/p (config)", "acme");
            assert!(loaded.is_ok(), "compile {tag}: {:?}", loaded.err());
        }
    }

    fn variant(component: &[u8], tag: u8) -> Vec<u8> {
        let mut out = component.to_vec();
        // A custom section `pad` holding `tag`, appended at the end.
        out.extend_from_slice(&[0, 5, 3, b'p', b'a', b'd', tag]);
        out
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
        let stats = plugin_wasm("stats").expect("plugins built by scripts/setup.sh");
        let runtime = Runtime::new(false).unwrap().with_limits(LoadLimits {
            compile_timeout: Duration::from_micros(1),
            ..LoadLimits::default()
        });
        let e = runtime.load_bytes(&stats, "x").err().expect("too slow");
        assert!(e.to_string().contains("plugins.compile_timeout"), "{e}");
        assert_eq!(runtime.compiled_cache_size(), (0, 0));
    }

    #[test]
    fn the_compiled_cache_evicts_unheld_code_by_bytes_and_keeps_held_code() {
        let stats = plugin_wasm("stats").expect("plugins built by scripts/setup.sh");
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
}
