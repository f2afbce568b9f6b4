//! Shadow runs under `weir serve`: a candidate version validated as a deploy is, run by the
//! pipeline's thread beside the live version ([`crate::pipeline::ShadowRun`]), its diff read
//! at any time, then promoted (a hot swap to it) or discarded. Both go into the version
//! history. The engine computes and compares; this module decides what a shadow is for a
//! pipeline: its entry, its history, its promotion's bookkeeping.

use std::sync::Arc;

use super::deploy::{Target, prepare};
use super::registry::{PipelineEntry, Removals};
use super::worker::lock;
use super::{ControlError, Host, VersionStatus, VersionView};
use crate::pipeline::ShadowRun;
use crate::plugin::Plugin as _;
use crate::serve::control::{ShadowOptions, ShadowState, ShadowView};

/// A pipeline's last shadow run, as the host keeps it.
pub(super) struct ShadowEntry {
    /// Where it stands (running until promoted, discarded or stopped).
    state: ShadowState,
    /// The candidate's version id.
    version: String,
    /// What the pipeline's thread reports into.
    run: Arc<ShadowRun>,
    /// The output columns the candidate's rows would have live, or why they may not
    /// replace the live version's: a promotion is refused with it.
    columns: Result<Vec<String>, String>,
}

impl PipelineEntry {
    /// Notes what the pipeline's thread did with its shadow on its own: a promotion by its
    /// policy (the live version is now the candidate) goes into the history, and the
    /// candidate's columns become the pipeline's; a stop after failures is noted.
    pub(super) fn note_shadow(&self) {
        let live = self.worker.live_version();
        let promoted = {
            let mut shadow = lock(&self.shadow);
            let Some(s) = shadow.as_mut() else {
                return;
            };
            if s.state != ShadowState::Running {
                return;
            }
            if s.version == live {
                s.state = ShadowState::Promoted;
                if let Ok(columns) = &s.columns {
                    *lock(&self.columns) = columns.clone();
                }
                true
            } else {
                if s.run.stopped().is_some() {
                    s.state = ShadowState::Stopped;
                    let reason = s.run.stopped();
                    lock(&self.versions).discarded(&s.version, reason.as_deref());
                }
                false
            }
        };
        if promoted {
            lock(&self.versions).went_live(&live);
            self.persist(|r| r.quarantine = None);
        }
    }

    /// The last shadow run's view, with the live version's memory from `memory`.
    fn shadow_view(&self, live_memory: u64) -> Option<ShadowView> {
        let shadow = lock(&self.shadow);
        let s = shadow.as_ref()?;
        let mut report = s.run.report();
        report.live_cost.memory_bytes = live_memory;
        Some(ShadowView {
            state: s.state,
            live_version: self.worker.live_version(),
            report,
        })
    }
}

impl Host {
    /// Validates `bytes` as a deploy would (a refusal is recorded as the pipeline's last
    /// rejected deploy) and runs it as `entry`'s shadow, replacing the running one. Its
    /// output columns may differ (they are compared where both have them); whether it may
    /// be promoted with them is decided now, as for a deploy.
    pub(super) fn shadow_entry(
        &self,
        entry: &PipelineEntry,
        bytes: &[u8],
        options: ShadowOptions,
    ) -> Result<ShadowView, ControlError> {
        let promote_after = options.promote_after;
        let _serial = lock(&entry.deploy);
        if let Some(refused) = entry.worker.refusal() {
            return Err(refused);
        }
        entry.note_shadow();
        let id = &entry.id;
        let target = Target {
            id,
            spec: &entry.spec,
            config_path: &entry.config_path,
        };
        let (mut plugin, version) = prepare(&self.runtime, target, bytes, "shadow")
            .map_err(|reason| self.rejected(entry, bytes, "shadow", None, reason))?;
        let live = entry.worker.live_version();
        let version_id = version.view.id.clone();
        if version_id == live {
            return Err(ControlError::Conflict(format!(
                "{version_id} is the live version already: a shadow of it would compare it with itself"
            )));
        }
        let columns = entry.check_columns(
            &plugin,
            if options.allow_output_change {
                Removals::Confirmed
            } else {
                Removals::Unconfirmed
            },
        );
        if let (Some(_), Err(why)) = (promote_after, &columns) {
            return Err(ControlError::Rejected(format!(
                "promote_after cannot promote this version by itself: {why}"
            )));
        }
        let meter = self.metrics.shadow_meter(id);
        let memory = meter.memory_bytes.clone();
        plugin.meter_calls(meter);
        // Kept in the state directory like a deploy: a promoted shadow is a live version
        // that must survive a restart.
        self.store_component(entry, bytes)?;
        let run = Arc::new(ShadowRun::new(
            &plugin.version_id(),
            promote_after,
            self.metrics.shadow_totals(id),
            Some(memory),
        ));
        // Locks are taken one at a time here: `note_shadow` holds the shadow's, then the
        // history's.
        let replaced = lock(&entry.shadow)
            .as_ref()
            .filter(|old| old.state == ShadowState::Running)
            .map(|old| old.version.clone());
        {
            let mut history = lock(&entry.versions);
            if let Some(old) = &replaced {
                history.discarded(old, Some("replaced by another shadow"));
            }
            let mut version = version;
            version.view.status = VersionStatus::Shadow;
            history.record(version, self.keep_versions.max(1));
        }
        entry.worker.start_shadow(plugin, run.clone())?;
        *lock(&entry.shadow) = Some(ShadowEntry {
            state: ShadowState::Running,
            version: version_id.clone(),
            run,
            columns,
        });
        entry.persist(|_| {});
        tracing::info!(tenant = %id.tenant, pipeline = %id.pipeline, version = %version_id, ?promote_after, "shadow started");
        Ok(entry
            .shadow_view(self.metrics.plugin_memory(id))
            .expect("just started"))
    }

