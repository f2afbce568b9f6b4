//! A batch's way in: decoding its records, the plugin's filter, first records that would
//! anchor the watermark alone, and dead letters for what cannot be taken in.

use super::*;

impl Pipeline {
    pub(super) fn decode_batch(
        &mut self,
        raws: &RawBatch,
        events: &mut Vec<(usize, Event)>,
    ) -> anyhow::Result<()> {
        for (i, raw) in raws.iter().enumerate() {
            match self.input.decoder.decode(&raw) {
                Ok(Some(ev)) => {
                    self.summary.counters.events_read += 1;
                    events.push((i, ev));
                }
                Ok(None) => {}
                Err(e) => {
                    self.summary.counters.events_read += 1;
                    self.dead_letter(&raw, &e.reason)?;
                }
            }
        }
        Ok(())
    }

    /// Sends a record to the dead letter, with the reason, and counts it; with workers,
    /// after the outputs of earlier input.
    pub(super) fn dead_letter(&mut self, raw: &RawRecord<'_>, reason: &str) -> anyhow::Result<()> {
        self.summary.counters.malformed += 1;
        if let Some(sh) = &mut self.shards {
            let pos = sh.next_pos();
            sh.pending.push(parallel::Out::DeadLetter {
                pos,
                origin: raw.origin.clone(),
                offset: raw.offset,
                payload: raw.payload.to_string(),
                reason: reason.to_string(),
            });
            return Ok(());
        }
        self.write_dead_letter(raw, reason)
    }

    pub(super) fn write_dead_letter(
        &mut self,
        raw: &RawRecord<'_>,
        reason: &str,
    ) -> anyhow::Result<()> {
        let row = [
            Cell::Str(&self.spec.cfg.name),
            Cell::Str(raw.origin),
            Cell::I64(raw.offset as i64),
            Cell::Str(reason),
            Cell::Str(raw.payload),
        ];
        self.out.dead_letter.write(&row)?;
        Ok(())
    }

    pub(super) fn filter_batch(
        &mut self,
        raws: &RawBatch,
        events: &mut Vec<(usize, Event)>,
    ) -> anyhow::Result<()> {
        if !self.shard.plugin.info().has_filter || events.is_empty() {
            return Ok(());
        }
        let b = self.shard.plugin.batch();
        for (_, ev) in events.iter() {
            b.push(ev.ts, self.shard.inputs.iter().map(|&i| &ev.values[i]));
        }
        match self.shard.plugin.filter() {
            Ok(keep) => {
                self.shard.health.succeeded();
                let mut k = keep.into_iter();
                let before = events.len();
                events.retain(|_| k.next().unwrap_or(true));
                self.summary.counters.filtered += (before - events.len()) as u64;
            }
            Err(e) => {
                // Nothing is dropped silently: the batch goes to the dead letter with the reason.
                self.summary.counters.plugin_errors += 1;
                let gate = Gate {
                    pipeline: &self.spec.cfg.name,
                    quarantine_after: self.quarantine_after(),
                    interrupt: None,
                    cpu: None,
                    stop: false,
                    log: &self.log,
                };
                self.shard.health.failed("filter", &e, &gate);
                match &mut self.shards {
                    Some(sh) => {
                        let pos = sh.next_pos();
                        sh.pending.push(parallel::Out::FilterError {
                            pos,
                            error: e.clone(),
                        });
                    }
                    None => self.error_record(&e, None)?,
                }
                let reason = format!("plugin filter failed: {e}");
                for (i, _) in std::mem::take(events) {
                    self.dead_letter(&raws.get(i), &reason)?;
                }
            }
        }
        Ok(())
    }

    /// Before a bounded source's watermark exists, its first record would anchor it alone:
    /// one record at epoch 0 would make every later one "too far ahead", one two years
    /// ahead would make every later one late. So the first record must agree with the
    /// records read after it ([`crate::time::outlying_anchor`] over up to
    /// [`crate::time::ANCHOR_WITNESSES`] of this batch): one that lies more than
    /// `watermark.max_future` from most of them goes to the dead letter with the reason, and
    /// the next record is the candidate. Live sources compare with wall clock instead.
    pub(super) fn refuse_outlying_anchors(
        &mut self,
        raws: &RawBatch,
        events: &mut Vec<(usize, Event)>,
    ) -> anyhow::Result<()> {
        if self.input.source.is_live() || self.watermarks.current() != NO_WATERMARK {
            return Ok(());
        }
        let max_future = self.spec.cfg.watermark.max_future;
        let mut at = 0;
        while at < events.len() {
            let ts = events[at].1.ts;
            // Too far ahead of wall clock: `place` dead-letters it; the next one is up.
            if self.too_far_ahead(ts).is_some() {
                at += 1;
                continue;
            }
            let witnesses: Vec<i64> = events[at + 1..]
                .iter()
                .map(|(_, e)| e.ts)
                .filter(|&t| self.too_far_ahead(t).is_none())
                .take(crate::time::ANCHOR_WITNESSES)
                .collect();
            let Some((way, against)) = crate::time::outlying_anchor(ts, &witnesses, max_future.0)
            else {
                return Ok(());
            };
            let (i, _) = events.remove(at);
            let way = match way {
                crate::time::Outlier::Behind => "behind",
                crate::time::Outlier::Ahead => "ahead of",
            };
            let reason = format!(
                "event time {} is more than watermark.max_future ({max_future}) {way} {against} of the {} records read after it; as the first record it would anchor the watermark there, so it is left out: fix the record's time",
                format_rfc3339_ms(ts),
                witnesses.len()
            );
            self.dead_letter(&raws.get(i), &reason)?;
        }
        Ok(())
    }
}
