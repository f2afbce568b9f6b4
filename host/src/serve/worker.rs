//! The thread of one hosted pipeline: it runs batches, applies control messages (swap,
//! pause, resume, stop) between two batches, and publishes its status and metrics after
//! each. [`Worker`] is the host's handle on it; what a version is and where it comes from
//! is `deploy.rs`'s business.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::metrics::{Metrics, Publisher};
use super::strikes::Strikes;
use super::{ControlError, PipelineId, PipelineState};
use crate::pipeline::{Pipeline, Step, Summary};
use crate::plugin::CpuShare;
use crate::plugin::PluginInstance;

/// How long a deploy, pause or resume waits for the pipeline thread to take it.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a paused or quarantined pipeline polls its held source (far below librdkafka's
/// `max.poll.interval.ms`, 5 minutes by default).
const KEEP_ALIVE_EVERY: Duration = Duration::from_millis(200);

/// Locks `m`, also after a panic on another thread.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every value behind these locks is replaced whole, so a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A message to a pipeline thread; each is handled between two batches.
enum Control {
    Swap {
        plugin: Box<PluginInstance>,
        /// A version new to the pipeline (a deploy), which waits out the pipeline's
        /// [`Strikes`]; false for a rollback to a version that was live before.
        fresh: bool,
        ack: Sender<()>,
    },
    /// Runs `plugin` as the pipeline's shadow ([`Pipeline::start_shadow`]).
    Shadow {
        plugin: Box<PluginInstance>,
        run: Arc<crate::pipeline::ShadowRun>,
        ack: Sender<()>,
    },
    /// Ends the shadow run.
    Discard(Sender<()>),
    /// Makes the shadow live; answered with why it could not, if it could not.
    Promote(Sender<Result<(), String>>),
    Pause(Sender<()>),
    Resume(Sender<()>),
    Stop,
}

/// How a wait with nothing to run ended.
enum Held {
    /// A control message came.
    Message(Control),
    /// A fresh version's wait ([`Strikes`]) is over: it runs now.
    WaitOver,
    /// The host dropped its end of the channel.
    HostGone,
}

/// Called on a pipeline's thread when the pipeline becomes quarantined, with the live
/// version and the reason (the state directory records it).
pub(super) type OnQuarantine = Box<dyn Fn(&str, &str) + Send>;

/// How a pipeline thread starts: as the state directory left the pipeline (the default:
/// running, nothing recorded).
#[derive(Default)]
pub(super) struct Begin {
    /// Paused: it reads nothing until resumed.
    pub(super) paused: bool,
    /// Quarantined before the host restarted while its live version was live, with the
    /// reason: it reads nothing until a deploy or rollback, as a quarantine that happened
    /// now would.
    pub(super) quarantined: Option<String>,
    /// Told of every new quarantine.
    pub(super) on_quarantine: Option<OnQuarantine>,
}

/// What the pipeline thread publishes after every batch and every control message.
#[derive(Debug, Clone)]
pub(super) struct Status {
    /// Running, paused, quarantined, finished or failed.
    pub(super) state: PipelineState,
    /// Why it is quarantined or failed.
    pub(super) reason: Option<String>,
    /// Its counters.
    pub(super) summary: Summary,
    /// The id of the version windows fire with now.
    pub(super) live_version: String,
}

