//! Sinks: where result rows, late events, dead letters and plugin errors are written.
//!
//! A sink is opened with its columns, once; every record is then a row of positional
//! [`Cell`]s, one per column, which the sink encodes straight into its buffer as one JSON
//! object per line (each column's escaped `"name":` prefix is prepared at open) or as a CSV
//! line under a header fixed when the sink is opened. Sinks do not know what the rows mean.

mod health;
mod kafka;
mod postgres;

pub use health::{Health, Retrying};
pub use kafka::{KafkaSink, ROW_ID_HEADER};
pub use postgres::{POSITIONS_TABLE, PostgresSink, Retry, Target, describe_url};

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::config::{Format, SinkConfig, SinkMode};
use crate::time::write_rfc3339_ms;
use crate::value::Value;

/// Rows are encoded into an in-memory buffer and handed to the OS when a caller commits
/// (after each window's rows), or as soon as the buffer reaches this size (one `write(2)`
/// per 64 KiB at most).
pub const COMMIT_BYTES: usize = 64 * 1024;

/// The most of an existing CSV file's first line read to compare it with the header.
const MAX_HEADER_BYTES: u64 = 64 * 1024;

/// Errors opening or writing a sink.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be created or opened.
    #[error("cannot open sink file {path}: {source}; check that the directory is writable")]
    Open {
        /// The path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// An existing CSV file's header is not the pipeline's.
    #[error(
        "sink file {path} already has the CSV header `{found}`, but this pipeline writes `{expected}` ({difference}); move the file away, point the sink at another path, or set mode = \"truncate\" to replace it"
    )]
    Header {
        /// The path.
        path: PathBuf,
        /// The file's first line.
        found: String,
        /// The header the pipeline would write.
        expected: String,
        /// The first difference, in words.
        difference: String,
    },
    /// A write failed. The sink refuses every later write with the same error: what reached
    /// the file before is intact, and nothing more is added after a partial write.
    #[error("writing to {sink}: {source}")]
    Write {
        /// The sink.
        sink: String,
        /// Why.
        source: io::Error,
    },
}

/// One value of a row, in the position of its column.
///
/// Borrowed, so that a row is built without copying its values; [`Cell::Time`] lets an
/// event time reach the sink's buffer without an intermediate string.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    /// The row has no value for this column: JSON lines leave the member out, CSV writes an
    /// empty cell.
    Absent,
    /// A value (`Value::Null` is JSON `null`, an empty CSV cell).
    Value(&'a Value),
    /// Text.
    Str(&'a str),
    /// An integer.
    I64(i64),
    /// Epoch milliseconds, written as RFC 3339 UTC with milliseconds (as
    /// [`crate::time::format_rfc3339_ms`] formats it).
    Time(i64),
}

impl<'a> From<&'a Value> for Cell<'a> {
    fn from(v: &'a Value) -> Self {
        Cell::Value(v)
    }
}

/// What a pipeline writes to a sink: the four roles, each with its own key in the pipeline
/// file and its own kind of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SinkRole {
    /// Result rows (`[sink]`).
    Results,
    /// Events late for every window (`[late_sink]`, optional).
    Late,
    /// Records that could not be taken in, with the reason (`[dead_letter]`).
    DeadLetter,
    /// Failed plugin calls (`[error_sink]`).
    Errors,
}

impl SinkRole {
    /// Every role, in the order the pipeline file lists them.
    pub const ALL: [SinkRole; 4] = [
        SinkRole::Results,
        SinkRole::Late,
        SinkRole::DeadLetter,
        SinkRole::Errors,
    ];

    /// Its table in the pipeline file, which also names it in checkpoints and errors.
    pub fn key(self) -> &'static str {
        match self {
            SinkRole::Results => "sink",
            SinkRole::Late => "late_sink",
            SinkRole::DeadLetter => "dead_letter",
            SinkRole::Errors => "error_sink",
        }
    }

    /// The kind of record it writes, as the console names it.
    pub fn kind(self) -> &'static str {
        match self {
            SinkRole::Results => "results",
            SinkRole::Late => "late",
            SinkRole::DeadLetter => "dead_letter",
            SinkRole::Errors => "error",
        }
    }

    /// Its config in `cfg`: `None` for a side sink left to its default (stderr).
    pub fn config(self, cfg: &crate::config::PipelineConfig) -> Option<&SinkConfig> {
        match self {
            SinkRole::Results => Some(&cfg.sink),
            SinkRole::Late => cfg.late_sink.as_ref(),
            SinkRole::DeadLetter => cfg.dead_letter.as_ref(),
            SinkRole::Errors => cfg.error_sink.as_ref(),
        }
    }
}

