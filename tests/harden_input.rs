//! Hardening against hostile records and window configs: each attack runs against the real `weir serve` with two
//! tenants on 127.0.0.1, and the other tenant keeps getting exact results.
//!
//! - Event times outside years 1000..=9999 (epoch-ms strings near `i64::MAX`/`i64::MIN`, a
//!   JSON number near `i64::MAX`, RFC 3339 years 0 and 10000) in tumbling, sliding and
//!   cumulative pipelines: dead-lettered with the reason, the attacker's valid events give
//!   the rows worked out by hand, the host keeps serving.
//! - A per-event window budget: sliding `100d`/`1ms` and cumulative `100y`/`1ms` make
//!   `weir serve` refuse to start and `weir check` fail, naming the key, count, limit and
//!   fix; a small `max_open_windows` refuses events that would open windows beyond it, whole.
//! - A year-9999 event (and one 8 days ahead) in the middle of a file: dead-lettered with
//!   `watermark.max_future`, later events are not late.
//!
//! Expected rows are worked out by hand from the attacker's few valid events (comments say
//! how); the victim's from its generated events (`bucket`). Every host is killed when its
//! guard drops; everything is bounded in count and time.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use support::Scratch;
use support::serve::*;
use weir::serve::control::PipelineState;

const RANGE: &str =
    "outside the event-time range 1000-01-01T00:00:00Z ..= 9999-12-31T23:59:59.999Z";

/// The victim: a generated stream through `stats` over 1 s tumbling windows.
fn victim() -> (Gen, String) {
    let g = Gen {
        count: 20_000,
        keys: 5,
        interval_ms: 10,
        seed: 23,
        rate: 0,
    };
    let toml = support::pipeline_toml(
        "victim",
        &g.toml(),
        &support::wasm("stats"),
        "params = { field = \"price\" }",
    );
    (g, toml)
}

/// An attacker pipeline reading `data` (JSON lines: `ts`, `symbol`, `price`) with `stats`,
/// dead letters and late events to their own files.
fn attacker_toml(name: &str, data: &str, ts_format: &str, window: &str, limits: &str) -> String {
    format!(
        r#"name = "{name}"
[source]
kind = "file"
path = "{data}"

[schema]
timestamp = {{ field = "ts", format = "{ts_format}" }}
key = ["symbol"]
fields = {{ symbol = "string", price = "f64" }}

[window]
{window}

[plugin]
path = "{plugin}"
params = {{ field = "price" }}
limits = {{ {limits} }}

[sink]
kind = "file"
path = "{name}.jsonl"

[dead_letter]
kind = "file"
path = "{name}.dead.jsonl"

[late_sink]
kind = "file"
path = "{name}.late.jsonl"

[error_sink]
kind = "file"
path = "{name}.errors.jsonl"
"#,
        plugin = support::wasm("stats").display()
    )
}

/// A row as `(symbol, window_start ms, window_end ms, count, sum, min, max)`, sorted.
type Row = (String, i64, i64, i64, f64, f64, f64);

fn rows(s: &Scratch, name: &str) -> Vec<Row> {
    let mut out: Vec<Row> = s
        .read_jsonl(&format!("{name}.jsonl"))
        .iter()
        .map(|r| {
            (
                r["symbol"].as_str().expect("symbol").to_string(),
                ts_ms(r["window_start"].as_str().expect("window_start")),
                ts_ms(r["window_end"].as_str().expect("window_end")),
                r["count"].as_i64().expect("count"),
                r["sum"].as_f64().expect("sum"),
                r["min"].as_f64().expect("min"),
                r["max"].as_f64().expect("max"),
            )
        })
        .collect();
    out.sort_by(|a, b| (&a.0, a.1, a.2).cmp(&(&b.0, b.1, b.2)));
    out
}

fn row(sym: &str, start: i64, end: i64, prices: &[f64]) -> Row {
    let min = prices.iter().copied().fold(f64::INFINITY, f64::min);
    let max = prices.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (
        sym.to_string(),
        start,
        end,
        prices.len() as i64,
        prices.iter().sum(),
        min,
        max,
    )
}

