//! The control surface of a running host: what the admin API (and through it the
//! `weir plugin` CLI) may ask of it. The HTTP layer in `admin/` only authenticates,
//! authorizes and translates; every decision about pipelines is made behind this trait.

use serde::{Deserialize, Serialize};

use super::PipelineId;

/// Who a bearer token belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "tenant", rename_all = "lowercase")]
pub enum Principal {
    /// The operator: may do everything.
    Operator,
    /// A tenant: may touch only its own pipelines.
    Tenant(String),
}

/// A tenant, as listed by the admin API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantView {
    /// Tenant name.
    pub name: String,
    /// Its pipelines, by name.
    pub pipelines: Vec<String>,
}

/// The state of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PipelineState {
    /// Reading input and firing windows.
    Running,
    /// Paused by an operator or tenant: input is not read, state is kept.
    Paused,
    /// Stopped calling its plugin after too many failures in a row; input is kept (not read)
    /// until a fixed version is deployed or the pipeline is rolled back.
    Quarantined,
    /// Its bounded input ended and every window was flushed.
    Finished,
    /// It stopped on an error outside the plugin (a sink could not be written, …).
    Failed,
}

/// One deployed plugin version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionView {
    /// Version id: `<plugin name>@<plugin version>+<first 12 hex digits of the SHA-256 of
    /// the component>`; it is what result rows carry in `plugin_version`.
    pub id: String,
    /// SHA-256 of the component bytes, hex.
    pub sha256: String,
    /// How it arrived: `config`, `api` or `file`.
    pub origin: String,
    /// When it was deployed, RFC 3339 UTC.
    pub deployed_at: String,
    /// Whether this is the version windows fire with now. A deploy answers with `false` when
    /// the pipeline has not taken the version within 10 s (a batch of slow plugin calls);
    /// it does between its next two batches.
    pub live: bool,
    /// Where the version stands (absent from older hosts: `kept`).
    #[serde(default)]
    pub status: VersionStatus,
    /// Why it is `quarantined` or `rejected`.
    #[serde(default)]
    pub status_reason: Option<String>,
}

/// Where a version stands in a pipeline's history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionStatus {
    /// Windows fire with it now.
    Live,
    /// It was live before the live one: a rollback returns to the newest such version.
    Previous,
    /// It was live and was rolled back.
    RolledBack,
    /// The pipeline was quarantined while it was live (the reason says why).
    Quarantined,
    /// It was refused at deploy and never ran (the reason says why); its code is not kept.
    Rejected,
    /// Kept, but not on the way back of a rollback (e.g. superseded before it went live).
    #[default]
    Kept,
}

impl VersionStatus {
    /// The lowercase name the API uses.
    pub fn name(self) -> &'static str {
        match self {
            VersionStatus::Live => "live",
            VersionStatus::Previous => "previous",
            VersionStatus::RolledBack => "rolled_back",
            VersionStatus::Quarantined => "quarantined",
            VersionStatus::Rejected => "rejected",
            VersionStatus::Kept => "kept",
        }
    }
}

/// The last failure of a pipeline's plugin calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginErrorView {
    /// What failed: a panic with its message and source location, a deadline, an error the
    /// plugin returned, … (the same text as the error record).
    pub message: String,
    /// When, RFC 3339 UTC.
    pub at: String,
}

/// The last deploy of a pipeline that was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectedView {
    /// Why, in one or two lines: what is wrong and who changes what.
    pub reason: String,
    /// When, RFC 3339 UTC.
    pub at: String,
    /// How it arrived: `api` or `file`.
    pub origin: String,
    /// The file in the watched plugin directory, for `origin = "file"`.
    pub file: Option<String>,
    /// SHA-256 of the component bytes, hex.
    pub sha256: String,
}

/// A pipeline, as listed by the admin API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineView {
    /// Tenant name.
    pub tenant: String,
    /// Pipeline name.
    pub name: String,
    /// Its state.
    pub state: PipelineState,
    /// Why it is quarantined or failed, when it is.
    pub reason: Option<String>,
    /// Kept versions, oldest first; the live one has `live = true`. The last rejected deploy,
    /// if any, is listed among them by time with status `rejected`.
    pub versions: Vec<VersionView>,
    /// The last deploy that was refused, if any (also after a later deploy succeeded: compare
    /// its time with the versions').
    #[serde(default)]
    pub last_rejected: Option<RejectedView>,
    /// The last failed plugin call, if any, of any version.
    #[serde(default)]
    pub last_plugin_error: Option<PluginErrorView>,
    /// Events read so far.
    pub events_read: u64,
    /// Result rows written so far.
    pub rows_written: u64,
    /// Plugin calls that failed so far.
    pub plugin_errors: u64,
}

impl PipelineView {
    /// The pipeline's id, from its `tenant` and `name`.
    pub fn id(&self) -> PipelineId {
        PipelineId::new(self.tenant.as_str(), self.name.as_str())
    }
}

/// Why a control request was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
pub enum ControlError {
    /// No such tenant or pipeline (HTTP 404).
    #[error("not found: {0}")]
    NotFound(String),
    /// The plugin was rejected at deploy; the live version is untouched (HTTP 422).
    #[error("rejected: {0}")]
    Rejected(String),
    /// The request does not fit the pipeline's state, e.g. nothing to roll back to (HTTP 409).
    #[error("conflict: {0}")]
    Conflict(String),
}

/// What a running host offers its admin API.
///
/// Implementations must be cheap to call from async handlers' blocking pool; `deploy`
/// compiles a component and may take a few hundred milliseconds.
pub trait HostControl: Send + Sync + 'static {
    /// Who owns `token`, if anyone. Compare in constant time.
    fn authenticate(&self, token: &str) -> Option<Principal>;
    /// Every tenant.
    fn tenants(&self) -> Vec<TenantView>;
    /// A tenant's pipelines; `NotFound` for an unknown tenant.
    fn pipelines(&self, tenant: &str) -> Result<Vec<PipelineView>, ControlError>;
    /// Compiles, validates and swaps in a new plugin version for one pipeline.
    fn deploy(&self, id: &PipelineId, wasm: Vec<u8>) -> Result<VersionView, ControlError>;
    /// Makes the version that was live before the live one live again.
    fn rollback(&self, id: &PipelineId) -> Result<VersionView, ControlError>;
    /// Stops reading input; state is kept.
    fn pause(&self, id: &PipelineId) -> Result<PipelineView, ControlError>;
    /// Resumes a paused pipeline.
    fn resume(&self, id: &PipelineId) -> Result<PipelineView, ControlError>;
    /// Prometheus text exposition of every metric.
    fn metrics(&self) -> String;
    /// What the console shows of pipeline `id` past `since`: its view, samples, latest
    /// result rows and error records. `NotFound` for an unknown pipeline, or a host that
    /// keeps no console telemetry.
    fn activity(
        &self,
        id: &PipelineId,
        since: &crate::console::Since,
    ) -> Result<crate::console::Activity, ControlError> {
        let _ = since;
        Err(ControlError::NotFound(format!(
            "this host keeps no console telemetry for {id}"
        )))
    }
    /// The newest console sample of pipeline `id`, if any.
    fn latest_sample(&self, id: &PipelineId) -> Option<crate::console::Sample> {
        let _ = id;
        None
    }
    /// Whether deploy, rollback, pause and resume are offered (`weir run --console`
    /// shows a single pipeline it cannot swap: false).
    fn controls(&self) -> bool {
        true
    }
    /// Whether the console's page is served (`[console] enabled`).
    fn console(&self) -> bool {
        true
    }
}
