//! The control surface of a running host: what the admin API (and through it the
//! `weir plugin` CLI) may ask of it. The HTTP layer in `admin/` only authenticates,
//! authorizes and translates; every decision about pipelines is made behind this trait.
//!
//! What a tenant is shown never holds the operator's host paths: the admin API cuts them
//! ([`HostControl::redactor`], [`Redactor`]) from what it answers every caller but the
//! operator.
//! A pipeline that has failed or finished refuses deploy, rollback, pause and resume with
//! [`ControlError::Conflict`] ([`PipelineState::refusal`]).

use serde::{Deserialize, Serialize};

use super::PipelineId;
use crate::console::{Record, Recorded, Sample, Since};
use crate::counters::Counters;

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
    /// Why it is `quarantined`, `rejected` or `discarded`, or a warning about it (another
    /// build of the same version string is kept).
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
    /// Running as the pipeline's shadow: computing the live windows for comparison.
    Shadow,
    /// It ran as a shadow and was discarded (or replaced by another shadow, or stopped
    /// after failing).
    Discarded,
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
            VersionStatus::Shadow => "shadow",
            VersionStatus::Discarded => "discarded",
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
    /// The version whose call failed.
    #[serde(default)]
    pub version: String,
    /// Whether that version is no longer live (a fix was deployed, or it was rolled back).
    #[serde(default)]
    pub resolved: bool,
}

/// A commit one of a pipeline's sinks is retrying now (its database down or refusing):
/// the pipeline's rows wait, nothing is lost ([`crate::sink::Health`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinkRetryView {
    /// The sink, as it describes itself (`postgres table moving_averages`).
    pub sink: String,
    /// When its first attempt failed, RFC 3339 UTC.
    pub since: String,
    /// Attempts so far.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub error: String,
}

impl SinkRetryView {
    /// The first of `sinks` retrying a commit now, if any.
    pub fn of(sinks: &[std::sync::Arc<crate::sink::Health>]) -> Option<Self> {
        let r = sinks.iter().find_map(|h| h.retrying())?;
        Some(SinkRetryView {
            sink: r.sink,
            since: crate::time::format_rfc3339_ms(r.since_ms),
            attempts: r.attempts,
            error: r.error,
        })
    }
}

/// How a shadow is deployed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShadowOptions {
    /// Promote it by itself once this holds.
    pub promote_after: Option<crate::pipeline::PromoteAfter>,
    /// The tenant confirms its promotion may remove or rename output columns.
    pub allow_output_change: bool,
}

/// Where a pipeline's last shadow run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShadowState {
    /// Computing every window the live version fires, and comparing.
    Running,
    /// It failed again and again and stopped (`stopped` says why).
    Stopped,
    /// It became the live version.
    Promoted,
    /// It was discarded, or replaced by another shadow.
    Discarded,
}

/// A pipeline's last shadow run: where it stands and what it found
/// (`GET …/shadow`, `weir plugin diff`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowView {
    /// Where it stands.
    pub state: ShadowState,
    /// The pipeline's live version now.
    pub live_version: String,
    /// What it found: counts, costs, the first differing windows.
    #[serde(flatten)]
    pub report: crate::pipeline::ShadowReport,
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
    /// A commit one of its sinks is retrying now, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink_retrying: Option<SinkRetryView>,
    /// What it counted so far: events read, rows written, plugin calls that failed, ….
    #[serde(flatten)]
    pub counters: Counters,
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

/// A pipeline as the console's pipeline page shows it: its view, and what it did past a
/// `Since`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    /// State, versions, counters.
    pub pipeline: PipelineView,
    /// The key fields of its result rows (one chart line per key).
    pub key: Vec<String>,
    /// The columns of its result rows now, in the sink's order.
    pub columns: Vec<String>,
    /// Samples past `since.sample`, oldest first.
    pub samples: Vec<Sample>,
    /// Result rows past `since.row`, oldest first: as many as fit the read's byte budget.
    pub rows: Vec<Record>,
    /// Error records past `since.error`, oldest first: as many as fit the read's byte budget.
    pub errors: Vec<Record>,
    /// What to ask for next time: past the last record returned when some were left out.
    pub next: Since,
}

/// `GET /v1/whoami`: who the token belongs to, and whether the host takes control actions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhoAmI {
    /// The operator, or one tenant.
    pub principal: Principal,
    /// Whether deploy, rollback, pause and resume are offered.
    pub controls: bool,
}