/// The host's handle on one pipeline thread.
pub(super) struct Worker {
    id: PipelineId,
    control: Mutex<Sender<Control>>,
    /// Raised after sending a control message, so the thread defers firings and ends its
    /// batch early (see `pipeline::Options::interrupt`).
    interrupt: Arc<AtomicBool>,
    status: Arc<Mutex<Status>>,
    metrics: Arc<Metrics>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Worker {
    /// Starts the thread of `pipeline`, built with `interrupt` as its
    /// `Options::interrupt`, running version `live_version`, its plugin's CPU charged to
    /// its tenant's budget through `cpu` (also its `Options::cpu`), paused or quarantined
    /// as `begin` says.
    pub(super) fn spawn(
        id: PipelineId,
        pipeline: Pipeline,
        interrupt: Arc<AtomicBool>,
        live_version: String,
        metrics: Arc<Metrics>,
        cpu: Arc<CpuShare>,
        begin: Begin,
    ) -> std::io::Result<Self> {
        let (state, reason) = match (&begin.quarantined, begin.paused) {
            (Some(reason), _) => (PipelineState::Quarantined, Some(reason.clone())),
            (None, true) => (PipelineState::Paused, None),
            (None, false) => (PipelineState::Running, None),
        };
        let status = Arc::new(Mutex::new(Status {
            state,
            reason,
            summary: Summary::default(),
            live_version,
        }));
        let (tx, rx) = mpsc::channel();
        let thread = Thread {
            p: pipeline,
            rx,
            interrupt: interrupt.clone(),
            status: status.clone(),
            publisher: Publisher::new(metrics.clone(), id.clone()),
            id: id.clone(),
            paused: begin.paused,
            quarantines: Quarantines {
                strikes: Strikes::default(),
                restored: begin.quarantined,
                on_new: begin.on_quarantine,
                told: false,
            },
            done: false,
            held: false,
            metrics: metrics.clone(),
            cpu,
        };
        let handle = std::thread::Builder::new()
            .name(format!("weir-{}-{}", id.tenant, id.pipeline))
            .spawn(move || thread.run())?;
        Ok(Worker {
            id,
            control: Mutex::new(tx),
            interrupt,
            status,
            metrics,
            thread: Mutex::new(Some(handle)),
        })
    }

    /// What the thread last published.
    pub(super) fn status(&self) -> Status {
        lock(&self.status).clone()
    }

    /// The id of the live version, as the thread last reported.
    pub(super) fn live_version(&self) -> String {
        lock(&self.status).live_version.clone()
    }

    /// Why the thread takes no control message, if it has failed or finished.
    pub(super) fn refusal(&self) -> Option<ControlError> {
        let s = lock(&self.status);
        s.state.refusal(&self.id, s.reason.as_deref())
    }

    fn send(&self, msg: Control) -> Result<(), ControlError> {
        // A failed or finished thread runs nothing again: refuse rather than answer as if
        // the swap, pause or resume did something.
        if let Some(refused) = self.refusal() {
            return Err(refused);
        }
        let sent = lock(&self.control)
            .send(msg)
            .map_err(|_| ControlError::Conflict(format!("pipeline {} has stopped", self.id)));
        // After the send: the thread lowers the flag before it drains its channel.
        self.interrupt.store(true, Ordering::Relaxed);
        sent
    }

    /// Hands a validated instance to the thread and waits until it is live: true when it
    /// is, false when the thread has not taken it within [`ANSWER_TIMEOUT`] (it will,
    /// between its next two batches). A `fresh` version (a deploy, not a rollback) of a
    /// pipeline quarantined repeatedly waits out its [`Strikes`] before it reads input.
    pub(super) fn swap(&self, plugin: PluginInstance, fresh: bool) -> Result<bool, ControlError> {
        let (ack, done) = mpsc::channel();
        self.send(Control::Swap {
            plugin: Box::new(plugin),
            fresh,
            ack,
        })?;
        self.metrics.swapped(&self.id);
        match done.recv_timeout(ANSWER_TIMEOUT) {
            Ok(()) => Ok(true),
            Err(RecvTimeoutError::Timeout) => Ok(false),
            Err(RecvTimeoutError::Disconnected) => {
                Err(ControlError::Conflict("the pipeline has stopped".into()))
            }
        }
    }

    /// Hands a validated candidate to the thread as its shadow and waits until it runs.
    pub(super) fn start_shadow(
        &self,
        plugin: PluginInstance,
        run: Arc<crate::pipeline::ShadowRun>,
    ) -> Result<(), ControlError> {
        let (ack, done) = mpsc::channel();
        self.send(Control::Shadow {
            plugin: Box::new(plugin),
            run,
            ack,
        })?;
        done.recv_timeout(ANSWER_TIMEOUT)
            .map_err(|_| ControlError::Conflict("the pipeline did not answer within 10 s".into()))
    }

    /// Ends the shadow run and waits until it has.
    pub(super) fn discard_shadow(&self) -> Result<(), ControlError> {
        let (ack, done) = mpsc::channel();
        self.send(Control::Discard(ack))?;
        done.recv_timeout(ANSWER_TIMEOUT)
            .map_err(|_| ControlError::Conflict("the pipeline did not answer within 10 s".into()))
    }

    /// Makes the shadow live and waits until it is.
    pub(super) fn promote_shadow(&self) -> Result<(), ControlError> {
        let (ack, done) = mpsc::channel();
        self.send(Control::Promote(ack))?;
        match done.recv_timeout(ANSWER_TIMEOUT) {
            Ok(Ok(())) => {
                self.metrics.swapped(&self.id);
                Ok(())
            }
            Ok(Err(why)) => Err(ControlError::Rejected(why)),
            Err(_) => Err(ControlError::Conflict(
                "the pipeline did not answer within 10 s".into(),
            )),
        }
    }

    /// Pauses or resumes the thread and waits until it has.
    pub(super) fn set_paused(&self, pause: bool) -> Result<(), ControlError> {
        let (ack, done) = mpsc::channel();
        self.send(if pause {
            Control::Pause(ack)
        } else {
            Control::Resume(ack)
        })?;
        done.recv_timeout(ANSWER_TIMEOUT)
            .map_err(|_| ControlError::Conflict("the pipeline did not answer within 10 s".into()))
    }

    /// Asks the thread to stop after flushing its sinks, without waiting.
    pub(super) fn stop(&self) {
        let _ = lock(&self.control).send(Control::Stop);
        self.interrupt.store(true, Ordering::Relaxed);
    }

    /// Waits for the thread to end.
    pub(super) fn join(&self) {
        if let Some(h) = lock(&self.thread).take() {
            let _ = h.join();
        }
    }
}

/// The pipeline thread's own state.
struct Thread {
    p: Pipeline,
    rx: Receiver<Control>,
    interrupt: Arc<AtomicBool>,
    status: Arc<Mutex<Status>>,
    publisher: Publisher,
    id: PipelineId,
    paused: bool,
    /// Finished or failed: nothing runs again, control messages are still answered.
    done: bool,
    /// Whether the source is held ([`Pipeline::hold_source`]): paused or quarantined.
    held: bool,
    /// Where its waits for the CPU budget are counted.
    metrics: Arc<Metrics>,
    /// This pipeline's share of its tenant's CPU budget.
    cpu: Arc<CpuShare>,
    /// Its quarantines: recent ones, one from before a restart, who is told of new ones.
    quarantines: Quarantines,
}

/// A pipeline thread's quarantines.
struct Quarantines {
    /// Its recent quarantines, whatever versions they were of, and the wait of a fresh
    /// version.
    strikes: Strikes,
    /// Quarantined before the host restarted (the reason): held like a quarantine until a
    /// swap.
    restored: Option<String>,
    /// Told of every new quarantine (the state directory).
    on_new: Option<OnQuarantine>,
    /// Whether the quarantine in force was told to `on_new`.
    told: bool,
}

impl Thread {
    /// Applies control messages between batches and runs batches while running, until
    /// stopped or the host is gone.
    fn run(mut self) {
        loop {
            // The flag is lowered first, so a message sent after this point raises it again.
            self.interrupt.store(false, Ordering::Relaxed);
            if !self.apply_control() || !self.throttle() {
                return;
            }
            self.step();
        }
    }

