//! The sandbox's costs, through `weir::plugin` directly:
//! - re-creating an instance after a trap (`panicky` traps on key `BAD`; the next call
//!   builds a fresh Store, instantiates and configures: `last_instantiation()`, and the
//!   whole call that follows the trap, against an ordinary call);
//! - interrupt latency: how long past its CPU deadline the endless loop of `spin` returns
//!   (epoch interruption, 1 ms ticks).
//!
//! `cargo bench -p weir --bench sandbox`

mod util;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use util::{median, ms, percentile, table, wasm};
use weir::config::Limits;
use weir::plugin::{Error, Owner, Plugin as _, PluginInstance, Runtime};
use weir::value::Value;
use weir::window::Window;

const TRAPS: usize = 500;
const SPINS: usize = 100;

fn instance(runtime: &Runtime, plugin: &str, limits: Limits) -> PluginInstance {
    let code = runtime.load_file(&wasm(plugin)).expect("plugin compiles");
    PluginInstance::new(code, limits, Vec::new(), Owner::default()).expect("plugin instantiates")
}

fn key(symbol: &str) -> Vec<Value> {
    vec![Value::Str(symbol.to_string())]
}

const W: Window = Window {
    start: 0,
    end: 1000,
};

fn call(p: &mut PluginInstance, symbol: &str) -> (Duration, Result<usize, Error>) {
    for ts in 0..10 {
        p.batch().push(ts, std::iter::empty());
    }
    let t = Instant::now();
    let r = p.aggregate_one(&key(symbol), W).map(|rows| rows.len());
    (t.elapsed(), r)
}

fn stats_row(name: &str, xs: &[f64]) -> Vec<String> {
    vec![
        name.to_string(),
        format!("{:.3}", median(xs)),
        format!("{:.3}", percentile(xs, 99.0)),
        format!("{}", xs.len()),
    ]
}

fn traps(runtime: &Runtime) -> Vec<Vec<String>> {
    let mut p = instance(runtime, "panicky", Limits::default());
    let (mut trap, mut inst, mut after, mut normal) = (vec![], vec![], vec![], vec![]);
    // Warm up.
    for _ in 0..20 {
        let _ = call(&mut p, "BAD");
        let _ = call(&mut p, "AAPL");
    }
    let before = p.restarts();
    for _ in 0..TRAPS {
        let (d, r) = call(&mut p, "BAD");
        assert!(matches!(r, Err(Error::Trap { .. })), "{r:?}");
        trap.push(ms(d));
        let (d, r) = call(&mut p, "AAPL");
        assert_eq!(r.expect("call after a trap works"), 1);
        after.push(ms(d));
        inst.push(ms(p.last_instantiation()));
        let (d, r) = call(&mut p, "AAPL");
        r.expect("ordinary call");
        normal.push(ms(d));
    }
    assert_eq!(p.restarts() - before, TRAPS as u64);
    vec![
        stats_row("instantiate + configure (last_instantiation)", &inst),
        stats_row("call right after a trap (re-creation included)", &after),
        stats_row("ordinary call on a live instance", &normal),
        stats_row("the trapping call itself", &trap),
    ]
}

/// Call durations past the deadline, in ms.
fn overshoot(runtime: &Runtime, deadline_ms: u64) -> Vec<f64> {
    let mut limits = Limits::default();
    limits.sandbox.deadline_ms = deadline_ms;
    let mut p = instance(runtime, "spin", limits);
    let mut out = Vec::with_capacity(SPINS);
    for _ in 0..SPINS {
        let (d, r) = call(&mut p, "AAPL");
        assert!(matches!(r, Err(Error::Deadline { .. })), "{r:?}");
        out.push(ms(d) - deadline_ms as f64);
    }
    out
}

fn main() {
    if util::skip_unless_benchmarking() {
        return;
    }
    util::machine();
    let runtime = Runtime::new(false).expect("runtime");
    table(
        &format!("Re-creating an instance after a trap (panicky, {TRAPS} traps), ms"),
        &["what", "median", "p99", "samples"],
        &traps(&runtime),
    );

    let mut rows = Vec::new();
    for deadline in [1, 10, 50] {
        let o = overshoot(&runtime, deadline);
        rows.push(overshoot_row(&format!("{deadline} ms"), &o));
    }
    // The same with every core kept busy by native threads: the epoch ticker competes.
    let stop = Arc::new(AtomicBool::new(false));
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let busy: Vec<_> = (0..cores)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            })
        })
        .collect();
    let o = overshoot(&runtime, 10);
    stop.store(true, Ordering::Relaxed);
    for b in busy {
        let _ = b.join();
    }
    rows.push(overshoot_row(
        &format!("10 ms, {cores} busy native threads alongside"),
        &o,
    ));
    table(
        &format!(
            "Interrupt latency of spin: call duration minus deadline ({SPINS} calls each), ms"
        ),
        &["deadline", "median", "p99", "max"],
        &rows,
    );
}

fn overshoot_row(name: &str, o: &[f64]) -> Vec<String> {
    vec![
        name.to_string(),
        format!("{:.3}", median(o)),
        format!("{:.3}", percentile(o, 99.0)),
        format!("{:.3}", o.iter().cloned().fold(f64::MIN, f64::max)),
    ]
}
