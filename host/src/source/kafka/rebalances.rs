//! The consumer's context: what the group's rebalances and librdkafka's statistics tell
//! the Kafka source, recorded on the consumer's callbacks and taken by the source at its
//! next poll.

use super::*;

/// The consumer's context: hears of the group's rebalances (on the pipeline's thread,
/// inside [`BaseConsumer::poll`]). An assignment is applied at once; a revocation is only
/// recorded, and completed by [`KafkaSource::complete_revocation`] at the next poll.
#[derive(Default)]
pub(super) struct Rebalances {
    pub(super) changes: Mutex<Changes>,
    /// Where the result sink keeps the positions ([`Source::keep_positions_in`]): an
    /// assigned partition starts at the offset stored there.
    pub(super) store: Mutex<Option<Arc<dyn crate::sink::PositionStore>>>,
}

impl Rebalances {
    /// Sets each partition of `tpl` the store has a position for to start there.
    fn start_at_stored(&self, tpl: &mut TopicPartitionList) {
        let store = self.store.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(store) = store else {
            return;
        };
        let parts: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        match store.positions(&parts) {
            Ok(stored) => {
                for ((topic, partition), (offset, _)) in stored {
                    if let Err(e) =
                        tpl.set_partition_offset(&topic, partition, Offset::Offset(offset))
                    {
                        tracing::warn!(error = %e, %topic, partition, "kafka: starting at the stored position");
                    }
                }
            }
            // The group's offsets are never ahead of the stored ones: reading from them
            // replays more, and the sink's upserts write the same rows again.
            Err(e) => {
                tracing::warn!(error = %e, "kafka: the stored positions could not be read; starting from the group's offsets")
            }
        }
    }
}

/// (topic, partition) pairs.
pub(super) type Partitions = Vec<(String, i32)>;

#[derive(Default)]
pub(super) struct Changes {
    pub(super) assigned: Partitions,
    pub(super) revoked: Partitions,
    /// The revoked partitions, until the revocation is completed.
    pub(super) pending: Option<TopicPartitionList>,
    /// What the statistics last said of each partition.
    pub(super) partitions: HashMap<(String, i32), Seen>,
}

/// A partition's ends as librdkafka last reported them (-1: not known).
#[derive(Debug, Clone, Copy)]
pub(super) struct Seen {
    /// The high watermark: the offset the next record produced will get.
    pub(super) high: i64,
    /// The consumer's position (after the last message handed out), else the group's
    /// committed offset.
    pub(super) position: i64,
}

impl Rebalances {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Changes> {
        // A panic while holding the lock leaves plain lists: still usable.
        self.changes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The partitions assigned and revoked since the last call.
    pub(super) fn take_changes(&self) -> (Partitions, Partitions) {
        let mut c = self.lock();
        (
            std::mem::take(&mut c.assigned),
            std::mem::take(&mut c.revoked),
        )
    }

    /// Whether a revocation waits to be completed.
    pub(super) fn revoking(&self) -> bool {
        self.lock().pending.is_some()
    }

    /// The revocation waiting to be completed, if any.
    pub(super) fn take_pending(&self) -> Option<TopicPartitionList> {
        self.lock().pending.take()
    }
}

/// `topic/partition@offset, …`, for logs.
pub(super) fn offsets(tpl: &TopicPartitionList) -> String {
    let names: Vec<String> = tpl
        .elements()
        .iter()
        .map(|e| format!("{}/{}@{:?}", e.topic(), e.partition(), e.offset()))
        .collect();
    names.join(", ")
}

/// `topic/partition, …`, for logs.
pub(super) fn names(tpl: &TopicPartitionList) -> String {
    let names: Vec<String> = tpl
        .elements()
        .iter()
        .map(|e| format!("{}/{}", e.topic(), e.partition()))
        .collect();
    names.join(", ")
}

impl ClientContext for Rebalances {
    /// librdkafka's statistics, every `statistics.interval.ms`: each partition's high
    /// watermark and position, for [`Source::partition_lag`].
    fn stats(&self, statistics: rdkafka::Statistics) {
        let mut c = self.lock();
        for (name, topic) in &statistics.topics {
            // Partition -1 is librdkafka's internal "unassigned" queue.
            for p in topic.partitions.values().filter(|p| p.partition >= 0) {
                let seen = c
                    .partitions
                    .entry((name.clone(), p.partition))
                    .or_insert(Seen {
                        high: -1,
                        position: -1,
                    });
                // A paused partition is not fetched: its statistics may lag behind what
                // the held source queries itself (`KafkaSource::keep_alive`). A high
                // watermark never goes back.
                seen.high = seen.high.max(p.hi_offset);
                seen.position = p.app_offset.max(p.committed_offset);
            }
        }
    }
}

impl ConsumerContext for Rebalances {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let parts = || {
            tpl.elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect::<Vec<_>>()
        };
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                tracing::info!(partitions = %names(tpl), "kafka rebalance: assigned");
                let assigned = parts();
                self.start_at_stored(tpl);
                let applied = match consumer.rebalance_protocol() {
                    RebalanceProtocol::Cooperative => consumer.incremental_assign(tpl),
                    _ => consumer.assign(tpl),
                };
                match applied {
                    Ok(()) => self.lock().assigned.extend(assigned),
                    Err(e) => tracing::warn!(error = %e, "kafka: applying an assignment"),
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                tracing::info!(partitions = %names(tpl), lost = consumer.assignment_lost(), "kafka rebalance: revoked");
                let mut c = self.lock();
                c.revoked.extend(parts());
                c.pending = Some(tpl.clone());
            }
            other => {
                // As librdkafka's default: drop the assignment, as a revocation.
                tracing::warn!(error = ?other, "kafka rebalance failed");
                let current = consumer.assignment().unwrap_or_default();
                let mut c = self.lock();
                c.revoked.extend(
                    current
                        .elements()
                        .iter()
                        .map(|e| (e.topic().to_string(), e.partition())),
                );
                c.pending = Some(current);
            }
        }
    }
}
