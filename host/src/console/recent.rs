//! The latest records a pipeline wrote, kept in memory for the console: a bounded ring per
//! kind of record (result rows; late events, dead letters and plugin errors), filled by
//! [`TapSink`], which wraps a pipeline's sink and copies every row it writes.
//!
//! A row is kept as its cells, owned, beside its sink's column names (shared by every row
//! of those columns): the copy costs a few allocations, and the JSON the console reads is
//! made only for the records it asks for.
//!
//! What a ring holds is bounded three ways, so that neither a plugin's rows nor its input
//! decide the host's memory:
//!
//! - by count ([`Keep::records`]) and by bytes ([`Keep::bytes`]): each record's size is
//!   estimated when it is kept ([`Record`]'s JSON and the memory the ring holds for it are
//!   both at most that estimate: its strings' lengths, as JSON escapes them, its column
//!   names, and a fixed overhead per cell and per record), and the oldest records are
//!   forgotten while the ring is over either bound;
//! - by a [`TenantBudget`] shared by every ring of one tenant: a ring charges it for each
//!   record it keeps and credits it for each it forgets; when the tenant is over budget, the
//!   ring that is pushing forgets its own oldest records, and keeps nothing of the new one if
//!   that is not enough;
//! - per row ([`Keep::row_bytes`]): a row over it is kept with its longest strings cut to a
//!   prefix and a marker with their length, `…(1048576 bytes)`; a row still over it after
//!   that (thousands of columns) is kept as a one-field note saying it was too large. Only
//!   the console's copy is cut: the sink gets the row as the plugin made it.
//!
//! Reads are bounded too: [`Recent::since`] returns the records past a sequence number,
//! oldest first, only as many as fit a byte budget, and says where to go on from.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::sink::{Cell, Error, Sink, SinkRole};
use crate::time::format_rfc3339_ms;
use crate::value::Value;

/// Estimated bytes of a record beyond its cells: the ring's bookkeeping (at most 80 bytes),
/// and its JSON's `seq`, `kind`, `at_ms` and punctuation (at most 92 bytes).
const RECORD_BYTES: usize = 128;
/// Estimated bytes of a cell beyond its column name and value: the cell as kept (at most 40
/// bytes), and its JSON's quotes, colon and comma.
const CELL_BYTES: usize = 48;
/// The bytes a cut string's marker may take, `…(` + up to 20 digits + ` bytes)`.
const MARKER_BYTES: usize = 32;
/// The field of the note that stands for a row too large to keep even cut.
pub const TOO_LARGE_FIELD: &str = "_console";

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
    /// RFC 3339 UTC text; strings of a row over [`Keep::row_bytes`] cut, see the module).
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// What one ring keeps at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    /// Records (at least 1).
    pub records: usize,
    /// Estimated bytes of all its records together.
    pub bytes: usize,
    /// Estimated bytes of one record: a larger row is cut (see the module).
    pub row_bytes: usize,
}

impl Keep {
    /// At most `records` records, with no bound on bytes.
    pub fn records(records: usize) -> Self {
        Keep {
            records,
            bytes: usize::MAX,
            row_bytes: usize::MAX,
        }
    }
}

/// The bytes every console ring of one tenant keeps together, against a limit they share.
#[derive(Debug)]
pub struct TenantBudget {
    limit: usize,
    used: AtomicUsize,
}

impl TenantBudget {
    /// A fresh budget of `keep_bytes_per_tenant` from a host config's `[console]` section.
    pub fn of(cfg: &crate::config::ConsoleConfig) -> Self {
        TenantBudget::new(cfg.keep_bytes_per_tenant.usize())
    }

    /// A budget of `limit` estimated bytes, none used.
    pub fn new(limit: usize) -> Self {
        TenantBudget {
            limit,
            used: AtomicUsize::new(0),
        }
    }

    /// The estimated bytes the tenant's rings keep now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The most they may keep.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Takes `n` bytes if they fit under the limit.
    fn charge(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(n).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    /// Gives back `n` bytes.
    fn credit(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::Relaxed);
    }
}

/// A bounded ring of the latest records of one or more sinks.
#[derive(Debug)]
pub struct Recent {
    keep: Keep,
    tenant: Option<Arc<TenantBudget>>,
    ring: Mutex<Ring>,
}

#[derive(Debug)]
struct Ring {
    last_seq: u64,
    records: VecDeque<Stored>,
    /// The estimated bytes of `records`.
    bytes: usize,
    /// The columns of the result rows written now, in the sink's order.
    columns: Vec<String>,
}

