//! What the web console costs a pipeline: its sinks wrapped in `console::TapSink`s (each
//! row copied as JSON into a bounded ring) against the same pipeline without them, and the
//! memory a full ring holds.
//!
//! `cargo bench -p weir --bench console`
//!
//! 1. Throughput: `stats` over 1 000 000 generated ticks, in-process (`Pipeline::build` with
//!    and without `Options::console`), for a rows-heavy case (1 000 keys, a tick every
//!    millisecond, 1 s windows: about a row per event) and a rows-light one (10 keys: a row
//!    per 100 events). Interleaved, 5 rounds, median.
//! 2. Per row: `TapSink::write` around a sink that discards, against that sink alone.
//! 3. Memory: the heap bytes live after filling a ring of 1 000 and of 10 000 rows of the
//!    `stats` plugin's ten columns, minus before (a counting global allocator).

mod util;

use std::sync::Arc;
use std::time::Instant;

use util::{Scratch, generator, median, pipeline_toml, table, wasm};
use weir::config::PipelineConfig;
use weir::console::{Recent, TapSink, Telemetry};
use weir::sink::{Cell, Sink};
use weir::value::Value;

/// The system allocator, counting the bytes live.
struct Counting;

static LIVE: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; only a counter is added.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        LIVE.fetch_sub(layout.size() as isize, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const EVENTS: u64 = 1_000_000;
const ROUNDS: usize = 5;

/// One in-process run: (events/s, rows/s).
fn run(keys: u32, interval: &str, console: bool) -> (f64, f64) {
    let s = Scratch::new();
    let path = s.write(
        "p.toml",
        &pipeline_toml(
            "p",
            &generator(EVENTS, keys, interval, 0, 7),
            &wasm("stats"),
            "params = { field = \"price\" }",
        ),
    );
    let cfg = PipelineConfig::load(&path).expect("pipeline");
    let runtime = weir::plugin::Runtime::new(false).expect("runtime");
    let spec = weir::pipeline::PipelineSpec::resolve(cfg, None).expect("spec");
    let plugin = weir::pipeline::load_plugin(&spec, &runtime).expect("plugin");
    let opts = weir::pipeline::Options {
        console: console.then(|| Arc::new(Telemetry::default())),
        parallelism: 1,
        ..Default::default()
    };
    let mut p = weir::pipeline::Pipeline::build(spec, plugin, opts).expect("pipeline");
    let summary = p.run(false).expect("runs");
    (
        summary.events_per_second,
        summary.counters.rows_written as f64 / summary.wall_seconds,
    )
}

/// A sink that drops every row.
struct Discard;

impl Sink for Discard {
    fn write(&mut self, row: &[Cell<'_>]) -> Result<(), weir::sink::Error> {
        std::hint::black_box(row);
        Ok(())
    }
    fn set_columns(&mut self, _: Vec<String>) {}
    fn commit(&mut self) -> Result<(), weir::sink::Error> {
        Ok(())
    }
    fn flush(&mut self) -> Result<(), weir::sink::Error> {
        Ok(())
    }
    fn describe(&self) -> String {
        "discard".into()
    }
}

const COLUMNS: [&str; 10] = [
    "symbol",
    "window_start",
    "window_end",
    "plugin_version",
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "stddev",
];

/// Writes `n` rows like the `stats` plugin's through `sink`; ns per row.
fn write_rows(sink: &mut dyn Sink, n: usize) -> f64 {
    let symbol = Value::Str("AAPL".into());
    let version = Value::Str("weir-plugin-stats@0.1.0+c316d022206c".into());
    let avg = Value::F64(101.25);
    let t0 = Instant::now();
    for i in 0..n {
        let start = 1_705_881_600_000 + i as i64 * 1000;
        let row = [
            Cell::Value(&symbol),
            Cell::Time(start),
            Cell::Time(start + 1000),
            Cell::Value(&version),
            Cell::I64(4),
            Cell::Value(&avg),
            Cell::Value(&avg),
            Cell::Value(&avg),
            Cell::Value(&avg),
            Cell::Value(&avg),
        ];
        sink.write(&row).expect("write");
    }
    t0.elapsed().as_nanos() as f64 / n as f64
}

/// Heap bytes live now.
fn live() -> isize {
    LIVE.load(std::sync::atomic::Ordering::Relaxed)
}

fn main() {
    if util::skip_unless_benchmarking() {
        return;
    }
    util::machine();
    // 1. Throughput, console on and off, interleaved.
    let cases = [
        ("1 000 keys, ~1 event a window", 1_000, "1ms"),
        ("10 keys, ~100 events a window", 10, "1ms"),
    ];
    let mut rows = Vec::new();
    for (name, keys, interval) in cases {
        let (mut off, mut on, mut rows_s) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            let (a, _) = run(keys, interval, false);
            let (b, r) = run(keys, interval, true);
            eprintln!("{name}, round {round}: off {a:.0} events/s, on {b:.0} events/s");
            off.push(a);
            on.push(b);
            rows_s.push(r);
        }
        let (off, on) = (median(&off), median(&on));
        rows.push(vec![
            name.to_string(),
            format!("{:.0}", median(&rows_s)),
            format!("{off:.0}"),
            format!("{on:.0}"),
            format!("{:+.1} %", (on - off) / off * 100.0),
        ]);
    }
    table(
        "Throughput of one pipeline (stats, 1 000 000 ticks, 1 worker), console off and on",
        &[
            "case",
            "rows/s",
            "events/s off",
            "events/s on",
            "difference",
        ],
        &rows,
    );

    // 2. Per row.
    let n = 1_000_000;
    let mut alone = Vec::new();
    let mut tapped = Vec::new();
    for _ in 0..ROUNDS {
        alone.push(write_rows(&mut Discard, n));
        let mut tap = TapSink::new(
            Box::new(Discard),
            COLUMNS.iter().map(|c| c.to_string()).collect(),
            weir::sink::SinkRole::Results,
            Arc::new(Recent::new(1_000)),
        );
        tapped.push(write_rows(&mut tap, n));
    }
    table(
        "Per row of ten columns (1 000 000 rows, median of 5)",
        &["sink", "ns/row"],
        &[
            vec!["discarding sink".into(), format!("{:.0}", median(&alone))],
            vec![
                "TapSink around it".into(),
                format!("{:.0}", median(&tapped)),
            ],
        ],
    );

    // 3. Memory of a full ring.
    let mut mem = Vec::new();
    for keep in [1_000usize, 10_000] {
        let before = live();
        let recent = Arc::new(Recent::new(keep));
        let mut tap = TapSink::new(
            Box::new(Discard),
            COLUMNS.iter().map(|c| c.to_string()).collect(),
            weir::sink::SinkRole::Results,
            recent.clone(),
        );
        write_rows(&mut tap, keep);
        let grown = (live() - before).max(0) as f64;
        mem.push(vec![
            keep.to_string(),
            format!("{:.2}", grown / (1 << 20) as f64),
            format!("{:.0}", grown / keep as f64),
        ]);
        std::hint::black_box(recent.last_seq());
    }
    table(
        "Memory of a full ring of stats rows (heap bytes live)",
        &["keep_rows", "MiB", "bytes/row"],
        &mem,
    );
}
