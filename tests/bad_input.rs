//! Bad input never stops a run and is never lost: malformed records go to the dead letter
//! with their position and reason, config errors name the key and the fix, and a plugin
//! that traps, spins or hogs memory costs one window, reported as an error record.

mod support;

use serde_json::{Value, json};
use support::{Scratch, run_pipeline, run_weir, summary, wasm};

/// A pipeline over `events.jsonl` in the scratch dir, tumbling 10 s windows keyed by
/// `symbol`, epoch-ms timestamps, results/dead letters/errors as JSON lines files.
fn pipeline(s: &Scratch, plugin: &str, params: &str, extra: &str) -> std::path::PathBuf {
    let text = format!(
        r#"
name = "bad-input"
[source]
kind = "file"
path = "events.jsonl"
[schema]
timestamp = {{ field = "ts", format = "epoch_ms" }}
key = ["symbol"]
fields = {{ symbol = "string", price = "f64" }}
[window]
kind = "tumbling"
size = "10s"
[plugin]
path = "{plugin}"
params = {{ {params} }}
{extra}
[sink]
kind = "file"
path = "rows.jsonl"
[dead_letter]
kind = "file"
path = "dead.jsonl"
[error_sink]
kind = "file"
path = "errors.jsonl"
"#,
        plugin = wasm(plugin).display()
    );
    s.write("pipeline.toml", &text)
}

#[test]
fn malformed_records_go_to_the_dead_letter_with_position_and_reason() {
    let s = Scratch::new();
    s.write(
        "events.jsonl",
        concat!(
            "{\"ts\":1000,\"symbol\":\"A\",\"price\":10}\n",
            "{\"ts\":2000,\"symbol\":\"A\",\"price\":\"abc\"}\n",
            "not json\n",
            "{\"ts\":3000,\"price\":5}\n",
            "{\"ts\":\"soon\",\"symbol\":\"A\",\"price\":1}\n",
            "\n",
            "{\"ts\":4000,\"symbol\":\"A\",\"price\":30}\n",
            "{\"ts\":12000,\"symbol\":\"A\",\"price\":7}\n",
        ),
    );
    let p = pipeline(&s, "stats", "field = \"price\"", "");
    let (ok, _, stderr) = run_pipeline(&p);
    assert!(ok, "{stderr}");

    // [0s,10s): prices 10 and 30 → count 2, sum 40, avg 20,
    // sample stddev sqrt(((10-20)² + (30-20)²) / 1) = sqrt(200).
    // [10s,20s): price 7 alone → stddev null (fewer than 2 values).
    let rows = s.read_jsonl("rows.jsonl");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["symbol"], "A");
    assert_eq!(rows[0]["window_start"], "1970-01-01T00:00:00.000Z");
    assert_eq!(rows[0]["window_end"], "1970-01-01T00:00:10.000Z");
    assert_eq!(rows[0]["count"], 2);
    assert_eq!(rows[0]["sum"], 40.0);
    assert_eq!(rows[0]["avg"], 20.0);
    let sd = rows[0]["stddev"].as_f64().unwrap();
    assert!((sd - 200f64.sqrt()).abs() < 1e-9, "{sd}");
    assert_eq!(rows[1]["window_start"], "1970-01-01T00:00:10.000Z");
    assert_eq!(rows[1]["count"], 1);
    assert_eq!(rows[1]["stddev"], Value::Null);

    // Lines 2-5 are malformed; the blank line 6 is skipped, not counted.
    let dead = s.read_jsonl("dead.jsonl");
    let offsets: Vec<i64> = dead.iter().map(|d| d["offset"].as_i64().unwrap()).collect();
    assert_eq!(offsets, vec![2, 3, 4, 5]);
    for d in &dead {
        assert!(
            d["origin"].as_str().unwrap().ends_with("events.jsonl"),
            "{d}"
        );
        assert_eq!(d["pipeline"], "bad-input");
    }
    let reason = |i: usize| dead[i]["reason"].as_str().unwrap().to_string();
    assert!(reason(0).contains("price"), "{}", reason(0));
    assert!(reason(1).to_lowercase().contains("json"), "{}", reason(1));
    assert!(reason(2).contains("symbol"), "{}", reason(2));
    assert!(reason(3).contains("ts"), "{}", reason(3));
    assert_eq!(dead[1]["record"], "not json");

    let sum = summary(&stderr);
    assert_eq!(sum["events_read"], 7);
    assert_eq!(sum["malformed"], 4);
    assert_eq!(sum["windows_fired"], 2);
    assert_eq!(sum["rows_written"], 2);
}