fn dead_letters(s: &Scratch, name: &str) -> Vec<Json> {
    s.read_jsonl(&format!("{name}.dead.jsonl"))
}

/// Starts the host with the victim (tenant `globex`) and the attacker's pipelines (tenant
/// `acme`), waits for all of them to finish, and checks the victim exactly.
fn run_beside_victim(s: &Scratch, attacker: &[&str]) -> Serve {
    let (g, victim_toml) = victim();
    s.write("victim.toml", &victim_toml);
    let mut serve = Serve::start(
        s,
        &format!(
            "{}{}",
            tenant_toml("acme", ACME, attacker),
            tenant_toml("globex", GLOBEX, &["victim.toml"])
        ),
    );
    for file in attacker {
        let name = file.trim_end_matches(".toml");
        serve.wait_state(
            "acme",
            name,
            PipelineState::Finished,
            Duration::from_secs(60),
        );
    }
    let done = serve.wait_state(
        "globex",
        "victim",
        PipelineState::Finished,
        Duration::from_secs(60),
    );
    assert_eq!(done.counters.events_read, g.count);
    assert_eq!(done.counters.plugin_errors, 0);
    serve.assert_healthy();
    assert_stats_exact(
        &s.read_jsonl("victim.jsonl"),
        &bucket(&g.events(), 1000),
        "victim beside the attacker",
    );
    serve
}

// ---------------------------------------------------------------------------------------
// Hole 1: event times that overflow window arithmetic
// ---------------------------------------------------------------------------------------