/// One line of `GET /v1/overview`: a pipeline the caller may see, with its newest sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverviewItem {
    /// State, versions, counters.
    pub pipeline: PipelineView,
    /// The newest sample (none in the first second).
    pub sample: Option<Sample>,
}

impl Activity {
    /// Pipeline `pipeline`'s activity: its view, its key fields and what its telemetry
    /// recorded.
    pub fn new(pipeline: PipelineView, key: Vec<String>, recorded: Recorded) -> Self {
        let Recorded {
            columns,
            samples,
            rows,
            errors,
            next,
        } = recorded;
        Activity {
            pipeline,
            key,
            columns,
            samples,
            rows,
            errors,
            next,
        }
    }
}

/// What a running host offers its admin API.
///
/// Implementations must be cheap to call from async handlers' blocking pool; `deploy`
/// compiles a component and may take a few hundred milliseconds.
pub trait HostControl: std::any::Any + Send + Sync {
    /// Who owns `token`, if anyone. Compare in constant time.
    fn authenticate(&self, token: &str) -> Option<Principal>;
    /// Every tenant.
    fn tenants(&self) -> Vec<TenantView>;
    /// A tenant's pipelines; `NotFound` for an unknown tenant.
    fn pipelines(&self, tenant: &str) -> Result<Vec<PipelineView>, ControlError>;
    /// Compiles, validates and swaps in a new plugin version for one pipeline; a version
    /// that removes or renames output columns is refused.
    fn deploy(&self, id: &PipelineId, wasm: Vec<u8>) -> Result<VersionView, ControlError>;
    /// [`HostControl::deploy`] with the tenant's confirmation that the version may remove or
    /// rename output columns (taken where the pipeline's operator allows it).
    fn deploy_changing_outputs(
        &self,
        id: &PipelineId,
        wasm: Vec<u8>,
    ) -> Result<VersionView, ControlError> {
        self.deploy(id, wasm)
    }
    /// Makes the version that was live before the live one live again.
    fn rollback(&self, id: &PipelineId) -> Result<VersionView, ControlError>;
    /// Stops reading input; state is kept.
    fn pause(&self, id: &PipelineId) -> Result<PipelineView, ControlError>;
    /// Resumes a paused pipeline.
    fn resume(&self, id: &PipelineId) -> Result<PipelineView, ControlError>;
    /// Prometheus text exposition of every metric.
    fn metrics(&self) -> String;
    /// Validates a candidate version as a deploy would and runs it as pipeline `id`'s
    /// shadow ([`ShadowOptions`]); replaces the shadow running before.
    fn deploy_shadow(
        &self,
        id: &PipelineId,
        wasm: Vec<u8>,
        options: ShadowOptions,
    ) -> Result<ShadowView, ControlError> {
        let _ = (wasm, options);
        Err(no_shadows(id))
    }
    /// What a plugin of pipeline `id` must match: its fields, key, window, watermark,
    /// params and output columns.
    fn schema(&self, id: &PipelineId) -> Result<super::SchemaView, ControlError> {
        Err(ControlError::NotFound(format!(
            "this host shows no schema for {id}"
        )))
    }
    /// Pipeline `id`'s last shadow run; `NotFound` when it never had one.
    fn shadow(&self, id: &PipelineId) -> Result<ShadowView, ControlError> {
        Err(no_shadows(id))
    }
    /// Makes the running shadow of `id` the live version (a hot swap).
    fn promote(&self, id: &PipelineId) -> Result<VersionView, ControlError> {
        Err(no_shadows(id))
    }
    /// Ends the running shadow of `id`.
    fn discard(&self, id: &PipelineId) -> Result<ShadowView, ControlError> {
        Err(no_shadows(id))
    }
    /// What the console shows of pipeline `id` past `since`: its view, samples, latest
    /// result rows and error records. `NotFound` for an unknown pipeline, or a host that
    /// keeps no console telemetry.
    fn activity(&self, id: &PipelineId, since: &Since) -> Result<Activity, ControlError> {
        let _ = since;
        Err(ControlError::NotFound(format!(
            "this host keeps no console telemetry for {id}"
        )))
    }
    /// The newest console sample of pipeline `id`, if any.
    fn latest_sample(&self, id: &PipelineId) -> Option<Sample> {
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
    /// What cuts this host's paths out of what a tenant is shown (default: absolute paths
    /// only). The admin API applies it to every view and refusal it answers a caller other
    /// than the operator (its per-request view of the host, which forwards every method
    /// here: a method added here must be forwarded there too).
    fn redactor(&self) -> Redactor {
        Redactor::default()
    }
}

/// The refusal of a host that runs no shadows (`weir run --console`).
fn no_shadows(id: &PipelineId) -> ControlError {
    ControlError::Conflict(format!(
        "{id}: shadow runs are weir serve's; run the pipeline under weir serve"
    ))
}

impl PipelineState {
    /// The lowercase word the API, the CLI and the console use.
    pub fn name(&self) -> &'static str {
        match self {
            PipelineState::Running => "running",
            PipelineState::Paused => "paused",
            PipelineState::Quarantined => "quarantined",
            PipelineState::Finished => "finished",
            PipelineState::Failed => "failed",
        }
    }

