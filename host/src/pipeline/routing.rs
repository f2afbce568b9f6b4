//! The pipeline's side of running with worker threads: routing a batch's events to the
//! workers that own their keys, and writing what the workers fired in input order.

use super::*;

impl Pipeline {
    /// [`Pipeline::step`] with workers: routes the batch's events to the workers that own
    /// their keys, with the watermark changes, then writes the outputs of the previous
    /// batch (of every batch at the end of input).
    pub(super) fn step_parallel(
        &mut self,
        raws: &mut RawBatch,
        events: &mut Vec<(usize, Event)>,
        poll: Poll,
    ) -> anyhow::Result<Step> {
        let now = Instant::now();
        let n = self.shards.as_ref().map_or(1, parallel::Shards::len);
        let mut work: Vec<Vec<parallel::Routed>> = (0..n)
            .map(|_| Vec::with_capacity(events.len() / n + 1))
            .collect();
        let mut changes = Vec::new();
        let mut ends = Vec::new();
        for (i, ev) in events.drain(..) {
            let raw = raws.get(i);
            let ts = ev.ts;
            // What a worker would refuse whatever its state is refused here, before the
            // watermark sees it, as on one thread.
            let Some(Admitted {
                key,
                before,
                at,
                replayed,
                ends_replay,
            }) = self.admit(i, &raw, ts, &ev.values, true)?
            else {
                continue;
            };
            let Some(sh) = self.shards.as_mut() else {
                break;
            };
            let pos = sh.next_pos();
            work[sh.shard_of(&key)].push(parallel::Routed {
                pos,
                raw: i as u32,
                ts,
                key,
                values: ev.values.into_boxed_slice(),
                before: at,
                partition: raw.partition,
                replayed,
            });
            if ends_replay {
                ends.push((sh.next_pos(), raw.partition));
            }
            let w = self.watermarks.observe(raw.partition, ts, now);
            if w != before {
                changes.push((sh.next_pos(), w));
            }
        }
        let every = Duration::from_millis(self.spec.cfg.emit.every.0.max(1) as u64);
        let early_due = self.spec.cfg.emit.mode == EmitMode::Update
            && self.clocks.last_early.elapsed() >= every;
        if early_due {
            self.clocks.last_early = Instant::now();
        }
        let Some(sh) = self.shards.as_mut() else {
            anyhow::bail!("the pipeline's workers are gone");
        };
        let early = early_due.then(|| sh.next_pos());
        let flush = (poll == Poll::Done).then(|| sh.next_pos());
        self.record_offsets(raws);
        let Some(sh) = self.shards.as_mut() else {
            anyhow::bail!("the pipeline's workers are gone");
        };
        sh.dispatch(work, changes, ends, early, flush, raws)?;
        if poll == Poll::Ready {
            // One batch stays with the workers while the next one is read.
            self.write_workers(1)?;
            if self.clocks.last_flush.elapsed() >= self.flush_every() {
                self.flush_on_time()?;
            }
            return Ok(Step::More);
        }
        self.drain_workers()?;
        self.flags.flushed = self.shards.as_ref().is_some_and(parallel::Shards::finished);
        self.flush_sinks()?;
        anyhow::ensure!(
            self.flags.flushed,
            "the end-of-input flush left windows pending on a worker"
        );
        Ok(Step::Finished)
    }

    /// Writes the outputs of every batch the workers have.
    pub(super) fn drain_workers(&mut self) -> anyhow::Result<()> {
        self.write_workers(0)
    }

    /// Writes the outputs of the batches the workers have, oldest first, until `keep`
    /// are left with them.
    pub(super) fn write_workers(&mut self, keep: usize) -> anyhow::Result<()> {
        loop {
            let merged = match &mut self.shards {
                Some(sh) if sh.in_flight() > keep => sh.collect()?,
                _ => return Ok(()),
            };
            let Some(merged) = merged else {
                return Ok(());
            };
            let raws = self.write_merged(merged)?;
            if let Some(sh) = &mut self.shards {
                sh.recycle(raws);
            }
        }
    }

    /// Writes one batch's merged outputs to the sinks, counting them, and hands back its
    /// records.
    pub(super) fn write_merged(&mut self, merged: parallel::Merged) -> anyhow::Result<RawBatch> {
        use parallel::Out;
        let parallel::Merged {
            outs,
            counted,
            raws,
        } = merged;
        let revisions = has_revisions(&self.spec.cfg);
        for out in outs {
            match out {
                Out::Late {
                    before, ts, values, ..
                } => self.late(before, ts, &values)?,
                Out::Refused { raw, reason, .. } => {
                    self.summary.counters.malformed += 1;
                    self.write_dead_letter(&raws.get(raw as usize), &reason)?;
                }
                Out::DeadLetter {
                    origin,
                    offset,
                    payload,
                    reason,
                    ..
                } => {
                    let raw = RawRecord {
                        partition: 0,
                        origin: &origin,
                        offset,
                        payload: &payload,
                        timestamp: None,
                    };
                    self.write_dead_letter(&raw, &reason)?;
                }
                Out::FilterError { error, .. } => self.error_record(&error, None)?,
                Out::Fired {
                    window,
                    key,
                    revision,
                    result,
                    ..
                } => {
                    let mut writer = SinkWriter {
                        out: &mut self.out,
                        pipeline: &self.spec.cfg.name,
                        key_names: &self.spec.cfg.schema.key,
                        revisions,
                        version: self.opts.version_column.then_some(&*self.shard.version),
                    };
                    match result {
                        Ok(rows) => writer.rows(&key.0, window, revision, rows)?,
                        Err(e) => writer.error(&key.0, window, revision, e)?,
                    }
                }
            }
        }
        self.out.results.commit()?;
        // Counted once, by the Emitters that fired them, and added once they are written.
        self.summary.counters.add(&counted);
        Ok(raws)
    }
}
