//! `[sink]`, `[late_sink]`, `[dead_letter]` and `[error_sink]`: where rows go and how they
//! are written. Opening and writing them is `sink/`'s.

use std::path::PathBuf;

use serde::Deserialize;

use super::{Error, Format, PipelineConfig, SourceConfig};

/// The librdkafka property naming a producer's transaction; Weir derives it when
/// `[sink.kafka.options]` does not set it.
const TRANSACTIONAL_ID: &str = "transactional.id";

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
        /// `[sink] exactly_once = true` (result sink, Kafka source only): rows are written
        /// by a transactional producer and the consumed offsets are committed in the same
        /// transaction, so a consumer reading with `isolation.level = read_committed` sees
        /// each row once across crashes and restarts (default false: at-least-once, with
        /// row ids to deduplicate).
        #[serde(default)]
        exactly_once: bool,
    },
    /// A PostgreSQL table. Result rows are upserted by their window (key fields,
    /// `window_start`, `window_end`, `row`); from a Kafka source each commit also stores
    /// the source's positions in `weir_positions`, in the same database transaction, and a
    /// restart resumes from there: the table equals an uninterrupted run. Side rows (late,
    /// dead letters, errors) are inserted, at least once.
    Postgres {
        /// `postgresql://user:password@host:5432/database`. Never logged, never in an error.
        #[serde(default)]
        url: Option<Secret>,
        /// An environment variable holding the URL, instead of `url`.
        #[serde(default)]
        url_env: Option<String>,
        /// The table: `name` or `schema.name`.
        table: String,
        /// Create the table when it is missing (default false: it must exist, with the
        /// columns and primary key the rows need).
        #[serde(default)]
        create: bool,
        /// How long one commit keeps retrying a database that is down or refuses the
        /// write before the pipeline fails (default `2m`); the rows stay pending meanwhile.
        #[serde(default = "default_retry_for")]
        retry_for: super::Millis,
    },
}

/// A secret: printed as `***`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

fn default_retry_for() -> super::Millis {
    super::Millis(120_000)
}

