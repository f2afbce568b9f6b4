//! Hardening against stop, restart, sinks, memory by bytes and plugin error floods: each attack runs against the real `weir serve` with two
//! tenants on 127.0.0.1, and the other tenant keeps getting exact results.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use support::serve::{
    ACME, Bucket, GLOBEX, Gen, OPERATOR, Serve, assert_stats_exact, bucket, peak_rss_kib, serial,
    tenant_toml, ts_ms, wait_for,
};
use support::{Scratch, pipeline_toml};
use weir::serve::control::PipelineState;

const STATS: &str = "params = { field = \"price\" }";

/// Sends `signal` (`TERM`, `INT`) to a child with the system's `kill`.
fn signal(child: &Child, signal: &str) {
    let ok = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill -{signal} failed");
}

/// Waits for a child to exit, failing after `timeout`.
fn wait_exit(child: &mut Child, timeout: Duration) -> ExitStatus {
    wait_for("the process to exit", timeout, || {
        child.try_wait().expect("try_wait")
    })
}

/// Checks `stats` rows of an input cut short: every row is exact, no window twice, and the
/// windows written are a prefix of the input's in time (no window missing before the last
/// one written, per key). Returns the number of rows.
fn assert_exact_prefix(rows: &[Json], expected: &BTreeMap<(String, i64), Bucket>, what: &str) {
    let last = rows
        .iter()
        .map(|r| ts_ms(r["window_start"].as_str().expect("window_start")))
        .max()
        .unwrap_or(i64::MIN);
    // Windows of a generated stream in event-time order fire by their end: every window
    // that ends before the last written one started was complete, and fired, before it.
    let due: BTreeMap<_, _> = expected
        .iter()
        .filter(|((_, start), _)| *start + 1000 <= last)
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let (before, at_last): (Vec<&Json>, Vec<&Json>) = rows
        .iter()
        .partition(|r| ts_ms(r["window_start"].as_str().expect("window_start")) + 1000 <= last);
    let before: Vec<Json> = before.into_iter().cloned().collect();
    assert_stats_exact(&before, &due, what);
    for r in at_last {
        let key = (
            r["symbol"].as_str().expect("symbol").to_string(),
            ts_ms(r["window_start"].as_str().expect("window_start")),
        );
        let want = expected
            .get(&key)
            .unwrap_or_else(|| panic!("{what}: a row for no window: {r}"));
        assert_eq!(r["count"].as_i64(), Some(want.count), "{what}: {r}");
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// One pipeline's value of a gauge in the Prometheus text.
fn gauge(metrics: &str, name: &str, tenant: &str, pipeline: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix('{')?;
        let (labels, value) = rest.split_once("} ")?;
        (labels.contains(&format!("tenant=\"{tenant}\""))
            && labels.contains(&format!("pipeline=\"{pipeline}\"")))
        .then(|| value.trim().parse().ok())?
    })
}

// ---------------------------------------------------------------------------------------
// Hole 7: stop — SIGTERM and SIGINT drain and flush
// ---------------------------------------------------------------------------------------

#[test]
fn sigterm_and_sigint_to_serve_flush_every_row_counted_as_written() {
    let _serial = serial();
    let stats = support::wasm("stats");
    for sig in ["TERM", "INT"] {
        let s = Scratch::new();
        // Two endless-enough streams, paced so that the stop lands mid-stream.
        let gens = [
            (
                "acme",
                ACME,
                Gen {
                    count: 10_000_000,
                    keys: 10,
                    interval_ms: 10,
                    seed: 21,
                    rate: 20_000,
                },
            ),
            (
                "globex",
                GLOBEX,
                Gen {
                    count: 10_000_000,
                    keys: 7,
                    interval_ms: 10,
                    seed: 22,
                    rate: 20_000,
                },
            ),
        ];
        let mut hosts = String::new();
        for (tenant, token, g) in &gens {
            s.write(
                &format!("{tenant}.toml"),
                &pipeline_toml(tenant, &g.toml(), &stats, STATS),
            );
            hosts.push_str(&tenant_toml(tenant, token, &[&format!("{tenant}.toml")]));
        }
        let mut serve = Serve::start(&s, &hosts);
        // Let both write a few thousand rows, then take the API's counts and signal at once.
        wait_for("rows from both tenants", Duration::from_secs(60), || {
            gens.iter()
                .all(|(t, _, _)| serve.view(t, t).counters.rows_written >= 2_000)
                .then_some(())
        });
        let counted: Vec<u64> = gens
            .iter()
            .map(|(t, _, _)| serve.view(t, t).counters.rows_written)
            .collect();
        signal(&serve.child, sig);
        let status = wait_exit(&mut serve.child, Duration::from_secs(30));
        assert!(
            status.success(),
            "SIG{sig}: exit {status}\n{}",
            serve.stderr()
        );
        assert!(
            serve
                .stderr()
                .contains("every pipeline's sinks were flushed"),
            "SIG{sig}: {}",
            serve.stderr()
        );
        for ((tenant, _, g), counted) in gens.iter().zip(counted) {
            let rows = s.read_jsonl(&format!("{tenant}.jsonl"));
            eprintln!(
                "SIG{sig}: {tenant}: {counted} rows counted before the signal, {} in the file",
                rows.len()
            );
            assert!(
                rows.len() as u64 >= counted,
                "SIG{sig}: {tenant}: {counted} rows counted as written, {} in the file",
                rows.len()
            );
            // The stream is far from its end: compare with the events it can have read.
            let events: Vec<_> = Gen {
                count: (rows.len() as u64 + 100) * 10 * 10,
                ..*g
            }
            .events();
            assert_exact_prefix(&rows, &bucket(&events, 1000), &format!("SIG{sig} {tenant}"));
        }
    }
}

