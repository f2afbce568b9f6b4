//! The tenants and pipelines of a host, keyed by [`PipelineId`]: each pipeline's fixed
//! settings, its [`Worker`], its version history (and its store in the state directory,
//! which [`PipelineEntry::persist`] keeps up to date), and the views the admin API lists.
//! It does not start pipelines (`mod.rs`) nor decide which version is live (`deploy.rs`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::worker::{Worker, lock};
use super::{
    ControlError, PipelineId, PipelineState, PipelineView, PluginErrorView, RejectedView,
    TenantView, VersionStatus, VersionView,
};
use crate::pipeline::PipelineSpec;
use crate::plugin::{LastError, Plugin as _, PluginCode, PluginInstance};
use crate::time::format_rfc3339_ms;

/// One kept plugin version: what the API shows of it, and its compiled code (so a rollback
/// does not compile again).
pub(super) struct Version {
    pub(super) view: VersionView,
    /// Its compiled code; `None` for a version restored from the state directory that has
    /// not been live since the host started (a rollback to it compiles its stored
    /// component).
    pub(super) code: Option<Arc<PluginCode>>,
}

/// A pipeline's kept versions, oldest first, which of them were live in turn, and its last
/// rejected deploy.
pub(super) struct History {
    versions: VecDeque<Version>,
    /// Ids of the versions that went live, in the order they did; the last is live (or
    /// handed to the pipeline thread). A rollback returns to the newest one below it that is
    /// still kept and was not quarantined.
    went_live: Vec<String>,
    /// The last deploy refused, with its entry in the version list.
    rejected: Option<(VersionView, RejectedView)>,
}

impl History {
    /// A history of one version, live.
    pub(super) fn new(first: Version) -> Self {
        let id = first.view.id.clone();
        History {
            versions: VecDeque::from([first]),
            went_live: vec![id],
            rejected: None,
        }
    }

    /// A history restored from the state directory: `versions` oldest first, the ids that
    /// went live in order (the last is live), and the last rejected deploy.
    pub(super) fn restore(
        versions: Vec<Version>,
        went_live: Vec<String>,
        rejected: Option<RejectedView>,
    ) -> Self {
        // `live` and `previous` follow from `went_live` (see `views`); they are not kept.
        let versions = versions
            .into_iter()
            .map(|mut v| {
                // A shadow does not survive a restart.
                if matches!(v.view.status, VersionStatus::Live | VersionStatus::Previous) {
                    v.view.status = VersionStatus::Kept;
                } else if v.view.status == VersionStatus::Shadow {
                    v.view.status = VersionStatus::Discarded;
                    v.view.status_reason = Some("the host restarted".into());
                }
                v
            })
            .collect();
        let mut history = History {
            versions,
            went_live,
            rejected: None,
        };
        if let Some(r) = rejected {
            history.rejected(r);
        }
        history
    }

    /// What the state directory keeps of it: every kept version's view as the API shows it
    /// with the last version that went live as live, the ids that went live in order, and
    /// the last rejected deploy.
    pub(super) fn stored(&self) -> (Vec<VersionView>, Vec<String>, Option<RejectedView>) {
        let live = self.went_live.last().map_or("", String::as_str);
        (
            self.kept_views(live),
            self.went_live.clone(),
            self.last_rejected().cloned(),
        )
    }

    /// Whether a kept version's component has SHA-256 `sha256`.
    pub(super) fn keeps(&self, sha256: &str) -> bool {
        self.versions.iter().any(|v| v.view.sha256 == sha256)
    }

    /// Gives kept version `id` its compiled `code`.
    pub(super) fn set_code(&mut self, id: &str, code: Arc<PluginCode>) {
        if let Some(v) = self.versions.iter_mut().find(|v| v.view.id == id) {
            v.code = Some(code);
        }
    }

    /// Appends `version` (moving it to the end if it was kept already) and forgets the
    /// oldest versions beyond `keep`.
    pub(super) fn record(&mut self, version: Version, keep: usize) {
        let id = version.view.id.clone();
        self.forget(&id);
        self.versions.push_back(version);
        while self.versions.len() > keep {
            self.versions.pop_front();
        }
        let kept: BTreeSet<&str> = self.versions.iter().map(|v| v.view.id.as_str()).collect();
        self.went_live.retain(|id| kept.contains(id.as_str()));
    }

