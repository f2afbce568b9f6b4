//! Sources: where raw records come from (files, stdin, the synthetic generator, Kafka).
//!
//! A source only frames input into records and says where each came from; it does not parse
//! fields (that is `decode`) and knows nothing of time or windows. Every record carries a
//! partition and an offset so that the pipeline can keep per-partition watermarks now and,
//! with Kafka, commit offsets later.

mod file;
mod generator;
mod kafka;

use std::sync::Arc;

pub use file::{FileSource, StdinSource};
pub use kafka::KafkaSource;

/// The most payload bytes one [`Source::poll`] of a line-framed source appends (besides its
/// `max` records): a batch of 4 096 records of up to `max_record_bytes` each would otherwise
/// hold gigabytes. The poll that crosses it stops after that record, so a batch holds at
/// most this plus one record.
pub const BATCH_BYTES: usize = 8 << 20;

/// How much of a record too long to keep is shown in its dead-letter row.
pub const REJECTED_HEAD_BYTES: usize = 1024;
pub use generator::{Generator, GeneratorSource, write_generated};

/// One raw record, as framed by a source: a view into a [`RawBatch`].
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    /// Input partition (a Kafka partition later; 0 for files, stdin and the generator).
    pub partition: u32,
    /// Where it came from: a file path, `stdin`, `generator`.
    pub origin: &'a Arc<str>,
    /// Position within `origin`: the 1-based line number for line-framed input.
    pub offset: u64,
    /// The record's text: one JSON object or one CSV line, without the line terminator.
    pub payload: &'a str,
    /// The record's own timestamp, epoch ms: a Kafka message's create or log-append time;
    /// `None` for files, stdin and the generator, and for a message without one.
    pub timestamp: Option<i64>,
}

#[cfg(test)]
impl RawRecord<'static> {
    /// A record outside any batch, for decoder tests: its origin and text are leaked
    /// (a few bytes per test case).
    pub(crate) fn leaked(origin: &str, offset: u64, payload: &str) -> Self {
        RawRecord {
            partition: 0,
            origin: Box::leak(Box::new(Arc::from(origin))),
            offset,
            payload: Box::leak(payload.into()),
            timestamp: None,
        }
    }
}

/// Where one record of a [`RawBatch`] came from and where its text is.
#[derive(Debug, Clone)]
struct Framing {
    partition: u32,
    origin: Arc<str>,
    offset: u64,
    timestamp: Option<i64>,
    /// Byte range of the payload in [`RawBatch::text`].
    start: usize,
    end: usize,
}

/// The records of one poll, their texts one after another in a single buffer: framing a
/// record costs a copy of its bytes, not an allocation, and a cleared batch keeps its
/// capacity for the next poll.
#[derive(Debug, Clone, Default)]
pub struct RawBatch {
    text: String,
    records: Vec<Framing>,
}

impl RawBatch {
    /// An empty batch with room for `records` records.
    pub fn with_capacity(records: usize) -> Self {
        RawBatch {
            text: String::with_capacity(records * 128),
            records: Vec::with_capacity(records),
        }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there is no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Removes every record, keeping the capacity.
    pub fn clear(&mut self) {
        self.text.clear();
        self.records.clear();
    }

    /// Record `i` (panics when `i >= len()`, like indexing).
    pub fn get(&self, i: usize) -> RawRecord<'_> {
        let f = &self.records[i];
        RawRecord {
            partition: f.partition,
            origin: &f.origin,
            offset: f.offset,
            payload: &self.text[f.start..f.end],
            timestamp: f.timestamp,
        }
    }

    /// Every record, in order.
    pub fn iter(&self) -> impl Iterator<Item = RawRecord<'_>> {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Appends a record with this text.
    pub fn push(&mut self, partition: u32, origin: &Arc<str>, offset: u64, payload: &str) {
        self.push_with(partition, origin, offset, |text| text.push_str(payload));
    }

    /// Appends a record with this text and its own timestamp (epoch ms).
    pub fn push_timestamped(
        &mut self,
        partition: u32,
        origin: &Arc<str>,
        offset: u64,
        timestamp: Option<i64>,
        payload: &str,
    ) {
        self.push_with(partition, origin, offset, |text| text.push_str(payload));
        if let Some(f) = self.records.last_mut() {
            f.timestamp = timestamp;
        }
    }

