//! The Kafka source: topics read through a consumer group (rdkafka's `BaseConsumer`), one
//! message one record. Each (topic, partition) is one watermark partition, and a record's
//! origin is `topic/partition` and its offset the message's offset, so a dead letter points
//! at the message.
//!
//! With `stop = "never"` the consumer subscribes, and partitions move between the processes
//! of a group ([`Rebalances`]): an assignment is applied at once and reported
//! ([`Source::take_assigned`]); a revocation is reported ([`Source::take_revoked`]) and
//! completed only at the next poll, so that the pipeline flushes its sinks and commits while
//! the partitions are still this consumer's — what a commit inside the rebalance callback
//! would do, with the pipeline's own offsets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;

mod progress;
mod records;

use records::commit_metadata;
mod rebalances;

use progress::Progress;
use rebalances::{Rebalances, offsets};

use super::{
    Commit, Error, Kept, PartitionLag, Poll, REJECTED_HEAD_BYTES, RawBatch, Rejected, ReplayFloor,
    Source, SourcePosition,
};
use crate::config::{KafkaSourceConfig, KafkaStart, KafkaStop};

/// How long one poll waits for the first message.
const POLL_WAIT: Duration = Duration::from_millis(100);

/// The most messages one [`Source::keep_alive`] keeps, should any arrive while held.
const KEEP_ALIVE_MAX: usize = 64;

/// How long metadata and offset queries may take before the source gives up.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// How often librdkafka reports its statistics (`statistics.interval.ms`, unless the
/// pipeline sets it): each partition's high watermark, for [`Source::partition_lag`].
const STATISTICS_INTERVAL_MS: &str = "1000";

/// How often a held source asks the broker for its partitions' high watermarks: a paused
/// partition is not fetched, and librdkafka's statistics may not see what is produced.
const HELD_WATERMARKS_EVERY: Duration = Duration::from_secs(1);

/// A Kafka consumer as a [`Source`].
pub struct KafkaSource {
    consumer: BaseConsumer<Rebalances>,
    description: String,
    max_record_bytes: usize,
    /// Every partition assigned or read from; its index is its watermark partition id.
    parts: Vec<Part>,
    /// `stop = "at-end"`: per partition, its end offset when the run started and where
    /// reading it starts (the group's committed offset, or the partition's first).
    ends: Option<HashMap<(String, i32), (i64, i64)>>,
    rejected: Vec<Rejected>,
    commit_every: Duration,
    /// Where commits record their floors and kept windows ([`progress`]).
    progress: Option<Progress>,
    /// The results are exactly-once: a progress record counts only if the transaction it
    /// was written for committed (its floor is the committed offsets' metadata).
    exactly_once: bool,
    /// Where the result sink keeps the positions, if it does ([`Source::keep_positions_in`]).
    store: Option<Arc<dyn crate::sink::PositionStore>>,
    /// Partitions assigned and revoked, not yet handed to the pipeline.
    changes: Changes,
    /// Restored from a checkpoint in a group, before the first assignment.
    unconfirmed: bool,
    read: u64,
    /// Whether the pipeline holds the source ([`Source::hold`]): every assigned partition
    /// is paused.
    held: bool,
    /// Messages that arrived while held (a fetch already under way when the partitions were
    /// paused; librdkafka purges the rest), handed out first after the release; they count
    /// in the partition's lag.
    kept: RawBatch,
    /// When a held source last queried its partitions' high watermarks.
    watermarks_at: Option<std::time::Instant>,
}

