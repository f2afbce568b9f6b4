//! Shared by the benches (`harness = false`): the plugins, a scratch dir, host and pipeline
//! files, summary statistics and a plain table.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

#[path = "../../../tests/support/mod.rs"]
mod support;

#[allow(unused_imports)]
pub use support::{Scratch, pipeline_toml, root};

/// Path of a plugin component, building the plugins for wasm32-wasip2 first if needed.
pub fn wasm(name: &str) -> PathBuf {
    support::wasm(name)
}

/// An operator token for host files that are never served.
pub const OPERATOR: &str = "bench-operator-token-0123456789";

/// A `[source]` table of generated stock ticks.
pub fn generator(count: u64, keys: u32, interval: &str, rate: u64, seed: u64) -> String {
    format!(
        "[source]\nkind = \"generator\"\nworkload = \"stocks\"\ncount = {count}\nkeys = {keys}\ninterval = \"{interval}\"\nrate = {rate}\nseed = {seed}\n"
    )
}

/// A `[[tenant]]` table.
pub fn tenant_toml(name: &str, pipelines: &[&str]) -> String {
    let list: Vec<String> = pipelines.iter().map(|p| format!("\"{p}\"")).collect();
    format!(
        "[[tenant]]\nname = \"{name}\"\ntoken = \"bench-{name}-token-0123456789\"\npipelines = [{}]\n\n",
        list.join(", ")
    )
}

/// A host file: an `[admin]` table (never bound by the library API) and `body`.
pub fn host_toml(body: &str) -> String {
    format!("[admin]\nlisten = \"127.0.0.1:0\"\noperator_token = \"{OPERATOR}\"\n\n{body}")
}

/// Median of samples (sorted copy).
pub fn median(xs: &[f64]) -> f64 {
    percentile(xs, 50.0)
}

/// Nearest-rank percentile: the smallest sample with at least `p` % of samples at or below it.
pub fn percentile(xs: &[f64], p: f64) -> f64 {
    assert!(!xs.is_empty(), "no samples");
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Prints a table with a header row and aligned columns.
pub fn table(title: &str, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    println!("\n{title}\n");
    let line = |cells: Vec<String>| {
        let cells: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        println!("| {} |", cells.join(" | "));
    };
    line(header.iter().map(|h| h.to_string()).collect());
    println!(
        "|{}|",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("|")
    );
    for r in rows {
        line(r.clone());
    }
}

/// The machine, for the record: cores, CPU model and load.
pub fn machine() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "machine: {} cores ({}), load average {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        cpu,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}

/// `cargo bench` passes `--bench`; anything else (`cargo test --benches`, `--all-targets`)
/// would run a minutes-long measurement in a debug build, so it only says how to run it.
pub fn skip_unless_benchmarking() -> bool {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    if !benchmarking {
        eprintln!("skipped: run benchmarks with `cargo bench -p weir --bench <name>`");
    }
    !benchmarking
}
