//! Guest stdout and stderr: each line a plugin prints becomes a `tracing` event in the
//! tenant's log, rate-limited per stream.
//!
//! Owns the [`GuestLog`] sink given to WASI as stdout or stderr: line splitting, the cap
//! on line length and the count of dropped lines; and [`LogBudget`], the token bucket one
//! pipeline's guest stdout, guest stderr and the host's own lines about its plugin calls
//! share, so that a failing plugin cannot flood the log through either. It does not choose
//! where the log goes (that is the host's `tracing` subscriber) nor give plugins any other
//! capability. Writes never fail and never wait: a failing write would make a Rust
//! guest's `println!` panic, i.e. trap, and a waiting one would spend the guest's deadline.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

// `bytes::Bytes`, which `OutputStream::write` takes; axum re-exports it, so the host needs
// no direct dependency on `bytes` for this one type name.
use axum::body::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// The longest line kept, in bytes. Longer lines are cut here and end with a marker saying
/// how many bytes were cut; this also bounds the memory a guest can make the host hold by
/// never printing a newline.
pub const MAX_LINE_BYTES: usize = 4096;

/// How much a guest may write per `check-write` permit (the same as WASI's own stdio).
const WRITE_PERMIT: usize = 64 * 1024;

/// The least time between two "dropped N lines" warnings for one stream.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// The `tracing` target of guest output, so operators can route or filter it
/// (`RUST_LOG=weir::guest=off`).
pub const TARGET: &str = "weir::guest";

/// The log budget of one pipeline: `lines_per_second` lines a second, with bursts of up to
/// one second's worth, shared by its guest's stdout and stderr ([`GuestLog`]) and the
/// host's own "plugin call failed" lines. A line over the budget is dropped and counted.
///
/// [`LogBudget::for_pipeline`] returns the same budget for the same (tenant, pipeline) for
/// as long as any holder keeps it: the pipeline holds it for its life, so the budget is not
/// refilled when a trap drops the plugin's Store (and its streams) and a new one starts.
#[derive(Clone)]
pub struct LogBudget {
    inner: Arc<Mutex<Budget>>,
}

struct Budget {
    bucket: Bucket,
    /// Lines refused by [`LogBudget::admit`] since the last line it admitted.
    host_dropped: u64,
    /// Every line refused, host and guest.
    dropped: u64,
}

type Registry = BTreeMap<(String, String), Weak<Mutex<Budget>>>;

/// Live budgets by (tenant, pipeline).
static BUDGETS: Mutex<Registry> = Mutex::new(BTreeMap::new());

impl LogBudget {
    /// A budget of its own, shared with nothing else.
    pub fn new(lines_per_second: u32) -> Self {
        Self::new_at(lines_per_second, Instant::now())
    }

    fn new_at(lines_per_second: u32, now: Instant) -> Self {
        let rate = f64::from(lines_per_second);
        LogBudget {
            inner: Arc::new(Mutex::new(Budget {
                bucket: Bucket {
                    rate,
                    tokens: rate,
                    last: now,
                },
                host_dropped: 0,
                dropped: 0,
            })),
        }
    }

    /// The budget of `tenant`'s `pipeline` (tenant empty for `weir run`): the live one if any
    /// holder keeps it, with its rate set to `lines_per_second`, else a new one.
    pub fn for_pipeline(tenant: &str, pipeline: &str, lines_per_second: u32) -> Self {
        let mut budgets = BUDGETS.lock().unwrap_or_else(PoisonError::into_inner);
        budgets.retain(|_, b| b.strong_count() > 0);
        let key = (tenant.to_owned(), pipeline.to_owned());
        if let Some(inner) = budgets.get(&key).and_then(Weak::upgrade) {
            let budget = LogBudget { inner };
            budget.lock().bucket.rate = f64::from(lines_per_second);
            return budget;
        }
        let budget = LogBudget::new(lines_per_second);
        budgets.insert(key, Arc::downgrade(&budget.inner));
        budget
    }

    fn lock(&self) -> MutexGuard<'_, Budget> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes one of the host's lines from the budget: `Some(n)` to log it, `n` being how
    /// many host lines were dropped since the last one logged (say so in the line); `None`
    /// to drop it (counted).
    pub fn admit(&self) -> Option<u64> {
        let mut b = self.lock();
        if b.bucket.admit(Instant::now()) {
            Some(std::mem::take(&mut b.host_dropped))
        } else {
            b.host_dropped += 1;
            b.dropped += 1;
            None
        }
    }

