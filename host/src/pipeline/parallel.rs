//! Key-sharded window state on worker threads (`parallelism`).
//!
//! The pipeline's thread reads, decodes and filters, builds each event's key, runs the
//! watermark and routes the event to the worker that owns its key (a hash of the key). Each
//! worker holds the window state of its keys and a plugin instance of its own, and fires its
//! windows at the watermark changes the pipeline's thread saw, at the same places in the
//! input. Every output (a result row, a late event, a dead letter, an error record) carries
//! its position in the input, and the pipeline's thread merges the workers' outputs back by
//! position, then by `(end, start, key)` among the windows one watermark change fires: the
//! order one thread writes them in. So every sink gets the same bytes for any parallelism.
//!
//! Batches are pipelined one deep: the workers place and fire batch k while the pipeline's
//! thread writes the outputs of batch k − 1 and reads batch k + 1.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use crate::plugin::{self, LogBudget, Plugin};
use crate::source::RawBatch;
use crate::value::{Key, Value};
use crate::window::{KeptWindow, KeySnapshot, StateLimits, Window, WindowKind, WindowOperator};

use super::WindowSink;
use super::shard::{Gate, Placed, Shard};
use crate::counters::Counters;

/// One event on its way to its worker.
pub(super) struct Routed {
    /// Position in the input (see the module doc).
    pub pos: u64,
    /// Index of its record in the batch, for a dead letter.
    pub raw: u32,
    /// Event time.
    pub ts: i64,
    /// Its key.
    pub key: Key,
    /// Every schema field.
    pub values: Box<[Value]>,
    /// The pipeline watermark before this event.
    pub before: i64,
    /// The input partition of its record.
    pub partition: u32,
    /// Read again after a commit, and read before it: not reported late again.
    pub replayed: bool,
}

/// One batch's work for one worker.
pub(super) struct Work {
    /// The worker's events, in input order.
    pub events: Vec<Routed>,
    /// The batch's watermark changes, `(position, new watermark)`, shared by the workers.
    pub changes: Arc<Vec<(u64, i64)>>,
    /// Position of the batch's early firing (update mode), if it has one.
    pub early: Option<u64>,
    /// Position of the end-of-input flush, if the input ended.
    pub flush: Option<u64>,
    /// Key states from a checkpoint to take back, before the events.
    pub restore: Vec<KeySnapshot>,
    /// Encode the worker's window state after the batch (a checkpoint).
    pub snapshot: bool,
    /// Input partitions revoked (a rebalance): the state of their keys is dropped first,
    /// without firing.
    pub revoked: Arc<[u32]>,
    /// Where a partition's replay ended, `(position, partition)`, shared by the workers
    /// ([`WindowOperator::end_replay`]).
    pub ends: Arc<Vec<(u64, u32)>>,
    /// Windows a commit recorded for partitions just assigned, to continue, before the
    /// events ([`WindowOperator::expect_replayed`]).
    pub expect: Vec<KeptWindow>,
    /// Report the kept windows at this watermark after the batch (a commit).
    pub kept: Option<i64>,
}

/// An output of a batch, with its position in the input.
pub(super) enum Out {
    /// An event late for every window (counted, and written to the late sink if any).
    Late {
        pos: u64,
        before: i64,
        ts: i64,
        values: Box<[Value]>,
    },
    /// An event a worker refused (a state limit): a dead letter of record `raw`.
    Refused { pos: u64, raw: u32, reason: String },
    /// A dead letter found by the pipeline's thread (already counted).
    DeadLetter {
        pos: u64,
        origin: Arc<str>,
        offset: u64,
        payload: String,
        reason: String,
    },
    /// A failed `filter` call (already counted).
    FilterError { pos: u64, error: plugin::Error },
    /// A fired window: its rows, or the error of its call.
    Fired {
        pos: u64,
        window: Window,
        key: Key,
        revision: u32,
        result: Result<Vec<plugin::Row>, plugin::Error>,
    },
}