    /// Appends every record of `other`, in order.
    pub fn append(&mut self, other: &RawBatch) {
        for r in other.iter() {
            self.push_timestamped(r.partition, r.origin, r.offset, r.timestamp, r.payload);
        }
    }

    /// Appends a record whose text `write` appends to the string it is given (which may
    /// already hold other records' texts: `write` only appends).
    pub fn push_with(
        &mut self,
        partition: u32,
        origin: &Arc<str>,
        offset: u64,
        write: impl FnOnce(&mut String),
    ) {
        let start = self.text.len();
        write(&mut self.text);
        self.records.push(Framing {
            partition,
            origin: Arc::clone(origin),
            offset,
            timestamp: None,
            start,
            end: self.text.len(),
        });
    }

    /// Removes the last record (a write that turned out to produce none).
    fn pop(&mut self) {
        if let Some(f) = self.records.pop() {
            self.text.truncate(f.start);
        }
    }
}

/// A record the source refused to frame (longer than `max_record_bytes`): the pipeline
/// sends it to the dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Where it came from, as in [`RawRecord::origin`].
    pub origin: Arc<str>,
    /// Its 1-based line number.
    pub offset: u64,
    /// Why, e.g. `record of 10485760 bytes exceeds max_record_bytes (1MiB)`.
    pub reason: String,
    /// Its first [`REJECTED_HEAD_BYTES`] bytes at most (cut on a character boundary).
    pub head: String,
}

/// What one poll of a source produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// Records were appended (possibly none, for an unbounded source with nothing new yet).
    Ready,
    /// The input is exhausted; the pipeline flushes every open window.
    Done,
}

/// Errors that stop a source (a bad record never does: it goes to the dead-letter sink).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or glob matched nothing.
    #[error(
        "source.path `{pattern}` matches no file; check the path (relative to the pipeline file)"
    )]
    NoMatch {
        /// The path or pattern.
        pattern: String,
    },
    /// The glob pattern is malformed.
    #[error("source.path `{pattern}` is not a valid glob: {message}")]
    BadGlob {
        /// The pattern.
        pattern: String,
        /// Why.
        message: String,
    },
    /// The Kafka client failed (connecting, subscribing, querying offsets).
    #[error("kafka: {message}; check source.brokers and [source.kafka.options]")]
    Kafka {
        /// librdkafka's message.
        message: String,
    },
    /// A checkpointed position this source cannot resume from.
    #[error("cannot resume from the checkpoint: {0}")]
    Resume(String),
    /// Reading failed.
    #[error("reading {origin}: {source}")]
    Io {
        /// What was being read.
        origin: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// What a partition's last commit recorded beside its position, handed back when the
/// partition is assigned ([`Source::replay_floor`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayFloor {
    /// Every window ending at or before it had fired.
    pub watermark: i64,
    /// The offset after the last record read then.
    pub read: u64,
}

impl ReplayFloor {
    /// The later of two floors, each part on its own.
    pub fn max(self, other: ReplayFloor) -> ReplayFloor {
        ReplayFloor {
            watermark: self.watermark.max(other.watermark),
            read: self.read.max(other.read),
        }
    }
}

/// One partition's position to commit, and what whoever reads the partition again from
/// it must know ([`Source::replay_floor`] hands the last two back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    /// The partition id (the order partitions were first assigned or seen).
    pub partition: u32,
    /// The offset of the first record still needed: a restart resumes there.
    pub offset: u64,
    /// The replay floor: every window ending at or before it has fired, so a reader of the
    /// partition from `offset` must not fire those windows again. It never goes back.
    pub floor: i64,
    /// The offset after the last record read: records below it were dealt with already and
    /// are not reported late again.
    pub read: u64,
}

/// What a commit records beside the positions when windows are kept after they fire
/// (allowed lateness, early firings, sessions): a reader replaying a partition continues
/// those windows' revisions instead of firing them again from revision 0
/// ([`crate::window::KeptWindow`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kept {
    /// The watermark of the commit: every window ending at or before it fired, or is
    /// among `windows`.
    pub through: i64,
    /// The windows, each with its key's partition.
    pub windows: Vec<crate::window::KeptWindow>,
}

/// What a source recorded for one partition at a commit, beside the offsets' metadata (the
/// Kafka source's progress topic): the floor, and the windows kept ([`Kept`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The replay floor and read position of the commit.
    pub floor: ReplayFloor,
    /// With kept windows: the commit's watermark and the windows (partition ids unset).
    pub kept: Option<(i64, Vec<crate::window::KeptWindow>)>,
    /// Exactly once: the record of the last transaction that committed, written again
    /// beside this one (a topic keeps only the latest record of a partition, and this one
    /// may be of a transaction that never commits).
    pub previous: Option<Box<Recorded>>,
}

