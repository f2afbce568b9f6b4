//! The pipeline's exactly-once hook: with a transactional result sink, the positions the
//! source would commit go in the sink's transaction instead, and the source commits none.

use std::sync::{Arc, Mutex};

use super::*;
use crate::source;

/// What the fake sink's transactions held: rows and (topic, partition, offset, floor)
/// positions.
type Transactions = Arc<Mutex<Vec<(usize, Vec<(String, i32, i64, String)>)>>>;

/// A test source's positions in topic `in` as a transaction takes them, each with
/// `metadata`, and no fencing token.
pub(super) fn txn_offsets(
    positions: &[source::Commit],
    metadata: impl Fn(&source::Commit) -> String,
) -> sink::TxnOffsets {
    sink::TxnOffsets {
        positions: positions
            .iter()
            .map(|c| sink::TxnPosition {
                topic: "in".into(),
                partition: c.partition as i32,
                offset: c.offset as i64,
                metadata: metadata(c),
                record: None,
            })
            .collect(),
        group: Box::new(()),
    }
}

/// One partition's records, handed out by the first poll; the input ends once `done` is
/// set.
struct FakeSource {
    records: Vec<(u64, String)>,
    done: Arc<AtomicBool>,
}

impl Source for FakeSource {
    fn poll(&mut self, out: &mut RawBatch, _max: usize) -> Result<Poll, source::Error> {
        let origin: Arc<str> = Arc::from("in/0");
        for (offset, text) in self.records.drain(..) {
            out.push(0, &origin, offset, &text);
        }
        Ok(if self.done.load(Ordering::Relaxed) {
            Poll::Done
        } else {
            Poll::Ready
        })
    }
    fn commits(&self) -> bool {
        true
    }
    fn commit(
        &mut self,
        positions: &[source::Commit],
        _kept: Option<&source::Kept>,
    ) -> Result<(), source::Error> {
        panic!("the source committed {positions:?} itself");
    }
    fn consumed(
        &mut self,
        positions: &[source::Commit],
        _kept: Option<&source::Kept>,
    ) -> Result<Option<sink::TxnOffsets>, source::Error> {
        Ok(Some(txn_offsets(positions, |c| c.floor.to_string())))
    }
    fn describe(&self) -> String {
        "fake".into()
    }
}

/// Counts rows, and records each transaction's rows and positions.
struct FakeTransactions {
    rows: usize,
    done: Transactions,
}

impl Sink for FakeTransactions {
    fn write(&mut self, _row: &[Cell<'_>]) -> Result<(), sink::Error> {
        self.rows += 1;
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
        "fake".into()
    }
    fn transactional(&self) -> bool {
        true
    }
    fn commit_transaction(
        &mut self,
        consumed: Option<sink::TxnOffsets>,
    ) -> Result<(), sink::Error> {
        let positions = consumed
            .map(|c| {
                c.positions
                    .into_iter()
                    .map(|p| (p.topic, p.partition, p.offset, p.metadata))
                    .collect()
            })
            .unwrap_or_default();
        self.done
            .lock()
            .expect("lock")
            .push((std::mem::take(&mut self.rows), positions));
        Ok(())
    }
}

#[test]
fn the_positions_go_in_the_sinks_transaction_and_the_source_commits_none() {
    let dir = tempfile::tempdir().expect("dir");
    let mut p = super::test_pipeline::tick_pipeline("eos", dir.path(), "unused.jsonl", "");
    let tick = |s: &str, t: i64| format!("{{\"symbol\":\"{s}\",\"t\":{t},\"price\":1.0}}");
    let end = Arc::new(AtomicBool::new(false));
    // Offsets 10 and 11: A's windows [0, 1 s) and [1 s, 2 s); 12: B's [2 s, 3 s).
    p.input.source = Box::new(FakeSource {
        records: vec![
            (10, tick("A", 100)),
            (11, tick("A", 1500)),
            (12, tick("B", 2100)),
        ],
        done: end.clone(),
    });
    p.positions.offsets = Some(offsets::Offsets::default());
    let done = Transactions::default();
    p.out.results = Box::new(FakeTransactions {
        rows: 0,
        done: done.clone(),
    });
    assert_eq!(p.step().expect("step"), Step::More);
    p.flush_sinks().expect("flush");
    // W = 2.1 s fired A's two windows; B's holds offset 12, the position to resume from,
    // and the floor is W: a restart reading from 12 fires no window ending by 2.1 s again.
    let position = |o: i64, floor: i64| vec![("in".to_string(), 0, o, floor.to_string())];
    assert_eq!(*done.lock().expect("lock"), [(2, position(12, 2_100))]);
    // Nothing moved: the next transaction still carries the position and its floor (a
    // transaction never commits rows without them).
    p.flush_sinks().expect("flush");
    assert_eq!(done.lock().expect("lock")[1], (0, position(12, 2_100)));
    // The end of input flushes B's window in a last transaction: every record is released
    // (position 13), and the floor is the end of the last window holding the latest event
    // (3 s), so a later run over more input never fires B's [2 s, 3 s) again.
    end.store(true, Ordering::Relaxed);
    assert_eq!(p.step().expect("step"), Step::Finished);
    assert_eq!(done.lock().expect("lock")[2], (1, position(13, 3_000)));
}
