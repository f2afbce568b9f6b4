//! The console of `weir run --console`: one pipeline, shown as tenant `local`, behind one
//! operator token. It reads the run's metrics and telemetry; it offers no deploy, rollback,
//! pause or resume (a run's plugin is the one its file names: hot swaps are `weir serve`'s).

use std::sync::{Arc, Mutex};

use super::auth::Tokens;
use super::control::Activity;
use super::control::{
    ControlError, HostControl, PipelineState, PipelineView, Principal, TenantView, VersionStatus,
    VersionView,
};
use super::{Metrics, PipelineId};
use crate::console::{Sample, Since, Telemetry};
use crate::counters::Counters;
use crate::pipeline::Pipeline;

/// What `weir run` refuses in its console, with what to do instead.
const NO_CONTROLS: &str = "weir run runs one pipeline with the plugin its file names; to deploy, roll back, pause or resume, run the pipeline under weir serve";

/// The run as the console shows it, updated after every batch.
struct RunState {
    state: PipelineState,
    reason: Option<String>,
    version: String,
    counters: Counters,
    /// The health of the run's sinks that report one, read while its thread is blocked.
    sinks: Vec<Arc<crate::sink::Health>>,
}

/// The [`HostControl`] of one `weir run`.
pub struct LocalConsole {
    tokens: Tokens,
    id: PipelineId,
    key: Vec<String>,
    started_at: String,
    metrics: Arc<Metrics>,
    telemetry: Arc<Telemetry>,
    run: Mutex<RunState>,
}

impl LocalConsole {
    /// The console of pipeline `id` (keyed by `key`), whose only token is `token`; its
    /// numbers come from `metrics` and `telemetry`.
    pub fn new(
        token: String,
        id: PipelineId,
        key: Vec<String>,
        metrics: Arc<Metrics>,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        LocalConsole {
            tokens: Tokens::new(token, Vec::new()),
            id,
            key,
            started_at: crate::time::format_rfc3339_ms(chrono::Utc::now().timestamp_millis()),
            metrics,
            telemetry,
            run: Mutex::new(RunState {
                state: PipelineState::Running,
                reason: None,
                version: String::new(),
                counters: Counters::default(),
                sinks: Vec::new(),
            }),
        }
    }

    fn run(&self) -> std::sync::MutexGuard<'_, RunState> {
        self.run.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the run's counters and version after a batch.
    pub fn update(&self, p: &Pipeline) {
        let mut run = self.run();
        run.counters = p.summary().counters;
        p.version().clone_into(&mut run.version);
        if run.sinks.is_empty() {
            run.sinks = p.sink_health();
        }
    }

    /// Marks the run finished, or failed with `error`.
    pub fn finish(&self, error: Option<String>) {
        let mut run = self.run();
        run.state = if error.is_some() {
            PipelineState::Failed
        } else {
            PipelineState::Finished
        };
        run.reason = error;
    }

    fn view(&self) -> PipelineView {
        let run = self.run();
        PipelineView {
            tenant: self.id.tenant.to_string(),
            name: self.id.pipeline.to_string(),
            state: run.state.clone(),
            reason: run.reason.clone(),
            versions: vec![VersionView {
                id: run.version.clone(),
                sha256: String::new(),
                origin: "config".into(),
                deployed_at: self.started_at.clone(),
                live: true,
                status: VersionStatus::Live,
                status_reason: None,
            }],
            last_rejected: None,
            last_plugin_error: None,
            sink_retrying: super::control::SinkRetryView::of(&run.sinks),
            counters: run.counters,
        }
    }

    fn check(&self, id: &PipelineId) -> Result<(), ControlError> {
        if *id == self.id {
            Ok(())
        } else {
            Err(ControlError::NotFound(format!(
                "this run has only pipeline {}",
                self.id
            )))
        }
    }
}

impl HostControl for LocalConsole {
    fn authenticate(&self, token: &str) -> Option<Principal> {
        self.tokens.principal(token)
    }

    fn tenants(&self) -> Vec<TenantView> {
        vec![TenantView {
            name: self.id.tenant.to_string(),
            pipelines: vec![self.id.pipeline.to_string()],
        }]
    }

    fn pipelines(&self, tenant: &str) -> Result<Vec<PipelineView>, ControlError> {
        if tenant == &*self.id.tenant {
            Ok(vec![self.view()])
        } else {
            Err(ControlError::NotFound(format!("no tenant {tenant}")))
        }
    }

    fn deploy(&self, _: &PipelineId, _: Vec<u8>) -> Result<VersionView, ControlError> {
        Err(ControlError::Conflict(NO_CONTROLS.into()))
    }

    fn rollback(&self, _: &PipelineId) -> Result<VersionView, ControlError> {
        Err(ControlError::Conflict(NO_CONTROLS.into()))
    }

    fn pause(&self, _: &PipelineId) -> Result<PipelineView, ControlError> {
        Err(ControlError::Conflict(NO_CONTROLS.into()))
    }

    fn resume(&self, _: &PipelineId) -> Result<PipelineView, ControlError> {
        Err(ControlError::Conflict(NO_CONTROLS.into()))
    }

    fn metrics(&self) -> String {
        self.metrics.encode()
    }

    fn activity(&self, id: &PipelineId, since: &Since) -> Result<Activity, ControlError> {
        self.check(id)?;
        Ok(Activity::new(
            self.view(),
            self.key.clone(),
            self.telemetry.recorded(since),
        ))
    }

    fn latest_sample(&self, id: &PipelineId) -> Option<Sample> {
        self.check(id).ok()?;
        self.telemetry.latest()
    }

    fn controls(&self) -> bool {
        false
    }
}