#[test]
fn weir_run_on_an_open_stdin_stops_promptly_on_sigterm_with_its_rows_flushed() {
    let s = Scratch::new();
    let stats = support::wasm("stats");
    let mut toml = pipeline_toml("piped", "[source]\nkind = \"stdin\"\n", &stats, STATS);
    toml.push_str("\n[dead_letter]\nkind = \"file\"\npath = \"piped.dead.jsonl\"\n");
    let path = s.write("piped.toml", &toml);
    let mut child = support::weir()
        .args(["run", "--json-summary", "--no-progress"])
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weir run starts");
    let g = Gen {
        count: 3_000,
        keys: 5,
        interval_ms: 10,
        seed: 5,
        rate: 0,
    };
    let events = g.events();
    let mut stdin = child.stdin.take().expect("stdin");
    let mut text = String::new();
    for (i, (ts, sym, price)) in events.iter().enumerate() {
        let t = chrono::DateTime::from_timestamp_millis(*ts).expect("ts");
        text.push_str(&format!(
            "{{\"ts\":\"{}\",\"symbol\":\"{sym}\",\"price\":{price},\"volume\":1}}\n",
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ));
        if i % 500 == 0 {
            // Malformed lines: dead letters are buffered, so the stop must flush them too.
            text.push_str("{not json\n");
        }
    }
    stdin.write_all(text.as_bytes()).expect("write stdin");
    stdin.flush().expect("flush stdin");
    // The pipe stays open. Wait until the run has read everything (rows reach the file
    // once a window is complete), then stop it.
    let all_but_last = bucket(&events, 1000)
        .keys()
        .filter(|(_, start)| *start + 1000 <= events.last().expect("events").0)
        .count();
    wait_for("the piped rows", Duration::from_secs(60), || {
        (lines(&s.path("piped.jsonl")).len() >= all_but_last).then_some(())
    });
    let t0 = Instant::now();
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(10));
    let stopped_in = t0.elapsed();
    drop(stdin);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(
        stopped_in < Duration::from_secs(3),
        "stopped in {stopped_in:?}"
    );
    assert!(stderr.contains("stopped by SIGTERM"), "{stderr}");
    let summary = support::summary(&stderr);
    let rows = s.read_jsonl("piped.jsonl");
    // Every counted row and every counted dead letter is in its file.
    assert_eq!(summary["rows_written"].as_u64(), Some(rows.len() as u64));
    assert_eq!(summary["malformed"].as_u64(), Some(6));
    assert_eq!(lines(&s.path("piped.dead.jsonl")).len(), 6);
    // The open windows (the last second's) are not fired: the rows are exactly the
    // complete windows.
    assert_eq!(rows.len(), all_but_last);
    assert_exact_prefix(&rows, &bucket(&events, 1000), "piped");
}

// ---------------------------------------------------------------------------------------
// Hole 7: restart over an existing sink file
// ---------------------------------------------------------------------------------------

