//! Local checkpoints (`[checkpoint]`): one file per pipeline holding its window state, its
//! watermarks, where its source stands and how long its file sinks are, written atomically
//! (write a temporary file, `fsync`, rename over the last checkpoint, `fsync` the directory)
//! and read back when the pipeline starts. The checkpoint before the last one is kept
//! beside it (`checkpoint.prev`): a latest checkpoint that is damaged, or missing after a
//! crash between the two renames, falls back to it.
//!
//! The file is `MAGIC`, the format number (`u32` LE), the Weir version that wrote it (`u16`
//! LE length, UTF-8), the body ([`Checkpoint`], postcard) and a CRC-32 of the body (`u32`
//! LE). A checkpoint of another format, or for a pipeline whose identity changed (another
//! window, key, schema, source or sink), is refused with what changed; the operator then
//! chooses to discard it (`weir run --discard-checkpoint`).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::counters::Counters;

use crate::source::SourcePosition;
use crate::time::WatermarkState;

/// The first bytes of a checkpoint file.
const MAGIC: &[u8; 8] = b"WEIRCKPT";

/// The layout of [`Checkpoint`]; a change to it bumps this number.
pub const FORMAT: u32 = 2;

/// The checkpoint's file name inside `[checkpoint] dir`.
pub const FILE_NAME: &str = "checkpoint";

/// The checkpoint before the last one, inside `[checkpoint] dir`.
pub const PREVIOUS_NAME: &str = "checkpoint.prev";

/// Everything a pipeline needs to go on where it was.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    /// What the pipeline was: compared with the pipeline restoring it ([`differences`]).
    pub identity: Identity,
    /// Wall-clock time it was written, epoch ms (for logs).
    pub written_at_ms: i64,
    /// Where the source stands.
    pub source: SourcePosition,
    /// The watermarks.
    pub watermarks: WatermarkState,
    /// Length of each file sink, by role (`sink`, `late_sink`, `dead_letter`,
    /// `error_sink`).
    pub sinks: BTreeMap<String, u64>,
    /// Length of each file sink, by role, when the run first started, before it wrote
    /// anything: `--discard-checkpoint` cuts the sinks back to them, since the run then
    /// writes everything again.
    pub start_sinks: BTreeMap<String, u64>,
    /// The run's counters so far.
    pub counters: Counters,
    /// For a source that takes commits (Kafka): the offsets of the records still needed,
    /// encoded (empty for other sources).
    pub offsets: Vec<u8>,
    /// Window state: encoded key states ([`crate::window::WindowOperator::snapshot`]), one
    /// blob per worker that held them.
    pub state: Vec<Vec<u8>>,
}

/// What a checkpoint must have been written for, one entry per setting that changes what
/// the state means: `name`, `window`, `key`, `fields`, `timestamp`, `source`, `sink`, ….
pub type Identity = BTreeMap<String, String>;

/// Why a checkpoint cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing the file failed.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file is not a checkpoint, is cut short, fails its CRC or does not decode.
    #[error(
        "checkpoint {path} is damaged ({reason}); discard it with weir run --discard-checkpoint (the run then starts from the beginning of its source)"
    )]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Written by a Weir with another checkpoint format.
    #[error(
        "checkpoint {path} was written by weir {version} (checkpoint format {format}); this weir {ours} reads format {FORMAT}: discard it with weir run --discard-checkpoint (the run then starts from the beginning of its source)"
    )]
    Format {
        /// The file.
        path: PathBuf,
        /// The version that wrote it.
        version: String,
        /// Its format.
        format: u32,
        /// This version.
        ours: &'static str,
    },
    /// Written for a pipeline whose identity differs.
    #[error(
        "checkpoint {path} was written for another pipeline: {changes}; undo the change, or discard the checkpoint with weir run --discard-checkpoint (the run then starts from the beginning of its source)"
    )]
    Changed {
        /// The file.
        path: PathBuf,
        /// What changed, `key: was A, is B`, separated by `; `.
        changes: String,
    },
}

/// What differs between the identity a checkpoint was written for and the pipeline's, as
/// `setting: checkpoint has A, the pipeline has B`; empty when they match.
pub fn differences(checkpoint: &Identity, pipeline: &Identity) -> Vec<String> {
    let mut keys: Vec<&String> = checkpoint.keys().chain(pipeline.keys()).collect();
    keys.sort();
    keys.dedup();
    let none = "(none)".to_string();
    keys.into_iter()
        .filter_map(|k| {
            let (a, b) = (
                checkpoint.get(k).unwrap_or(&none),
                pipeline.get(k).unwrap_or(&none),
            );
            (a != b).then(|| format!("{k}: the checkpoint has {a}, the pipeline has {b}"))
        })
        .collect()
}

