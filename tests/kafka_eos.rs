//! Exactly-once to a Kafka sink (`[sink] exactly_once = true`), against librdkafka's mock
//! cluster: it lives in this test process and listens on 127.0.0.1, so a child `weir run`
//! reaches it like any broker (the broker the other Kafka tests use has no transactions).
//!
//! The mock cluster (librdkafka 2.12) answers the whole transaction protocol
//! (InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit, EndTxn) but keeps
//! none of its effects: EndTxn writes no commit or abort marker and fetches report no
//! aborted transaction (a `read_committed` consumer sees aborted rows), TxnOffsetCommit
//! stores no offset (a restart replays from `start`), and a second producer with the same
//! `transactional.id` gets a producer id of its own instead of fencing the first. The first
//! test pins that down; the others check what it leaves checkable: Weir's transactional
//! runs start, commit and restart after SIGKILL, and across kills the read-committed topic,
//! deduplicated by row id, holds exactly the rows of an uninterrupted run. That no
//! duplicate reaches a read-committed consumer rests on a broker doing what the mock skips.
//! The mock also keeps only the last 5 MiB (or 100 000 batches) of each partition.

mod support;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use support::{Scratch, run_weir, wasm};

/// A mock cluster of one broker with these topics (name, partitions).
fn cluster(topics: &[(&str, i32)]) -> MockCluster<'static, DefaultProducerContext> {
    let mock = MockCluster::new(1).expect("mock cluster");
    for (topic, partitions) in topics {
        mock.create_topic(topic, *partitions, 1).expect("topic");
    }
    mock
}

fn transactional_producer(brokers: &str, id: &str) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("transactional.id", id)
        .create()
        .expect("producer")
}

/// Every message of every partition of `topic` read with `read_committed`, as (value,
/// `weir-row-id` header), from the beginning until none arrives for `quiet`.
fn drain_committed(brokers: &str, topic: &str, quiet: Duration) -> Vec<(String, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "test-drain")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .expect("partition");
        }
    }
    consumer.assign(&tpl).expect("assign");
    let mut got = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < quiet {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        last = Instant::now();
        let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
        let id = m
            .headers()
            .and_then(|h| {
                h.iter()
                    .find(|h| h.key == "weir-row-id")
                    .map(|h| text(h.value))
            })
            .unwrap_or_default();
        got.push((text(m.payload()), id));
    }
    got
}

#[test]
fn the_mock_cluster_runs_transactions_but_keeps_neither_aborts_nor_transactional_offsets() {
    let mock = cluster(&[("in", 2), ("out", 1)]);
    let brokers = mock.bootstrap_servers();
    let wait = Duration::from_secs(10);
    // The group whose offsets the transaction commits, as a consume-transform-produce
    // loop's consumer has it.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "probe")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let group = consumer.group_metadata().expect("group metadata");
    let first = transactional_producer(&brokers, "probe-tx");
    first.init_transactions(wait).expect("init_transactions");
    // One committed transaction: row "a" and offset 5 of in/0.
    first.begin_transaction().expect("begin");
    first
        .send(BaseRecord::<[u8], [u8]>::to("out").payload(b"a"))
        .map_err(|(e, _)| e)
        .expect("send a");
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("in", 0, Offset::Offset(5))
        .expect("offset");
    first
        .send_offsets_to_transaction(&offsets, &group, wait)
        .expect("send_offsets_to_transaction");
    first.commit_transaction(wait).expect("commit_transaction");
    // One aborted: row "b".
    first.begin_transaction().expect("begin");
    first
        .send(BaseRecord::<[u8], [u8]>::to("out").payload(b"b"))
        .map_err(|(e, _)| e)
        .expect("send b");
    first.flush(wait).expect("b reaches the broker");
    first.abort_transaction(wait).expect("abort_transaction");
    // A second producer with the same id starts. A broker bumps the id's epoch and fences
    // the first (its next commit fails); the mock gives the second a producer id of its
    // own and lets the first go on committing.
    first.begin_transaction().expect("begin");
    first
        .send(BaseRecord::<[u8], [u8]>::to("out").payload(b"c"))
        .map_err(|(e, _)| e)
        .expect("send c");
    let second = transactional_producer(&brokers, "probe-tx");
    second
        .init_transactions(wait)
        .expect("the successor starts");
    let fenced = first.commit_transaction(wait);
    assert!(
        fenced.is_ok(),
        "the mock cluster now fences a producer's predecessor: test that a restarted run \
         fences a live one ({fenced:?})"
    );
    drop(first);
    let values: Vec<String> = drain_committed(&brokers, "out", Duration::from_secs(2))
        .into_iter()
        .map(|(v, _)| v)
        .collect();
    // A broker would show ["a", "c"] to read_committed; the mock shows the aborted row
    // "b" too. When this fails, the mock hides aborted rows: the kill test below can then
    // assert that no row id appears twice.
    assert_eq!(
        values,
        ["a", "b", "c"],
        "the mock cluster now hides aborted rows"
    );
    let mut asked = TopicPartitionList::new();
    asked.add_partition("in", 0);
    let committed = consumer
        .committed_offsets(asked, wait)
        .expect("committed offsets");
    // A broker would give offset 5; the mock stored nothing.
    let at = committed
        .find_partition("in", 0)
        .map(|p| p.offset())
        .expect("in/0");
    assert_eq!(
        at,
        Offset::Invalid,
        "the mock cluster now keeps transactional offsets"
    );
}