#[test]
fn a_restart_appends_by_default_truncate_replaces_and_sync_runs() {
    let s = Scratch::new();
    let stats = support::wasm("stats");
    let g = Gen {
        count: 2_000,
        keys: 4,
        interval_ms: 10,
        seed: 9,
        rate: 0,
    };
    let expected = bucket(&g.events(), 1000);
    let run = |name: &str, sink_extra: &str| {
        let toml = pipeline_toml(name, &g.toml(), &stats, STATS).replace(
            &format!("path = \"{name}.jsonl\"\n"),
            &format!("path = \"{name}.jsonl\"\n{sink_extra}\n"),
        );
        let (ok, _, stderr) = support::run_pipeline(&s.write(&format!("{name}.toml"), &toml));
        assert!(ok, "{stderr}");
    };
    // Default (append): the second run adds its rows after the first's.
    run("kept", "");
    run("kept", "");
    let rows = s.read_jsonl("kept.jsonl");
    assert_eq!(rows.len(), 2 * expected.len());
    let (first, second) = rows.split_at(expected.len());
    assert_stats_exact(first, &expected, "first run");
    assert_stats_exact(second, &expected, "second run");
    // truncate: each run replaces the last; sync = true fsyncs at every flush (not
    // observable here: the run succeeds and the file is whole).
    run("fresh", "mode = \"truncate\"\nsync = true");
    run("fresh", "mode = \"truncate\"\nsync = true");
    assert_stats_exact(&s.read_jsonl("fresh.jsonl"), &expected, "truncate");
    // A CSV sink appending to a file with another header refuses to start.
    s.write("other.csv", "symbol,something_else\nA,1\n");
    let toml = pipeline_toml("csv", &g.toml(), &stats, STATS).replace(
        "path = \"csv.jsonl\"\n",
        "path = \"other.csv\"\nformat = \"csv\"\n",
    );
    let (ok, _, stderr) = support::run_pipeline(&s.write("csv.toml", &toml));
    assert!(!ok);
    assert!(
        stderr.contains("already has the CSV header `symbol,something_else`")
            && stderr.contains(
                "column 2 is `something_else` in the file and `window_start` in the pipeline"
            )
            && stderr.contains("mode = \"truncate\""),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(s.path("other.csv")).expect("csv"),
        "symbol,something_else\nA,1\n",
        "the refused file is untouched"
    );
}

// ---------------------------------------------------------------------------------------
// Hole 8: records bounded in bytes
// ---------------------------------------------------------------------------------------

#[test]
fn a_hundred_ten_megabyte_lines_are_dead_lettered_without_holding_them() {
    let _serial = serial();
    let s = Scratch::new();
    let stats = support::wasm("stats");
    // 100 lines of 10 MB (NUL bytes; a sparse file, so the test costs no disk), then one
    // valid record.
    {
        let mut f = std::fs::File::create(s.path("huge.jsonl")).expect("create");
        for _ in 0..100 {
            use std::io::Seek;
            f.seek(std::io::SeekFrom::Current(10_000_000))
                .expect("seek");
            f.write_all(b"\n").expect("newline");
        }
        f.write_all(
            b"{\"ts\":\"2024-01-22T00:00:00.500Z\",\"symbol\":\"X\",\"price\":1.0,\"volume\":1}\n",
        )
        .expect("record");
    }
    let mut attacker = pipeline_toml(
        "huge",
        "[source]\nkind = \"file\"\npath = \"huge.jsonl\"\n",
        &stats,
        STATS,
    );
    attacker.push_str("\n[dead_letter]\nkind = \"file\"\npath = \"huge.dead.jsonl\"\n");
    s.write("huge.toml", &attacker);
    let victim = Gen {
        count: 30_000,
        keys: 10,
        interval_ms: 10,
        seed: 31,
        rate: 0,
    };
    s.write(
        "victim.toml",
        &pipeline_toml("victim", &victim.toml(), &stats, STATS),
    );
    let mut serve = Serve::start(
        &s,
        &format!(
            "{}{}",
            tenant_toml("evil", GLOBEX, &["huge.toml"]),
            tenant_toml("good", ACME, &["victim.toml"])
        ),
    );
    let done = serve.wait_state(
        "evil",
        "huge",
        PipelineState::Finished,
        Duration::from_secs(120),
    );
    assert_eq!(done.counters.events_read, 101);
    assert_eq!(done.counters.rows_written, 1);
    serve.wait_state(
        "good",
        "victim",
        PipelineState::Finished,
        Duration::from_secs(120),
    );
    serve.assert_healthy();
    let peak_mib = peak_rss_kib(serve.child.id()) / 1024;
    eprintln!("weir serve peak RSS after 100 lines of 10 MB: {peak_mib} MiB");
    assert!(peak_mib < 300, "peak RSS {peak_mib} MiB");
    let dead = s.read_jsonl("huge.dead.jsonl");
    assert_eq!(dead.len(), 100);
    for (i, d) in dead.iter().enumerate() {
        assert_eq!(d["offset"].as_u64(), Some(i as u64 + 1), "{}", d["reason"]);
        assert_eq!(
            d["reason"],
            "record of 10000000 bytes exceeds max_record_bytes (1MiB); raise [plugin.limits] max_record_bytes or fix the input"
        );
        assert_eq!(d["record"].as_str().map(str::len), Some(1024));
        assert!(
            d["origin"]
                .as_str()
                .is_some_and(|o| o.ends_with("huge.jsonl"))
        );
    }
    assert_stats_exact(
        &s.read_jsonl("victim.jsonl"),
        &bucket(&victim.events(), 1000),
        "victim beside 1 GB of long lines",
    );
}

