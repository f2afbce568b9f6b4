//! Line-framed sources: files (one path or a glob, read in sorted path order as one stream)
//! and standard input.
//!
//! Owns opening, globbing and splitting bytes into line records with their origin and
//! 1-based line number. It does not parse records (`decode` does): invalid UTF-8 is
//! replaced lossily and left for the decoder to reject.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Error, Poll, RawRecord, SizeHint, Source};

/// Read buffer per open input; large reads keep the per-line cost low.
const BUF_CAPACITY: usize = 256 * 1024;

/// Splits a byte stream into records, one per non-blank line.
struct Lines<R> {
    reader: BufReader<R>,
    origin: Arc<str>,
    /// Line number of the last line read (blank lines count).
    line: u64,
    /// Bytes consumed, line terminators included.
    consumed: u64,
    buf: Vec<u8>,
}

impl<R: Read> Lines<R> {
    fn new(reader: R, origin: Arc<str>) -> Self {
        Lines {
            reader: BufReader::with_capacity(BUF_CAPACITY, reader),
            origin,
            line: 0,
            consumed: 0,
            buf: Vec::with_capacity(256),
        }
    }

    /// The next non-blank line as a record, or `None` at end of input.
    fn next_record(&mut self) -> io::Result<Option<RawRecord>> {
        loop {
            self.buf.clear();
            let n = self.reader.read_until(b'\n', &mut self.buf)?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            self.consumed += n as u64;
            let mut line = self.buf.as_slice();
            line = line.strip_suffix(b"\n").unwrap_or(line);
            line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let payload = match std::str::from_utf8(line) {
                Ok(s) => s.to_owned(),
                Err(_) => String::from_utf8_lossy(line).into_owned(),
            };
            return Ok(Some(RawRecord {
                partition: 0,
                origin: Arc::clone(&self.origin),
                offset: self.line,
                payload,
            }));
        }
    }

    /// Whether every byte read from the underlying reader has been framed, so that the
    /// next read may block.
    fn drained(&self) -> bool {
        self.reader.buffer().is_empty()
    }
}

/// A bounded source over one file or a glob of files, read in sorted path order as one
/// stream on partition 0.
///
/// Each record's origin is the file's path and its offset the 1-based line number in that
/// file; blank lines are skipped but counted. [`Source::poll`] appends records until `max`
/// or the end of the last file, and returns [`Poll::Done`] only from a call that appended
/// nothing, so the caller never has to look at records and `Done` together.
pub struct FileSource {
    pattern: String,
    glob: bool,
    /// Paths to read, in order, with their sizes at open time.
    files: Vec<(PathBuf, u64)>,
    /// Index in `files` of the next file to open.
    next_file: usize,
    current: Option<Lines<File>>,
    /// Bytes of the files already read to the end.
    finished_bytes: u64,
    total_bytes: u64,
}

