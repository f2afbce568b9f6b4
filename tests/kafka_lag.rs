//! Per-partition consumer lag in `/metrics` (`weir_kafka_partition_lag`), against a real
//! broker (`tansu` on 127.0.0.1): a `weir serve` pipeline reads a 2-partition topic that
//! got 30 ticks in partition 0 and 12 in partition 1 (sent to each partition by number),
//! and each partition's lag reaches 0 once the pipeline has read them; paused, 7 and 3 more
//! ticks show as lags of exactly 7 and 3; resumed, both are read and the lags are 0 again.
//! The Grafana dashboard's Kafka panel queries names the scrape has.

mod support;

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use support::kafka::Broker;
use support::serve::*;
use support::{Scratch, pipeline_toml_to};
use weir::serve::control::PipelineState;

const TOPIC: &str = "lagticks";

/// Sends `n` ticks to `partition`, numbered from `first` (one a second of event time).
fn send(brokers: &str, partition: i32, first: usize, n: usize) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("producer");
    for i in first..first + n {
        let tick = format!(
            r#"{{"ts":"2024-01-22T00:{:02}:{:02}Z","symbol":"S{partition}","price":1.5,"volume":1}}"#,
            i / 60,
            i % 60
        );
        p.send(
            BaseRecord::<(), str>::to(TOPIC)
                .partition(partition)
                .payload(&tick),
        )
        .map_err(|(e, _)| e)
        .expect("queued");
    }
    p.flush(Duration::from_secs(10)).expect("delivered");
}

/// The lag of `partition` in a scrape, if it has a series.
fn lag(scrape: &str, partition: i32) -> Option<i64> {
    let series = format!(
        "weir_kafka_partition_lag{{tenant=\"acme\",pipeline=\"ticks\",topic=\"{TOPIC}\",partition=\"{partition}\"}} "
    );
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits until a scrape shows lags `(p0, p1)`.
fn wait_lags(serve: &Serve, want: (i64, i64), what: &str) -> String {
    let mut last = (None, None);
    let until = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(scrape) = serve.client(OPERATOR).metrics() {
            last = (lag(&scrape, 0), lag(&scrape, 1));
            if last == (Some(want.0), Some(want.1)) {
                return scrape;
            }
        }
        assert!(
            std::time::Instant::now() < until,
            "timed out after 120s waiting for {what}: the last scrape showed lags {last:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn each_partitions_lag_is_its_records_after_the_pipelines_position() {
    let _serial = serial();
    let broker = Broker::start();
    let brokers = broker.brokers();
    weir::produce::create_topic(&brokers, TOPIC, 2).expect("topic");
    send(&brokers, 0, 0, 30);
    send(&brokers, 1, 0, 12);

    let s = Scratch::new();
    s.write(
        "ticks.toml",
        &pipeline_toml_to(
            "ticks",
            &format!(
                "[source]\nkind = \"kafka\"\nbrokers = \"{brokers}\"\ntopics = [\"{TOPIC}\"]\ngroup_id = \"lag-group\"\nstop = \"never\"\n"
            ),
            &support::wasm("stats"),
            "params = { field = \"price\" }",
            "kind = \"file\"\npath = \"ticks.jsonl\"",
        ),
    );
    let serve = Serve::start(&s, &tenant_toml("acme", ACME, &["ticks.toml"]));
    wait_for("42 ticks read", Duration::from_secs(120), || {
        (serve.view("acme", "ticks").counters.events_read == 42).then_some(())
    });
    wait_lags(&serve, (0, 0), "both partitions caught up");

    // Paused, the pipeline reads nothing: what arrives is its lag, per partition.
    serve.client(ACME).pause("acme", "ticks").expect("paused");
    send(&brokers, 0, 30, 7);
    send(&brokers, 1, 12, 3);
    wait_lags(&serve, (7, 3), "lags of 7 and 3 while paused");
    assert_eq!(serve.view("acme", "ticks").counters.events_read, 42);

    // Resumed, it reads them and is caught up again.
    serve.client(ACME).resume("acme", "ticks").expect("resumed");
    serve.wait_state(
        "acme",
        "ticks",
        PipelineState::Running,
        Duration::from_secs(10),
    );
    wait_for("52 ticks read", Duration::from_secs(60), || {
        (serve.view("acme", "ticks").counters.events_read == 52).then_some(())
    });
    let scrape = wait_lags(&serve, (0, 0), "caught up after the resume");
    // The Grafana dashboard's Kafka panel queries names this scrape has.
    let kafka: Vec<String> = support::dashboard_metrics()
        .into_iter()
        .filter(|n| n.starts_with("weir_kafka_"))
        .collect();
    assert!(!kafka.is_empty(), "the dashboard has a Kafka panel");
    for name in kafka {
        assert!(
            scrape.lines().any(|l| l.starts_with(&format!("{name}{{"))),
            "{name} not in:\n{scrape}"
        );
    }
    drop(broker);
}