// ---------------------------------------------------------------------------------------
// Hole 9: plugin error floods
// ---------------------------------------------------------------------------------------

#[test]
fn twelve_megabyte_plugin_errors_are_cut_and_their_log_lines_rate_limited() {
    let _serial = serial();
    let s = Scratch::new();
    let stats = support::wasm("stats");
    let shouty = support::wasm("shouty");
    let flood = Gen {
        count: 600,
        keys: 10,
        interval_ms: 10,
        seed: 41,
        rate: 0,
    };
    let windows = bucket(&flood.events(), 1000).len();
    s.write(
        "flood.toml",
        &pipeline_toml(
            "flood",
            &flood.toml(),
            &shouty,
            "limits = { quarantine_after = 1000000 }",
        ),
    );
    // The same plugin quarantined after 3 failures: the reason in the API is bounded too.
    s.write(
        "loud.toml",
        &pipeline_toml(
            "loud",
            &flood.toml(),
            &shouty,
            "limits = { quarantine_after = 3 }",
        ),
    );
    let victim = Gen {
        count: 30_000,
        keys: 10,
        interval_ms: 10,
        seed: 42,
        rate: 0,
    };
    s.write(
        "victim.toml",
        &pipeline_toml("victim", &victim.toml(), &stats, STATS),
    );
    let t0 = Instant::now();
    let mut serve = Serve::start(
        &s,
        &format!(
            "{}{}",
            tenant_toml("evil", GLOBEX, &["flood.toml", "loud.toml"]),
            tenant_toml("good", ACME, &["victim.toml"])
        ),
    );
    let done = serve.wait_state(
        "evil",
        "flood",
        PipelineState::Finished,
        Duration::from_secs(120),
    );
    let loud = serve.wait_state(
        "evil",
        "loud",
        PipelineState::Quarantined,
        Duration::from_secs(60),
    );
    serve.wait_state(
        "good",
        "victim",
        PipelineState::Finished,
        Duration::from_secs(120),
    );
    let elapsed = t0.elapsed().as_secs_f64();
    serve.assert_healthy();
    // One error record per failed call, none dropped, each cut to 4 KiB plus a marker.
    assert_eq!(done.counters.plugin_errors, windows as u64);
    let errors = s.read_jsonl("flood.errors.jsonl");
    assert_eq!(errors.len(), windows);
    for e in &errors {
        let text = e["error"].as_str().expect("error");
        assert!(text.len() < 4096 + 100, "{} bytes", text.len());
        assert!(
            text.ends_with("more bytes cut]"),
            "{}",
            &text[text.len() - 60..]
        );
    }
    let reason = loud.reason.expect("a quarantine reason");
    assert!(
        reason.len() < 4096 + 200,
        "reason of {} bytes",
        reason.len()
    );
    assert!(
        reason.starts_with("3 plugin failures in a row"),
        "{}",
        &reason[..100]
    );
    // Host lines about the failures share the pipelines' budgets (10 lines/s each, a
    // second's burst): far fewer than the failures, and none of them 12 MB.
    let stderr = serve.stderr();
    let logged = stderr.matches("plugin call failed").count();
    let budget = (2.0 * 10.0 * (elapsed + 1.0)) as usize;
    eprintln!(
        "{windows} + 3 failed calls, {logged} 'plugin call failed' lines in {elapsed:.1} s, stderr {} bytes",
        stderr.len()
    );
    assert!(logged <= budget, "{logged} lines > {budget}");
    assert!(stderr.len() < 1 << 20, "stderr is {} bytes", stderr.len());
    assert_stats_exact(
        &s.read_jsonl("victim.jsonl"),
        &bucket(&victim.events(), 1000),
        "victim beside a shouting plugin",
    );
}

