//! Swap latency: from a plugin file being renamed into the watched directory to the new
//! version being live in its pipeline, with the default 200 ms debounce and a 10 ms one.
//!
//! `cargo bench -p weir --bench swap`
//!
//! A `weir::serve::Host` runs one pipeline on a paced generator (20 000 events/s) with the
//! watcher of `weir serve`. Each swap writes the other of two components (stats, hotspot)
//! to `<dir>/acme/.ticks.wasm.tmp`, takes the time, renames it to `<dir>/acme/ticks.wasm`,
//! and polls the host every 0.5 ms until the live version changes. Both components are
//! compiled once before the timed swaps (the first, cold swap is reported apart); the
//! latency is debounce + read + instantiate/configure/describe + hand-over between batches.

mod util;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use util::{
    Scratch, generator, host_toml, median, ms, percentile, pipeline_toml, table, tenant_toml, wasm,
};
use weir::serve::{Host, HostControl};

const SWAPS: usize = 40;

fn live(host: &Host) -> String {
    let v = host.pipelines("acme").expect("acme").remove(0);
    v.versions
        .into_iter()
        .find(|v| v.live)
        .expect("live version")
        .id
}

/// Renames `bytes` into place and returns how long until a version `done` accepts is live.
fn swap(host: &Host, dir: &Path, bytes: &[u8], done: impl Fn(&str) -> bool) -> Duration {
    let tmp = dir.join("acme/.ticks.wasm.tmp");
    std::fs::write(&tmp, bytes).expect("write temp plugin");
    let t0 = Instant::now();
    std::fs::rename(&tmp, dir.join("acme/ticks.wasm")).expect("rename into place");
    loop {
        if done(&live(host)) {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "swap not live after 30 s"
        );
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// (cold swap, timed swaps) for one debounce.
fn run(debounce: Duration) -> (Duration, Vec<Duration>) {
    let s = Scratch::new();
    let dir = s.path("plugins");
    std::fs::create_dir_all(dir.join("acme")).unwrap();
    s.write(
        "ticks.toml",
        &pipeline_toml(
            "ticks",
            &generator(100_000_000, 10, "1ms", 20_000, 1),
            &wasm("stats"),
            "params = { field = \"price\" }",
        ),
    );
    let path = s.write(
        "host.toml",
        &host_toml(&tenant_toml("acme", &["ticks.toml"])),
    );
    let (_cfg, host): (_, Arc<Host>) = weir::serve::start(&path).expect("host starts");
    let _watcher = weir::serve::watch_plugin_dir(host.clone(), &dir, debounce).expect("watch");
    let stats = std::fs::read(wasm("stats")).unwrap();
    let hotspot = std::fs::read(wasm("hotspot")).unwrap();
    let v1 = live(&host);
    // Cold: hotspot was never compiled by this host.
    let cold = swap(&host, &dir, &hotspot, |v| v != v1);
    let v2 = live(&host);
    let mut times = Vec::with_capacity(SWAPS);
    for i in 0..SWAPS {
        let (bytes, want) = if i % 2 == 0 {
            (&stats, &v1)
        } else {
            (&hotspot, &v2)
        };
        times.push(swap(&host, &dir, bytes, |v| v == want.as_str()));
        // Let the pipeline run a little on each version.
        std::thread::sleep(Duration::from_millis(20));
    }
    host.shutdown();
    (cold, times)
}

fn main() {
    if util::skip_unless_benchmarking() {
        return;
    }
    util::machine();
    let mut rows = Vec::new();
    for debounce in [Duration::from_millis(200), Duration::from_millis(10)] {
        let (cold, times) = run(debounce);
        let t: Vec<f64> = times.iter().map(|d| ms(*d)).collect();
        rows.push(vec![
            format!("{} ms", debounce.as_millis()),
            format!("{SWAPS}"),
            format!("{:.1}", median(&t)),
            format!("{:.1}", percentile(&t, 99.0)),
            format!("{:.1}", t.iter().cloned().fold(f64::INFINITY, f64::min)),
            format!("{:.1}", ms(cold)),
        ]);
    }
    table(
        "Swap latency, file renamed into the watched dir -> new version live (ms)",
        &[
            "debounce",
            "swaps",
            "median",
            "p99",
            "min",
            "cold (compile included)",
        ],
        &rows,
    );
}