impl Out {
    /// The order one thread writes outputs in: by position, then windows by
    /// `(end, start, key)`.
    fn order(&self) -> (u64, i64, i64, Option<&Key>) {
        match self {
            Out::Late { pos, .. }
            | Out::Refused { pos, .. }
            | Out::DeadLetter { pos, .. }
            | Out::FilterError { pos, .. } => (*pos, i64::MIN, i64::MIN, None),
            Out::Fired {
                pos, window, key, ..
            } => (*pos, window.end, window.start, Some(key)),
        }
    }
}

/// What a worker did with one batch.
struct Done {
    outs: Vec<Out>,
    /// Windows open and events buffered after the batch.
    open: usize,
    buffered: usize,
    /// After a flush: whether every window fired and the state was dropped.
    finished: bool,
    /// The encoded window state, when the batch asked for it.
    snapshot: Option<Result<Vec<u8>, String>>,
    /// Keys whose state was dropped for revoked partitions.
    dropped: usize,
    /// The kept windows, when the batch asked for them.
    kept: Vec<KeptWindow>,
    /// What the batch's firings counted (windows fired, rows, failed calls).
    counted: Counters,
}

/// A batch the workers have: its records (for dead letters) and the outputs the
/// pipeline's thread found in it.
struct InFlight {
    raws: RawBatch,
    outs: Vec<Out>,
}

/// The outputs of one batch, merged, for the pipeline's thread to write.
pub(super) struct Merged {
    /// In write order.
    pub outs: Vec<Out>,
    /// What the workers' firings of the batch counted.
    pub counted: Counters,
    /// The batch's records.
    pub raws: RawBatch,
}

/// The workers of a pipeline, seen from the pipeline's thread.
pub(super) struct Shards {
    senders: Vec<SyncSender<Work>>,
    receivers: Vec<Receiver<Done>>,
    handles: Vec<Option<JoinHandle<()>>>,
    in_flight: VecDeque<InFlight>,
    spare: Vec<RawBatch>,
    /// Outputs of the batch being read, found by the pipeline's thread.
    pub pending: Vec<Out>,
    next: u64,
    state: Vec<(usize, usize)>,
    finished: bool,
}

/// What a worker needs to fire windows like the pipeline does.
pub(super) struct WorkerSetup {
    /// Pipeline name, for logs.
    pub name: String,
    /// Window kind and allowed lateness.
    pub kind: WindowKind,
    pub lateness: i64,
    /// The state limits of the whole pipeline (each worker holds a share).
    pub limits: StateLimits,
    /// Schema index of each plugin input.
    pub inputs: Vec<usize>,
    /// The pipeline's log budget.
    pub log: LogBudget,
}

impl Shards {
    /// Starts `n` workers, each with a fork of `plugin`.
    pub fn start(n: usize, plugin: &dyn Plugin, setup: &WorkerSetup) -> anyhow::Result<Shards> {
        let mut shards = Shards {
            senders: Vec::with_capacity(n),
            receivers: Vec::with_capacity(n),
            handles: Vec::with_capacity(n),
            in_flight: VecDeque::new(),
            spare: Vec::new(),
            pending: Vec::new(),
            next: 0,
            state: vec![(0, 0); n],
            finished: false,
        };
        for i in 0..n {
            let plugin = plugin.fork()?;
            let mut operator = WindowOperator::new(setup.kind, setup.lateness);
            operator.set_limits(share(&setup.limits, n));
            let mut worker = Worker {
                name: setup.name.clone(),
                shard: Shard::new(operator, plugin, setup.inputs.clone()),
                log: setup.log.clone(),
                outs: Vec::new(),
                counted: Counters::default(),
            };
            let (work_tx, work_rx) = sync_channel::<Work>(1);
            let (done_tx, done_rx) = sync_channel::<Done>(2);
            let handle = std::thread::Builder::new()
                .name(format!("weir-worker-{i}"))
                .spawn(move || {
                    for work in work_rx {
                        if done_tx.send(worker.run(work)).is_err() {
                            break;
                        }
                    }
                })?;
            shards.senders.push(work_tx);
            shards.receivers.push(done_rx);
            shards.handles.push(Some(handle));
        }
        Ok(shards)
    }