impl SinkConfig {
    /// A PostgreSQL sink's URL: `url`, or the variable `url_env` names. The error names
    /// the key (`what`) and the fix, never the URL.
    pub fn postgres_url(&self, what: &str) -> Result<Option<String>, Error> {
        let SinkConfig::Postgres { url, url_env, .. } = self else {
            return Ok(None);
        };
        match (url, url_env) {
            (Some(u), None) => Ok(Some(u.0.clone())),
            (None, Some(var)) => match std::env::var(var) {
                Ok(u) if !u.is_empty() => Ok(Some(u)),
                _ => Err(Error::invalid(
                    format!("{what}.url_env"),
                    format!("names {var}, which is not set in the environment"),
                    format!("export {var}=postgresql://user:password@host:5432/database"),
                )),
            },
            (Some(_), Some(_)) => Err(Error::invalid(
                format!("{what}.url"),
                "and url_env are both set",
                "keep one of them",
            )),
            (None, None) => Err(Error::invalid(
                format!("{what}.url"),
                "is missing",
                "set url = \"postgresql://user:password@host:5432/database\", or url_env = \"VAR\"",
            )),
        }
    }
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

impl SinkConfig {
    /// Whether this is a Kafka sink with `exactly_once = true`.
    pub fn exactly_once(&self) -> bool {
        matches!(
            self,
            SinkConfig::Kafka {
                exactly_once: true,
                ..
            }
        )
    }
}

impl PipelineConfig {
    /// `[sink] exactly_once`: only the result sink, only to Kafka (other kinds refuse the
    /// key when parsed, see [`parse_hint`]) and only from a Kafka source, whose consumed
    /// offsets the transaction commits.
    pub(super) fn check_exactly_once(&self) -> Result<(), Error> {
        for (key, side) in [
            ("late_sink", &self.late_sink),
            ("dead_letter", &self.dead_letter),
            ("error_sink", &self.error_sink),
        ] {
            if side.as_ref().is_some_and(SinkConfig::exactly_once) {
                return Err(Error::invalid(
                    format!("{key}.exactly_once"),
                    "is only for [sink], the result rows (late rows, dead letters and errors \
                     are written at least once)",
                    format!("remove {key}.exactly_once"),
                ));
            }
        }
        if self.sink.exactly_once() && !matches!(self.source, SourceConfig::Kafka(_)) {
            return Err(Error::invalid(
                "sink.exactly_once",
                "needs a Kafka source: the transaction commits the consumed offsets with the rows",
                "use [source] kind = \"kafka\", or remove sink.exactly_once",
            ));
        }
        if let (
            SinkConfig::Kafka {
                kafka,
                exactly_once: true,
                ..
            },
            SourceConfig::Kafka(source),
        ) = (&self.sink, &self.source)
        {
            let key = "sink.kafka.options.\"transaction.timeout.ms\"";
            let timeout = match kafka.options.get("transaction.timeout.ms") {
                Some(v) => v.parse::<i64>().map_err(|_| {
                    Error::invalid(
                        key,
                        format!("({v}) is not a number of milliseconds"),
                        "write it as a whole number, such as \"60000\"",
                    )
                })?,
                None => DEFAULT_TRANSACTION_TIMEOUT_MS,
            };
            if timeout <= source.commit_every.0 {
                return Err(Error::invalid(
                    key,
                    format!(
                        "({timeout} ms) is not longer than source.commit_every ({}): a transaction stays open from one commit to the next, so the broker would abort every one",
                        source.commit_every
                    ),
                    "raise transaction.timeout.ms well above commit_every (librdkafka's default is 60000), or commit more often",
                ));
            }
        }
        if self.sink.exactly_once() && self.checkpoint.is_some() {
            return Err(Error::invalid(
                "sink.exactly_once",
                "cannot be combined with [checkpoint] yet: a transaction and a checkpoint \
                 would each say what was written",
                "remove [checkpoint] (exactly-once recovers from the offsets its transactions \
                 committed), or remove sink.exactly_once",
            ));
        }
        Ok(())
    }