impl FileSource {
    /// Resolves `pattern` (relative to `base_dir` unless absolute) to the files to read.
    ///
    /// A pattern with `*`, `?` or `[` is a glob and may match several files, read in sorted
    /// path order (directories are skipped). Errors: [`Error::NoMatch`] when nothing
    /// matches (or a plain path does not exist), [`Error::BadGlob`], and [`Error::Io`] when
    /// a size cannot be read. Files are opened one at a time while reading.
    pub fn open(pattern: &str, base_dir: &Path) -> Result<Self, Error> {
        let glob = pattern.contains(['*', '?', '[']);
        let no_match = || Error::NoMatch {
            pattern: pattern.to_string(),
        };
        let paths = if glob {
            let full = if Path::new(pattern).is_absolute() {
                pattern.to_string()
            } else {
                let base = glob::Pattern::escape(&base_dir.to_string_lossy());
                Path::new(&base)
                    .join(pattern)
                    .to_string_lossy()
                    .into_owned()
            };
            let entries = glob::glob(&full).map_err(|e| Error::BadGlob {
                pattern: pattern.to_string(),
                message: e.msg.to_string(),
            })?;
            let mut paths = Vec::new();
            for entry in entries {
                let path = entry.map_err(|e| Error::Io {
                    origin: e.path().display().to_string(),
                    source: e.into(),
                })?;
                if path.is_file() {
                    paths.push(path);
                }
            }
            paths.sort();
            paths
        } else {
            let path = base_dir.join(pattern);
            if !path.is_file() {
                return Err(no_match());
            }
            vec![path]
        };
        if paths.is_empty() {
            return Err(no_match());
        }
        let files = paths
            .into_iter()
            .map(|path| match std::fs::metadata(&path) {
                Ok(m) => Ok((path, m.len())),
                Err(source) => Err(Error::Io {
                    origin: path.display().to_string(),
                    source,
                }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let total_bytes = files.iter().map(|(_, len)| len).sum();
        Ok(FileSource {
            pattern: pattern.to_string(),
            glob,
            files,
            next_file: 0,
            current: None,
            finished_bytes: 0,
            total_bytes,
        })
    }

    /// The files this source reads, in reading order.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|(p, _)| p.as_path())
    }
}

impl Source for FileSource {
    fn poll(&mut self, out: &mut Vec<RawRecord>, max: usize) -> Result<Poll, Error> {
        let mut appended = 0;
        while appended < max {
            let lines = match &mut self.current {
                Some(lines) => lines,
                None => {
                    let Some((path, _)) = self.files.get(self.next_file) else {
                        return Ok(if appended > 0 {
                            Poll::Ready
                        } else {
                            Poll::Done
                        });
                    };
                    let origin = path.display().to_string();
                    let file = File::open(path).map_err(|source| Error::Io {
                        origin: origin.clone(),
                        source,
                    })?;
                    self.next_file += 1;
                    self.current.insert(Lines::new(file, origin.into()))
                }
            };
            match lines.next_record() {
                Ok(Some(record)) => {
                    out.push(record);
                    appended += 1;
                }
                Ok(None) => {
                    self.finished_bytes += lines.consumed;
                    self.current = None;
                }
                Err(source) => {
                    return Err(Error::Io {
                        origin: lines.origin.to_string(),
                        source,
                    });
                }
            }
        }
        Ok(Poll::Ready)
    }

    fn describe(&self) -> String {
        if self.glob {
            let n = self.files.len();
            format!(
                "file {} ({n} file{})",
                self.pattern,
                if n == 1 { "" } else { "s" }
            )
        } else {
            format!("file {}", self.pattern)
        }
    }

    fn size_hint(&self) -> Option<SizeHint> {
        Some(SizeHint::Bytes(self.total_bytes))
    }

    fn position(&self) -> u64 {
        self.finished_bytes + self.current.as_ref().map_or(0, |l| l.consumed)
    }
}

/// Standard input, framed by line like a file (origin `stdin`), until end of input.
///
/// A poll blocks only until at least one record is available: it returns what it has as
/// soon as the bytes already read are used up, so a slow producer is not held back until
/// `max` lines arrive. Like [`FileSource`], `Done` comes from a call that appended nothing.
pub struct StdinSource {
    lines: Lines<Box<dyn Read + Send>>,
    done: bool,
}

impl StdinSource {
    /// Reads the process's standard input.
    pub fn new() -> Self {
        Self::from_reader(Box::new(io::stdin()), "stdin")
    }

    /// Reads any byte stream the same way (tests, pipes), with this origin.
    pub fn from_reader(reader: Box<dyn Read + Send>, origin: &str) -> Self {
        StdinSource {
            lines: Lines::new(reader, origin.into()),
            done: false,
        }
    }
}

impl Default for StdinSource {
    fn default() -> Self {
        Self::new()
    }
}

impl Source for StdinSource {
    fn poll(&mut self, out: &mut Vec<RawRecord>, max: usize) -> Result<Poll, Error> {
        let mut appended = 0;
        while appended < max && !self.done {
            match self.lines.next_record() {
                Ok(Some(record)) => {
                    out.push(record);
                    appended += 1;
                    if self.lines.drained() {
                        break;
                    }
                }
                Ok(None) => self.done = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(Error::Io {
                        origin: self.lines.origin.to_string(),
                        source,
                    });
                }
            }
        }
        Ok(if self.done && appended == 0 {
            Poll::Done
        } else {
            Poll::Ready
        })
    }

    fn is_live(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        self.lines.origin.to_string()
    }

    fn position(&self) -> u64 {
        self.lines.consumed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(source: &mut dyn Source, max: usize) -> Vec<RawRecord> {
        let mut out = Vec::new();
        let mut polls = 0;
        while source.poll(&mut out, max).unwrap() == Poll::Ready {
            polls += 1;
            assert!(polls < 1000, "source never finished");
        }
        out
    }

    fn summary(records: &[RawRecord]) -> Vec<(String, u64, String)> {
        records
            .iter()
            .map(|r| {
                let file = Path::new(&*r.origin)
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                (file, r.offset, r.payload.clone())
            })
            .collect()
    }

    #[test]
    fn glob_reads_files_in_sorted_order_with_line_offsets() {
        let dir = tempfile::tempdir().unwrap();
        // Written out of order: b first, then a.
        std::fs::write(dir.path().join("b.jsonl"), "b1\n\n  \nb4").unwrap();
        std::fs::write(dir.path().join("a.jsonl"), "a1\r\na2\n").unwrap();
        std::fs::write(dir.path().join("c.txt"), "ignored\n").unwrap();
        std::fs::create_dir(dir.path().join("d.jsonl")).unwrap();
        let mut src = FileSource::open("*.jsonl", dir.path()).unwrap();
        assert_eq!(src.describe(), "file *.jsonl (2 files)");
        // "a1\r\na2\n" is 7 bytes, "b1\n\n  \nb4" is 9.
        assert_eq!(src.size_hint(), Some(SizeHint::Bytes(16)));
        assert_eq!(src.position(), 0);
        // max = 3 splits the stream inside b.jsonl.
        let records = drain(&mut src, 3);
        let expected = [
            ("a.jsonl", 1, "a1"),
            ("a.jsonl", 2, "a2"),
            ("b.jsonl", 1, "b1"),
            ("b.jsonl", 4, "b4"),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|(f, o, p)| (f.to_string(), *o, p.to_string()))
            .collect();
        assert_eq!(summary(&records), expected);
        assert!(records.iter().all(|r| r.partition == 0));
        assert_eq!(
            &*records[0].origin,
            dir.path().join("a.jsonl").to_str().unwrap()
        );
        assert_eq!(src.position(), 16);
        // Done again after the end.
        assert_eq!(src.poll(&mut Vec::new(), 10).unwrap(), Poll::Done);
    }

    #[test]
    fn done_is_returned_only_from_an_empty_poll() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.csv"), "h\n1\n").unwrap();
        let mut src = FileSource::open("x.csv", dir.path()).unwrap();
        assert_eq!(src.describe(), "file x.csv");
        let mut out = Vec::new();
        assert_eq!(src.poll(&mut out, 100).unwrap(), Poll::Ready);
        assert_eq!(out.len(), 2);
        assert_eq!(src.poll(&mut out, 100).unwrap(), Poll::Done);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn absolute_path_ignores_base_dir_and_invalid_utf8_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.txt");
        std::fs::write(&path, b"ok\n\xffx\n").unwrap();
        let mut src = FileSource::open(path.to_str().unwrap(), Path::new("/nonexistent")).unwrap();
        let records = drain(&mut src, 10);
        assert_eq!(records[1].payload, "\u{fffd}x");
        assert_eq!(records[1].offset, 2);
    }

    #[test]
    fn missing_file_or_empty_glob_is_no_match() {
        let dir = tempfile::tempdir().unwrap();
        for pattern in ["missing.csv", "*.csv", "sub/[ab].csv"] {
            match FileSource::open(pattern, dir.path()) {
                Err(Error::NoMatch { pattern: p }) => assert_eq!(p, pattern),
                Err(e) => panic!("{pattern}: unexpected error {e}"),
                Ok(_) => panic!("{pattern}: unexpected match"),
            }
        }
        // A directory is not a file.
        assert!(matches!(
            FileSource::open(".", dir.path()),
            Err(Error::NoMatch { .. })
        ));
        assert!(matches!(
            FileSource::open("[", dir.path()),
            Err(Error::BadGlob { .. })
        ));
    }

    #[test]
    fn stdin_framing_from_a_reader() {
        let input: &'static [u8] = b"{\"a\":1}\r\n\n{\"a\":2}";
        let mut src = StdinSource::from_reader(Box::new(input), "stdin");
        assert_eq!(src.describe(), "stdin");
        let records = drain(&mut src, 10);
        let got: Vec<_> = records
            .iter()
            .map(|r| (&*r.origin, r.offset, r.payload.as_str()))
            .collect();
        assert_eq!(got, [("stdin", 1, "{\"a\":1}"), ("stdin", 3, "{\"a\":2}")]);
        assert_eq!(src.position(), 17);
    }
}
