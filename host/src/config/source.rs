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
        }
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