    /// How many workers there are.
    pub fn len(&self) -> usize {
        self.senders.len()
    }

    /// The next position in the input.
    pub fn next_pos(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// The worker that owns `key`.
    pub fn shard_of(&self, key: &Key) -> usize {
        let mut h = std::hash::DefaultHasher::new();
        key.hash(&mut h);
        (h.finish() % self.senders.len() as u64) as usize
    }

    /// Windows open and events buffered over all workers, as of their last batch.
    pub fn state_size(&self) -> (usize, usize) {
        self.state
            .iter()
            .fold((0, 0), |(o, b), &(o2, b2)| (o + o2, b + b2))
    }

    /// Whether the last flush fired every window of every worker.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// How many batches are with the workers.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Hands a batch to the workers: `work` has one list of events per worker. `raws` is
    /// kept with the batch until its outputs are merged, and replaced by an empty batch.
    pub fn dispatch(
        &mut self,
        work: Vec<Vec<Routed>>,
        changes: Vec<(u64, i64)>,
        ends: Vec<(u64, u32)>,
        early: Option<u64>,
        flush: Option<u64>,
        raws: &mut RawBatch,
    ) -> anyhow::Result<()> {
        let changes = Arc::new(changes);
        let ends = Arc::new(ends);
        let revoked: Arc<[u32]> = Arc::new([]);
        for (i, events) in work.into_iter().enumerate() {
            let w = Work {
                events,
                changes: changes.clone(),
                early,
                flush,
                restore: Vec::new(),
                snapshot: false,
                revoked: revoked.clone(),
                ends: ends.clone(),
                expect: Vec::new(),
                kept: None,
            };
            if self.senders[i].send(w).is_err() {
                return Err(self.died(i));
            }
        }
        let mut held = self
            .spare
            .pop()
            .unwrap_or_else(|| RawBatch::with_capacity(super::BATCH_SIZE));
        std::mem::swap(raws, &mut held);
        self.in_flight.push_back(InFlight {
            raws: held,
            outs: std::mem::take(&mut self.pending),
        });
        Ok(())
    }

    /// Drops, without firing, the state of the keys read from `partitions` (revoked by a
    /// rebalance) on every worker, once the workers have no batch (the pipeline drained
    /// them); returns how many keys were dropped.
    pub fn revoke(&mut self, partitions: &[u32]) -> anyhow::Result<usize> {
        anyhow::ensure!(
            self.in_flight.is_empty(),
            "partitions revoked while the workers hold a batch"
        );
        let revoked: Arc<[u32]> = Arc::from(partitions);
        for i in 0..self.senders.len() {
            let w = Work {
                revoked: revoked.clone(),
                ..Work::empty()
            };
            if self.senders[i].send(w).is_err() {
                return Err(self.died(i));
            }
        }
        let mut dropped = 0;
        for i in 0..self.receivers.len() {
            let Ok(done) = self.receivers[i].recv() else {
                return Err(self.died(i));
            };
            self.state[i] = (done.open, done.buffered);
            dropped += done.dropped;
        }
        Ok(dropped)
    }

    /// Waits for the oldest batch with the workers and merges its outputs, if there is one.
    pub fn collect(&mut self) -> anyhow::Result<Option<Merged>> {
        let Some(batch) = self.in_flight.pop_front() else {
            return Ok(None);
        };
        let mut streams = Vec::with_capacity(self.receivers.len() + 1);
        let mut finished = true;
        let mut counted = Counters::default();
        for i in 0..self.receivers.len() {
            let Ok(done) = self.receivers[i].recv() else {
                return Err(self.died(i));
            };
            counted.add(&done.counted);
            self.state[i] = (done.open, done.buffered);
            finished &= done.finished;
            streams.push(done.outs.into_iter().peekable());
        }
        self.finished = finished;
        streams.push(batch.outs.into_iter().peekable());
        let total = streams.iter().map(|s| s.len()).sum();
        let mut outs = Vec::with_capacity(total);
        loop {
            let mut best: Option<usize> = None;
            let mut best_order = None;
            for (i, s) in streams.iter_mut().enumerate() {
                if let Some(o) = s.peek() {
                    let order = o.order();
                    if best_order.as_ref().is_none_or(|b| order < *b) {
                        best = Some(i);
                        best_order = Some(order);
                    }
                }
            }
            match best.and_then(|i| streams[i].next()) {
                Some(o) => outs.push(o),
                None => break,
            }
        }
        Ok(Some(Merged {
            outs,
            counted,
            raws: batch.raws,
        }))
    }

    /// Sends each worker an empty batch built by `make` and waits for its answer, with
    /// no batch left with them (a checkpoint, a restore).
    fn round(&mut self, mut make: impl FnMut(usize) -> Work) -> anyhow::Result<Vec<Done>> {
        anyhow::ensure!(
            self.in_flight.is_empty(),
            "the workers still have batches to write"
        );
        for i in 0..self.senders.len() {
            if self.senders[i].send(make(i)).is_err() {
                return Err(self.died(i));
            }
        }
        let mut done = Vec::with_capacity(self.receivers.len());
        for i in 0..self.receivers.len() {
            let Ok(d) = self.receivers[i].recv() else {
                return Err(self.died(i));
            };
            self.state[i] = (d.open, d.buffered);
            done.push(d);
        }
        Ok(done)
    }

    /// Each worker's window state, encoded (every batch must have been written).
    pub fn snapshot(&mut self) -> anyhow::Result<Vec<Vec<u8>>> {
        let done = self.round(|_| Work {
            snapshot: true,
            ..Work::empty()
        })?;
        done.into_iter()
            .map(|d| match d.snapshot {
                Some(Ok(bytes)) => Ok(bytes),
                Some(Err(e)) => Err(anyhow::anyhow!("checkpoint: encoding window state: {e}")),
                None => Err(anyhow::anyhow!("checkpoint: a worker sent no state")),
            })
            .collect()
    }

    /// Hands checkpointed key states to the workers that own their keys now.
    pub fn restore(&mut self, keys: Vec<KeySnapshot>) -> anyhow::Result<()> {
        let mut per: Vec<Vec<KeySnapshot>> = (0..self.senders.len()).map(|_| Vec::new()).collect();
        for k in keys {
            per[self.shard_of(k.key())].push(k);
        }
        self.round(|i| Work {
            restore: std::mem::take(&mut per[i]),
            ..Work::empty()
        })?;
        Ok(())
    }

    /// Hands the windows a commit recorded to the workers that own their keys now.
    pub fn expect_replayed(&mut self, windows: Vec<KeptWindow>) -> anyhow::Result<()> {
        let mut per: Vec<Vec<KeptWindow>> = (0..self.senders.len()).map(|_| Vec::new()).collect();
        for w in windows {
            per[self.shard_of(&w.key)].push(w);
        }
        self.round(|i| Work {
            expect: std::mem::take(&mut per[i]),
            ..Work::empty()
        })?;
        Ok(())
    }

    /// Every worker's kept windows at `watermark` (every batch must have been written).
    pub fn kept_windows(&mut self, watermark: i64) -> anyhow::Result<Vec<KeptWindow>> {
        let done = self.round(|_| Work {
            kept: Some(watermark),
            ..Work::empty()
        })?;
        Ok(done.into_iter().flat_map(|d| d.kept).collect())
    }

    /// Takes back a merged batch's records for reuse.
    pub fn recycle(&mut self, mut raws: RawBatch) {
        raws.clear();
        self.spare.push(raws);
    }

    /// The error for a worker that stopped: its panic message.
    fn died(&mut self, i: usize) -> anyhow::Error {
        let why = match self.handles[i].take().map(JoinHandle::join) {
            Some(Err(panic)) => panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into()),
            _ => "it stopped".into(),
        };
        anyhow::anyhow!("worker {i} of the pipeline failed: {why}")
    }
}

