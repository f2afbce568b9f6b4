//! How a plugin version becomes live: [`prepare`] (compile, instantiate, configure, check)
//! for every way one arrives (the config at start-up, the API, the watched directory),
//! deploy and rollback of one pipeline, and the deployer thread behind the watched plugin
//! directory. The swap itself happens on the pipeline's thread (`worker.rs`).

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use super::registry::{PipelineEntry, Removals, Version};
use super::worker::lock;
use super::{
    ControlError, Host, PipelineId, RejectedView, VersionStatus, VersionView, state, watch,
};
use crate::pipeline;
use crate::pipeline::PipelineSpec;
use crate::plugin::{self, Plugin as _, PluginInstance, Runtime};
use crate::time::format_rfc3339_ms;

/// How many plugin files may wait for the deployer (beyond the one it is deploying): 4.
/// Each holds at most `plugins.max_bytes`, so the hand-off holds at most 5 × that.
const DEPLOY_QUEUE: usize = 4;

/// Compiles (or finds in the cache), instantiates, configures and checks a plugin version
/// for pipeline `id`, whose operator's file is `config_path`. Every way a version arrives
/// goes through here. Only a version that passed every check has its compiled code cached
/// (in memory and on disk).
///
/// A refusal is one or two lines saying what is wrong and who fixes it ([`who_fixes`]).
/// Further deploy-time checks belong after `instantiate_checked`, before `runtime.keep`,
/// and should word their errors the same way.
pub(super) fn prepare(
    runtime: &Runtime,
    target: Target<'_>,
    bytes: &[u8],
    origin: &str,
) -> Result<(PluginInstance, Version), String> {
    let Target {
        id,
        spec,
        config_path,
    } = target;
    // A debug build runs many times slower than a release build and carries megabytes of
    // DWARF: refused with the release build's path (`weir run` takes it, for a tenant's own
    // tests).
    if let Some(debug) = plugin::debug_build(bytes) {
        return Err(format!(
            "is a debug build ({} KiB of debug information): it runs many times slower than a release build; deploy the release build, `cargo build --release --target wasm32-wasip2` (target/wasm32-wasip2/release/<crate>.wasm)",
            debug.div_ceil(1024)
        ));
    }
    let code = runtime
        .load_bytes_as(bytes, &format!("{id} ({origin})"), &id.tenant)
        .map_err(|e| e.to_string())?;
    let plugin = pipeline::instantiate_checked(spec, code.clone(), id.owner())
        .map_err(|e| who_fixes(&e, config_path))?;
    runtime.keep(&code);
    let version = Version {
        code: Some(code.clone()),
        view: VersionView {
            id: plugin.version_id(),
            sha256: code.sha256().to_string(),
            origin: origin.to_string(),
            deployed_at: now(),
            live: false,
            status: VersionStatus::Kept,
            status_reason: None,
        },
    };
    Ok((plugin, version))
}

/// The pipeline a version is prepared for: what every version is checked against.
#[derive(Clone, Copy)]
pub(super) struct Target<'a> {
    /// The pipeline.
    pub(super) id: &'a PipelineId,
    /// Its config, resolved: the schema versions are checked against and the limits they
    /// run under.
    pub(super) spec: &'a PipelineSpec,
    /// The operator's file it was read from.
    pub(super) config_path: &'a Path,
}

/// Now, RFC 3339 UTC with milliseconds.
fn now() -> String {
    format_rfc3339_ms(chrono::Utc::now().timestamp_millis())
}