/// A destination for rows.
///
/// Three levels of "written": [`Sink::write`] encodes a row into the sink's buffer;
/// [`Sink::commit`] hands every buffered row to the operating system (after it returns
/// `Ok`, the rows are in the file even if the process is killed); [`Sink::flush`] commits
/// and, for a file sink with `sync = true`, also `sync_data`s the file so that the rows
/// survive a machine crash. Once a call failed, every later call fails with the same error.
pub trait Sink: Send {
    /// Encodes one row, one cell per column the sink was opened with and in that order, into
    /// the buffer (which is committed on its own past [`COMMIT_BYTES`]). Cells past the last
    /// column are ignored; missing ones are [`Cell::Absent`].
    fn write(&mut self, row: &[Cell<'_>]) -> Result<(), Error>;
    /// Changes the columns of the rows written from now on (a hot-swapped plugin with other
    /// outputs). JSON lines name the new columns; a CSV file keeps the header it was opened
    /// with and fills it by column name, leaving columns the rows no longer have empty.
    fn set_columns(&mut self, columns: Vec<String>);
    /// Hands every buffered row to the operating system.
    fn commit(&mut self) -> Result<(), Error>;
    /// Commits, then syncs the file to disk if the sink asks for it (`sync = true`).
    fn flush(&mut self) -> Result<(), Error>;
    /// A short description: `stdout`, `file out/x.jsonl`.
    fn describe(&self) -> String;
    /// Flushes, makes every row written so far durable (`sync_data`) and returns the
    /// file's length: what a checkpoint records, so that a restart cuts the file back to
    /// it ([`cut_back`]). `None` for a sink without a length (stdout, stderr, Kafka), which
    /// is only flushed.
    fn checkpoint(&mut self) -> Result<Option<u64>, Error> {
        self.flush()?;
        Ok(None)
    }
    /// Whether the sink writes in transactions (`[sink] exactly_once`): the pipeline then
    /// hands the source's positions to [`Sink::commit_transaction`] instead of committing
    /// them through the source.
    fn transactional(&self) -> bool {
        false
    }
    /// Exactly-once: commits the rows written since the last call in one transaction with
    /// the `consumed` positions (none when no position moved), then begins the next
    /// transaction. Called right after [`Sink::flush`].
    fn commit_transaction(&mut self, consumed: Option<TxnOffsets>) -> Result<(), Error> {
        let _ = consumed;
        Ok(())
    }
    /// Where a sink that commits the source's positions with its rows (PostgreSQL) keeps
    /// them: the source reads from there, not from its own commits. `None` for the others.
    fn keeps_positions(&self) -> Option<std::sync::Arc<dyn PositionStore>> {
        None
    }
    /// What the sink reports while the pipeline's thread is busy in it (a commit retried
    /// while its database is down). `None` for sinks that do not retry.
    fn health(&self) -> Option<std::sync::Arc<Health>> {
        None
    }
}

/// Positions kept by a sink, with its rows ([`Sink::keeps_positions`]): a source asks
/// when partitions are assigned.
pub trait PositionStore: Send + Sync {
    /// For each of `partitions` (all the pipeline's when empty) that has one: the offset a
    /// reader resumes at and the record the source wrote with it (its replay floor and
    /// kept windows).
    fn positions(&self, partitions: &[(String, i32)]) -> Result<StoredPositions, String>;
}

/// Per (topic, partition): the offset a reader resumes at, and the source's record.
pub type StoredPositions = std::collections::HashMap<(String, i32), (i64, String)>;

/// The type of a result column, as a database sink creates and checks its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Text.
    Text,
    /// A 64-bit integer.
    BigInt,
    /// A 64-bit float.
    Double,
    /// A boolean.
    Boolean,
    /// A point in time (epoch milliseconds in rows).
    Timestamp,
}

/// Exactly-once: the source positions a result sink's transaction commits together with
/// its rows, so that rows and positions become visible, or not, as one. Made by the source
/// ([`crate::source::Source::consumed`]), taken by [`Sink::commit_transaction`].
pub struct TxnOffsets {
    /// Per partition whose position moved: where a restart resumes.
    pub positions: Vec<TxnPosition>,
    /// The source's fencing token, opaque here: a Kafka consumer group's metadata, whose
    /// generation fences a consumer that lost its partitions in a rebalance.
    pub group: Box<dyn std::any::Any + Send>,
}

/// One partition's position in a [`TxnOffsets`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnPosition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The first offset still needed: a restart reads from here.
    pub offset: i64,
    /// What the source records with the position (the watermark and replay floor).
    pub metadata: String,
    /// What the source's progress record holds for the partition (the floor, and the
    /// windows kept after they fired), when it writes one: a sink that keeps positions
    /// stores it instead of `metadata`.
    pub record: Option<String>,
}

