//! Which source offsets may be committed (Kafka): per partition, the oldest offset still
//! needed — the first record whose windows may not all have fired and been acknowledged by
//! the sinks. A record's *release* time is the watermark at which its last window has been
//! fired and purged (`end + allowed_lateness` of the last window containing it); a record
//! that went to the dead letter, or was filtered, is released at once. Records are kept in
//! offset order per partition, so the position to commit is the first one not released.

use std::collections::VecDeque;

/// Released at once (dead letters, filtered records).
pub const RELEASED: i64 = i64::MIN;

/// Offsets and release times of the records read, per partition.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Offsets {
    parts: Vec<Part>,
}

#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
struct Part {
    /// (offset, release time), in offset order.
    queue: VecDeque<(u64, i64)>,
    /// The offset after the last record read.
    next: Option<u64>,
    /// The position last committed.
    committed: Option<u64>,
}

impl Offsets {
    /// Records that the record at `offset` of `partition` is released at watermark
    /// `release`. Records of a partition come in offset order.
    pub fn record(&mut self, partition: u32, offset: u64, release: i64) {
        let i = partition as usize;
        if self.parts.len() <= i {
            self.parts.resize(i + 1, Part::default());
        }
        let p = &mut self.parts[i];
        p.queue.push_back((offset, release));
        p.next = Some(offset + 1);
    }

    /// The positions to commit now that every window ending at or before `watermark` has
    /// fired and its rows were acknowledged: per partition whose position moved, the offset
    /// of its first record not released (or the one after its last record).
    pub fn due(&mut self, watermark: i64) -> Vec<(u32, u64)> {
        let mut due = Vec::new();
        for (i, p) in self.parts.iter_mut().enumerate() {
            while p.queue.front().is_some_and(|&(_, r)| r <= watermark) {
                p.queue.pop_front();
            }
            let position = p.queue.front().map(|&(o, _)| o).or(p.next);
            if let Some(pos) = position
                && p.committed != Some(pos)
            {
                p.committed = Some(pos);
                due.push((i as u32, pos));
            }
        }
        due
    }

    /// Forgets a partition (revoked by a consumer-group rebalance): its records are no
    /// longer this pipeline's to commit, and if it is assigned again it is read again from
    /// its committed offset, so its offsets start over.
    pub fn forget(&mut self, partition: u32) {
        if let Some(p) = self.parts.get_mut(partition as usize) {
            *p = Part::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_position_is_the_first_record_still_needed() {
        let mut o = Offsets::default();
        // Partition 0: offsets 10..=13 released at 5 000, at once, at 3 000, at 9 000.
        o.record(0, 10, 5_000);
        o.record(0, 11, RELEASED);
        o.record(0, 12, 3_000);
        o.record(0, 13, 9_000);
        // Partition 1: one dead letter.
        o.record(1, 7, RELEASED);
        // At W = 4 000, record 10 is still needed (12 is released, but behind it).
        assert_eq!(o.due(4_000), [(0, 10), (1, 8)]);
        // Nothing moved: nothing to commit again.
        assert_eq!(o.due(4_500), []);
        // At W = 5 000, 10, 11 and 12 are released; 13 is needed.
        assert_eq!(o.due(5_000), [(0, 13)]);
        assert_eq!(o.due(9_000), [(0, 14)]);
    }

    #[test]
    fn a_forgotten_partition_commits_nothing_and_starts_over_when_read_again() {
        let mut o = Offsets::default();
        o.record(0, 10, 5_000);
        o.record(1, 20, 5_000);
        assert_eq!(o.due(1_000), [(0, 10), (1, 20)]);
        o.record(1, 21, 6_000);
        o.forget(1);
        o.forget(4);
        // Partition 1 is no longer ours: nothing of it is committed, even when released.
        assert_eq!(o.due(9_000), [(0, 11)]);
        // Assigned again, it is read again from its committed offset, 20.
        o.record(1, 20, 5_000);
        o.record(1, 21, 6_000);
        assert_eq!(o.due(5_500), [(1, 21)]);
    }
}
