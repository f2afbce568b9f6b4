//! Exactly-once, proven against a model of Kafka's transactional protocol: partitions of
//! input records, the consumer group's committed offsets with their metadata, and a log
//! of result transactions that are either committed (rows and offsets together) or lost.
//! A run is killed at every step of the protocol in turn — a poll, each row produced, the
//! offsets sent to the transaction, the commit — and restarted from what the model holds,
//! as a restarted process would be (its open transaction is aborted by the fencing of its
//! successor). A `read_committed` reader must then see every window's row exactly once,
//! with the content the input gives it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::*;
use crate::source;

/// A result row as the model keeps it: key, window start and end, event count.
type Row = (String, i64, i64, i64);

/// The model broker, shared by the source and the sink of one run and kept across kills.
#[derive(Default)]
struct Broker {
    /// Per partition, its records (JSON lines), offset = index.
    input: Vec<Vec<String>>,
    /// Per partition, the group's committed offset and its metadata.
    committed: Vec<Option<(u64, String)>>,
    /// Committed transactions' rows, in commit order: what `read_committed` sees.
    visible: Vec<Row>,
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
        drop(b);
        ModelSource {
            broker: broker.clone(),
            next,
            assigned: false,
            origin: Arc::from("model"),
        }
    }
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
    fn commit(&mut self, positions: &[source::Commit]) -> Result<(), source::Error> {
        panic!("an exactly-once source committed {positions:?} outside the transaction");
    }
    fn replay_floor(&self, partition: u32) -> Option<source::ReplayFloor> {
        let b = lock(&self.broker);
        let (_, meta) = b.committed.get(partition as usize)?.as_ref()?;
        let (w, read) = meta.split_once(':')?;
        Some(source::ReplayFloor {
            watermark: w.parse().ok()?,
            read: read.parse().ok()?,
        })
    }
    fn consumed(
        &self,
        positions: &[source::Commit],
    ) -> Result<Option<sink::TxnOffsets>, source::Error> {
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
        let [
            Cell::Value(Value::Str(key)),
            Cell::Time(start),
            Cell::Time(end),
            Cell::Value(Value::I64(n)),
            ..,
        ] = row
        else {
            panic!("unexpected row {row:?}");
        };
        self.open.push((key.clone(), *start, *end, *n));
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

/// Every window's count, worked out from the input: sliding 2 s windows every 1 s.
fn expected() -> BTreeMap<(String, i64, i64), i64> {
    let mut out = BTreeMap::new();
    for line in input().concat() {
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

/// A pipeline over the model: sliding 2 s / 1 s windows, 2 s watermark delay.
fn pipeline(dir: &Path, broker: &Shared, runtime: &Runtime) -> Pipeline {
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
        [watermark]
        delay = "2s"
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
    {
        let mut b = lock(broker);
        b.steps = 0;
        b.kill_at = kill_at;
        b.killed = false;
    }
    let mut p = pipeline(dir, broker, runtime);
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
    for (k, s, e, n) in rows {
        out.entry((k.clone(), *s, *e)).or_default().push(*n);
    }
    out
}

fn fresh() -> Shared {
    Arc::new(Mutex::new(Broker {
        input: input(),
        committed: vec![None, None],
        ..Broker::default()
    }))
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