impl KafkaSource {
    /// Connects, subscribes and, for `stop = "at-end"`, reads every partition's end offset.
    ///
    /// `read_committed`: the pipeline's results are exactly-once, so its input must not
    /// include an upstream transaction's aborted records.
    pub fn open(
        cfg: &KafkaSourceConfig,
        max_record_bytes: u64,
        read_committed: bool,
    ) -> Result<Self, Error> {
        let kafka = |e: KafkaError| Error::Kafka {
            message: e.to_string(),
        };
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &cfg.brokers)
            .set("group.id", &cfg.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("isolation.level", isolation(cfg, read_committed))
            .set(
                "auto.offset.reset",
                match cfg.start {
                    KafkaStart::Earliest => "earliest",
                    KafkaStart::Latest => "latest",
                },
            );
        // Statistics bring each partition's high watermark (the lag metric); a pipeline may
        // set its own interval, or 0 to turn them (and the metric) off.
        client.set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
        for (k, v) in &cfg.kafka.options {
            client.set(k, v);
        }
        let consumer: BaseConsumer<Rebalances> = client
            .create_with_context(Rebalances::default())
            .map_err(kafka)?;
        let subscription: Vec<&str> = match &cfg.topic_pattern {
            Some(p) => vec![p.as_str()],
            None => cfg.topics.iter().map(String::as_str).collect(),
        };
        let ends = match cfg.stop {
            KafkaStop::Never => None,
            KafkaStop::AtEnd => {
                let mut ends = HashMap::new();
                let metadata = consumer
                    .fetch_metadata(None, QUERY_TIMEOUT)
                    .map_err(kafka)?;
                let mut all = TopicPartitionList::new();
                for topic in metadata.topics() {
                    if !subscribed(&subscription, topic.name()) {
                        continue;
                    }
                    for p in topic.partitions() {
                        let (low, high) = consumer
                            .fetch_watermarks(topic.name(), p.id(), QUERY_TIMEOUT)
                            .map_err(kafka)?;
                        ends.insert((topic.name().to_string(), p.id()), (high, low));
                        all.add_partition(topic.name(), p.id());
                    }
                }
                // Where the group stands: a partition read to its end already yields no
                // message, and is done from the start.
                if all.count() > 0 {
                    let committed = consumer
                        .committed_offsets(all, QUERY_TIMEOUT)
                        .map_err(kafka)?;
                    for e in committed.elements() {
                        if let (Offset::Offset(n), Some(at)) = (
                            e.offset(),
                            ends.get_mut(&(e.topic().to_string(), e.partition())),
                        ) {
                            at.1 = at.1.max(n);
                        }
                    }
                }
                tracing::debug!(?ends, "kafka: end offsets at start");
                Some(ends)
            }
        };
        let progress = match cfg.progress_topic() {
            Some(topic) => match Progress::open(&cfg.brokers, &topic, &cfg.kafka.options) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!(error = %e, "kafka: no progress topic: replay floors travel only in commit metadata, which some brokers drop; create the topic (compacted, one partition) or name one with source.progress_topic");
                    None
                }
            },
            _ => None,
        };
        match &ends {
            // A bounded replay takes every partition itself, from the group's committed
            // offsets (else `start`): no group rebalance to wait for, and no partition
            // missing at first, whose events the others' watermark would make late.
            Some(ends) => {
                let mut tpl = TopicPartitionList::new();
                for (topic, partition) in ends.keys() {
                    tpl.add_partition_offset(topic, *partition, Offset::Stored)
                        .map_err(kafka)?;
                }
                consumer.assign(&tpl).map_err(kafka)?;
            }
            None => consumer.subscribe(&subscription).map_err(kafka)?,
        }
        Ok(KafkaSource {
            consumer,
            description: format!(
                "kafka {} group {} at {}",
                subscription.join(","),
                cfg.group_id,
                cfg.brokers
            ),
            max_record_bytes: usize::try_from(max_record_bytes).unwrap_or(usize::MAX),
            parts: Vec::new(),
            ends,
            rejected: Vec::new(),
            commit_every: Duration::from_millis(cfg.commit_every.0.max(1) as u64),
            progress,
            exactly_once: read_committed,
            store: None,
            changes: Changes::default(),
            unconfirmed: false,
            read: 0,
            held: false,
            kept: RawBatch::default(),
            watermarks_at: None,
        })
    }

    /// While held, at most every [`HELD_WATERMARKS_EVERY`]: asks the broker for each
    /// assigned partition's high watermark, so that the lag of a paused pipeline grows with
    /// what is produced ([`Source::partition_lag`]). A failed query is left to the next.
    fn query_high_watermarks(&mut self) {
        if self
            .watermarks_at
            .is_some_and(|at| at.elapsed() < HELD_WATERMARKS_EVERY)
        {
            return;
        }
        self.watermarks_at = Some(std::time::Instant::now());
        let Ok(assigned) = self.consumer.assignment() else {
            return;
        };
        for e in assigned.elements() {
            let (topic, partition) = (e.topic(), e.partition());
            let Ok((_, high)) =
                self.consumer
                    .fetch_watermarks(topic, partition, Duration::from_secs(2))
            else {
                continue;
            };
            let mut known = self.consumer.context().lock();
            let seen = known
                .partitions
                .entry((topic.to_string(), partition))
                .or_insert(rebalances::Seen {
                    high: -1,
                    position: -1,
                });
            seen.high = seen.high.max(high);
        }
    }

    /// Pauses or resumes fetching every partition assigned now. A paused partition stays
    /// paused across a rebalance that keeps it, and librdkafka resumes it at the offset
    /// after the last message handed out.
    fn pause_assigned(&self, pause: bool) {
        let Ok(assigned) = self.consumer.assignment() else {
            return;
        };
        if assigned.count() == 0 {
            return;
        }
        let done = if pause {
            self.consumer.pause(&assigned)
        } else {
            self.consumer.resume(&assigned)
        };
        if let Err(e) = done {
            tracing::warn!(error = %e, pause, "kafka pause/resume");
        }
    }

    /// Completes a revocation the pipeline has taken (its sinks flushed and its offsets
    /// committed): the group rebalance goes on.
    fn complete_revocation(&mut self) {
        let Some(revoked) = self.consumer.context().take_pending() else {
            return;
        };
        let done = match self.consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => self.consumer.incremental_unassign(&revoked),
            _ => self.consumer.unassign(),
        };
        if let Err(e) = done {
            tracing::warn!(error = %e, "kafka: completing a revocation");
        }
    }

    /// Hands the partitions the group assigned and revoked since the last poll to the
    /// pipeline, by id; a partition assigned again after a revocation is reported again.
    fn track_rebalances(&mut self) {
        let (assigned, revoked) = self.consumer.context().take_changes();
        for (topic, partition) in revoked {
            if let Some(id) = self
                .parts
                .iter()
                .position(|p| p.partition == partition && p.topic == topic)
            {
                self.parts[id].next = -1;
                self.parts[id].skip_below = -1;
                self.parts[id].floor = None;
                self.changes.assigned.retain(|&a| a as usize != id);
                self.changes.revoked.push(id as u32);
            }
        }
        let mut ids = Vec::with_capacity(assigned.len());
        for (topic, partition) in assigned {
            let known = self.parts.len();
            let id = part(
                &mut self.parts,
                &mut self.changes.assigned,
                &topic,
                partition,
            );
            if id < known && !self.changes.assigned.contains(&(id as u32)) {
                self.changes.assigned.push(id as u32);
            }
            ids.push(id);
        }
        if self.unconfirmed && !ids.is_empty() {
            // The first assignment after a restore: the checkpoint's partitions the group
            // gave to another member are revoked, their keys' state dropped unfired (their
            // new owner rebuilds it from the committed offsets).
            self.unconfirmed = false;
            for id in 0..self.parts.len() {
                if !ids.contains(&id) && self.parts[id].next >= 0 {
                    self.parts[id].next = -1;
                    self.parts[id].skip_below = -1;
                    self.changes.revoked.push(id as u32);
                }
            }
        }
    }

    /// Gives an id to every partition of the current assignment not known yet.
    fn track_assignment(&mut self) {
        if let Ok(assigned) = self.consumer.assignment() {
            for e in assigned.elements() {
                part(
                    &mut self.parts,
                    &mut self.changes.assigned,
                    e.topic(),
                    e.partition(),
                );
            }
        }
    }

    /// `stop = "at-end"`: whether every partition assigned to this consumer reached the end
    /// it had when the run started (a partition that was empty then is done at once).
    fn at_end(&self) -> bool {
        let Some(ends) = &self.ends else {
            return false;
        };
        let reached = |key: &(String, i32)| {
            let (end, from) = ends.get(key).copied().unwrap_or((0, 0));
            end <= from
                || self
                    .parts
                    .iter()
                    .any(|p| p.partition == key.1 && p.topic == key.0 && p.next >= end)
        };
        if ends.keys().all(reached) {
            return true;
        }
        // In a group, only the assigned partitions are this consumer's to finish.
        match self.consumer.assignment() {
            Ok(assigned) if assigned.count() > 0 => assigned
                .elements()
                .iter()
                .all(|e| reached(&(e.topic().to_string(), e.partition()))),
            _ => false,
        }
    }
}

