//! Line-framed sources: files (one path or a glob, read in sorted path order as one stream)
//! and standard input.
//!
//! Owns opening, globbing and splitting bytes into line records with their origin and
//! 1-based line number. It does not parse records (`decode` does): invalid UTF-8 is
//! replaced lossily and left for the decoder to reject. A UTF-8 byte order mark at the
//! start of each file or stream is skipped. A line longer than `max_record_bytes` is never
//! held whole: the framer keeps its first bytes, counts the rest while skipping to the end
//! of the line, and reports it as [`Rejected`].

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::Duration;

use super::{
    BATCH_BYTES, Error, Poll, REJECTED_HEAD_BYTES, RawBatch, Rejected, SizeHint, Source,
    SourcePosition,
};
use crate::config::ByteSize;

/// Read buffer per open input; large reads keep the per-line cost low.
const BUF_CAPACITY: usize = 256 * 1024;

/// The UTF-8 byte order mark some editors put at the start of a file.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The default for `max_record_bytes` when a source is built without one (1 MiB, the
/// default of `[plugin.limits] max_record_bytes`).
pub const DEFAULT_MAX_RECORD_BYTES: u64 = 1 << 20;

/// What the framer produced.
enum Framed {
    /// A record of this many bytes, appended to the batch.
    Record(usize),
    /// A line too long to keep.
    TooLong(Rejected),
}

/// Splits a byte stream into records, one per non-blank line, each at most `limit` bytes.
struct Lines<R> {
    reader: BufReader<R>,
    origin: Arc<str>,
    /// Line number of the last line completed (blank lines count).
    line: u64,
    /// Bytes consumed, line terminators (and a byte order mark) included.
    consumed: u64,
    /// The current line so far: at most `limit + 1` bytes (the `\r` of a `\r\n`).
    buf: Vec<u8>,
    /// Bytes of the current line beyond what `buf` keeps.
    over: u64,
    /// The last byte of the current line seen, to tell `\r\n` from `\n`.
    last: u8,
    /// Most bytes of one record.
    limit: usize,
    /// Whether the start of the stream was checked for a byte order mark.
    bom_checked: bool,
}

impl<R: Read> Lines<R> {
    fn new(reader: R, origin: Arc<str>, limit: u64) -> Self {
        Lines {
            reader: BufReader::with_capacity(BUF_CAPACITY, reader),
            origin,
            line: 0,
            consumed: 0,
            buf: Vec::with_capacity(256),
            over: 0,
            last: 0,
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            bom_checked: false,
        }
    }