    /// The `transactional.id` of the result sink's producer when `exactly_once` is on: the
    /// one set in `[sink.kafka.options]`, else `weir-<pipeline>-<group_id>`. It is the same
    /// at every start, so a restarted process fences its dead predecessor and aborts the
    /// transaction it left open. Two processes sharing a group need one id each.
    pub fn transactional_id(&self) -> Option<String> {
        let SinkConfig::Kafka {
            kafka,
            exactly_once: true,
            ..
        } = &self.sink
        else {
            return None;
        };
        if let Some(id) = kafka.options.get(TRANSACTIONAL_ID) {
            return Some(id.clone());
        }
        let group = match &self.source {
            SourceConfig::Kafka(k) => k.group_id.as_str(),
            _ => "",
        };
        Some(format!("weir-{}-{group}", self.name))
    }
}

/// librdkafka's `transaction.timeout.ms` when a pipeline does not set one.
pub const DEFAULT_TRANSACTION_TIMEOUT_MS: i64 = 60_000;

/// A parse error's message, with what to do when it is `exactly_once` on a sink that is not
/// Kafka (serde names the key but not why).
pub(super) fn parse_hint(message: String) -> String {
    if message.contains("unknown field `exactly_once`") {
        format!(
            "{}\nexactly_once is only for [sink] kind = \"kafka\" (a transactional \
             producer); remove it, or write the results to a Kafka topic",
            message.trim_end()
        )
    } else {
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pipeline from `source` (a `[source]` table's keys) to `sink` (a `[sink]` table's
    /// keys), with `extra` tables after.
    fn config(source: &str, sink: &str, extra: &str) -> Result<PipelineConfig, Error> {
        PipelineConfig::parse(&format!(
            r#"name = "fx"
[source]
{source}
[schema]
timestamp = {{ field = "ts", format = "epoch_ms" }}
key = ["symbol"]
fields = {{ symbol = "string", price = "f64" }}
[window]
kind = "tumbling"
size = "1s"
[plugin]
path = "p.wasm"
[sink]
{sink}
{extra}"#
        ))
    }

    const KAFKA_SOURCE: &str =
        "kind = \"kafka\"\nbrokers = \"b:9092\"\ntopics = [\"in\"]\ngroup_id = \"g\"";
    const KAFKA_SINK: &str = "kind = \"kafka\"\nbrokers = \"b:9092\"\ntopic = \"out\"";

    #[test]
    fn exactly_once_derives_a_transactional_id_from_the_pipeline_and_the_group() {
        let cfg = config(
            KAFKA_SOURCE,
            &format!("{KAFKA_SINK}\nexactly_once = true"),
            "",
        )
        .expect("valid");
        assert!(cfg.sink.exactly_once());
        assert_eq!(cfg.transactional_id().as_deref(), Some("weir-fx-g"));
    }

    #[test]
    fn a_transactional_id_in_the_options_wins() {
        let cfg = config(
            KAFKA_SOURCE,
            &format!("{KAFKA_SINK}\nexactly_once = true\n[sink.kafka.options]\n\"transactional.id\" = \"mine-1\""),
            "",
        )
        .expect("valid");
        assert_eq!(cfg.transactional_id().as_deref(), Some("mine-1"));
    }

    #[test]
    fn a_transaction_timeout_not_longer_than_commit_every_is_refused() {
        let sink = |timeout: &str| {
            format!(
                "{KAFKA_SINK}\nexactly_once = true\n[sink.kafka.options]\n\"transaction.timeout.ms\" = \"{timeout}\""
            )
        };
        let source = format!("{KAFKA_SOURCE}\ncommit_every = \"30s\"");
        let err = config(&source, &sink("30000"), "").unwrap_err().to_string();
        assert!(err.contains("transaction.timeout.ms"), "{err}");
        assert!(err.contains("commit_every"), "{err}");
        config(&source, &sink("30001"), "").expect("longer is fine");
        let err = config(&source, &sink("soon"), "").unwrap_err().to_string();
        assert!(err.contains("not a number"), "{err}");
        // librdkafka's default (60 s) against a commit_every of 2 minutes.
        let slow = format!("{KAFKA_SOURCE}\ncommit_every = \"2m\"");
        let err = config(&slow, &format!("{KAFKA_SINK}\nexactly_once = true"), "")
            .unwrap_err()
            .to_string();
        assert!(err.contains("60000 ms"), "{err}");
    }

    #[test]
    fn without_exactly_once_there_is_no_transaction() {
        let cfg = config(KAFKA_SOURCE, KAFKA_SINK, "").expect("valid");
        assert!(!cfg.sink.exactly_once());
        assert_eq!(cfg.transactional_id(), None);
    }

    #[test]
    fn exactly_once_on_a_file_sink_names_the_key_and_the_kind_it_needs() {
        let err = config(
            KAFKA_SOURCE,
            "kind = \"file\"\npath = \"out.jsonl\"\nexactly_once = true",
            "",
        )
        .expect_err("refused")
        .to_string();
        assert!(err.contains("exactly_once"), "{err}");
        assert!(err.contains("kind = \"kafka\""), "{err}");
    }

    #[test]
    fn exactly_once_from_a_source_that_is_not_kafka_is_refused() {
        let err = config(
            "kind = \"stdin\"",
            &format!("{KAFKA_SINK}\nexactly_once = true"),
            "",
        )
        .expect_err("refused")
        .to_string();
        assert!(
            err.starts_with("sink.exactly_once needs a Kafka source"),
            "{err}"
        );
    }

    #[test]
    fn exactly_once_on_a_side_sink_is_refused() {
        let err = config(
            KAFKA_SOURCE,
            KAFKA_SINK,
            &format!("[dead_letter]\n{KAFKA_SINK}\nexactly_once = true"),
        )
        .expect_err("refused")
        .to_string();
        assert!(
            err.starts_with("dead_letter.exactly_once is only for [sink]"),
            "{err}"
        );
    }
}
