//! `[sink]`, `[late_sink]`, `[dead_letter]` and `[error_sink]`: where rows go and how they
//! are written. Opening and writing them is `sink/`'s.

use std::path::PathBuf;

use serde::Deserialize;

use super::Format;

/// A sink: `[sink]`, `[late_sink]`, `[dead_letter]` or `[error_sink]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum SinkConfig {
    /// Standard output.
    Stdout {
        /// Row encoding.
        #[serde(default)]
        format: Format,
    },
    /// Standard error.
    Stderr {
        /// Row encoding.
        #[serde(default)]
        format: Format,
    },
    /// A file, created with its parent directories if missing.
    File {
        /// Path, relative to the config file.
        path: PathBuf,
        /// Row encoding.
        #[serde(default)]
        format: Format,
        /// What to do with an existing file: `append` (default) keeps it and adds rows at
        /// its end (a CSV file keeps its one header, which must match the columns);
        /// `truncate` empties it when the pipeline starts.
        #[serde(default)]
        mode: SinkMode,
        /// `sync_data` the file at every flush (about once a second, and at stop), so that
        /// flushed rows survive a machine crash, not only a process crash (default false).
        #[serde(default)]
        sync: bool,
    },
    /// A Kafka topic: a message per row, keyed by the group key, with a `weir-row-id`
    /// header on result rows.
    Kafka {
        /// Bootstrap servers, `host:port[,host:port…]`.
        brokers: String,
        /// The topic.
        topic: String,
        /// Message value: a JSON object (`jsonl`, default) or a CSV line (`csv`).
        #[serde(default)]
        format: Format,
        /// `[sink.kafka.options]`: librdkafka properties, passed unchanged.
        #[serde(default)]
        kafka: super::KafkaPassthrough,
    },
}

/// `[sink] mode`: what opening a file sink does to an existing file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkMode {
    /// Keep what is there and add rows at the end (the default: a restart never erases the
    /// results of the run before).
    #[default]
    Append,
    /// Empty the file when the pipeline starts (each run replaces the last one's rows).
    Truncate,
}
