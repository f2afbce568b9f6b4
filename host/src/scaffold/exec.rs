//! `weir plugin exec FILE [ARGS...]`: runs a `wasm32-wasip2` command component (a plugin
//! crate's test binary, under `cargo test`) with inherited stdio and the given arguments,
//! and nothing else: no files, no network, and of the environment only libtest's own
//! settings (`RUST_TEST_*`, e.g. `RUST_TEST_NOCAPTURE`).

use std::io::Write as _;
use std::path::Path;

use anyhow::Context;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::p2::bindings::sync::Command;
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxView, WasiView};

struct State {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Runs the command component `file` with `args` (its `argv[0]` is `file`) and returns
/// its exit status: 0 on success, 1 when `run` returns an error, the status it exits with,
/// and 101 (like a native Rust panic) when it traps, after printing the trap to stderr.
///
/// wasm32 code aborts on a panic, so the first failing test of a libtest binary ends
/// the run (its panic message is printed; the tests after it do not run).
pub fn exec(file: &Path, args: &[String]) -> anyhow::Result<i32> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    let engine =
        Engine::new(&config).map_err(|e| anyhow::anyhow!("creating the wasm engine: {e:#}"))?;
    let mut linker = Linker::<State>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
        .map_err(|e| anyhow::anyhow!("linking WASI: {e:#}"))?;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let component = Component::new(&engine, &bytes)
        .map_err(|e| anyhow::anyhow!("{}: not a runnable component: {e:#}", file.display()))?;

    let mut wasi = WasiCtx::builder();
    wasi.inherit_stdio().arg(file.to_string_lossy()).args(args);
    for (name, value) in std::env::vars().filter(|(name, _)| name.starts_with("RUST_TEST_")) {
        wasi.env(name, value);
    }
    let mut store = Store::new(
        &engine,
        State {
            wasi: wasi.build(),
            table: ResourceTable::new(),
        },
    );
    let command = Command::instantiate(&mut store, &component, &linker).map_err(|e| {
        anyhow::anyhow!(
            "{}: not a wasip2 command (no `wasi:cli/run` export, or imports beyond WASI): {e:#}",
            file.display()
        )
    })?;
    let status = match command.wasi_cli_run().call_run(&mut store) {
        Ok(Ok(())) => 0,
        Ok(Err(())) => 1,
        Err(e) => match e.downcast_ref::<I32Exit>() {
            Some(exit) => exit.0,
            None => {
                let _ = std::io::stdout().flush();
                // The panic message is already on stderr; the wasm backtrace adds nothing a
                // test author can use.
                eprintln!("weir plugin exec: {}: {}", file.display(), e.root_cause());
                101
            }
        },
    };
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    Ok(status)
}
