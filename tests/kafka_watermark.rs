//! Event time on Kafka, against a real broker (`tansu` on 127.0.0.1, `support::kafka`):
//! the record's own timestamp as event time.
//!
//! Messages are sent to chosen partitions with chosen timestamps by an rdkafka producer.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

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