    /// Forgets version `id`.
    pub(super) fn forget(&mut self, id: &str) {
        self.versions.retain(|v| v.view.id != id);
        self.went_live.retain(|v| v != id);
    }

    /// Records that version `id` went live (a deploy): it is on top of the versions to roll
    /// back through, and no longer marked rolled back.
    pub(super) fn went_live(&mut self, id: &str) {
        self.went_live.retain(|v| v != id);
        self.went_live.push(id.to_string());
        if let Some(v) = self.versions.iter_mut().find(|v| v.view.id == id)
            && matches!(
                v.view.status,
                VersionStatus::RolledBack | VersionStatus::Shadow | VersionStatus::Discarded
            )
        {
            v.view.status = VersionStatus::Kept;
            v.view.status_reason = None;
        }
    }

    /// A warning when another build of the same `name@version` as `new` is kept: rows of the
    /// two would differ only in the hash part of `plugin_version`.
    pub(super) fn same_version_string(&self, new: &VersionView) -> Option<String> {
        let name = |id: &str| id.split_once('+').map_or(id, |(n, _)| n).to_string();
        let same = name(&new.id);
        let other = self
            .versions
            .iter()
            .find(|v| v.view.sha256 != new.sha256 && name(&v.view.id) == same)?;
        Some(format!(
            "another build of {same} is kept ({}): bump the plugin's version so that rows and the history tell the builds apart",
            other.view.id
        ))
    }

    /// Marks version `id`, a shadow that never went live, discarded (with `reason`).
    pub(super) fn discarded(&mut self, id: &str, reason: Option<&str>) {
        if let Some(v) = self.versions.iter_mut().find(|v| v.view.id == id)
            && v.view.status == VersionStatus::Shadow
        {
            v.view.status = VersionStatus::Discarded;
            v.view.status_reason = reason.map(str::to_string);
        }
    }

    /// The version a rollback from `live` returns to: the newest version that went live
    /// before it and is still kept and not quarantined.
    pub(super) fn rollback_target(&self, live: &str) -> Option<&Version> {
        let top = self
            .went_live
            .iter()
            .rposition(|v| v == live)
            .unwrap_or(self.went_live.len());
        self.went_live[..top].iter().rev().find_map(|id| {
            self.versions
                .iter()
                .find(|v| v.view.id == *id && v.view.status != VersionStatus::Quarantined)
        })
    }

    /// Records a rollback to `target`: the versions that went live after it are marked
    /// rolled back (unless quarantined) and leave the way back.
    pub(super) fn rolled_back_to(&mut self, target: &str) {
        let Some(at) = self.went_live.iter().rposition(|v| v == target) else {
            return self.went_live(target);
        };
        for id in self.went_live.split_off(at + 1) {
            if let Some(v) = self.versions.iter_mut().find(|v| v.view.id == id)
                && v.view.status != VersionStatus::Quarantined
            {
                v.view.status = VersionStatus::RolledBack;
            }
        }
    }

    /// Marks version `id` quarantined with `reason` (a rollback skips it from now on).
    pub(super) fn quarantined(&mut self, id: &str, reason: &str) {
        if let Some(v) = self.versions.iter_mut().find(|v| v.view.id == id) {
            v.view.status = VersionStatus::Quarantined;
            v.view.status_reason = Some(reason.to_string());
        }
    }

    /// Records a refused deploy; it replaces the one recorded before.
    pub(super) fn rejected(&mut self, rejected: RejectedView) {
        let short = rejected.sha256.get(..12).unwrap_or(&rejected.sha256);
        let view = VersionView {
            id: format!("rejected+{short}"),
            sha256: rejected.sha256.clone(),
            origin: rejected.origin.clone(),
            deployed_at: rejected.at.clone(),
            live: false,
            status: VersionStatus::Rejected,
            status_reason: Some(rejected.reason.clone()),
        };
        self.rejected = Some((view, rejected));
    }

    /// The last refused deploy.
    pub(super) fn last_rejected(&self) -> Option<&RejectedView> {
        self.rejected.as_ref().map(|(_, r)| r)
    }