    /// `entry`'s last shadow run; `NotFound` when it never had one.
    pub(super) fn shadow_of(&self, entry: &PipelineEntry) -> Result<ShadowView, ControlError> {
        entry.note_shadow();
        entry
            .shadow_view(self.metrics.plugin_memory(&entry.id))
            .ok_or_else(|| no_shadow(entry))
    }

    /// Makes `entry`'s running shadow the live version.
    pub(super) fn promote_entry(&self, entry: &PipelineEntry) -> Result<VersionView, ControlError> {
        let _serial = lock(&entry.deploy);
        entry.note_shadow();
        entry.note_quarantine();
        let version = {
            let shadow = lock(&entry.shadow);
            let s = running(&shadow, entry)?;
            if let Err(why) = &s.columns {
                return Err(ControlError::Rejected(why.clone()));
            }
            s.version.clone()
        };
        entry.worker.promote_shadow()?;
        entry.note_shadow();
        let id = &entry.id;
        tracing::info!(tenant = %id.tenant, pipeline = %id.pipeline, %version, "shadow promoted");
        Ok(entry.version_view(&version))
    }

    /// Ends `entry`'s running shadow.
    pub(super) fn discard_entry(&self, entry: &PipelineEntry) -> Result<ShadowView, ControlError> {
        let _serial = lock(&entry.deploy);
        entry.note_shadow();
        let version = running(&lock(&entry.shadow), entry)?.version.clone();
        entry.worker.discard_shadow()?;
        if let Some(s) = lock(&entry.shadow).as_mut() {
            s.state = ShadowState::Discarded;
        }
        lock(&entry.versions).discarded(&version, None);
        entry.persist(|_| {});
        let id = &entry.id;
        tracing::info!(tenant = %id.tenant, pipeline = %id.pipeline, %version, "shadow discarded");
        self.shadow_of(entry)
    }
}

/// The running shadow in `shadow`, or why there is none.
fn running<'a>(
    shadow: &'a Option<ShadowEntry>,
    entry: &PipelineEntry,
) -> Result<&'a ShadowEntry, ControlError> {
    match shadow {
        Some(s) if s.state == ShadowState::Running => Ok(s),
        Some(s) => Err(ControlError::Conflict(format!(
            "no shadow runs on {}: the last one, {}, was {}; deploy one with weir plugin deploy --shadow",
            entry.id,
            s.version,
            match s.state {
                ShadowState::Stopped => "stopped after failing",
                ShadowState::Promoted => "promoted",
                _ => "discarded",
            }
        ))),
        None => Err(no_shadow(entry)),
    }
}

fn no_shadow(entry: &PipelineEntry) -> ControlError {
    ControlError::NotFound(format!(
        "{} has no shadow run; deploy one with weir plugin deploy --shadow",
        entry.id
    ))
}