    /// Appends the next non-blank line to `out` as a record (or returns it as a rejection
    /// when too long); `None` at end of input. A reader error (`WouldBlock` from a reader
    /// with a timeout) leaves the line read so far in place: the next call goes on with it.
    fn next(&mut self, out: &mut RawBatch) -> io::Result<Option<Framed>> {
        loop {
            let avail = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                if self.buf.is_empty() && self.over == 0 {
                    return Ok(None);
                }
                // A last line without a newline.
                match self.finish(false, out) {
                    Some(f) => return Ok(Some(f)),
                    None => return Ok(None),
                }
            }
            if !self.bom_checked {
                self.bom_checked = true;
                if avail.starts_with(BOM) {
                    self.reader.consume(BOM.len());
                    self.consumed += BOM.len() as u64;
                    continue;
                }
            }
            let (n, newline) = match memchr::memchr(b'\n', avail) {
                Some(i) => (i + 1, true),
                None => (avail.len(), false),
            };
            let content = &avail[..n - usize::from(newline)];
            if newline && self.buf.is_empty() && self.over == 0 && content.len() <= self.limit {
                // The whole line is in the read buffer: framed from there, not copied twice.
                self.line += 1;
                let line = content.strip_suffix(b"\r").unwrap_or(content);
                let framed = push_line(out, &self.origin, self.line, line);
                self.reader.consume(n);
                self.consumed += n as u64;
                match framed {
                    Some(f) => return Ok(Some(f)),
                    None => continue,
                }
            }
            // Keep at most limit + 1 bytes (one more shows that the limit was passed, or
            // is the `\r` of a `\r\n`); count the rest.
            let room = self.limit.saturating_add(1).saturating_sub(self.buf.len());
            let kept = content.len().min(room);
            self.buf.extend_from_slice(&content[..kept]);
            self.over = self.over.saturating_add((content.len() - kept) as u64);
            if let Some(&b) = content.last() {
                self.last = b;
            }
            self.reader.consume(n);
            self.consumed += n as u64;
            if newline && let Some(f) = self.finish(true, out) {
                return Ok(Some(f));
            }
        }
    }

    /// Ends the current line, appending it to `out`; `None` for a blank line.
    fn finish(&mut self, newline: bool, out: &mut RawBatch) -> Option<Framed> {
        self.line += 1;
        let cr = newline && self.last == b'\r';
        let mut len = (self.buf.len() as u64).saturating_add(self.over);
        if cr {
            len -= 1;
        }
        let over = std::mem::take(&mut self.over);
        self.last = 0;
        let framed = if len > self.limit as u64 {
            let head = head(&self.buf, REJECTED_HEAD_BYTES);
            Some(Framed::TooLong(Rejected {
                origin: Arc::clone(&self.origin),
                offset: self.line,
                reason: format!(
                    "record of {len} bytes exceeds max_record_bytes ({}); raise [plugin.limits] max_record_bytes or fix the input",
                    ByteSize(self.limit as u64)
                ),
                head,
            }))
        } else {
            debug_assert_eq!(over, 0);
            let mut line = self.buf.as_slice();
            if cr {
                line = line.strip_suffix(b"\r").unwrap_or(line);
            }
            push_line(out, &self.origin, self.line, line)
        };
        self.buf.clear();
        if self.buf.capacity() > 64 * 1024 {
            // Do not keep a megabyte per source because one line was long.
            self.buf.shrink_to(256);
        }
        framed
    }

    /// Whether every byte read from the underlying reader has been framed, so that the
    /// next read may block.
    fn drained(&self) -> bool {
        self.reader.buffer().is_empty()
    }
}

/// Appends a line (without its terminator) to `out` as a record on partition 0, invalid
/// UTF-8 replaced; `None`, appending nothing, for a blank line.
fn push_line(out: &mut RawBatch, origin: &Arc<str>, line_no: u64, line: &[u8]) -> Option<Framed> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    match std::str::from_utf8(line) {
        Ok(s) => out.push(0, origin, line_no, s),
        Err(_) => out.push(0, origin, line_no, &String::from_utf8_lossy(line)),
    }
    Some(Framed::Record(line.len()))
}

/// At most `max` bytes of `bytes` as text (lossy), without a character cut in half at the
/// end.
fn head(bytes: &[u8], max: usize) -> String {
    let mut b = &bytes[..bytes.len().min(max)];
    if let Err(e) = std::str::from_utf8(b)
        && e.error_len().is_none()
    {
        b = &b[..e.valid_up_to()];
    }
    String::from_utf8_lossy(b).into_owned()
}

