//! Firing due windows: the `Emitter` that calls the plugin in chunks, writes rows or error
//! records, decides quarantine and declines what must wait (an interrupt, a quarantine, the
//! tenant's CPU budget).

use super::*;

pub(super) enum FireMode {
    Watermark(i64),
    Early,
    Flush,
}

/// Most events in one plugin call of a firing step: due windows are sent in chunks of at
/// most this many events (a window with more goes alone; an incremental window counts only
/// the events of its panes not accumulated yet), so one call stays well inside the plugin's
/// memory cap and CPU deadline.
pub const CALL_EVENTS: usize = 16 * 1024;

/// Most windows in one plugin call of a firing step.
pub const CALL_WINDOWS: usize = 2048;

/// Turns due windows into plugin calls and rows: whole-window plugins get the windows of a
/// chunk as groups of one call; incremental plugins get one plan per chunk that adds new
/// panes, merges pane states and finishes the windows.
pub(super) struct Emitter<'a> {
    pub(super) inputs: &'a [usize],
    pub(super) plugin: &'a mut dyn Plugin,
    pub(super) out: &'a mut dyn WindowSink,
    /// What this firing counted (windows fired, rows written, failed calls): the caller
    /// adds it to its own counters.
    pub(super) counted: Counters,
    /// The plugin's failures in a row and quarantine.
    pub(super) health: &'a mut Health,
    /// What else may hold the firing back, and where it logs.
    pub(super) gate: &'a Gate<'a>,
    /// The first sink error: every later firing is declined, so its window stays pending.
    pub(super) failed: Option<sink::Error>,
    /// How the plugin aggregates: whole windows, or incremental states over panes.
    pub(super) mode: AggregationMode,
    /// Windows whose rows are in the result sink's buffer, not yet committed, with their
    /// row counts: they count as fired only once [`Emitter::commit`] hands them to the OS.
    pub(super) uncommitted: Vec<(Due, u64)>,
    /// Where a window whose call failed is kept for the next version (`weir serve`).
    pub(super) kept: Option<&'a mut FailedWindows>,
    /// A candidate version computing the same windows, for comparison (`weir serve`).
    pub(super) shadow: Option<&'a mut shadow::Shadow>,
    /// The live rows of the windows in `uncommitted`, for the shadow.
    pub(super) written: Vec<shadow::Written>,
}

/// How a plugin aggregates a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AggregationMode {
    /// All of the window's events in one call (`aggregate`).
    Whole,
    /// States per pane, merged and finished by a plan (`step`); `pane` is the pane length,
    /// `None` for sessions, whose one pane is the whole session.
    Incremental {
        /// The pane length in milliseconds.
        pane: Option<i64>,
    },
}

impl AggregationMode {
    /// The mode of a plugin that describes itself as `info`, over windows of `kind`.
    pub(super) fn of(info: &PluginInfo, kind: crate::window::WindowKind) -> Self {
        match info.state_type {
            Some(_) => AggregationMode::Incremental { pane: kind.pane() },
            None => AggregationMode::Whole,
        }
    }
}

/// Builds an incremental plan's slots, pushing new panes' events into the plugin's batch.
pub(super) struct HostPlanner<'a> {
    pub(super) plan: &'a mut Plan,
    pub(super) batch: &'a mut plugin::BatchBuilder,
    pub(super) inputs: &'a [usize],
}

impl HostPlanner<'_> {
    pub(super) fn push(&mut self, slot: Slot) -> StateRef {
        self.plan.slots.push(slot);
        StateRef::Slot(self.plan.slots.len() as u32 - 1)
    }

    /// The slot index of a state, adding a `held` slot for bytes.
    pub(super) fn slot(&mut self, r: StateRef) -> u32 {
        match r {
            StateRef::Slot(i) => i,
            StateRef::Held(bytes) => match self.push(Slot::Held(bytes)) {
                StateRef::Slot(i) => i,
                StateRef::Held(_) => unreachable!("push returns a slot"),
            },
        }
    }
}

