//! `[source]`: where raw records come from (files, stdin, the generator) and how they are
//! framed. Checks the CSV options and the generator's settings; `source/` reads the records.

use serde::Deserialize;

use super::{Error, Millis};

/// `[source]`: where raw records come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum SourceConfig {
    /// Bounded: one file or a glob of files, read in sorted path order.
    File {
        /// A path or glob pattern (`data/*.csv`), relative to the config file.
        path: String,
        /// Record format.
        #[serde(default)]
        format: Format,
        /// CSV options.
        #[serde(default)]
        csv: CsvOptions,
    },
    /// Unbounded until EOF: standard input.
    Stdin {
        /// Record format.
        #[serde(default)]
        format: Format,
        /// CSV options.
        #[serde(default)]
        csv: CsvOptions,
    },
    /// Synthetic events: the seed workloads' random producers.
    Generator(GeneratorConfig),
    /// Kafka topics, read through a consumer group.
    Kafka(KafkaSourceConfig),
}

/// `[source] kind = "kafka"`: topics read through a consumer group, one message one record.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// Bootstrap servers, `host:port[,host:port…]`.
    pub brokers: String,
    /// Topics to read (or `topic_pattern`).
    #[serde(default)]
    pub topics: Vec<String>,
    /// A regex over topic names, as librdkafka takes it (`^ticks-.*`): every matching topic,
    /// including ones created later.
    #[serde(default)]
    pub topic_pattern: Option<String>,
    /// The consumer group (processes with the same group share the partitions).
    pub group_id: String,
    /// Message value format: `jsonl` (one JSON object per message) or `csv` (one line, with
    /// `csv.columns` naming the fields: messages have no header).
    #[serde(default)]
    pub format: Format,
    /// CSV options (`header` must be false).
    #[serde(default = "kafka_csv")]
    pub csv: CsvOptions,
    /// Where a group with no committed offset starts: `earliest` (default) or `latest`.
    #[serde(default)]
    pub start: KafkaStart,
    /// `never` (default: an unbounded stream) or `at-end`: stop at the end offsets each
    /// partition had when the run started, then flush every window (a bounded replay).
    #[serde(default)]
    pub stop: KafkaStop,
    /// How often the consumer group's offsets are committed, each time after every sink
    /// was flushed and acknowledged (default `1s`): a restart replays at most about this
    /// much beyond the records open windows still need.
    #[serde(default = "default_commit_every")]
    pub commit_every: Millis,
    /// The topic where each commit's replay floors, and the windows kept after they fired
    /// (allowed lateness, early firings, sessions) with their firing counts, are written
    /// before the offsets (default `<group_id>.weir-progress`, created compacted with one
    /// partition when missing): a broker may drop commit metadata, this topic keeps them.
    /// `""` turns it off (the floors then travel only in the commit metadata, and a restart
    /// fires kept windows again from revision 0). Exactly-once: a record counts only when
    /// the transaction it was written for committed.
    #[serde(default)]
    pub progress_topic: Option<String>,
    /// `[source.kafka]`: what is passed to librdkafka.
    #[serde(default)]
    pub kafka: KafkaPassthrough,
}

impl KafkaSourceConfig {
    /// The progress topic's name, `None` when turned off.
    pub fn progress_topic(&self) -> Option<String> {
        match &self.progress_topic {
            Some(t) if t.is_empty() => None,
            Some(t) => Some(t.clone()),
            None => Some(format!("{}.weir-progress", self.group_id)),
        }
    }
}

fn default_commit_every() -> Millis {
    Millis(1000)
}

fn kafka_csv() -> CsvOptions {
    CsvOptions {
        header: false,
        ..CsvOptions::default()
    }
}

/// `[source.kafka]` / `[sink.kafka]`: settings for librdkafka.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaPassthrough {
    /// `[source.kafka.options]`: librdkafka properties, passed unchanged (security, SASL,
    /// TLS, fetch sizes: `"security.protocol" = "SASL_SSL"`). They override Weir's own.
    #[serde(default)]
    pub options: std::collections::BTreeMap<String, String>,
}

/// Where a consumer group with no committed offset starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KafkaStart {
    /// The oldest message each partition holds.
    #[default]
    Earliest,
    /// Only messages produced from now on.
    Latest,
}

/// When a Kafka source ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KafkaStop {
    /// Never: the stream is unbounded.
    #[default]
    Never,
    /// At the end offsets each partition had when the run started.
    AtEnd,
}

/// Record framing and encoding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One JSON object per line.
    #[default]
    Jsonl,
    /// Comma-separated values, one record per line.
    Csv,
}

/// `[source.csv]`: CSV options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CsvOptions {
    /// The first line of each file names the columns (default true).
    pub header: bool,
    /// Column names when there is no header line.
    pub columns: Vec<String>,
    /// Field delimiter, one ASCII character (default `,`).
    pub delimiter: char,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            header: true,
            columns: Vec::new(),
            delimiter: ',',
        }
    }
}

/// Which synthetic workload the generator produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Stock ticks: `ts` (RFC 3339), `symbol`, `price`, `volume`.
    Stocks,
    /// Taxi trips, CSV-like with US-style timestamps and empty cells.
    Taxi,
    /// Crypto ticker: numbers sent as strings, µs RFC 3339 times.
    Ticker,
}