impl Drop for Shards {
    fn drop(&mut self) {
        self.senders.clear();
        self.receivers.clear();
        for h in self.handles.iter_mut().filter_map(Option::take) {
            let _ = h.join();
        }
    }
}

/// Each worker's share of the pipeline's state limits (rounded up); the limit per event
/// stays whole.
fn share(l: &StateLimits, n: usize) -> StateLimits {
    let n = n.max(1) as u64;
    StateLimits {
        max_windows_per_event: l.max_windows_per_event,
        max_open_windows: l.max_open_windows.div_ceil(n),
        max_buffered_events: l.max_buffered_events.div_ceil(n),
        max_buffered_bytes: l.max_buffered_bytes.div_ceil(n),
    }
}

/// One worker: the window state of its keys and its plugin instance.
struct Worker {
    name: String,
    /// The window state of its keys and its plugin instance: the engine the pipeline's own
    /// thread runs too.
    shard: Shard,
    log: LogBudget,
    outs: Vec<Out>,
    /// What its firings counted since the last batch was answered.
    counted: Counters,
}

impl Work {
    /// A batch with nothing in it.
    fn empty() -> Work {
        Work {
            events: Vec::new(),
            changes: Arc::new(Vec::new()),
            early: None,
            flush: None,
            restore: Vec::new(),
            snapshot: false,
            revoked: Arc::from(Vec::new()),
            ends: Arc::new(Vec::new()),
            expect: Vec::new(),
            kept: None,
        }
    }
}