#[test]
fn a_trapping_plugin_costs_one_window_and_the_run_goes_on() {
    let s = Scratch::new();
    // delay 0. BAD@12000 moves W to 12000: [0,10s) fires for A (n = 2) then BAD (trap).
    // The flush fires [10s,20s) for A (n = 1, on a fresh instance) then BAD (trap again).
    s.write(
        "events.jsonl",
        concat!(
            "{\"ts\":1000,\"symbol\":\"A\",\"price\":1}\n",
            "{\"ts\":2000,\"symbol\":\"BAD\",\"price\":1}\n",
            "{\"ts\":3000,\"symbol\":\"A\",\"price\":1}\n",
            "{\"ts\":12000,\"symbol\":\"BAD\",\"price\":1}\n",
            "{\"ts\":15000,\"symbol\":\"A\",\"price\":1}\n",
        ),
    );
    let p = pipeline(&s, "panicky", "", "");
    let out = support::weir()
        .args(["run", "--json-summary", "--no-progress"])
        .arg(&p)
        .env("RUST_LOG", "weir::guest=info")
        .output()
        .expect("weir runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    // The guest's panic message went to its stderr, which reaches the tenant's log.
    assert!(stderr.contains("refusing key symbol"), "{stderr}");
    assert!(stderr.contains("weir::guest"), "{stderr}");
    let rows = s.read_jsonl("rows.jsonl");
    let got: Vec<(String, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["window_start"].as_str().unwrap().to_string(),
                r["n"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("1970-01-01T00:00:00.000Z".to_string(), 2),
            ("1970-01-01T00:00:10.000Z".to_string(), 1)
        ]
    );
    let errors = s.read_jsonl("errors.jsonl");
    assert_eq!(errors.len(), 2, "{errors:?}");
    for e in &errors {
        assert_eq!(e["kind"], "trap");
        assert_eq!(e["key"], json!({"symbol": "BAD"}).to_string());
        assert!(e["error"].as_str().unwrap().contains("aggregate"), "{e}");
    }
    assert_eq!(errors[0]["window_start"], "1970-01-01T00:00:00.000Z");
    assert_eq!(summary(&stderr)["plugin_errors"], 2);
}

#[test]
fn an_endless_loop_is_interrupted_at_its_deadline() {
    let s = Scratch::new();
    s.write(
        "events.jsonl",
        "{\"ts\":1000,\"symbol\":\"A\",\"price\":1}\n{\"ts\":11000,\"symbol\":\"A\",\"price\":1}\n",
    );
    let p = pipeline(&s, "spin", "", "[plugin.limits]\ndeadline = \"50ms\"");
    let (ok, _, stderr) = run_pipeline(&p);
    assert!(ok, "{stderr}");
    let errors = s.read_jsonl("errors.jsonl");
    assert_eq!(errors.len(), 2, "both windows spin: {errors:?}");
    for e in &errors {
        assert_eq!(e["kind"], "deadline", "{e}");
        assert!(e["error"].as_str().unwrap().contains("50 ms"), "{e}");
    }
    assert!(s.read_jsonl("rows.jsonl").is_empty());
}

#[test]
fn a_memory_hog_hits_its_cap() {
    let s = Scratch::new();
    s.write(
        "events.jsonl",
        "{\"ts\":1000,\"symbol\":\"A\",\"price\":1}\n",
    );
    let p = pipeline(
        &s,
        "hog",
        "",
        "[plugin.limits]\nmemory = \"16MiB\"\ndeadline = \"10s\"",
    );
    let (ok, _, stderr) = run_pipeline(&p);
    assert!(ok, "{stderr}");
    let errors = s.read_jsonl("errors.jsonl");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["kind"], "memory", "{}", errors[0]);
    assert!(
        errors[0]["error"]
            .as_str()
            .unwrap()
            .contains(&(16u64 << 20).to_string())
    );
}