// ---------------------------------------------------------------------------------------
// Hole 10: a failing sink
// ---------------------------------------------------------------------------------------

#[test]
fn a_sink_that_fails_stops_its_pipeline_with_the_windows_pending() {
    let _serial = serial();
    let s = Scratch::new();
    let stats = support::wasm("stats");
    let full = Gen {
        count: 2_000,
        keys: 10,
        interval_ms: 10,
        seed: 51,
        rate: 0,
    };
    s.write(
        "full.toml",
        &pipeline_toml("full", &full.toml(), &stats, STATS)
            .replace("path = \"full.jsonl\"", "path = \"/dev/full\""),
    );
    let victim = Gen {
        count: 30_000,
        keys: 10,
        interval_ms: 10,
        seed: 52,
        rate: 0,
    };
    s.write(
        "victim.toml",
        &pipeline_toml("victim", &victim.toml(), &stats, STATS),
    );
    let mut serve = Serve::start(
        &s,
        &format!(
            "{}{}",
            tenant_toml("evil", GLOBEX, &["full.toml"]),
            tenant_toml("good", ACME, &["victim.toml"])
        ),
    );
    let failed = wait_for("the full sink to fail", Duration::from_secs(60), || {
        let v = serve.view("evil", "full");
        (v.state == PipelineState::Failed).then_some(v)
    });
    let reason = failed.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("/dev/full") && reason.contains("No space left on device"),
        "{reason}"
    );
    assert_eq!(
        failed.counters.rows_written, 0,
        "nothing counted as written"
    );
    // The first event of the second second fired every window of the first; the first
    // write failed, so all of them stay pending, beside the window that event opened.
    let events = full.events();
    let first = events[0].0 - events[0].0.rem_euclid(1000);
    let keys_first_second: std::collections::BTreeSet<&str> = events
        .iter()
        .filter(|(ts, _, _)| *ts < first + 1000)
        .map(|(_, sym, _)| sym.as_str())
        .collect();
    let metrics = serve.client(OPERATOR).metrics().expect("metrics");
    let open = gauge(&metrics, "weir_open_windows", "evil", "full");
    assert_eq!(
        open,
        Some(keys_first_second.len() as f64 + 1.0),
        "open windows of the failed pipeline"
    );
    serve.wait_state(
        "good",
        "victim",
        PipelineState::Finished,
        Duration::from_secs(120),
    );
    serve.assert_healthy();
    assert_stats_exact(
        &s.read_jsonl("victim.jsonl"),
        &bucket(&victim.events(), 1000),
        "victim beside a failing sink",
    );
}

// ---------------------------------------------------------------------------------------
// Hole 11: a byte order mark
// ---------------------------------------------------------------------------------------

#[test]
fn a_byte_order_mark_does_not_make_the_first_record_malformed() {
    let s = Scratch::new();
    let stats = support::wasm("stats");
    let jsonl = "\u{feff}{\"ts\":\"2024-01-22T00:00:00.100Z\",\"symbol\":\"A\",\"price\":2.0,\"volume\":1}\n\
                 {\"ts\":\"2024-01-22T00:00:00.200Z\",\"symbol\":\"A\",\"price\":4.0,\"volume\":1}\n";
    s.write("bom.jsonl", jsonl);
    s.write(
        "bom.csv",
        "\u{feff}ts,symbol,price,volume\n2024-01-22T00:00:00.100Z,A,2.0,1\n2024-01-22T00:00:00.200Z,A,4.0,1\n",
    );
    for (name, source) in [
        ("j", "[source]\nkind = \"file\"\npath = \"bom.jsonl\"\n"),
        (
            "c",
            "[source]\nkind = \"file\"\npath = \"bom.csv\"\nformat = \"csv\"\n",
        ),
    ] {
        let path = s.write(
            &format!("{name}.toml"),
            &pipeline_toml(name, source, &stats, STATS),
        );
        let (ok, _, stderr) = support::run_pipeline(&path);
        assert!(ok, "{stderr}");
        let summary = support::summary(&stderr);
        assert_eq!(summary["malformed"].as_u64(), Some(0), "{name}: {stderr}");
        let rows = s.read_jsonl(&format!("{name}.jsonl"));
        assert_eq!(rows.len(), 1, "{name}");
        assert_eq!(rows[0]["count"].as_i64(), Some(2), "{name}");
        assert_eq!(rows[0]["sum"].as_f64(), Some(6.0), "{name}");
    }
}