/// Where a reader of a partition starts from ([`Recorded::resume`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumed {
    /// The floor to hand back ([`Source::replay_floor`]).
    pub floor: Option<ReplayFloor>,
    /// The kept windows ([`Source::take_kept`]).
    pub windows: Vec<crate::window::KeptWindow>,
    /// The record that counted, without its `previous`: exactly once, the next record
    /// written for the partition carries it as its `previous`.
    pub record: Option<Recorded>,
}

impl Recorded {
    /// Where a reader of partition `partition` starts from, given the floor in the
    /// committed offsets' metadata and this record.
    ///
    /// At least once the record is written before the offsets, so it is of the last commit
    /// unless the metadata is of a later one (the record was not written); the higher
    /// floor counts. Exactly once it is written before the transaction commits, so the
    /// record (or its `previous`) counts only if it matches the committed metadata: a
    /// record of a transaction that did not commit could otherwise skip windows whose rows
    /// were never committed.
    pub fn resume(
        &self,
        metadata: Option<ReplayFloor>,
        exactly_once: bool,
        partition: u32,
    ) -> Resumed {
        let (counts, floor) = if exactly_once {
            let this = std::iter::once(self).chain(self.previous.as_deref());
            (
                this.into_iter().find(|r| metadata == Some(r.floor)),
                metadata,
            )
        } else {
            (
                metadata
                    .is_none_or(|f| self.floor.read >= f.read)
                    .then_some(self),
                Some(metadata.map_or(self.floor, |f| f.max(self.floor))),
            )
        };
        match (floor, counts) {
            (Some(mut floor), Some(r)) => {
                let record = Recorded {
                    previous: None,
                    ..r.clone()
                };
                let windows = match &r.kept {
                    Some((through, windows)) => {
                        floor.watermark = floor.watermark.max(*through);
                        windows
                            .iter()
                            .cloned()
                            .map(|mut w| {
                                w.partition = partition;
                                w
                            })
                            .collect()
                    }
                    None => Vec::new(),
                };
                Resumed {
                    floor: Some(floor),
                    windows,
                    record: Some(record),
                }
            }
            (floor, _) => Resumed {
                floor,
                windows: Vec::new(),
                record: None,
            },
        }
    }
}

/// A source of raw records.
///
/// Sources are pulled, in batches, by the pipeline's own thread: a blocking read is fine,
/// and the batch size bounds how much is decoded before the plugin's filter is called.
pub trait Source: Send {
    /// Appends up to `max` records to `out`.
    ///
    /// Returns [`Poll::Done`] once the input is exhausted and every record was returned.
    fn poll(&mut self, out: &mut RawBatch, max: usize) -> Result<Poll, Error>;

    /// Moves the records refused since the last call (too long to keep) to `out`; the
    /// pipeline calls it after every poll.
    fn take_rejected(&mut self, out: &mut Vec<Rejected>) {
        let _ = out;
    }

    /// Moves the partitions assigned since the last call (before their first record) to
    /// `out`; the pipeline calls it after every poll, and each holds the watermark back
    /// until it delivers or goes idle. Files, stdin and the generator have one partition,
    /// seen with its first record.
    fn take_assigned(&mut self, out: &mut Vec<u32>) {
        let _ = out;
    }

    /// Moves the partitions revoked since the last call (a consumer-group rebalance gave
    /// them to another process) to `out`; the pipeline calls it after every poll, once the
    /// batch is placed. Before the revocation completes (at the next poll) the pipeline
    /// flushes its sinks and commits, then drops, without firing, the window state of the
    /// keys read from them, their watermarks and their offsets. A partition revoked then
    /// assigned again is reported by [`Source::take_assigned`] again, and read again from
    /// its committed offset.
    fn take_revoked(&mut self, out: &mut Vec<u32>) {
        let _ = out;
    }

    /// Whether the source takes commits ([`Source::commit`]): the pipeline then keeps the
    /// offsets of the records still needed.
    fn commits(&self) -> bool {
        false
    }

    /// How often the pipeline flushes its sinks and commits ([`Source::commit`]), when the
    /// source wants it more often than once a second.
    fn commit_every(&self) -> Option<std::time::Duration> {
        None
    }

