//! The latest records a pipeline wrote, kept in memory for the console: a bounded ring per
//! kind of record (result rows; late events, dead letters and plugin errors), filled by
//! [`TapSink`], which wraps a pipeline's sink and copies every row it writes.
//!
//! A row is kept as its cells, owned, beside its sink's column names (shared by every row
//! of those columns): the copy costs a few allocations, and the JSON the console reads is
//! made only for the records it asks for.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::sink::{Cell, Error, Sink};
use crate::time::format_rfc3339_ms;
use crate::value::Value;

/// One record as the console shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Its place in the ring's sequence: 1 for the first record a ring ever took.
    pub seq: u64,
    /// Which sink wrote it: `results`, `late`, `dead_letter` or `error`.
    pub kind: String,
    /// Wall clock when it was written, epoch milliseconds.
    pub at_ms: i64,
    /// Its columns, as the sink's JSON lines name them (absent cells left out; times as
    /// RFC 3339 UTC text).
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// A bounded ring of the latest records of one or more sinks.
#[derive(Debug)]
pub struct Recent {
    ring: Mutex<Ring>,
}

#[derive(Debug)]
struct Ring {
    capacity: usize,
    last_seq: u64,
    records: VecDeque<Stored>,
    /// The columns of the result rows written now, in the sink's order.
    columns: Vec<String>,
}

/// One cell as kept: a [`Cell`], owned.
#[derive(Debug, Clone, PartialEq)]
enum Kept {
    Absent,
    Value(Value),
    Str(Box<str>),
    I64(i64),
    Time(i64),
}

impl Kept {
    fn of(cell: &Cell<'_>) -> Self {
        match cell {
            Cell::Absent => Kept::Absent,
            Cell::Value(v) => Kept::Value((*v).clone()),
            Cell::Str(s) => Kept::Str((*s).into()),
            Cell::I64(n) => Kept::I64(*n),
            Cell::Time(ms) => Kept::Time(*ms),
        }
    }

    /// What a JSON-lines sink would write for it (`None` for an absent cell).
    fn json(&self) -> Option<serde_json::Value> {
        Some(match self {
            Kept::Absent => return None,
            Kept::Value(v) => v.to_json(),
            Kept::Str(s) => serde_json::Value::String(s.to_string()),
            Kept::I64(n) => serde_json::Value::from(*n),
            Kept::Time(ms) => serde_json::Value::String(format_rfc3339_ms(*ms)),
        })
    }
}

/// A record as the ring keeps it.
#[derive(Debug)]
struct Stored {
    seq: u64,
    kind: &'static str,
    at_ms: i64,
    columns: Arc<[String]>,
    cells: Box<[Kept]>,
}

impl Stored {
    fn record(&self) -> Record {
        Record {
            seq: self.seq,
            kind: self.kind.to_string(),
            at_ms: self.at_ms,
            fields: self
                .columns
                .iter()
                .zip(self.cells.iter())
                .filter_map(|(c, k)| Some((c.clone(), k.json()?)))
                .collect(),
        }
    }
}