/// Partitions assigned and revoked since the pipeline last asked.
#[derive(Default)]
struct Changes {
    /// Assigned, by partition id.
    assigned: Vec<u32>,
    /// Revoked, by partition id.
    revoked: Vec<u32>,
}

/// A (topic, partition) the source knows.
struct Part {
    topic: String,
    partition: i32,
    /// `topic/partition`: the origin of its records.
    origin: Arc<str>,
    /// The offset after the last message read (-1: none read yet).
    next: i64,
    /// Messages below this offset were read before the checkpoint the run resumed from:
    /// they are in its window state already, and skipped (-1: none).
    skip_below: i64,
    /// What the partition's last commit recorded ([`Source::replay_floor`]).
    floor: Option<ReplayFloor>,
    /// The windows its last commit recorded as kept ([`Source::take_kept`]).
    kept: Vec<crate::window::KeptWindow>,
    /// Exactly once: the progress record of the last transaction, which committed by the
    /// time the next one is written ([`crate::source::Recorded::previous`]).
    last: Option<crate::source::Recorded>,
}

/// The consumer's `isolation.level`: `read_committed` under an exactly-once result sink
/// (aborted records of a transactional upstream never reach it), else `read_uncommitted`
/// (some Kafka-protocol brokers stall read_committed fetches after a rebalance; at least
/// once, results carry row ids). `[source.kafka.options]` may set either.
fn isolation(cfg: &KafkaSourceConfig, read_committed: bool) -> &str {
    match cfg.kafka.options.get("isolation.level") {
        Some(level) => level,
        None if read_committed => "read_committed",
        None => "read_uncommitted",
    }
}