/// Appends framed lines to `out` (records) and `rejected` until `max` records, the byte
/// budget, the end of input or a reader error. Returns how many records were appended and
/// whether the input ended.
fn frame<R: Read>(
    lines: &mut Lines<R>,
    out: &mut RawBatch,
    rejected: &mut Vec<Rejected>,
    max: usize,
    bytes: &mut usize,
) -> io::Result<bool> {
    let mut appended = 0;
    while appended < max && *bytes < BATCH_BYTES {
        match lines.next(out)? {
            Some(Framed::Record(len)) => {
                *bytes += len;
                appended += 1;
            }
            Some(Framed::TooLong(r)) => {
                *bytes += r.head.len();
                rejected.push(r);
            }
            None => return Ok(true),
        }
    }
    Ok(false)
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
    max_record_bytes: u64,
    rejected: Vec<Rejected>,
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
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            rejected: Vec::new(),
            finished_bytes: 0,
            total_bytes,
        })
    }

    /// Sets the most bytes of one record (default [`DEFAULT_MAX_RECORD_BYTES`]); a longer
    /// line is skipped and reported by [`Source::take_rejected`].
    pub fn with_max_record_bytes(mut self, max: u64) -> Self {
        self.max_record_bytes = max;
        self
    }

    /// The files this source reads, in reading order.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|(p, _)| p.as_path())
    }

    /// Opens file `i` of the list at byte `bytes`, after `line` lines.
    fn resume_in(&mut self, i: usize, bytes: u64, line: u64) -> Result<(), Error> {
        let (path, _) = &self.files[i];
        let origin = path.display().to_string();
        let io_err = |source| Error::Io {
            origin: origin.clone(),
            source,
        };
        let mut file = File::open(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        if len < bytes {
            return Err(Error::Resume(format!(
                "{origin} has {len} bytes, fewer than the {bytes} already read when the checkpoint was written: the input was replaced"
            )));
        }
        file.seek(SeekFrom::Start(bytes)).map_err(io_err)?;
        let mut lines = Lines::new(file, origin.into(), self.max_record_bytes);
        lines.line = line;
        lines.consumed = bytes;
        lines.bom_checked = bytes > 0;
        self.current = Some(lines);
        self.next_file = i + 1;
        self.finished_bytes = self.files[..i].iter().map(|(_, len)| len).sum();
        Ok(())
    }
}

/// The first non-blank line of a file (a CSV header), its byte order mark removed, with its
/// 1-based line number.
fn first_line(path: &Path) -> io::Result<Option<(u64, String)>> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(None);
        }
        number += 1;
        let text = line.strip_prefix(BOM).unwrap_or(&line);
        let text = String::from_utf8_lossy(text);
        let text = text.trim_end_matches(['\n', '\r']);
        if !text.trim().is_empty() {
            return Ok(Some((number, text.to_string())));
        }
    }
}