/// A refusal at deploy in one or two lines that say who fixes it: the operator (a field the
/// plugin reads is missing from the schema, params the plugin refuses), named with the
/// operator's `config_path`, or the tenant (everything else is the plugin's own doing).
pub(super) fn who_fixes(e: &plugin::Error, config_path: &Path) -> String {
    let file = config_path.display();
    match e {
        plugin::Error::Incompatible {
            plugin,
            message,
            hint,
        } => format!(
            "plugin {plugin} {message}. Only the operator can fix this, in {file}: {hint}; or change the plugin's inputs and deploy again"
        ),
        plugin::Error::Configure { .. } => format!(
            "{e}. The params come from [plugin.params] in the operator's {file}: ask the operator to fix them, or change the plugin's configure and deploy again"
        ),
        plugin::Error::Trap { .. }
        | plugin::Error::BadOutput { .. }
        | plugin::Error::Failed { .. } => {
            format!("{e}; fix the plugin and deploy again")
        }
        plugin::Error::Deadline { .. }
        | plugin::Error::Memory { .. }
        | plugin::Error::Fuel { .. } => {
            format!(
                "{e}; make the plugin's start-up lighter, or ask the operator to raise [plugin.limits] in {file}"
            )
        }
        // Loading errors (not a component, wrong world, too big) already say what to change.
        plugin::Error::Compile { .. } => e.to_string(),
    }
}

impl Host {
    /// Deploys a version that arrived as file `path` in the watched plugin directory.
    /// A file in the watched directory is the operator's way in: it may change the output
    /// columns wherever the operator allows it (`allow_output_change`).
    pub fn deploy_file(
        &self,
        id: &PipelineId,
        bytes: &[u8],
        path: &Path,
    ) -> Result<VersionView, ControlError> {
        let entry = self.registry.get(id)?;
        self.deploy_to(entry, bytes, "file", Some(path), Removals::Confirmed)
    }

    /// Validates `bytes` as a new version of `entry`'s pipeline, records it in the
    /// history and swaps it in. A version identical to the live one changes nothing. A
    /// refused one is recorded as the pipeline's last rejected deploy (with `file`, when it
    /// came from the watched directory). `removals` says whether it may remove output
    /// columns ([`PipelineEntry::check_columns`]).
    pub(super) fn deploy_to(
        &self,
        entry: &PipelineEntry,
        bytes: &[u8],
        origin: &str,
        file: Option<&Path>,
        removals: Removals,
    ) -> Result<VersionView, ControlError> {
        let _serial = lock(&entry.deploy);
        let id = &entry.id;
        let target = Target {
            id,
            spec: &entry.spec,
            config_path: &entry.config_path,
        };
        let reject = |reason: String| self.rejected(entry, bytes, origin, file, reason);
        let (mut plugin, version) =
            prepare(&self.runtime, target, bytes, origin).map_err(reject)?;
        entry.note_quarantine();
        plugin.report_errors_to(entry.last_error.clone());
        plugin.meter_calls(self.metrics.call_meter(id));
        let live = entry.worker.live_version();
        if version.view.id == live {
            return Ok(entry.version_view(&live));
        }
        // A failed or finished pipeline takes no version: said before its columns are
        // compared with the live one's (a component that is not fit is refused as such).
        if let Some(refused) = entry.worker.refusal() {
            return Err(refused);
        }
        let columns = entry.check_columns(&plugin, removals).map_err(reject)?;
        // Stored before any record names it: a deploy acknowledged is a deploy kept.
        self.store_component(entry, bytes)?;
        // Recorded before the swap, so that a swap that lands after the wait times out is
        // still in the history.
        let version_id = version.view.id.clone();
        let mut version = version;
        {
            let mut history = lock(&entry.versions);
            version.view.status_reason = history.same_version_string(&version.view);
            history.record(version, self.keep_versions);
            history.went_live(&version_id);
        }
        // A version no longer kept may now be evicted.
        self.runtime.trim_compiled();
        let swapped = entry.worker.swap(plugin, true);
        if swapped.is_ok() {
            *lock(&entry.columns) = columns;
        }
        match swapped {
            Ok(true) => {
                tracing::info!(tenant = %id.tenant, pipeline = %id.pipeline, version = %version_id, origin, "plugin version live")
            }
            Ok(false) => {
                tracing::warn!(tenant = %id.tenant, pipeline = %id.pipeline, version = %version_id, origin, "plugin version queued: the pipeline will take it when it finishes its current batch")
            }
            Err(e) => {
                lock(&entry.versions).forget(&version_id);
                return Err(e);
            }
        }
        // A new version lifts any quarantine; components no version keeps now go.
        entry.persist(|r| r.quarantine = None);
        if let Some(store) = &entry.store {
            store.collect_garbage();
        }
        Ok(entry.version_view(&version_id))
    }

