//! What a component must be before it is compiled, and what compiling it may cost the
//! host: the [`LoadLimits`], the parse that reads a component's world and the size of its
//! code without compiling it (`check_world`, [`Shape`]), the one-line answer for bytes that
//! are not a component, and the compile slots that bound how many Cranelift compiles run at
//! once. Compiling and linking are `runtime.rs`'s, instantiating `instance.rs`'s.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Limits on what loading a component may cost the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadLimits {
    /// The largest component accepted, in bytes (default 16 MiB, `[plugins] max_bytes`).
    /// Checked before anything is parsed or compiled.
    pub max_bytes: u64,
    /// How long compiling one component may take (default 20 s, `[plugins] compile_timeout`).
    /// A compile over it is rejected with the reason; its result is discarded, never cached.
    pub compile_timeout: Duration,
    /// How many bytes of compiled code the in-memory cache keeps for code no pipeline holds
    /// (default 256 MiB, `[plugins] compiled_cache`). Least recently used code is evicted
    /// first; code a pipeline keeps (its live and rollback versions) is never evicted.
    pub compiled_cache_bytes: u64,
    /// How many bytes of artifacts the on-disk cache keeps (default 1 GiB,
    /// `[plugins] cache_dir_max`); the oldest artifacts are deleted first.
    pub cache_dir_bytes: u64,
    /// Compiles running at once on the host (default 1, `[plugins] max_compiles`). A compile
    /// holds its slot until Cranelift ends, past its timeout too; a load waits for a slot
    /// for at most `compile_timeout`, then is refused.
    pub max_compiles: usize,
    /// Compiles of one owner (tenant) running at once, timed-out ones included (default 1,
    /// `[plugins] max_compiles_per_tenant`); one more is refused at once.
    pub max_compiles_per_tenant: usize,
    /// The most bytes of function bodies over all of a component's core modules (default
    /// 8 MiB, `[plugins] max_code_bytes`), read by a parse before compiling.
    pub max_code_bytes: u64,
    /// The largest single function body (default 1 MiB, `[plugins] max_function_bytes`).
    pub max_function_bytes: u64,
}

impl LoadLimits {
    /// The limits a host config's `[plugins]` section sets.
    pub fn of(cfg: &crate::config::PluginsConfig) -> Self {
        LoadLimits {
            max_bytes: cfg.max_bytes.0,
            compile_timeout: cfg.compile_timeout.duration(),
            compiled_cache_bytes: cfg.compiled_cache.0,
            cache_dir_bytes: cfg.cache_dir_max.0,
            max_compiles: cfg.max_compiles,
            max_compiles_per_tenant: cfg.max_compiles_per_tenant,
            max_code_bytes: cfg.max_code_bytes.0,
            max_function_bytes: cfg.max_function_bytes.0,
        }
    }
}

impl Default for LoadLimits {
    fn default() -> Self {
        LoadLimits {
            max_bytes: 16 * 1024 * 1024,
            compile_timeout: Duration::from_secs(20),
            compiled_cache_bytes: 256 * 1024 * 1024,
            cache_dir_bytes: 1024 * 1024 * 1024,
            max_compiles: 1,
            max_compiles_per_tenant: 1,
            max_code_bytes: 8 * 1024 * 1024,
            max_function_bytes: 1024 * 1024,
        }
    }
}

/// The compiles running on a host, in all and per owner: a compile takes a [`CompileSlot`]
/// before Cranelift starts and gives it back when Cranelift ends, whether or not its caller
/// still waits for it (a compile cannot be stopped), so timed-out compiles cannot pile up.
#[derive(Default)]
pub(super) struct CompileSlots {
    running: Mutex<Running>,
    freed: std::sync::Condvar,
}

#[derive(Default)]
pub(super) struct Running {
    pub(super) all: usize,
    pub(super) by_owner: HashMap<String, usize>,
}

/// One running compile's place in [`CompileSlots`], given back when dropped.
pub(super) struct CompileSlot {
    slots: Arc<CompileSlots>,
    owner: String,
}