    /// Commits positions: per partition, the offset of the first record still needed (a
    /// restart resumes there), with the replay floor recorded beside it ([`Commit`]).
    /// Called once the sinks acknowledged every row of the records before it. `kept`, when
    /// the pipeline keeps windows after they fire, is recorded per partition where the
    /// source can ([`Source::take_kept`] hands it back).
    fn commit(&mut self, positions: &[Commit], kept: Option<&Kept>) -> Result<(), Error> {
        let _ = (positions, kept);
        Ok(())
    }

    /// Keeps the positions in `store` (a result sink that commits them with its rows): the
    /// source reads each partition from the offset stored there, and takes its replay
    /// floor and kept windows from there, not from its own commits. Sources without
    /// partitions ignore it (their runs start over; the sink's upserts make that safe).
    fn keep_positions_in(
        &mut self,
        store: std::sync::Arc<dyn crate::sink::PositionStore>,
    ) -> Result<(), Error> {
        let _ = store;
        Ok(())
    }

    /// For a partition just assigned, the windows its last commit recorded as kept
    /// ([`Source::commit`]); its [`Source::replay_floor`] is then that commit's
    /// [`Kept::through`]. Empty when none were recorded.
    fn take_kept(&mut self, partition: u32) -> Vec<crate::window::KeptWindow> {
        let _ = partition;
        Vec::new()
    }

    /// For a partition just assigned ([`Source::take_assigned`]), what its last commit
    /// recorded: the watermark it was made at, and the offset after the last record read
    /// then. Replayed records are placed only in windows ending after that watermark (the
    /// others fired already, with the records before the commit position too), and a
    /// replayed record (below that offset) late for every window is dropped silently: it was
    /// dealt with before. `None`: nothing recorded.
    fn replay_floor(&self, partition: u32) -> Option<ReplayFloor> {
        let _ = partition;
        None
    }

    /// Holds the source (`true`: its pipeline is paused or quarantined and reads nothing) or
    /// releases it (`false`). While held, the pipeline calls [`Source::keep_alive`] instead
    /// of [`Source::poll`]; after the release, reading goes on where it stopped, nothing
    /// dropped. Files, stdin and the generator need nothing: they are simply not read.
    fn hold(&mut self, held: bool) {
        let _ = held;
    }

    /// Keeps a held source's session alive without reading: a Kafka consumer polls with its
    /// partitions paused, so that its group does not evict it (`max.poll.interval.ms`) and
    /// rebalances are served. Called every few hundred milliseconds while held.
    fn keep_alive(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// Exactly-once (`[sink] exactly_once`): `positions` as [`Source::commit`] takes them,
    /// made into what the result sink's transaction commits in place of the source (topics,
    /// partitions and the consumer group's metadata). `None` for a source that is not a
    /// Kafka consumer (the config allows exactly-once only from Kafka).
    fn consumed(
        &mut self,
        positions: &[Commit],
        kept: Option<&Kept>,
    ) -> Result<Option<crate::sink::TxnOffsets>, Error> {
        let _ = (positions, kept);
        Ok(None)
    }

    /// A short description for logs and the run summary, e.g. `file data/*.csv (3 files)`.
    fn describe(&self) -> String;

    /// Total bytes or records expected, when known, for a progress bar.
    fn size_hint(&self) -> Option<SizeHint> {
        None
    }

    /// How far the source has got, in the unit of [`Source::size_hint`] (bytes or records).
    fn position(&self) -> u64 {
        0
    }

    /// Where the source stands, for a checkpoint: the records returned so far are behind
    /// it. `None` for a source that cannot be read again from a position (stdin).
    fn checkpoint(&self) -> Option<SourcePosition> {
        None
    }

    /// Resumes at a checkpointed position, before the first poll. Appends to `headers` the
    /// header line of the input it resumes in (a CSV file's first line), which the pipeline
    /// hands to its decoder without counting it as a record.
    fn restore(&mut self, position: &SourcePosition, headers: &mut RawBatch) -> Result<(), Error> {
        let _ = headers;
        Err(Error::Resume(format!(
            "{} cannot resume from {position:?}",
            self.describe()
        )))
    }

    /// Per partition assigned to this reader, how many records it holds that the pipeline
    /// has not read yet (Kafka: the high watermark minus the consumer's position). Empty
    /// for sources without partitions of their own, and for a partition whose position or
    /// end is not known yet.
    fn partition_lag(&self) -> Vec<PartitionLag> {
        Vec::new()
    }

    /// Whether events arrive as they happen (stdin; Kafka later), so that event time can be
    /// compared to wall clock (`watermark.max_future`). Bounded replays (files, the
    /// generator) say false: their times are compared to the watermark instead.
    fn is_live(&self) -> bool {
        false
    }
}

/// How far a reader is behind the end of one partition ([`Source::partition_lag`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// Records in the partition after the reader's position (0: caught up).
    pub records: i64,
}