    /// A refused version of `entry` (`bytes`, from `origin`, file `file` of the watched
    /// directory): counted, logged, and kept as the pipeline's last rejected deploy.
    pub(super) fn rejected(
        &self,
        entry: &PipelineEntry,
        bytes: &[u8],
        origin: &str,
        file: Option<&Path>,
        reason: String,
    ) -> ControlError {
        let id = &entry.id;
        self.metrics.rejected(id);
        tracing::warn!(tenant = %id.tenant, pipeline = %id.pipeline, origin, %reason, "plugin version rejected");
        lock(&entry.versions).rejected(RejectedView {
            reason: reason.clone(),
            at: now(),
            origin: origin.to_string(),
            file: file.map(|f| f.display().to_string()),
            sha256: state::sha256_hex(bytes),
        });
        entry.persist(|_| {});
        ControlError::Rejected(reason)
    }

    /// Keeps component `bytes` in `entry`'s store in the state directory (nothing without
    /// one), before any record names it.
    pub(super) fn store_component(
        &self,
        entry: &PipelineEntry,
        bytes: &[u8],
    ) -> Result<(), ControlError> {
        if let Some(store) = &entry.store
            && let Err(e) = store.put_component(bytes)
        {
            let id = &entry.id;
            tracing::error!(tenant = %id.tenant, pipeline = %id.pipeline, path = %store.dir().display(), error = %e, "storing a component in the state directory failed");
            return Err(ControlError::Conflict(format!(
                "the host could not keep the component in its state directory ({e}), so the version would not survive a restart; nothing changed. Ask the operator to check state.dir (space, permissions)"
            )));
        }
        Ok(())
    }

    /// Makes the version that was live before the live one live again, from its compiled
    /// code; versions quarantined since are skipped.
    pub(super) fn rollback_entry(
        &self,
        entry: &PipelineEntry,
    ) -> Result<VersionView, ControlError> {
        let _serial = lock(&entry.deploy);
        let id = &entry.id;
        entry.note_quarantine();
        let live = entry.worker.live_version();
        let (code, version_id, sha256) = match lock(&entry.versions).rollback_target(&live) {
            Some(v) => (v.code.clone(), v.view.id.clone(), v.view.sha256.clone()),
            None => {
                return Err(ControlError::Conflict(format!(
                    "nothing to roll back to: no version that was live before {live} is kept (quarantined ones are skipped); deploy the version you want instead"
                )));
            }
        };
        let code = match code {
            Some(code) => code,
            None => self.compile_stored(entry, &version_id, &sha256)?,
        };
        let mut plugin = pipeline::instantiate_checked(&entry.spec, code, id.owner())
            .map_err(|e| ControlError::Rejected(who_fixes(&e, &entry.config_path)))?;
        plugin.report_errors_to(entry.last_error.clone());
        plugin.meter_calls(self.metrics.call_meter(id));
        let columns = entry
            .check_columns(&plugin, Removals::Known)
            .map_err(ControlError::Rejected)?;
        let live_now = entry.worker.swap(plugin, false)?;
        *lock(&entry.columns) = columns;
        lock(&entry.versions).rolled_back_to(&version_id);
        entry.persist(|r| r.quarantine = None);
        tracing::info!(tenant = %id.tenant, pipeline = %id.pipeline, version = %version_id, live = live_now, "rolled back");
        Ok(entry.version_view(&version_id))
    }

    /// Compiles kept version `version_id` of `entry` from its component in the state
    /// directory (a version restored at start that was not live since), and keeps the code
    /// in the history.
    fn compile_stored(
        &self,
        entry: &PipelineEntry,
        version_id: &str,
        sha256: &str,
    ) -> Result<Arc<plugin::PluginCode>, ControlError> {
        let id = &entry.id;
        let store = entry.store.as_ref().ok_or_else(|| {
            ControlError::Conflict(format!(
                "version {version_id} of {id} has no compiled code and the host keeps no state directory; deploy it again"
            ))
        })?;
        let bytes = store
            .read_component(sha256)
            .map_err(ControlError::Conflict)?;
        let code = self
            .runtime
            .load_bytes_as(&bytes, &format!("{id} (state)"), &id.tenant)
            .map_err(|e| ControlError::Rejected(e.to_string()))?;
        self.runtime.keep(&code);
        lock(&entry.versions).set_code(version_id, code.clone());
        Ok(code)
    }