    /// Why pipeline `id` in this state takes no deploy, rollback, pause or resume (409):
    /// it has failed (for `reason`) or finished, and its thread runs nothing again until
    /// the host restarts. `None` while it does take them.
    pub fn refusal(&self, id: &PipelineId, reason: Option<&str>) -> Option<ControlError> {
        let why = match self {
            PipelineState::Failed => format!(
                "pipeline {id} has failed ({}) and runs no more, so deploy, rollback, pause and resume would change nothing; ask the operator to fix the cause and restart the host",
                reason.unwrap_or("no reason recorded")
            ),
            PipelineState::Finished => format!(
                "pipeline {id} has finished (its bounded input ended and every window was flushed), so deploy, rollback, pause and resume would change nothing; it runs again only when the host restarts"
            ),
            PipelineState::Running | PipelineState::Paused | PipelineState::Quarantined => {
                return None;
            }
        };
        Some(ControlError::Conflict(why))
    }
}

/// Takes host paths out of what a tenant is shown: where the operator keeps pipeline
/// files, plugins and sinks is the operator's business. A path becomes its file name
/// (`/etc/weir/pipelines/ticks.toml` and `pipelines/ticks.toml` → `ticks.toml`), a file
/// of the watched plugin directory its `<tenant>/<pipeline>.wasm`. The operator sees
/// every path, through the operator token and in the host's log.
///
/// Cut: every absolute path (a word starting with `/`), and the relative paths of the
/// host's pipeline files it was given ([`Redactor::new`]). Relative paths it was not
/// given are left as they are (they name nothing outside the operator's config, and
/// `tenant/pipeline` ids look the same).
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Host paths with a directory part that are not absolute (absolute ones are cut
    /// anyway), longest first.
    files: std::sync::Arc<[String]>,
}

impl Redactor {
    /// A redactor that also cuts the relative paths among `files` (the operator's
    /// pipeline files, as the host names them in its errors).
    pub fn new<'a>(files: impl IntoIterator<Item = &'a std::path::Path>) -> Self {
        let mut files: Vec<String> = files
            .into_iter()
            .map(|f| f.display().to_string())
            .filter(|f| !f.starts_with('/') && f.contains('/'))
            .collect();
        files.sort_by_key(|f| std::cmp::Reverse(f.len()));
        files.dedup();
        Redactor {
            files: files.into(),
        }
    }

    /// `text` with every host path cut to its file name.
    pub fn text(&self, text: &str) -> String {
        let mut text = text.to_string();
        for file in self.files.iter() {
            if text.contains(file.as_str()) {
                text = replace_words(&text, file, file_name(file));
            }
        }
        let mut out = String::with_capacity(text.len());
        let mut word = String::new();
        for c in text.chars() {
            if is_word_break(c) {
                out.push_str(&cut_word(&word));
                word.clear();
                out.push(c);
            } else {
                word.push(c);
            }
        }
        out.push_str(&cut_word(&word));
        out
    }

    /// A file of the watched plugin directory as `<tenant>/<pipeline>.wasm`: its last two
    /// components.
    pub fn plugin_file(&self, file: &str) -> String {
        let mut parts = file.trim_end_matches('/').rsplit('/');
        match (parts.next(), parts.next()) {
            (Some(name), Some(tenant)) if !tenant.is_empty() => format!("{tenant}/{name}"),
            (Some(name), _) => name.to_string(),
            _ => String::new(),
        }
    }

    /// `view` with its host-written reasons cut (the plugin's own last error is the
    /// tenant's text and stays as it is).
    pub fn pipeline(&self, mut view: PipelineView) -> PipelineView {
        view.reason = view.reason.map(|r| self.text(&r));
        view.versions = view.versions.into_iter().map(|v| self.version(v)).collect();
        if let Some(r) = &mut view.last_rejected {
            r.reason = self.text(&r.reason);
            r.file = r.file.as_deref().map(|f| self.plugin_file(f));
        }
        view
    }

    /// `version` with its status reason cut.
    pub fn version(&self, mut version: VersionView) -> VersionView {
        version.status_reason = version.status_reason.map(|r| self.text(&r));
        version
    }

    /// `error` with its reason cut.
    pub fn error(&self, error: ControlError) -> ControlError {
        match error {
            ControlError::NotFound(r) => ControlError::NotFound(self.text(&r)),
            ControlError::Rejected(r) => ControlError::Rejected(self.text(&r)),
            ControlError::Conflict(r) => ControlError::Conflict(self.text(&r)),
        }
    }
}