/// Stock ticks from a Kafka source into `sink` (a `[sink]` table's keys): sliding 3 s /
/// 1 s windows, 1 s watermark delay, `stats` on `price`.
fn pipeline(name: &str, source: &str, sink: &str) -> String {
    format!(
        r#"name = "{name}"
[source]
{source}
[schema]
timestamp = {{ field = "ts", format = "rfc3339" }}
key = ["symbol"]
fields = {{ symbol = "string", price = "f64", volume = "i64" }}
[window]
kind = "sliding"
size = "3s"
slide = "1s"
[watermark]
delay = "1s"
[plugin]
path = "{plugin}"
params = {{ field = "price" }}
[sink]
{sink}
[dead_letter]
kind = "file"
path = "{name}.dead.jsonl"
"#,
        plugin = wasm("stats").display()
    )
}

fn kafka_source(brokers: &str, topic: &str, group: &str, stop: &str) -> String {
    format!(
        "kind = \"kafka\"\nbrokers = \"{brokers}\"\ntopics = [\"{topic}\"]\ngroup_id = \"{group}\"\nstop = \"{stop}\"\ncommit_every = \"100ms\""
    )
}

fn eos_sink(brokers: &str, topic: &str) -> String {
    format!("kind = \"kafka\"\nbrokers = \"{brokers}\"\ntopic = \"{topic}\"\nexactly_once = true")
}