/// Records past a point in a ring, as many as fit a byte budget: [`Recent::since`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    /// The records, oldest first.
    pub records: Vec<Record>,
    /// Where to go on from: the `seq` of the last record returned when some were left for
    /// next time, else the highest `seq` handed out so far (0 before the first record).
    pub next: u64,
    /// Estimated bytes of `records` (at least the length of their JSON).
    pub bytes: usize,
    /// Whether records were left for next time.
    pub more: bool,
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

/// The bytes of `s` as a JSON string, quotes included.
fn json_str_len(s: &str) -> usize {
    2 + s.bytes().map(json_byte_len).sum::<usize>()
}

/// The bytes one byte of a string takes in JSON, as `serde_json` escapes it.
fn json_byte_len(b: u8) -> usize {
    match b {
        b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
        0..0x20 => 6,
        _ => 1,
    }
}

/// The string in a cell, if it holds one.
fn text<'a>(cell: &Cell<'a>) -> Option<&'a str> {
    match cell {
        Cell::Str(s) => Some(s),
        Cell::Value(Value::Str(s)) => Some(s),
        _ => None,
    }
}

/// An upper bound of the bytes of a cell's JSON value (0 for an absent cell).
fn value_len(cell: &Cell<'_>) -> usize {
    match cell {
        Cell::Absent => 0,
        Cell::Str(s) => json_str_len(s),
        Cell::Value(v) => match v {
            Value::Null | Value::Bool(_) => 5,
            Value::I64(n) => i64_len(*n),
            // The longest shortest form of an f64: `-2.2250738585072014e-308`.
            Value::F64(_) => 24,
            Value::Str(s) => json_str_len(s),
        },
        Cell::I64(n) => i64_len(*n),
        // `"2024-01-22T00:00:03.000Z"`, with room for years past 9999.
        Cell::Time(_) => 32,
    }
}

fn i64_len(n: i64) -> usize {
    let digits = n
        .unsigned_abs()
        .checked_ilog10()
        .map_or(1, |d| d as usize + 1);
    digits + usize::from(n < 0)
}

/// What `columns` add to the estimate of each record of theirs: a cell's overhead and the
/// column's name as JSON, for each (worked out once per sink and columns, not per row).
fn names_bytes(columns: &[String]) -> usize {
    columns.iter().map(|c| CELL_BYTES + json_str_len(c)).sum()
}

/// The estimated bytes of a record whose columns add `names` ([`names_bytes`]) and whose
/// values take `values` bytes of JSON.
fn estimate(names: usize, values: impl Iterator<Item = usize>) -> usize {
    RECORD_BYTES + names + values.sum::<usize>()
}

/// The longest prefix of `s` (on a character boundary) whose JSON takes at most `room`
/// bytes, quotes left out.
fn prefix(s: &str, room: usize) -> &str {
    let mut used = 0;
    for (i, c) in s.char_indices() {
        let mut buf = [0u8; 4];
        let len: usize = c.encode_utf8(&mut buf).bytes().map(json_byte_len).sum();
        if used + len > room {
            return &s[..i];
        }
        used += len;
    }
    s
}

/// `s` cut to the longest prefix whose JSON takes at most `room` bytes, with a marker
/// saying its whole length: `…(1048576 bytes)` (at most [`MARKER_BYTES`] more).
pub(crate) fn cut_string(s: &str, room: usize) -> String {
    let mut kept = prefix(s, room).to_string();
    kept.push_str(&format!("…({} bytes)", s.len()));
    kept
}