    /// Takes one guest line from the budget; false if it is to be dropped (counted).
    fn admit_guest(&self, now: Instant) -> bool {
        let mut b = self.lock();
        let ok = b.bucket.admit(now);
        if !ok {
            b.dropped += 1;
        }
        ok
    }

    /// Lines dropped so far, the host's and the guest's.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }
}

/// One guest output stream (stdout or stderr) of one (tenant, pipeline), logged line by line.
///
/// Every line is an `info` event with target [`TARGET`] and fields `tenant`, `pipeline`,
/// `stream` and `line`. Lines take from the pipeline's [`LogBudget`] (`lines_per_second`,
/// shared with the other stream and the host's lines about the plugin); the rest are
/// dropped, counted in [`GuestLog::dropped`], and summarized in at most one `warn` per
/// second (and one when the log is dropped). Control characters in lines are escaped, so a
/// guest cannot forge log lines or terminal output.
///
/// Clones, and all the WASI streams made from it, share one line buffer and one counter:
/// give each (tenant, pipeline, stream) its own `GuestLog::new`. A last line without a
/// newline is logged when the last of them is dropped.
#[derive(Clone)]
pub struct GuestLog {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for GuestLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestLog")
            .field("tenant", &self.shared.tenant)
            .field("pipeline", &self.shared.pipeline)
            .field("stream", &self.shared.stream)
            .field("lines_per_second", &self.shared.lines_per_second)
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl GuestLog {
    /// A log for `stream` (`"stdout"` or `"stderr"`) of the plugin of `tenant`'s `pipeline`,
    /// keeping at most `lines_per_second` lines a second; 0 drops every line (still counted).
    ///
    /// Its budget is the pipeline's ([`LogBudget::for_pipeline`]).
    pub fn new(tenant: &str, pipeline: &str, stream: &'static str, lines_per_second: u32) -> Self {
        let budget = LogBudget::for_pipeline(tenant, pipeline, lines_per_second);
        Self::with_budget(
            tenant,
            pipeline,
            stream,
            lines_per_second,
            budget,
            Instant::now(),
        )
    }

    #[cfg(test)]
    fn new_at(
        tenant: &str,
        pipeline: &str,
        stream: &'static str,
        lines_per_second: u32,
        now: Instant,
    ) -> Self {
        Self::with_budget(
            tenant,
            pipeline,
            stream,
            lines_per_second,
            LogBudget::new_at(lines_per_second, now),
            now,
        )
    }

    /// A log taking from `budget`, which its caller may share with other streams.
    pub fn with_budget(
        tenant: &str,
        pipeline: &str,
        stream: &'static str,
        lines_per_second: u32,
        budget: LogBudget,
        now: Instant,
    ) -> Self {
        GuestLog {
            shared: Arc::new(Shared {
                tenant: tenant.to_owned(),
                pipeline: pipeline.to_owned(),
                stream,
                lines_per_second,
                dropped: AtomicU64::new(0),
                state: Mutex::new(LineState {
                    partial: Vec::new(),
                    cut: 0,
                    budget,
                    unreported: 0,
                    last_report: now,
                }),
                panics: None,
            }),
        }
    }

    /// The same log, also keeping the last Rust panic written to it in `capture` (for a
    /// stderr stream; see [`PanicCapture`]). Call before the log is shared.
    pub fn with_panic_capture(mut self, capture: PanicCapture) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.panics = Some(capture);
        }
        self
    }

    /// Lines dropped by the rate limit so far (not counting bytes cut from long lines).
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    fn handle(&self) -> Handle {
        Handle(Arc::clone(&self.shared))
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.handle())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.handle())
    }
}

struct Shared {
    tenant: String,
    pipeline: String,
    stream: &'static str,
    lines_per_second: u32,
    dropped: AtomicU64,
    state: Mutex<LineState>,
    /// Where the panics written to this stream are kept, if anywhere (stderr only).
    panics: Option<PanicCapture>,
}

struct LineState {
    /// The current line so far, at most [`MAX_LINE_BYTES`].
    partial: Vec<u8>,
    /// Bytes of the current line cut beyond [`MAX_LINE_BYTES`].
    cut: usize,
    budget: LogBudget,
    /// Lines dropped since the last warning.
    unreported: u64,
    last_report: Instant,
}

