//! `weir bench` end to end on a tiny scale: the table has the row asked for, with the
//! events read and the rows written that the workload's semantics give. No timing is
//! checked (the numbers are the benchmark's business, not the test's).

mod support;

use std::collections::BTreeSet;
use std::path::Path;

/// Runs `weir bench` with `args` and the given data and plugin directories, returning
/// (success, stdout, stderr).
fn bench(data_dir: &Path, args: &[&str]) -> (bool, String, String) {
    let plugin_dir = support::wasm("stats")
        .parent()
        .expect("plugin dir")
        .to_path_buf();
    let out = support::weir()
        .arg("bench")
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--plugin-dir")
        .arg(&plugin_dir)
        .args(args)
        .output()
        .expect("weir runs");
    support::outcome(out)
}

/// The cells of a Markdown table's data rows.
fn markdown_rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .skip(2)
        .map(|l| {
            l.trim()
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// The demo workload at scale 0.01: 2 000 ticks of 10 symbols, 5 ms apart from
/// 2024-01-22T00:00:00Z, each moved back by up to 800 ms, in 3 s windows sliding by 1 s
/// with a 1 s watermark delay.
///
/// No event is late: event `i` has a time `t ≥ base(i) − 800 ms`, and the watermark when
/// it arrives is at most `base(i − 1) − 1 s < t − 200 ms`, while `t`'s last window ends
/// after `t + 2 s`. So every (symbol, window) holding an event fires once at the latest at
/// the end of input, and `stats` writes one row for it. A tick at time `t` lies in the
/// three windows starting at `⌊t⌋ − 2 s, ⌊t⌋ − 1 s, ⌊t⌋` (seconds, aligned to the epoch).
/// The expected row count is the number of distinct (symbol, window start) pairs over the
/// input file, counted here from the raw JSON with that rule.
#[test]
fn bench_runs_the_demo_and_reports_its_rows() {
    let data = tempfile::tempdir().expect("temp dir");
    let (ok, stdout, stderr) = bench(
        data.path(),
        &[
            "--only",
            "demo",
            "--variants",
            "wasm",
            "--scale",
            "0.01",
            "--format",
            "markdown",
        ],
    );
    assert!(ok, "weir bench failed:\n{stderr}");
    assert!(
        stderr.contains("generating"),
        "progress on stderr:\n{stderr}"
    );

    let input = data.path().join("stocks-n2000-k10-i5ms-j800ms-s7.jsonl");
    let text = std::fs::read_to_string(&input).expect("the input is cached");
    let mut windows = BTreeSet::new();
    let mut events = 0;
    for line in text.lines() {
        let tick: serde_json::Value = serde_json::from_str(line).expect("a JSON tick");
        let ts = chrono::DateTime::parse_from_rfc3339(tick["ts"].as_str().expect("ts"))
            .expect("RFC 3339 ts")
            .timestamp_millis();
        let symbol = tick["symbol"].as_str().expect("symbol").to_string();
        let second = ts.div_euclid(1000);
        for start in second - 2..=second {
            windows.insert((symbol.clone(), start));
        }
        events += 1;
    }
    assert_eq!(events, 2000);
    // Times run from about −0.8 s to 9.995 s after the start, so window starts run from
    // −3 s to 9 s: 13 windows; every symbol has ticks throughout (200 each, about 8 of
    // them moved before the start), so 10 × 13 = 130 rows.
    assert_eq!(windows.len(), 130);

    let rows = markdown_rows(&stdout);
    assert_eq!(rows.len(), 1, "one row:\n{stdout}");
    let row = &rows[0];
    assert_eq!(row[..3], ["demo", "wasm", "2 000"], "{stdout}");
    assert_eq!(row[7], windows.len().to_string(), "rows written:\n{stdout}");
    assert_eq!(row[8], "-", "nothing to compare with:\n{stdout}");
    assert!(
        row[9].starts_with("≥ 1M ev/s/core: "),
        "the demo's target:\n{stdout}"
    );

    // A second run reuses the cached input.
    let (ok, _, stderr) = bench(
        data.path(),
        &["--only", "demo", "--variants", "wasm", "--scale", "0.01"],
    );
    assert!(ok, "weir bench failed:\n{stderr}");
    assert!(!stderr.contains("generating"), "input reused:\n{stderr}");
}

/// A variant that cannot run is a row with `n/a` and a reason, and the suite finishes.
#[test]
fn a_variant_without_its_plugin_is_not_available() {
    let data = tempfile::tempdir().expect("temp dir");
    let empty = tempfile::tempdir().expect("temp dir");
    let out = support::weir()
        .arg("bench")
        .arg("--data-dir")
        .arg(data.path())
        .arg("--plugin-dir")
        .arg(empty.path())
        .args(["--only", "demo", "--variants", "wasm", "--scale", "0.001"])
        .output()
        .expect("weir runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("demo"))
        .unwrap_or_else(|| panic!("a demo row:\n{stdout}"));
    assert!(line.contains("n/a"), "{line}");
    assert!(line.contains("stats.wasm not built"), "{line}");
}

#[test]
fn an_unknown_workload_is_refused_with_the_names() {
    let data = tempfile::tempdir().expect("temp dir");
    let (ok, _, stderr) = bench(data.path(), &["--only", "nope"]);
    assert!(!ok);
    assert!(stderr.contains("no workload `nope`"), "{stderr}");
    assert!(stderr.contains("stocks-2m"), "{stderr}");
}

/// Runs the demo at a small scale, wasm against an "incremental" variant whose component is
/// `incremental` (copied under the incremental plugin's name), and returns the table rows.
fn compare_demo_with(incremental: &str) -> Vec<Vec<String>> {
    let data = tempfile::tempdir().expect("temp dir");
    let plugins = tempfile::tempdir().expect("temp dir");
    std::fs::copy(support::wasm("stats"), plugins.path().join("stats.wasm"))
        .expect("copy the plugin");
    std::fs::copy(
        support::wasm(incremental),
        plugins.path().join("stats_incremental.wasm"),
    )
    .expect("copy the plugin");
    let out = support::weir()
        .arg("bench")
        .arg("--data-dir")
        .arg(data.path())
        .arg("--plugin-dir")
        .arg(plugins.path())
        .args([
            "--only",
            "demo",
            "--variants",
            "incremental,wasm",
            "--scale",
            "0.001",
            "--format",
            "markdown",
        ])
        .output()
        .expect("weir runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = markdown_rows(&stdout);
    // Wasm first (the reference), whatever order --variants names them in.
    let variants: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(variants, ["wasm", "incremental"], "{stdout}");
    assert_eq!(rows[0][8], "-", "{stdout}");
    rows
}

/// Variants are compared with the wasm run's rows: the real incremental `stats` writes the
/// same rows (within 1e-9), so the column says yes; a component with other outputs (the
/// 0.1.0 `legacy` plugin: count and sum only) says no.
#[test]
fn variants_are_compared_with_the_wasm_rows() {
    let same = compare_demo_with("stats_incremental");
    assert_eq!(same[1][8], "yes", "{same:?}");
    assert_eq!(same[0][7], same[1][7], "same rows written: {same:?}");
    let other = compare_demo_with("legacy");
    assert_eq!(other[1][8], "no", "{other:?}");
}
