//! Running a pipeline to its end (or a stop), with progress on a terminal.

use super::*;

pub(super) fn progress_bar(hint: Option<SizeHint>) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressStyle};
    match hint {
        Some(SizeHint::Bytes(n)) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        Some(SizeHint::Records(n)) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template(
                "{bar:40} {human_pos}/{human_len} events {per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner(),
    }
}

impl Pipeline {
    /// Runs until the source is exhausted, then flushes every open window.
    pub fn run(&mut self, progress: bool) -> anyhow::Result<Summary> {
        self.run_until(progress, &AtomicBool::new(false))
    }

    /// Runs until the source is exhausted (then flushes every open window) or `stop` is
    /// raised. A stop is seen between two batches: the batch in hand is read and placed,
    /// its firings after the stop are declined (their windows stay pending, like every
    /// other open window: they are not final, so they are not fired), and every sink is
    /// flushed. [`Pipeline::was_stopped`] then says so.
    pub fn run_until(&mut self, progress: bool, stop: &AtomicBool) -> anyhow::Result<Summary> {
        self.run_observed(progress, stop, &mut |_| {})
    }

    /// [`Pipeline::run_until`], calling `after_batch` with the pipeline after every batch
    /// (`weir run --metrics-addr` publishes its metrics there).
    pub fn run_observed(
        &mut self,
        progress: bool,
        stop: &AtomicBool,
        after_batch: &mut dyn FnMut(&Pipeline),
    ) -> anyhow::Result<Summary> {
        self.clocks.started = Instant::now();
        let bar = progress.then(|| progress_bar(self.input.source.size_hint()));
        loop {
            if stop.load(Ordering::Relaxed) {
                self.flags.stopped = true;
                self.drain_workers()?;
                self.flush_sinks()?;
                self.write_checkpoint()?;
                break;
            }
            let step = self.step_until(stop)?;
            after_batch(self);
            if step == Step::Finished {
                break;
            }
            if let Some(bar) = &bar {
                bar.set_position(self.input.source.position());
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        Ok(self.summary.clone())
    }
}