impl CompileSlots {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Running> {
        // Counts change whole under the lock: a poisoned lock is still consistent.
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for a compile of `owner`: refused at once while `owner` has `per_owner`
    /// compiles running, else waits at most `wait` for one of `all` host-wide slots.
    pub(super) fn take(
        self: &Arc<Self>,
        owner: &str,
        limits: &LoadLimits,
        wait: Duration,
    ) -> Result<CompileSlot, String> {
        let until = Instant::now() + wait;
        let mut running = self.lock();
        loop {
            let mine = running.by_owner.get(owner).copied().unwrap_or(0);
            if !owner.is_empty() && mine >= limits.max_compiles_per_tenant {
                return Err(format!(
                    "{mine} earlier compile(s) of tenant {owner} still running (plugins.max_compiles_per_tenant = {}; a compile over its timeout runs to its end); deploy again once it has ended",
                    limits.max_compiles_per_tenant
                ));
            }
            if running.all < limits.max_compiles.max(1) {
                running.all += 1;
                *running.by_owner.entry(owner.to_string()).or_insert(0) += 1;
                return Ok(CompileSlot {
                    slots: Arc::clone(self),
                    owner: owner.to_string(),
                });
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "the host is busy compiling other components ({} at once, plugins.max_compiles) and none finished within {} ms; deploy again in a moment",
                    running.all,
                    wait.as_millis()
                ));
            }
            running = self
                .freed
                .wait_timeout(running, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl Drop for CompileSlot {
    fn drop(&mut self) {
        let mut running = self.slots.lock();
        running.all = running.all.saturating_sub(1);
        if let Some(n) = running.by_owner.get_mut(&self.owner) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                running.by_owner.remove(&self.owner);
            }
        }
        drop(running);
        self.slots.freed.notify_all();
    }
}

pub(super) fn too_big(len: u64, max: u64) -> String {
    format!(
        "is {len} bytes; the limit is {max} bytes (plugins.max_bytes); make the component smaller (build with --release, strip debug info) or ask the operator to raise the limit"
    )
}

/// WASI p2 packages the host's linker provides (with no capabilities granted).
pub(super) const WASI_PACKAGES: &[&str] = &[
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:cli/",
    "wasi:filesystem/",
    "wasi:sockets/",
];

/// The interfaces of types the `aggregator` worlds' exports use; components import one
/// (it has no functions, so the host provides it by type alone).
pub(super) const TYPES_IMPORTS: [&str; 2] = ["weir:plugin/types@0.2.0", "weir:plugin/types@0.1.0"];

/// The interface each version of the `aggregator` world exports, newest first.
pub(super) const AGGREGATE_EXPORTS: [(&str, Version); 2] = [
    ("weir:plugin/aggregate@0.2.0", Version::V2),
    ("weir:plugin/aggregate@0.1.0", Version::V1),
];

/// The contract versions the host loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Version {
    /// `weir:plugin@0.1.0`: one window per call, whole-window only.
    V1,
    /// `weir:plugin@0.2.0`: batched groups, incremental steps.
    V2,
}

/// What a parse tells of a component before it is compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Shape {
    /// The contract version it exports.
    pub(super) version: Version,
    /// Bytes of function bodies over all its core modules.
    pub(super) code_bytes: u64,
    /// The largest single function body.
    pub(super) largest_function: u64,
}

impl Shape {
    /// Within [`LoadLimits::max_code_bytes`] and [`LoadLimits::max_function_bytes`].
    pub(super) fn check(&self, limits: &LoadLimits) -> Result<(), String> {
        if self.code_bytes > limits.max_code_bytes {
            return Err(format!(
                "holds {} bytes of function bodies; the limit is {} (plugins.max_code_bytes); make the plugin smaller (fewer dependencies, opt-level = \"s\") or ask the operator to raise the limit",
                self.code_bytes, limits.max_code_bytes
            ));
        }
        if self.largest_function > limits.max_function_bytes {
            return Err(format!(
                "has a function of {} bytes; the limit is {} (plugins.max_function_bytes); split the function (large generated tables or matches) or ask the operator to raise the limit",
                self.largest_function, limits.max_function_bytes
            ));
        }
        Ok(())
    }
}