impl Worker {
    /// Places a batch's events and fires at its watermark changes, in input order.
    fn run(&mut self, mut work: Work) -> Done {
        for k in work.restore.drain(..) {
            self.shard.operator.restore(k);
        }
        if !work.expect.is_empty() {
            self.shard
                .operator
                .expect_replayed(std::mem::take(&mut work.expect));
        }
        let dropped = if work.revoked.is_empty() {
            0
        } else {
            self.shard.operator.drop_partitions(&work.revoked)
        };
        let changes = &work.changes[..];
        let ends = &work.ends[..];
        let mut c = 0;
        let mut e = 0;
        // Replays that ended before position `at`.
        let end_replays = |op: &mut WindowOperator, e: &mut usize, next: &mut i64, at: u64| {
            while let Some(&(_, p)) = ends.get(*e).filter(|(pos, _)| *pos < at) {
                op.end_replay(p);
                *next = op.next_due();
                *e += 1;
            }
        };
        // The lowest watermark at which this worker's state has anything to do: the
        // changes below it (most of them, with many keys) are skipped.
        let mut next = self.shard.operator.next_due();
        for ev in work.events {
            while let Some(&(pos, w)) = changes.get(c).filter(|(pos, _)| *pos < ev.pos) {
                end_replays(&mut self.shard.operator, &mut e, &mut next, pos);
                if w >= next {
                    self.fire(pos, Some(w));
                    next = self.shard.operator.next_due();
                }
                c += 1;
            }
            end_replays(&mut self.shard.operator, &mut e, &mut next, ev.pos);
            self.place(ev);
            next = self.shard.operator.next_due();
        }
        for &(pos, w) in &changes[c..] {
            end_replays(&mut self.shard.operator, &mut e, &mut next, pos);
            if w >= next {
                self.fire(pos, Some(w));
                next = self.shard.operator.next_due();
            }
        }
        end_replays(&mut self.shard.operator, &mut e, &mut next, u64::MAX);
        if let Some(pos) = work.early {
            self.fire(pos, None);
        }
        let mut finished = false;
        if let Some(pos) = work.flush {
            self.fire(pos, None);
            finished = self.shard.operator.finish();
        }
        let snapshot = work
            .snapshot
            .then(|| self.shard.operator.snapshot().map_err(|e| e.to_string()));
        let kept = work
            .kept
            .map(|w| self.shard.operator.kept_windows(w))
            .unwrap_or_default();
        Done {
            outs: std::mem::take(&mut self.outs),
            open: self.shard.operator.open_windows(),
            buffered: self.shard.operator.buffered_events(),
            finished,
            snapshot,
            dropped,
            kept,
            counted: std::mem::take(&mut self.counted),
        }
    }