/// Cuts a file sink's file back to `len` bytes, the length a checkpoint recorded: rows
/// written after that checkpoint are written again by the replay that follows, so the file
/// ends up as if the run had never stopped. A file shorter than `len` was changed by
/// someone else since: an error, nothing is cut. Other sinks have nothing to cut.
pub fn cut_back(cfg: &SinkConfig, base_dir: &Path, len: u64) -> Result<(), Error> {
    let SinkConfig::File { path, .. } = cfg else {
        return Ok(());
    };
    let path = if path.is_absolute() {
        path.clone()
    } else {
        base_dir.join(path)
    };
    let open_err = |source| Error::Open {
        path: path.clone(),
        source,
    };
    let file = match OpenOptions::new().write(true).open(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound && len == 0 => return Ok(()),
        other => other.map_err(open_err)?,
    };
    let have = file.metadata().map_err(open_err)?.len();
    if have < len {
        return Err(open_err(io::Error::other(format!(
            "the file has {have} bytes, fewer than the {len} the checkpoint recorded: it was changed since; restore it, or discard the checkpoint (weir run --discard-checkpoint)"
        ))));
    }
    if have > len {
        tracing::info!(path = %path.display(), from = have, to = len, "cutting the sink back to its checkpointed length");
        file.set_len(len).map_err(open_err)?;
        file.sync_all().map_err(open_err)?;
    }
    Ok(())
}

/// Opens the sink a config describes, for rows of these `columns` (the CSV header; the
/// member names of JSON lines).
/// Relative file paths resolve against `base_dir`.
///
/// A file sink in `append` mode (the default) keeps the file: a CSV file that is not empty
/// gets no second header, and must already start with this header (else
/// [`Error::Header`]); if the file does not end with a newline (a line cut short by a
/// crash), the first row starts on a new line. `truncate` empties the file.
pub fn open(
    cfg: &SinkConfig,
    base_dir: &Path,
    columns: Vec<String>,
) -> Result<Box<dyn Sink>, Error> {
    open_for(cfg, base_dir, columns, "")
}

/// The result sink of pipeline `cfg` (`[sink]`), for rows of these `columns` typed
/// `types`: a transactional producer when `exactly_once` is on, a PostgreSQL table upserted
/// by window (which keeps the positions of a Kafka source), else as [`open_for`] opens it.
pub fn open_results(
    cfg: &crate::config::PipelineConfig,
    columns: Vec<String>,
    types: &[ColumnType],
) -> Result<Box<dyn Sink>, Error> {
    if let SinkConfig::Postgres { .. } = &cfg.sink {
        let target = postgres_target(&cfg.sink, &cfg.name, "sink")?;
        let keys = cfg.schema.key.len() + 2;
        let positions = matches!(cfg.source, crate::config::SourceConfig::Kafka(_));
        return Ok(Box::new(PostgresSink::open_results(
            target, &columns, types, keys, positions,
        )?));
    }
    match (&cfg.sink, cfg.transactional_id()) {
        (
            SinkConfig::Kafka {
                brokers,
                topic,
                format,
                kafka,
                ..
            },
            Some(id),
        ) => Ok(Box::new(kafka::KafkaSink::open_transactional(
            brokers,
            topic,
            *format,
            &kafka.options,
            &cfg.name,
            columns,
            &id,
        )?)),
        _ => open_for(&cfg.sink, &cfg.base_dir, columns, &cfg.name),
    }
}

