//! Exactly-once, proven against a model of Kafka's transactional protocol: partitions of
//! input records, the consumer group's committed offsets with their metadata, and a log
//! of result transactions that are either committed (rows and offsets together) or lost.
//! A run is killed at every step of the protocol in turn — a poll, each row produced, the
//! offsets sent to the transaction, the commit — and restarted from what the model holds,
//! as a restarted process would be (its open transaction is aborted by the fencing of its
//! successor). A `read_committed` reader must then see every window's row exactly once,
//! with the content the input gives it. With allowed lateness, the source also writes each
//! partition's kept windows to a progress record before the transaction commits (a step
//! that can be killed too), and a restart continues their revisions: every (window,
//! revision) is visible once, the same as in a run without a kill.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::*;
use crate::source;

/// A result row as the model keeps it: key, window start and end, revision (0 without
/// revisions), event count.
type Row = (String, i64, i64, i64, i64);

/// The model broker, shared by the source and the sink of one run and kept across kills.
#[derive(Default)]
struct Broker {
    /// Per partition, its records (JSON lines), offset = index.
    input: Vec<Vec<String>>,
    /// Per partition, the group's committed offset and its metadata.
    committed: Vec<Option<(u64, String)>>,
    /// Committed transactions' rows, in commit order: what `read_committed` sees.
    visible: Vec<Row>,
    /// Per partition, the last progress record written (the progress topic, compacted),
    /// whether its transaction committed or not.
    progress: Vec<Option<source::Recorded>>,
    /// Protocol steps taken in this run, and the step that kills it.
    steps: u64,
    kill_at: Option<u64>,
    killed: bool,
}

impl Broker {
    /// Takes one protocol step; the killed step and every later one fail.
    fn step(&mut self) -> Result<(), String> {
        self.steps += 1;
        if self.killed || self.kill_at == Some(self.steps) {
            self.killed = true;
            return Err(format!("killed at step {}", self.steps));
        }
        Ok(())
    }
}

type Shared = Arc<Mutex<Broker>>;

fn lock(b: &Shared) -> std::sync::MutexGuard<'_, Broker> {
    b.lock().expect("broker")
}

/// A consumer of every partition, reading from the committed offsets, two records of each
/// partition per poll, until the end of every partition.
struct ModelSource {
    broker: Shared,
    /// Per partition, the next offset to read.
    next: Vec<u64>,
    /// Per partition, where its reading starts from: the floor and the kept windows.
    floors: Vec<Option<source::ReplayFloor>>,
    kept: Vec<Vec<crate::window::KeptWindow>>,
    /// Per partition, the record of the last transaction (committed by the next one).
    last: Vec<Option<source::Recorded>>,
    assigned: bool,
    origin: Arc<str>,
}

impl ModelSource {
    fn new(broker: &Shared) -> Self {
        let b = lock(broker);
        let next = b
            .committed
            .iter()
            .map(|c| c.as_ref().map_or(0, |(o, _)| *o))
            .collect();
        let mut floors = Vec::new();
        let mut kept = Vec::new();
        let mut last = Vec::new();
        for p in 0..b.committed.len() {
            let metadata = b.committed[p].as_ref().and_then(|(_, m)| parse(m));
            match b.progress.get(p).cloned().flatten() {
                Some(r) => {
                    let resumed = r.resume(metadata, true, p as u32);
                    floors.push(resumed.floor);
                    kept.push(resumed.windows);
                    last.push(resumed.record);
                }
                None => {
                    floors.push(metadata);
                    kept.push(Vec::new());
                    last.push(None);
                }
            }
        }
        drop(b);
        ModelSource {
            broker: broker.clone(),
            next,
            floors,
            kept,
            last,
            assigned: false,
            origin: Arc::from("model"),
        }
    }
}

/// The model's offset metadata, `floor:read`.
fn parse(meta: &str) -> Option<source::ReplayFloor> {
    let (w, read) = meta.split_once(':')?;
    Some(source::ReplayFloor {
        watermark: w.parse().ok()?,
        read: read.parse().ok()?,
    })
}