/// The checkpoint file of a checkpoint directory.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Writes `checkpoint` to `dir` atomically: a crash at any point leaves the last complete
/// checkpoint or this one, never a mix. The last one becomes the previous one
/// ([`PREVIOUS_NAME`]). Returns the bytes written.
pub fn write(dir: &Path, checkpoint: &Checkpoint) -> Result<u64, Error> {
    let path = path_in(dir);
    let io_err = |source| Error::Io {
        path: path.clone(),
        source,
    };
    let body = postcard::to_allocvec(checkpoint)
        .map_err(|e| io_err(io::Error::other(format!("encoding: {e}"))))?;
    let version = env!("CARGO_PKG_VERSION").as_bytes();
    let mut bytes = Vec::with_capacity(body.len() + 32);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&FORMAT.to_le_bytes());
    bytes.extend_from_slice(&(version.len() as u16).to_le_bytes());
    bytes.extend_from_slice(version);
    bytes.extend_from_slice(&body);
    bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    match std::fs::rename(&path, dir.join(PREVIOUS_NAME)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(e)),
        _ => {}
    }
    write_atomically(dir, FILE_NAME, &bytes).map_err(io_err)?;
    Ok(bytes.len() as u64)
}

/// Writes `bytes` to `dir/name` atomically and durably: into `dir/name.tmp`, `fsync`ed,
/// renamed over `dir/name`, then `dir` `fsync`ed, so a crash at any point leaves the old
/// file or the new one whole (`dir` is created if missing). Checkpoints are written this
/// way, and so is `weir serve`'s state directory.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, dir.join(name))?;
    // The rename itself is durable once the directory is.
    File::open(dir).and_then(|d| d.sync_all())
}

/// Reads the checkpoint in `dir`, if there is one. A latest checkpoint that is damaged, or
/// missing while the previous one is there (a crash between the two renames of
/// [`write`]), falls back to the previous one, with a warning; when that fails too, the
/// latest one's error is returned.
pub fn read(dir: &Path) -> Result<Option<Checkpoint>, Error> {
    let latest = read_file(&path_in(dir));
    let previous = || read_file(&dir.join(PREVIOUS_NAME));
    match latest {
        Ok(Some(c)) => Ok(Some(c)),
        Ok(None) => previous(),
        Err(e @ Error::Damaged { .. }) => match previous() {
            Ok(Some(c)) => {
                tracing::warn!(error = %e, "the latest checkpoint is damaged: going on from the one before it");
                Ok(Some(c))
            }
            _ => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// Reads one checkpoint file, if it exists.
fn read_file(path: &Path) -> Result<Option<Checkpoint>, Error> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    decode(path, &bytes).map(Some)
}

/// Removes the checkpoints in `dir`, the latest and the previous one (the operator
/// discarded them).
pub fn discard(dir: &Path) -> Result<(), Error> {
    for path in [path_in(dir), dir.join(PREVIOUS_NAME)] {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(Error::Io { path, source: e });
            }
            _ => {}
        }
    }
    Ok(())
}

fn decode(path: &Path, bytes: &[u8]) -> Result<Checkpoint, Error> {
    let damaged = |reason: &str| Error::Damaged {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| damaged("not a Weir checkpoint"))?;
    let (format, rest) = take::<4>(rest).ok_or_else(|| damaged("cut short"))?;
    let (len, rest) = take::<2>(rest).ok_or_else(|| damaged("cut short"))?;
    let len = usize::from(u16::from_le_bytes(len));
    if rest.len() < len {
        return Err(damaged("cut short"));
    }
    let (version, rest) = rest.split_at(len);
    let format = u32::from_le_bytes(format);
    if format != FORMAT {
        return Err(Error::Format {
            path: path.to_path_buf(),
            version: String::from_utf8_lossy(version).into_owned(),
            format,
            ours: env!("CARGO_PKG_VERSION"),
        });
    }
    if rest.len() < 4 {
        return Err(damaged("cut short"));
    }
    let (body, crc) = rest.split_at(rest.len() - 4);
    let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(body) != crc {
        return Err(damaged("its CRC does not match"));
    }
    postcard::from_bytes(body).map_err(|e| damaged(&format!("it does not decode: {e}")))
}