    /// A fresh version still waiting out the pipeline's strikes.
    fn waiting(&self) -> Option<Instant> {
        self.quarantines.strikes.waits_until(Instant::now())
    }

    /// Whether nothing runs now: paused, done, quarantined (now or before the restart), or
    /// a fresh version waiting out its strikes.
    fn idle(&self) -> bool {
        self.paused
            || self.done
            || self.p.quarantined().is_some()
            || self.quarantines.restored.is_some()
            || self.waiting().is_some()
    }

    /// Waits while the tenant's CPU budget is in debt (what its plugins used beyond its
    /// `cpu` cores), answering control messages meanwhile. False when the thread must end.
    fn throttle(&mut self) -> bool {
        loop {
            let Some(wait) = self.cpu.charge() else {
                return true;
            };
            self.metrics.throttled(&self.id, wait.as_secs_f64());
            let until = Instant::now() + wait;
            while let Some(left) = until.checked_duration_since(Instant::now()) {
                match self.rx.recv_timeout(left) {
                    Ok(msg) => {
                        let Some(ack) = self.handle(msg) else {
                            return false;
                        };
                        self.publish();
                        let _ = ack.send(());
                        // Paused, quarantined or swapped: the caller's loop decides again.
                        if self.idle() {
                            return true;
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => return false,
                }
            }
        }
    }

    /// Applies every pending control message: blocks while there is nothing to run, else
    /// just drains. False when the thread must end.
    fn apply_control(&mut self) -> bool {
        loop {
            let idle = self.idle();
            // A paused or quarantined pipeline holds its source (a Kafka consumer pauses its
            // partitions) and keeps it alive below; running again releases it.
            let hold = idle && !self.done;
            if hold != self.held {
                self.held = hold;
                self.p.hold_source(hold);
            }
            let msg = if idle {
                // Nothing runs until a message comes: make what was written so far visible
                // now (e.g. the error records behind a quarantine, the rows before a pause).
                if !self.done
                    && let Err(e) = self.p.flush_sinks()
                {
                    tracing::error!(tenant = %self.id.tenant, pipeline = %self.id.pipeline, error = %e, "flushing sinks");
                }
                match self.wait_held() {
                    Held::Message(m) => m,
                    Held::WaitOver => {
                        // Every message so far was taken while waiting: lower the flag
                        // their sends raised, as the top of `run` does, and look again.
                        self.interrupt.store(false, Ordering::Relaxed);
                        self.publish();
                        continue;
                    }
                    Held::HostGone => return false,
                }
            } else {
                match self.rx.try_recv() {
                    Ok(m) => m,
                    Err(TryRecvError::Empty) => return true,
                    Err(TryRecvError::Disconnected) => return false,
                }
            };
            let Some(ack) = self.handle(msg) else {
                return false;
            };
            self.publish();
            // Acknowledge once the new state is published, so that the caller's next look
            // (the API's answer to pause, resume or deploy) sees it.
            let _ = ack.send(());
        }
    }

    /// Waits for the next message while nothing runs, keeping a held source alive every
    /// [`KEEP_ALIVE_EVERY`], until a message comes, a fresh version's wait is over, or the
    /// host is gone.
    fn wait_held(&mut self) -> Held {
        loop {
            if !self.held {
                return self.rx.recv().map_or(Held::HostGone, Held::Message);
            }
            match self.rx.recv_timeout(KEEP_ALIVE_EVERY) {
                Ok(m) => return Held::Message(m),
                Err(RecvTimeoutError::Disconnected) => return Held::HostGone,
                Err(RecvTimeoutError::Timeout) => {
                    if self.quarantines.strikes.wait_ended(Instant::now()) {
                        return Held::WaitOver;
                    }
                    if let Err(e) = self.p.keep_source_alive() {
                        tracing::warn!(tenant = %self.id.tenant, pipeline = %self.id.pipeline, error = %format!("{e:#}"), "keeping the held source alive");
                    }
                    // The gauges go on while held: the watermark's lag grows, and records
                    // arriving in its partitions show as Kafka lag.
                    self.publisher.publish(&self.p, self.paused);
                }
            }
        }
    }

    /// Applies one message; returns whom to acknowledge, or `None` for [`Control::Stop`].
    fn handle(&mut self, msg: Control) -> Option<Sender<()>> {
        match msg {
            Control::Swap { plugin, fresh, ack } => {
                let fired = self.p.swap_plugin(*plugin);
                self.quarantines.restored = None;
                // The swap lifted any quarantine; a new version of a pipeline quarantined
                // again and again waits before it runs, a rollback does not.
                let wait = self.quarantines.strikes.new_version(fresh, Instant::now());
                if !wait.is_zero() {
                    tracing::warn!(tenant = %self.id.tenant, pipeline = %self.id.pipeline, quarantines = self.quarantines.strikes.count(), wait_s = wait.as_secs(), "new version waits before it runs: the pipeline was quarantined repeatedly");
                }
                self.publisher.restarts_baseline(&self.p);
                lock(&self.status).live_version = self.p.version().to_string();
                if let Err(e) = fired {
                    self.fail(&e);
                }
                Some(ack)
            }
            Control::Shadow { plugin, run, ack } => {
                if let Err(e) = self.p.start_shadow(*plugin, run) {
                    tracing::warn!(tenant = %self.id.tenant, pipeline = %self.id.pipeline, error = %format!("{e:#}"), "shadow not started");
                }
                Some(ack)
            }
            Control::Discard(ack) => {
                self.p.discard_shadow();
                Some(ack)
            }
            Control::Promote(answer) => {
                let promoted = self.promote().and_then(|done| {
                    done.then_some(()).ok_or_else(|| {
                        "no shadow runs on the pipeline: it stopped, or was discarded".to_string()
                    })
                });
                // The live version is published already (`promote`): the answer need not
                // wait for the rest; the acknowledgement this returns goes nowhere.
                let _ = answer.send(promoted);
                Some(mpsc::channel().0)
            }
            Control::Pause(ack) => {
                self.paused = true;
                Some(ack)
            }
            Control::Resume(ack) => {
                self.paused = false;
                // A version quarantined before the restart is not called until replaced.
                if self.quarantines.restored.is_none()
                    && let Err(e) = self.p.fire_due()
                {
                    self.fail(&e);
                }
                Some(ack)
            }
            Control::Stop => {
                if let Err(e) = self.p.flush_sinks() {
                    tracing::error!(tenant = %self.id.tenant, pipeline = %self.id.pipeline, error = %e, "flushing sinks at stop");
                }
                None
            }
        }
    }

    /// Makes the shadow live: a swap to its candidate, as a deploy's (no strikes wait: it
    /// ran beside the live version already). `Ok(false)` when no shadow runs.
    fn promote(&mut self) -> Result<bool, String> {
        let promoted = match self.p.promote_shadow() {
            Ok(None) => return Ok(false),
            Ok(Some(v)) => v,
            Err(e) => {
                let why = format!("{e:#}");
                // An error after the swap began fails the pipeline, as a swap's would.
                if self.p.version() != self.status_version() {
                    self.fail(&e);
                }
                return Err(why);
            }
        };
        self.quarantines.restored = None;
        self.publisher.restarts_baseline(&self.p);
        lock(&self.status).live_version = self.p.version().to_string();
        tracing::info!(tenant = %self.id.tenant, pipeline = %self.id.pipeline, version = %promoted, "shadow promoted: it is the live version");
        Ok(true)
    }

    /// The live version as last published.
    fn status_version(&self) -> String {
        lock(&self.status).live_version.clone()
    }

    /// Runs one batch, counts a new quarantine as a strike, and publishes what it did.
    fn step(&mut self) {
        let stepped = self.p.step();
        // A shadow whose own promotion policy holds becomes live between two batches.
        if stepped.is_ok()
            && self.p.shadow_promotable()
            && let Err(why) = self.promote()
        {
            tracing::warn!(tenant = %self.id.tenant, pipeline = %self.id.pipeline, %why, "shadow not promoted; it is discarded");
            self.p.discard_shadow();
        }
        let quarantined = self.p.quarantined().is_some();
        self.quarantines
            .strikes
            .observe(quarantined, Instant::now());
        match stepped {
            Ok(Step::More) => {}
            Ok(Step::Finished) => {
                self.done = true;
                lock(&self.status).state = PipelineState::Finished;
            }
            Err(e) => self.fail(&e),
        }
        self.publisher.restarts(&self.p);
        self.publish();
    }

    /// Marks the pipeline failed (an error outside the plugin: a sink, the source).
    fn fail(&mut self, e: &anyhow::Error) {
        self.done = true;
        tracing::error!(tenant = %self.id.tenant, pipeline = %self.id.pipeline, error = %format!("{e:#}"), "pipeline failed");
        let mut s = lock(&self.status);
        s.state = PipelineState::Failed;
        s.reason = Some(format!("{e:#}"));
    }

    /// Publishes metrics and status; the state follows quarantine and pause unless the
    /// pipeline is done. A new quarantine is told to `on_new` before it is
    /// published, so that what the API shows is already recorded.
    fn publish(&mut self) {
        self.publisher.publish(&self.p, self.paused);
        let state = (!self.done).then(|| self.state());
        let quarantined = self.p.quarantined().is_some();
        if quarantined
            && !self.quarantines.told
            && let Some(tell) = &self.quarantines.on_new
        {
            let reason = state.as_ref().and_then(|(_, r)| r.as_deref());
            tell(self.p.version(), reason.unwrap_or("quarantined"));
        }
        self.quarantines.told = quarantined;
        let mut s = lock(&self.status);
        s.summary = self.p.summary().clone();
        if let Some((state, reason)) = state {
            (s.state, s.reason) = (state, reason);
        }
    }

    /// The state and its reason while not done: quarantine (before the restart, or now),
    /// a fresh version's wait, pause.
    fn state(&self) -> (PipelineState, Option<String>) {
        if let Some(reason) = &self.quarantines.restored {
            return (PipelineState::Quarantined, Some(reason.clone()));
        }
        match (self.p.quarantined(), self.paused, self.waiting()) {
            (None, _, Some(t)) => (
                PipelineState::Quarantined,
                Some(format!(
                    "version {} waits {} s more before it reads input: this pipeline was quarantined {} times in a row (each new version then waits twice as long as the one before, up to {} s; a quiet {} minutes forgives them). A rollback to a version that was live before runs at once",
                    self.p.version(),
                    t.saturating_duration_since(Instant::now()).as_secs() + 1,
                    self.quarantines.strikes.count(),
                    Strikes::MAX_WAIT.as_secs(),
                    Strikes::FORGET_AFTER.as_secs() / 60
                )),
            ),
            (Some(q), _, _) => (
                PipelineState::Quarantined,
                Some(format!(
                    "{q}. It reads no input until you deploy a fixed version or roll back"
                )),
            ),
            (None, true, None) => (PipelineState::Paused, None),
            (None, false, None) => (PipelineState::Running, None),
        }
    }
}