impl Source for ModelSource {
    fn poll(&mut self, out: &mut RawBatch, _max: usize) -> Result<Poll, source::Error> {
        let mut b = lock(&self.broker);
        b.step()
            .map_err(|message| source::Error::Kafka { message })?;
        let mut more = false;
        for (p, records) in b.input.iter().enumerate() {
            for _ in 0..2 {
                let o = self.next[p];
                if let Some(r) = records.get(o as usize) {
                    out.push(p as u32, &self.origin, o, r);
                    self.next[p] = o + 1;
                }
            }
            more |= (self.next[p] as usize) < records.len();
        }
        Ok(if more || !out.is_empty() {
            Poll::Ready
        } else {
            Poll::Done
        })
    }
    fn take_assigned(&mut self, out: &mut Vec<u32>) {
        if !self.assigned {
            self.assigned = true;
            out.extend(0..self.next.len() as u32);
        }
    }
    fn commits(&self) -> bool {
        true
    }
    fn commit_every(&self) -> Option<Duration> {
        Some(Duration::ZERO)
    }
    fn commit(
        &mut self,
        positions: &[source::Commit],
        _kept: Option<&source::Kept>,
    ) -> Result<(), source::Error> {
        panic!("an exactly-once source committed {positions:?} outside the transaction");
    }
    fn replay_floor(&self, partition: u32) -> Option<source::ReplayFloor> {
        self.floors.get(partition as usize).copied().flatten()
    }
    fn take_kept(&mut self, partition: u32) -> Vec<crate::window::KeptWindow> {
        self.kept
            .get_mut(partition as usize)
            .map(std::mem::take)
            .unwrap_or_default()
    }
    fn consumed(
        &mut self,
        positions: &[source::Commit],
        kept: Option<&source::Kept>,
    ) -> Result<Option<sink::TxnOffsets>, source::Error> {
        // The progress records go first, outside the transaction: a kill here or later
        // leaves them ahead of the committed offsets.
        if let Some(kept) = kept {
            let mut b = lock(&self.broker);
            b.step()
                .map_err(|message| source::Error::Kafka { message })?;
            for c in positions {
                let windows = kept
                    .windows
                    .iter()
                    .filter(|w| w.partition == c.partition)
                    .cloned()
                    .collect();
                let record = source::Recorded {
                    floor: source::ReplayFloor {
                        watermark: c.floor,
                        read: c.read,
                    },
                    kept: Some((kept.through, windows)),
                    previous: None,
                };
                let i = c.partition as usize;
                let previous = self.last[i].replace(record.clone());
                b.progress[i] = Some(source::Recorded {
                    previous: previous.map(Box::new),
                    ..record
                });
            }
        }
        Ok(Some(super::exactly_once_tests::txn_offsets(
            positions,
            |c| format!("{}:{}", c.floor, c.read),
        )))
    }
    fn describe(&self) -> String {
        "model".into()
    }
}

/// A transactional producer: rows go to the open transaction; `commit_transaction` sends
/// the offsets, then commits rows and offsets as one.
struct ModelSink {
    broker: Shared,
    open: Vec<Row>,
}

