//! `weir plugin test`: a built component run over sample events under a pipeline file's
//! settings, its rows printed as a table. Expected rows are worked out by hand from the
//! sample events and the window semantics.

mod support;

use support::{Scratch, wasm, weir};

/// Ticks of two symbols in three 1 s tumbling windows, then one event that moves the
/// watermark past them; the third line is malformed.
const TICKS: &str = r#"{"ts":"2024-01-22T10:00:00.100Z","symbol":"AAPL","price":10.0,"volume":1}
{"ts":"2024-01-22T10:00:00.600Z","symbol":"AAPL","price":14.0,"volume":1}
{"ts":"2024-01-22T10:00:00.700Z","symbol":"AAPL","price":"abc","volume":1}
{"ts":"2024-01-22T10:00:00.800Z","symbol":"MSFT","price":50.0,"volume":2}
{"ts":"2024-01-22T10:00:01.200Z","symbol":"AAPL","price":20.0,"volume":1}
{"ts":"2024-01-22T10:00:05.000Z","symbol":"BAD","price":1.0,"volume":1}
"#;

/// A pipeline as an operator hands it to a tenant: Kafka in, Kafka out, a plugin path
/// that does not exist on the tenant's machine. None of it is used by `weir plugin test`
/// but the schema, window and params.
fn operator_pipeline(scratch: &Scratch) -> std::path::PathBuf {
    scratch.write(
        "operator.toml",
        r#"name = "ticks"
[source]
kind = "kafka"
brokers = "127.0.0.1:1"
topics = ["ticks"]
group_id = "g"
[schema]
timestamp = { field = "ts", format = "rfc3339" }
key = ["symbol"]
fields = { symbol = "string", price = "f64", volume = "i64" }
[window]
kind = "tumbling"
size = "1s"
[plugin]
path = "/nowhere/plugin.wasm"
params = { field = "volume" }
[sink]
kind = "kafka"
brokers = "127.0.0.1:1"
topic = "out"
"#,
    )
}

fn test_plugin(plugin: &str, args: &[&str]) -> (bool, String, String) {
    support::outcome(
        weir()
            .args(["plugin", "test"])
            .arg(wasm(plugin))
            .args(args)
            .output()
            .expect("weir runs"),
    )
}

#[test]
fn rows_of_a_sample_are_printed_as_a_table() {
    let s = Scratch::new();
    let pipeline = operator_pipeline(&s);
    let input = s.write("ticks.jsonl", TICKS);
    // `--param field=price` overrides the pipeline's `field = "volume"`.
    let (ok, stdout, stderr) = test_plugin(
        "stats",
        &[
            "--pipeline",
            pipeline.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--param",
            "field=price",
        ],
    );
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let lines: Vec<Vec<&str>> = stdout
        .lines()
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        [
            "symbol",
            "window_start",
            "window_end",
            "count",
            "sum",
            "min",
            "max",
            "avg",
            "stddev"
        ]
    );
    // Six lines are read. [10:00:00, 10:00:01): AAPL 10 and 14 (the "abc" line is malformed), MSFT 50.
    // [10:00:01, 10:00:02): AAPL 20. [10:00:05, …) never closes; at the end of input
    // it fires too (BAD 1.0): the sample is bounded.
    // Sample stddev of {10, 14}: mean 12, squares 4 + 4, (8 / 1).sqrt() = 2.8284271247461903.
    let w0 = ["2024-01-22T10:00:00.000Z", "2024-01-22T10:00:01.000Z"];
    let w1 = ["2024-01-22T10:00:01.000Z", "2024-01-22T10:00:02.000Z"];
    let w5 = ["2024-01-22T10:00:05.000Z", "2024-01-22T10:00:06.000Z"];
    let mut rows: Vec<Vec<&str>> = lines[1..].to_vec();
    rows.sort();
    let expected: Vec<Vec<&str>> = vec![
        [
            &["AAPL"][..],
            &w0,
            &["2", "24.0", "10.0", "14.0", "12.0", "2.8284271247461903"],
        ]
        .concat(),
        [&["AAPL"][..], &w1, &["1", "20.0", "20.0", "20.0", "20.0"]].concat(),
        [&["BAD"][..], &w5, &["1", "1.0", "1.0", "1.0", "1.0"]].concat(),
        [&["MSFT"][..], &w0, &["1", "50.0", "50.0", "50.0", "50.0"]].concat(),
    ];
    assert_eq!(rows, expected, "stdout:\n{stdout}");
    assert!(
        stdout.contains(
            "6 events read, 4 windows fired, 4 rows, 0 late, 1 malformed, 0 plugin errors"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("offset=3"),
        "the malformed line is line 3:\n{stdout}"
    );
    assert!(stdout.contains("`abc` is not a number"), "{stdout}");
}