/// Characters that end a word of [`Redactor::text`]: a path is one word.
fn is_word_break(c: char) -> bool {
    c.is_whitespace() || "\"'`()[]{}<>,;=|".contains(c)
}

/// `word` with an absolute path in it cut to its file name; trailing `.` and `:` (the end
/// of a sentence, `path: error`) are kept after it.
fn cut_word(word: &str) -> std::borrow::Cow<'_, str> {
    if !word.starts_with('/') {
        return word.into();
    }
    let path = word.trim_end_matches(['.', ':']);
    let name = file_name(path);
    if name.is_empty() {
        return word.into();
    }
    format!("{name}{}", &word[path.len()..]).into()
}

/// The last component of `path`.
fn file_name(path: &str) -> &str {
    path.trim_end_matches('/').rsplit('/').next().unwrap_or("")
}

/// `text` with `from` replaced by `to` where `from` starts a word.
fn replace_words(text: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    while let Some(at) = text[rest..].find(from).map(|i| rest + i) {
        let starts_word = text[..at].chars().next_back().is_none_or(is_word_break);
        out.push_str(&text[rest..at]);
        out.push_str(if starts_word { to } else { from });
        rest = at + from.len();
    }
    out.push_str(&text[rest..]);
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn host_paths_become_file_names() {
        let r = Redactor::new([
            Path::new("pipelines/ticks.toml"),
            Path::new("/etc/weir/abs.toml"),
            Path::new("plain.toml"),
        ]);
        assert_eq!(
            r.text("Only the operator can fix this, in /etc/weir/pipelines/ticks.toml: add `x`"),
            "Only the operator can fix this, in ticks.toml: add `x`"
        );
        assert_eq!(
            r.text("the operator's pipeline file is pipelines/ticks.toml."),
            "the operator's pipeline file is ticks.toml."
        );
        assert_eq!(
            r.text("writing \"/var/data/out.jsonl\": No space left on device (os error 28)"),
            "writing \"out.jsonl\": No space left on device (os error 28)"
        );
        assert_eq!(
            r.text("sink /dev/full: No space left on device"),
            "sink full: No space left on device"
        );
        // Not host paths: a pipeline id, a relative path the host was not given, a URL,
        // a path that only ends a word.
        for kept in [
            "pipeline acme/ticks has stopped",
            "see out/x.csv",
            "http://127.0.0.1:8080/v1/tenants",
            "my_pipelines/ticks.toml",
            "plugin weir-plugin-stats@0.1.0+abc",
            "a / b",
        ] {
            assert_eq!(r.text(kept), kept);
        }
        assert_eq!(
            r.plugin_file("/var/lib/weir/plugins/acme/ticks.wasm"),
            "acme/ticks.wasm"
        );
        assert_eq!(r.plugin_file("ticks.wasm"), "ticks.wasm");
    }

    #[test]
    fn failed_and_finished_pipelines_refuse_control() {
        let id = PipelineId::new("acme", "ticks");
        let failed = PipelineState::Failed
            .refusal(&id, Some("writing x: disk full"))
            .unwrap();
        let ControlError::Conflict(why) = failed else {
            panic!("a conflict")
        };
        assert!(
            why.contains("has failed (writing x: disk full)") && why.contains("restart the host"),
            "{why}"
        );
        assert!(PipelineState::Finished.refusal(&id, None).is_some());
        for running in [
            PipelineState::Running,
            PipelineState::Paused,
            PipelineState::Quarantined,
        ] {
            assert_eq!(running.refusal(&id, None), None);
        }
    }
}
