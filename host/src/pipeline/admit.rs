//! Admitting one event on the pipeline's own thread: its key, its place in time (too far
//! ahead, replayed), its windows, and the late events.

use super::*;

/// An event let in: where it goes and at which watermark.
pub(super) struct Admitted {
    /// Its key.
    pub(super) key: Key,
    /// The watermark before it.
    pub(super) before: i64,
    /// The watermark it is placed at (a replay's floor may be above `before`).
    pub(super) at: i64,
    /// Whether its record is a replay the previous reader had read.
    pub(super) replayed: bool,
    /// Whether its partition's replay ends with it ([`WindowOperator::end_replay`]).
    pub(super) ends_replay: bool,
}

impl Pipeline {
    /// An event's key: its `schema.key` fields.
    pub(super) fn key_of(&self, values: &[Value]) -> Key {
        Key(self
            .spec
            .schema
            .key
            .iter()
            .map(|&k| values[k].clone())
            .collect())
    }

    /// Counts an event late for every window (at watermark `before`) and writes it to the
    /// late sink, if there is one.
    pub(super) fn late(&mut self, before: i64, ts: i64, values: &[Value]) -> anyhow::Result<()> {
        self.summary.counters.late += 1;
        if let Some(late) = &mut self.out.late {
            let mut row = vec![
                Cell::Str(&self.spec.cfg.name),
                Cell::Str("late for every window"),
                Cell::Time(before),
                Cell::Time(ts),
            ];
            row.extend(values.iter().map(Cell::Value));
            late.write(&row)?;
        }
        Ok(())
    }

    /// Admits record `i`'s event at `ts`, on either path: dead-letters it, before the
    /// watermark sees it (a runaway time never moves W), when it is too far ahead or, with
    /// `refuse_state`, when every shard would refuse it (a worker cannot take back a
    /// watermark move); else records when its position is released, builds its key and
    /// finds the watermark it is placed at.
    pub(super) fn admit(
        &mut self,
        i: usize,
        raw: &RawRecord<'_>,
        ts: i64,
        values: &[Value],
        refuse_state: bool,
    ) -> anyhow::Result<Option<Admitted>> {
        let refusal = self.too_far_ahead(ts).or_else(|| {
            refuse_state
                .then(|| self.shard.operator.refuses(ts))
                .flatten()
        });
        if let Some(reason) = refusal {
            self.dead_letter(raw, &reason)?;
            return Ok(None);
        }
        self.placed(i, ts);
        let key = self.key_of(values);
        let before = self.watermarks.current();
        let (at, replayed) = self.replay_floor(raw, before);
        let ends_replay = self.ends_replay(raw);
        Ok(Some(Admitted {
            key,
            before,
            at,
            replayed,
            ends_replay,
        }))
    }

    /// Places an admitted event on this thread's shard and fires what its watermark move
    /// made due.
    pub(super) fn place(
        &mut self,
        i: usize,
        raw: &RawRecord<'_>,
        ev: Event,
        now: Instant,
    ) -> anyhow::Result<()> {
        let ts = ev.ts;
        let Some(Admitted {
            key,
            before,
            at,
            replayed,
            ends_replay,
        }) = self.admit(i, raw, ts, &ev.values, false)?
        else {
            return Ok(());
        };
        // The whole event is kept, not just the plugin's inputs: a hot-swapped version may
        // read other fields of events already in open windows.
        let values = ev.values.into_boxed_slice();
        match self
            .shard
            .place(raw.partition, ts, key, values, at, replayed)
        {
            Placed::Stored => {}
            Placed::Late(values) => self.late(at, ts, &values)?,
            // Over a state limit: not stored, and it does not move time either.
            Placed::Refused(reason) => return self.dead_letter(raw, &reason),
        }
        if ends_replay {
            self.shard.operator.end_replay(raw.partition);
        }
        let w = self.watermarks.observe(raw.partition, ts, now);
        // Below `next_due` nothing fires and nothing is purged.
        if w != before && w >= self.shard.operator.next_due() {
            self.fire(FireMode::Watermark(w))?;
        }
        Ok(())
    }

    /// The watermark a record is placed at, and whether it is a replay: for a partition
    /// read again from a commit ([`Source::replay_floor`]), windows ending at or before the
    /// commit's watermark fired already and take none of its records, and a record the
    /// previous reader had read (below the commit's read position) is not reported late
    /// again.
    pub(super) fn replay_floor(&self, raw: &RawRecord<'_>, before: i64) -> (i64, bool) {
        match self.positions.floors.get(raw.partition as usize) {
            Some(Some(f)) => (before.max(f.watermark), raw.offset < f.read),
            _ => (before, false),
        }
    }

    /// Whether `raw` is the last record of its partition the previous reader had read (or
    /// the first after it, if that one was not admitted): the partition's replay is over.
    fn ends_replay(&mut self, raw: &RawRecord<'_>) -> bool {
        let p = raw.partition as usize;
        let open = self.positions.replaying.get(p).copied().unwrap_or(false);
        let read = match self.positions.floors.get(p) {
            Some(Some(f)) => f.read,
            _ => 0,
        };
        if open && raw.offset.saturating_add(1) >= read {
            self.positions.replaying[p] = false;
            return true;
        }
        false
    }

    /// Why an event at `ts` is too far ahead to be let in (`watermark.max_future`), if it is:
    /// ahead of wall clock for a live source, of the pipeline watermark for a bounded one.
    /// Before its first event a bounded source has no watermark yet; until it has one, wall
    /// clock stands in, so a runaway first record cannot set the watermark either.
    pub(super) fn too_far_ahead(&self, ts: i64) -> Option<String> {
        let max_future = self.spec.cfg.watermark.max_future;
        let wall = || (chrono::Utc::now().timestamp_millis(), "wall clock");
        let (reference, what) = if self.input.source.is_live() {
            wall()
        } else {
            match self.watermarks.current() {
                NO_WATERMARK => wall(),
                w => (w, "the watermark"),
            }
        };
        // Saturating: both are inside the valid range plus a bounded duration, far from
        // i64::MAX; saturation could only let a time through, never wrap.
        (ts > reference.saturating_add(max_future.0)).then(|| {
            format!(
                "event time {} is more than watermark.max_future ({max_future}) ahead of {what} ({}); fix the record's time, or raise watermark.max_future",
                format_rfc3339_ms(ts),
                format_rfc3339_ms(reference)
            )
        })
    }
}