/// A token bucket: `rate` tokens a second, holding at most `rate` (one second's burst).
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn admit(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl LineState {
    fn push(&mut self, bytes: &[u8]) {
        let room = MAX_LINE_BYTES - self.partial.len();
        let kept = bytes.len().min(room);
        self.partial.extend_from_slice(&bytes[..kept]);
        self.cut += bytes.len() - kept;
    }

    fn has_line(&self) -> bool {
        !self.partial.is_empty() || self.cut > 0
    }

    /// Ends the current line: `Some(text)` if the rate limit admits it, else `None` and
    /// it is counted as dropped.
    fn end_line(&mut self, now: Instant, dropped: &AtomicU64) -> Option<String> {
        let line = if self.budget.admit_guest(now) {
            Some(render(&self.partial, self.cut))
        } else {
            self.unreported += 1;
            dropped.fetch_add(1, Ordering::Relaxed);
            None
        };
        self.partial.clear();
        self.cut = 0;
        line
    }

    /// The number of lines to report as dropped, if a report is due.
    fn report(&mut self, now: Instant, force: bool) -> Option<u64> {
        let due = force || now.saturating_duration_since(self.last_report) >= REPORT_EVERY;
        if self.unreported == 0 || !due {
            return None;
        }
        self.last_report = now;
        Some(std::mem::take(&mut self.unreported))
    }
}

/// A line's bytes as text: lossy UTF-8, without a trailing `\r`, control characters other
/// than tab escaped, and a marker if bytes were cut.
fn render(bytes: &[u8], cut: usize) -> String {
    let bytes = match bytes.strip_suffix(b"\r") {
        Some(b) if cut == 0 => b,
        _ => bytes,
    };
    let text = String::from_utf8_lossy(bytes);
    let mut line = String::with_capacity(text.len() + 32);
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            line.extend(c.escape_debug());
        } else {
            line.push(c);
        }
    }
    if cut > 0 {
        line.push_str(&format!("… [{cut} more bytes cut]"));
    }
    line
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, LineState> {
        // A panic elsewhere while holding the lock leaves the state usable; guest output
        // must not fail because of it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_at(&self, mut bytes: &[u8], now: Instant) {
        let mut lines = Vec::new();
        let report = {
            let mut state = self.lock();
            while let Some(newline) = bytes.iter().position(|&b| b == b'\n') {
                state.push(&bytes[..newline]);
                if let Some(panics) = &self.panics {
                    panics.line(&render(&state.partial, state.cut));
                }
                lines.extend(state.end_line(now, &self.dropped));
                bytes = &bytes[newline + 1..];
            }
            state.push(bytes);
            state.report(now, false)
        };
        // Logged outside the lock: a slow subscriber delays only this writer.
        for line in &lines {
            self.emit(line);
        }
        if let Some(n) = report {
            self.warn_dropped(n);
        }
    }

    fn emit(&self, line: &str) {
        tracing::info!(
            target: TARGET,
            tenant = %self.tenant,
            pipeline = %self.pipeline,
            stream = self.stream,
            line = %line,
        );
    }

    fn warn_dropped(&self, n: u64) {
        tracing::warn!(
            target: TARGET,
            tenant = %self.tenant,
            pipeline = %self.pipeline,
            stream = self.stream,
            dropped = n,
            "dropped {n} lines of guest {} over the limit of {} lines/s",
            self.stream,
            self.lines_per_second,
        );
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let now = Instant::now();
        let (line, report) = {
            let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
            let line = if state.has_line() {
                state.end_line(now, &self.dropped)
            } else {
                None
            };
            (line, state.report(now, true))
        };
        if let Some(line) = line {
            self.emit(&line);
        }
        if let Some(n) = report {
            self.warn_dropped(n);
        }
    }
}

/// One WASI stream handle onto a [`GuestLog`]; accepts every write at once.
struct Handle(Arc<Shared>);

