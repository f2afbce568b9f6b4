//! Which source offsets may be committed (Kafka): per partition, the oldest offset still
//! needed — the first record whose windows may not all have fired and been acknowledged by
//! the sinks. A record's *release* time is the watermark at which its last window has been
//! fired and purged (`end + allowed_lateness` of the last window containing it); a record
//! that went to the dead letter, or was filtered, is released at once. Records are kept in
//! offset order per partition, so the position to commit is the first one not released.

use std::collections::VecDeque;

use crate::source::{Commit, ReplayFloor};

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
    /// The position and replay floor last committed.
    committed: Option<(u64, i64)>,
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

    /// The positions to commit now that every window ending at or before `release` has
    /// fired and its rows were acknowledged: per partition, the offset of its first record
    /// not released (or the one after its last record), with `floor` as its replay floor —
    /// never below the floor its reading started from (`floors`, per partition: a restart
    /// whose watermark has not caught up yet must not lower it). Only partitions whose
    /// position or floor changed since the last commit, unless `every`: a transaction that
    /// commits rows carries every partition's position and floor, so that the windows those
    /// rows came from never fire again.
    pub fn due(
        &mut self,
        release: i64,
        floor: i64,
        every: bool,
        floors: &[Option<ReplayFloor>],
    ) -> Vec<Commit> {
        let mut due = Vec::new();
        for (i, p) in self.parts.iter_mut().enumerate() {
            while p.queue.front().is_some_and(|&(_, r)| r <= release) {
                p.queue.pop_front();
            }
            let position = p.queue.front().map(|&(o, _)| o).or(p.next);
            let (floor, read) = match floors.get(i).copied().flatten() {
                Some(f) => (floor.max(f.watermark), p.next.unwrap_or(0).max(f.read)),
                None => (floor, p.next.unwrap_or(0)),
            };
            if let Some(pos) = position
                && (every || p.committed != Some((pos, floor)))
            {
                p.committed = Some((pos, floor));
                due.push(Commit {
                    partition: i as u32,
                    offset: pos,
                    floor,
                    read,
                });
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

    /// The (partition, offset) pairs of `due`.
    fn at(due: Vec<Commit>) -> Vec<(u32, u64)> {
        due.iter().map(|c| (c.partition, c.offset)).collect()
    }

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
        assert_eq!(at(o.due(4_000, 4_000, false, &[])), [(0, 10), (1, 8)]);
        // Nothing moved: nothing to commit again.
        assert_eq!(at(o.due(4_500, 4_000, false, &[])), []);
        // The floor moved, not the positions: both are committed again, with the new floor.
        assert_eq!(at(o.due(4_500, 4_500, false, &[])), [(0, 10), (1, 8)]);
        // A transaction carries every position, moved or not.
        assert_eq!(at(o.due(4_500, 4_500, true, &[])), [(0, 10), (1, 8)]);
        // At W = 5 000, 10, 11 and 12 are released; 13 is needed.
        assert_eq!(at(o.due(5_000, 4_500, false, &[])), [(0, 13)]);
        assert_eq!(at(o.due(9_000, 4_500, false, &[])), [(0, 14)]);
    }

    #[test]
    fn a_forgotten_partition_commits_nothing_and_starts_over_when_read_again() {
        let mut o = Offsets::default();
        o.record(0, 10, 5_000);
        o.record(1, 20, 5_000);
        assert_eq!(at(o.due(1_000, 1_000, false, &[])), [(0, 10), (1, 20)]);
        o.record(1, 21, 6_000);
        o.forget(1);
        o.forget(4);
        // Partition 1 is no longer ours: nothing of it is committed, even when released.
        assert_eq!(at(o.due(9_000, 1_000, false, &[])), [(0, 11)]);
        // Assigned again, it is read again from its committed offset, 20.
        o.record(1, 20, 5_000);
        o.record(1, 21, 6_000);
        assert_eq!(at(o.due(5_500, 1_000, false, &[])), [(1, 21)]);
    }

    #[test]
    fn the_floor_and_the_read_position_never_go_back_below_where_reading_started() {
        let mut o = Offsets::default();
        o.record(0, 10, 5_000);
        o.record(1, 20, 5_000);
        // Partition 0 was read from a commit with floor 3 000 and read position 15; the
        // watermark of this run is still at 1 000. Partition 1 has no floor.
        let floors = [
            Some(ReplayFloor {
                watermark: 3_000,
                read: 15,
            }),
            None,
        ];
        let due = o.due(1_000, 1_000, true, &floors);
        assert_eq!(
            due,
            [
                Commit {
                    partition: 0,
                    offset: 10,
                    floor: 3_000,
                    read: 15
                },
                Commit {
                    partition: 1,
                    offset: 20,
                    floor: 1_000,
                    read: 21
                }
            ]
        );
        // Past the old floor, the new one counts.
        let due = o.due(4_000, 4_000, true, &floors);
        assert_eq!((due[0].floor, due[1].floor), (4_000, 4_000));
    }
}
