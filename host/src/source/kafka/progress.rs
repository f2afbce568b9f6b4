//! The pipeline's progress topic: per (topic, partition) it reads, the replay floor and
//! read position of its last commit, written before each commit of offsets (at least
//! once) or each transaction's commit (exactly once), and read when a partition is
//! assigned. The same facts travel in the commit's metadata,
//! but some Kafka-protocol brokers drop commit metadata; without them a restart fires
//! windows again from only part of their events, and one row id gets two contents. The
//! progress topic is one partition, compacted, keyed by `topic/partition`, so reading it
//! is reading at most one record per partition the group ever read.
//!
//! When the pipeline keeps windows after they fire (allowed lateness, early firings,
//! sessions), a record also holds the commit's watermark and those windows of the
//! partition with their firing counts ([`crate::source::Kept`]): a reader replaying the partition
//! continues their revisions. Windows that would take more than half of [`MAX_RECORD`]
//! (the other half is for an exactly-once record's `previous`) are left out, with a
//! warning: the replay then fires those windows again from revision 0.
//!
//! Exactly once, the floors also travel in the transaction's offset metadata, and a record
//! counts only when it matches them ([`crate::source::Recorded::resume`]): it is written
//! before the transaction commits, so it may be of one that never did; it carries the last
//! committed transaction's record beside it for that case.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::kafka::Counting;
use crate::source::{Recorded, ReplayFloor};

/// The largest record written (below the 1 MiB brokers take by default).
pub(super) const MAX_RECORD: usize = 900 * 1024;

/// One partition's entry to write: topic, partition, and what to record.
pub(super) type Entry = (String, i32, Recorded);

/// How long reading the progress, or writing it (delivery included), may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The progress topic of one pipeline.
pub(super) struct Progress {
    topic: String,
    brokers: String,
    options: Vec<(String, String)>,
    producer: ThreadedProducer<Counting>,
    deliveries: std::sync::Arc<crate::kafka::Deliveries>,
}