impl OutputStream for Handle {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.0.write_at(&bytes, Instant::now());
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        // Lines are logged as soon as they are complete; a partial line waits for its
        // newline rather than being split at every flush (`print!` flushes).
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Handle {
    async fn ready(&mut self) {}
}

impl AsyncWrite for Handle {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.write_at(buf, Instant::now());
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The most lines of one panic message kept (a long `assert_eq!` diff is cut here).
const MAX_PANIC_LINES: usize = 8;

/// The last Rust panic a guest wrote to its stderr, as `panicked at <file>:<line>:<col>:
/// <message>`, for the error that reports the trap which follows it.
///
/// Rust's standard panic hook writes `thread '<name>' panicked at src/lib.rs:21:13:` and
/// then the message on the following lines (until a `note: run with RUST_BACKTRACE…`
/// line); older toolchains wrote `thread '<name>' panicked at 'message', src/lib.rs:21:13`
/// on one line. Both are recognized, from any Rust guest, without help from the SDK. Lines
/// are seen before the log's rate limit, so a guest that floods its log still has its
/// panic reported. The instance clears it before each call and takes it when a call traps.
#[derive(Clone, Default)]
pub struct PanicCapture {
    inner: Arc<Mutex<PanicState>>,
}

#[derive(Default)]
struct PanicState {
    /// The location and message lines of the panic being written.
    reading: Option<(String, Vec<String>)>,
    /// The last complete panic.
    last: Option<String>,
}

impl PanicCapture {
    fn lock(&self) -> MutexGuard<'_, PanicState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets any panic seen so far (before a call).
    pub fn clear(&self) {
        *self.lock() = PanicState::default();
    }

    /// The panic written since the last [`PanicCapture::clear`], if any, on one line.
    pub fn take(&self) -> Option<String> {
        let mut state = self.lock();
        let reading = state.reading.take();
        let text = reading.map(|(at, lines)| panic_text(&at, &lines));
        text.or_else(|| state.last.take())
    }

