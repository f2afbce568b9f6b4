//! Every example plugin gives the same results natively (its Rust logic under `cargo test`)
//! and as a wasm32-wasip2 component in the host's sandbox, on the same events.

mod support;

use weir::config::Limits;
use weir::plugin::{Owner, Plugin as _, PluginInstance, Runtime};
use weir::value::{FieldType, Value};
use weir::window::Window;
use weir_guest::{Batch, Plugin, Row, Type};

/// Deterministic test events: 300 events over 3 s with ~10 % nulls in every column, prices
/// around 100, some repeated locations. Columns are named as the plugins' params below use.
struct Events {
    ts: Vec<i64>,
    f64s: Vec<(&'static str, Vec<Option<f64>>)>,
    strs: Vec<(&'static str, Vec<Option<String>>)>,
}

fn events() -> Events {
    let mut state: u64 = 0x5eed;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as f64 / (1u64 << 31) as f64
    };
    let n = 300;
    let ts: Vec<i64> = (0..n).map(|i| i * 10).collect();
    let mut col = |scale: f64, base: f64| -> Vec<Option<f64>> {
        (0..n)
            .map(|_| {
                if next() < 0.1 {
                    None
                } else {
                    Some(base + (next() * scale * 100.0).round() / 100.0)
                }
            })
            .collect()
    };
    let f64s = vec![
        ("price", col(10.0, 95.0)),
        ("volume", col(500.0, 1.0)),
        ("fare", col(40.0, 3.25)),
        ("tips", col(10.0, 0.0)),
        ("trip_total", col(50.0, 3.25)),
        ("best_bid", col(10.0, 94.0)),
        ("best_ask", col(10.0, 96.0)),
        ("volume_24h", col(1e6, 1e5)),
    ];
    let locs: Vec<Option<String>> = (0..n)
        .map(|i| {
            if i % 11 == 0 {
                None
            } else {
                Some(format!("POINT (-87.{} 41.8)", i % 7))
            }
        })
        .collect();
    Events {
        ts,
        f64s,
        strs: vec![("pickup_location", locs)],
    }
}

impl Events {
    fn sdk_batch(&self) -> Batch {
        let mut b = Batch::new(self.ts.clone());
        for (name, col) in &self.f64s {
            b = b.with_f64(*name, col.clone());
        }
        for (name, col) in &self.strs {
            b = b.with_str(*name, col.clone());
        }
        b
    }

    fn host_value(&self, name: &str, i: usize) -> Value {
        if let Some((_, c)) = self.f64s.iter().find(|(n, _)| *n == name) {
            return c[i].map_or(Value::Null, Value::F64);
        }
        if let Some((_, c)) = self.strs.iter().find(|(n, _)| *n == name) {
            return c[i].clone().map_or(Value::Null, Value::Str);
        }
        panic!("test data has no column {name}")
    }
}

fn to_host(v: &weir_guest::Value) -> Value {
    match v {
        weir_guest::Value::Null => Value::Null,
        weir_guest::Value::F64(x) => Value::F64(*x),
        weir_guest::Value::I64(x) => Value::I64(*x),
        weir_guest::Value::Str(s) => Value::Str(s.clone()),
        weir_guest::Value::Bool(b) => Value::Bool(*b),
    }
}

fn host_type(t: Type) -> FieldType {
    match t {
        Type::F64 => FieldType::F64,
        Type::I64 => FieldType::I64,
        Type::Str => FieldType::Str,
        Type::Bool => FieldType::Bool,
    }
}

/// Runs `P` natively and `lib`.wasm in the host on the same events, and compares.
fn same_natively_and_in_wasm<P: Plugin>(lib: &str, params: &[(&str, &str)]) {
    let ev = events();
    let window = weir_guest::Window {
        start: 0,
        end: 3000,
    };
    let key = Row::new().str("symbol", "AAPL");

    let described = weir_guest::testing::describe::<P>(params.iter().copied()).expect("configure");
    let native_rows = weir_guest::testing::run_aggregate::<P>(
        params.iter().copied(),
        key.clone(),
        window,
        ev.sdk_batch(),
    )
    .expect("native aggregate");
    let native_keep = weir_guest::testing::run_filter::<P>(params.iter().copied(), ev.sdk_batch())
        .expect("native filter");

    let runtime = Runtime::new(false).expect("runtime");
    let code = runtime
        .load_file(&support::wasm(lib))
        .expect("component loads");
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut inst = PluginInstance::with_keys(
        code,
        Limits::default(),
        owned,
        vec!["symbol".to_string()],
        Owner::default(),
    )
    .expect("instantiate");
    let info = inst.info().clone();
    let declared: Vec<(String, FieldType)> = described
        .inputs()
        .iter()
        .map(|(n, t)| (n.clone(), host_type(*t)))
        .collect();
    assert_eq!(info.inputs, declared, "{lib}: describe() differs");
    assert_eq!(info.has_filter, described.has_filter());

    let push_all = |inst: &mut PluginInstance| {
        for i in 0..ev.ts.len() {
            let values: Vec<Value> = info
                .inputs
                .iter()
                .map(|(n, _)| ev.host_value(n, i))
                .collect();
            inst.batch().push(ev.ts[i], &values);
        }
    };
    push_all(&mut inst);
    let key_host = vec![Value::Str("AAPL".into())];
    let wasm_rows = inst
        .aggregate_one(
            &key_host,
            Window {
                start: 0,
                end: 3000,
            },
        )
        .expect("wasm aggregate");
    let native_rows: Vec<Vec<(String, Value)>> = native_rows
        .iter()
        .map(|r| {
            r.fields()
                .iter()
                .map(|(k, v)| (k.clone(), to_host(v)))
                .collect()
        })
        .collect();
    assert!(!native_rows.is_empty(), "{lib}: no rows");
    assert_eq!(
        wasm_rows, native_rows,
        "{lib}: rows differ between native and wasm"
    );

    if info.has_filter {
        push_all(&mut inst);
        let wasm_keep = inst.filter().expect("wasm filter");
        assert_eq!(wasm_keep, native_keep, "{lib}: filter differs");
        assert!(
            wasm_keep.iter().any(|k| !k) && wasm_keep.iter().any(|k| *k),
            "{lib}: filter test needs both outcomes"
        );
    }
}

#[test]
fn stats() {
    same_natively_and_in_wasm::<stats::Stats>("stats", &[("field", "price"), ("decimals", "3")]);
}

#[test]
fn fare_totals() {
    same_natively_and_in_wasm::<fare_totals::FareTotals>(
        "fare_totals",
        &[("fields", "fare,tips,trip_total")],
    );
}

#[test]
fn hotspot() {
    same_natively_and_in_wasm::<hotspot::Hotspot>("hotspot", &[("distinct", "pickup_location")]);
}

#[test]
fn ticker() {
    same_natively_and_in_wasm::<ticker::Ticker>("ticker", &[]);
}

#[test]
fn vwap() {
    same_natively_and_in_wasm::<vwap::Vwap>("vwap", &[("percentile", "90")]);
}

#[test]
fn a_plugin_error_carries_its_message_and_hint_to_the_host() {
    // vwap rejects a percentile outside 0..=100 in configure.
    let runtime = Runtime::new(false).expect("runtime");
    let code = runtime
        .load_file(&support::wasm("vwap"))
        .expect("component loads");
    let err = PluginInstance::new(
        code,
        Limits::default(),
        vec![("percentile".into(), "101".into())],
        Owner::default(),
    )
    .err()
    .expect("configure rejects 101");
    let text = err.to_string();
    assert_eq!(err.kind(), "configure");
    assert!(text.contains("percentile"), "{text}");
}