/// What a PostgreSQL sink config `c` (the table `what` of pipeline `pipeline`) opens.
pub fn postgres_target(c: &SinkConfig, pipeline: &str, what: &str) -> Result<Target, Error> {
    let config_error = |e: crate::config::Error| Error::Write {
        sink: what.to_string(),
        source: io::Error::other(e.to_string()),
    };
    let url = c
        .postgres_url(what)
        .map_err(config_error)?
        .unwrap_or_default();
    let SinkConfig::Postgres {
        table,
        create,
        retry_for,
        ..
    } = c
    else {
        return Err(Error::Write {
            sink: what.to_string(),
            source: io::Error::other("not a PostgreSQL sink"),
        });
    };
    Ok(Target {
        url,
        table: table.clone(),
        create: *create,
        pipeline: pipeline.to_string(),
        retry: Retry {
            backoff: std::time::Duration::from_millis(200),
            max_backoff: std::time::Duration::from_secs(10),
            give_up_after: std::time::Duration::from_millis(retry_for.0.max(0) as u64),
        },
    })
}

/// [`open`] for pipeline `pipeline`, whose name a Kafka sink puts in its row ids.
pub fn open_for(
    cfg: &SinkConfig,
    base_dir: &Path,
    columns: Vec<String>,
    pipeline: &str,
) -> Result<Box<dyn Sink>, Error> {
    Ok(match cfg {
        SinkConfig::Kafka {
            brokers,
            topic,
            format,
            kafka,
            ..
        } => Box::new(kafka::KafkaSink::open(
            brokers,
            topic,
            *format,
            &kafka.options,
            pipeline,
            columns,
        )?),
        SinkConfig::Postgres { .. } => Box::new(PostgresSink::open_side(
            postgres_target(cfg, pipeline, "a side sink")?,
            &columns,
        )?),
        SinkConfig::Stdout { format } => Box::new(RowWriter::new(
            "stdout".into(),
            Box::new(io::stdout()),
            *format,
            columns,
            true,
        )),
        SinkConfig::Stderr { format } => Box::new(RowWriter::new(
            "stderr".into(),
            Box::new(io::stderr()),
            *format,
            columns,
            true,
        )),
        SinkConfig::File {
            path,
            format,
            mode,
            sync,
        } => {
            let path = if path.is_absolute() {
                path.clone()
            } else {
                base_dir.join(path)
            };
            let open_err = |source| Error::Open {
                path: path.clone(),
                source,
            };
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(open_err)?;
            }
            let append = *mode == SinkMode::Append;
            let mut file = OpenOptions::new()
                .create(true)
                .read(append)
                .append(append)
                .write(true)
                .truncate(!append)
                .open(&path)
                .map_err(open_err)?;
            let len = file.metadata().map(|m| m.len()).map_err(open_err)?;
            let mut prefix = Vec::new();
            if append && len > 0 {
                if *format == Format::Csv {
                    check_header(&mut file, &path, &columns)?;
                }
                let mut last = [0u8; 1];
                file.seek(SeekFrom::End(-1))
                    .and_then(|_| file.read_exact(&mut last))
                    .map_err(open_err)?;
                if last[0] != b'\n' {
                    prefix.push(b'\n');
                }
            }
            let handle = file.try_clone().map_err(open_err)?;
            let mut w = RowWriter::new(
                format!("file {}", path.display()),
                Box::new(file),
                *format,
                columns,
                len == 0 || !append,
            );
            w.buf = prefix;
            w.file = Some(handle);
            w.sync = *sync;
            Box::new(w)
        }
    })
}

