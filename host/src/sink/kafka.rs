//! The Kafka sink: one message per row, its value the row as a JSON object (or a CSV line),
//! its key the row's group key, and for result rows a `weir-row-id` header — pipeline, key,
//! window, revision and the row's index in its window — the same in every run, so a
//! consumer can drop duplicates. [`Sink::flush`] returns once the broker confirmed every
//! message sent before it.
//!
//! With `[sink] exactly_once = true` the producer is transactional
//! ([`KafkaSink::open_transactional`]): its rows are invisible to `read_committed`
//! consumers until [`Sink::commit_transaction`] commits them in one transaction with the
//! source's consumed offsets, and a transaction left open by a killed process is aborted
//! by the next one to start with the same `transactional.id`.

use std::io::{self, Write as _};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use super::{Cell, Error, Sink, TxnOffsets, encode_csv_row, encode_json, json_prefixes};
use crate::config::Format;
use crate::kafka::{Counting, Deliveries};
use crate::time::write_rfc3339_ms;

/// The header holding a result row's id.
pub const ROW_ID_HEADER: &str = "weir-row-id";

/// How long a transaction call may wait for the broker: `init_transactions` waits for the
/// transaction a dead predecessor left open to be aborted.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);

/// A topic as a [`Sink`].
pub struct KafkaSink {
    name: String,
    topic: String,
    pipeline: String,
    producer: ThreadedProducer<Counting>,
    deliveries: Arc<Deliveries>,
    /// Refused deliveries already reported.
    failed_before: u64,
    /// How a row becomes a message value.
    layout: Layout,
    /// The message key and row id of the row in hand.
    ids: RowIds,
    /// Scratch for the message value.
    value: Vec<u8>,
    failed: Option<(io::ErrorKind, String)>,
    /// Whether rows go in transactions (`exactly_once`); one is always open.
    transactional: bool,
}

/// How a row of the sink's columns becomes a message value, and where its key and revision
/// are.
struct Layout {
    format: Format,
    /// Per column, `"name":` (JSON).
    json_prefixes: Vec<Vec<u8>>,
    /// Per column, its position in the row (CSV: all of them, in order).
    csv_cells: Vec<Option<usize>>,
    /// Columns before `window_start`: the group key (result rows); `None` for other rows.
    key_columns: Option<usize>,
    /// Position of `revision`, when rows have one.
    revision: Option<usize>,
}

/// The message key and the `weir-row-id` of the row in hand, and what numbering rows
/// within a window needs.
#[derive(Default)]
struct RowIds {
    /// The last result row's window id (key, bounds, revision) and its index in the window.
    last_window: Vec<u8>,
    index: u32,
    /// Scratch for the current row's window id.
    window: Vec<u8>,
    /// The message key.
    key: Vec<u8>,
    /// The row id.
    id: Vec<u8>,
}

impl KafkaSink {
    /// A producer to `topic` for rows of `columns`, written for pipeline `pipeline`.
    pub fn open(
        brokers: &str,
        topic: &str,
        format: Format,
        options: &std::collections::BTreeMap<String, String>,
        pipeline: &str,
        columns: Vec<String>,
    ) -> Result<Self, Error> {
        let (producer, deliveries) =
            crate::kafka::producer(brokers, options).map_err(|e| Error::Write {
                sink: format!("kafka topic {topic}"),
                source: io::Error::other(e),
            })?;
        let mut sink = KafkaSink {
            name: format!("kafka topic {topic}"),
            topic: topic.to_string(),
            pipeline: pipeline.to_string(),
            producer,
            deliveries,
            failed_before: 0,
            layout: Layout {
                format,
                json_prefixes: Vec::new(),
                csv_cells: Vec::new(),
                key_columns: None,
                revision: None,
            },
            ids: RowIds::default(),
            value: Vec::new(),
            failed: None,
            transactional: false,
        };
        sink.set_columns(columns);
        Ok(sink)
    }