/// Reads a component's top-level imports and exports and the sizes of its function bodies
/// without compiling it (a linear parse): it must be a component, import only WASI p2, and
/// export the `weir:plugin` aggregator interface. The exact types are checked after
/// compilation, when the component is linked.
pub(super) fn check_world(bytes: &[u8]) -> Result<Shape, String> {
    use wasmparser::{Encoding, Parser, Payload};
    let mut depth = 0usize;
    let mut imports = Vec::new();
    let mut exports = Vec::new();
    let (mut code_bytes, mut largest_function) = (0u64, 0u64);
    if let Some(what) = not_wasm(bytes) {
        return Err(format!("not a WebAssembly component: {what}"));
    }
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| {
            format!("a damaged WebAssembly component: {e}; build it again for wasm32-wasip2")
        })?;
        match payload {
            Payload::Version { encoding, .. } if depth == 0 && encoding != Encoding::Component => {
                return Err(CORE_MODULE.into());
            }
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => {
                depth = depth.saturating_add(1)
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::CodeSectionEntry(body) => {
                let len = body.range().end.saturating_sub(body.range().start);
                code_bytes = code_bytes.saturating_add(len);
                largest_function = largest_function.max(len);
            }
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(|e| format!("unreadable import section: {e}"))?;
                    imports.push(import.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export = export.map_err(|e| format!("unreadable export section: {e}"))?;
                    exports.push(export.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    if let Some(foreign) = imports.iter().find(|i| {
        !TYPES_IMPORTS.contains(&i.as_str()) && !WASI_PACKAGES.iter().any(|p| i.starts_with(p))
    }) {
        return Err(format!(
            "imports something the host does not provide (plugins get WASI with no capabilities): `{foreign}`"
        ));
    }
    // A test harness (`cargo test`) of a plugin crate exports the plugin's world and a
    // command's `run`; a command without the plugin's world is told so below.
    let aggregates = AGGREGATE_EXPORTS
        .iter()
        .any(|(name, _)| exports.iter().any(|e| e == name));
    if aggregates && exports.iter().any(|e| e.starts_with("wasi:cli/run")) {
        return Err(format!(
            "is a command, not a plugin (it exports {}): a test harness (`cargo test`) or a binary build; deploy the library's release build, `cargo build --release --target wasm32-wasip2` (target/wasm32-wasip2/release/<crate>.wasm)",
            exports.join(", ")
        ));
    }
    if let Some((_, version)) = AGGREGATE_EXPORTS
        .iter()
        .find(|(name, _)| exports.iter().any(|e| e == name))
    {
        return Ok(Shape {
            version: *version,
            code_bytes,
            largest_function,
        });
    }
    if let Some(other) = exports
        .iter()
        .find(|e| e.starts_with("weir:plugin/aggregate@"))
    {
        return Err(format!(
            "exports {other}, a version of the weir:plugin contract this host does not load (it loads 0.2.0 and 0.1.0); build the plugin with a weir-guest release for this host"
        ));
    }
    let found = if exports.is_empty() {
        "nothing".to_string()
    } else {
        exports.join(", ")
    };
    Err(format!(
        "does not export the weir:plugin `aggregator` world, version 0.2.0 or 0.1.0 (it exports {found}); build it with the weir-guest SDK and register the plugin with `weir_guest::export_plugin!`"
    ))
}

/// Whether a component is a debug build of a Rust crate: it carries DWARF debug
/// information (custom sections named `.debug_*`) and checks arithmetic for overflow (the
/// panic message of an overflow is in its data: the `dev` profile's `overflow-checks`).
/// A release build has no overflow checks; one that keeps the standard library's debug
/// information is not a debug build. The bytes of debug information, when it is one.
pub fn debug_build(bytes: &[u8]) -> Option<u64> {
    use wasmparser::{Parser, Payload};
    const OVERFLOW: &[u8] = b"attempt to add with overflow";
    let debug: u64 = Parser::new(0)
        .parse_all(bytes)
        .map_while(Result::ok)
        .map(|payload| match payload {
            Payload::CustomSection(c) if c.name().starts_with(".debug_") => c.data().len() as u64,
            _ => 0,
        })
        .sum();
    let checks = bytes.windows(OVERFLOW.len()).any(|w| w == OVERFLOW);
    (debug > 0 && checks).then_some(debug)
}

/// The one line for a core module, which a wasm32-unknown-unknown or wasm32-wasip1 build
/// produces.
pub(super) const CORE_MODULE: &str = "not a WebAssembly component: it is a core wasm module (a wasm32-unknown-unknown or wasm32-wasip1 build); build with `cargo build --release --target wasm32-wasip2`";

/// What `bytes` are instead of wasm, judged by their first bytes; `None` when they start
/// with the wasm magic number `\0asm`.
pub(super) fn not_wasm(bytes: &[u8]) -> Option<String> {
    if bytes.starts_with(b"\0asm") {
        return None;
    }
    let native =
        "; build with `cargo build --release --target wasm32-wasip2` and deploy the .wasm file";
    let what = match bytes {
        [] => "the file is empty".to_string(),
        [0x7f, b'E', b'L', b'F', ..] => {
            format!("it is an ELF executable or library (a native build){native}")
        }
        [b'M', b'Z', ..] => format!("it is a Windows executable or DLL (a native build){native}"),
        [0xcf | 0xce, 0xfa, 0xed, 0xfe, ..] | [0xca, 0xfe, 0xba, 0xbe, ..] => {
            format!("it is a Mach-O executable or library (a native build){native}")
        }
        [b'!', b'<', b'a', b'r', b'c', b'h', b'>', ..] => {
            format!("it is a static library archive (an rlib or .a){native}")
        }
        [0x1f, 0x8b, ..] => "it is gzip-compressed; decompress it first".to_string(),
        [b'P', b'K', 3, 4, ..] => "it is a zip archive; unpack it first".to_string(),
        _ => {
            let head = &bytes[..bytes.len().min(32)];
            match std::str::from_utf8(head) {
                // A cut in the middle of a character is still text.
                Ok(t) => Some(t),
                Err(e) if e.error_len().is_none() => {
                    std::str::from_utf8(&head[..e.valid_up_to()]).ok()
                }
                Err(_) => None,
            }
            .filter(|t| t.chars().all(|c| !c.is_control() || c.is_whitespace()))
            .map(|t| {
                let first = t.lines().next().unwrap_or("").trim();
                format!("the first bytes look like text ({first:?}), not wasm")
            })
            .unwrap_or_else(|| {
                let hex: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
                format!(
                    "it does not start with the wasm magic number (it starts with {})",
                    hex.join(" ")
                )
            })
        }
    };
    Some(what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::tests::plugin_wasm;

    const MIB: usize = 1 << 20;

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

    #[test]
    fn real_components_pass_or_fail_the_world_check_by_their_world() {
        let built = |name| plugin_wasm(name).expect("plugins built by scripts/setup.sh");
        let (stats, importer, wrong) = (built("stats"), built("importer"), built("wrong_world"));
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
}