/// What is kept of one row (its cells and estimated bytes), with its strings cut when it is
/// over `cap` (see the module), or `None` when even that is not enough.
fn keep_row(names: usize, row: &[Cell<'_>], cap: usize) -> Option<(Box<[Kept]>, usize)> {
    let bytes = estimate(names, row.iter().map(value_len));
    if bytes <= cap {
        return Some((row.iter().map(Kept::of).collect(), bytes));
    }
    // Everything but the strings' contents (their quotes are in).
    let fixed = estimate(
        names,
        row.iter()
            .map(|c| text(c).map_or_else(|| value_len(c), |_| 2)),
    );
    let mut room = cap.checked_sub(fixed)?;
    // Water-filling: the shortest strings are kept whole while they take no more than an
    // even share of what is left; every string longer than its share is cut to that share.
    let mut strings: Vec<(usize, usize)> = row
        .iter()
        .enumerate()
        .filter_map(|(i, c)| Some((i, json_str_len(text(c)?) - 2)))
        .collect();
    strings.sort_by_key(|&(_, len)| len);
    let mut cut_to = vec![None; row.len()];
    let mut cut: Option<usize> = None;
    for (k, &(i, len)) in strings.iter().enumerate() {
        let share = cut.unwrap_or(room / (strings.len() - k));
        if cut.is_some() || len > share {
            cut = Some(share);
            cut_to[i] = Some(share.saturating_sub(MARKER_BYTES));
        } else {
            room -= len;
        }
    }
    let cells: Box<[Kept]> = row
        .iter()
        .zip(&cut_to)
        .map(|(cell, room)| match (text(cell), room) {
            (Some(s), Some(room)) => Kept::Str(cut_string(s, *room).into()),
            _ => Kept::of(cell),
        })
        .collect();
    let bytes = estimate(
        names,
        row.iter().zip(cells.iter()).map(|(c, k)| match k {
            Kept::Str(s) => json_str_len(s),
            _ => value_len(c),
        }),
    );
    (bytes <= cap).then_some((cells, bytes))
}

/// A record as the ring keeps it.
#[derive(Debug)]
struct Stored {
    seq: u64,
    role: SinkRole,
    at_ms: i64,
    columns: Arc<[String]>,
    cells: Box<[Kept]>,
    /// Its estimated bytes.
    bytes: usize,
}

impl Stored {
    fn record(&self) -> Record {
        Record {
            seq: self.seq,
            kind: self.role.kind().to_string(),
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
    /// A ring that keeps the last `capacity` records (at least 1), with no bound on bytes.
    pub fn new(capacity: usize) -> Self {
        Recent::with_limits(Keep::records(capacity), None)
    }

    /// A ring that keeps what `keep` allows, charging `tenant`'s budget when there is one.
    pub fn with_limits(keep: Keep, tenant: Option<Arc<TenantBudget>>) -> Self {
        Recent {
            keep: Keep {
                records: keep.records.max(1),
                ..keep
            },
            tenant,
            ring: Mutex::new(Ring {
                last_seq: 0,
                records: VecDeque::new(),
                bytes: 0,
                columns: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        // A record is pushed whole: a poisoned ring is still consistent.
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the oldest record, if any, giving its bytes back to the tenant.
    fn evict(&self, ring: &mut Ring) -> bool {
        let Some(old) = ring.records.pop_front() else {
            return false;
        };
        ring.bytes -= old.bytes;
        if let Some(tenant) = &self.tenant {
            tenant.credit(old.bytes);
        }
        true
    }

    /// [`Recent::push_named`], working out what the column names add.
    #[cfg(test)]
    fn push(&self, role: SinkRole, columns: &Arc<[String]>, row: &[Cell<'_>]) {
        self.push_named(role, columns, names_bytes(columns), row);
    }

    /// Keeps one row of `columns` (which add `names` to its estimate) written to the sink of
    /// `role` (cut when over [`Keep::row_bytes`]), forgetting the oldest records while over
    /// the ring's bounds or the tenant's budget.
    fn push_named(&self, role: SinkRole, columns: &Arc<[String]>, names: usize, row: &[Cell<'_>]) {
        let row = &row[..row.len().min(columns.len())];
        let at_ms = chrono::Utc::now().timestamp_millis();
        let (columns, cells, bytes) = match keep_row(names, row, self.keep.row_bytes) {
            Some((cells, bytes)) => (Arc::clone(columns), cells, bytes),
            None => {
                let note: Arc<[String]> = Arc::new([TOO_LARGE_FIELD.to_string()]);
                let size = estimate(names, row.iter().map(value_len));
                let text = format!(
                    "a row of about {size} bytes, too large for the console to keep ([console] max_row_bytes)"
                );
                let bytes = estimate(names_bytes(&note), std::iter::once(json_str_len(&text)));
                (
                    note,
                    Box::new([Kept::Str(text.into())]) as Box<[Kept]>,
                    bytes,
                )
            }
        };
        let mut ring = self.lock();
        ring.last_seq += 1;
        if bytes > self.keep.bytes {
            // Larger than the whole ring (a row cap above the ring's bytes): not kept.
            return;
        }
        while ring.records.len() >= self.keep.records || ring.bytes + bytes > self.keep.bytes {
            self.evict(&mut ring);
        }
        if let Some(tenant) = &self.tenant {
            while !tenant.charge(bytes) {
                if !self.evict(&mut ring) {
                    // The tenant's other rings hold its budget: this record is not kept.
                    return;
                }
            }
        }
        ring.bytes += bytes;
        let seq = ring.last_seq;
        ring.records.push_back(Stored {
            seq,
            role,
            at_ms,
            columns,
            cells,
            bytes,
        });
    }

    /// The records kept whose `seq` is above `after` (all of them for `None`), oldest
    /// first, as many as fit in `budget` estimated bytes — but at least one when there is
    /// any, so that a reader always moves on — and where to go on from. JSON is made only
    /// for the records returned.
    pub fn since(&self, after: Option<u64>, budget: usize) -> Page {
        let ring = self.lock();
        let after = after.unwrap_or(0);
        let first = ring.records.partition_point(|r| r.seq <= after);
        let mut page = Page {
            next: ring.last_seq,
            ..Page::default()
        };
        for stored in ring.records.range(first..) {
            if !page.records.is_empty() && page.bytes + stored.bytes > budget {
                page.more = true;
                break;
            }
            page.bytes += stored.bytes;
            page.records.push(stored.record());
        }
        if page.more {
            page.next = page.records.last().map_or(after, |r| r.seq);
        }
        page
    }

    /// The highest `seq` handed out so far.
    pub fn last_seq(&self) -> u64 {
        self.lock().last_seq
    }

    /// How many records are kept, and their estimated bytes.
    pub fn kept(&self) -> (usize, usize) {
        let ring = self.lock();
        (ring.records.len(), ring.bytes)
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

impl Drop for Recent {
    fn drop(&mut self) {
        if let Some(tenant) = &self.tenant {
            let ring = self.ring.get_mut().unwrap_or_else(|p| p.into_inner());
            tenant.credit(ring.bytes);
        }
    }
}

/// A sink that writes through to another and keeps a copy of every row in a [`Recent`]
/// ring. It changes nothing about what the inner sink writes, commits or checkpoints.
pub struct TapSink {
    inner: Box<dyn Sink>,
    columns: Arc<[String]>,
    /// What `columns` add to each record's estimate.
    names: usize,
    role: SinkRole,
    recent: Arc<Recent>,
}

impl TapSink {
    /// Wraps `inner`, the sink of `role` opened with `columns`; its rows are kept in
    /// `recent`.
    pub fn new(
        inner: Box<dyn Sink>,
        columns: Vec<String>,
        role: SinkRole,
        recent: Arc<Recent>,
    ) -> Self {
        if role == SinkRole::Results {
            recent.set_columns(&columns);
        }
        TapSink {
            inner,
            names: names_bytes(&columns),
            columns: columns.into(),
            role,
            recent,
        }
    }
}

impl Sink for TapSink {
    fn write(&mut self, row: &[Cell<'_>]) -> Result<(), Error> {
        self.inner.write(row)?;
        self.recent
            .push_named(self.role, &self.columns, self.names, row);
        Ok(())
    }

    fn set_columns(&mut self, columns: Vec<String>) {
        if self.role == SinkRole::Results {
            self.recent.set_columns(&columns);
        }
        self.names = names_bytes(&columns);
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
        consumed: Option<crate::sink::TxnOffsets>,
    ) -> Result<(), Error> {
        self.inner.commit_transaction(consumed)
    }

    fn keeps_positions(&self) -> Option<std::sync::Arc<dyn crate::sink::PositionStore>> {
        self.inner.keeps_positions()
    }

    fn health(&self) -> Option<std::sync::Arc<crate::sink::Health>> {
        self.inner.health()
    }
}

/// A sink for tests: keeps the length of every string it is given, and writes nothing.
#[cfg(test)]
#[derive(Default)]
pub(super) struct Lengths(pub(super) Arc<Mutex<Vec<usize>>>);

#[cfg(test)]
impl Sink for Lengths {
    fn write(&mut self, row: &[Cell<'_>]) -> Result<(), Error> {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        seen.extend(row.iter().filter_map(text).map(str::len));
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
        "lengths".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_last_records_in_order_with_their_sequence() {
        let r = Recent::new(3);
        let columns: Arc<[String]> = vec!["i".to_string()].into();
        for i in 1..=5 {
            r.push(SinkRole::Results, &columns, &[Cell::I64(i)]);
        }
        let page = r.since(None, usize::MAX);
        let (all, last) = (page.records, page.next);
        assert_eq!(last, 5);
        assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![3, 4, 5]);
        assert_eq!(all[0].fields["i"], 3);
        let newer = r.since(Some(4), usize::MAX).records;
        assert_eq!(newer.len(), 1);
        assert_eq!(newer[0].seq, 5);
        assert!(r.since(Some(5), usize::MAX).records.is_empty());
    }

    #[test]
    fn the_tap_copies_each_row_as_json_lines_would_write_it() {
        let recent = Arc::new(Recent::new(10));
        let cols = ["symbol", "window_end", "avg", "n", "note"].map(String::from);
        let mut tap = TapSink::new(
            Box::<Lengths>::default(),
            cols.to_vec(),
            SinkRole::Results,
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
        let rows = recent.since(None, usize::MAX).records;
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

    /// The estimated bytes of a record of one column `s` holding `len` plain characters.
    fn one_string(len: usize) -> usize {
        RECORD_BYTES + CELL_BYTES + "\"s\"".len() + len + 2
    }

    fn push_strings(r: &Recent, n: usize, len: usize) {
        let columns: Arc<[String]> = vec!["s".to_string()].into();
        for i in 0..n {
            let s = format!("{i:0len$}");
            r.push(SinkRole::Results, &columns, &[Cell::Str(&s)]);
        }
    }

    fn seqs(r: &Recent) -> Vec<u64> {
        r.since(None, usize::MAX)
            .records
            .iter()
            .map(|x| x.seq)
            .collect()
    }

    #[test]
    fn the_ring_forgets_its_oldest_records_past_its_byte_budget() {
        let size = one_string(1000);
        // Room for four and a half records: four are kept, whatever the count allows.
        let r = Recent::with_limits(
            Keep {
                records: 100,
                bytes: 4 * size + size / 2,
                row_bytes: usize::MAX,
            },
            None,
        );
        push_strings(&r, 10, 1000);
        assert_eq!(seqs(&r), [7, 8, 9, 10]);
        assert_eq!(r.kept(), (4, 4 * size));
        assert_eq!(r.last_seq(), 10);
        // The estimate bounds each record's JSON.
        for rec in r.since(None, usize::MAX).records {
            assert!(serde_json::to_string(&rec).unwrap().len() <= size);
        }
    }

    #[test]
    fn a_records_estimate_bounds_its_json_whatever_its_cells() {
        let r = Recent::with_limits(Keep::records(10), None);
        let columns: Arc<[String]> = ["q\"uote", "ctl", "n", "f", "t", "v", "none", "b"]
            .map(String::from)
            .into();
        let f = Value::F64(-2.225_073_858_507_201_4e-308);
        let v = Value::Str("é\u{1}\\\n".repeat(50));
        let b = Value::Bool(false);
        r.push(
            SinkRole::DeadLetter,
            &columns,
            &[
                Cell::Str("\"\"\u{0}\u{1f}"),
                Cell::Str("\u{7}\u{8}\t"),
                Cell::I64(i64::MIN),
                Cell::Value(&f),
                Cell::Time(i64::MAX / 1000),
                Cell::Value(&v),
                Cell::Absent,
                Cell::Value(&b),
            ],
        );
        let (_, bytes) = r.kept();
        let rec = &r.since(None, usize::MAX).records[0];
        let json = serde_json::to_string(rec).unwrap();
        assert!(json.len() <= bytes, "{} > {bytes}: {json}", json.len());
    }

    #[test]
    fn one_tenant_budget_is_shared_by_all_its_rings() {
        let size = one_string(1000);
        let tenant = Arc::new(TenantBudget::new(3 * size));
        let own = Keep {
            records: 100,
            bytes: 10 * size,
            row_bytes: usize::MAX,
        };
        let a = Recent::with_limits(own, Some(tenant.clone()));
        let b = Recent::with_limits(own, Some(tenant.clone()));
        push_strings(&a, 2, 1000);
        push_strings(&b, 2, 1000);
        // b's second record did not fit: b forgot its own first, not a's.
        assert_eq!(seqs(&a), [1, 2]);
        assert_eq!(seqs(&b), [2]);
        assert_eq!(tenant.used(), 3 * size);
        push_strings(&a, 1, 1000);
        assert_eq!(seqs(&a), [2, 3]);
        assert_eq!(seqs(&b), [2]);
        assert_eq!(tenant.used(), 3 * size);
        // A ring with nothing of its own to forget keeps nothing while the tenant is full.
        let c = Recent::with_limits(own, Some(tenant.clone()));
        push_strings(&c, 1, 1000);
        assert_eq!(c.kept(), (0, 0));
        assert_eq!(c.last_seq(), 1);
        // A ring's bytes go back to the tenant when it goes away.
        drop(a);
        assert_eq!(tenant.used(), size);
        push_strings(&c, 2, 1000);
        assert_eq!(seqs(&c), [2, 3]);
        assert_eq!(tenant.used(), 3 * size);
    }

    #[test]
    fn a_row_over_the_cap_is_kept_cut_and_the_sink_gets_it_whole() {
        let cap = 4096;
        let recent = Arc::new(Recent::with_limits(
            Keep {
                records: 10,
                bytes: 1 << 20,
                row_bytes: cap,
            },
            None,
        ));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut tap = TapSink::new(
            Box::new(Lengths(seen.clone())),
            ["symbol", "n", "note", "other"].map(String::from).to_vec(),
            SinkRole::Results,
            recent.clone(),
        );
        let huge = "é".repeat(1 << 19);
        let long = Value::Str("y".repeat(100_000));
        tap.write(&[
            Cell::Str(&huge),
            Cell::I64(7),
            Cell::Str("short"),
            Cell::Value(&long),
        ])
        .unwrap();
        assert_eq!(*seen.lock().unwrap(), [1 << 20, 5, 100_000]);
        let (_, bytes) = recent.kept();
        assert!(bytes <= cap, "{bytes}");
        let rec = &recent.since(None, usize::MAX).records[0];
        assert!(serde_json::to_string(rec).unwrap().len() <= cap);
        assert_eq!(rec.fields["n"], 7);
        assert_eq!(rec.fields["note"], "short");
        let symbol = rec.fields["symbol"].as_str().unwrap();
        let other = rec.fields["other"].as_str().unwrap();
        assert!(symbol.starts_with("éé"), "{symbol}");
        assert!(symbol.ends_with("…(1048576 bytes)"), "{symbol}");
        assert!(other.starts_with("yy"), "{other}");
        assert!(other.ends_with("…(100000 bytes)"), "{other}");
        // The two long strings share what the short cells leave: each gets about half.
        let half = (cap - 600) / 2;
        assert!(symbol.len() > half && other.len() > half);
        assert!(symbol.len() + other.len() < cap);
    }

    #[test]
    fn a_row_too_wide_to_cut_is_kept_as_a_note() {
        let recent = Recent::with_limits(
            Keep {
                records: 10,
                bytes: 1 << 20,
                row_bytes: 2048,
            },
            None,
        );
        // 100 number cells take more than 2 KiB however strings are cut.
        let columns: Arc<[String]> = (0..100).map(|i| format!("c{i}")).collect();
        let row: Vec<Cell<'_>> = (0..100).map(Cell::I64).collect();
        recent.push(SinkRole::Results, &columns, &row);
        let rec = &recent.since(None, usize::MAX).records[0];
        assert_eq!(rec.fields.len(), 1);
        let note = rec.fields[TOO_LARGE_FIELD].as_str().unwrap();
        assert!(note.contains("max_row_bytes"), "{note}");
    }

    #[test]
    fn a_read_returns_at_most_its_budget_and_where_to_go_on() {
        let size = one_string(100);
        let r = Recent::with_limits(Keep::records(100), None);
        push_strings(&r, 10, 100);
        let got = |p: &Page| p.records.iter().map(|x| x.seq).collect::<Vec<_>>();
        let budget = 3 * size + size / 2;
        let page = r.since(None, budget);
        assert_eq!((got(&page), page.next, page.more), (vec![1, 2, 3], 3, true));
        assert_eq!(page.bytes, 3 * size);
        let page = r.since(Some(page.next), budget);
        assert_eq!((got(&page), page.next, page.more), (vec![4, 5, 6], 6, true));
        let page = r.since(Some(page.next), budget);
        assert_eq!((got(&page), page.next, page.more), (vec![7, 8, 9], 9, true));
        let page = r.since(Some(page.next), budget);
        assert_eq!((got(&page), page.next, page.more), (vec![10], 10, false));
        let page = r.since(Some(page.next), budget);
        assert_eq!((got(&page), page.next, page.more), (vec![], 10, false));
        // A budget smaller than one record still moves a reader on, one at a time.
        let page = r.since(Some(4), 1);
        assert_eq!((got(&page), page.next, page.more), (vec![5], 5, true));
    }
}