/// The index (the watermark partition id) of a (topic, partition), given in the order
/// partitions are first assigned or seen; a new one is also pushed to `assigned`. A
/// consumer reads a handful of partitions, so a scan finds one without allocating.
fn part(parts: &mut Vec<Part>, assigned: &mut Vec<u32>, topic: &str, partition: i32) -> usize {
    if let Some(i) = parts
        .iter()
        .position(|p| p.partition == partition && p.topic == topic)
    {
        return i;
    }
    assigned.push(parts.len() as u32);
    parts.push(Part {
        topic: topic.to_string(),
        partition,
        origin: Arc::from(format!("{topic}/{partition}")),
        next: -1,
        skip_below: -1,
        floor: None,
        kept: Vec::new(),
        last: None,
    });
    parts.len() - 1
}

/// Whether a topic is in a subscription of names or `^` patterns.
fn subscribed(subscription: &[&str], topic: &str) -> bool {
    subscription.iter().any(|s| {
        if s.starts_with('^') {
            // librdkafka searches the name with the pattern (anchored only by its `^`).
            regex::Regex::new(s).is_ok_and(|r| r.is_match(topic))
        } else {
            *s == topic
        }
    })
}

impl Source for KafkaSource {
    fn poll(&mut self, out: &mut RawBatch, max: usize) -> Result<Poll, Error> {
        self.complete_revocation();
        if !self.kept.is_empty() {
            out.append(&self.kept);
            self.kept.clear();
            return Ok(Poll::Ready);
        }
        let deadline = Instant::now() + POLL_WAIT;
        let mut taken = 0;
        while taken < max {
            // Wait for the first message of the batch, then take what is already fetched.
            let wait = if taken == 0 {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            let Some(polled) = self.consumer.poll(wait) else {
                break;
            };
            let msg = match polled {
                Ok(m) => m,
                Err(e) => {
                    // librdkafka retries transient errors itself; report them and go on.
                    tracing::warn!(error = %e, "kafka consumer");
                    if Instant::now() >= deadline {
                        break;
                    }
                    continue;
                }
            };
            let (topic, partition, offset) = (msg.topic(), msg.partition(), msg.offset());
            let id = part(
                &mut self.parts,
                &mut self.changes.assigned,
                topic,
                partition,
            );
            if offset < self.parts[id].skip_below {
                // Replayed from the committed offset, and already in the checkpoint (whose
                // position `next` keeps).
                continue;
            }
            self.parts[id].next = offset + 1;
            taken += 1;
            self.read += 1;
            let origin = self.parts[id].origin.clone();
            let id = id as u32;
            let offset = u64::try_from(offset).unwrap_or(0);
            let bytes = msg.payload().unwrap_or_default();
            let problem = if msg.payload().is_none() {
                Some("the message has no value".to_string())
            } else if bytes.len() > self.max_record_bytes {
                Some(format!(
                    "record of {} bytes exceeds max_record_bytes ({} bytes)",
                    bytes.len(),
                    self.max_record_bytes
                ))
            } else {
                std::str::from_utf8(bytes)
                    .err()
                    .map(|e| format!("the message value is not UTF-8: {e}"))
            };
            match problem {
                None => {
                    let text = std::str::from_utf8(bytes).unwrap_or_default();
                    // Kafka writes -1 for a message without a timestamp.
                    let ts = msg.timestamp().to_millis().filter(|t| *t >= 0);
                    out.push_timestamped(
                        id,
                        &origin,
                        offset,
                        ts,
                        text.trim_end_matches(['\n', '\r']),
                    );
                }
                Some(reason) => {
                    let head =
                        String::from_utf8_lossy(&bytes[..bytes.len().min(REJECTED_HEAD_BYTES)])
                            .into_owned();
                    self.rejected.push(Rejected {
                        origin,
                        offset,
                        reason,
                        head,
                    });
                }
            }
        }
        self.track_rebalances();
        self.track_assignment();
        // Done once every partition reached the end it had at the start and a whole poll
        // brought nothing more: some brokers report a high watermark short of their last
        // batch, and what is already fetched is read to the end rather than left.
        Ok(if taken == 0 && self.at_end() {
            Poll::Done
        } else {
            Poll::Ready
        })
    }

    fn take_rejected(&mut self, out: &mut Vec<Rejected>) {
        out.append(&mut self.rejected);
    }

    fn hold(&mut self, held: bool) {
        if held != self.held {
            self.held = held;
            self.pause_assigned(held);
        }
    }

    /// Polls with every partition paused: the poll serves the group (it counts against
    /// `max.poll.interval.ms`) and its rebalances; a partition assigned meanwhile is paused
    /// in turn. A message that arrives anyway is kept for after the release.
    fn keep_alive(&mut self) -> Result<(), Error> {
        let mut kept = std::mem::take(&mut self.kept);
        // `kept` taken, the poll reads the consumer.
        let polled = self.poll(&mut kept, KEEP_ALIVE_MAX);
        self.kept = kept;
        self.pause_assigned(true);
        self.query_high_watermarks();
        polled.map(|_| ())
    }

    /// The high watermark (from librdkafka's statistics) minus the position: the offset after the last record this source handed out, else the
    /// consumer's own position or the group's committed offset.
    fn partition_lag(&self) -> Vec<PartitionLag> {
        let Ok(assigned) = self.consumer.assignment() else {
            return Vec::new();
        };
        let known = self.consumer.context().lock();
        assigned
            .elements()
            .iter()
            .filter_map(|e| {
                let (topic, partition) = (e.topic(), e.partition());
                let seen = known.partitions.get(&(topic.to_string(), partition))?;
                let part = self
                    .parts
                    .iter()
                    .position(|p| p.partition == partition && p.topic == topic);
                let read = part.map_or(-1, |id| self.parts[id].next);
                let position = read.max(seen.position);
                // Records polled while held are past `next` but not yet handed to the
                // pipeline: still its lag.
                let kept = part.map_or(0, |id| {
                    self.kept
                        .iter()
                        .filter(|r| r.partition as usize == id)
                        .count() as i64
                });
                (seen.high >= 0 && position >= 0).then(|| PartitionLag {
                    topic: topic.to_string(),
                    partition,
                    records: (seen.high - position).max(0) + kept,
                })
            })
            .collect()
    }

    /// Also reads what the last commit of each of them recorded (one query to the group's
    /// coordinator per assignment).
    fn take_assigned(&mut self, out: &mut Vec<u32>) {
        self.read_records();
        out.append(&mut self.changes.assigned);
    }

    fn keep_positions_in(
        &mut self,
        store: Arc<dyn crate::sink::PositionStore>,
    ) -> Result<(), Error> {
        self.keep_positions(store)
    }

    fn replay_floor(&self, partition: u32) -> Option<ReplayFloor> {
        self.parts.get(partition as usize).and_then(|p| p.floor)
    }

    fn take_kept(&mut self, partition: u32) -> Vec<crate::window::KeptWindow> {
        self.parts
            .get_mut(partition as usize)
            .map(|p| std::mem::take(&mut p.kept))
            .unwrap_or_default()
    }

    fn take_revoked(&mut self, out: &mut Vec<u32>) {
        out.append(&mut self.changes.revoked);
    }

    fn commits(&self) -> bool {
        true
    }

    fn commit_every(&self) -> Option<Duration> {
        Some(self.commit_every)
    }

    /// Commits the group's offsets: asynchronously (a lost commit only means a longer
    /// replay, and the next one supersedes it), but synchronously while a revocation waits
    /// to complete, since the partitions' new owner reads from what is committed.
    fn commit(&mut self, positions: &[Commit], kept: Option<&Kept>) -> Result<(), Error> {
        let mut tpl = TopicPartitionList::new();
        for c in positions {
            if let Some(p) = self.parts.get(c.partition as usize) {
                let offset = Offset::Offset(i64::try_from(c.offset).unwrap_or(i64::MAX));
                tpl.add_partition_offset(&p.topic, p.partition, offset)
                    .map_err(|e| Error::Kafka {
                        message: e.to_string(),
                    })?;
                if let Some(mut e) = tpl.find_partition(&p.topic, p.partition) {
                    e.set_metadata(commit_metadata(
                        c.floor,
                        i64::try_from(c.read).unwrap_or(i64::MAX),
                    ));
                }
            }
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        self.write_progress(positions, kept);
        tracing::debug!(offsets = %offsets(&tpl), "kafka commit");
        let mode = if self.consumer.context().revoking() {
            CommitMode::Sync
        } else {
            CommitMode::Async
        };
        if let Err(e) = self.consumer.commit(&tpl, mode) {
            // A partition revoked by a rebalance refuses its commit: its new owner replays.
            tracing::warn!(error = %e, "kafka offset commit");
        }
        Ok(())
    }

    /// The group's metadata and `positions` as topics and partitions, for a transaction
    /// (the source itself then commits nothing). Only partitions still assigned: a revoked
    /// one's new owner commits it.
    fn consumed(
        &mut self,
        positions: &[Commit],
        kept: Option<&Kept>,
    ) -> Result<Option<crate::sink::TxnOffsets>, Error> {
        // Before the transaction commits; a record of one that did not is ignored.
        self.write_progress(positions, kept);
        let kafka = |message: String| Error::Kafka { message };
        let assigned = self
            .consumer
            .assignment()
            .map_err(|e| kafka(e.to_string()))?;
        let mut moved = Vec::new();
        for c in positions {
            if let Some(p) = self.parts.get(c.partition as usize)
                && assigned.find_partition(&p.topic, p.partition).is_some()
            {
                moved.push(crate::sink::TxnPosition {
                    topic: p.topic.clone(),
                    partition: p.partition,
                    offset: i64::try_from(c.offset).unwrap_or(i64::MAX),
                    metadata: commit_metadata(c.floor, i64::try_from(c.read).unwrap_or(i64::MAX)),
                    record: Some(progress::value(&Self::recorded(c, kept))),
                });
            }
        }
        let group = self
            .consumer
            .group_metadata()
            .ok_or_else(|| kafka("the consumer has no group metadata".into()))?;
        Ok(Some(crate::sink::TxnOffsets {
            positions: moved,
            group: Box::new(group),
        }))
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn position(&self) -> u64 {
        self.read
    }

    /// Every partition known, in id order (the watermark partitions and offsets of the
    /// checkpoint are indexed by these ids), with the offset after its last message read.
    fn checkpoint(&self) -> Option<SourcePosition> {
        Some(SourcePosition::Kafka {
            next: self
                .parts
                .iter()
                .map(|p| (p.topic.clone(), p.partition, p.next))
                .collect(),
        })
    }

    /// Knows the checkpoint's partitions under the same ids, and skips what each had read:
    /// the consumer still starts at the group's committed offsets (at or before the
    /// checkpoint's), so a lost checkpoint costs a longer replay, never a record.
    fn restore(&mut self, position: &SourcePosition, _headers: &mut RawBatch) -> Result<(), Error> {
        let SourcePosition::Kafka { next } = position else {
            return Err(Error::Resume(format!(
                "the checkpoint was written for another kind of source ({position:?})"
            )));
        };
        self.parts.clear();
        // In a group, the first assignment says which of these partitions are still ours.
        self.unconfirmed = self.ends.is_none();
        for (topic, partition, next) in next {
            let mut ignored = Vec::new();
            let id = part(&mut self.parts, &mut ignored, topic, *partition);
            self.parts[id].next = *next;
            self.parts[id].skip_below = *next;
        }
        Ok(())
    }

    fn is_live(&self) -> bool {
        // Event time is compared with the watermark, as for a file: a topic is often a
        // replay of older events.
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_matches_names_and_anchored_patterns() {
        assert!(subscribed(&["ticks"], "ticks"));
        assert!(!subscribed(&["ticks"], "ticks-2"));
        assert!(subscribed(&["^ticks-.*"], "ticks-AAPL"));
        assert!(!subscribed(&["^ticks-.*"], "trades-AAPL"));
        // A pattern is searched, anchored only by its `^`, as librdkafka does.
        assert!(subscribed(&["^tick"], "ticks"));
        assert!(!subscribed(&["^icks"], "ticks"));
    }
}