    /// Whether pipeline `id` keeps a version whose component has SHA-256 `sha256` (the live
    /// one included).
    pub(super) fn keeps(&self, id: &PipelineId, sha256: &str) -> bool {
        self.registry
            .get(id)
            .is_ok_and(|e| lock(&e.versions).keeps(sha256))
    }
}

/// Watches a plugin directory (`<tenant>/<pipeline>.wasm`) and deploys every new file.
///
/// With a state directory, the files already there at start come first: each whose
/// content is not a version the pipeline keeps (say, written while the host was down) is
/// deployed as if it had just been written; one that is (the live version, or one rolled
/// back from) is not deployed again. Without one they are left alone, as the configured
/// plugins are what runs.
///
/// Files are compiled and validated on a deployer thread of their own, so a slow compile
/// never holds up the watcher. The watcher reads a file only if its tenant and pipeline
/// exist, it is a regular file with one link (not a symlink, hard link or FIFO) and its size
/// is within `plugins.max_bytes`;
/// it hands files over a bounded queue (4 files, `DEPLOY_QUEUE`): when the queue is full the
/// file is skipped with a warning (and delivered again when it next changes). Returns the
/// watcher; dropping it stops watching.
pub fn watch_plugin_dir(
    host: Arc<Host>,
    dir: &Path,
    debounce: Duration,
) -> anyhow::Result<watch::Watcher> {
    let (tx, rx) = mpsc::sync_channel::<watch::PluginDrop>(DEPLOY_QUEUE);
    let rules = |host: Arc<Host>| watch::Rules {
        max_bytes: host.runtime.limits().max_bytes,
        known: Box::new(move |id| host.knows(id)),
    };
    // Watching starts first, so a file written while the present ones are read is not
    // missed (one read twice deploys once: the second finds it live).
    let watcher = watch::Watcher::start_with(dir, debounce, rules(host.clone()), move |drop| {
        match tx.try_send(drop) {
            Ok(()) => true,
            Err(mpsc::TrySendError::Full(d)) => {
                tracing::warn!(tenant = %d.id.tenant, pipeline = %d.id.pipeline, queue = DEPLOY_QUEUE, "plugin file skipped: the deployer is busy with earlier files; write the file again later");
                false
            }
            Err(mpsc::TrySendError::Disconnected(_)) => false,
        }
    })?;
    let present = if host.state_dir.is_some() {
        watch::present(dir, &rules(host.clone()))?
    } else {
        Vec::new()
    };
    let deployer = host.clone();
    std::thread::Builder::new()
        .name("weir-deployer".into())
        .spawn(move || {
            let host = deployer;
            for drop in present {
                let id = &drop.id;
                if host.keeps(id, &state::sha256_hex(&drop.bytes)) {
                    tracing::info!(tenant = %id.tenant, pipeline = %id.pipeline, path = %drop.path.display(), "plugin file present at start is a version the pipeline keeps; not deployed again");
                    continue;
                }
                match host.deploy_file(id, &drop.bytes, &drop.path) {
                    Ok(v) => tracing::info!(tenant = %id.tenant, pipeline = %id.pipeline, version = %v.id, "plugin file present at start deployed"),
                    Err(e) => tracing::warn!(tenant = %id.tenant, pipeline = %id.pipeline, error = %e, "plugin file present at start not deployed"),
                }
            }
            for drop in rx {
                let written = std::fs::metadata(&drop.path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok());
                let id = &drop.id;
                match host.deploy_file(id, &drop.bytes, &drop.path) {
                    Ok(v) => tracing::info!(
                        tenant = %id.tenant,
                        pipeline = %id.pipeline,
                        version = %v.id,
                        since_write_ms = written.map(|d| d.as_secs_f64() * 1e3),
                        "plugin file deployed"
                    ),
                    Err(e) => tracing::warn!(tenant = %id.tenant, pipeline = %id.pipeline, error = %e, "plugin file not deployed"),
                }
            }
        })?;
    Ok(watcher)
}
