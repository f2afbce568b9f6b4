//! Event time on Kafka, against a real broker (`tansu` on 127.0.0.1, `support::kafka`):
//! the record's own timestamp as event time, and per-partition watermarks on a live topic
//! (`stop = "never"`, a `weir run` child killed at the end): a quiet partition stops holding
//! the watermark back after `idle_timeout`, a lagging one holds it back while it delivers.
//! Under `weir serve`, a paused pipeline keeps its consumer in the group and loses nothing.
//!
//! Messages are sent to chosen partitions with chosen timestamps by an rdkafka producer.
//! Every wait is bounded; the child process is killed when its guard drops.

mod support;

use std::collections::BTreeSet;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use support::kafka::Broker;
use support::{Scratch, run_weir, wasm};

/// 2024-01-22T00:00:00Z in epoch ms: every event time below is an offset from it.
const T0: i64 = 1_705_881_600_000;

/// A pipeline over `source` (a `[source]` table's keys) with event time from the Kafka
/// record: tumbling 2 s windows, no watermark delay, `[watermark]` extra keys `watermark`,
/// `stats` on `price`, results and dead letters to files.
fn pipeline(name: &str, source: &str, watermark: &str) -> String {
    format!(
        r#"name = "{name}"
[source]
{source}
[schema]
timestamp = {{ from = "kafka" }}
key = ["symbol"]
fields = {{ symbol = "string", price = "f64" }}
[window]
kind = "tumbling"
size = "2s"
[watermark]
delay = "0s"
{watermark}
[plugin]
path = "{plugin}"
params = {{ field = "price" }}
[sink]
kind = "file"
path = "{name}.jsonl"
mode = "truncate"
[dead_letter]
kind = "file"
path = "{name}.dead.jsonl"
mode = "truncate"
"#,
        plugin = wasm("stats").display()
    )
}

fn kafka_source(brokers: &str, topic: &str, stop: &str) -> String {
    format!(
        "kind = \"kafka\"\nbrokers = \"{brokers}\"\ntopics = [\"{topic}\"]\ngroup_id = \"{topic}-group\"\nstop = \"{stop}\""
    )
}

fn producer(brokers: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("producer")
}

/// Sends messages `(partition, timestamp, value)` to `topic` and waits for the broker.
fn send(p: &BaseProducer, topic: &str, messages: &[(i32, Option<i64>, &str)]) {
    for &(partition, ts, value) in messages {
        let mut record = BaseRecord::<(), str>::to(topic)
            .partition(partition)
            .payload(value);
        if let Some(ts) = ts {
            record = record.timestamp(ts);
        }
        p.send(record).map_err(|(e, _)| e).expect("queued");
    }
    p.flush(Duration::from_secs(10)).expect("delivered");
}