#[test]
fn a_failing_plugin_call_is_listed_and_the_exit_code_says_so() {
    let s = Scratch::new();
    let pipeline = operator_pipeline(&s);
    let input = s.write("ticks.jsonl", TICKS);
    let (ok, stdout, stderr) = test_plugin(
        "panicky",
        &[
            "--pipeline",
            pipeline.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
        ],
    );
    assert!(
        !ok,
        "a failed plugin call exits non-zero:\n{stdout}\n{stderr}"
    );
    // The three good windows have n = events: AAPL 2 then 1, MSFT 1; BAD's window fails.
    assert!(
        stdout.contains("3 rows, 0 late, 1 malformed, 1 plugin errors"),
        "{stdout}"
    );
    assert!(stdout.contains("plugin errors:"), "{stdout}");
    assert!(
        stdout.contains("window_start=2024-01-22T10:00:05.000Z"),
        "{stdout}"
    );
    assert!(stderr.contains("1 plugin call(s) failed"), "{stderr}");
}

#[test]
fn a_kafka_pipeline_without_input_asks_for_one() {
    let s = Scratch::new();
    let pipeline = operator_pipeline(&s);
    let (ok, _, stderr) = test_plugin("stats", &["--pipeline", pipeline.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("reads Kafka; pass --input FILE"),
        "{stderr}"
    );
}

/// A pipeline over `BAD` ticks whose plugin may log no line at all (`log_lines_per_second =
/// 0`): every guest line and every "plugin call failed" line is dropped and counted.
fn silenced_pipeline(scratch: &Scratch) -> std::path::PathBuf {
    scratch.write(
        "silenced.toml",
        r#"name = "silenced"
[source]
kind = "stdin"
[schema]
timestamp = { field = "ts", format = "epoch_ms" }
key = ["symbol"]
fields = { symbol = "string", price = "f64" }
[window]
kind = "tumbling"
size = "1s"
[plugin]
path = "/nowhere/plugin.wasm"
limits = { log_lines_per_second = 0 }
[sink]
kind = "stdout"
"#,
    )
}

/// `weir plugin test` of panicky over `windows` one-event windows of the key `BAD` (each
/// call traps, ending its instance): (the count of dropped log lines its one summary line
/// gives, stderr).
fn dropped_over(windows: u64) -> (u64, String) {
    let s = Scratch::new();
    let pipeline = silenced_pipeline(&s);
    let ticks: String = (0..windows)
        .map(|i| {
            format!(
                "{{\"ts\":{},\"symbol\":\"BAD\",\"price\":1.0}}\n",
                i * 1000 + 100
            )
        })
        .collect();
    let input = s.write("bad.jsonl", &ticks);
    let (ok, stdout, stderr) = test_plugin(
        "panicky",
        &[
            "--pipeline",
            pipeline.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
        ],
    );
    assert!(!ok, "every call fails:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!(
            "0 rows, 0 late, 0 malformed, {windows} plugin errors"
        )),
        "{stdout}"
    );
    let summaries: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("log lines of the plugin dropped"))
        .collect();
    assert_eq!(summaries.len(), 1, "one summary line:\n{stdout}");
    assert!(
        summaries[0].contains("over its limit of 0 lines/s ([plugin.limits] log_lines_per_second"),
        "{stdout}"
    );
    let count = summaries[0]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a count first: {}", summaries[0]));
    (count, stderr)
}

#[test]
fn log_lines_dropped_over_the_budget_are_one_summary_line() {
    // One window: its trap's panic lines on stderr plus the host's "plugin call failed"
    // line, all dropped at 0 lines/s: at least the panic message and the host's line.
    let (one, _) = dropped_over(1);
    assert!(one >= 2, "{one}");
    // Twelve windows drop twelve times as many, and stderr carries no per-instance
    // warning: each trap ends an instance, whose log would otherwise report its drops.
    let (twelve, stderr) = dropped_over(12);
    assert_eq!(twelve, 12 * one);
    assert!(!stderr.contains("lines of guest"), "{stderr}");
}