impl Planner for HostPlanner<'_> {
    fn fresh(&mut self, events: &[&StoredEvent]) -> StateRef {
        let offset = self.batch.len() as u32;
        for e in events {
            self.batch
                .push(e.ts, self.inputs.iter().map(|&i| &e.values[i]));
        }
        self.push(Slot::Fresh {
            offset,
            len: events.len() as u32,
        })
    }

    fn merge(&mut self, a: &StateRef, b: &StateRef) -> StateRef {
        let a = self.slot(a.clone());
        let b = self.slot(b.clone());
        self.push(Slot::Merge(a, b))
    }
}

impl Emitter<'_> {
    /// Whether firings are declined now: a sink failed, the pipeline is quarantined (the
    /// plugin is not called again until a new version), or the gate holds them
    /// ([`Gate::holds`]).
    pub(super) fn declining(&self) -> bool {
        self.failed.is_some() || self.health.quarantined().is_some() || self.gate.holds()
    }

    /// Fires the due windows in order, in chunks of at most [`CALL_EVENTS`] events and
    /// [`CALL_WINDOWS`] windows per plugin call. Every window is either fired (its rows or
    /// its error record were handed to the OS, [`Sink::commit`]) or declined (it stays
    /// pending); once one is declined, so is every later one.
    pub(super) fn emit_all(&mut self, operator: &mut WindowOperator, due: Vec<Due>) {
        let mut i = 0;
        while i < due.len() {
            if self.declining() {
                for &d in &due[i..] {
                    operator.declined(d);
                }
                return;
            }
            let mut events = 0usize;
            let mut end = i;
            while end < due.len() && end - i < CALL_WINDOWS {
                // The events this window adds to the call: all of them for a whole-window
                // plugin, only its panes not accumulated yet for an incremental one.
                let n = operator
                    .firing(due[end])
                    .map_or(0, |(f, stacks)| match self.mode {
                        AggregationMode::Incremental { pane: Some(_) } => {
                            stacks.unpushed_events(f.window, f.events)
                        }
                        _ => f.events.len(),
                    });
                if end > i && events + n > CALL_EVENTS {
                    break;
                }
                events += n;
                end += 1;
            }
            let chunk = &due[i..end];
            match self.mode {
                AggregationMode::Whole => self.emit_whole(operator, chunk),
                AggregationMode::Incremental { pane } => {
                    self.emit_incremental(operator, chunk, pane)
                }
            }
            self.commit(operator);
            i = end;
        }
    }

    /// Hands the rows of the windows written since the last commit to the OS (one
    /// `write(2)` per call's worth of rows, not per window) and marks those windows fired;
    /// if the commit fails, or a write failed before it, they stay pending instead, and
    /// every later window is declined.
    pub(super) fn commit(&mut self, operator: &mut WindowOperator) {
        if self.uncommitted.is_empty() {
            return;
        }
        if self.failed.is_none()
            && let Err(e) = self.out.commit()
        {
            self.failed = Some(e);
        }
        let written = std::mem::take(&mut self.written);
        if self.failed.is_none()
            && let Some(s) = self.shadow.as_deref_mut()
        {
            s.compare(operator, &written);
        }
        for (d, n) in std::mem::take(&mut self.uncommitted) {
            if self.failed.is_some() {
                operator.declined(d);
            } else {
                operator.fired(d);
                self.counted.rows_written += n;
                self.counted.windows_fired += 1;
            }
        }
    }

    /// One `aggregate` call for the chunk: its windows are groups of one batch.
    pub(super) fn emit_whole(&mut self, operator: &mut WindowOperator, chunk: &[Due]) {
        let mut groups = Vec::with_capacity(chunk.len());
        let mut fired = Vec::with_capacity(chunk.len());
        for &d in chunk {
            let Some((f, _)) = operator.firing(d) else {
                continue;
            };
            let b = self.plugin.batch();
            let offset = b.len() as u32;
            for e in f.events {
                b.push(e.ts, self.inputs.iter().map(|&i| &e.values[i]));
            }
            groups.push(plugin::Group {
                key: f.key.0.clone(),
                window: f.window,
                offset,
                len: b.len() as u32 - offset,
            });
            fired.push((d, f.revision));
        }
        let windows: Vec<(&[Value], Window)> =
            groups.iter().map(|g| (&g.key[..], g.window)).collect();
        let timer = self.shadow.is_some().then(shadow::Timer::start);
        let results = self.plugin.aggregate(&groups);
        self.live_call(timer);
        match results {
            Ok(results) => self.write_all(operator, &fired, &windows, results),
            Err(e) => self.retry_alone(operator, &fired, &windows, e),
        }
    }

    /// One `step` call for the chunk: each window's state is planned over its key's pane
    /// stacks. If the call fails, the stacks it would have filled are cleared (they refer
    /// to states the call did not return).
    pub(super) fn emit_incremental(
        &mut self,
        operator: &mut WindowOperator,
        chunk: &[Due],
        pane: Option<i64>,
    ) {
        let mut plan = Plan::default();
        let mut fired = Vec::with_capacity(chunk.len());
        for &d in chunk {
            let Some((f, stacks)) = operator.firing(d) else {
                continue;
            };
            let mut planner = HostPlanner {
                plan: &mut plan,
                batch: self.plugin.batch(),
                inputs: self.inputs,
            };
            let state = match pane {
                Some(pane) => stacks.window(f.window, pane, f.events, &mut planner),
                None => planner.fresh(&f.events.collect::<Vec<_>>()),
            };
            let slot = planner.slot(state);
            plan.finish.push(Finish {
                key: f.key.0.clone(),
                window: f.window,
                slot,
            });
            fired.push((d, f.revision));
        }
        // Every state the stacks still refer to is kept, once.
        let mut keep_of: std::collections::HashMap<u32, usize> = Default::default();
        for &(d, _) in &fired {
            if let Some(stacks) = operator.stacks_mut(d.key) {
                for r in stacks.refs_mut() {
                    if let StateRef::Slot(i) = r {
                        let next = keep_of.len();
                        keep_of.entry(*i).or_insert_with(|| {
                            plan.keep.push(*i);
                            next
                        });
                    }
                }
            }
        }
        let timer = self.shadow.is_some().then(shadow::Timer::start);
        let result = self.plugin.step(&plan);
        self.live_call(timer);
        for &(d, _) in &fired {
            let Some(stacks) = operator.stacks_mut(d.key) else {
                continue;
            };
            match &result {
                Ok(out) => {
                    for r in stacks.refs_mut() {
                        if let StateRef::Slot(i) = r
                            && let Some(state) = keep_of.get(i).and_then(|&k| out.states.get(k))
                        {
                            *r = StateRef::Held(state.clone());
                        }
                    }
                }
                Err(_) => stacks.clear(),
            }
        }
        let windows: Vec<(&[Value], Window)> =
            plan.finish.iter().map(|f| (&f.key[..], f.window)).collect();
        match result {
            Ok(out) => self.write_all(operator, &fired, &windows, out.rows),
            Err(e) => self.retry_alone(operator, &fired, &windows, e),
        }
    }

    /// Notes a live call's cost for the shadow, if one runs.
    fn live_call(&self, timer: Option<shadow::Timer>) {
        if let (Some(t), Some(s)) = (timer, self.shadow.as_deref()) {
            s.run().live_call(t.took());
        }
    }

    /// Writes the results of a call, one per window, in order; once one window cannot be
    /// written, it and every later one are declined.
    pub(super) fn write_all(
        &mut self,
        operator: &mut WindowOperator,
        fired: &[(Due, u32)],
        windows: &[(&[Value], Window)],
        results: Vec<plugin::GroupResult>,
    ) {
        for ((&(d, rev), &(key, window)), result) in fired.iter().zip(windows).zip(results) {
            if !self.window_done(operator, d, key, window, rev, result) {
                return self.decline_after(operator, fired, d);
            }
        }
    }

    /// The call for a chunk failed as a whole (a trap, a deadline): each window is called
    /// again alone, so a failure is recorded against the window that causes it, as with one
    /// call per window. A chunk of one window records the failure at once.
    pub(super) fn retry_alone(
        &mut self,
        operator: &mut WindowOperator,
        fired: &[(Due, u32)],
        windows: &[(&[Value], Window)],
        error: plugin::Error,
    ) {
        let mut first = (fired.len() == 1).then_some(error);
        for (&(d, rev), &(key, window)) in fired.iter().zip(windows) {
            if self.declining() {
                return self.decline_after(operator, fired, d);
            }
            let result = match first.take() {
                Some(e) => Err(e),
                None => match self.call_alone(operator, d, key, window) {
                    Some(result) => result,
                    None => continue,
                },
            };
            if !self.window_done(operator, d, key, window, rev, result) {
                return self.decline_after(operator, fired, d);
            }
        }
    }

    /// One window in a call of its own: whole-window, or incremental accumulated from its
    /// events (no pane states). `None` if the window is gone.
    pub(super) fn call_alone(
        &mut self,
        operator: &mut WindowOperator,
        d: Due,
        key: &[Value],
        window: Window,
    ) -> Option<plugin::GroupResult> {
        let (f, _) = operator.firing(d)?;
        let events: Vec<&StoredEvent> = f.events.collect();
        let first = |rows: Vec<plugin::GroupResult>| {
            rows.into_iter().next().unwrap_or_else(|| Ok(Vec::new()))
        };
        Some(if self.mode != AggregationMode::Whole {
            let mut one = Plan::default();
            let mut planner = HostPlanner {
                plan: &mut one,
                batch: self.plugin.batch(),
                inputs: self.inputs,
            };
            let state = planner.fresh(&events);
            let slot = planner.slot(state);
            one.finish.push(Finish {
                key: key.to_vec(),
                window,
                slot,
            });
            self.plugin.step(&one).and_then(|o| first(o.rows))
        } else {
            let b = self.plugin.batch();
            for e in &events {
                b.push(e.ts, self.inputs.iter().map(|&i| &e.values[i]));
            }
            let one = plugin::Group {
                key: key.to_vec(),
                window,
                offset: 0,
                len: events.len() as u32,
            };
            self.plugin.aggregate(&[one]).and_then(first)
        })
    }

    /// Declines `from` and every window after it in `fired`.
    pub(super) fn decline_after(
        &self,
        operator: &mut WindowOperator,
        fired: &[(Due, u32)],
        from: Due,
    ) {
        let at = fired
            .iter()
            .position(|(d, _)| *d == from)
            .unwrap_or(fired.len());
        for (d, _) in &fired[at..] {
            operator.declined(*d);
        }
    }

    /// Writes one window's rows (fired at the next [`Emitter::commit`]) or its error record
    /// (fired at once). Returns false, leaving the window to the caller to decline, when
    /// the pipeline got quarantined before it, or the sink failed.
    ///
    /// A window is handled only once its rows, or its error record, were handed to the
    /// operating system ([`Sink::commit`]): a window whose rows could not be written or
    /// committed stays pending, as does every later window of the step, and
    /// `rows_written` counts only committed rows. Rows of a window that failed part-way may
    /// be in the file already; the window fires again, whole, if the pipeline goes on (at
    /// least once).
    pub(super) fn window_done(
        &mut self,
        operator: &mut WindowOperator,
        d: Due,
        key: &[Value],
        window: Window,
        revision: u32,
        result: plugin::GroupResult,
    ) -> bool {
        if self.failed.is_some() || self.health.quarantined().is_some() {
            return false;
        }
        let written = match result {
            Ok(rows) => {
                self.health.succeeded();
                let n = rows.len() as u64;
                if self.shadow.is_some() {
                    self.written.push(shadow::Written {
                        due: d,
                        key: key.to_vec(),
                        window,
                        revision,
                        rows: rows.clone(),
                    });
                }
                self.out
                    .rows(key, window, revision, rows)
                    .map(|()| self.uncommitted.push((d, n)))
            }
            Err(e) => {
                self.counted.plugin_errors += 1;
                self.health.failed("aggregate", &e, self.gate);
                let written = self.out.error(key, window, revision, e);
                if written.is_ok() {
                    self.counted.windows_fired += 1;
                    if let Some(kept) = self.kept.as_deref_mut() {
                        kept.keep(operator, d);
                    }
                    operator.fired(d);
                }
                written
            }
        };
        match written {
            Ok(()) => true,
            Err(e) => {
                self.failed = Some(e);
                false
            }
        }
    }
}