/// Compares an existing CSV file's first line with the header the pipeline writes.
fn check_header(file: &mut File, path: &Path, columns: &[String]) -> Result<(), Error> {
    let mut head = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.take(MAX_HEADER_BYTES).read_to_end(&mut head))
        .map_err(|source| Error::Open {
            path: path.to_path_buf(),
            source,
        })?;
    let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let first = first.strip_suffix(b"\r").unwrap_or(first);
    let mut expected = Vec::new();
    encode_csv(columns.iter().map(String::as_str), &mut expected);
    expected.pop();
    if first == expected.as_slice() {
        return Ok(());
    }
    let found = String::from_utf8_lossy(first).into_owned();
    let found_cols: Vec<&str> = found.split(',').collect();
    let difference = match columns.iter().zip(&found_cols).position(|(a, b)| a != b) {
        Some(i) => format!(
            "column {} is `{}` in the file and `{}` in the pipeline",
            i + 1,
            found_cols[i],
            columns[i]
        ),
        None if found_cols.len() > columns.len() => format!(
            "the file has {} more column(s): {}",
            found_cols.len() - columns.len(),
            found_cols[columns.len()..].join(",")
        ),
        None => format!(
            "the pipeline has {} more column(s): {}",
            columns.len() - found_cols.len(),
            columns[found_cols.len()..].join(",")
        ),
    };
    let expected = String::from_utf8_lossy(&expected).into_owned();
    Err(Error::Header {
        path: path.to_path_buf(),
        found,
        expected,
        difference,
    })
}

/// A sink that encodes rows onto any writer.
pub struct RowWriter {
    name: String,
    out: Box<dyn Write + Send>,
    /// Rows encoded and not yet handed to `out`.
    buf: Vec<u8>,
    format: Format,
    /// The CSV header: the columns the sink was opened with.
    header: Vec<String>,
    /// Per column of the rows, the JSON text that opens its member: `"name":`.
    json_prefixes: Vec<Vec<u8>>,
    /// Per header column, the position in the rows of its cell (`None`: always empty).
    csv_cells: Vec<Option<usize>>,
    header_due: bool,
    /// The file, for a file sink: its length and `sync_data` at checkpoints.
    file: Option<File>,
    /// `sync_data` the file at every flush (`sync = true`).
    sync: bool,
    /// The first failure, repeated by every later call.
    failed: Option<(io::ErrorKind, String)>,
}

impl RowWriter {
    /// A writer; `write_header` says whether a CSV header is due (false when appending to a
    /// non-empty file).
    pub fn new(
        name: String,
        out: Box<dyn Write + Send>,
        format: Format,
        columns: Vec<String>,
        write_header: bool,
    ) -> Self {
        let mut w = RowWriter {
            name,
            out,
            buf: Vec::with_capacity(COMMIT_BYTES),
            format,
            header: columns.clone(),
            json_prefixes: Vec::new(),
            csv_cells: Vec::new(),
            header_due: write_header,
            file: None,
            sync: false,
            failed: None,
        };
        w.set_columns(columns);
        w
    }

    /// Runs `f` unless the sink already failed; a failure is remembered.
    fn guard(&mut self, f: impl FnOnce(&mut Self) -> io::Result<()>) -> Result<(), Error> {
        if let Some((kind, msg)) = &self.failed {
            return Err(Error::Write {
                sink: self.name.clone(),
                source: io::Error::new(*kind, format!("{msg} (an earlier write failed)")),
            });
        }
        f(self).map_err(|source| {
            self.failed = Some((source.kind(), source.to_string()));
            Error::Write {
                sink: self.name.clone(),
                source,
            }
        })
    }