    /// [`KafkaSink::open`] with a transactional producer (`exactly_once`): its
    /// `transactional.id` is `transactional_id` unless `options` set one. Fences any
    /// earlier producer with the same id (aborting the transaction it left open) and begins
    /// the first transaction.
    pub fn open_transactional(
        brokers: &str,
        topic: &str,
        format: Format,
        options: &std::collections::BTreeMap<String, String>,
        pipeline: &str,
        columns: Vec<String>,
        transactional_id: &str,
    ) -> Result<Self, Error> {
        let mut options = options.clone();
        options
            .entry("transactional.id".to_string())
            .or_insert_with(|| transactional_id.to_string());
        let mut sink = Self::open(brokers, topic, format, &options, pipeline, columns)?;
        sink.transactional = true;
        let started = sink
            .producer
            .init_transactions(TRANSACTION_TIMEOUT)
            .and_then(|()| sink.producer.begin_transaction());
        if let Err(e) = started {
            return Err(sink.fail(
                io::ErrorKind::Other,
                format!(
                    "starting the transactional producer {}: {e}",
                    options.get("transactional.id").map_or("", String::as_str)
                ),
            ));
        }
        Ok(sink)
    }

    fn fail(&mut self, kind: io::ErrorKind, message: String) -> Error {
        self.failed = Some((kind, message.clone()));
        Error::Write {
            sink: self.name.clone(),
            source: io::Error::new(kind, message),
        }
    }

    /// The message key (the group key: one column's text, several as a JSON array) and,
    /// for a result row, its id into `self.ids.id`.
    fn key_and_id(&mut self, row: &[Cell<'_>]) {
        self.ids.key.clear();
        self.ids.id.clear();
        let Some(k) = self.layout.key_columns else {
            return;
        };
        let text = |c: &Cell<'_>, out: &mut Vec<u8>| match c {
            Cell::Value(crate::value::Value::Str(s)) => out.extend_from_slice(s.as_bytes()),
            Cell::Str(s) => out.extend_from_slice(s.as_bytes()),
            other => {
                let mut one = Vec::new();
                encode_json(&[Vec::new()], std::slice::from_ref(other), &mut one);
                // `{` value `}\n`: keep the value.
                out.extend_from_slice(one.get(1..one.len().saturating_sub(2)).unwrap_or_default());
            }
        };
        match row.get(..k) {
            Some([one]) => text(one, &mut self.ids.key),
            Some(cells) => {
                let prefixes = vec![Vec::new(); cells.len()];
                let mut obj = Vec::new();
                encode_json(&prefixes, cells, &mut obj);
                // `{a,b}\n` → `[a,b]`.
                let inner = obj.get(1..obj.len().saturating_sub(2)).unwrap_or_default();
                self.ids.key.push(b'[');
                self.ids.key.extend_from_slice(inner);
                self.ids.key.push(b']');
            }
            None => {}
        }
        // The window id is built in `window` (kept between rows, so no allocation per
        // row) and compared with the last row's.
        let mut window = std::mem::take(&mut self.ids.window);
        window.clear();
        window.extend_from_slice(&self.ids.key);
        for cell in row.iter().skip(k).take(2) {
            window.push(b'/');
            if let Cell::Time(ms) = cell {
                write_rfc3339_ms(*ms, &mut window);
            }
        }
        window.push(b'/');
        let revision = match self.layout.revision.and_then(|r| row.get(r)) {
            Some(Cell::I64(rev)) => *rev,
            _ => 0,
        };
        let _ = write!(window, "{revision}");
        if window == self.ids.last_window {
            self.ids.index += 1;
            self.ids.window = window;
        } else {
            self.ids.index = 0;
            self.ids.window = std::mem::replace(&mut self.ids.last_window, window);
        }
        self.ids.id.extend_from_slice(self.pipeline.as_bytes());
        self.ids.id.push(b'/');
        self.ids.id.extend_from_slice(&self.ids.last_window);
        let _ = write!(self.ids.id, "/{}", self.ids.index);
    }
}