#[test]
fn config_errors_name_the_key_and_the_fix() {
    let s = Scratch::new();
    s.write("events.jsonl", "");
    let p = pipeline(&s, "stats", "field = \"price\"", "");
    let text = std::fs::read_to_string(&p).unwrap();

    let bad = s.write(
        "slide.toml",
        &text.replace(
            "kind = \"tumbling\"\nsize = \"10s\"",
            "kind = \"sliding\"\nsize = \"3s\"\nslide = \"2s\"",
        ),
    );
    let out = run_weir(&["check", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("window.slide (2s) must divide window.size (3s)"),
        "{err}"
    );
    assert!(err.contains("pick a slide that divides the size"), "{err}");

    let bad = s.write(
        "unknown.toml",
        &text.replace("size = \"10s\"", "size = \"10s\"\nsizee = 1"),
    );
    let out = run_weir(&["run", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("unknown field `sizee`"), "{err}");

    let bad = s.write(
        "field.toml",
        &text.replace("{ field = \"price\" }", "{ field = \"cost\" }"),
    );
    let out = run_weir(&["check", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("needs input field `cost`"), "{err}");
    assert!(err.contains("[schema.fields]"), "{err}");
}

#[test]
fn components_that_do_not_fit_are_rejected_at_load_with_the_reason() {
    let s = Scratch::new();
    s.write("events.jsonl", "");
    let good = pipeline(&s, "stats", "field = \"price\"", "");
    let text = std::fs::read_to_string(&good).unwrap();
    let stats = wasm("stats").display().to_string();
    let importer = std::fs::read(wasm("importer")).unwrap();
    let wrong_world = std::fs::read(wasm("wrong_world")).unwrap();
    let cases: [(&str, &[u8], &str); 6] = [
        (
            "random.wasm",
            &[0x13, 0x37, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x42],
            "not a WebAssembly component",
        ),
        // A core module, not a component.
        (
            "core.wasm",
            b"\0asm\x01\0\0\0",
            "not a WebAssembly component",
        ),
        // An empty component: loads, but exports nothing of the aggregator world.
        (
            "empty.wasm",
            b"\0asm\x0d\0\x01\0",
            "does not export the weir:plugin `aggregator` world",
        ),
        ("missing.wasm", b"", "cannot load"),
        // A real component that imports a `fetch` function the host does not provide.
        (
            "importer.wasm",
            &importer,
            "imports something the host does not provide",
        ),
        // A real wasm32-wasip2 component of another world: a WASI command.
        (
            "wrong_world.wasm",
            &wrong_world,
            "does not export the weir:plugin `aggregator` world",
        ),
    ];
    for (file, bytes, expected) in cases {
        let path = if bytes.is_empty() {
            s.path(file)
        } else {
            s.write(file, "");
            std::fs::write(s.path(file), bytes).unwrap();
            s.path(file)
        };
        let cfg = s.write("p.toml", &text.replace(&stats, &path.display().to_string()));
        let out = run_weir(&["check", cfg.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{file} was accepted");
        assert!(err.contains(expected), "{file}: {err}");
    }
}

#[test]
fn stdin_source_reads_until_eof_and_flushes() {
    use std::io::Write;
    let s = Scratch::new();
    // Tumbling 10 s, no delay: A@1s and A@9s in [0s,10s), A@10s exactly on the boundary
    // opens [10s,20s). EOF flushes it: counts 2 and 1.
    let p = pipeline(&s, "stats", "field = \"price\"", "");
    let text = std::fs::read_to_string(&p).unwrap().replace(
        "kind = \"file\"\npath = \"events.jsonl\"",
        "kind = \"stdin\"",
    );
    let p = s.write("stdin.toml", &text);
    let mut child = support::weir()
        .args(["run", "--json-summary", "--no-progress"])
        .arg(&p)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("weir runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"{\"ts\":1000,\"symbol\":\"A\",\"price\":1}\n{\"ts\":9000,\"symbol\":\"A\",\"price\":3}\n{\"ts\":10000,\"symbol\":\"A\",\"price\":5}\n",
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let rows = s.read_jsonl("rows.jsonl");
    let got: Vec<(i64, f64)> = rows
        .iter()
        .map(|r| (r["count"].as_i64().unwrap(), r["sum"].as_f64().unwrap()))
        .collect();
    assert_eq!(got, vec![(2, 4.0), (1, 5.0)]);
    assert_eq!(summary(&stderr)["events_read"], 3);
}