    fn hand_over(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}

impl Sink for RowWriter {
    fn write(&mut self, row: &[Cell<'_>]) -> Result<(), Error> {
        self.guard(|w| {
            match w.format {
                Format::Jsonl => encode_json(&w.json_prefixes, row, &mut w.buf),
                Format::Csv => {
                    if w.header_due {
                        w.header_due = false;
                        encode_csv(w.header.iter().map(String::as_str), &mut w.buf);
                    }
                    encode_csv_row(&w.csv_cells, row, &mut w.buf);
                }
            }
            if w.buf.len() >= COMMIT_BYTES {
                w.hand_over()?;
            }
            Ok(())
        })
    }

    fn set_columns(&mut self, columns: Vec<String>) {
        self.json_prefixes = json_prefixes(&columns);
        self.csv_cells = self
            .header
            .iter()
            .map(|h| columns.iter().position(|c| c == h))
            .collect();
    }

    fn commit(&mut self) -> Result<(), Error> {
        self.guard(Self::hand_over)
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.guard(|w| {
            w.hand_over()?;
            w.out.flush()?;
            if let Some(f) = w.file.as_ref().filter(|_| w.sync) {
                f.sync_data()?;
            }
            Ok(())
        })
    }

    fn describe(&self) -> String {
        self.name.clone()
    }

    fn checkpoint(&mut self) -> Result<Option<u64>, Error> {
        self.flush()?;
        let mut len = None;
        self.guard(|w| {
            if let Some(f) = &w.file {
                f.sync_data()?;
                len = Some(f.metadata()?.len());
            }
            Ok(())
        })?;
        Ok(len)
    }
}

/// Appends one JSON object and a newline: a member per column, in column order, except
/// for [`Cell::Absent`] cells.
/// Per column, the escaped JSON text that opens its member: `"name":`.
fn json_prefixes(columns: &[String]) -> Vec<Vec<u8>> {
    columns
        .iter()
        .map(|c| {
            let mut p = Vec::with_capacity(c.len() + 3);
            write_json(c.as_str(), &mut p);
            p.push(b':');
            p
        })
        .collect()
}

fn encode_json(prefixes: &[Vec<u8>], row: &[Cell<'_>], out: &mut Vec<u8>) {
    out.push(b'{');
    let mut first = true;
    for (prefix, cell) in prefixes.iter().zip(row) {
        if let Cell::Absent = cell {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(prefix);
        match *cell {
            Cell::Absent => {}
            Cell::Value(Value::Null) => out.extend_from_slice(b"null"),
            Cell::Value(Value::Bool(b)) => {
                out.extend_from_slice(if *b { b"true" } else { b"false" })
            }
            Cell::Value(Value::I64(v)) => write_json(v, out),
            Cell::I64(v) => write_json(&v, out),
            // Non-finite floats are written as `null`.
            Cell::Value(Value::F64(v)) => write_json(v, out),
            Cell::Value(Value::Str(s)) => write_json(s.as_str(), out),
            Cell::Str(s) => write_json(s, out),
            Cell::Time(ms) => {
                out.push(b'"');
                write_rfc3339_ms(ms, out);
                out.push(b'"');
            }
        }
    }
    out.extend_from_slice(b"}\n");
}

/// Appends any serializable value as JSON (serde_json's own formatting: `itoa`, `ryu`, string
/// escapes), without an intermediate `serde_json::Value`.
fn write_json<T: serde::Serialize + ?Sized>(v: &T, out: &mut Vec<u8>) {
    // Serializing a number or a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
}

/// Appends one CSV line, a cell per header column taken from the row position `cells`
/// gives: each cell's plain text (null and absent cells are empty), quoted when it needs it.
fn encode_csv_row(cells: &[Option<usize>], row: &[Cell<'_>], out: &mut Vec<u8>) {
    for (i, at) in cells.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match at
            .and_then(|at| row.get(at))
            .copied()
            .unwrap_or(Cell::Absent)
        {
            Cell::Absent | Cell::Value(Value::Null) => {}
            Cell::Value(Value::Str(s)) => write_csv_cell(s, out),
            Cell::Str(s) => write_csv_cell(s, out),
            // Numbers, booleans and times never need quoting.
            Cell::Value(v) => {
                let _ = write!(out, "{v}");
            }
            Cell::I64(v) => {
                let _ = write!(out, "{v}");
            }
            Cell::Time(ms) => write_rfc3339_ms(ms, out),
        }
    }
    out.push(b'\n');
}

/// Appends one CSV line, quoting cells that need it.
fn encode_csv<'a>(cells: impl Iterator<Item = &'a str>, out: &mut Vec<u8>) {
    for (i, c) in cells.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_csv_cell(c, out);
    }
    out.push(b'\n');
}

/// Appends one CSV cell, in double quotes (inner quotes doubled) when it holds a comma, a
/// quote or a line break.
fn write_csv_cell(c: &str, out: &mut Vec<u8>) {
    if c.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        for part in c.split_inclusive('"') {
            out.extend_from_slice(part.as_bytes());
            if part.ends_with('"') {
                out.push(b'"');
            }
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(c.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn json_lines_keep_column_order_escape_and_skip_absent_cells() {
        let w = RowWriter::new(
            "t".into(),
            Box::new(io::sink()),
            Format::Jsonl,
            cols(&["symbol", "avg", "n", "x", "gone", "t", "q\"", "ok", "inf"]),
            true,
        );
        let sym = Value::Str("A\"B".into());
        let avg = Value::F64(1.5);
        let row = [
            Cell::Value(&sym),
            Cell::Value(&avg),
            Cell::I64(3),
            Cell::Value(&Value::Null),
            Cell::Absent,
            // 2024-01-22T13:45:00.123Z: 19 744 days and 49 500.123 s after the epoch.
            Cell::Time(1_705_931_100_123),
            Cell::Str("line\nbreak"),
            Cell::Value(&Value::Bool(true)),
            Cell::Value(&Value::F64(f64::INFINITY)),
        ];
        let mut out = Vec::new();
        encode_json(&w.json_prefixes, &row, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"symbol\":\"A\\\"B\",\"avg\":1.5,\"n\":3,\"x\":null,\
             \"t\":\"2024-01-22T13:45:00.123Z\",\"q\\\"\":\"line\\nbreak\",\"ok\":true,\"inf\":null}\n"
        );
    }

    #[test]
    fn csv_cells_are_plain_text_quoted_when_needed() {
        let sym = Value::Str("A\"B".into());
        let row = [
            Cell::Value(&sym),
            Cell::I64(-3),
            Cell::Value(&Value::F64(0.25)),
            Cell::Value(&Value::Null),
            Cell::Time(-1),
            Cell::Str("a,b"),
            Cell::Str("x\ny"),
        ];
        let mut out = Vec::new();
        // One column more than cells: it is empty.
        let cells: Vec<Option<usize>> = (0..8).map(Some).collect();
        encode_csv_row(&cells, &row, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"A\"\"B\",-3,0.25,,1969-12-31T23:59:59.999Z,\"a,b\",\"x\ny\",\n"
        );
    }

    fn file(path: &str, format: Format, mode: SinkMode) -> SinkConfig {
        SinkConfig::File {
            path: path.into(),
            format,
            mode,
            sync: false,
        }
    }

    #[test]
    fn csv_header_once_then_cells_by_column_with_quoting() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = file("out/r.csv", Format::Csv, SinkMode::Append);
        let cols = cols(&["symbol", "n", "avg", "missing"]);
        let sym = Value::Str("A\"B".into());
        let row = [
            Cell::Value(&sym),
            Cell::Value(&Value::I64(3)),
            Cell::Value(&Value::F64(1.5)),
            Cell::Absent,
        ];
        for _ in 0..2 {
            let mut s = open(&cfg, dir.path(), cols.clone()).unwrap();
            s.write(&row).unwrap();
            s.flush().unwrap();
        }
        let text = std::fs::read_to_string(dir.path().join("out/r.csv")).unwrap();
        assert_eq!(
            text,
            "symbol,n,avg,missing\n\"A\"\"B\",3,1.5,\n\"A\"\"B\",3,1.5,\n"
        );
    }

    #[test]
    fn append_is_the_default_and_truncate_replaces() {
        let cfg: crate::config::PipelineConfig = toml::from_str(
            r#"
            name = "p"
            source = { kind = "stdin" }
            schema = { timestamp = { field = "t", format = "epoch_ms" }, fields = { t = "i64" } }
            window = { kind = "tumbling", size = "1s" }
            plugin = { path = "x.wasm" }
            sink = { kind = "file", path = "x.jsonl" }
            "#,
        )
        .unwrap();
        assert!(matches!(
            cfg.sink,
            SinkConfig::File {
                mode: SinkMode::Append,
                sync: false,
                ..
            }
        ));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        // A previous run's file, its last line cut short by a crash.
        std::fs::write(&path, "{\"old\":1}\n{\"old\":").unwrap();
        let mut s = open(
            &file("r.jsonl", Format::Jsonl, SinkMode::Append),
            dir.path(),
            cols(&["n"]),
        )
        .unwrap();
        s.write(&[Cell::I64(1)]).unwrap();
        s.flush().unwrap();
        drop(s);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"old\":1}\n{\"old\":\n{\"n\":1}\n"
        );
        let mut s = open(
            &SinkConfig::File {
                path: "r.jsonl".into(),
                format: Format::Jsonl,
                mode: SinkMode::Truncate,
                sync: true,
            },
            dir.path(),
            cols(&["n"]),
        )
        .unwrap();
        // Truncated at open, before any row.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        s.write(&[Cell::I64(2)]).unwrap();
        s.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"n\":2}\n");
    }

