//! Watermarks: `W = max(event time seen) - delay`, per partition, combined as the minimum over
//! partitions that are not idle (Flink's `withIdleness`).

use std::time::{Duration, Instant};

/// Watermark before any event: nothing is late and nothing fires.
pub const NO_WATERMARK: i64 = i64::MIN;

#[derive(Debug, Clone)]
struct Partition {
    max_ts: i64,
    last_seen: Instant,
}

/// Tracks the watermark of a pipeline over one or more input partitions.
///
/// The pipeline watermark never goes backwards, even when a partition that was idle
/// comes back with older data.
#[derive(Debug, Clone)]
pub struct Watermarks {
    delay: i64,
    idle_timeout: Option<Duration>,
    partitions: Vec<Option<Partition>>,
    current: i64,
}

impl Watermarks {
    /// A tracker with the given delay (ms) and optional idleness timeout.
    pub fn new(delay_ms: i64, idle_timeout: Option<Duration>) -> Self {
        Watermarks {
            delay: delay_ms,
            idle_timeout,
            partitions: Vec::new(),
            current: NO_WATERMARK,
        }
    }

    /// The pipeline watermark as it stands.
    pub fn current(&self) -> i64 {
        self.current
    }

    /// The latest event time seen in any partition, `None` before the first event.
    pub fn max_event_time(&self) -> Option<i64> {
        self.partitions
            .iter()
            .flatten()
            .map(|p| p.max_ts)
            .filter(|&t| t != NO_WATERMARK)
            .max()
    }

    /// Records an event of `partition` at event time `ts` and returns the new watermark.
    pub fn observe(&mut self, partition: u32, ts: i64, now: Instant) -> i64 {
        let i = partition as usize;
        if self.partitions.len() <= i {
            self.partitions.resize(i + 1, None);
        }
        let p = self.partitions[i].get_or_insert(Partition {
            max_ts: ts,
            last_seen: now,
        });
        p.max_ts = p.max_ts.max(ts);
        p.last_seen = now;
        self.recompute(now)
    }

    /// Registers a partition that will deliver events (a Kafka partition just assigned)
    /// before its first event: until it delivers one, or stays silent for `idle_timeout`,
    /// it holds the watermark back, so the partitions that deliver first cannot make its
    /// events late. A partition already known is left as it is.
    pub fn expect(&mut self, partition: u32, now: Instant) {
        let i = partition as usize;
        if self.partitions.len() <= i {
            self.partitions.resize(i + 1, None);
        }
        self.partitions[i].get_or_insert(Partition {
            max_ts: NO_WATERMARK,
            last_seen: now,
        });
    }

    /// Forgets a partition (revoked by a consumer-group rebalance): it no longer holds the
    /// watermark back. Once no partition is left, the watermark starts over from
    /// [`NO_WATERMARK`]: a pipeline left without partitions holds no window state (the
    /// revoked partitions' keys were dropped with them), and the partitions it is given next
    /// are read from their committed offsets, behind the watermark it had. While some
    /// partition is left the watermark stays where it is, never going backwards.
    pub fn forget(&mut self, partition: u32) {
        if let Some(p) = self.partitions.get_mut(partition as usize) {
            *p = None;
        }
        if self.partitions.iter().all(Option::is_none) {
            self.current = NO_WATERMARK;
        }
    }

    /// Re-evaluates idleness without a new event (call on a timer for unbounded sources).
    pub fn tick(&mut self, now: Instant) -> i64 {
        self.recompute(now)
    }

    fn recompute(&mut self, now: Instant) -> i64 {
        let active = self
            .partitions
            .iter()
            .flatten()
            .filter(|p| match self.idle_timeout {
                Some(t) => now.saturating_duration_since(p.last_seen) < t,
                None => true,
            });
        if let Some(min) = active.map(|p| p.max_ts).min() {
            // Saturating: event times are inside the valid range and the delay is bounded by
            // config, so this never saturates; if it did, W would stay low (nothing fires
            // early), never wrap to the far future.
            self.current = self.current.max(min.saturating_sub(self.delay));
        }
        self.current
    }
}

/// What a checkpoint keeps of a [`Watermarks`]: the pipeline watermark and each partition's
/// greatest event time (`None`: expected, nothing seen yet). No `Instant`: every partition's
/// idleness counts from the restore.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WatermarkState {
    /// The pipeline watermark.
    pub current: i64,
    /// Per partition id, its greatest event time (`i64::MIN` before its first event);
    /// `None` for an id never used.
    pub partitions: Vec<Option<i64>>,
}