/// The gate of a pipeline's own thread: its interrupt and CPU budget, whether a stop was
/// asked for, and where it logs.
fn gate<'a>(
    spec: &'a PipelineSpec,
    opts: &'a Options,
    log: &'a LogBudget,
    quarantine_after: u32,
    stop: bool,
) -> Gate<'a> {
    Gate {
        pipeline: &spec.cfg.name,
        quarantine_after,
        interrupt: opts.interrupt.as_deref(),
        cpu: opts.cpu.as_deref(),
        stop,
        log,
    }
}

impl Pipeline {
    pub(super) fn fire(&mut self, mode: FireMode) -> anyhow::Result<()> {
        if let FireMode::Watermark(_) = mode
            && self.declining()
        {
            // Every due window would be declined and handed back one by one, at every
            // watermark move of the batch: leave them where they are (and purge nothing);
            // the next firing that is not declined takes them.
            return Ok(());
        }
        let due = match mode {
            FireMode::Watermark(w) => self.shard.operator.take_due(Some(w)),
            FireMode::Early | FireMode::Flush => self.shard.operator.take_due(None),
        };
        let (counted, failed) = self.fire_into_sinks(due);
        self.summary.counters.add(&counted);
        match mode {
            FireMode::Watermark(w) => self.shard.operator.purge_due(w),
            FireMode::Early => {}
            FireMode::Flush => self.flags.flushed = self.shard.operator.finish(),
        }
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Plugin failures in a row that quarantine the pipeline (never for `weir run`).
    pub(super) fn quarantine_after(&self) -> u32 {
        if self.opts.quarantine {
            self.shard.limits().quarantine_after
        } else {
            u32::MAX
        }
    }

    /// Whether a firing now would decline every window from the first: the same reasons
    /// as [`Emitter::declining`] before any sink has failed.
    pub(super) fn declining(&self) -> bool {
        self.shard.health.quarantined().is_some() || self.gate().holds()
    }

    /// What may hold this thread's firings back.
    pub(super) fn gate(&self) -> Gate<'_> {
        gate(
            &self.spec,
            &self.opts,
            &self.log,
            self.quarantine_after(),
            self.flags.stop_requested,
        )
    }

    /// Fires `due`, windows of the shard's operator, into the sinks, as far as the gate
    /// lets it.
    pub(super) fn fire_into_sinks(&mut self, due: Vec<Due>) -> (Counters, Option<sink::Error>) {
        let version = self.opts.version_column.then(|| self.shard.version.clone());
        let gate = gate(
            &self.spec,
            &self.opts,
            &self.log,
            self.quarantine_after(),
            self.flags.stop_requested,
        );
        let mut writer = SinkWriter {
            out: &mut self.out,
            pipeline: &self.spec.cfg.name,
            key_names: &self.spec.cfg.schema.key,
            revisions: has_revisions(&self.spec.cfg),
            version: version.as_deref(),
        };
        self.shard.fire(due, &mut writer, &gate)
    }

    pub(super) fn error_record(
        &mut self,
        e: &plugin::Error,
        at: Option<(&Key, crate::window::Window, u32)>,
    ) -> anyhow::Result<()> {
        write_error_row(
            &mut *self.out.errors,
            &self.spec.cfg.name,
            &self.spec.cfg.schema.key,
            e,
            at,
        )?;
        Ok(())
    }
}