impl Sink for KafkaSink {
    fn write(&mut self, row: &[Cell<'_>]) -> Result<(), Error> {
        if let Some((kind, msg)) = &self.failed {
            return Err(Error::Write {
                sink: self.name.clone(),
                source: io::Error::new(*kind, format!("{msg} (an earlier write failed)")),
            });
        }
        self.value.clear();
        match self.layout.format {
            Format::Jsonl => encode_json(&self.layout.json_prefixes, row, &mut self.value),
            Format::Csv => encode_csv_row(&self.layout.csv_cells, row, &mut self.value),
        }
        if self.value.last() == Some(&b'\n') {
            self.value.pop();
        }
        self.key_and_id(row);
        let mut record = BaseRecord::to(&self.topic).payload(&self.value[..]);
        if !self.ids.key.is_empty() {
            record = record.key(&self.ids.key[..]);
        }
        if !self.ids.id.is_empty() {
            record = record.headers(OwnedHeaders::new().insert(Header {
                key: ROW_ID_HEADER,
                value: Some(&self.ids.id[..]),
            }));
        }
        if let Err(e) = crate::kafka::send(&self.producer, record) {
            return Err(self.fail(io::ErrorKind::Other, e.to_string()));
        }
        Ok(())
    }

    fn set_columns(&mut self, columns: Vec<String>) {
        self.layout.json_prefixes = json_prefixes(&columns);
        self.layout.csv_cells = (0..columns.len()).map(Some).collect();
        self.layout.key_columns = columns.iter().position(|c| c == "window_start");
        self.layout.revision = columns.iter().position(|c| c == "revision");
    }

    /// The rows are with the producer already (it sends them in the background): reports a
    /// delivery the broker refused since the last check, without waiting.
    fn commit(&mut self) -> Result<(), Error> {
        let (failed, first) = self.deliveries.failed();
        if failed > self.failed_before {
            self.failed_before = failed;
            let message = format!(
                "the broker refused a message: {}",
                first.unwrap_or_default()
            );
            return Err(self.fail(io::ErrorKind::Other, message));
        }
        Ok(())
    }

    /// Waits until the broker confirmed every message sent so far (the pipeline commits
    /// source offsets only after this).
    fn flush(&mut self) -> Result<(), Error> {
        match crate::kafka::confirm(
            &self.producer,
            &self.deliveries,
            self.failed_before,
            std::time::Duration::from_secs(60),
        ) {
            Ok(()) => Ok(()),
            Err(message) => {
                self.failed_before = self.deliveries.failed().0;
                Err(self.fail(io::ErrorKind::Other, message))
            }
        }
    }

    fn describe(&self) -> String {
        self.name.clone()
    }

    fn transactional(&self) -> bool {
        self.transactional
    }

    /// Sends the consumed offsets to the transaction, commits it (librdkafka delivers every
    /// row first) and begins the next. On failure the transaction is aborted when the
    /// broker requires it, and the error stops the pipeline: the next start resumes from
    /// the last committed transaction's offsets, and the rows since are never visible.
    fn commit_transaction(&mut self, consumed: Option<TxnOffsets>) -> Result<(), Error> {
        if !self.transactional {
            return Ok(());
        }
        if let Some((kind, msg)) = &self.failed {
            return Err(Error::Write {
                sink: self.name.clone(),
                source: io::Error::new(*kind, format!("{msg} (an earlier write failed)")),
            });
        }
        let consumed = match consumed.map(offsets_of).transpose() {
            Ok(c) => c,
            Err(e) => return Err(self.fail(io::ErrorKind::InvalidInput, e)),
        };
        let producer = &self.producer;
        let result = consumed
            .filter(|(offsets, _)| offsets.count() > 0)
            .map_or(Ok(()), |(offsets, group)| {
                producer.send_offsets_to_transaction(&offsets, &group, TRANSACTION_TIMEOUT)
            })
            .and_then(|()| producer.commit_transaction(TRANSACTION_TIMEOUT))
            .and_then(|()| producer.begin_transaction());
        if let Err(e) = result {
            if let KafkaError::Transaction(t) = &e
                && t.txn_requires_abort()
            {
                let _ = producer.abort_transaction(TRANSACTION_TIMEOUT);
            }
            return Err(self.fail(
                io::ErrorKind::Other,
                format!("committing the transaction: {e}"),
            ));
        }
        Ok(())
    }
}

/// The Kafka form of a transaction's positions: topics and partitions with their offsets
/// and metadata, and the consumer group's metadata.
fn offsets_of(c: TxnOffsets) -> Result<(TopicPartitionList, ConsumerGroupMetadata), String> {
    let group = c.group.downcast::<ConsumerGroupMetadata>().map_err(|_| {
        "exactly-once needs a Kafka source: its positions carry no consumer group".to_string()
    })?;
    let mut offsets = TopicPartitionList::new();
    for p in c.positions {
        offsets
            .add_partition_offset(&p.topic, p.partition, Offset::Offset(p.offset))
            .map_err(|e| e.to_string())?;
        if let Some(mut e) = offsets.find_partition(&p.topic, p.partition) {
            e.set_metadata(p.metadata);
        }
    }
    Ok((offsets, *group))
}
