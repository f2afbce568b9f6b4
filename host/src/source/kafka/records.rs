//! What the Kafka source records beside its positions and reads back: each partition's
//! progress record (floor, read position, kept windows) written to the progress topic,
//! and the floors and kept windows a result sink stored with its positions.

use std::sync::Arc;

use rdkafka::consumer::Consumer;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::{Error, KafkaSource, QUERY_TIMEOUT, offsets, progress};
use crate::source::{Commit, Kept, ReplayFloor};

/// The commit metadata of a partition: `weir:<watermark>:<offset after the last record
/// read>`.
pub(super) fn commit_metadata(watermark: i64, next: i64) -> String {
    format!("weir:{watermark}:{}", next.max(0))
}

/// Reads [`commit_metadata`] back.
pub(super) fn parse_commit_metadata(m: &str) -> Option<ReplayFloor> {
    let mut it = m.strip_prefix("weir:")?.split(':');
    let watermark = it.next()?.parse().ok()?;
    let read = it.next()?.parse().ok()?;
    Some(ReplayFloor { watermark, read })
}

impl KafkaSource {
    /// For the partitions just assigned, the floors and kept windows the result sink
    /// stored with their positions: they override the group's.
    pub(super) fn take_stored(&mut self, store: Arc<dyn crate::sink::PositionStore>) {
        let parts: Vec<(String, i32)> = self
            .changes
            .assigned
            .iter()
            .filter_map(|&id| self.parts.get(id as usize))
            .map(|p| (p.topic.clone(), p.partition))
            .collect();
        match store.positions(&parts) {
            Ok(stored) => {
                for &id in &self.changes.assigned {
                    let Some(p) = self.parts.get_mut(id as usize) else {
                        continue;
                    };
                    let Some((_, record)) = stored.get(&(p.topic.clone(), p.partition)) else {
                        continue;
                    };
                    match progress::parse_value(record) {
                        Some(r) => {
                            let resumed = r.resume(Some(r.floor), true, id);
                            p.floor = resumed.floor;
                            p.kept = resumed.windows;
                            p.last = resumed.record;
                        }
                        None => {
                            tracing::warn!(partition = %p.origin, "kafka: the stored record cannot be read")
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "kafka: the stored positions could not be read; the floors come from the group's commits")
            }
        }
    }

    /// What the progress topic records for the position `c` and the kept windows.
    pub(super) fn recorded(c: &Commit, kept: Option<&Kept>) -> crate::source::Recorded {
        crate::source::Recorded {
            floor: ReplayFloor {
                watermark: c.floor,
                read: c.read,
            },
            kept: kept.map(|k| {
                let mine = k.windows.iter().filter(|w| w.partition == c.partition);
                (k.through, mine.cloned().collect())
            }),
            previous: None,
        }
    }

    /// Writes each partition's floor, read position and kept windows to the progress
    /// topic, before the offsets they go with are committed. A topic that cannot be
    /// written is not tried again, so commits never wait on it; the commit's metadata
    /// still carries the floors.
    pub(super) fn write_progress(&mut self, positions: &[Commit], kept: Option<&Kept>) {
        let Some(progress) = &self.progress else {
            return;
        };
        let exactly_once = self.exactly_once;
        let mut entries: Vec<progress::Entry> = Vec::with_capacity(positions.len());
        for c in positions {
            let Some(p) = self.parts.get_mut(c.partition as usize) else {
                continue;
            };
            let record = Self::recorded(c, kept);
            // Exactly once, the last record's transaction committed by now (or this
            // pipeline failed): it goes beside the new one, whose may never commit.
            let previous = if exactly_once {
                p.last.replace(record.clone()).map(Box::new)
            } else {
                None
            };
            entries.push((
                p.topic.clone(),
                p.partition,
                crate::source::Recorded { previous, ..record },
            ));
        }
        if let Err(e) = progress.write(&entries) {
            tracing::warn!(error = %e, "kafka: the progress topic was not written: from now on the floors go only in the commits' metadata");
            self.progress = None;
        }
    }
}

impl KafkaSource {
    /// For the partitions just assigned, what their last commit recorded: the committed
    /// offsets' metadata (one query to the group's coordinator), the progress topic, and a
    /// result sink's stored positions.
    pub(super) fn read_records(&mut self) {
        if !self.changes.assigned.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for &id in &self.changes.assigned {
                if let Some(p) = self.parts.get(id as usize) {
                    tpl.add_partition(&p.topic, p.partition);
                }
            }
            match self.consumer.committed_offsets(tpl, QUERY_TIMEOUT) {
                Ok(committed) => {
                    for e in committed.elements() {
                        if let Some(p) = self
                            .parts
                            .iter_mut()
                            .find(|p| p.partition == e.partition() && p.topic == e.topic())
                        {
                            p.floor = parse_commit_metadata(e.metadata());
                            tracing::debug!(partition = %p.origin, offset = ?e.offset(), metadata = e.metadata(), "kafka: the partition's last commit");
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "kafka: reading the committed offsets' metadata")
                }
            }
            // The progress topic keeps what a broker may have dropped from the metadata;
            // it is written before the offsets, so it may be ahead of them, never behind.
            if let Some(progress) = &self.progress {
                let read = progress.read();
                if read.is_err() {
                    // Not asked again: a topic that cannot be read would slow every
                    // assignment down; the commit metadata still carries the floors.
                    self.progress = None;
                }
                match read {
                    Ok(records) => {
                        tracing::debug!(partitions = records.len(), "kafka: the progress topic");
                        for &id in &self.changes.assigned {
                            if let Some(p) = self.parts.get_mut(id as usize)
                                && let Some(r) = records.get(&(p.topic.clone(), p.partition))
                            {
                                let resumed = r.resume(p.floor, self.exactly_once, id);
                                p.floor = resumed.floor;
                                p.kept = resumed.windows;
                                p.last = resumed.record;
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "kafka: reading the progress topic failed: from now on the floors come only from the commits' metadata")
                    }
                }
            }
        }
        if let Some(store) = &self.store
            && !self.changes.assigned.is_empty()
        {
            self.take_stored(store.clone());
        }
    }

    /// [`crate::source::Source::keep_positions_in`].
    pub(super) fn keep_positions(
        &mut self,
        store: Arc<dyn crate::sink::PositionStore>,
    ) -> Result<(), Error> {
        let kafka = |message: String| Error::Kafka { message };
        *self
            .consumer
            .context()
            .store
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(store.clone());
        self.store = Some(store.clone());
        // A bounded replay assigned its partitions already, from the group's offsets:
        // from the stored ones instead.
        if let Some(ends) = &mut self.ends {
            let parts: Vec<(String, i32)> = ends.keys().cloned().collect();
            let stored = store.positions(&parts).map_err(kafka)?;
            if !stored.is_empty() {
                let mut tpl = TopicPartitionList::new();
                for ((topic, partition), at) in ends.iter_mut() {
                    let offset = match stored.get(&(topic.clone(), *partition)) {
                        Some(&(o, _)) => {
                            at.1 = o;
                            Offset::Offset(o)
                        }
                        None => Offset::Stored,
                    };
                    tpl.add_partition_offset(topic, *partition, offset)
                        .map_err(|e| kafka(e.to_string()))?;
                }
                tracing::debug!(offsets = %offsets(&tpl), "kafka: starting at the stored positions");
                self.consumer
                    .assign(&tpl)
                    .map_err(|e| kafka(e.to_string()))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_metadata_reads_back_and_foreign_metadata_is_ignored() {
        let m = commit_metadata(1_705_881_600_000, 1_234);
        assert_eq!(m, "weir:1705881600000:1234");
        assert_eq!(
            parse_commit_metadata(&m),
            Some(ReplayFloor {
                watermark: 1_705_881_600_000,
                read: 1_234
            })
        );
        // Before the first event: the lowest watermark; nothing read yet: offset 0.
        assert_eq!(
            parse_commit_metadata(&commit_metadata(i64::MIN, -1)),
            Some(ReplayFloor {
                watermark: i64::MIN,
                read: 0
            })
        );
        for other in ["", "weir:", "weir:x:1", "flink:1:2", "weir:5"] {
            assert_eq!(parse_commit_metadata(other), None, "{other}");
        }
    }
}
