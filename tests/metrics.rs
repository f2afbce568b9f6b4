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
    let console = free_port();
    let mut child = support::weir()
        .args([
            "run",
            "--json-summary",
            "--no-progress",
            "--parallelism",
            "1",
        ])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .args(["--console", &format!("127.0.0.1:{console}")])
        .env("WEIR_CONSOLE_TOKEN", "console-token-31f0a2")
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

    // The console's sample of the same moment has the same counters, and it holds the
    // three rows and the one dead letter the sinks wrote.
    let activity = wait_for("the console's sample", Duration::from_secs(60), || {
        let body = console_get(console, "/v1/tenants/local/pipelines/live/activity")?;
        let a: serde_json::Value = serde_json::from_str(&body).ok()?;
        let last = a["samples"].as_array()?.last()?.clone();
        (last["events_read"] == 5).then_some((a, last))
    });
    let (a, last) = activity;
    assert_eq!(last["malformed"], 1);
    assert_eq!(last["late"], 0);
    assert_eq!(last["rows_written"], 3);
    assert_eq!(last["plugin_errors"], 0);
    assert_eq!(last["open_windows"], 1);
    assert_eq!(last["watermark_ms"], 2500);
    assert_eq!(last["errors_last_minute"], 1);
    let rows: Vec<(String, String, i64)> = a["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let f = &r["fields"];
            (
                f["symbol"].as_str().unwrap().to_string(),
                f["window_start"].as_str().unwrap().to_string(),
                f["count"].as_i64().unwrap(),
            )
        })
        .collect();
    let mut rows = rows;
    rows.sort();
    let row = |k: &str, start: &str| (k.to_string(), start.to_string(), 1);
    assert_eq!(
        rows,
        [
            row("A", "1970-01-01T00:00:00.000Z"),
            row("A", "1970-01-01T00:00:01.000Z"),
            row("B", "1970-01-01T00:00:00.000Z"),
        ]
    );
    assert_eq!(a["errors"].as_array().unwrap().len(), 1);
    assert_eq!(a["errors"][0]["kind"], "dead_letter");
    assert_eq!(a["errors"][0]["fields"]["record"], "not json");

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

#[test]
fn every_metric_the_grafana_dashboard_uses_is_in_a_scrape() {
    use support::serve::{ACME, OPERATOR, Serve, serial};
    let _serial = serial();
    let s = Scratch::new();
    let source = "[source]\nkind = \"generator\"\nworkload = \"stocks\"\ncount = 1000000\nkeys = 2\ninterval = \"100ms\"\nrate = 200\n";
    s.write(
        "ticks.toml",
        &support::pipeline_toml(
            "ticks",
            source,
            &support::wasm("stats"),
            "params = { field = \"price\" }",
        ),
    );
    let serve = Serve::start(
        &s,
        &format!("[[tenant]]\nname = \"acme\"\ntoken = \"{ACME}\"\npipelines = [\"ticks.toml\"]\n"),
    );
    let scrape = wait_for(
        "a fired window in the metrics",
        Duration::from_secs(60),
        || {
            let m = serve.client(OPERATOR).metrics().ok()?;
            m.lines()
                .any(|l| l.starts_with("weir_windows_fired_total{") && !l.ends_with(" 0"))
                .then_some(m)
        },
    );
    let series: std::collections::BTreeSet<&str> = scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    // Kafka's series need a Kafka source: tests/kafka_lag.rs checks those.
    let used: std::collections::BTreeSet<String> = support::dashboard_metrics()
        .into_iter()
        .filter(|n| !n.starts_with("weir_kafka_"))
        .collect();
    assert!(used.len() >= 15, "the dashboard uses {used:?}");
    let missing: Vec<&String> = used
        .iter()
        .filter(|n| !series.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard uses {missing:?}, which no scrape has:\n{scrape}"
    );
}

/// `GET path` on the console of `weir run --console` with its token; the body on 200.
fn console_get(port: u16, path: &str) -> Option<String> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer console-token-31f0a2\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}