/// `count` ticks of `keys` symbols, 5 ms apart, written to `name` in the scratch dir and
/// sent to `topic` keyed by symbol; returns the file's text.
fn ticks(s: &Scratch, brokers: &str, topic: &str, name: &str, count: u32, keys: u32) -> String {
    let path = support::gen_ticks(s, name, count, keys)
        .to_string_lossy()
        .into_owned();
    // The mock cluster has no CreateTopics: the topic exists, `--partitions` is left out.
    let out = run_weir(&[
        "produce",
        "--brokers",
        brokers,
        "--topic",
        topic,
        "--key",
        "symbol",
        "--input",
        &path,
    ]);
    assert!(
        out.status.success(),
        "weir produce failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&path).expect("ticks")
}

/// Runs `weir run` on `name.toml` and returns its stderr, asserting it succeeded.
fn run(s: &Scratch, name: &str) -> String {
    let file = s.path(&format!("{name}.toml"));
    let out = support::weir()
        .args([
            "run",
            "--no-progress",
            "--json-summary",
            "--parallelism",
            "1",
        ])
        .arg(&file)
        .output()
        .expect("weir runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{name} failed:\n{stderr}");
    stderr
}

/// The row ids the Kafka sink gives a file run's rows (one row per window with `stats`).
fn expected_by_id(pipeline: &str, rows: &str) -> BTreeMap<String, String> {
    rows.lines()
        .map(|row| {
            let r: serde_json::Value = serde_json::from_str(row).expect("a JSON row");
            let id = format!(
                "{pipeline}/{}/{}/{}/0/0",
                r["symbol"].as_str().expect("symbol"),
                r["window_start"].as_str().expect("start"),
                r["window_end"].as_str().expect("end")
            );
            (id, row.to_string())
        })
        .collect()
}

#[test]
fn killed_runs_leave_a_read_committed_topic_that_deduplicated_equals_an_uninterrupted_run() {
    // Six partitions: the mock keeps 5 MiB of each, and drops older messages past it.
    let mock = cluster(&[("ticks", 6), ("out", 1)]);
    let brokers = mock.bootstrap_servers();
    let s = Scratch::new();
    // 24 keys: every partition gets ticks, so the watermark moves and windows fire (and
    // commit) before each kill.
    ticks(&s, &brokers, "ticks", "ticks.jsonl", 100_000, 24);
    s.write(
        "eos.toml",
        &pipeline(
            "eos",
            &kafka_source(&brokers, "ticks", "eos", "at-end"),
            &eos_sink(&brokers, "out"),
        ),
    );
    let file = s.path("eos.toml").to_string_lossy().into_owned();
    // Runs killed with SIGKILL 0 to 0.5 s after they wrote their first rows (a fixed
    // pseudo-random sequence), mid-transaction, until four were killed before their end;
    // each next run starts its producer with the same transactional.id, which aborts the
    // open one.
    let mut seed: u64 = 0xe05;
    let mut kills = 0;
    let mut tries = 0;
    while kills < 4 {
        tries += 1;
        assert!(tries < 20, "runs ended before they could be killed");
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let after = Duration::from_millis((seed >> 33) % 500);
        let port = support::serve::free_port();
        let mut child = support::weir()
            .args([
                "run",
                "--no-progress",
                "--parallelism",
                "1",
                "--metrics-addr",
            ])
            .arg(format!("127.0.0.1:{port}"))
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("weir run starts");
        let deadline = Instant::now() + Duration::from_secs(60);
        while support::serve::rows_written(port) == 0 && child.try_wait().expect("wait").is_none() {
            assert!(Instant::now() < deadline, "no rows within 60 s");
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(after);
        if child.try_wait().expect("wait").is_none() {
            assert!(
                support::serve::rows_written(port) > 0,
                "killed before it wrote a row"
            );
            child.kill().expect("SIGKILL");
            kills += 1;
        }
        child.wait().expect("reaped");
    }
    let last = support::summary(&run(&s, "eos"));
    // No offset survives in the mock: the last run, too, read every tick.
    assert_eq!(last["events_read"], 100_000);
    // The uninterrupted run: the same pipeline over the same ticks, from a file.
    s.write(
        "reference.toml",
        &pipeline(
            "eos",
            "kind = \"file\"\npath = \"ticks.jsonl\"",
            "kind = \"file\"\npath = \"reference.jsonl\"",
        ),
    );
    run(&s, "reference");
    let reference = std::fs::read_to_string(s.path("reference.jsonl")).expect("reference");
    let expected = expected_by_id("eos", &reference);
    // 100 000 ticks 5 ms apart: 500 s, about 500 windows of each of the 4 symbols.
    assert!(expected.len() > 4 * 490, "{} rows", expected.len());
    let messages = drain_committed(&brokers, "out", Duration::from_secs(3));
    let mut by_id: BTreeMap<&str, &str> = BTreeMap::new();
    for (value, id) in &messages {
        assert!(!id.is_empty(), "a result message without a row id: {value}");
        // Every copy of a row is the same row.
        let first = by_id.entry(id).or_insert(value);
        assert_eq!(first, value, "row {id} differs between copies");
    }
    assert_eq!(by_id.len(), expected.len(), "{} messages", messages.len());
    for (id, row) in &expected {
        assert_eq!(by_id.get(id.as_str()), Some(&row.as_str()), "row {id}");
    }
}

#[test]
fn an_uninterrupted_exactly_once_run_commits_every_row_once() {
    let mock = cluster(&[("ticks", 3), ("out", 1)]);
    let brokers = mock.bootstrap_servers();
    let s = Scratch::new();
    ticks(&s, &brokers, "ticks", "ticks.jsonl", 6_000, 4);
    s.write(
        "once.toml",
        &pipeline(
            "once",
            &kafka_source(&brokers, "ticks", "once", "at-end"),
            &eos_sink(&brokers, "out"),
        ),
    );
    run(&s, "once");
    s.write(
        "reference.toml",
        &pipeline(
            "once",
            "kind = \"file\"\npath = \"ticks.jsonl\"",
            "kind = \"file\"\npath = \"reference.jsonl\"",
        ),
    );
    run(&s, "reference");
    let reference = std::fs::read_to_string(s.path("reference.jsonl")).expect("reference");
    let rows: Vec<&str> = reference.lines().collect();
    // 6 000 ticks 5 ms apart over 4 symbols: 7.5 s of each, about 9 windows per symbol.
    assert!(rows.len() > 4 * 8, "{} rows", rows.len());
    let messages = drain_committed(&brokers, "out", Duration::from_secs(3));
    let values: Vec<&str> = messages.iter().map(|(v, _)| v.as_str()).collect();
    // One partition keeps the order the rows were written in: the file run's, row by row.
    assert_eq!(values, rows);
    let expected = expected_by_id("once", &reference);
    let ids: Vec<&str> = messages.iter().map(|(_, id)| id.as_str()).collect();
    let expected_ids: Vec<&str> = rows
        .iter()
        .map(|row| {
            expected
                .iter()
                .find(|(_, r)| r == row)
                .map(|(id, _)| id.as_str())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(ids, expected_ids);
}

#[test]
fn exactly_once_on_a_file_sink_is_a_config_error_naming_the_key() {
    let s = Scratch::new();
    s.write(
        "file.toml",
        &pipeline(
            "file",
            &kafka_source("127.0.0.1:9", "ticks", "g", "at-end"),
            "kind = \"file\"\npath = \"out.jsonl\"\nexactly_once = true",
        ),
    );
    let out = run_weir(&[
        "run",
        "--no-progress",
        &s.path("file.toml").to_string_lossy(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("exactly_once"), "{stderr}");
    assert!(stderr.contains("kind = \"kafka\""), "{stderr}");
}

/// Not a test: holds a mock cluster for `WEIR_MOCK_SECONDS` (default 300) with the topics
/// of `WEIR_MOCK_TOPICS` (`name:partitions,…`) and prints its bootstrap servers, so that a
/// release `weir produce` and `weir run` can be timed against it (BENCHMARKS.md's
/// exactly-once figures). `cargo test --test kafka_eos -- --ignored --nocapture`.
#[test]
#[ignore]
fn hold_a_mock_cluster() {
    let topics = std::env::var("WEIR_MOCK_TOPICS").unwrap_or_else(|_| "ticks:24,out:8".into());
    let topics: Vec<(String, i32)> = topics
        .split(',')
        .filter_map(|t| {
            let (name, n) = t.split_once(':')?;
            Some((name.to_string(), n.parse().ok()?))
        })
        .collect();
    let named: Vec<(&str, i32)> = topics.iter().map(|(t, n)| (t.as_str(), *n)).collect();
    let mock = cluster(&named);
    println!("bootstrap servers: {}", mock.bootstrap_servers());
    let seconds = std::env::var("WEIR_MOCK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    std::thread::sleep(Duration::from_secs(seconds));
}

/// The offsets and commit metadata `group` holds for partitions `0..partitions` of `topic`.
fn committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> Vec<(i64, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let Ok(c) = consumer.committed_offsets(tpl, Duration::from_secs(5)) else {
        return Vec::new();
    };
    c.elements()
        .iter()
        .map(|e| {
            let offset = match e.offset() {
                Offset::Offset(n) => n,
                _ => -1,
            };
            (offset, e.metadata().to_string())
        })
        .collect()
}

/// At least once, without transactions: runs killed after a commit are read again from
/// their commits, and every window a killed run fired before its last commit stays fired
/// (the commit records its watermark), so no window fires again with only the replayed part
/// of its events: every copy of a row id is the same row. (The broker of the other Kafka
/// tests drops commit metadata; this mock keeps it.)
#[test]
fn runs_killed_after_a_commit_fire_no_window_again_with_other_contents() {
    // Results keyed by symbol over four partitions: the mock keeps 5 MiB of each.
    let mock = cluster(&[("ticks", 6), ("out", 4)]);
    let brokers = mock.bootstrap_servers();
    let s = Scratch::new();
    ticks(&s, &brokers, "ticks", "ticks.jsonl", 100_000, 24);
    let sink = format!("kind = \"kafka\"\nbrokers = \"{brokers}\"\ntopic = \"out\"");
    s.write(
        "alo.toml",
        &pipeline(
            "alo",
            // Small fetches: the six partitions are read side by side, so the watermark
            // and the commits move in small steps.
            &(kafka_source(&brokers, "ticks", "alo", "at-end")
                + "\n[source.kafka.options]\n\"max.partition.fetch.bytes\" = \"32768\""),
            &sink,
        ),
    );
    let file = s.path("alo.toml").to_string_lossy().into_owned();
    let mut seed: u64 = 0xa10;
    let mut kills = 0;
    let mut tries = 0;
    while kills < 3 {
        tries += 1;
        assert!(tries < 20, "runs ended before they could be killed");
        let sum = |c: &[(i64, String)]| c.iter().map(|(o, _)| o.max(&0)).sum::<i64>();
        let before = sum(&committed(&brokers, "alo", "ticks", 6));
        let mut child = support::weir()
            .args(["run", "--no-progress", "--parallelism", "1", &file])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("weir run starts");
        // Killed 10 to 60 ms after a commit 2 000 records past the last run's: windows
        // fired since that commit are fired again.
        let deadline = Instant::now() + Duration::from_secs(60);
        while sum(&committed(&brokers, "alo", "ticks", 6)) < before + 2_000
            && child.try_wait().expect("wait").is_none()
        {
            assert!(Instant::now() < deadline, "no commit within 60 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(10 + (seed >> 33) % 50));
        if child.try_wait().expect("wait").is_none() {
            child.kill().expect("SIGKILL");
            kills += 1;
        }
        child.wait().expect("reaped");
    }
    // The commits carry the watermark they were made at.
    let commits = committed(&brokers, "alo", "ticks", 6);
    assert!(
        commits.iter().any(|(_, m)| m.starts_with("weir:")),
        "{commits:?}"
    );
    run(&s, "alo");
    s.write(
        "reference.toml",
        &pipeline(
            "alo",
            "kind = \"file\"\npath = \"ticks.jsonl\"",
            "kind = \"file\"\npath = \"reference.jsonl\"",
        ),
    );
    run(&s, "reference");
    let reference = std::fs::read_to_string(s.path("reference.jsonl")).expect("reference");
    let expected = expected_by_id("alo", &reference);
    let messages = drain_committed(&brokers, "out", Duration::from_secs(3));
    let mut by_id: BTreeMap<&str, &str> = BTreeMap::new();
    for (value, id) in &messages {
        let first = by_id.entry(id).or_insert(value);
        assert_eq!(first, value, "row {id} differs between copies");
    }
    assert!(
        messages.len() > by_id.len(),
        "no row was written twice: the kills fell where nothing was replayed"
    );
    assert_eq!(by_id.len(), expected.len(), "{} messages", messages.len());
    for (id, row) in &expected {
        assert_eq!(by_id.get(id.as_str()), Some(&row.as_str()), "row {id}");
    }
}
