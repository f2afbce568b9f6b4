//! Kafka in and out, against a real broker: `tansu` on 127.0.0.1 (`support::kafka`), topics
//! with several partitions, events sent by `weir produce`, read by `weir run` with
//! `stop = "at-end"`, results written to a topic, and runs killed with SIGKILL.

mod support;

use support::kafka::Broker;
use support::{Scratch, run_weir, wasm};

/// A pipeline over `source` (a `[source]` table's keys): stock ticks, sliding 3 s / 1 s,
/// 1 s watermark delay, `stats` on `price`, results and dead letters to files.
fn pipeline(name: &str, source: &str) -> String {
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

fn kafka_source(brokers: &str, topic: &str, group: &str) -> String {
    format!(
        "kind = \"kafka\"\nbrokers = \"{brokers}\"\ntopics = [\"{topic}\"]\ngroup_id = \"{group}\"\nstop = \"at-end\""
    )
}

/// Runs `weir run` on one worker and asserts it succeeded.
fn run(s: &Scratch, name: &str) {
    let file = s
        .path(&format!("{name}.toml"))
        .to_string_lossy()
        .into_owned();
    let out = run_weir(&["run", "--no-progress", "--parallelism", "1", &file]);
    assert!(
        out.status.success(),
        "{name} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn produce(brokers: &str, topic: &str, input: &str, partitions: &str) {
    produce_with(brokers, topic, input, partitions, &[]);
}

/// [`produce`] with librdkafka producer properties (`-X name=value`).
fn produce_with(brokers: &str, topic: &str, input: &str, partitions: &str, options: &[&str]) {
    let mut args = vec![
        "produce",
        "--brokers",
        brokers,
        "--topic",
        topic,
        "--partitions",
        partitions,
        "--key",
        "symbol",
        "--input",
        input,
    ];
    for o in options {
        args.extend(["-X", o]);
    }
    let out = run_weir(&args);
    assert!(
        out.status.success(),
        "weir produce failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_topic_read_to_its_end_gives_the_rows_of_the_same_events_from_a_file() {
    let broker = Broker::start();
    let s = Scratch::new();
    // 6 000 ticks of 8 symbols, 5 ms apart and in order: with a 1 s delay no event is late
    // in either run, whatever order the partitions' messages interleave in, since each
    // partition is in time order and the watermark is the minimum over partitions.
    support::gen_ticks(&s, "ticks.jsonl", 6_000, 8);
    produce(
        &broker.brokers(),
        "ticks",
        &s.path("ticks.jsonl").to_string_lossy(),
        "3",
    );
    s.write(
        "from-file.toml",
        &pipeline("from-file", "kind = \"file\"\npath = \"ticks.jsonl\""),
    );
    s.write(
        "from-kafka.toml",
        &pipeline(
            "from-kafka",
            &kafka_source(&broker.brokers(), "ticks", "round-trip"),
        ),
    );
    run(&s, "from-file");
    run(&s, "from-kafka");
    let file = std::fs::read_to_string(s.path("from-file.jsonl")).expect("file rows");
    let kafka = std::fs::read_to_string(s.path("from-kafka.jsonl")).expect("kafka rows");
    // 30 s of ticks in 3 s windows sliding 1 s: about 32 windows per symbol.
    assert!(
        file.lines().count() > 8 * 30,
        "{} rows",
        file.lines().count()
    );
    assert!(
        kafka == file,
        "the Kafka run's rows differ from the file run's"
    );
}

#[test]
fn a_message_that_cannot_be_read_goes_to_the_dead_letter_with_its_partition_and_offset() {
    let broker = Broker::start();
    let s = Scratch::new();
    // One partition, so offsets are the lines' positions from 0: line 2 is not JSON,
    // line 3 misses its timestamp.
    s.write(
        "in.jsonl",
        concat!(
            r#"{"symbol":"A","ts":"2024-01-22T00:00:00Z","price":1.0,"volume":1}"#,
            "\n",
            "{not json\n",
            r#"{"symbol":"A","price":2.0,"volume":1}"#,
            "\n",
            r#"{"symbol":"A","ts":"2024-01-22T00:00:01.500Z","price":3.0,"volume":1}"#,
            "\n",
        ),
    );
    produce(
        &broker.brokers(),
        "bad",
        &s.path("in.jsonl").to_string_lossy(),
        "1",
    );
    s.write(
        "bad.toml",
        &pipeline(
            "bad",
            &kafka_source(&broker.brokers(), "bad", "dead-letters"),
        ),
    );
    run(&s, "bad");
    let dead = s.read_jsonl("bad.dead.jsonl");
    let at: Vec<(String, i64)> = dead
        .iter()
        .map(|d| {
            (
                d["origin"].as_str().unwrap_or_default().to_string(),
                d["offset"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(at, [("bad/0".to_string(), 1), ("bad/0".to_string(), 2)]);
    assert_eq!(dead[0]["record"], "{not json");
    assert!(
        dead[1]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("ts"),
        "{:?}",
        dead[1]
    );
    // The two good ticks: windows [-2 s, 1 s), [-1 s, 2 s), [0, 3 s) hold the first, the
    // last two the second too; [1 s, 4 s) holds the second alone.
    let counts: Vec<i64> = s
        .read_jsonl("bad.jsonl")
        .iter()
        .map(|r| r["count"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(counts, [1, 2, 2, 1]);
}

#[test]
fn a_result_topic_holds_the_rows_of_the_file_run_keyed_and_with_row_ids() {
    let broker = Broker::start();
    let brokers = broker.brokers();
    let s = Scratch::new();
    support::gen_ticks(&s, "ticks.jsonl", 3_000, 4);
    produce(
        &brokers,
        "in",
        &s.path("ticks.jsonl").to_string_lossy(),
        "2",
    );
    // One partition for the results, so they keep the order they were written in.
    weir::produce::create_topic(&brokers, "results", 1).expect("results topic");
    s.write(
        "from-file.toml",
        &pipeline("from-file", "kind = \"file\"\npath = \"ticks.jsonl\""),
    );
    let to_topic = pipeline("to-topic", &kafka_source(&brokers, "in", "to-topic")).replace(
        "[sink]\nkind = \"file\"\npath = \"to-topic.jsonl\"\nmode = \"truncate\"",
        &format!("[sink]\nkind = \"kafka\"\nbrokers = \"{brokers}\"\ntopic = \"results\""),
    );
    assert!(to_topic.contains("topic = \"results\""));
    s.write("to-topic.toml", &to_topic);
    run(&s, "from-file");
    run(&s, "to-topic");
    let file = std::fs::read_to_string(s.path("from-file.jsonl")).expect("file rows");
    let rows: Vec<&str> = file.lines().collect();
    let messages = drain_topic(&brokers, "results", std::time::Duration::from_secs(3));
    let values: Vec<&str> = messages.iter().map(|(_, v, _)| v.as_str()).collect();
    assert_eq!(values, rows, "the topic's messages are the file's lines");
    for ((key, value, id), row) in messages.iter().zip(&rows) {
        let r: serde_json::Value = serde_json::from_str(row).expect("a JSON row");
        let symbol = r["symbol"].as_str().expect("symbol");
        assert_eq!(key, symbol, "keyed by the group key: {value}");
        // pipeline/key/window_start/window_end/revision/index in the window.
        let expected = format!(
            "to-topic/{symbol}/{}/{}/0/0",
            r["window_start"].as_str().expect("start"),
            r["window_end"].as_str().expect("end")
        );
        assert_eq!(id, &expected);
    }
}

/// Every message of partition 0 of `topic`, as (key, value, `weir-row-id` header), read from
/// the beginning until none arrives for `quiet`.
fn drain_topic(
    brokers: &str,
    topic: &str,
    quiet: std::time::Duration,
) -> Vec<(String, String, String)> {
    use rdkafka::Message;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Headers;
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "test-drain")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&tpl).expect("assign");
    let mut got = Vec::new();
    let mut last = std::time::Instant::now();
    while last.elapsed() < quiet {
        let Some(Ok(m)) = consumer.poll(std::time::Duration::from_millis(200)) else {
            continue;
        };
        last = std::time::Instant::now();
        let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
        let id = m
            .headers()
            .and_then(|h| {
                h.iter()
                    .find(|h| h.key == "weir-row-id")
                    .map(|h| text(h.value))
            })
            .unwrap_or_default();
        got.push((text(m.key()), text(m.payload()), id));
    }
    got
}

/// Deduplicates result messages by row id, failing on a row id with two contents.
fn by_row_id(messages: &[(String, String, String)]) -> std::collections::BTreeMap<&str, &str> {
    let mut by_id = std::collections::BTreeMap::new();
    for (_, value, id) in messages {
        assert!(!id.is_empty(), "a result message without a row id: {value}");
        let first = *by_id.entry(id.as_str()).or_insert(value.as_str());
        if first != value.as_str() {
            panic!("row {id} has two contents:\n{first}\n{value}");
        }
    }
    eprintln!(
        "{} messages were copies of a row written before a kill",
        messages.len() - by_id.len()
    );
    by_id
}

#[test]
fn killed_ten_times_the_deduplicated_result_topic_equals_an_uninterrupted_run() {
    use std::collections::BTreeMap;
    let broker = Broker::start();
    let brokers = broker.brokers();
    let s = Scratch::new();
    support::gen_ticks(&s, "ticks.jsonl", 400_000, 6);
    weir::produce::create_topic(&brokers, "out", 1).expect("out topic");
    // Offsets committed every 100 ms, so that runs killed within a second have committed.
    let source = format!(
        "{}\ncommit_every = \"100ms\"",
        kafka_source(&brokers, "ticks", "killed")
    );
    let to_topic = pipeline("killed", &source).replace(
        "[sink]\nkind = \"file\"\npath = \"killed.jsonl\"\nmode = \"truncate\"",
        &format!("[sink]\nkind = \"kafka\"\nbrokers = \"{brokers}\"\ntopic = \"out\""),
    );
    assert!(to_topic.contains("topic = \"out\""));
    s.write("killed.toml", &to_topic);
    let file = s.path("killed.toml").to_string_lossy().into_owned();
    // Every tick reaches the topic first (one message per batch: this broker, tansu 0.6,
    // answers a fetch from an offset inside a stored batch with the next batch, so a run
    // resuming from an offset committed mid-batch would skip records). Runs then resume
    // from the offsets the last one committed, each killed with SIGKILL once it read
    // 10 000 to 25 000 events and wrote rows, ten times; then one run to the end. (A run
    // that reached the end of its input before the kill would fire every open window
    // there, as final: the kills come from progress, not time, so none does.)
    produce_with(
        &brokers,
        "ticks",
        &s.path("ticks.jsonl").to_string_lossy(),
        "3",
        &["batch.num.messages=1"],
    );
    support::kill::kill_by_events(&file, 0x6b11, 10_000, 15_000, 10);
    run(&s, "killed");
    // The uninterrupted run: the same pipeline over every tick, from the file.
    s.write(
        "reference.toml",
        &pipeline("killed", "kind = \"file\"\npath = \"ticks.jsonl\"")
            .replace("path = \"killed.jsonl\"", "path = \"reference.jsonl\""),
    );
    run(&s, "reference");
    let reference = std::fs::read_to_string(s.path("reference.jsonl")).expect("reference rows");
    let messages = drain_topic(&brokers, "out", std::time::Duration::from_secs(3));
    // Deduplicated by row id; every copy of a row id has the same content (the replay
    // floors survive in the progress topic, which this broker keeps, while it drops
    // commit metadata).
    let by_id = by_row_id(&messages);
    let expected: BTreeMap<String, &str> = reference
        .lines()
        .map(|row| {
            let r: serde_json::Value = serde_json::from_str(row).expect("a JSON row");
            let id = format!(
                "killed/{}/{}/{}/0/0",
                r["symbol"].as_str().expect("symbol"),
                r["window_start"].as_str().expect("start"),
                r["window_end"].as_str().expect("end")
            );
            (id, row)
        })
        .collect();
    assert_eq!(
        by_id.len(),
        expected.len(),
        "{} messages in all",
        messages.len()
    );
    for (id, row) in &expected {
        assert_eq!(by_id.get(id.as_str()), Some(row), "row {id}");
    }
}

#[test]
fn killed_with_checkpoints_the_result_file_holds_every_window_once() {
    let broker = Broker::start();
    let brokers = broker.brokers();
    let s = Scratch::new();
    support::gen_ticks(&s, "ticks.jsonl", 300_000, 6);
    // One message per batch: this broker (tansu 0.6) answers a fetch from an offset inside
    // a stored batch with the next batch, so a run resuming from an offset committed
    // mid-batch would skip records (a kill after rows and a checkpoint commits mid-batch).
    produce_with(
        &brokers,
        "ck",
        &s.path("ticks.jsonl").to_string_lossy(),
        "3",
        &["batch.num.messages=1"],
    );
    // A checkpoint every 300 ms, and `commit_every` asking for commits every 100 ms: with
    // checkpoints, offsets are committed only once a checkpoint holds what is before them,
    // so a restart from the last checkpoint finds every record after it. The restart skips
    // what the checkpoint had read past the committed offsets.
    let source = format!(
        "{}\ncommit_every = \"100ms\"",
        kafka_source(&brokers, "ck", "ck")
    );
    let with_checkpoint = pipeline("ck", &source).replace("mode = \"truncate\"\n", "")
        + "[checkpoint]\ndir = \"state\"\nevery = \"300ms\"\n";
    s.write("ck.toml", &with_checkpoint);
    let file = s.path("ck.toml").to_string_lossy().into_owned();
    let checkpoint = s.path("state/checkpoint");
    // Killed 0 to 150 ms after it wrote rows and a checkpoint after them: with records read
    // and windows fired since, and offsets committed; four times, before the input ends.
    let out = s.path("ck.jsonl");
    support::kill_after_checkpoints(
        &checkpoint,
        |_| ["run", "--no-progress", &file].map(String::from).to_vec(),
        || support::file_len(&out),
        4,
        19,
        0xc4ec,
        |r| r % 150,
    );
    let out = run_weir(&["run", "--no-progress", "--json-summary", &file]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Counters carry on from the checkpoint, and what it holds is not read twice.
    let summary = support::summary(&stderr);
    assert_eq!(summary["events_read"], 300_000, "{summary}");
    s.write(
        "reference.toml",
        &pipeline("reference", "kind = \"file\"\npath = \"ticks.jsonl\""),
    );
    run(&s, "reference");
    let sorted = |name: &str| {
        let text = std::fs::read_to_string(s.path(name)).expect("rows");
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines.sort();
        lines
    };
    let (got, expected) = (sorted("ck.jsonl"), sorted("reference.jsonl"));
    assert!(!expected.is_empty());
    assert_eq!(got.len(), expected.len(), "rows after five kills");
    assert!(got == expected, "the rows differ from the file run's");
}

/// 300 000 ticks of twelve symbols in turn, 10 ms apart, with every 97th 30 s behind: late
/// for all its windows, inside a 60 s allowed lateness, so those windows fire again (a
/// symbol's late ticks are 11.6 s apart: one per window).
fn late_ticks() -> Vec<String> {
    (0..300_000u64)
        .map(|i| {
            let behind = if i % 97 == 50 { 30_000 } else { 0 };
            let t = 40_000 + i * 10 - behind;
            let (min, sec, ms) = (t / 60_000, t / 1_000 % 60, t % 1_000);
            format!(
                "{{\"ts\":\"2024-01-22T00:{min:02}:{sec:02}.{ms:03}Z\",\"symbol\":\"S{:02}\",\"price\":{}.{:02},\"volume\":1}}",
                i % 12,
                100 + i % 7,
                i % 97
            )
        })
        .collect()
}

#[test]
fn killed_with_allowed_lateness_every_copy_of_a_row_id_is_the_same_revision() {
    use std::collections::BTreeMap;
    let broker = Broker::start();
    let brokers = broker.brokers();
    let s = Scratch::new();
    let all = late_ticks();
    weir::produce::create_topic(&brokers, "late-out", 1).expect("out topic");
    let late = |p: String| {
        p.replace(
            "slide = \"1s\"",
            "slide = \"1s\"\nallowed_lateness = \"60s\"",
        )
    };
    let source = format!(
        "{}\ncommit_every = \"100ms\"",
        kafka_source(&brokers, "late-ticks", "late")
    );
    let to_topic = late(pipeline("late", &source)).replace(
        "[sink]\nkind = \"file\"\npath = \"late.jsonl\"\nmode = \"truncate\"",
        &format!("[sink]\nkind = \"kafka\"\nbrokers = \"{brokers}\"\ntopic = \"late-out\""),
    );
    assert!(to_topic.contains("topic = \"late-out\"") && to_topic.contains("allowed_lateness"));
    s.write("late.toml", &to_topic);
    let file = s.path("late.toml").to_string_lossy().into_owned();
    // Every tick reaches one partition first (one message per batch, for this broker): a
    // replay reads the events in the order the first run did. (Across partitions, which
    // events a window holds can depend on the order partitions are read in; the README
    // says so.) Runs then resume from the offsets the last one committed, each killed once
    // it read 10 000 to 30 000 events (the metrics move about once a second), four times.
    s.write("ticks.jsonl", &(all.join("\n") + "\n"));
    produce_with(
        &brokers,
        "late-ticks",
        &s.path("ticks.jsonl").to_string_lossy(),
        "1",
        &["batch.num.messages=1"],
    );
    support::kill::kill_by_events(&file, 0x1a7e, 10_000, 20_000, 4);
    run(&s, "late");
    s.write(
        "reference.toml",
        &late(pipeline("late", "kind = \"file\"\npath = \"ticks.jsonl\""))
            .replace("path = \"late.jsonl\"", "path = \"reference.jsonl\""),
    );
    run(&s, "reference");
    let reference = std::fs::read_to_string(s.path("reference.jsonl")).expect("reference rows");
    let messages = drain_topic(&brokers, "late-out", std::time::Duration::from_secs(3));
    // Every copy of a row id (key, window, revision) is the same row: a window inside its
    // lateness when a run was killed continued its revisions after the restart (without
    // that, a replay that reads a late event before the watermark passes its window
    // fires revision 0 again with the late event in).
    let by_id = by_row_id(&messages);
    let expected: BTreeMap<String, &str> = reference
        .lines()
        .map(|row| {
            let r: serde_json::Value = serde_json::from_str(row).expect("a JSON row");
            let id = format!(
                "late/{}/{}/{}/{}/0",
                r["symbol"].as_str().expect("symbol"),
                r["window_start"].as_str().expect("start"),
                r["window_end"].as_str().expect("end"),
                r["revision"].as_u64().expect("revision")
            );
            (id, row)
        })
        .collect();
    let revised = expected.keys().filter(|id| !id.ends_with("/0/0")).count();
    assert!(
        revised > 1_000,
        "the input fires few windows again: {revised}"
    );
    assert_eq!(
        by_id.len(),
        expected.len(),
        "{} messages in all",
        messages.len()
    );
    for (id, row) in &expected {
        assert_eq!(by_id.get(id.as_str()), Some(row), "row {id}");
    }
}