    #[test]
    fn appending_csv_under_another_header_is_refused_with_the_difference() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("r.csv"), "symbol,count\nA,1\n").unwrap();
        let cfg = file("r.csv", Format::Csv, SinkMode::Append);
        let err = match open(&cfg, dir.path(), cols(&["symbol", "n"])) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a different header was accepted"),
        };
        assert!(
            err.contains("already has the CSV header `symbol,count`")
                && err.contains("writes `symbol,n`")
                && err.contains("column 2 is `count` in the file and `n` in the pipeline")
                && err.contains("mode = \"truncate\""),
            "{err}"
        );
        let err = match open(&cfg, dir.path(), cols(&["symbol", "count", "avg"])) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a shorter header was accepted"),
        };
        assert!(
            err.contains("the pipeline has 1 more column(s): avg"),
            "{err}"
        );
        // The same header appends without a second one; truncate replaces the file.
        let mut s = open(&cfg, dir.path(), cols(&["symbol", "count"])).unwrap();
        s.write(&[Cell::Str("B")]).unwrap();
        s.flush().unwrap();
        drop(s);
        let text = std::fs::read_to_string(dir.path().join("r.csv")).unwrap();
        assert_eq!(text, "symbol,count\nA,1\nB,\n");
        let trunc = file("r.csv", Format::Csv, SinkMode::Truncate);
        let mut s = open(&trunc, dir.path(), cols(&["symbol", "n"])).unwrap();
        s.flush().unwrap();
        s.write(&[Cell::Absent, Cell::I64(7)]).unwrap();
        s.commit().unwrap();
        let text = std::fs::read_to_string(dir.path().join("r.csv")).unwrap();
        assert_eq!(text, "symbol,n\n,7\n");
    }

    #[test]
    fn new_columns_rename_json_members_and_fill_a_csv_header_by_name() {
        let dir = tempfile::tempdir().unwrap();
        for (name, format) in [("r.jsonl", Format::Jsonl), ("r.csv", Format::Csv)] {
            let cfg = file(name, format, SinkMode::Truncate);
            let mut s = open(&cfg, dir.path(), cols(&["k", "sum", "n"])).unwrap();
            s.write(&[Cell::Str("a"), Cell::I64(5), Cell::I64(2)])
                .unwrap();
            // A swapped plugin: `n` first, no `sum`, a new `max`.
            s.set_columns(cols(&["k", "n", "max"]));
            s.write(&[Cell::Str("b"), Cell::I64(3), Cell::I64(9)])
                .unwrap();
            s.flush().unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(dir.path().join("r.jsonl")).unwrap(),
            "{\"k\":\"a\",\"sum\":5,\"n\":2}\n{\"k\":\"b\",\"n\":3,\"max\":9}\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("r.csv")).unwrap(),
            "k,sum,n\na,5,2\nb,,3\n"
        );
    }

    /// Accepts `ok` bytes, then fails every write.
    struct Failing {
        ok: usize,
        got: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Failing {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let mut got = self.got.lock().unwrap();
            let room = self.ok.saturating_sub(got.len());
            if room == 0 {
                return Err(io::Error::from(io::ErrorKind::StorageFull));
            }
            let n = room.min(b.len());
            got.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    use std::sync::{Arc, Mutex};

    #[test]
    fn rows_reach_the_writer_at_commit_and_a_failure_sticks() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let out = Failing {
            ok: 12,
            got: got.clone(),
        };
        let mut s = RowWriter::new("t".into(), Box::new(out), Format::Jsonl, cols(&["n"]), true);
        let r = |n| [Cell::I64(n)];
        s.write(&r(1)).unwrap();
        assert!(got.lock().unwrap().is_empty(), "buffered until commit");
        s.commit().unwrap();
        assert_eq!(&*got.lock().unwrap(), b"{\"n\":1}\n");
        // 8 bytes in, 4 more fit: the second row fails part-way...
        s.write(&r(2)).unwrap();
        let err = s.commit().unwrap_err().to_string();
        assert!(err.starts_with("writing to t:"), "{err}");
        // ...and nothing is written after it, even what would fit.
        assert!(s.write(&r(3)).is_err());
        assert!(
            s.flush()
                .unwrap_err()
                .to_string()
                .contains("an earlier write failed")
        );
        assert_eq!(&*got.lock().unwrap(), b"{\"n\":1}\n{\"n\"");
    }
}