    /// The view of version `id` as of `live`; only the id when it is not kept.
    pub(super) fn view(&self, id: &str, live: &str) -> VersionView {
        self.views(live)
            .into_iter()
            .find(|v| v.id == id)
            .unwrap_or_else(|| VersionView {
                id: id.to_string(),
                sha256: String::new(),
                origin: String::new(),
                deployed_at: String::new(),
                live: id == live,
                status: if id == live {
                    VersionStatus::Live
                } else {
                    VersionStatus::Kept
                },
                status_reason: None,
            })
    }

    /// Every kept version, oldest first, with `live` and its status as of `live`, and the
    /// last rejected deploy placed among them by time.
    pub(super) fn views(&self, live: &str) -> Vec<VersionView> {
        let mut views = self.kept_views(live);
        if let Some((view, _)) = &self.rejected {
            let at = views.partition_point(|v| v.deployed_at <= view.deployed_at);
            views.insert(at, view.clone());
        }
        views
    }

    /// Every kept version, oldest first, with `live` and its status as of `live`.
    fn kept_views(&self, live: &str) -> Vec<VersionView> {
        let below = match self.went_live.iter().rposition(|v| v == live) {
            Some(top) => &self.went_live[..top],
            None => &self.went_live[..],
        };
        self.versions
            .iter()
            .map(|v| {
                let mut view = v.view.clone();
                view.live = view.id == live;
                if view.status != VersionStatus::Quarantined {
                    view.status = if view.live {
                        VersionStatus::Live
                    } else if below.contains(&view.id) {
                        VersionStatus::Previous
                    } else {
                        view.status
                    };
                }
                view
            })
            .collect()
    }
}

/// Whether a version may remove (or rename) output columns of the live one
/// ([`PipelineEntry::check_columns`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Removals {
    /// Not confirmed: refused.
    Unconfirmed,
    /// Confirmed by the tenant (`--allow-output-change`): taken where the operator allows.
    Confirmed,
    /// A version that was live before (a rollback): its columns are known to the readers.
    Known,
}

/// One hosted pipeline.
pub(super) struct PipelineEntry {
    pub(super) id: PipelineId,
    /// Its config, resolved: the schema every version is checked against and the limits
    /// every version runs under.
    pub(super) spec: PipelineSpec,
    /// The operator's pipeline file, named in errors only the operator can fix.
    pub(super) config_path: PathBuf,
    /// The last failure of its plugin calls, reported by every version's instance.
    pub(super) last_error: LastError,
    pub(super) worker: Worker,
    pub(super) versions: Mutex<History>,
    /// The output columns of the live version's rows, which a deploy or rollback to
    /// other columns is checked against ([`crate::pipeline::output_change_refusal`]).
    pub(super) columns: Mutex<Vec<String>>,
    /// Serializes deploys and rollbacks of this pipeline.
    pub(super) deploy: Mutex<()>,
    /// What the console shows of it: samples, latest rows and error records (none when
    /// `[console] enabled = false`).
    pub(super) telemetry: Option<Arc<crate::console::Telemetry>>,
    /// Its store in the state directory (none without `[state]`).
    pub(super) store: Option<Arc<super::state::Store>>,
    /// The health of its sinks that report one, read while its thread may be blocked.
    pub(super) sinks: Vec<Arc<crate::sink::Health>>,
    /// Its last shadow run, if it had one.
    pub(super) shadow: Mutex<Option<super::shadow::ShadowEntry>>,
}

impl PipelineEntry {
    /// The kept version `id`, with `live` as the pipeline thread last reported.
    pub(super) fn version_view(&self, id: &str) -> VersionView {
        let live = self.worker.live_version();
        lock(&self.versions).view(id, &live)
    }