    /// Reads one complete line of the stream.
    fn line(&self, line: &str) {
        let mut state = self.lock();
        let header = line.starts_with("thread '") || line.starts_with("panicked at ");
        if let Some((_, rest)) = line.split_once("panicked at ").filter(|_| header) {
            // A new panic (a panic inside the panic hook starts another one).
            if let Some((location, lines)) = state.reading.take() {
                state.last = Some(panic_text(&location, &lines));
            }
            match rest.strip_suffix(':') {
                Some(location) => state.reading = Some((location.to_string(), Vec::new())),
                // The one-line form: `'message', file:line:col`.
                None => state.last = Some(format!("panicked at {rest}")),
            }
            return;
        }
        let Some((location, lines)) = state.reading.as_mut() else {
            return;
        };
        if line.starts_with("note: ") || lines.len() >= MAX_PANIC_LINES {
            let done = panic_text(location, lines);
            state.reading = None;
            state.last = Some(done);
        } else {
            lines.push(line.trim().to_string());
        }
    }
}

/// `panicked at <location>: <message lines joined by spaces>`.
fn panic_text(location: &str, lines: &[String]) -> String {
    let message: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .filter(|l| !l.is_empty())
        .collect();
    if message.is_empty() {
        format!("panicked at {location}")
    } else {
        format!("panicked at {location}: {}", message.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use tracing_subscriber::layer::SubscriberExt;

    /// One `weir::guest` event: its level and fields (the message under `message`).
    #[derive(Debug, Clone, PartialEq)]
    struct Record {
        level: tracing::Level,
        fields: BTreeMap<String, String>,
    }

    impl Record {
        fn field(&self, name: &str) -> &str {
            self.fields.get(name).map_or("", String::as_str)
        }
    }

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<Record>>>);

    struct Fields<'a>(&'a mut BTreeMap<String, String>);

    impl tracing::field::Visit for Fields<'_> {
        fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
            self.0.insert(field.name().into(), value.into());
        }
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            self.0.insert(field.name().into(), format!("{value:?}"));
        }
    }

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            if event.metadata().target() != TARGET {
                return;
            }
            let mut fields = BTreeMap::new();
            event.record(&mut Fields(&mut fields));
            self.0.lock().unwrap().push(Record {
                level: *event.metadata().level(),
                fields,
            });
        }
    }

    /// Runs `f` with guest events on this thread captured.
    fn capture(f: impl FnOnce()) -> Vec<Record> {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry().with(capture.clone());
        tracing::subscriber::with_default(subscriber, f);
        capture.0.lock().unwrap().clone()
    }

    fn lines(records: &[Record]) -> Vec<&str> {
        records
            .iter()
            .filter(|r| r.level == tracing::Level::INFO)
            .map(|r| r.field("line"))
            .collect()
    }

    fn write(stream: &mut dyn OutputStream, bytes: &'static [u8]) {
        assert!(stream.check_write().unwrap() > 0);
        stream.write(Bytes::from_static(bytes)).unwrap();
    }

    #[test]
    fn the_last_panic_is_kept_with_its_location_and_message() {
        let capture = PanicCapture::default();
        let log = GuestLog::new_at("acme", "p", "stderr", 0, Instant::now())
            .with_panic_capture(capture.clone());
        let mut err = log.p2_stream();
        // Dropped by the rate limit (0 lines/s), still seen by the capture.
        write(
            &mut *err,
            b"starting\nthread '<unnamed>' panicked at src/lib.rs:37:26:\n",
        );
        write(
            &mut *err,
            b"index out of bounds: the len is 3 but the index is 7\n",
        );
        write(
            &mut *err,
            b"note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n",
        );
        assert_eq!(
            capture.take().as_deref(),
            Some(
                "panicked at src/lib.rs:37:26: index out of bounds: the len is 3 but the index is 7"
            )
        );
        assert_eq!(capture.take(), None, "taken once");
        // A multi-line message cut short by the trap (no `note:` line), and a cleared one.
        write(&mut *err, b"thread 'main' panicked at src/a.rs:1:2:\nassertion `left == right` failed\n  left: 1\n");
        assert_eq!(
            capture.take().as_deref(),
            Some("panicked at src/a.rs:1:2: assertion `left == right` failed left: 1")
        );
        write(&mut *err, b"thread 'main' panicked at src/a.rs:1:2:\nold\n");
        capture.clear();
        assert_eq!(capture.take(), None);
        // The one-line form of older toolchains; a line merely mentioning a panic is no panic.
        write(
            &mut *err,
            b"thread 'main' panicked at 'boom', src/b.rs:3:4\n",
        );
        assert_eq!(
            capture.take().as_deref(),
            Some("panicked at 'boom', src/b.rs:3:4")
        );
        write(&mut *err, b"the user panicked at noon:\n");
        assert_eq!(capture.take(), None);
    }

    #[test]
    fn lines_are_split_across_writes_and_handles() {
        let records = capture(|| {
            let log = GuestLog::new("acme", "fares", "stdout", 1000);
            let mut a = log.p2_stream();
            let mut b = log.p2_stream();
            write(&mut *a, b"hel");
            write(&mut *b, b"lo\r\nwor");
            write(&mut *a, b"ld\n\npar");
            let mut w = Pin::from(log.async_stream());
            let mut cx = Context::from_waker(std::task::Waker::noop());
            let poll = w.as_mut().poll_write(&mut cx, b"tial");
            assert!(matches!(poll, Poll::Ready(Ok(4))));
            // "partial" has no newline: it is logged when the last handle goes.
        });
        assert_eq!(lines(&records), ["hello", "world", "", "partial"]);
        let first = &records[0];
        assert_eq!(first.field("tenant"), "acme");
        assert_eq!(first.field("pipeline"), "fares");
        assert_eq!(first.field("stream"), "stdout");
    }

    #[test]
    fn long_lines_are_cut_with_a_marker_and_control_characters_escaped() {
        let records = capture(|| {
            let log = GuestLog::new("acme", "long-lines", "stderr", 1000);
            let mut s = log.p2_stream();
            let long = vec![b'a'; 10_000];
            s.write(Bytes::copy_from_slice(&long[..3000])).unwrap();
            s.write(Bytes::copy_from_slice(&long[3000..])).unwrap();
            write(&mut *s, b"\nfake\x1b[31m\rline\ttab\n");
        });
        // 10 000 bytes, 4 096 kept: 5 904 cut.
        let expected = format!("{}… [5904 more bytes cut]", "a".repeat(4096));
        assert_eq!(
            lines(&records),
            [expected.as_str(), "fake\\u{1b}[31m\\rline\ttab"]
        );
    }

    #[test]
    fn lines_over_the_rate_are_dropped_counted_and_reported_once_a_second() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut dropped = Vec::new();
        let records = capture(|| {
            let log = GuestLog::new_at("acme", "fares", "stdout", 3, t0);
            // A full bucket of 3: lines 0, 1, 2 logged, 3..=9 dropped.
            log.shared.write_at(b"0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n", t0);
            dropped.push(log.dropped());
            // 0.5 s at 3/s refills 1.5 tokens: "a" logged, "b" dropped, 0.5 left.
            log.shared.write_at(b"a\nb\n", ms(500));
            dropped.push(log.dropped());
            // 0.5 s more: 0.5 + 1.5 = 2 tokens; "c" logged. A second since t0: one report
            // of the 8 lines dropped so far.
            log.shared.write_at(b"c\n", ms(1000));
            // 0.1 s more: 1 + 0.3 tokens; "d" logged, "e" and "f" dropped, with no report
            // due until the log goes away.
            log.shared.write_at(b"d\ne\nf\n", ms(1100));
            dropped.push(log.dropped());
        });
        assert_eq!(dropped, [7, 8, 10]);
        assert_eq!(lines(&records), ["0", "1", "2", "a", "c", "d"]);
        let warnings: Vec<&str> = records
            .iter()
            .filter(|r| r.level == tracing::Level::WARN)
            .map(|r| r.field("dropped"))
            .collect();
        assert_eq!(warnings, ["8", "2"]);
        let warning = records
            .iter()
            .find(|r| r.level == tracing::Level::WARN)
            .unwrap();
        assert_eq!(
            warning.field("message"),
            "dropped 8 lines of guest stdout over the limit of 3 lines/s"
        );
    }

    #[test]
    fn a_zero_rate_drops_every_line_through_the_stream() {
        let log = GuestLog::new("acme", "zero-rate", "stdout", 0);
        let records = capture(|| {
            let mut s = log.p2_stream();
            write(&mut *s, b"one\ntwo\nthree\n");
        });
        assert_eq!(log.dropped(), 3);
        assert!(lines(&records).is_empty());
    }

    #[test]
    fn writes_never_fail_or_wait() {
        let log = GuestLog::new("acme", "never-fail", "stdout", 0);
        assert!(!log.is_terminal());
        let mut s = log.p2_stream();
        // More than a permit, which a well-behaved caller would not do: still accepted.
        s.write(Bytes::from(vec![b'x'; 4 * WRITE_PERMIT])).unwrap();
        let permit = s.check_write().unwrap();
        s.write_zeroes(permit).unwrap();
        s.flush().unwrap();
        // What a Rust guest's `println!` does: blocking-write-and-flush.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(s.blocking_write_and_flush(Bytes::from_static(b"y\n")))
            .unwrap();
        let mut w = Pin::from(log.async_stream());
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(matches!(
            w.as_mut().poll_flush(&mut cx),
            Poll::Ready(Ok(()))
        ));
        assert!(matches!(
            w.as_mut().poll_shutdown(&mut cx),
            Poll::Ready(Ok(()))
        ));
        // One line: the x's, the zeroes and "y" had no newline between them.
        assert_eq!(log.dropped(), 1);
    }

    #[test]
    fn one_budget_per_pipeline_for_both_streams_and_the_host_across_restarts() {
        // The pipeline holds its budget; each Store's streams find it by name.
        let budget = LogBudget::for_pipeline("acme", "shared-budget", 4);
        let records = capture(|| {
            let first_store = GuestLog::new("acme", "shared-budget", "stdout", 4);
            write(&mut *first_store.p2_stream(), b"1\n2\n");
            drop(first_store);
            // A trap dropped the Store: the new one's stderr does not get a fresh budget.
            let second_store = GuestLog::new("acme", "shared-budget", "stderr", 4);
            write(&mut *second_store.p2_stream(), b"3\n");
            // One token left: the host's first line is admitted, the next two are not.
            assert_eq!(budget.admit(), Some(0));
            assert_eq!(budget.admit(), None);
            assert_eq!(budget.admit(), None);
            write(&mut *second_store.p2_stream(), b"4\n");
            assert_eq!(second_store.dropped(), 1);
        });
        assert_eq!(lines(&records), ["1", "2", "3"]);
        assert_eq!(budget.dropped(), 3);
        // Another pipeline's budget is its own.
        assert_eq!(LogBudget::for_pipeline("acme", "other", 4).admit(), Some(0));
        assert_eq!(
            LogBudget::for_pipeline("globex", "shared-budget", 4).dropped(),
            0
        );
    }
}
