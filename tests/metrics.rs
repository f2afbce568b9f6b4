//! `weir run --metrics-addr`: a scrape during a run whose input is known matches the
//! counters worked out by hand from that input.

mod support;

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use support::Scratch;
use support::serve::{free_port, http_get, wait_for};

/// The value of `name{tenant="local",pipeline="live"}` in a scrape.
fn value(scrape: &str, name: &str) -> Option<f64> {
    let prefix = format!("{name}{{tenant=\"local\",pipeline=\"live\"}} ");
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
}

#[test]
fn a_scrape_during_a_run_matches_its_counters() {
    let s = Scratch::new();
    let pipeline = s.write(
        "live.toml",
        &format!(
            r#"name = "live"
[source]
kind = "stdin"
[schema]
timestamp = {{ field = "ts", format = "epoch_ms" }}
key = ["symbol"]
fields = {{ symbol = "string", price = "f64" }}
[window]
kind = "tumbling"
size = "1s"
[plugin]
path = "{}"
params = {{ field = "price" }}
[sink]
kind = "file"
path = "live.jsonl"
[dead_letter]
kind = "file"
path = "dead.jsonl"
"#,
            support::wasm("stats").display()
        ),
    );
    let port = free_port();
    let mut child = support::weir()
        .args([
            "run",
            "--json-summary",
            "--no-progress",
            "--parallelism",
            "1",
        ])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .arg(&pipeline)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weir runs");
    // Five records, one malformed; the watermark reaches 2.5 s (no delay), so [0 s, 1 s)
    // fires for A and B and [1 s, 2 s) for A: 3 windows, 3 rows. [2 s, 3 s) stays open
    // until the input ends.
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(
            b"{\"ts\":100,\"symbol\":\"A\",\"price\":1}\n{\"ts\":500,\"symbol\":\"B\",\"price\":2}\n\
              {\"ts\":1200,\"symbol\":\"A\",\"price\":3}\nnot json\n{\"ts\":2500,\"symbol\":\"A\",\"price\":4}\n",
        )
        .expect("write");
    stdin.flush().expect("flush");
    let scrape = wait_for(
        "five records in the metrics",
        Duration::from_secs(60),
        || {
            let (status, body) = http_get(port, "/metrics")?;
            (status == 200 && value(&body, "weir_events_read_total") == Some(5.0)).then_some(body)
        },
    );
    for (name, expected) in [
        ("weir_malformed_total", 1.0),
        ("weir_late_events_total", 0.0),
        ("weir_windows_fired_total", 3.0),
        ("weir_rows_written_total", 3.0),
        ("weir_plugin_errors_total", 0.0),
        ("weir_open_windows", 1.0),
        ("weir_watermark_seconds", 2.5),
    ] {
        assert_eq!(value(&scrape, name), Some(expected), "{name} in:\n{scrape}");
    }
    assert!(
        value(&scrape, "weir_plugin_call_seconds_count").is_some_and(|n| n >= 1.0),
        "{scrape}"
    );

    // The end of input fires [2 s, 3 s): the summary has one window and one row more.
    drop(stdin);
    let out = child.wait_with_output().expect("weir ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary = support::summary(&stderr);
    assert_eq!(summary["events_read"], 5);
    assert_eq!(summary["malformed"], 1);
    assert_eq!(summary["windows_fired"], 4);
    assert_eq!(summary["rows_written"], 4);
}