    /// The output columns of `plugin`'s rows, or why they may not replace the live
    /// version's, naming the operator's file: the sink cannot take them (a CSV sink without
    /// `allow_output_change`, a PostgreSQL table), or the version removes or renames columns
    /// the sink's readers may rely on and the deploy is not `confirmed` by the tenant
    /// (`--allow-output-change`) with the operator's `allow_output_change` on. Columns only
    /// added need no confirmation where the sink takes them.
    pub(super) fn check_columns(
        &self,
        plugin: &PluginInstance,
        removals: Removals,
    ) -> Result<Vec<String>, String> {
        let opts = crate::pipeline::Options {
            version_column: true,
            ..Default::default()
        };
        let cfg = &self.spec.cfg;
        let new = crate::pipeline::output_columns(cfg, plugin.info(), &opts);
        let old = lock(&self.columns).clone();
        let file = self.config_path.display();
        if let Some(refused) = crate::pipeline::output_change_refusal(cfg, &old, &new) {
            return Err(format!("{refused}; the operator's pipeline file is {file}"));
        }
        let removed = old.iter().any(|c| !new.contains(c));
        let confirmed = removals == Removals::Confirmed;
        if removed && removals != Removals::Known && !(confirmed && cfg.plugin.allow_output_change)
        {
            let difference = crate::pipeline::column_difference(&old, &new);
            let how = if confirmed {
                format!(
                    "the operator must allow it too: allow_output_change = true in [plugin] of {file}"
                )
            } else {
                "deploy with --allow-output-change (the API's ?allow_output_change=true) to confirm; the operator must allow it too (allow_output_change = true in [plugin] of the pipeline file)".to_string()
            };
            return Err(format!(
                "version {} changes the output columns that readers of the sink may rely on ({difference}); {how}",
                plugin.version_id()
            ));
        }
        Ok(new)
    }

    /// The output columns of the live version's rows.
    pub(super) fn live_columns(&self) -> Vec<String> {
        lock(&self.columns).clone()
    }

    /// Marks the live version quarantined in the history if the pipeline is quarantined
    /// now, before a deploy or rollback replaces it.
    pub(super) fn note_quarantine(&self) {
        let status = self.worker.status();
        if status.state == PipelineState::Quarantined {
            let reason = status.reason.as_deref().unwrap_or("quarantined");
            lock(&self.versions).quarantined(&status.live_version, reason);
        }
    }

    /// Writes its history, with `change`, to its store in the state directory (nothing
    /// without `[state]`). Every change of versions, live version or pause ends here (a
    /// quarantine is written from the pipeline's thread); a failed write is logged by the
    /// store.
    pub(super) fn persist(&self, change: impl FnOnce(&mut super::state::Record)) {
        let Some(store) = &self.store else {
            return;
        };
        self.note_quarantine();
        // The history is read under the store's lock, so that of two writes racing (a
        // deploy and a pause) the later one carries both.
        store.update(|r| {
            let (versions, went_live, rejected) = lock(&self.versions).stored();
            r.set_history(versions, went_live, rejected);
            change(r);
        });
    }

    /// The pipeline as the admin API lists it.
    pub(super) fn view(&self) -> PipelineView {
        self.note_shadow();
        let status = self.worker.status();
        let (versions, last_rejected) = {
            let mut history = lock(&self.versions);
            if status.state == PipelineState::Quarantined {
                let reason = status.reason.as_deref().unwrap_or("quarantined");
                history.quarantined(&status.live_version, reason);
            }
            (
                history.views(&status.live_version),
                history.last_rejected().cloned(),
            )
        };
        PipelineView {
            tenant: self.id.tenant.to_string(),
            name: self.id.pipeline.to_string(),
            state: status.state,
            reason: status.reason,
            versions,
            last_rejected,
            last_plugin_error: self.last_error.get().map(|f| PluginErrorView {
                message: f.message,
                at: format_rfc3339_ms(f.at_ms),
                resolved: f.version != status.live_version,
                version: f.version,
            }),
            sink_retrying: super::control::SinkRetryView::of(&self.sinks),
            counters: status.summary.counters,
        }
    }
}

/// Every tenant and pipeline of a host, in name order.
#[derive(Default)]
pub(super) struct Registry {
    /// Every tenant, including one without pipelines.
    tenants: BTreeSet<Arc<str>>,
    pipelines: BTreeMap<PipelineId, PipelineEntry>,
}

impl Registry {
    /// Adds a tenant.
    pub(super) fn add_tenant(&mut self, name: &str) {
        self.tenants.insert(name.into());
    }

    /// Adds a pipeline of a tenant added before.
    pub(super) fn add(&mut self, entry: PipelineEntry) {
        self.pipelines.insert(entry.id.clone(), entry);
    }