    fn place(&mut self, ev: Routed) {
        let placed = self.shard.place(
            ev.partition,
            ev.ts,
            ev.key,
            ev.values,
            ev.before,
            ev.replayed,
        );
        match placed {
            Placed::Stored => {}
            Placed::Late(values) => self.outs.push(Out::Late {
                pos: ev.pos,
                before: ev.before,
                ts: ev.ts,
                values,
            }),
            Placed::Refused(reason) => self.outs.push(Out::Refused {
                pos: ev.pos,
                raw: ev.raw,
                reason,
            }),
        }
    }

    /// Fires the windows due at `watermark` (every window with new events when `None`)
    /// as outputs at `pos`, then purges at the watermark.
    fn fire(&mut self, pos: u64, watermark: Option<i64>) {
        let due = self.shard.operator.take_due(watermark);
        if !due.is_empty() {
            let mut capture = Capture {
                pos,
                outs: &mut self.outs,
            };
            let gate = Gate {
                pipeline: &self.name,
                // A worker never quarantines, is never interrupted and never stops early:
                // parallelism is for weir run.
                quarantine_after: u32::MAX,
                interrupt: None,
                cpu: None,
                stop: false,
                log: &self.log,
            };
            // A worker's outputs cannot fail to be captured: no sink error.
            let (counted, _) = self.shard.fire(due, &mut capture, &gate);
            self.counted.add(&counted);
        }
        if let Some(w) = watermark {
            self.shard.operator.purge_due(w);
        }
    }
}

/// A worker's [`WindowSink`]: keeps each fired window as an output at one position.
struct Capture<'a> {
    pos: u64,
    outs: &'a mut Vec<Out>,
}

impl Capture<'_> {
    /// Keeps a fired window's result as an output at this capture's position.
    fn fired(
        &mut self,
        key: &[Value],
        window: Window,
        revision: u32,
        result: Result<Vec<plugin::Row>, plugin::Error>,
    ) {
        self.outs.push(Out::Fired {
            pos: self.pos,
            window,
            key: Key(key.to_vec()),
            revision,
            result,
        });
    }
}

