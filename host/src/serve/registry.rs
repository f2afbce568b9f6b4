//! The tenants and pipelines of a host, keyed by [`PipelineId`]: each pipeline's fixed
//! settings, its [`Worker`] and its version history, and the views the admin API lists.
//! It does not start pipelines (`mod.rs`) nor decide which version is live (`deploy.rs`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use super::worker::{Worker, lock};
use super::{ControlError, PipelineId, PipelineView, TenantView, VersionView};
use crate::config::{Limits, PipelineConfig};
use crate::decode::Schema;
use crate::plugin::PluginCode;

/// One kept plugin version: what the API shows of it, and its compiled code (so a rollback
/// does not compile again).
pub(super) struct Version {
    pub(super) view: VersionView,
    pub(super) code: Arc<PluginCode>,
}

/// A pipeline's kept versions, oldest first.
pub(super) struct History {
    versions: VecDeque<Version>,
}

impl History {
    /// A history of one version.
    pub(super) fn new(first: Version) -> Self {
        History {
            versions: VecDeque::from([first]),
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
    }

    /// Forgets version `id`.
    pub(super) fn forget(&mut self, id: &str) {
        self.versions.retain(|v| v.view.id != id);
    }

    /// The version kept just before `live` (the last one if `live` is not kept).
    pub(super) fn before(&self, live: &str) -> Option<&Version> {
        let at = self
            .versions
            .iter()
            .position(|v| v.view.id == live)
            .unwrap_or(self.versions.len());
        at.checked_sub(1).and_then(|i| self.versions.get(i))
    }

    /// The view of version `id` with its `live` flag; only the id when it is not kept.
    pub(super) fn view(&self, id: &str, live: bool) -> VersionView {
        self.versions
            .iter()
            .find(|v| v.view.id == id)
            .map(|v| VersionView {
                live,
                ..v.view.clone()
            })
            .unwrap_or_else(|| VersionView {
                id: id.to_string(),
                sha256: String::new(),
                origin: String::new(),
                deployed_at: String::new(),
                live,
            })
    }

    /// Every kept version, oldest first, with `live` set on the live one.
    pub(super) fn views(&self, live: &str) -> Vec<VersionView> {
        self.versions
            .iter()
            .map(|v| VersionView {
                live: v.view.id == live,
                ..v.view.clone()
            })
            .collect()
    }
}

/// One hosted pipeline.
pub(super) struct PipelineEntry {
    pub(super) id: PipelineId,
    /// Its configuration, with the plugin it started with.
    pub(super) cfg: PipelineConfig,
    /// The input schema every version is checked against.
    pub(super) schema: Schema,
    /// The sandbox limits every version runs under.
    pub(super) limits: Limits,
    pub(super) worker: Worker,
    pub(super) versions: Mutex<History>,
    /// Serializes deploys and rollbacks of this pipeline.
    pub(super) deploy: Mutex<()>,
}

impl PipelineEntry {
    /// The kept version `id`, with `live` as the pipeline thread last reported.
    pub(super) fn version_view(&self, id: &str) -> VersionView {
        let live = self.worker.live_version() == id;
        lock(&self.versions).view(id, live)
    }

    /// The pipeline as the admin API lists it.
    pub(super) fn view(&self) -> PipelineView {
        let status = self.worker.status();
        let versions = lock(&self.versions).views(&status.live_version);
        PipelineView {
            tenant: self.id.tenant.to_string(),
            name: self.id.pipeline.to_string(),
            state: status.state,
            reason: status.reason,
            versions,
            events_read: status.summary.events_read,
            rows_written: status.summary.rows_written,
            plugin_errors: status.summary.plugin_errors,
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
        self.pipelines
            .get(id)
            .ok_or_else(|| ControlError::NotFound(format!("pipeline {id}")))
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