    /// Whether pipeline `id` exists.
    pub(super) fn contains(&self, id: &PipelineId) -> bool {
        self.pipelines.contains_key(id)
    }

    /// Pipeline `id`; `NotFound` naming the tenant or the pipeline.
    pub(super) fn get(&self, id: &PipelineId) -> Result<&PipelineEntry, ControlError> {
        if !self.tenants.contains(&id.tenant) {
            return Err(ControlError::NotFound(format!("tenant {}", id.tenant)));
        }
        self.pipelines.get(id).ok_or_else(|| {
            // The caller was authorized for the tenant already: its pipelines are its own.
            let names: Vec<&str> = self
                .of_tenant(&id.tenant)
                .map(|p| p.map(|e| &*e.id.pipeline).collect())
                .unwrap_or_default();
            ControlError::NotFound(if names.is_empty() {
                format!("pipeline {id}: tenant {} has no pipelines", id.tenant)
            } else {
                format!(
                    "pipeline {id}: tenant {}'s pipelines are {}",
                    id.tenant,
                    names.join(", ")
                )
            })
        })
    }

    /// The pipelines of `tenant`, in name order; `NotFound` for an unknown tenant.
    pub(super) fn of_tenant<'a>(
        &'a self,
        tenant: &'a str,
    ) -> Result<impl Iterator<Item = &'a PipelineEntry>, ControlError> {
        if !self.tenants.contains(tenant) {
            return Err(ControlError::NotFound(format!("tenant {tenant}")));
        }
        Ok(self
            .pipelines
            .range(PipelineId::new(tenant, "")..)
            .take_while(move |(id, _)| &*id.tenant == tenant)
            .map(|(_, e)| e))
    }

    /// Every pipeline, in id order.
    pub(super) fn all(&self) -> impl Iterator<Item = &PipelineEntry> {
        self.pipelines.values()
    }

    /// Every tenant with its pipelines' names.
    pub(super) fn tenant_views(&self) -> Vec<TenantView> {
        self.tenants
            .iter()
            .map(|t| TenantView {
                name: t.to_string(),
                pipelines: self
                    .of_tenant(t)
                    .into_iter()
                    .flatten()
                    .map(|e| e.id.pipeline.to_string())
                    .collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(id: &str, deployed_at: &str) -> Version {
        Version {
            view: VersionView {
                id: id.to_string(),
                sha256: id.repeat(64 / id.len()),
                origin: "api".into(),
                deployed_at: deployed_at.into(),
                live: false,
                status: VersionStatus::Kept,
                status_reason: None,
            },
            code: None,
        }
    }

    #[test]
    fn a_history_restored_from_what_it_stored_shows_the_same_and_rolls_back_the_same() {
        let mut h = History::new(version("a", "1"));
        for (id, at) in [("b", "2"), ("c", "3")] {
            h.record(version(id, at), 5);
            h.went_live(id);
        }
        h.rolled_back_to("b");
        h.record(version("d", "4"), 5);
        h.went_live("d");
        h.quarantined("d", "3 plugin failures in a row");
        h.rejected(RejectedView {
            reason: "cannot load".into(),
            at: "5".into(),
            origin: "api".into(),
            file: None,
            sha256: "e".repeat(64),
        });
        let (views, went_live, rejected) = h.stored();
        let statuses: Vec<&str> = views.iter().map(|v| v.status.name()).collect();
        assert_eq!(
            statuses,
            ["previous", "previous", "rolled_back", "quarantined"]
        );
        assert_eq!(went_live, ["a", "b", "d"]);
        let back = History::restore(
            views
                .into_iter()
                .map(|view| Version { view, code: None })
                .collect(),
            went_live,
            rejected,
        );
        assert_eq!(back.views("d"), h.views("d"));
        assert_eq!(back.views("b"), h.views("b"));
        assert_eq!(back.last_rejected(), h.last_rejected());
        // A rollback from the quarantined live version returns to the same version.
        let target = |h: &History| h.rollback_target("d").map(|v| v.view.id.clone());
        assert_eq!(target(&back), target(&h));
        assert_eq!(target(&back).as_deref(), Some("b"));
        assert!(back.keeps(&"c".repeat(64)) && !back.keeps(&"e".repeat(64)));
    }
}