impl Watermarks {
    /// The state to checkpoint.
    pub fn snapshot(&self) -> WatermarkState {
        WatermarkState {
            current: self.current,
            partitions: self
                .partitions
                .iter()
                .map(|p| p.as_ref().map(|p| p.max_ts))
                .collect(),
        }
    }

    /// Takes back a checkpointed state, every partition seen `now`.
    pub fn restore(&mut self, state: &WatermarkState, now: Instant) {
        self.current = self.current.max(state.current);
        self.partitions = state
            .partitions
            .iter()
            .map(|p| {
                p.map(|max_ts| Partition {
                    max_ts,
                    last_seen: now,
                })
            })
            .collect();
    }
}

/// How many records read right after a bounded source's first record vote on whether it
/// may anchor the watermark ([`outlying_anchor`]).
pub const ANCHOR_WITNESSES: usize = 8;

/// Which way an outlying first record lies from the records after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outlier {
    /// Far behind them (epoch 0, year 1000): it would hold the watermark in the past and
    /// make every later record "too far ahead".
    Behind,
    /// Far ahead of them (yet within `max_future` of wall clock): it would move the
    /// watermark past every later record and make them all late.
    Ahead,
}

/// Whether `first`, the event time that would anchor a bounded source's watermark, is an
/// outlier among `witnesses`, the event times of the records read right after it (at most
/// [`ANCHOR_WITNESSES`]): so that no single record decides where event time starts.
///
/// The times are joined into runs where consecutive times (sorted) lie at most `max_future`
/// apart, the gap a watermark may jump. `first` is an outlier when the witnesses outside its
/// run are at least two and outnumber those inside it. Sorted input with gaps below
/// `max_future` is one run, however sparse; disorder within `max_future` is one run too.
/// Returns which way it lies and how many witnesses lie that way, beyond its run.
pub fn outlying_anchor(first: i64, witnesses: &[i64], max_future: i64) -> Option<(Outlier, usize)> {
    let mut times: Vec<i64> = witnesses.to_vec();
    times.push(first);
    times.sort_unstable();
    // The run around `first`: extend down and up from it while the gap is within bounds.
    let at = times.partition_point(|&t| t < first);
    let mut lo = at;
    while lo > 0 && times[lo] - times[lo - 1] <= max_future {
        lo -= 1;
    }
    let mut hi = at;
    while hi + 1 < times.len() && times[hi + 1] - times[hi] <= max_future {
        hi += 1;
    }
    let (low, high) = (times[lo], times[hi]);
    let inside = witnesses
        .iter()
        .filter(|&&t| (low..=high).contains(&t))
        .count();
    let above = witnesses.iter().filter(|&&t| t > high).count();
    let outside = witnesses.len() - inside;
    (outside >= 2 && outside > inside).then(|| {
        if above * 2 >= outside {
            (Outlier::Behind, above)
        } else {
            (Outlier::Ahead, outside - above)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn a_first_record_far_behind_the_records_after_it_is_an_outlier() {
        let t = 1_705_881_600_000; // 2024-01-22
        let after: Vec<i64> = (1..=8).map(|i| t + i * 1_000).collect();
        // Epoch 0 and the year 1000, before a day of 2024.
        assert_eq!(
            outlying_anchor(0, &after, 7 * DAY),
            Some((Outlier::Behind, 8))
        );
        assert_eq!(
            outlying_anchor(-30_610_224_000_000, &after, 7 * DAY),
            Some((Outlier::Behind, 8))
        );
        // Two years ahead of them (but not of wall clock).
        assert_eq!(
            outlying_anchor(t + 730 * DAY, &after, 7 * DAY),
            Some((Outlier::Ahead, 8))
        );
    }

    #[test]
    fn sparse_sorted_or_disordered_input_keeps_its_first_record() {
        let t = 1_705_881_600_000;
        // One record every 2 days: 16 days in 9 records, every gap under 7 days.
        let every_2d: Vec<i64> = (1..=8).map(|i| t + i * 2 * DAY).collect();
        assert_eq!(outlying_anchor(t, &every_2d, 7 * DAY), None);
        // Disorder of up to 5 s around a 1 s cadence.
        let jittered = [t - 4_000, t + 3_000, t - 1_000, t + 5_000, t + 2_000];
        assert_eq!(outlying_anchor(t, &jittered, 1_000_000), None);
        // A legitimate first record followed by one outlier: the outlier does not decide.
        assert_eq!(outlying_anchor(t, &[0, t + 1, t + 2], 7 * DAY), None);
    }

    #[test]
    fn one_or_two_witnesses_never_outvote_the_first_record_alone() {
        let t = 1_705_881_600_000;
        // Nothing to compare with, or a single record against it: a tie is no evidence.
        assert_eq!(outlying_anchor(0, &[], 7 * DAY), None);
        assert_eq!(outlying_anchor(0, &[t], 7 * DAY), None);
        // Two agreeing records against it: it goes.
        assert_eq!(
            outlying_anchor(0, &[t, t + 1], 7 * DAY),
            Some((Outlier::Behind, 2))
        );
        // Half with it, half against: it stays.
        assert_eq!(outlying_anchor(0, &[1, 2, t, t + 1], 7 * DAY), None);
    }

    #[test]
    fn single_partition_trails_max_by_delay() {
        let now = Instant::now();
        let mut w = Watermarks::new(1000, None);
        assert_eq!(w.current(), NO_WATERMARK);
        assert_eq!(w.observe(0, 5000, now), 4000);
        assert_eq!(
            w.observe(0, 3000, now),
            4000,
            "older event does not move W back"
        );
        assert_eq!(w.observe(0, 7500, now), 6500);
    }

    #[test]
    fn range_edges_with_the_longest_delay() {
        use crate::time::{MAX_DURATION_MS, MAX_EVENT_TIME, MIN_EVENT_TIME};
        let now = Instant::now();
        let mut w = Watermarks::new(MAX_DURATION_MS, None);
        assert_eq!(
            w.observe(0, MIN_EVENT_TIME, now),
            MIN_EVENT_TIME - MAX_DURATION_MS
        );
        assert_eq!(
            w.observe(0, MAX_EVENT_TIME, now),
            MAX_EVENT_TIME - MAX_DURATION_MS
        );
        // Out-of-range input cannot reach here (decoding refuses it), and would saturate.
        assert_eq!(Watermarks::new(1, None).observe(0, i64::MIN, now), i64::MIN);
    }

    #[test]
    fn an_expected_partition_holds_the_watermark_until_it_delivers_or_idles() {
        let t0 = Instant::now();
        let mut w = Watermarks::new(0, Some(Duration::from_secs(10)));
        w.expect(1, t0);
        assert_eq!(
            w.observe(0, 5_000, t0),
            NO_WATERMARK,
            "partition 1 has said nothing"
        );
        assert_eq!(w.observe(1, 3_000, t0), 3_000);
        // Expecting a partition already seen changes nothing.
        w.expect(1, t0);
        assert_eq!(w.observe(0, 6_000, t0), 3_000);
        // A partition that never delivers stops holding W back after idle_timeout.
        w.expect(2, t0);
        assert_eq!(w.observe(1, 9_000, t0), 3_000);
        assert_eq!(
            w.tick(t0 + Duration::from_secs(11)),
            3_000,
            "0 and 1 idle too"
        );
        assert_eq!(w.observe(0, 7_000, t0 + Duration::from_secs(11)), 7_000);
    }

    #[test]
    fn a_forgotten_partition_stops_holding_the_watermark_and_none_left_starts_over() {
        let t0 = Instant::now();
        let mut w = Watermarks::new(0, None);
        assert_eq!(w.observe(0, 9_000, t0), 9_000);
        assert_eq!(w.observe(1, 2_000, t0), 9_000, "W never goes backwards");
        w.expect(2, t0);
        assert_eq!(w.observe(0, 12_000, t0), 9_000, "held by 1 and 2");
        // Partition 1 revoked: still held by 2, which has said nothing.
        w.forget(1);
        assert_eq!(w.tick(t0), 9_000);
        w.forget(2);
        assert_eq!(w.tick(t0), 12_000, "only partition 0 is left");
        // A partition never seen changes nothing.
        w.forget(9);
        assert_eq!(w.current(), 12_000);
        // The last one revoked: no watermark until the next assignment delivers, and the
        // partition given next is not behind anything.
        w.forget(0);
        assert_eq!(w.current(), NO_WATERMARK);
        w.expect(1, t0);
        assert_eq!(w.observe(0, 4_000, t0), NO_WATERMARK);
        assert_eq!(w.observe(1, 3_000, t0), 3_000);
    }

    #[test]
    fn minimum_over_partitions_until_one_goes_idle() {
        let t0 = Instant::now();
        let mut w = Watermarks::new(0, Some(Duration::from_secs(10)));
        assert_eq!(w.observe(1, 2_000, t0), 2_000);
        assert_eq!(w.observe(0, 10_000, t0), 2_000, "held back by partition 1");
        // Partition 1 silent for 11 s: only partition 0 counts.
        assert_eq!(w.observe(0, 20_000, t0 + Duration::from_secs(11)), 20_000);
        // It comes back with old data: W does not go backwards.
        assert_eq!(w.observe(1, 3_000, t0 + Duration::from_secs(12)), 20_000);
    }
}