/// Where a source stands, as a checkpoint keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SourcePosition {
    /// Files: the file being read and how far (`None`: every file was read).
    File {
        /// The file being read (or the next one to open).
        path: Option<std::path::PathBuf>,
        /// Bytes of it consumed, line terminators included.
        bytes: u64,
        /// Lines of it consumed (blank lines count).
        line: u64,
    },
    /// The generator: records produced (its header line included).
    Generator {
        /// Lines emitted (a CSV header counts).
        line: u64,
    },
    /// Kafka: per partition, the offset of the next record to read.
    Kafka {
        /// `(topic, partition, next offset)`.
        next: Vec<(String, i32, i64)>,
    },
}

/// How much input a bounded source holds, for progress reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeHint {
    /// Total bytes of all files.
    Bytes(u64),
    /// Total number of records.
    Records(u64),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{Key, Value};
    use crate::window::KeptWindow;

    fn floor(watermark: i64, read: u64) -> ReplayFloor {
        ReplayFloor { watermark, read }
    }

    fn window(partition: u32) -> KeptWindow {
        KeptWindow {
            partition,
            key: Key(vec![Value::Str("A".into())]),
            start: 0,
            end: 3_000,
            firings: 2,
            pending: false,
        }
    }

    /// The floor and windows of a [`Resumed`].
    fn got(r: Resumed) -> (Option<ReplayFloor>, Vec<KeptWindow>) {
        (r.floor, r.windows)
    }

    #[test]
    fn a_record_counts_when_it_is_of_the_last_commit() {
        // Written at watermark 3 500 (floor 2 000: a window pending held it), read to 40.
        let r = Recorded {
            floor: floor(2_000, 40),
            kept: Some((3_500, vec![window(0)])),
            previous: None,
        };
        // At least once, no metadata (a broker that drops it) or older metadata: the
        // record is the last commit; its watermark is the floor, its windows continue.
        for metadata in [None, Some(floor(1_000, 30)), Some(floor(2_000, 40))] {
            assert_eq!(
                got(r.resume(metadata, false, 7)),
                (Some(floor(3_500, 40)), vec![window(7)]),
                "{metadata:?}"
            );
        }
        // Metadata of a later commit (the record was not written then): the higher floor,
        // and no windows, which may have fired since.
        assert_eq!(
            got(r.resume(Some(floor(2_500, 50)), false, 7)),
            (Some(floor(2_500, 50)), Vec::new())
        );
        // Exactly once: only the committed transaction's record counts.
        assert_eq!(
            got(r.resume(Some(floor(2_000, 40)), true, 7)),
            (Some(floor(3_500, 40)), vec![window(7)])
        );
        assert_eq!(
            got(r.resume(Some(floor(1_000, 30)), true, 7)),
            (Some(floor(1_000, 30)), Vec::new()),
            "a record ahead of the committed transaction is of one that did not commit"
        );
        assert_eq!(got(r.resume(None, true, 7)), (None, Vec::new()));
        // A record of a transaction that did not commit carries the committed one's.
        let mut older = window(0);
        older.firings = 1;
        let ahead = Recorded {
            floor: floor(2_500, 50),
            kept: Some((4_000, Vec::new())),
            previous: Some(Box::new(Recorded {
                kept: Some((3_500, vec![older.clone()])),
                ..r.clone()
            })),
        };
        older.partition = 7;
        let resumed = ahead.resume(Some(floor(2_000, 40)), true, 7);
        assert_eq!(got(resumed.clone()), (Some(floor(3_500, 40)), vec![older]));
        assert_eq!(resumed.record.map(|r| r.floor), Some(floor(2_000, 40)));
        // A record without windows gives the floor alone.
        let bare = Recorded {
            floor: floor(2_000, 40),
            kept: None,
            previous: None,
        };
        assert_eq!(
            got(bare.resume(None, false, 0)),
            (Some(floor(2_000, 40)), Vec::new())
        );
    }
}