/// Splits `N` bytes off the front.
fn take<const N: usize>(bytes: &[u8]) -> Option<([u8; N], &[u8])> {
    let (head, rest) = bytes.split_first_chunk::<N>()?;
    Some((*head, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            identity: [("window".to_string(), "tumbling 5s".to_string())].into(),
            written_at_ms: 1_700_000_000_000,
            source: SourcePosition::File {
                path: Some(PathBuf::from("in.jsonl")),
                bytes: 120,
                line: 3,
            },
            watermarks: WatermarkState {
                current: 4_000,
                partitions: vec![Some(5_000)],
            },
            sinks: [("sink".to_string(), 77)].into(),
            start_sinks: [("sink".to_string(), 10)].into(),
            counters: Counters {
                events_read: 3,
                ..Counters::default()
            },
            offsets: Vec::new(),
            state: vec![vec![1, 2, 3]],
        }
    }

    #[test]
    fn a_checkpoint_reads_back_as_written_and_replaces_the_last_one() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_none());
        let mut c = sample();
        write(dir.path(), &c).unwrap();
        c.counters.events_read = 9;
        write(dir.path(), &c).unwrap();
        let back = read(dir.path()).unwrap().unwrap();
        assert_eq!(back.counters.events_read, 9);
        assert_eq!(back.source, c.source);
        assert_eq!(back.watermarks, c.watermarks);
        assert_eq!(back.sinks, c.sinks);
        assert_eq!(back.state, c.state);
        assert_eq!(back.start_sinks, c.start_sinks);
        // The checkpoint and the one before it are left: the temporary file was renamed
        // over the first.
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, [FILE_NAME, PREVIOUS_NAME]);
    }

    #[test]
    fn a_damaged_or_missing_latest_checkpoint_falls_back_to_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = sample();
        c.counters.events_read = 1;
        write(dir.path(), &c).unwrap();
        c.counters.events_read = 2;
        write(dir.path(), &c).unwrap();
        let path = path_in(dir.path());
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() - 10;
        bytes[at] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read(dir.path()).unwrap().unwrap().counters.events_read, 1);
        // A crash after the latest became the previous one, before the new one was in.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(read(dir.path()).unwrap().unwrap().counters.events_read, 1);
        // Both damaged: the latest one's error.
        std::fs::write(&path, &bytes).unwrap();
        std::fs::write(dir.path().join(PREVIOUS_NAME), &bytes[..12]).unwrap();
        let err = read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("CRC does not match"), "{err}");
        discard(dir.path()).unwrap();
        assert!(read(dir.path()).unwrap().is_none());
    }

    #[test]
    fn a_damaged_or_foreign_checkpoint_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &sample()).unwrap();
        let path = path_in(dir.path());
        let mut bytes = std::fs::read(&path).unwrap();
        // One flipped bit in the body fails the CRC.
        let at = bytes.len() - 10;
        bytes[at] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let err = read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("CRC does not match"), "{err}");
        // Cut short.
        std::fs::write(&path, &bytes[..12]).unwrap();
        let err = read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("cut short"), "{err}");
        // Another format: named with the version that wrote it.
        let mut other = MAGIC.to_vec();
        other.extend_from_slice(&(FORMAT + 1).to_le_bytes());
        other.extend_from_slice(&5u16.to_le_bytes());
        other.extend_from_slice(b"9.9.9");
        std::fs::write(&path, &other).unwrap();
        let err = read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("written by weir 9.9.9"), "{err}");
        assert!(err.contains(&format!("format {}", FORMAT + 1)), "{err}");
        assert!(err.contains("--discard-checkpoint"), "{err}");
        std::fs::write(&path, b"something else").unwrap();
        let err = read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a Weir checkpoint"), "{err}");
        discard(dir.path()).unwrap();
        assert!(read(dir.path()).unwrap().is_none());
    }

    #[test]
    fn differences_name_each_setting_that_changed() {
        let a: Identity = [
            ("window".to_string(), "sliding 3s/1s".to_string()),
            ("key".to_string(), "symbol".to_string()),
        ]
        .into();
        let mut b = a.clone();
        assert!(differences(&a, &b).is_empty());
        b.insert("window".into(), "tumbling 5s".into());
        b.insert("sink".into(), "file out.jsonl".into());
        assert_eq!(
            differences(&a, &b),
            [
                "sink: the checkpoint has (none), the pipeline has file out.jsonl",
                "window: the checkpoint has sliding 3s/1s, the pipeline has tumbling 5s",
            ]
        );
    }
}