impl Progress {
    /// Opens the progress topic `topic` on `brokers` with the source's librdkafka
    /// `options` (security settings), creating it (one partition, compacted) when it is
    /// missing.
    pub(super) fn open(
        brokers: &str,
        topic: &str,
        options: &std::collections::BTreeMap<String, String>,
    ) -> Result<Self, String> {
        let producer_options: Vec<(String, String)> = options
            .iter()
            .filter(|(k, _)| !consumer_only(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        crate::kafka::create_topic(
            brokers,
            topic,
            1,
            &[("cleanup.policy", "compact")],
            producer_options.iter().map(|(k, v)| (k, v)),
        )
        .map_err(|e| format!("creating the progress topic {topic}: {e}"))?;
        let mut with_acks = producer_options.clone();
        with_acks.push(("acks".into(), "all".into()));
        let (producer, deliveries) =
            crate::kafka::producer(brokers, with_acks.iter().map(|(k, v)| (k, v)))
                .map_err(|e| format!("the progress topic's producer: {e}"))?;
        Ok(Progress {
            topic: topic.to_string(),
            brokers: brokers.to_string(),
            options: producer_options,
            producer,
            deliveries,
        })
    }

    /// Writes each partition's floor and read position, and waits until the broker has
    /// them all: the offsets they go with are committed only after.
    pub(super) fn write(&self, entries: &[Entry]) -> Result<(), String> {
        tracing::debug!(entries = entries.len(), topic = %self.topic, "kafka: writing progress");
        let (before, _) = self.deliveries.failed();
        for (topic, partition, recorded) in entries {
            let key = key(topic, *partition);
            let value = value(recorded);
            crate::kafka::send(
                &self.producer,
                BaseRecord::to(&self.topic)
                    .key(key.as_bytes())
                    .payload(value.as_bytes()),
            )
            .map_err(|e| format!("writing to the progress topic {}: {e}", self.topic))?;
        }
        crate::kafka::confirm(&self.producer, &self.deliveries, before, TIMEOUT)
            .map_err(|e| format!("writing to the progress topic {}: {e}", self.topic))
    }

    /// Reads the whole topic: the last record for each (topic, partition).
    pub(super) fn read(&self) -> Result<HashMap<(String, i32), Recorded>, String> {
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", "weir-progress-reader")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false");
        for (k, v) in &self.options {
            client.set(k, v);
        }
        let consumer: BaseConsumer = client
            .create()
            .map_err(|e| format!("reading the progress topic {}: {e}", self.topic))?;
        let (low, high) = consumer
            .fetch_watermarks(&self.topic, 0, TIMEOUT)
            .map_err(|e| format!("reading the progress topic {}: {e}", self.topic))?;
        let mut out = HashMap::new();
        if high <= low {
            return Ok(out);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, 0, Offset::Offset(low))
            .map_err(|e| e.to_string())?;
        consumer.assign(&tpl).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + TIMEOUT;
        let mut next = low;
        // Until the high watermark, then until a poll brings nothing: some brokers report
        // a high watermark inside the last stored batch.
        loop {
            if Instant::now() > deadline {
                return Err(format!(
                    "reading the progress topic {}: offsets {next} to {high} did not arrive within {TIMEOUT:?}",
                    self.topic
                ));
            }
            let Some(m) = consumer.poll(Duration::from_millis(200)) else {
                if next >= high {
                    break;
                }
                continue;
            };
            let m = m.map_err(|e| format!("reading the progress topic {}: {e}", self.topic))?;
            next = next.max(m.offset() + 1);
            let parsed = m
                .key()
                .and_then(|k| std::str::from_utf8(k).ok())
                .and_then(parse_key)
                .zip(
                    m.payload()
                        .and_then(|v| std::str::from_utf8(v).ok())
                        .and_then(parse_value),
                );
            if let Some((k, v)) = parsed {
                out.insert(k, v);
            }
        }
        Ok(out)
    }
}

/// librdkafka properties a producer does not take.
fn consumer_only(key: &str) -> bool {
    matches!(
        key,
        "isolation.level"
            | "auto.offset.reset"
            | "enable.auto.commit"
            | "max.partition.fetch.bytes"
            | "fetch.min.bytes"
            | "fetch.max.bytes"
            | "fetch.wait.max.ms"
            | "session.timeout.ms"
            | "heartbeat.interval.ms"
            | "max.poll.interval.ms"
            | "group.instance.id"
            | "partition.assignment.strategy"
            | "statistics.interval.ms"
            | "enable.partition.eof"
            | "group.id"
    )
}

fn key(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

fn parse_key(k: &str) -> Option<(String, i32)> {
    let (topic, partition) = k.rsplit_once('/')?;
    Some((topic.to_string(), partition.parse().ok()?))
}

/// `weir:<floor>:<read>`, then with kept windows `:<watermark>` and a line of their JSON;
/// then, with a previous record, a line `previous` and that record.
pub(super) fn value(r: &Recorded) -> String {
    let mut out = one(r);
    if let Some(previous) = &r.previous {
        out.push_str("\nprevious\n");
        out.push_str(&one(previous));
    }
    if out.len() > MAX_RECORD && r.previous.is_some() {
        tracing::warn!(
            "kafka: a progress record with the previous transaction's too large: the previous left out"
        );
        return one(r);
    }
    out
}

fn one(r: &Recorded) -> String {
    let head = format!("weir:{}:{}", r.floor.watermark, r.floor.read);
    let Some((through, windows)) = &r.kept else {
        return head;
    };
    match serde_json::to_string(windows) {
        Ok(json) if head.len() + json.len() + 24 <= MAX_RECORD / 2 => {
            format!("{head}:{through}\n{json}")
        }
        Ok(json) => {
            tracing::warn!(
                windows = windows.len(),
                bytes = json.len(),
                "kafka: too many kept windows for one progress record: left out, so a restart fires them again from revision 0 (checkpoints keep them)"
            );
            head
        }
        Err(e) => {
            tracing::warn!(error = %e, "kafka: the kept windows cannot be written to the progress topic; a restart fires them again from revision 0");
            head
        }
    }
}

pub(super) fn parse_value(v: &str) -> Option<Recorded> {
    match v.split_once("\nprevious\n") {
        Some((this, previous)) => Some(Recorded {
            previous: Some(Box::new(parse_one(previous)?)),
            ..parse_one(this)?
        }),
        None => parse_one(v),
    }
}

fn parse_one(v: &str) -> Option<Recorded> {
    let (head, json) = match v.split_once('\n') {
        Some((head, json)) => (head, Some(json)),
        None => (v, None),
    };
    let mut it = head.strip_prefix("weir:")?.split(':');
    let watermark = it.next()?.parse().ok()?;
    let read = it.next()?.parse().ok()?;
    let through: Option<i64> = match it.next() {
        Some(t) => Some(t.parse().ok()?),
        None => None,
    };
    let kept = match (through, json) {
        (Some(t), Some(json)) => Some((t, serde_json::from_str(json).ok()?)),
        (None, None) => None,
        _ => return None,
    };
    Some(Recorded {
        floor: ReplayFloor { watermark, read },
        kept,
        previous: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::KeptWindow;

    #[test]
    fn keys_and_values_read_back() {
        assert_eq!(parse_key(&key("a/b", 3)), Some(("a/b".to_string(), 3)));
        let bare = |watermark, read| Recorded {
            floor: ReplayFloor { watermark, read },
            kept: None,
            previous: None,
        };
        let floor = |watermark, read| Some(bare(watermark, read));
        assert_eq!(parse_value(&value(&bare(-5, 7))), floor(-5, 7));
        assert_eq!(parse_value(&value(&bare(i64::MIN, 0))), floor(i64::MIN, 0));
        for other in [
            "",
            "weir:",
            "weir:x:1",
            "w:1:2",
            "weir:5",
            "weir:1:2:3",
            "weir:1:2\n[]",
        ] {
            assert_eq!(parse_value(other), None, "{other}");
        }
        // With kept windows: the watermark and each window's key, bounds, count, pending.
        let w = KeptWindow {
            partition: 0,
            key: crate::value::Key(vec![crate::value::Value::Str("AAPL".into())]),
            start: 1_000,
            end: 4_000,
            firings: 2,
            pending: true,
        };
        let with = Recorded {
            kept: Some((4_500, vec![w.clone()])),
            ..bare(900, 12)
        };
        assert_eq!(parse_value(&value(&with)), Some(with.clone()));
        // With the previous transaction's record.
        let both = Recorded {
            previous: Some(Box::new(with.clone())),
            ..bare(950, 13)
        };
        assert_eq!(parse_value(&value(&both)), Some(both.clone()));
        // Too many to fit one record: the floor alone.
        let many = Recorded {
            kept: Some((4_500, (0..40_000).map(|_| w.clone()).collect())),
            ..bare(900, 12)
        };
        assert_eq!(parse_value(&value(&many)), floor(900, 12));
        assert_eq!(parse_key("nopartition"), None);
    }
}