#[test]
fn out_of_range_event_times_are_dead_lettered_and_the_host_keeps_serving() {
    let _serial = serial();
    let s = Scratch::new();
    // Valid: A@1000 (1), A@1500 (2), A@2500 (4), A@3200 (8); between them, five times
    // beyond the range, four as strings, one as a JSON number.
    let hostile = [
        r#"{"ts":"9223372036854775807","symbol":"A","price":100}"#,
        r#"{"ts":"-9223372036854775808","symbol":"A","price":100}"#,
        r#"{"ts":"9223372036854775000","symbol":"A","price":100}"#,
        r#"{"ts":"-9223372036854775000","symbol":"A","price":100}"#,
        r#"{"ts":9223372036854775807,"symbol":"A","price":100}"#,
    ];
    let mut lines = vec![
        r#"{"ts":"1000","symbol":"A","price":1}"#,
        r#"{"ts":"1500","symbol":"A","price":2}"#,
        r#"{"ts":"2500","symbol":"A","price":4}"#,
    ];
    lines.extend(hostile);
    lines.push(r#"{"ts":"3200","symbol":"A","price":8}"#);
    s.write("epoch.input", &(lines.join("\n") + "\n"));
    // The same times as RFC 3339, with years 0 and 10000 (and 999) in the middle.
    s.write(
        "rfc.input",
        &[
            r#"{"ts":"1970-01-01T00:00:01Z","symbol":"A","price":1}"#,
            r#"{"ts":"1970-01-01T00:00:01.500Z","symbol":"A","price":2}"#,
            r#"{"ts":"1970-01-01T00:00:02.500Z","symbol":"A","price":4}"#,
            r#"{"ts":"0000-01-01T00:00:00Z","symbol":"A","price":100}"#,
            r#"{"ts":"0999-12-31T23:59:59.999Z","symbol":"A","price":100}"#,
            r#"{"ts":"10000-01-01T00:00:00Z","symbol":"A","price":100}"#,
            r#"{"ts":"1970-01-01T00:00:03.200Z","symbol":"A","price":8}"#,
        ]
        .join("\n"),
    );
    let tumbling = "kind = \"tumbling\"\nsize = \"1s\"";
    let sliding = "kind = \"sliding\"\nsize = \"2s\"\nslide = \"1s\"";
    let cumulative = "kind = \"cumulative\"\nsize = \"4s\"\nstep = \"1s\"";
    for (name, window) in [
        ("tumbling", tumbling),
        ("sliding", sliding),
        ("cumulative", cumulative),
    ] {
        s.write(
            &format!("{name}.toml"),
            &attacker_toml(name, "epoch.input", "epoch_ms", window, ""),
        );
    }
    s.write(
        "rfc.toml",
        &attacker_toml("rfc", "rfc.input", "rfc3339", tumbling, ""),
    );

    let _serve = run_beside_victim(
        &s,
        &[
            "tumbling.toml",
            "sliding.toml",
            "cumulative.toml",
            "rfc.toml",
        ],
    );

    // Tumbling 1 s: [1000,2000) holds 1 and 2, [2000,3000) 4, [3000,4000) 8.
    let tumbling_rows = vec![
        row("A", 1000, 2000, &[1.0, 2.0]),
        row("A", 2000, 3000, &[4.0]),
        row("A", 3000, 4000, &[8.0]),
    ];
    assert_eq!(rows(&s, "tumbling"), tumbling_rows, "tumbling");
    assert_eq!(rows(&s, "rfc"), tumbling_rows, "rfc3339 tumbling");
    // Sliding 2 s by 1 s: 1000 and 1500 are in [0,2000) and [1000,3000); 2500 in [1000,3000)
    // and [2000,4000); 3200 in [2000,4000) and [3000,5000).
    assert_eq!(
        rows(&s, "sliding"),
        vec![
            row("A", 0, 2000, &[1.0, 2.0]),
            row("A", 1000, 3000, &[1.0, 2.0, 4.0]),
            row("A", 2000, 4000, &[4.0, 8.0]),
            row("A", 3000, 5000, &[8.0]),
        ],
        "sliding"
    );
    // Cumulative 4 s by 1 s from 0: [0,1000) holds nothing; [0,2000) 1 and 2; [0,3000) adds
    // 4; [0,4000) adds 8.
    assert_eq!(
        rows(&s, "cumulative"),
        vec![
            row("A", 0, 2000, &[1.0, 2.0]),
            row("A", 0, 3000, &[1.0, 2.0, 4.0]),
            row("A", 0, 4000, &[1.0, 2.0, 4.0, 8.0]),
        ],
        "cumulative"
    );
    for name in ["tumbling", "sliding", "cumulative"] {
        let dead = dead_letters(&s, name);
        assert_eq!(dead.len(), hostile.len(), "{name}: {dead:?}");
        for (d, line) in dead.iter().zip(hostile) {
            let reason = d["reason"].as_str().expect("reason");
            assert!(
                reason.starts_with("field `ts`: `") && reason.ends_with(RANGE),
                "{name}: {reason}"
            );
            assert_eq!(d["record"], line, "{name}");
        }
        assert!(s.read_jsonl(&format!("{name}.late.jsonl")).is_empty());
    }
    let dead = dead_letters(&s, "rfc");
    let reasons: Vec<&str> = dead.iter().filter_map(|d| d["reason"].as_str()).collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert_eq!(
        reasons[0],
        format!("field `ts`: `0000-01-01T00:00:00Z` is {RANGE}")
    );
    assert_eq!(
        reasons[1],
        format!("field `ts`: `0999-12-31T23:59:59.999Z` is {RANGE}")
    );
    // A five-digit year is not RFC 3339 at all.
    assert!(
        reasons[2].starts_with("field `ts`: `10000-01-01T00:00:00Z` is not RFC 3339"),
        "{}",
        reasons[2]
    );
}

// ---------------------------------------------------------------------------------------
// Hole 2: one event opening an unbounded number of windows
// ---------------------------------------------------------------------------------------

/// Runs `weir serve` on a host file that must fail to start; returns its stderr.
fn serve_refuses(s: &Scratch, body: &str) -> String {
    let host = s.write(
        "refused-host.toml",
        &format!(
            "[admin]\nlisten = \"127.0.0.1:{}\"\noperator_token = \"{OPERATOR}\"\n\n{body}",
            free_port()
        ),
    );
    let mut child = support::weir()
        .arg("serve")
        .arg(&host)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(s.path("refused.stderr")).expect("stderr file"))
        .spawn()
        .expect("weir serve starts");
    let until = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("weir serve did not refuse to start within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "weir serve exited successfully");
    std::fs::read_to_string(s.path("refused.stderr")).unwrap_or_default()
}

#[test]
fn a_window_config_over_the_budget_is_refused_by_serve_and_check() {
    let _serial = serial();
    let s = Scratch::new();
    s.write("data.input", r#"{"ts":"1000","symbol":"A","price":1}"#);
    let (_, victim_toml) = victim();
    s.write("victim.toml", &victim_toml);
    // 100 days = 8 640 000 000 ms: as many windows per event at a 1 ms slide, over the
    // default budget of 10 000; the smallest slide within it is 8.64e9 / 1e4 ms = 864 s.
    // 100 years of 365.25 days = 3 155 760 000 000 ms, at least 315 576 000 ms = 315576s.
    let cases = [
        (
            "huge_sliding",
            "kind = \"sliding\"\nsize = \"100d\"\nslide = \"1ms\"",
            "window.slide (1ms) puts every event in 8640000000 windows (window.size 100d / window.slide 1ms), over the limit of 10000 (plugin.limits.max_windows_per_event); use a larger slide, at least 864s and dividing the size, or raise plugin.limits.max_windows_per_event",
        ),
        (
            "huge_cumulative",
            "kind = \"cumulative\"\nsize = \"100y\"\nstep = \"1ms\"",
            "window.step (1ms) puts every event in 3155760000000 windows (window.size 36525d / window.step 1ms), over the limit of 10000 (plugin.limits.max_windows_per_event); use a larger step, at least 315576s and dividing the size, or raise plugin.limits.max_windows_per_event",
        ),
    ];
    for (name, window, message) in cases {
        let file = format!("{name}.toml");
        s.write(
            &file,
            &attacker_toml(name, "data.input", "epoch_ms", window, ""),
        );
        let err = serve_refuses(
            &s,
            &format!(
                "{}{}",
                tenant_toml("acme", ACME, &[&file]),
                tenant_toml("globex", GLOBEX, &["victim.toml"])
            ),
        );
        assert!(err.contains(message), "weir serve, {name}:\n{err}");
        let out = support::run_weir(&["check", s.path(&file).to_str().expect("utf-8 path")]);
        let check_err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "weir check accepted {name}");
        assert!(
            check_err.contains(message),
            "weir check, {name}:\n{check_err}"
        );
    }
    // A tenant ceiling below the pipeline's own budget is enforced when the pipeline is
    // built: 1 h by 1 s is 3 600 windows, over a ceiling of 1 000.
    s.write(
        "hourly.toml",
        &attacker_toml(
            "hourly",
            "data.input",
            "epoch_ms",
            "kind = \"sliding\"\nsize = \"1h\"\nslide = \"1s\"",
            "",
        ),
    );
    let err = serve_refuses(
        &s,
        &format!(
            "{}[tenant.limits]\nmax_windows_per_event = 1000\n\n{}",
            tenant_toml("acme", ACME, &["hourly.toml"]),
            tenant_toml("globex", GLOBEX, &["victim.toml"])
        ),
    );
    assert!(
        err.contains("window.slide (1s) puts every event in 3600 windows (window.size 1h / window.slide 1s), over the limit of 1000 (the tenant's limits.max_windows_per_event)"),
        "{err}"
    );
}

#[test]
fn max_open_windows_is_enforced_per_window_created() {
    let _serial = serial();
    let s = Scratch::new();
    // Sliding 3 s by 1 s, delay 0, max_open_windows 5. Worked out event by event:
    //  A@1000 (1): opens [-1000,2000) [0,3000) [1000,4000): 3 open.
    //  B@1000 (2): would open 3 more, 6 > 5: dead letter, B stores nothing.
    //  A@1500 (3): joins A's 3 windows.
    //  C@1200 (4): would open 3, 6 > 5: dead letter.
    //  A@2100 (5): opens [2000,5000): 4 open; W = 2100 fires and purges [-1000,2000): 3.
    //  B@2200 (6): would open 3 (B has none), 6 > 5: dead letter.
    //  A@3000 (7): opens [3000,6000): 4; W = 3000 fires and purges [0,3000): 3.
    //  B@3100 (8): would open 3, dead letter.
    let data = [
        ("A", 1000, 1.0),
        ("B", 1000, 2.0),
        ("A", 1500, 3.0),
        ("C", 1200, 4.0),
        ("A", 2100, 5.0),
        ("B", 2200, 6.0),
        ("A", 3000, 7.0),
        ("B", 3100, 8.0),
    ];
    let lines: Vec<String> = data
        .iter()
        .map(|(k, ts, p)| format!(r#"{{"ts":"{ts}","symbol":"{k}","price":{p}}}"#))
        .collect();
    s.write("capped.input", &lines.join("\n"));
    s.write(
        "capped.toml",
        &attacker_toml(
            "capped",
            "capped.input",
            "epoch_ms",
            "kind = \"sliding\"\nsize = \"3s\"\nslide = \"1s\"",
            "max_open_windows = 5",
        ),
    );
    let _serve = run_beside_victim(&s, &["capped.toml"]);
    assert_eq!(
        rows(&s, "capped"),
        vec![
            row("A", -1000, 2000, &[1.0, 3.0]),
            row("A", 0, 3000, &[1.0, 3.0, 5.0]),
            row("A", 1000, 4000, &[1.0, 3.0, 5.0, 7.0]),
            row("A", 2000, 5000, &[5.0, 7.0]),
            row("A", 3000, 6000, &[7.0]),
        ],
        "only A's events, B and C never half-placed"
    );
    let dead = dead_letters(&s, "capped");
    let offsets: Vec<i64> = dead.iter().filter_map(|d| d["offset"].as_i64()).collect();
    assert_eq!(offsets, [2, 4, 6, 8], "{dead:?}");
    for d in &dead {
        let reason = d["reason"].as_str().expect("reason");
        assert!(
            reason.contains("would open 3 new windows with 3 open, over max_open_windows 5"),
            "{reason}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Hole 3: a runaway watermark
// ---------------------------------------------------------------------------------------

#[test]
fn a_year_9999_event_does_not_make_later_events_late() {
    let _serial = serial();
    let s = Scratch::new();
    // 2024-01-22T00:00:00Z = GEN_START_MS. Valid: +1000 (1), +1500 (2), +2500 (4), +3200 (8).
    // Between them: the last ms of 9999, and 8 days ahead (over the default 7d max_future).
    // First of all, a year-9999 record before there is any watermark: wall clock stands in.
    s.write(
        "runaway.input",
        &[
            r#"{"ts":"9999-06-01T00:00:00Z","symbol":"A","price":100}"#,
            r#"{"ts":"2024-01-22T00:00:01Z","symbol":"A","price":1}"#,
            r#"{"ts":"2024-01-22T00:00:01.500Z","symbol":"A","price":2}"#,
            r#"{"ts":"9999-12-31T23:59:59.999Z","symbol":"A","price":100}"#,
            r#"{"ts":"2024-01-30T00:00:02Z","symbol":"A","price":100}"#,
            r#"{"ts":"2024-01-22T00:00:02.500Z","symbol":"A","price":4}"#,
            r#"{"ts":"2024-01-22T00:00:03.200Z","symbol":"A","price":8}"#,
        ]
        .join("\n"),
    );
    s.write(
        "runaway.toml",
        &attacker_toml(
            "runaway",
            "runaway.input",
            "rfc3339",
            "kind = \"tumbling\"\nsize = \"1s\"",
            "",
        ),
    );
    let _serve = run_beside_victim(&s, &["runaway.toml"]);
    let t = GEN_START_MS;
    assert_eq!(
        rows(&s, "runaway"),
        vec![
            row("A", t + 1000, t + 2000, &[1.0, 2.0]),
            row("A", t + 2000, t + 3000, &[4.0]),
            row("A", t + 3000, t + 4000, &[8.0]),
        ]
    );
    assert!(
        s.read_jsonl("runaway.late.jsonl").is_empty(),
        "no event is late"
    );
    let dead = dead_letters(&s, "runaway");
    let mut reasons: Vec<&str> = dead.iter().filter_map(|d| d["reason"].as_str()).collect();
    assert!(!reasons.is_empty(), "no dead letters");
    let first = reasons.remove(0);
    assert!(
        first.starts_with(
            "event time 9999-06-01T00:00:00.000Z is more than watermark.max_future (7d) ahead of wall clock ("
        ) && first.ends_with("); fix the record's time, or raise watermark.max_future"),
        "{first}"
    );
    // W after +1500 is +1500 (delay 0): 2024-01-22T00:00:01.500Z.
    assert_eq!(
        reasons,
        [
            "event time 9999-12-31T23:59:59.999Z is more than watermark.max_future (7d) ahead of the watermark (2024-01-22T00:00:01.500Z); fix the record's time, or raise watermark.max_future",
            "event time 2024-01-30T00:00:02.000Z is more than watermark.max_future (7d) ahead of the watermark (2024-01-22T00:00:01.500Z); fix the record's time, or raise watermark.max_future",
        ]
    );
}

#[test]
fn a_far_past_first_record_does_not_decide_where_event_time_starts() {
    let _serial = serial();
    let s = Scratch::new();
    // First, epoch 0 (the zero of a missing time); then a record in the year 1000 (late once
    // the watermark is in 2024: not an anchor any more), then 2024-01-22 (GEN_START_MS):
    // +1000 (1), +1500 (2), +2500 (4), +3200 (8). Before the fix, epoch 0 anchored the
    // watermark and every 2024 record was "more than watermark.max_future ahead" of it.
    s.write(
        "past.input",
        &[
            r#"{"ts":"1970-01-01T00:00:00Z","symbol":"A","price":100}"#,
            r#"{"ts":"2024-01-22T00:00:01Z","symbol":"A","price":1}"#,
            r#"{"ts":"2024-01-22T00:00:01.500Z","symbol":"A","price":2}"#,
            r#"{"ts":"1000-01-01T00:00:00Z","symbol":"A","price":100}"#,
            r#"{"ts":"2024-01-22T00:00:02.500Z","symbol":"A","price":4}"#,
            r#"{"ts":"2024-01-22T00:00:03.200Z","symbol":"A","price":8}"#,
        ]
        .join("\n"),
    );
    s.write(
        "past.toml",
        &attacker_toml(
            "past",
            "past.input",
            "rfc3339",
            "kind = \"tumbling\"\nsize = \"1s\"",
            "",
        ),
    );
    let _serve = run_beside_victim(&s, &["past.toml"]);
    let t = GEN_START_MS;
    assert_eq!(
        rows(&s, "past"),
        vec![
            row("A", t + 1000, t + 2000, &[1.0, 2.0]),
            row("A", t + 2000, t + 3000, &[4.0]),
            row("A", t + 3000, t + 4000, &[8.0]),
        ]
    );
    // The year-1000 record came after the watermark was in 2024: late, not an anchor.
    let late = s.read_jsonl("past.late.jsonl");
    assert_eq!(late.len(), 1, "{late:?}");
    let dead = dead_letters(&s, "past");
    let reasons: Vec<&str> = dead.iter().filter_map(|d| d["reason"].as_str()).collect();
    // Epoch 0 is more than 7 days behind all 4 records after it that are in the batch
    // (the year-1000 one is behind it, so it agrees with neither).
    assert_eq!(
        reasons,
        [
            "event time 1970-01-01T00:00:00.000Z is more than watermark.max_future (7d) behind 4 of the 5 records read after it; as the first record it would anchor the watermark there, so it is left out: fix the record's time"
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Smaller items: a CSV whose first lines are blank, signed-zero float keys
// ---------------------------------------------------------------------------------------

#[test]
fn blank_lines_before_a_csv_header_and_signed_zero_keys() {
    let _serial = serial();
    let s = Scratch::new();
    // Two blank lines, then the header, then A@1000 (1), A@1500 (2), A@2500 (4).
    s.write(
        "blank.input",
        "\n  \r\nts,symbol,price\n1000,A,1\n1500,A,2\n2500,A,4\n",
    );
    let csv = attacker_toml(
        "blank",
        "blank.input",
        "epoch_ms",
        "kind = \"tumbling\"\nsize = \"1s\"",
        "",
    )
    .replace(
        "path = \"blank.input\"",
        "path = \"blank.input\"\nformat = \"csv\"",
    );
    s.write("blank.toml", &csv);
    // Keyed by a float: 0.0, -0.0 and 0 are one group, 1.5 another, all in [1000,2000).
    s.write(
        "zeros.input",
        &[
            r#"{"ts":"1000","level":0.0,"price":1}"#,
            r#"{"ts":"1100","level":-0.0,"price":2}"#,
            r#"{"ts":"1200","level":1.5,"price":16}"#,
            r#"{"ts":"1300","level":0,"price":4}"#,
            r#"{"ts":"1400","level":"-0","price":8}"#,
        ]
        .join("\n"),
    );
    let zeros = attacker_toml(
        "zeros",
        "zeros.input",
        "epoch_ms",
        "kind = \"tumbling\"\nsize = \"1s\"",
        "",
    )
    .replace(
        "key = [\"symbol\"]\nfields = { symbol = \"string\", price = \"f64\" }",
        "key = [\"level\"]\nfields = { level = \"f64\", price = \"f64\" }",
    );
    s.write("zeros.toml", &zeros);
    let _serve = run_beside_victim(&s, &["blank.toml", "zeros.toml"]);

    assert_eq!(
        rows(&s, "blank"),
        vec![
            row("A", 1000, 2000, &[1.0, 2.0]),
            row("A", 2000, 3000, &[4.0]),
        ],
        "the header is the first non-blank line"
    );
    assert!(dead_letters(&s, "blank").is_empty());
    let mut groups: Vec<(f64, i64, f64)> = s
        .read_jsonl("zeros.jsonl")
        .iter()
        .map(|r| {
            (
                r["level"].as_f64().expect("level"),
                r["count"].as_i64().expect("count"),
                r["sum"].as_f64().expect("sum"),
            )
        })
        .collect();
    groups.sort_by(|a, b| a.0.total_cmp(&b.0));
    // The zero group's key is written as whichever zero came first (0.0); it holds the
    // prices 1, 2, 4 and 8.
    assert_eq!(groups, [(0.0, 4, 15.0), (1.5, 1, 16.0)]);
    assert!(dead_letters(&s, "zeros").is_empty());
}

#[test]
fn a_live_source_compares_event_time_to_wall_clock() {
    use std::io::Write;
    let _serial = serial();
    let s = Scratch::new();
    let now = chrono::Utc::now().timestamp_millis();
    let hour = 3_600_000;
    // One event an hour ago (kept), one 8 days ahead of wall clock (over the default 7d),
    // one 6 days ahead (within it). Tumbling 1 h windows, aligned to the hour.
    let (past, far, near) = (now - hour, now + 8 * 24 * hour, now + 6 * 24 * hour);
    let toml = attacker_toml(
        "live",
        "unused",
        "epoch_ms",
        "kind = \"tumbling\"\nsize = \"1h\"",
        "",
    )
    .replace("kind = \"file\"\npath = \"unused\"", "kind = \"stdin\"");
    let pipeline = s.write("live.toml", &toml);
    let mut child = support::weir()
        .args(["run", "--no-progress"])
        .arg(&pipeline)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weir run starts");
    let input = format!(
        "{{\"ts\":{past},\"symbol\":\"A\",\"price\":1}}\n{{\"ts\":{far},\"symbol\":\"A\",\"price\":100}}\n{{\"ts\":{near},\"symbol\":\"A\",\"price\":2}}\n"
    );
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("weir run ends");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let start = |t: i64| t - t.rem_euclid(hour);
    assert_eq!(
        rows(&s, "live"),
        vec![
            row("A", start(past), start(past) + hour, &[1.0]),
            row("A", start(near), start(near) + hour, &[2.0]),
        ]
    );
    let dead = dead_letters(&s, "live");
    assert_eq!(dead.len(), 1, "{dead:?}");
    let reason = dead[0]["reason"].as_str().expect("reason");
    assert!(
        reason.contains("is more than watermark.max_future (7d) ahead of wall clock"),
        "{reason}"
    );
    assert_eq!(dead[0]["offset"], 2);
}