impl Recent {
    /// A ring that keeps the last `capacity` records (at least 1).
    pub fn new(capacity: usize) -> Self {
        Recent {
            ring: Mutex::new(Ring {
                capacity: capacity.max(1),
                last_seq: 0,
                records: VecDeque::new(),
                columns: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        // A record is pushed whole: a poisoned ring is still consistent.
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps one row of `columns` as `kind`, forgetting the oldest past the capacity.
    fn push(&self, kind: &'static str, columns: &Arc<[String]>, row: &[Cell<'_>]) {
        let cells = row.iter().take(columns.len()).map(Kept::of).collect();
        let at_ms = chrono::Utc::now().timestamp_millis();
        let mut ring = self.lock();
        ring.last_seq += 1;
        let stored = Stored {
            seq: ring.last_seq,
            kind,
            at_ms,
            columns: Arc::clone(columns),
            cells,
        };
        if ring.records.len() == ring.capacity {
            ring.records.pop_front();
        }
        ring.records.push_back(stored);
    }

    /// The records kept whose `seq` is above `after` (all of them for `None`), oldest
    /// first, and the highest `seq` handed out so far (0 before the first record).
    pub fn since(&self, after: Option<u64>) -> (Vec<Record>, u64) {
        let ring = self.lock();
        let after = after.unwrap_or(0);
        let records = ring
            .records
            .iter()
            .filter(|r| r.seq > after)
            .map(Stored::record)
            .collect();
        (records, ring.last_seq)
    }

    /// The highest `seq` handed out so far.
    pub fn last_seq(&self) -> u64 {
        self.lock().last_seq
    }

    /// The columns of the result rows written now, in the sink's order (record fields are
    /// keyed by name, in no order).
    pub fn columns(&self) -> Vec<String> {
        self.lock().columns.clone()
    }

    fn set_columns(&self, columns: &[String]) {
        columns.clone_into(&mut self.lock().columns);
    }
}

/// A sink that writes through to another and keeps a copy of every row in a [`Recent`]
/// ring. It changes nothing about what the inner sink writes, commits or checkpoints.
pub struct TapSink {
    inner: Box<dyn Sink>,
    columns: Arc<[String]>,
    kind: &'static str,
    recent: Arc<Recent>,
}

impl TapSink {
    /// Wraps `inner`, opened with `columns`; its rows are kept in `recent` as `kind`.
    pub fn new(
        inner: Box<dyn Sink>,
        columns: Vec<String>,
        kind: &'static str,
        recent: Arc<Recent>,
    ) -> Self {
        if kind == "results" {
            recent.set_columns(&columns);
        }
        TapSink {
            inner,
            columns: columns.into(),
            kind,
            recent,
        }
    }
}

impl Sink for TapSink {
    fn write(&mut self, row: &[Cell<'_>]) -> Result<(), Error> {
        self.inner.write(row)?;
        self.recent.push(self.kind, &self.columns, row);
        Ok(())
    }

    fn set_columns(&mut self, columns: Vec<String>) {
        if self.kind == "results" {
            self.recent.set_columns(&columns);
        }
        self.columns = columns.clone().into();
        self.inner.set_columns(columns);
    }

    fn commit(&mut self) -> Result<(), Error> {
        self.inner.commit()
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.inner.flush()
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn checkpoint(&mut self) -> Result<Option<u64>, Error> {
        self.inner.checkpoint()
    }

    fn transactional(&self) -> bool {
        self.inner.transactional()
    }

    fn commit_transaction(
        &mut self,
        consumed: Option<crate::kafka::Consumed>,
    ) -> Result<(), Error> {
        self.inner.commit_transaction(consumed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that counts what reaches it.
    #[derive(Default)]
    struct Count(usize);

    impl Sink for Count {
        fn write(&mut self, _: &[Cell<'_>]) -> Result<(), Error> {
            self.0 += 1;
            Ok(())
        }
        fn set_columns(&mut self, _: Vec<String>) {}
        fn commit(&mut self) -> Result<(), Error> {
            Ok(())
        }
        fn flush(&mut self) -> Result<(), Error> {
            Ok(())
        }
        fn describe(&self) -> String {
            "count".into()
        }
    }

    #[test]
    fn the_ring_keeps_the_last_records_in_order_with_their_sequence() {
        let r = Recent::new(3);
        let columns: Arc<[String]> = vec!["i".to_string()].into();
        for i in 1..=5 {
            r.push("results", &columns, &[Cell::I64(i)]);
        }
        let (all, last) = r.since(None);
        assert_eq!(last, 5);
        assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![3, 4, 5]);
        assert_eq!(all[0].fields["i"], 3);
        let (newer, _) = r.since(Some(4));
        assert_eq!(newer.len(), 1);
        assert_eq!(newer[0].seq, 5);
        assert!(r.since(Some(5)).0.is_empty());
    }

    #[test]
    fn the_tap_copies_each_row_as_json_lines_would_write_it() {
        let recent = Arc::new(Recent::new(10));
        let cols = ["symbol", "window_end", "avg", "n", "note"].map(String::from);
        let mut tap = TapSink::new(
            Box::<Count>::default(),
            cols.to_vec(),
            "results",
            recent.clone(),
        );
        let sym = Value::Str("AAPL".into());
        let avg = Value::F64(101.5);
        // 2024-01-22T00:00:03Z
        tap.write(&[
            Cell::Value(&sym),
            Cell::Time(1_705_881_603_000),
            Cell::Value(&avg),
            Cell::I64(4),
            Cell::Absent,
        ])
        .unwrap();
        tap.set_columns(vec!["symbol".into(), "total".into()]);
        tap.write(&[Cell::Str("MSFT"), Cell::I64(7)]).unwrap();
        assert_eq!(recent.columns(), ["symbol", "total"]);
        let (rows, _) = recent.since(None);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].kind, "results");
        assert_eq!(
            serde_json::Value::Object(rows[0].fields.clone()),
            serde_json::json!({"symbol": "AAPL", "window_end": "2024-01-22T00:00:03.000Z", "avg": 101.5, "n": 4})
        );
        assert_eq!(
            serde_json::Value::Object(rows[1].fields.clone()),
            serde_json::json!({"symbol": "MSFT", "total": 7})
        );
    }
}