/// A tick of `symbol` at `price`, without any time in it.
fn tick(symbol: &str, price: f64) -> String {
    format!(r#"{{"symbol":"{symbol}","price":{price:?}}}"#)
}

/// A result row as (symbol, window start, window end, count, sum).
type Row = (String, String, String, i64, f64);

/// The complete lines of a JSON-lines file being written, as JSON objects (a last line not
/// yet terminated is left out).
fn complete_lines(s: &Scratch, name: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(s.path(name)).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// The rows of a result file.
fn rows(s: &Scratch, name: &str) -> BTreeSet<(String, String, String, i64, String)> {
    complete_lines(s, name)
        .iter()
        .map(|r| {
            (
                r["symbol"].as_str().unwrap_or_default().to_string(),
                r["window_start"].as_str().unwrap_or_default().to_string(),
                r["window_end"].as_str().unwrap_or_default().to_string(),
                r["count"].as_i64().unwrap_or(-1),
                format!("{:?}", r["sum"].as_f64().unwrap_or(f64::NAN)),
            )
        })
        .collect()
}

/// Rows as [`rows`] gives them.
fn expected(rows: &[Row]) -> BTreeSet<(String, String, String, i64, String)> {
    rows.iter()
        .map(|(k, a, b, c, s)| (k.clone(), a.clone(), b.clone(), *c, format!("{s:?}")))
        .collect()
}

/// The row of `symbol` for the window [`from` s, `to` s) after [`T0`].
fn row(symbol: &str, from: u32, to: u32, count: i64, sum: f64) -> Row {
    let at = |s: u32| format!("2024-01-22T00:00:{s:02}.000Z");
    (symbol.to_string(), at(from), at(to), count, sum)
}

/// Waits at most `limit` for `done` to hold, calling `meanwhile` between two looks; panics
/// with `what` when it does not.
fn wait_until(
    limit: Duration,
    what: &str,
    mut done: impl FnMut() -> bool,
    mut meanwhile: impl FnMut(),
) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        meanwhile();
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A `weir run` child, killed when dropped.
struct Running(Child);

impl Running {
    fn start(s: &Scratch, name: &str) -> Running {
        let file = s.path(&format!("{name}.toml"));
        let child = support::weir()
            .args(["run", "--no-progress", "--parallelism", "1"])
            .arg(file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("weir run starts");
        Running(child)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn event_time_from_kafka_is_each_record_s_timestamp() {
    let broker = Broker::start();
    let brokers = broker.brokers();
    let s = Scratch::new();
    weir::produce::create_topic(&brokers, "stamped", 1).expect("topic");
    let p = producer(&brokers);
    // A `ts` member is an ordinary unknown member now: the record's timestamp counts.
    let with_ts = r#"{"symbol":"A","price":8.0,"ts":"1999-01-01T00:00:00Z"}"#;
    let (a1, b2, a3, a5, b4, a7) = (
        tick("A", 1.0),
        tick("B", 2.0),
        tick("A", 3.0),
        tick("A", 5.0),
        tick("B", 4.0),
        tick("A", 7.0),
    );
    // Kafka's "no timestamp" is -1.
    let c9 = tick("C", 9.0);
    send(
        &p,
        "stamped",
        &[
            (0, Some(T0), &a1),
            (0, Some(T0 + 500), &b2),
            (0, Some(T0 + 1_500), &a3),
            (0, Some(T0 + 1_999), with_ts),
            (0, Some(T0 + 2_000), &a5),
            (0, Some(T0 + 3_999), &b4),
            (0, Some(T0 + 4_100), &a7),
            (0, Some(-1), &c9),
        ],
    );
    s.write(
        "stamped.toml",
        &pipeline("stamped", &kafka_source(&brokers, "stamped", "at-end"), ""),
    );
    let out = run_weir(&[
        "run",
        "--no-progress",
        &s.path("stamped.toml").to_string_lossy(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // [0, 2 s): A at 0 (1), 1.5 s (3) and 1.999 s (8); B at 0.5 s (2). [2 s, 4 s): A at
    // 2 s (5), B at 3.999 s (4). [4 s, 6 s): A at 4.1 s (7), fired at the end of input.
    assert_eq!(
        rows(&s, "stamped.jsonl"),
        expected(&[
            row("A", 0, 2, 3, 12.0),
            row("B", 0, 2, 1, 2.0),
            row("A", 2, 4, 1, 5.0),
            row("B", 2, 4, 1, 4.0),
            row("A", 4, 6, 1, 7.0),
        ])
    );
    // The message without a timestamp, the eighth: a dead letter that says why.
    let dead = s.read_jsonl("stamped.dead.jsonl");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(
        (dead[0]["origin"].as_str(), dead[0]["offset"].as_i64()),
        (Some("stamped/0"), Some(7))
    );
    let reason = dead[0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("the record has no timestamp"),
        "{reason}"
    );
}

#[test]
fn a_quiet_partition_stops_holding_the_watermark_after_idle_timeout() {
    let broker = Broker::start();
    let brokers = broker.brokers();
    let s = Scratch::new();
    weir::produce::create_topic(&brokers, "quiet", 2).expect("topic");
    let p = producer(&brokers);
    // Long enough for the start, the group's join and the first firings, so that the
    // hold-back below is always checked.
    let idle = Duration::from_secs(15);
    s.write(
        "quiet.toml",
        &pipeline(
            "quiet",
            &kafka_source(&brokers, "quiet", "never"),
            "idle_timeout = \"15s\"",
        ),
    );
    // Partition 0 (A) reaches 4.5 s and goes quiet; partition 1 (B) reaches 5 s.
    let (a1, a2, b10, b20) = (
        tick("A", 1.0),
        tick("A", 2.0),
        tick("B", 10.0),
        tick("B", 20.0),
    );
    send(
        &p,
        "quiet",
        &[
            (0, Some(T0 + 500), &a1),
            (0, Some(T0 + 4_500), &a2),
            (1, Some(T0 + 1_000), &b10),
            (1, Some(T0 + 5_000), &b20),
        ],
    );
    let quiet_since = Instant::now();
    let _run = Running::start(&s, "quiet");
    // W = min(4.5 s, 5 s): [0, 2 s) fires, [2 s, 4 s) holds nothing, [4 s, 6 s) waits.
    let first = expected(&[row("A", 0, 2, 1, 1.0), row("B", 0, 2, 1, 10.0)]);
    wait_until(
        Duration::from_secs(60),
        "the windows both partitions passed fire",
        || rows(&s, "quiet.jsonl") == first,
        || {},
    );
    // B moves on to 7 s; then a message that is not JSON, whose dead letter shows that B's
    // tick before it was read. While A is not idle, W stays at 4.5 s.
    let b30 = tick("B", 30.0);
    send(
        &p,
        "quiet",
        &[
            (1, Some(T0 + 7_000), &b30),
            (1, Some(T0 + 7_000), "{marker"),
        ],
    );
    wait_until(
        Duration::from_secs(30),
        "the marker reaches the dead letter",
        || !complete_lines(&s, "quiet.dead.jsonl").is_empty(),
        || {},
    );
    assert!(
        quiet_since.elapsed() < idle,
        "the marker was read {:?} after A went quiet, past idle_timeout ({idle:?}): the hold-back cannot be checked on a machine this slow",
        quiet_since.elapsed()
    );
    assert_eq!(
        rows(&s, "quiet.jsonl"),
        first,
        "A, not idle yet, holds [4 s, 6 s) back"
    );
    // B keeps delivering, a tick every 250 ms from 7.25 s on: once A is silent for 15 s, W
    // follows B alone and [4 s, 6 s) fires: A at 4.5 s (2), B at 5 s (20). [6 s, 8 s)
    // fires too once B passes 8 s; its rows are not checked here.
    let mut at = T0 + 7_000;
    let filler = tick("B", 0.0);
    wait_until(
        Duration::from_secs(60),
        "[4 s, 6 s) fires through A's idleness",
        || {
            let got = rows(&s, "quiet.jsonl");
            let want = expected(&[row("A", 4, 6, 1, 2.0), row("B", 4, 6, 1, 20.0)]);
            want.is_subset(&got)
        },
        || {
            at += 250;
            send(&p, "quiet", &[(1, Some(at), &filler)]);
        },
    );
    // A's last tick was read after it was produced: it cannot have gone idle sooner.
    assert!(quiet_since.elapsed() >= idle);
}

#[test]
fn a_lagging_partition_holds_the_watermark_back_until_it_catches_up() {
    let broker = Broker::start();
    let brokers = broker.brokers();
    let s = Scratch::new();
    weir::produce::create_topic(&brokers, "lag", 2).expect("topic");
    let p = producer(&brokers);
    // Idleness far beyond the test's waits: B, delivering, is never idle here.
    let idle = Duration::from_secs(120);
    s.write(
        "lag.toml",
        &pipeline(
            "lag",
            &kafka_source(&brokers, "lag", "never"),
            "idle_timeout = \"120s\"",
        ),
    );
    let started = Instant::now();
    // Partition 0 (A) is ahead, at 10 s; partition 1 (B) lags at 1 s, then a marker.
    let (a1, a2, a3, a4) = (
        tick("A", 1.0),
        tick("A", 2.0),
        tick("A", 3.0),
        tick("A", 4.0),
    );
    let (b10, b20) = (tick("B", 10.0), tick("B", 20.0));
    send(
        &p,
        "lag",
        &[
            (0, Some(T0 + 500), &a1),
            (0, Some(T0 + 2_500), &a2),
            (0, Some(T0 + 4_500), &a3),
            (0, Some(T0 + 10_000), &a4),
            (1, Some(T0 + 200), &b10),
            (1, Some(T0 + 1_000), &b20),
            (1, Some(T0 + 1_000), "{marker 1"),
        ],
    );
    let _run = Running::start(&s, "lag");
    let scratch = &s;
    let dead = |n: usize| move || complete_lines(scratch, "lag.dead.jsonl").len() >= n;
    wait_until(Duration::from_secs(60), "marker 1 is read", dead(1), || {});
    // W = min(10 s, 1 s) = 1 s: nothing has fired.
    assert!(started.elapsed() < idle);
    assert!(
        rows(&s, "lag.jsonl").is_empty(),
        "B at 1 s holds every window back"
    );
    // B reaches 2.5 s: W = 2.5 s, and [0, 2 s) fires: A at 0.5 s (1); B at 0.2 s (10) and
    // 1 s (20). [2 s, 4 s) still waits for B.
    let b30 = tick("B", 30.0);
    send(
        &p,
        "lag",
        &[
            (1, Some(T0 + 2_500), &b30),
            (1, Some(T0 + 2_500), "{marker 2"),
        ],
    );
    let first = expected(&[row("A", 0, 2, 1, 1.0), row("B", 0, 2, 2, 30.0)]);
    wait_until(Duration::from_secs(30), "marker 2 is read", dead(2), || {});
    assert!(started.elapsed() < idle);
    assert_eq!(rows(&s, "lag.jsonl"), first, "[2 s, 4 s) waits for B");
    // B reaches 4.2 s: [2 s, 4 s) fires: A at 2.5 s (2), B at 2.5 s (30). [4 s, 6 s) (A at
    // 4.5 s, B at 4.2 s) waits.
    let b40 = tick("B", 40.0);
    send(
        &p,
        "lag",
        &[
            (1, Some(T0 + 4_200), &b40),
            (1, Some(T0 + 4_200), "{marker 3"),
        ],
    );
    let second = expected(&[
        row("A", 0, 2, 1, 1.0),
        row("B", 0, 2, 2, 30.0),
        row("A", 2, 4, 1, 2.0),
        row("B", 2, 4, 1, 30.0),
    ]);
    wait_until(Duration::from_secs(30), "marker 3 is read", dead(3), || {});
    assert!(started.elapsed() < idle);
    assert_eq!(rows(&s, "lag.jsonl"), second);
}

#[test]
fn a_paused_pipeline_under_serve_keeps_its_group_and_resumes_where_it_was() {
    use support::serve::{ACME, Serve, serial, tenant_toml};
    use weir::serve::control::PipelineState;
    let _serial = serial();
    let broker = Broker::start();
    let brokers = broker.brokers();
    let s = Scratch::new();
    weir::produce::create_topic(&brokers, "held", 2).expect("topic");
    let p = producer(&brokers);
    // A group member that does not poll for 7 s is evicted (librdkafka leaves the group and
    // says "maximum poll interval exceeded"); the pause below lasts 10 s.
    let source = format!(
        "{}\n[source.kafka.options]\n\"session.timeout.ms\" = \"6000\"\n\"max.poll.interval.ms\" = \"7000\"",
        kafka_source(&brokers, "held", "never")
    );
    s.write("held.toml", &pipeline("held", &source, ""));
    let serve = Serve::start(&s, &tenant_toml("acme", ACME, &["held.toml"]));
    let acme = serve.client(ACME);
    let (a1, b2, a3, b4) = (
        tick("A", 1.0),
        tick("B", 2.0),
        tick("A", 3.0),
        tick("B", 4.0),
    );
    send(
        &p,
        "held",
        &[
            (0, Some(T0 + 500), &a1),
            (1, Some(T0 + 700), &b2),
            (0, Some(T0 + 2_500), &a3),
            (1, Some(T0 + 2_600), &b4),
        ],
    );
    // W = min(2.5 s, 2.6 s): [0, 2 s) fires.
    let first = expected(&[row("A", 0, 2, 1, 1.0), row("B", 0, 2, 1, 2.0)]);
    wait_until(
        Duration::from_secs(60),
        "[0, 2 s) fires",
        || rows(&s, "held.jsonl") == first,
        || {},
    );
    let paused = acme.pause("acme", "held").expect("pause");
    assert_eq!(paused.state, PipelineState::Paused);
    let read = paused.counters.events_read;
    let (a5, b6) = (tick("A", 5.0), tick("B", 6.0));
    send(
        &p,
        "held",
        &[(0, Some(T0 + 4_500), &a5), (1, Some(T0 + 4_600), &b6)],
    );
    std::thread::sleep(Duration::from_secs(10));
    let view = serve.view("acme", "held");
    assert_eq!(view.state, PipelineState::Paused);
    assert_eq!(
        view.counters.events_read, read,
        "a paused pipeline reads nothing"
    );
    assert_eq!(rows(&s, "held.jsonl"), first);
    acme.resume("acme", "held").expect("resume");
    // The ticks produced during the pause are read: W = min(4.5 s, 4.6 s), [2 s, 4 s) fires
    // with A at 2.5 s (3) and B at 2.6 s (4), once, and nothing before it again.
    let second = expected(&[
        row("A", 0, 2, 1, 1.0),
        row("B", 0, 2, 1, 2.0),
        row("A", 2, 4, 1, 3.0),
        row("B", 2, 4, 1, 4.0),
    ]);
    wait_until(
        Duration::from_secs(30),
        "[2 s, 4 s) fires after the resume",
        || rows(&s, "held.jsonl") == second,
        || {},
    );
    assert_eq!(complete_lines(&s, "held.jsonl").len(), 4, "no row twice");
    // An evicted consumer rejoins and reads again from the committed offsets: more.
    assert_eq!(
        serve.view("acme", "held").counters.events_read,
        read + 2,
        "the two ticks of the pause, and nothing read twice"
    );
    let log = serve.stderr().to_lowercase();
    assert!(
        !log.contains("poll interval"),
        "the consumer was evicted while paused:\n{log}"
    );
}
