//! Every fast path gives the rows of the plain path: the same pipelines over out-of-order
//! input with late events, allowed lateness and revisions, for all four window kinds, run
//! through every combination of wasm or native plugin and whole-window or incremental
//! aggregate, by the real binary. Wasm and native must write byte-identical files;
//! incremental must write the same rows in the same order as whole-window, with floats
//! equal within 1e-9 relative, absolute below 1 (the summation order differs, and a
//! two-pass standard deviation of equal values is rounding noise, 1e-14, where the
//! incremental one is exactly 0). Every sink's file is byte-identical for any
//! `parallelism`.

mod support;

use std::path::Path;

use support::{Scratch, run_weir, wasm};

/// Stock ticks of four symbols, out of order: each tick is up to 6 s early or 0.3 s late
/// against its slot, so with a 1 s watermark delay some are late for some windows or all
/// of them. Symbol D comes in bursts (one 40-tick stretch in three), so its sessions end.
/// One price in 50 is null.
fn input() -> String {
    input_of(3_000)
}

/// [`input`] with `n` tick slots.
fn input_of(n: i64) -> String {
    let mut lines = Vec::new();
    let mut seed: u64 = 0x5eed;
    let mut next = || {
        // A 64-bit LCG (Knuth's MMIX constants); the high bits are the usable ones.
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    let base: i64 = 1_705_900_000_000;
    for i in 0..n {
        let symbol = ["A", "B", "C", "D"][(i % 4) as usize];
        let r = next();
        if symbol == "D" && (i / 40) % 3 != 0 {
            continue;
        }
        let jitter = (r % 6_300) as i64 - 6_000;
        let ts = base + i * 37 + jitter;
        let price = if i % 50 == 7 {
            "null".to_string()
        } else {
            format!("{}", 100.0 + (next() % 10_000) as f64 / 100.0)
        };
        lines.push(format!(
            r#"{{"symbol":"{symbol}","ts":{ts},"price":{price}}}"#
        ));
    }
    lines.join("\n") + "\n"
}

/// One window of each kind: (kind, its `[window]` keys).
const WINDOWS: [(&str, &str); 4] = [
    ("tumbling", "kind = \"tumbling\"\nsize = \"1s\""),
    (
        "sliding",
        "kind = \"sliding\"\nsize = \"3s\"\nslide = \"1s\"",
    ),
    ("session", "kind = \"session\"\ngap = \"400ms\""),
    (
        "cumulative",
        "kind = \"cumulative\"\nsize = \"4s\"\nstep = \"1s\"",
    ),
];

fn pipeline(name: &str, window: &str, lateness: &str, plugin: &Path) -> String {
    format!(
        r#"name = "{name}"
[source]
kind = "file"
path = "in.jsonl"
[schema]
timestamp = {{ field = "ts", format = "epoch_ms" }}
key = ["symbol"]
fields = {{ symbol = "string", ts = "i64", price = "f64" }}
[window]
{window}
allowed_lateness = "{lateness}"
[watermark]
delay = "1s"
[plugin]
path = "{plugin}"
params = {{ field = "price" }}
[sink]
kind = "file"
path = "{name}.jsonl"
mode = "truncate"
[late_sink]
kind = "file"
path = "{name}.late.jsonl"
mode = "truncate"
[error_sink]
kind = "file"
path = "{name}.errors.jsonl"
mode = "truncate"
[dead_letter]
kind = "file"
path = "{name}.dead.jsonl"
mode = "truncate"
"#,
        plugin = plugin.display()
    )
}

/// Runs a pipeline file, `--native` or not, on one thread, and returns the result file's
/// text.
fn run(s: &Scratch, name: &str, native: bool) -> String {
    run_on(s, name, native, 1)
}

/// [`run`] with `parallelism` worker threads.
fn run_on(s: &Scratch, name: &str, native: bool, parallelism: u32) -> String {
    let file = s.path(&format!("{name}.toml"));
    let parallelism = parallelism.to_string();
    let mut args = vec![
        "run",
        "--no-progress",
        "--json-summary",
        "--parallelism",
        &parallelism,
    ];
    if native {
        args.push("--native");
    }
    let file = file.to_string_lossy().into_owned();
    args.push(&file);
    let out = run_weir(&args);
    assert!(
        out.status.success(),
        "{name} (native: {native}) failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let errors =
        std::fs::read_to_string(s.path(&format!("{name}.errors.jsonl"))).unwrap_or_default();
    assert!(errors.is_empty(), "{name}: plugin errors:\n{errors}");
    std::fs::read_to_string(s.path(&format!("{name}.jsonl"))).expect("results written")
}

/// Same rows, same order, same fields; floats within 1e-9 relative (absolute below 1).
fn assert_same_rows(what: &str, whole: &str, incremental: &str) {
    let parse = |t: &str| -> Vec<serde_json::Map<String, serde_json::Value>> {
        t.lines()
            .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
            .collect()
    };
    let (a, b) = (parse(whole), parse(incremental));
    assert_eq!(a.len(), b.len(), "{what}: row counts differ");
    for (i, (ra, rb)) in a.iter().zip(&b).enumerate() {
        assert_eq!(
            ra.keys().collect::<Vec<_>>(),
            rb.keys().collect::<Vec<_>>(),
            "{what}: row {i} fields"
        );
        for (k, va) in ra {
            let vb = &rb[k];
            let same = match (va.as_f64(), vb.as_f64()) {
                (Some(x), Some(y)) if va.is_f64() || vb.is_f64() => {
                    x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
                }
                _ => va == vb,
            };
            assert!(
                same,
                "{what}: row {i} field {k}: {va} against {vb}\n{ra:?}\n{rb:?}"
            );
        }
    }
}

#[test]
fn every_path_writes_the_rows_of_the_plain_path() {
    let s = Scratch::new();
    s.write("in.jsonl", &input());
    let whole = wasm("stats");
    let incremental = wasm("stats_incremental");
    for (kind, window) in WINDOWS {
        for lateness in ["0s", "1500ms"] {
            let name = |style: &str| format!("{kind}-{lateness}-{style}");
            s.write(
                &format!("{}.toml", name("whole")),
                &pipeline(&name("whole"), window, lateness, &whole),
            );
            s.write(
                &format!("{}.toml", name("inc")),
                &pipeline(&name("inc"), window, lateness, &incremental),
            );
            let plain = run(&s, &name("whole"), false);
            let late = std::fs::read_to_string(s.path(&format!("{}.late.jsonl", name("whole"))))
                .unwrap_or_default();
            // The input exercises what it claims to.
            assert!(plain.lines().count() > 100, "{kind}: too few rows");
            if lateness == "0s" {
                assert!(!late.is_empty(), "{kind}: no late events");
            } else {
                assert!(
                    plain.contains("\"revision\":1"),
                    "{kind} {lateness}: no re-firing"
                );
            }
            let what = format!("{kind} lateness {lateness}");
            assert_eq!(
                run(&s, &name("whole"), true),
                plain,
                "{what}: native whole-window differs from wasm"
            );
            let inc = run(&s, &name("inc"), false);
            assert_same_rows(&format!("{what}, wasm incremental"), &plain, &inc);
            assert_eq!(
                run(&s, &name("inc"), true),
                inc,
                "{what}: native incremental differs from wasm"
            );
        }
    }
}

#[test]
fn a_plugin_built_for_the_previous_contract_still_runs() {
    // Tumbling 1 s windows, no delay: A at 0.1 s (1.5) and 0.6 s (2.5), B at 0.2 s (null),
    // A at 1.1 s (4.0). The legacy plugin counts non-null prices and sums them.
    let s = Scratch::new();
    s.write(
        "in.jsonl",
        concat!(
            r#"{"symbol":"A","ts":100,"price":1.5}"#,
            "\n",
            r#"{"symbol":"B","ts":200,"price":null}"#,
            "\n",
            r#"{"symbol":"A","ts":600,"price":2.5}"#,
            "\n",
            r#"{"symbol":"A","ts":1100,"price":4.0}"#,
            "\n"
        ),
    );
    let toml = pipeline(
        "legacy",
        "kind = \"tumbling\"\nsize = \"1s\"",
        "0s",
        &wasm("legacy"),
    )
    .replace("params = { field = \"price\" }", "");
    s.write("legacy.toml", &toml);
    run(&s, "legacy", false);
    let rows = s.read_jsonl("legacy.jsonl");
    let got: Vec<(String, String, i64, f64)> = rows
        .iter()
        .map(|r| {
            (
                r["symbol"].as_str().unwrap_or_default().to_string(),
                r["window_start"].as_str().unwrap_or_default().to_string(),
                r["count"].as_i64().unwrap_or(-1),
                r["sum"].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect();
    let at = |s: &str| format!("1970-01-01T00:00:0{s}.000Z");
    assert_eq!(
        got,
        [
            ("A".to_string(), at("0"), 2, 4.0),
            ("B".to_string(), at("0"), 0, 0.0),
            ("A".to_string(), at("1"), 1, 4.0),
        ]
    );
    // Outputs in the declared order, whatever order the plugin returned them in.
    let text = std::fs::read_to_string(s.path("legacy.jsonl")).unwrap_or_default();
    assert!(
        text.lines()
            .all(|l| l.find("\"count\"") < l.find("\"sum\"")),
        "{text}"
    );
}

/// Runs the sliding pipeline `name` of `s` through the library, swapping to `then` after
/// `at` batches (the step in hand ends, the swap happens between two firings, as in
/// `weir serve`), and returns the result file's text.
fn run_swapping(s: &Scratch, name: &str, at: usize, then: Option<&Path>) -> String {
    use weir::config::PipelineConfig;
    use weir::pipeline::{self, Options, Pipeline, PipelineSpec, Step};
    use weir::plugin::Runtime;
    let mut cfg = PipelineConfig::load(&s.path(&format!("{name}.toml"))).expect("pipeline");
    cfg.base_dir = s.dir.path().to_path_buf();
    let spec = PipelineSpec::resolve(cfg.clone(), None).expect("spec");
    let runtime = Runtime::new(false).expect("runtime");
    let plugin = pipeline::load_plugin(&spec, &runtime).expect("plugin");
    let mut p = Pipeline::build(spec, plugin, Options::default()).expect("build");
    let mut steps = 0;
    while p.step().expect("step") != Step::Finished {
        steps += 1;
        if steps == at
            && let Some(path) = then
        {
            let mut next = cfg.clone();
            next.plugin.path = path.to_path_buf();
            let next = PipelineSpec::resolve(next, None).expect("spec");
            let swapped = pipeline::load_plugin(&next, &runtime).expect("new version");
            p.swap_plugin(swapped).expect("swap");
        }
    }
    assert!(
        then.is_none() || steps > at,
        "the input ended before the swap"
    );
    std::fs::read_to_string(s.path(&format!("{name}.jsonl"))).expect("results")
}

#[test]
fn a_swap_keeps_or_rebuilds_pane_states_and_every_window_is_there_once() {
    // About 10 000 out-of-order ticks, read 4 096 at a time: the swap comes after the
    // first batch, with windows open and pane states held.
    let s = Scratch::new();
    s.write("in.jsonl", &input_of(12_000));
    let sliding = "kind = \"sliding\"\nsize = \"3s\"\nslide = \"1s\"";
    let incremental = wasm("stats_incremental");
    let whole = wasm("stats");
    for name in ["plain", "same", "other"] {
        let plugin = if name == "plain" {
            &whole
        } else {
            &incremental
        };
        s.write(
            &format!("{name}.toml"),
            &pipeline(name, sliding, "1500ms", plugin),
        );
    }
    let plain = run_swapping(&s, "plain", usize::MAX, None);
    // The same state type (the same component again) takes over the pane states held.
    let same = run_swapping(&s, "same", 1, Some(&incremental));
    assert_same_rows("swap to the same state type", &plain, &same);
    // A whole-window version takes over: pane states are dropped, every window is
    // computed from the events the host holds.
    let other = run_swapping(&s, "other", 1, Some(&whole));
    assert_same_rows("swap to a whole-window version", &plain, &other);
}

#[test]
fn every_sink_gets_the_same_bytes_for_any_parallelism() {
    // Five batches of input, so batches are with the workers while the next is read, and
    // windows fire across batch ends; malformed records and runaway times among the ticks
    // go to the dead letter, in input order with the events the workers refuse none of.
    let s = Scratch::new();
    let mut lines: Vec<String> = input_of(24_000).lines().map(str::to_string).collect();
    for i in (500..lines.len()).step_by(1_700) {
        lines[i] = if i % 2 == 0 {
            format!("{{\"symbol\":\"A\",\"ts\":\"bad-{i}\",\"price\":1}}")
        } else {
            // Far more than watermark.max_future (7 days) ahead of the watermark.
            format!("{{\"symbol\":\"B\",\"ts\":9{i:012},\"price\":1}}")
        };
    }
    s.write("in.jsonl", &(lines.join("\n") + "\n"));
    let whole = wasm("stats");
    let incremental = wasm("stats_incremental");
    let read = |name: &str, what: &str| {
        std::fs::read_to_string(s.path(&format!("{name}.{what}.jsonl"))).unwrap_or_default()
    };
    for (kind, window) in WINDOWS {
        for lateness in ["0s", "1500ms"] {
            for (style, plugin) in [("whole", &whole), ("inc", &incremental)] {
                let name = format!("{kind}-{lateness}-{style}");
                s.write(
                    &format!("{name}.toml"),
                    &pipeline(&name, window, lateness, plugin),
                );
                let one = run_on(&s, &name, false, 1);
                let (late, dead) = (read(&name, "late"), read(&name, "dead"));
                assert!(one.lines().count() > 1_000, "{name}: too few rows");
                // 20 000 lines (D skips two 40-tick stretches in three: 4 000 of 24 000
                // ticks); every 1 700th from the 500th is bad: 500, 2 200, …, 19 200.
                assert_eq!(dead.lines().count(), 12, "{name}: dead letters");
                if lateness == "0s" {
                    assert!(!late.is_empty(), "{name}: no late events");
                }
                for n in [2, 3] {
                    let what = format!("{name} on {n} workers");
                    assert!(run_on(&s, &name, false, n) == one, "{what}: results differ");
                    assert!(read(&name, "late") == late, "{what}: late events differ");
                    assert!(read(&name, "dead") == dead, "{what}: dead letters differ");
                }
            }
        }
    }
}