impl Sink for ModelSink {
    fn write(&mut self, row: &[Cell<'_>]) -> Result<(), sink::Error> {
        let fail = |e: String| sink::Error::Write {
            sink: "model".into(),
            source: std::io::Error::other(e),
        };
        lock(&self.broker).step().map_err(fail)?;
        let row = match row {
            [
                Cell::Value(Value::Str(key)),
                Cell::Time(start),
                Cell::Time(end),
                Cell::I64(revision),
                Cell::Value(Value::I64(n)),
                ..,
            ] => (key.clone(), *start, *end, *revision, *n),
            [
                Cell::Value(Value::Str(key)),
                Cell::Time(start),
                Cell::Time(end),
                Cell::Value(Value::I64(n)),
                ..,
            ] => (key.clone(), *start, *end, 0, *n),
            _ => panic!("unexpected row {row:?}"),
        };
        self.open.push(row);
        Ok(())
    }
    fn set_columns(&mut self, _columns: Vec<String>) {}
    fn commit(&mut self) -> Result<(), sink::Error> {
        Ok(())
    }
    fn flush(&mut self) -> Result<(), sink::Error> {
        Ok(())
    }
    fn describe(&self) -> String {
        "model".into()
    }
    fn transactional(&self) -> bool {
        true
    }
    fn commit_transaction(
        &mut self,
        consumed: Option<sink::TxnOffsets>,
    ) -> Result<(), sink::Error> {
        let fail = |e: String| sink::Error::Write {
            sink: "model".into(),
            source: std::io::Error::other(e),
        };
        let mut b = lock(&self.broker);
        // send_offsets_to_transaction, then the commit: a kill at either loses both.
        b.step().map_err(fail)?;
        b.step().map_err(fail)?;
        if let Some(c) = consumed {
            for p in c.positions {
                b.committed[p.partition as usize] = Some((p.offset as u64, p.metadata));
            }
        }
        b.visible.append(&mut self.open);
        // The next transaction begins.
        b.step().map_err(fail)?;
        Ok(())
    }
}

/// Two partitions of ticks: keys A and B in partition 0, C and D in partition 1, 30
/// records each, times rising by 300 ms with up to 900 ms of disorder (inside the 2 s
/// watermark delay, so no event is ever late and every run computes the same windows).
fn input() -> Vec<Vec<String>> {
    (0..2)
        .map(|p| {
            (0..30)
                .map(|i| {
                    let key = ["A", "B", "C", "D"][p * 2 + i % 2];
                    let jitter = [0, 900, 300, 600, 0, 450][i % 6];
                    let t = 300 * i as i64 + jitter + 50 * p as i64;
                    format!("{{\"symbol\":\"{key}\",\"t\":{t},\"price\":1.0}}")
                })
                .collect()
        })
        .collect()
}

/// One partition of ticks: keys A and B in turn, 40 records, times rising by 300 ms, every
/// 5th 1.5 s behind: with a 500 ms watermark delay each of those is late for a window that
/// fired, inside a 2 s allowed lateness, so that window fires again. One partition: the
/// order of the records, and so which of them each revision holds, is the same in every run.
fn late_input() -> Vec<Vec<String>> {
    vec![
        (0..40)
            .map(|i| {
                let key = ["A", "B"][i % 2];
                let behind = if i % 5 == 3 { 1_500 } else { 0 };
                let t = 2_000 + 300 * i as i64 - behind;
                format!("{{\"symbol\":\"{key}\",\"t\":{t},\"price\":1.0}}")
            })
            .collect(),
    ]
}

/// Every window's count, worked out from `input`: sliding 2 s windows every 1 s.
fn expected_of(input: Vec<Vec<String>>) -> BTreeMap<(String, i64, i64), i64> {
    let mut out = BTreeMap::new();
    for line in input.concat() {
        let v: serde_json::Value = serde_json::from_str(&line).expect("json");
        let key = v["symbol"].as_str().expect("symbol").to_string();
        let t = v["t"].as_i64().expect("t");
        let last = t.div_euclid(1000) * 1000;
        for start in [last - 1000, last] {
            *out.entry((key.clone(), start, start + 2000)).or_insert(0) += 1;
        }
    }
    out
}

fn expected() -> BTreeMap<(String, i64, i64), i64> {
    expected_of(input())
}

/// A pipeline over the model: sliding 2 s / 1 s windows, 2 s watermark delay; `late`:
/// 500 ms delay and 2 s allowed lateness.
fn pipeline(dir: &Path, broker: &Shared, runtime: &Runtime, late: bool) -> Pipeline {
    let (delay, lateness) = if late { ("500ms", "2s") } else { ("2s", "0s") };
    let mut cfg = PipelineConfig::parse(&format!(
        r#"
        name = "eos-model"
        [source]
        kind = "stdin"
        [schema]
        timestamp = {{ field = "t", format = "epoch_ms" }}
        key = ["symbol"]
        fields = {{ symbol = "string", t = "i64", price = "f64" }}
        [window]
        kind = "sliding"
        size = "2s"
        slide = "1s"
        allowed_lateness = "{lateness}"
        [watermark]
        delay = "{delay}"
        [plugin]
        path = "{plugin}"
        params = {{ field = "price" }}
        [sink]
        kind = "file"
        path = "unused.out"
        "#,
        plugin = test_pipeline::stats_wasm().display()
    ))
    .expect("config");
    cfg.base_dir = dir.to_path_buf();
    let spec = PipelineSpec::resolve(cfg, None).expect("spec");
    let plugin = load_plugin(&spec, runtime).expect("plugin");
    let mut p = Pipeline::build(spec, plugin, Options::default()).expect("pipeline");
    p.input.source = Box::new(ModelSource::new(broker));
    p.out.results = Box::new(ModelSink {
        broker: broker.clone(),
        open: Vec::new(),
    });
    p.positions.offsets = Some(offsets::Offsets::default());
    p
}

/// Runs until the input ends or the run is killed; true when it ended.
fn run(dir: &Path, runtime: &Runtime, broker: &Shared, kill_at: Option<u64>) -> bool {
    run_with(dir, runtime, broker, kill_at, false)
}

fn run_with(
    dir: &Path,
    runtime: &Runtime,
    broker: &Shared,
    kill_at: Option<u64>,
    late: bool,
) -> bool {
    {
        let mut b = lock(broker);
        b.steps = 0;
        b.kill_at = kill_at;
        b.killed = false;
    }
    let mut p = pipeline(dir, broker, runtime, late);
    loop {
        match p.step() {
            Ok(Step::Finished) => return true,
            Ok(Step::More) => {}
            // Killed: the process is gone, its open transaction with it.
            Err(_) => return false,
        }
    }
}

fn counted(rows: &[Row]) -> BTreeMap<(String, i64, i64), Vec<i64>> {
    let mut out: BTreeMap<_, Vec<i64>> = BTreeMap::new();
    for (k, s, e, _, n) in rows {
        out.entry((k.clone(), *s, *e)).or_default().push(*n);
    }
    out
}

fn fresh() -> Shared {
    Arc::new(Mutex::new(Broker {
        input: input(),
        committed: vec![None, None],
        progress: vec![None, None],
        ..Broker::default()
    }))
}

fn fresh_late() -> Shared {
    Arc::new(Mutex::new(Broker {
        input: late_input(),
        committed: vec![None],
        progress: vec![None],
        ..Broker::default()
    }))
}

/// Checks the visible rows of a run over [`late_input`] against the semantics: each window
/// visible at revisions 0, 1, … once each, its last revision holding every event of it.
/// Returns the rows, sorted.
fn check_revisions(rows: &[Row], what: &str) -> Vec<Row> {
    let mut by_window: BTreeMap<(String, i64, i64), Vec<(i64, i64)>> = BTreeMap::new();
    for (k, s, e, rev, n) in rows {
        by_window
            .entry((k.clone(), *s, *e))
            .or_default()
            .push((*rev, *n));
    }
    let expected = expected_of(late_input());
    assert_eq!(
        by_window.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "{what}: the windows"
    );
    for (w, revisions) in &mut by_window {
        revisions.sort();
        let numbers: Vec<i64> = revisions.iter().map(|r| r.0).collect();
        let once: Vec<i64> = (0..revisions.len() as i64).collect();
        assert_eq!(numbers, once, "{what}: the revisions of {w:?}");
        assert_eq!(
            revisions.last().map(|r| r.1),
            expected.get(w).copied(),
            "{what}: {w:?}"
        );
    }
    let mut sorted = rows.to_vec();
    sorted.sort();
    sorted
}

#[test]
fn with_allowed_lateness_a_kill_at_any_step_leaves_every_revision_visible_once() {
    let dir = tempfile::tempdir().expect("dir");
    let runtime = Runtime::new(false).expect("runtime");
    let whole = fresh_late();
    assert!(run_with(dir.path(), &runtime, &whole, None, true));
    let reference = check_revisions(&lock(&whole).visible, "the run without a kill");
    // The input does what the test is for: windows fire again.
    let again = reference.iter().filter(|r| r.3 > 0).count();
    assert!(again >= 5, "{again} rows of revision 1 or later");
    let steps = lock(&whole).steps;
    let mut with_windows = 0;
    for kill in 1..=steps {
        let broker = fresh_late();
        assert!(!run_with(dir.path(), &runtime, &broker, Some(kill), true));
        if lock(&broker).progress[0]
            .as_ref()
            .is_some_and(|r| r.kept.as_ref().is_some_and(|(_, w)| !w.is_empty()))
        {
            with_windows += 1;
        }
        assert!(run_with(dir.path(), &runtime, &broker, None, true));
        let what = format!("killed at step {kill} of {steps}");
        let rows = check_revisions(&lock(&broker).visible, &what);
        assert_eq!(rows, reference, "{what}");
    }
    // Most kills came after a commit that recorded kept windows.
    assert!(with_windows > steps / 2, "{with_windows} of {steps}");
}

#[test]
fn a_kill_at_any_step_of_the_protocol_leaves_every_window_visible_exactly_once() {
    let dir = tempfile::tempdir().expect("dir");
    // One runtime: each run instantiates the cached component instead of compiling it.
    let runtime = Runtime::new(false).expect("runtime");
    let expected: BTreeMap<_, Vec<i64>> =
        expected().into_iter().map(|(k, n)| (k, vec![n])).collect();
    // The run without a kill: its steps are the places to kill.
    let whole = fresh();
    assert!(run(dir.path(), &runtime, &whole, None));
    assert_eq!(counted(&lock(&whole).visible), expected);
    let steps = lock(&whole).steps;
    assert!(steps > 40, "too few steps to kill at: {steps}");
    let mut killed_with_rows = 0;
    for kill in 1..=steps {
        let broker = fresh();
        assert!(
            !run(dir.path(), &runtime, &broker, Some(kill)),
            "step {kill} did not kill"
        );
        if !lock(&broker).visible.is_empty() {
            killed_with_rows += 1;
        }
        assert!(
            run(dir.path(), &runtime, &broker, None),
            "the restart after step {kill} ended"
        );
        assert_eq!(
            counted(&lock(&broker).visible),
            expected,
            "killed at step {kill} of {steps}"
        );
    }
    // Most kills came after some rows were committed: the restarts had to skip them.
    assert!(
        killed_with_rows > steps / 2,
        "{killed_with_rows} of {steps}"
    );
}

#[test]
fn kills_in_a_row_leave_every_window_visible_exactly_once() {
    let dir = tempfile::tempdir().expect("dir");
    // One runtime: each run instantiates the cached component instead of compiling it.
    let runtime = Runtime::new(false).expect("runtime");
    let expected: BTreeMap<_, Vec<i64>> =
        expected().into_iter().map(|(k, n)| (k, vec![n])).collect();
    for (first, then) in [(7, 5), (20, 3), (33, 11), (50, 2), (64, 17)] {
        let broker = fresh();
        assert!(!run(dir.path(), &runtime, &broker, Some(first)));
        // The second run is killed too, a few steps in, before the third ends the input.
        assert!(!run(dir.path(), &runtime, &broker, Some(then)));
        assert!(run(dir.path(), &runtime, &broker, None));
        assert_eq!(
            counted(&lock(&broker).visible),
            expected,
            "killed at step {first}, then at step {then}"
        );
    }
}
