//! Checkpoints of one pipeline: when one is due, writing it, reading it back at start
//! (with the identity it must match) and restoring its state.

use super::*;

/// What a checkpoint of this pipeline must have been written for: the settings that give
/// its state, positions and sink lengths their meaning. The plugin is not among them (the
/// host holds the events; pane states are rebuilt), nor is `parallelism` (keys are
/// routed again).
pub(super) fn identity(cfg: &PipelineConfig, schema: &Schema, source: &dyn Source) -> Identity {
    let mut id = Identity::new();
    let mut put = |k: &str, v: String| {
        id.insert(k.to_string(), v);
    };
    put("name", cfg.name.clone());
    put(
        "window",
        format!(
            "{:?}, allowed_lateness {}",
            cfg.window_kind(),
            cfg.window.allowed_lateness
        ),
    );
    put("emit", format!("{:?}", cfg.emit.mode));
    put("key", format!("{:?}", cfg.schema.key));
    put(
        "fields",
        schema
            .fields
            .iter()
            .map(|(n, t)| format!("{n}: {t}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    put("timestamp", format!("{:?}", cfg.schema.timestamp));
    put("source", source.describe());
    let sink = |c: &SinkConfig| describe_sink(cfg, c);
    for role in SinkRole::ALL {
        put(
            role.key(),
            role.config(cfg).map_or_else(|| "(default)".into(), sink),
        );
    }
    id
}

/// Reads the pipeline's checkpoint at start (after removing it when the operator discards
/// it), checks it was written for this pipeline, and cuts every file sink back to the
/// length it recorded.
pub(super) fn read_checkpoint(
    cfg: &PipelineConfig,
    dir: &std::path::Path,
    identity: &Identity,
    opts: &Options,
) -> anyhow::Result<Option<Checkpoint>> {
    if opts.discard_checkpoint {
        discard_checkpoint(cfg, dir)?;
        return Ok(None);
    }
    let Some(cp) = checkpoint::read(dir)? else {
        return Ok(None);
    };
    let changes = checkpoint::differences(&cp.identity, identity);
    if !changes.is_empty() {
        return Err(checkpoint::Error::Changed {
            path: checkpoint::path_in(dir),
            changes: changes.join("; "),
        }
        .into());
    }
    for role in SinkRole::ALL {
        if let (Some(c), Some(&len)) = (role.config(cfg), cp.sinks.get(role.key())) {
            sink::cut_back(c, &cfg.base_dir, len).context(role.key())?;
        }
    }
    Ok(Some(cp))
}

/// Discards the pipeline's checkpoint: the run starts from the beginning of its source, so
/// every file sink that keeps what is there (`mode = "append"`) is first cut back to its
/// length when the run the checkpoint belongs to first started; rows are written again, not
/// twice. A checkpoint that cannot be read any more is discarded only when no such sink
/// holds more than nothing, else refused with the reason.
fn discard_checkpoint(cfg: &PipelineConfig, dir: &std::path::Path) -> anyhow::Result<()> {
    let appending = |c: &SinkConfig| {
        matches!(
            c,
            SinkConfig::File {
                mode: SinkMode::Append,
                ..
            }
        )
    };
    match checkpoint::read(dir) {
        Ok(Some(cp)) => {
            for role in SinkRole::ALL {
                if let (Some(c), Some(&len)) = (role.config(cfg), cp.start_sinks.get(role.key()))
                    && appending(c)
                {
                    sink::cut_back(c, &cfg.base_dir, len).context(role.key())?;
                }
            }
        }
        Ok(None) => {}
        Err(e) => {
            for role in SinkRole::ALL {
                if let Some(c @ SinkConfig::File { path, .. }) = role.config(cfg)
                    && appending(c)
                {
                    let path = cfg.resolve(path);
                    if std::fs::metadata(&path).is_ok_and(|m| m.len() > 0) {
                        anyhow::bail!(
                            "--discard-checkpoint: {e}; so {} ({}) cannot be cut back to where the run started, and the run would write its rows again after them. Move or empty that file first, or set mode = \"truncate\"",
                            path.display(),
                            role.key()
                        );
                    }
                }
            }
        }
    }
    checkpoint::discard(dir)?;
    tracing::warn!(pipeline = %cfg.name, dir = %dir.display(), "checkpoint discarded: the run starts from the beginning of its source, its appended file sinks cut back to where that run started");
    Ok(())
}

/// A sink's config for a run that resumes from a checkpoint: a file is never emptied (it
/// was cut back to its checkpointed length instead).
pub(super) fn resuming(c: &SinkConfig, resumed: bool) -> SinkConfig {
    match c {
        SinkConfig::File {
            path, format, sync, ..
        } if resumed => SinkConfig::File {
            path: path.clone(),
            format: *format,
            mode: SinkMode::Append,
            sync: *sync,
        },
        other => other.clone(),
    }
}

impl Pipeline {
    /// Sets up checkpoints and takes back the state of the one read at start, if any: the
    /// source's position (and the header of the input it resumes in), the watermarks and
    /// the counters now, the window state before the first batch.
    pub(super) fn checkpointing(
        mut self,
        identity: Identity,
        restored: Option<Checkpoint>,
    ) -> anyhow::Result<Self> {
        let Some(c) = &self.spec.cfg.checkpoint else {
            return Ok(self);
        };
        let mut cp = Checkpoints {
            dir: self.spec.cfg.resolve(&c.dir),
            every: Duration::from_millis(c.every.0.max(1) as u64),
            last: Instant::now(),
            identity,
            restore: None,
            start_sinks: BTreeMap::new(),
        };
        if let Some(r) = restored {
            cp.start_sinks = r.start_sinks.clone();
            let mut headers = RawBatch::with_capacity(1);
            self.input
                .source
                .restore(&r.source, &mut headers)
                .context("checkpoint")?;
            for h in headers.iter() {
                self.input.decoder.prime(&h);
            }
            self.watermarks.restore(&r.watermarks, Instant::now());
            self.summary.counters = r.counters;
            tracing::info!(
                pipeline = %self.spec.cfg.name,
                dir = %cp.dir.display(),
                source = ?r.source,
                watermark = r.watermarks.current,
                "resuming from the checkpoint"
            );
            if let Some(o) = &mut self.positions.offsets
                && !r.offsets.is_empty()
            {
                *o = postcard::from_bytes(&r.offsets).map_err(|e| {
                    anyhow::anyhow!("checkpoint: the source offsets do not decode: {e}")
                })?;
            }
            cp.restore = Some(r.state);
        }
        self.checkpoints = Some(cp);
        Ok(self)
    }

    /// Hands the window state read from the checkpoint to the operator or the workers
    /// (once, at build, after the workers started).
    pub(super) fn restore_state(&mut self) -> anyhow::Result<()> {
        let Some(blobs) = self.checkpoints.as_mut().and_then(|c| c.restore.take()) else {
            return Ok(());
        };
        let mut keys = Vec::new();
        for b in &blobs {
            keys.extend(
                WindowOperator::decode_snapshot(b)
                    .map_err(|e| anyhow::anyhow!("checkpoint: the window state does not decode: {e}; discard it with weir run --discard-checkpoint"))?,
            );
        }
        match &mut self.shards {
            Some(sh) => sh.restore(keys)?,
            None => {
                for k in keys {
                    self.shard.operator.restore(k);
                }
            }
        }
        // Nothing fires here: windows made pending again by late events fire at the next
        // watermark change, as they would have without the restart.
        Ok(())
    }

    /// Whether a checkpoint is due.
    pub(super) fn checkpoint_due(&self) -> bool {
        self.checkpoints
            .as_ref()
            .is_some_and(|c| c.last.elapsed() >= c.every)
    }

    /// Writes a checkpoint: every batch read is written out, the sinks are flushed and
    /// synced, and the state, watermarks and positions are written atomically.
    pub fn write_checkpoint(&mut self) -> anyhow::Result<()> {
        if self.checkpoints.is_none() {
            return Ok(());
        }
        let started = Instant::now();
        self.flush_sinks()?;
        let mut sinks = BTreeMap::new();
        for role in Outputs::ORDER {
            if let Some(s) = self.out.get_mut(role)
                && let Some(len) = s.checkpoint()?
            {
                sinks.insert(role.key().to_string(), len);
            }
        }
        let state = match &mut self.shards {
            Some(sh) => sh.snapshot()?,
            None => vec![
                self.shard
                    .operator
                    .snapshot()
                    .map_err(|e| anyhow::anyhow!("checkpoint: encoding window state: {e}"))?,
            ],
        };
        let Some(source) = self.input.source.checkpoint() else {
            anyhow::bail!(
                "checkpoint: {} cannot be read again from a position",
                self.input.source.describe()
            );
        };
        let offsets = match &self.positions.offsets {
            Some(o) => postcard::to_allocvec(o)
                .map_err(|e| anyhow::anyhow!("checkpoint: encoding source offsets: {e}"))?,
            None => Vec::new(),
        };
        let s = &self.summary;
        let Some(c) = &mut self.checkpoints else {
            return Ok(());
        };
        if c.start_sinks.is_empty() {
            c.start_sinks = sinks.clone();
        }
        let cp = Checkpoint {
            identity: c.identity.clone(),
            written_at_ms: chrono::Utc::now().timestamp_millis(),
            source,
            watermarks: self.watermarks.snapshot(),
            sinks,
            start_sinks: c.start_sinks.clone(),
            counters: s.counters,
            offsets,
            state,
        };
        let bytes = checkpoint::write(&c.dir, &cp)?;
        c.last = Instant::now();
        self.commit_offsets()?;
        tracing::debug!(
            pipeline = %self.spec.cfg.name,
            bytes,
            ms = started.elapsed().as_secs_f64() * 1e3,
            "checkpoint written"
        );
        Ok(())
    }
}