/// `[source]` with `kind = "generator"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    /// Which workload.
    pub workload: Workload,
    /// How many events (default 100 000).
    #[serde(default = "default_count")]
    pub count: u64,
    /// Events per second of wall time; 0 means as fast as possible (default 0).
    #[serde(default)]
    pub rate: u64,
    /// Number of distinct keys (symbols, pickup areas, products; default 10).
    #[serde(default = "default_keys")]
    pub keys: u32,
    /// Event-time spacing between consecutive events (default `10ms`).
    #[serde(default = "default_interval")]
    pub interval: Millis,
    /// Out-of-order jitter: each event's time is moved back by up to this much (default `0s`).
    #[serde(default)]
    pub jitter: Millis,
    /// Random seed; the same seed gives the same events (default 42).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Event time of the first event, RFC 3339 (default `2024-01-22T00:00:00Z`).
    #[serde(default)]
    pub start: Option<String>,
    /// Encoding of the generated records (default `jsonl`; `csv` starts with a header line).
    #[serde(default)]
    pub format: Format,
}

fn default_count() -> u64 {
    100_000
}
fn default_keys() -> u32 {
    10
}
fn default_interval() -> Millis {
    Millis(10)
}
fn default_seed() -> u64 {
    42
}

impl SourceConfig {
    /// Checks what the types alone do not: CSV columns and delimiter, generator settings.
    pub(super) fn validate(&self) -> Result<(), Error> {
        match self {
            SourceConfig::File { csv, format, .. } | SourceConfig::Stdin { csv, format } => {
                if *format == Format::Csv && !csv.header && csv.columns.is_empty() {
                    return Err(Error::invalid(
                        "source.csv.columns",
                        "is empty while source.csv.header = false",
                        "list the column names in order, or set header = true",
                    ));
                }
                if !csv.delimiter.is_ascii() {
                    return Err(Error::invalid(
                        "source.csv.delimiter",
                        format!("`{}` is not an ASCII character", csv.delimiter),
                        "use a single ASCII character such as \",\" or \";\"",
                    ));
                }
                Ok(())
            }
            SourceConfig::Generator(g) => g.validate(),
            SourceConfig::Kafka(k) => k.validate(),
        }
    }
}

impl KafkaSourceConfig {
    /// Topics or a pattern, a group, CSV without a header.
    fn validate(&self) -> Result<(), Error> {
        if self.brokers.trim().is_empty() {
            return Err(Error::invalid(
                "source.brokers",
                "is empty",
                "give the bootstrap servers, e.g. \"127.0.0.1:9092\"",
            ));
        }
        match (self.topics.is_empty(), &self.topic_pattern) {
            (true, None) => {
                return Err(Error::invalid(
                    "source.topics",
                    "is empty and there is no source.topic_pattern",
                    "list the topics, e.g. topics = [\"ticks\"], or give topic_pattern = \"^ticks-.*\"",
                ));
            }
            (false, Some(_)) => {
                return Err(Error::invalid(
                    "source.topic_pattern",
                    "is set together with source.topics",
                    "use one of them",
                ));
            }
            (true, Some(p)) if !p.starts_with('^') => {
                return Err(Error::invalid(
                    "source.topic_pattern",
                    format!("`{p}` does not start with `^`"),
                    "librdkafka reads a subscription as a regex only when it starts with `^`: write \"^{p}\"",
                ));
            }
            _ => {}
        }
        if self.commit_every.0 <= 0 {
            return Err(Error::invalid(
                "source.commit_every",
                "must be positive",
                "use a duration such as \"1s\"",
            ));
        }
        if self.group_id.trim().is_empty() {
            return Err(Error::invalid(
                "source.group_id",
                "is empty",
                "name the consumer group, e.g. \"weir-stocks\"",
            ));
        }
        if self.format == Format::Csv {
            if self.csv.header {
                return Err(Error::invalid(
                    "source.csv.header",
                    "is true, but a Kafka message is one CSV line with no header",
                    "set header = false and list csv.columns",
                ));
            }
            if self.csv.columns.is_empty() {
                return Err(Error::invalid(
                    "source.csv.columns",
                    "is empty",
                    "list the column names of each message's line, in order",
                ));
            }
        }
        Ok(())
    }
}

impl GeneratorConfig {
    /// Checks `keys` and `start`: the one place generator settings are validated, for a
    /// pipeline's `[source]` and for `weir gen` alike.
    pub fn validate(&self) -> Result<(), Error> {
        if self.keys == 0 {
            return Err(Error::invalid("source.keys", "is 0", "use at least 1 key"));
        }
        self.start_ms().map(drop)
    }

    /// `start` in epoch milliseconds, when set; an error naming `source.start` when it is
    /// not RFC 3339.
    pub fn start_ms(&self) -> Result<Option<i64>, Error> {
        self.start
            .as_deref()
            .map(|start| {
                crate::time::TimestampFormat::Rfc3339
                    .parse_str(start)
                    .map_err(|e| {
                        Error::invalid(
                            "source.start",
                            e,
                            "write it as RFC 3339, e.g. \"2024-01-22T00:00:00Z\"",
                        )
                    })
            })
            .transpose()
    }
}