impl Source for FileSource {
    fn poll(&mut self, out: &mut RawBatch, max: usize) -> Result<Poll, Error> {
        let mut appended = 0;
        let mut bytes = 0;
        while appended < max && bytes < BATCH_BYTES {
            let lines = match &mut self.current {
                Some(lines) => lines,
                None => {
                    let Some((path, _)) = self.files.get(self.next_file) else {
                        return Ok(if appended > 0 || !self.rejected.is_empty() {
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
                    self.current
                        .insert(Lines::new(file, origin.into(), self.max_record_bytes))
                }
            };
            let before = out.len();
            let ended = frame(lines, out, &mut self.rejected, max - appended, &mut bytes).map_err(
                |source| Error::Io {
                    origin: lines.origin.to_string(),
                    source,
                },
            )?;
            appended += out.len() - before;
            if ended {
                self.finished_bytes += lines.consumed;
                self.current = None;
            }
        }
        Ok(Poll::Ready)
    }

    fn take_rejected(&mut self, out: &mut Vec<Rejected>) {
        out.append(&mut self.rejected);
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

    fn checkpoint(&self) -> Option<SourcePosition> {
        Some(match &self.current {
            // A file is read line by line to the end of each line, so what was consumed
            // ends on a line boundary between two polls.
            Some(lines) => SourcePosition::File {
                path: self
                    .next_file
                    .checked_sub(1)
                    .map(|i| self.files[i].0.clone()),
                bytes: lines.consumed,
                line: lines.line,
            },
            None => SourcePosition::File {
                path: self.files.get(self.next_file).map(|(p, _)| p.clone()),
                bytes: 0,
                line: 0,
            },
        })
    }

    fn restore(&mut self, position: &SourcePosition, headers: &mut RawBatch) -> Result<(), Error> {
        let SourcePosition::File { path, bytes, line } = position else {
            return Err(Error::Resume(format!(
                "the checkpoint was written for another kind of source ({position:?})"
            )));
        };
        let Some(path) = path else {
            // Every file was read.
            self.next_file = self.files.len();
            self.current = None;
            self.finished_bytes = self.total_bytes;
            return Ok(());
        };
        let Some(i) = self.files.iter().position(|(p, _)| p == path) else {
            return Err(Error::Resume(format!(
                "{} was being read when the checkpoint was written, and source.path `{}` no longer matches it",
                path.display(),
                self.pattern
            )));
        };
        self.resume_in(i, *bytes, *line)?;
        if *bytes > 0 {
            let origin = path.display().to_string();
            let first = first_line(path).map_err(|source| Error::Io {
                origin: origin.clone(),
                source,
            })?;
            if let Some((number, text)) = first {
                headers.push(0, &Arc::from(origin.as_str()), number, &text);
            }
        }
        Ok(())
    }
}

/// How long a poll of [`StdinSource`] waits for input before returning with nothing, so
/// that the pipeline can see a stop request while the producer is silent.
pub const STDIN_WAIT: Duration = Duration::from_millis(100);

/// Chunks read by a reader thread, handed over through a bounded channel (at most
/// `STDIN_CHUNKS` chunks of `STDIN_CHUNK_BYTES` in flight).
const STDIN_CHUNK_BYTES: usize = 64 * 1024;
const STDIN_CHUNKS: usize = 4;

/// The receiving end of a reader thread: `read` waits at most [`STDIN_WAIT`], then fails
/// with `WouldBlock`.
struct ChannelReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
    ended: bool,
}

impl ChannelReader {
    /// Reads `reader` on its own thread. The thread ends at end of input, at a read error,
    /// or when the receiver is gone and its next chunk cannot be delivered; a thread blocked
    /// in a read of a pipe that never ends stays blocked until the process exits.
    fn spawn(mut reader: Box<dyn Read + Send>, origin: &str) -> Self {
        let (tx, rx): (SyncSender<io::Result<Vec<u8>>>, _) =
            std::sync::mpsc::sync_channel(STDIN_CHUNKS);
        let spawned = std::thread::Builder::new()
            .name(format!("read {origin}"))
            .spawn(move || {
                loop {
                    let mut chunk = vec![0; STDIN_CHUNK_BYTES];
                    match reader.read(&mut chunk) {
                        Ok(0) => return,
                        Ok(n) => {
                            chunk.truncate(n);
                            if tx.send(Ok(chunk)).is_err() {
                                return;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            // No thread: the channel's sender is gone, so reading fails with this error.
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            let _ = tx.send(Err(e));
            return ChannelReader {
                rx,
                chunk: Vec::new(),
                pos: 0,
                ended: false,
            };
        }
        ChannelReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
            ended: false,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.recv_timeout(STDIN_WAIT) {
                Ok(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.ended = true;
                    return Err(e);
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Err(RecvTimeoutError::Disconnected) => self.ended = true,
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Standard input, framed by line like a file (origin `stdin`), until end of input.
///
/// The input is read on its own thread; a poll waits at most [`STDIN_WAIT`] for input and
/// returns what it has as soon as the bytes already read are used up, so a slow producer
/// is not held back until `max` lines arrive, and a silent one does not keep the pipeline
/// from stopping. Like [`FileSource`], `Done` comes from a call that appended nothing.
pub struct StdinSource {
    lines: Lines<ChannelReader>,
    rejected: Vec<Rejected>,
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
            lines: Lines::new(
                ChannelReader::spawn(reader, origin),
                origin.into(),
                DEFAULT_MAX_RECORD_BYTES,
            ),
            rejected: Vec::new(),
            done: false,
        }
    }

    /// Sets the most bytes of one record (default [`DEFAULT_MAX_RECORD_BYTES`]).
    pub fn with_max_record_bytes(mut self, max: u64) -> Self {
        self.lines.limit = usize::try_from(max).unwrap_or(usize::MAX);
        self
    }
}

impl Default for StdinSource {
    fn default() -> Self {
        Self::new()
    }
}

impl Source for StdinSource {
    fn poll(&mut self, out: &mut RawBatch, max: usize) -> Result<Poll, Error> {
        let start = out.len();
        let start_rejected = self.rejected.len();
        let mut bytes = 0;
        while out.len() - start < max && bytes < BATCH_BYTES && !self.done {
            // One record at a time, so that a poll stops once the bytes read are used up.
            match frame(&mut self.lines, out, &mut self.rejected, 1, &mut bytes) {
                Ok(true) => self.done = true,
                Ok(false) => {
                    if self.lines.drained() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(source) => {
                    return Err(Error::Io {
                        origin: self.lines.origin.to_string(),
                        source,
                    });
                }
            }
        }
        let got = out.len() > start || self.rejected.len() > start_rejected;
        Ok(if self.done && !got && self.rejected.is_empty() {
            Poll::Done
        } else {
            Poll::Ready
        })
    }

    fn take_rejected(&mut self, out: &mut Vec<Rejected>) {
        out.append(&mut self.rejected);
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

    /// A record copied out of its batch.
    struct Rec {
        partition: u32,
        origin: Arc<str>,
        offset: u64,
        payload: String,
    }

    fn drain(source: &mut dyn Source, max: usize) -> Vec<Rec> {
        let mut out = RawBatch::default();
        let mut polls = 0;
        while source.poll(&mut out, max).unwrap() == Poll::Ready {
            polls += 1;
            assert!(polls < 1000, "source never finished");
        }
        out.iter()
            .map(|r| Rec {
                partition: r.partition,
                origin: Arc::clone(r.origin),
                offset: r.offset,
                payload: r.payload.to_string(),
            })
            .collect()
    }

    fn summary(records: &[Rec]) -> Vec<(String, u64, String)> {
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
        assert_eq!(src.poll(&mut RawBatch::default(), 10).unwrap(), Poll::Done);
    }

    #[test]
    fn done_is_returned_only_from_an_empty_poll() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.csv"), "h\n1\n").unwrap();
        let mut src = FileSource::open("x.csv", dir.path()).unwrap();
        assert_eq!(src.describe(), "file x.csv");
        let mut out = RawBatch::default();
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

    #[test]
    fn long_lines_are_rejected_with_their_head_and_never_held_whole() {
        let dir = tempfile::tempdir().unwrap();
        // Line 1 ok; line 2 is 5 000 'é' (10 000 bytes) then "\r\n"; line 3 is exactly at
        // the limit of 64 bytes; line 4 one byte over, at the end without a newline.
        let long = "é".repeat(5000);
        let at_limit = "x".repeat(64);
        let over = "y".repeat(65);
        let text = format!("ok\n{long}\r\n{at_limit}\r\n{over}");
        std::fs::write(dir.path().join("in.jsonl"), &text).unwrap();
        let mut src = FileSource::open("in.jsonl", dir.path())
            .unwrap()
            .with_max_record_bytes(64);
        let (mut records, mut rejected) = (RawBatch::default(), Vec::new());
        // max = 1 record per poll: rejections do not count against it.
        while src.poll(&mut records, 1).unwrap() == Poll::Ready {
            src.take_rejected(&mut rejected);
            assert!(records.len() + rejected.len() <= 4, "source never finished");
        }
        let got: Vec<_> = records
            .iter()
            .map(|r| (r.offset, r.payload.len()))
            .collect();
        assert_eq!(got, [(1, 2), (3, 64)]);
        let summary: Vec<_> = rejected
            .iter()
            .map(|r| (r.offset, r.reason.as_str(), r.head.as_str()))
            .collect();
        // The head is the first kept bytes (limit + 1 = 65 bytes: 32 'é' and half of one),
        // cut back to a character boundary.
        let head = "é".repeat(32);
        assert_eq!(
            summary,
            [
                (
                    2,
                    "record of 10000 bytes exceeds max_record_bytes (64B); raise [plugin.limits] max_record_bytes or fix the input",
                    head.as_str()
                ),
                (
                    4,
                    "record of 65 bytes exceeds max_record_bytes (64B); raise [plugin.limits] max_record_bytes or fix the input",
                    over.as_str()
                ),
            ]
        );
        assert_eq!(src.position(), text.len() as u64);
        // The framer kept at most limit + 1 bytes of the long line.
        assert!(src.current.is_none());
    }

    #[test]
    fn a_byte_order_mark_is_skipped_at_the_start_of_each_file_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.jsonl"),
            b"\xEF\xBB\xBF{\"a\":1}\n\xEF\xBB\xBFx\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("b.csv"), b"\xEF\xBB\xBFts,v\n1,2\n").unwrap();
        let mut src = FileSource::open("*", dir.path()).unwrap();
        let got: Vec<_> = drain(&mut src, 10)
            .into_iter()
            .map(|r| (r.offset, r.payload))
            .collect();
        assert_eq!(
            got,
            [
                (1, "{\"a\":1}".to_string()),
                // Only at the start: a later one is data, for the decoder to judge.
                (2, "\u{feff}x".to_string()),
                (1, "ts,v".to_string()),
                (2, "1,2".to_string()),
            ]
        );
        let bom: &'static [u8] = b"\xEF\xBB\xBF{\"s\":1}\n";
        let mut src = StdinSource::from_reader(Box::new(bom), "stdin");
        let got: Vec<_> = drain(&mut src, 10).into_iter().map(|r| r.payload).collect();
        assert_eq!(got, ["{\"s\":1}"]);
    }

    #[test]
    fn a_poll_stops_at_the_byte_budget() {
        let dir = tempfile::tempdir().unwrap();
        // 1 MiB lines: a budget of 8 MiB takes 8 of them per poll, not the 100 asked for.
        let line = "z".repeat(1 << 20);
        let text = vec![line.as_str(); 20].join("\n");
        std::fs::write(dir.path().join("big.jsonl"), text).unwrap();
        let mut src = FileSource::open("big.jsonl", dir.path()).unwrap();
        let mut out = RawBatch::default();
        assert_eq!(src.poll(&mut out, 100).unwrap(), Poll::Ready);
        assert_eq!(out.len(), BATCH_BYTES / (1 << 20));
        assert_eq!(drain(&mut src, 100).len(), 20 - BATCH_BYTES / (1 << 20));
    }

    /// A pipe whose writer stays open: yields its bytes, then blocks until dropped.
    struct OpenPipe(std::sync::mpsc::Receiver<Vec<u8>>);

    impl Read for OpenPipe {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.recv() {
                Ok(b) => {
                    buf[..b.len()].copy_from_slice(&b);
                    Ok(b.len())
                }
                Err(_) => Ok(0),
            }
        }
    }

    #[test]
    fn stdin_returns_within_the_wait_while_the_producer_is_silent() {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut src = StdinSource::from_reader(Box::new(OpenPipe(rx)), "stdin");
        tx.send(b"{\"a\":1}\n{\"a\":".to_vec()).unwrap();
        let mut out = RawBatch::default();
        let started = std::time::Instant::now();
        // The first poll gets the complete line; the partial one waits.
        while out.is_empty() {
            assert_eq!(src.poll(&mut out, 10).unwrap(), Poll::Ready);
            assert!(started.elapsed() < Duration::from_secs(5));
        }
        assert_eq!(out.len(), 1);
        // Nothing more comes: a poll returns empty after about STDIN_WAIT, not never.
        let t = std::time::Instant::now();
        assert_eq!(src.poll(&mut out, 10).unwrap(), Poll::Ready);
        assert_eq!(out.len(), 1);
        assert!(t.elapsed() < STDIN_WAIT * 20, "{:?}", t.elapsed());
        // The rest of the partial line arrives; then the end of input.
        tx.send(b"2}\n".to_vec()).unwrap();
        drop(tx);
        let rest = drain(&mut src, 10);
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].payload, "{\"a\":2}");
        assert_eq!(rest[0].offset, 2);
    }
}