impl WindowSink for Capture<'_> {
    fn rows(
        &mut self,
        key: &[Value],
        window: Window,
        revision: u32,
        rows: Vec<plugin::Row>,
    ) -> Result<(), crate::sink::Error> {
        self.fired(key, window, revision, Ok(rows));
        Ok(())
    }

    fn error(
        &mut self,
        key: &[Value],
        window: Window,
        revision: u32,
        e: plugin::Error,
    ) -> Result<(), crate::sink::Error> {
        self.fired(key, window, revision, Err(e));
        Ok(())
    }

    fn commit(&mut self) -> Result<(), crate::sink::Error> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use crate::pipeline::{Step, offsets::Offsets};
    use crate::source::{Error, Poll, RawBatch, Source};

    type Commits = Arc<Mutex<Vec<(u32, u64)>>>;
    /// Records of one poll: (partition, offset, symbol, time).
    type Records = Vec<(u32, u64, &'static str, i64)>;
    /// Result rows: (symbol, window start, count).
    type Rows = Vec<(String, String, i64)>;

    /// A source that plays polls of `(partition, offset, symbol, time)` records, each poll
    /// followed by the partitions revoked after it, and keeps what it is asked to commit.
    struct Scripted {
        polls: VecDeque<(Records, Vec<u32>)>,
        revoked: Vec<u32>,
        commits: Commits,
        origin: Arc<str>,
    }

    impl Source for Scripted {
        fn poll(&mut self, out: &mut RawBatch, _max: usize) -> Result<Poll, Error> {
            let Some((records, revoked)) = self.polls.pop_front() else {
                return Ok(Poll::Done);
            };
            for (p, offset, symbol, t) in records {
                let text = format!(r#"{{"symbol":"{symbol}","t":{t},"price":1.0}}"#);
                out.push(p, &self.origin, offset, &text);
            }
            self.revoked = revoked;
            Ok(Poll::Ready)
        }
        fn take_revoked(&mut self, out: &mut Vec<u32>) {
            out.append(&mut self.revoked);
        }
        fn commits(&self) -> bool {
            true
        }
        fn commit(
            &mut self,
            positions: &[crate::source::Commit],
            _kept: Option<&crate::source::Kept>,
        ) -> Result<(), Error> {
            self.commits
                .lock()
                .unwrap()
                .extend(positions.iter().map(|c| (c.partition, c.offset)));
            Ok(())
        }
        fn describe(&self) -> String {
            "scripted".into()
        }
    }

    /// The result rows and the commits of a run over the script, on `workers` workers.
    fn run(workers: usize) -> (Rows, Vec<(u32, u64)>) {
        let dir = tempfile::tempdir().unwrap();
        let mut p = crate::pipeline::test_pipeline::tick_pipeline_with(
            "revoked",
            dir.path(),
            "unused.jsonl",
            "",
            crate::pipeline::Options {
                parallelism: workers,
                ..Default::default()
            },
        );
        let commits = Commits::default();
        // Key A lives in partition 0, key B in partition 1. After the first poll W is
        // 1 100 (the minimum of the partitions' 1 100 and 1 200): both keys' [0, 1 s) fire,
        // and B's [1 s, 2 s) holds B@1 200. Partition 1 is then revoked: its records from
        // offset 1 are still needed, and B's open window is dropped, not fired. A@2 500
        // then fires A's [1 s, 2 s) alone, and the end of input A's [2 s, 3 s).
        p.input.source = Box::new(Scripted {
            polls: VecDeque::from([
                (
                    vec![
                        (0, 0, "A", 100),
                        (1, 0, "B", 200),
                        (0, 1, "A", 1_100),
                        (1, 1, "B", 1_200),
                    ],
                    vec![1],
                ),
                (vec![(0, 2, "A", 2_500)], vec![]),
            ]),
            revoked: Vec::new(),
            commits: commits.clone(),
            origin: Arc::from("scripted"),
        });
        p.positions.offsets = Some(Offsets::default());
        while p.step().unwrap() == Step::More {}
        let out = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
        let rows = out
            .lines()
            .map(|l| {
                let r: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    r["symbol"].as_str().unwrap().to_string(),
                    r["window_start"].as_str().unwrap().to_string(),
                    r["count"].as_i64().unwrap(),
                )
            })
            .collect();
        let commits = commits.lock().unwrap().clone();
        (rows, commits)
    }

    #[test]
    fn a_revoked_partitions_keys_fire_nothing_more_on_one_thread_or_on_workers() {
        let at = |s: &str| format!("1970-01-01T00:00:0{s}.000Z");
        let row = |k: &str, s: &str| (k.to_string(), at(s), 1);
        for workers in [1, 2] {
            let (rows, commits) = run(workers);
            assert_eq!(
                rows,
                [row("A", "0"), row("B", "0"), row("A", "1"), row("A", "2")],
                "{workers} workers"
            );
            // At the revocation both partitions are committed up to offset 1, the first
            // record of the windows still open; partition 1 is never committed again.
            assert_eq!(commits[..2], [(0, 1), (1, 1)], "{workers} workers");
            assert!(
                commits[2..].iter().all(|&(p, _)| p == 0),
                "{workers} workers: {commits:?}"
            );
        }
    }
}
