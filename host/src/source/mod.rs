//! Sources: where raw records come from (files, stdin, the synthetic generator; Kafka later).
//!
//! A source only frames input into records and says where each came from; it does not parse
//! fields (that is `decode`) and knows nothing of time or windows. Every record carries a
//! partition and an offset so that the pipeline can keep per-partition watermarks now and,
//! with Kafka, commit offsets later.

mod file;
mod generator;

use std::sync::Arc;

pub use file::{FileSource, StdinSource};
pub use generator::{Generator, GeneratorSource, write_generated};

/// One raw record, as framed by a source.
#[derive(Debug, Clone)]
pub struct RawRecord {
    /// Input partition (a Kafka partition later; 0 for files, stdin and the generator).
    pub partition: u32,
    /// Where it came from: a file path, `stdin`, `generator`.
    pub origin: Arc<str>,
    /// Position within `origin`: the 1-based line number for line-framed input.
    pub offset: u64,
    /// The record's text: one JSON object or one CSV line, without the line terminator.
    pub payload: String,
}

/// What one poll of a source produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// Records were appended (possibly none, for an unbounded source with nothing new yet).
    Ready,
    /// The input is exhausted; the pipeline flushes every open window.
    Done,
}

/// Errors that stop a source (a bad record never does: it goes to the dead-letter sink).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or glob matched nothing.
    #[error(
        "source.path `{pattern}` matches no file; check the path (relative to the pipeline file)"
    )]
    NoMatch {
        /// The path or pattern.
        pattern: String,
    },
    /// The glob pattern is malformed.
    #[error("source.path `{pattern}` is not a valid glob: {message}")]
    BadGlob {
        /// The pattern.
        pattern: String,
        /// Why.
        message: String,
    },
    /// Reading failed.
    #[error("reading {origin}: {source}")]
    Io {
        /// What was being read.
        origin: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A source of raw records.
///
/// Sources are pulled, in batches, by the pipeline's own thread: a blocking read is fine,
/// and the batch size bounds how much is decoded before the plugin's filter is called.
pub trait Source: Send {
    /// Appends up to `max` records to `out`.
    ///
    /// Returns [`Poll::Done`] once the input is exhausted and every record was returned.
    fn poll(&mut self, out: &mut Vec<RawRecord>, max: usize) -> Result<Poll, Error>;

    /// A short description for logs and the run summary, e.g. `file data/*.csv (3 files)`.
    fn describe(&self) -> String;

    /// Total bytes or records expected, when known, for a progress bar.
    fn size_hint(&self) -> Option<SizeHint> {
        None
    }

    /// How far the source has got, in the unit of [`Source::size_hint`] (bytes or records).
    fn position(&self) -> u64 {
        0
    }

    /// Whether events arrive as they happen (stdin; Kafka later), so that event time can be
    /// compared to wall clock (`watermark.max_future`). Bounded replays (files, the
    /// generator) say false: their times are compared to the watermark instead.
    fn is_live(&self) -> bool {
        false
    }
}

/// How much input a bounded source holds, for progress reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeHint {
    /// Total bytes of all files.
    Bytes(u64),
    /// Total number of records.
    Records(u64),
}
