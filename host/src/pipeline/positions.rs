//! A Kafka source's positions: which offsets may be committed (none still needed by a
//! window that has not fired), committing them, and partitions revoked in a rebalance.

use super::*;

impl Pipeline {
    /// How often sinks are flushed while input keeps coming (source offsets are committed
    /// at the first flush after each `commit_every`, [`Pipeline::flush_on_time`]).
    pub(super) fn flush_every(&self) -> Duration {
        self.input
            .source
            .commit_every()
            .map_or(SINK_FLUSH_EVERY, |c| c.min(SINK_FLUSH_EVERY))
    }

    /// Keeps the offsets of the records still needed when the source takes commits.
    pub(super) fn tracking_offsets(mut self) -> Self {
        if self.input.source.commits() {
            self.positions.offsets = Some(offsets::Offsets::default());
        }
        self
    }

    /// The watermark at which the last window containing an event at `ts` has fired and
    /// is purged: the end of its last window plus the allowed lateness. Sessions can grow
    /// without bound, so their events are never released (a restart replays them).
    pub(super) fn release_of(&self, ts: i64) -> i64 {
        match self.shard.operator.kind().ends(ts) {
            Ok(Some((_, last))) => last.saturating_add(self.spec.cfg.window.allowed_lateness.0),
            Ok(None) => i64::MAX,
            Err(_) => offsets::RELEASED,
        }
    }

    /// Notes when record `i` of the batch in hand, an event at `ts` placed in window state,
    /// is released.
    pub(super) fn placed(&mut self, i: usize, ts: i64) {
        if self.positions.offsets.is_some() {
            let release = self.release_of(ts);
            if let Some(slot) = self.positions.releases.get_mut(i) {
                *slot = release;
            }
        }
    }

    /// Records the batch's offsets with their release times.
    pub(super) fn record_offsets(&mut self, raws: &RawBatch) {
        if let Some(o) = &mut self.positions.offsets {
            for (i, raw) in raws.iter().enumerate() {
                let release = self
                    .positions
                    .releases
                    .get(i)
                    .copied()
                    .unwrap_or(offsets::RELEASED);
                o.record(raw.partition, raw.offset, release);
            }
        }
    }

    /// Commits the source's positions up to the records still needed, once the sinks
    /// acknowledged every row (called right after they are flushed).
    pub(super) fn commit_offsets(&mut self) -> anyhow::Result<()> {
        if self.positions.offsets.is_none() {
            return Ok(());
        }
        // A window held back (quarantine, a stop, a waiting control message) has not
        // fired: records it holds are not released, whatever the watermark.
        let mut w = self.watermarks.current();
        if self.shards.is_none() {
            w = w.min(self.shard.operator.first_pending_end().saturating_sub(1));
        }
        // After the end-of-input flush fired every window, every record is released, and
        // a later run over more input must not fire those windows again.
        let (release, floor) = if self.flags.flushed {
            (i64::MAX, self.flush_floor())
        } else {
            (w, w)
        };
        let transactional = self.out.results.transactional();
        let due = match &mut self.positions.offsets {
            Some(o) => o.due(release, floor, transactional, &self.positions.floors),
            None => Vec::new(),
        };
        let kept = if due.is_empty() { None } else { self.kept()? };
        if transactional {
            // Exactly-once: every partition's position and floor go in the result sink's
            // transaction, with the rows (a window can fire while no position moves); the
            // source commits nothing itself.
            let consumed = if due.is_empty() {
                None
            } else {
                self.input.source.consumed(&due, kept.as_ref())?
            };
            self.out.results.commit_transaction(consumed)?;
            if self.flags.positions_in_sink && !due.is_empty() {
                // The database holds the positions; the group's own commit shows the lag.
                self.input.source.commit(&due, None)?;
            }
        } else if !due.is_empty() {
            self.input.source.commit(&due, kept.as_ref())?;
        }
        self.clocks.last_commit = Instant::now();
        Ok(())
    }

    /// What a commit records of the windows kept after they fired, when windows can be
    /// ([`crate::source::Kept`]): with allowed lateness, early firings, or sessions.
    fn kept(&mut self) -> anyhow::Result<Option<crate::source::Kept>> {
        let cfg = &self.spec.cfg;
        let keeps = cfg.window.allowed_lateness.0 > 0
            || cfg.emit.mode == EmitMode::Update
            || matches!(self.spec.window, crate::window::WindowKind::Session { .. });
        if !keeps {
            return Ok(None);
        }
        let through = if self.flags.flushed {
            self.flush_floor()
        } else {
            self.watermarks.current()
        };
        let windows = match &mut self.shards {
            Some(sh) => sh.kept_windows(through)?,
            None => self.shard.operator.kept_windows(through),
        };
        Ok(Some(crate::source::Kept { through, windows }))
    }

    /// The replay floor once every window was flushed at the end of input: the end of the
    /// last window holding the latest event read, plus the allowed lateness. A later run
    /// over more input takes any window ending there or before as fired, and final: the
    /// flush dropped the windows, so an event for one of them inside its lateness would
    /// fire it again from revision 0, a second content for a row id already written; it
    /// is late instead.
    fn flush_floor(&self) -> i64 {
        let w = self.watermarks.current();
        let Some(t) = self.watermarks.max_event_time() else {
            return w;
        };
        let end = match self.spec.window {
            crate::window::WindowKind::Session { gap } => Some(t.saturating_add(gap)),
            kind => kind.ends(t).ok().flatten().map(|(_, last)| last),
        };
        end.map_or(w, |e| e.max(w))
            .saturating_add(self.spec.cfg.window.allowed_lateness.0)
    }

    /// Takes the partitions a consumer-group rebalance gave to another process: flushes the
    /// sinks and commits while they are still this consumer's (the revocation completes at
    /// the next poll), then drops, without firing, the window state of the keys read from
    /// them, their watermarks and their offsets. Their new owner reads them from the
    /// committed offsets and rebuilds those windows.
    pub(super) fn take_revoked(&mut self) -> anyhow::Result<()> {
        let mut revoked = Vec::new();
        self.input.source.take_revoked(&mut revoked);
        if revoked.is_empty() {
            return Ok(());
        }
        if self.checkpoints.is_some() {
            // Offsets are committed once a checkpoint holds what is before them.
            self.write_checkpoint()?;
        } else {
            self.flush_sinks()?;
        }
        let keys = match &mut self.shards {
            Some(sh) => sh.revoke(&revoked)?,
            None => self.shard.operator.drop_partitions(&revoked),
        };
        for &p in &revoked {
            if let Some(f) = self.positions.floors.get_mut(p as usize) {
                *f = None;
            }
            self.watermarks.forget(p);
            if let Some(o) = &mut self.positions.offsets {
                o.forget(p);
            }
        }
        tracing::info!(pipeline = %self.spec.cfg.name, partitions = ?revoked, keys, "partitions revoked: their open windows dropped, left to their new owner");
        Ok(())
    }
}
