//! `weir serve`: a long-running host of many tenants' pipelines, each on its own thread
//! with its own sandboxed plugin instance, whose plugins are hot-swapped without a restart.
//!
//! Owns the tenants, the per-pipeline version history, deploy/rollback/pause/resume and the
//! pipeline threads' control loop. It does not speak HTTP (`admin/` does, through
//! [`HostControl`]) nor watch files (`watch.rs` delivers them here).
//!
//! Start-up is a reload from an empty state: every pipeline's configured plugin goes through
//! the same validation as a later deploy ([`Host::prepare`]) before the pipeline starts.

mod auth;
pub mod control;
mod id;
mod metrics;
pub mod watch;
mod worker;

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;

pub use control::{
    ControlError, HostControl, PipelineState, PipelineView, Principal, TenantView, VersionView,
};
pub use id::PipelineId;
pub use metrics::{GaugeState, Metrics};

use crate::config::{HostConfig, Limits, PipelineConfig};
use crate::decode::Schema;
use crate::pipeline::{self, Options, Pipeline};
use crate::plugin::{Plugin as _, PluginCode, PluginInstance, Runtime};
use crate::time::format_rfc3339_ms;
use auth::Tokens;
use worker::{Worker, lock};

struct Version {
    view: VersionView,
    code: Arc<PluginCode>,
}

struct PipelineEntry {
    id: PipelineId,
    cfg: PipelineConfig,
    schema: Schema,
    limits: Limits,
    worker: Worker,
    versions: Mutex<VecDeque<Version>>,
    /// Serializes deploys and rollbacks of this pipeline.
    deploy: Mutex<()>,
}

struct TenantEntry {
    pipelines: BTreeMap<String, Arc<PipelineEntry>>,
}

/// A running host.
pub struct Host {
    runtime: Runtime,
    tokens: Tokens,
    tenants: BTreeMap<String, TenantEntry>,
    metrics: Arc<Metrics>,
    keep_versions: usize,
}

fn now_rfc3339() -> String {
    format_rfc3339_ms(chrono::Utc::now().timestamp_millis())
}

impl Host {
    /// Loads every tenant's pipelines, validates their plugins, and starts one thread per
    /// pipeline.
    pub fn start(cfg: &HostConfig) -> anyhow::Result<Self> {
        let fuel = cfg.tenants.iter().any(|t| t.limits.fuel.is_some());
        let mut runtime = Runtime::new(fuel)?.with_limits(cfg.plugins.load_limits());
        if let Some(dir) = &cfg.plugins.cache_dir {
            runtime = runtime.with_cache_dir(cfg.resolve(dir));
        }
        let tokens = cfg
            .tenants
            .iter()
            .map(|t| (t.name.clone(), t.token.clone()))
            .collect();
        let mut host = Host {
            runtime,
            tokens: Tokens::new(cfg.admin.operator_token.clone(), tokens),
            tenants: BTreeMap::new(),
            metrics: Arc::new(Metrics::new()),
            keep_versions: cfg.plugins.keep_versions,
        };
        for t in &cfg.tenants {
            let mut pipelines = BTreeMap::new();
            for path in &t.pipelines {
                let path = cfg.resolve(path);
                let pcfg = PipelineConfig::load(&path)?;
                if pcfg.plugin.limits.fuel.is_some() && !fuel {
                    anyhow::bail!(
                        "{}: plugin.limits.fuel is set but fuel metering is off; set `fuel` in [tenant.limits] of tenant {} too",
                        path.display(),
                        t.name
                    );
                }
                let name = pcfg.name.clone();
                if pipelines.contains_key(&name) {
                    anyhow::bail!(
                        "tenant {}: two pipelines are named `{name}`; pipeline names must be unique per tenant",
                        t.name
                    );
                }
                let entry = host
                    .start_pipeline(&t.name, pcfg, &t.limits)
                    .with_context(|| format!("tenant {}, pipeline {}", t.name, path.display()))?;
                pipelines.insert(name, entry);
            }
            host.tenants
                .insert(t.name.clone(), TenantEntry { pipelines });
        }
        Ok(host)
    }

    fn start_pipeline(
        &self,
        tenant: &str,
        cfg: PipelineConfig,
        ceiling: &crate::config::LimitsConfig,
    ) -> anyhow::Result<Arc<PipelineEntry>> {
        let schema = Schema::new(&cfg.schema).map_err(|e| anyhow::anyhow!("schema: {e}"))?;
        let limits = cfg.plugin.limits.resolve(Some(ceiling));
        let path = cfg.resolve(&cfg.plugin.path);
        let max = self.runtime.limits().max_bytes;
        let len = std::fs::metadata(&path)
            .with_context(|| format!("reading plugin.path {}", path.display()))?
            .len();
        if len > max {
            anyhow::bail!(
                "plugin.path {} is {len} bytes; the limit is {max} bytes (plugins.max_bytes in the host config); make the component smaller or raise the limit",
                path.display()
            );
        }
        let bytes = std::fs::read(&path)
            .with_context(|| format!("reading plugin.path {}", path.display()))?;
        let id = PipelineId::new(tenant, cfg.name.as_str());
        let (plugin, version) =
            prepare(&self.runtime, &cfg, &schema, limits, &id, &bytes, "config")
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        let interrupt = Arc::new(AtomicBool::new(false));
        let opts = Options {
            owner: id.owner(),
            version_column: true,
            quarantine: true,
            interrupt: Some(interrupt.clone()),
        };
        let pipe = Pipeline::build(cfg.clone(), plugin, opts)?;
        let worker = Worker::spawn(
            id.clone(),
            pipe,
            interrupt,
            version.view.id.clone(),
            self.metrics.clone(),
        )?;
        tracing::info!(tenant, pipeline = %cfg.name, version = %version.view.id, "pipeline started");
        Ok(Arc::new(PipelineEntry {
            id,
            limits,
            schema,
            cfg,
            worker,
            versions: Mutex::new(VecDeque::from([version])),
            deploy: Mutex::new(()),
        }))
    }

    /// Whether pipeline `id` exists: the watched directory asks before it reads a file.
    pub fn knows(&self, id: &PipelineId) -> bool {
        self.tenants
            .get(&*id.tenant)
            .is_some_and(|t| t.pipelines.contains_key(&*id.pipeline))
    }

    /// The plugin runtime (its load limits and compiled-code cache).
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    fn entry(&self, id: &PipelineId) -> Result<&Arc<PipelineEntry>, ControlError> {
        self.tenants
            .get(&*id.tenant)
            .ok_or_else(|| ControlError::NotFound(format!("tenant {}", id.tenant)))?
            .pipelines
            .get(&*id.pipeline)
            .ok_or_else(|| ControlError::NotFound(format!("pipeline {id}")))
    }

    /// Deploys a version that arrived as a file in the watched plugin directory.
    pub fn deploy_file(&self, id: &PipelineId, bytes: &[u8]) -> Result<VersionView, ControlError> {
        let entry = self.entry(id)?;
        self.deploy_to(entry, bytes, "file")
    }

    fn deploy_to(
        &self,
        entry: &PipelineEntry,
        bytes: &[u8],
        origin: &str,
    ) -> Result<VersionView, ControlError> {
        let _serial = lock(&entry.deploy);
        let prepared = prepare(
            &self.runtime,
            &entry.cfg,
            &entry.schema,
            entry.limits,
            &entry.id,
            bytes,
            origin,
        );
        let (plugin, version) = match prepared {
            Ok(p) => p,
            Err(reason) => {
                self.metrics.rejected(&entry.id);
                tracing::warn!(tenant = %entry.id.tenant, pipeline = %entry.id.pipeline, origin, %reason, "plugin version rejected");
                return Err(ControlError::Rejected(reason));
            }
        };
        let live = entry.worker.live_version();
        if version.view.id == live {
            return Ok(self.view_of(entry, &live));
        }
        // Recorded before the swap, so that a swap that lands after the wait below times out
        // is still in the history.
        let id = version.view.id.clone();
        let mut versions = lock(&entry.versions);
        versions.retain(|v| v.view.id != id);
        versions.push_back(version);
        while versions.len() > self.keep_versions {
            versions.pop_front();
        }
        drop(versions);
        // A version no longer kept may now be evicted.
        self.runtime.trim_compiled();
        match entry.worker.swap(plugin) {
            Ok(true) => {
                tracing::info!(tenant = %entry.id.tenant, pipeline = %entry.id.pipeline, version = %id, origin, "plugin version live")
            }
            Ok(false) => {
                tracing::warn!(tenant = %entry.id.tenant, pipeline = %entry.id.pipeline, version = %id, origin, "plugin version queued: the pipeline will take it when it finishes its current batch")
            }
            Err(e) => {
                lock(&entry.versions).retain(|v| v.view.id != id);
                return Err(e);
            }
        }
        Ok(self.view_of(entry, &id))
    }

    /// The kept version `id`, with `live` as the pipeline thread last reported.
    fn view_of(&self, entry: &PipelineEntry, id: &str) -> VersionView {
        let live = entry.worker.live_version() == id;
        lock(&entry.versions)
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

    fn pipeline_view(&self, entry: &PipelineEntry) -> PipelineView {
        let shared = entry.worker.status();
        let versions = lock(&entry.versions)
            .iter()
            .map(|v| VersionView {
                live: v.view.id == shared.live_version,
                ..v.view.clone()
            })
            .collect();
        PipelineView {
            tenant: entry.id.tenant.to_string(),
            name: entry.id.pipeline.to_string(),
            state: shared.state,
            reason: shared.reason,
            versions,
            events_read: shared.summary.events_read,
            rows_written: shared.summary.rows_written,
            plugin_errors: shared.summary.plugin_errors,
        }
    }

    fn set_paused(&self, id: &PipelineId, pause: bool) -> Result<PipelineView, ControlError> {
        let entry = self.entry(id)?;
        entry.worker.set_paused(pause)?;
        Ok(self.pipeline_view(entry))
    }

    /// Stops every pipeline (without flushing open windows of unbounded sources) and waits
    /// for their threads.
    pub fn shutdown(&self) {
        for t in self.tenants.values() {
            for e in t.pipelines.values() {
                e.worker.stop();
            }
        }
        for t in self.tenants.values() {
            for e in t.pipelines.values() {
                e.worker.join();
            }
        }
    }
}

/// Compiles (or finds in the cache), instantiates, configures and checks a plugin version
/// for one pipeline. Every way a version arrives goes through here. Only a version that
/// passed every check has its compiled code cached (in memory and on disk).
fn prepare(
    runtime: &Runtime,
    cfg: &PipelineConfig,
    schema: &Schema,
    limits: Limits,
    id: &PipelineId,
    bytes: &[u8],
    origin: &str,
) -> Result<(PluginInstance, Version), String> {
    let label = format!("{id} ({origin})");
    let code = runtime
        .load_bytes(bytes, &label)
        .map_err(|e| e.to_string())?;
    let plugin = pipeline::instantiate_checked(cfg, schema, code.clone(), limits, id.owner())
        .map_err(|e| e.to_string())?;
    runtime.keep(&code);
    let version = Version {
        view: VersionView {
            id: plugin.version_id(),
            sha256: code.sha256().to_string(),
            origin: origin.to_string(),
            deployed_at: now_rfc3339(),
            live: false,
        },
        code,
    };
    Ok((plugin, version))
}

impl HostControl for Host {
    fn authenticate(&self, token: &str) -> Option<Principal> {
        self.tokens.principal(token)
    }

    fn tenants(&self) -> Vec<TenantView> {
        self.tenants
            .iter()
            .map(|(name, t)| TenantView {
                name: name.clone(),
                pipelines: t.pipelines.keys().cloned().collect(),
            })
            .collect()
    }

    fn pipelines(&self, tenant: &str) -> Result<Vec<PipelineView>, ControlError> {
        let t = self
            .tenants
            .get(tenant)
            .ok_or_else(|| ControlError::NotFound(format!("tenant {tenant}")))?;
        Ok(t.pipelines
            .values()
            .map(|e| self.pipeline_view(e))
            .collect())
    }

    fn deploy(&self, id: &PipelineId, wasm: Vec<u8>) -> Result<VersionView, ControlError> {
        let entry = self.entry(id)?;
        self.deploy_to(entry, &wasm, "api")
    }

    fn rollback(&self, id: &PipelineId) -> Result<VersionView, ControlError> {
        let entry = self.entry(id)?;
        let _serial = lock(&entry.deploy);
        let live = entry.worker.live_version();
        let (code, id) = {
            let versions = lock(&entry.versions);
            let at = versions
                .iter()
                .position(|v| v.view.id == live)
                .unwrap_or(versions.len());
            match at.checked_sub(1).and_then(|i| versions.get(i)) {
                Some(v) => (v.code.clone(), v.view.id.clone()),
                None => {
                    return Err(ControlError::Conflict(format!(
                        "no version before {live} is kept; deploy the version you want instead"
                    )));
                }
            }
        };
        let plugin = pipeline::instantiate_checked(
            &entry.cfg,
            &entry.schema,
            code,
            entry.limits,
            entry.id.owner(),
        )
        .map_err(|e| ControlError::Rejected(e.to_string()))?;
        let live_now = entry.worker.swap(plugin)?;
        tracing::info!(tenant = %entry.id.tenant, pipeline = %entry.id.pipeline, version = %id, live = live_now, "rolled back");
        Ok(self.view_of(entry, &id))
    }

    fn pause(&self, id: &PipelineId) -> Result<PipelineView, ControlError> {
        self.set_paused(id, true)
    }

    fn resume(&self, id: &PipelineId) -> Result<PipelineView, ControlError> {
        self.set_paused(id, false)
    }

    fn metrics(&self) -> String {
        let (bytes, count) = self.runtime.compiled_cache_size();
        self.metrics.compiled_cache(bytes, count);
        self.metrics.encode()
    }
}

/// How many plugin files may wait for the deployer (beyond the one it is deploying): 4.
/// Each holds at most `plugins.max_bytes`, so the hand-off holds at most 5 × that.
const DEPLOY_QUEUE: usize = 4;

/// Watches a plugin directory (`<tenant>/<pipeline>.wasm`) and deploys every new file.
///
/// Files are compiled and validated on a deployer thread of their own, so a slow compile
/// never holds up the watcher. The watcher reads a file only if its tenant and pipeline
/// exist, it is a regular file (not a symlink) and its size is within `plugins.max_bytes`;
/// it hands files over a bounded queue ([`DEPLOY_QUEUE`]): when the queue is full the file
/// is skipped with a warning (and delivered again when it next changes). Returns the
/// watcher; dropping it stops watching.
pub fn watch_plugin_dir(
    host: Arc<Host>,
    dir: &Path,
    debounce: Duration,
) -> anyhow::Result<watch::Watcher> {
    let (tx, rx) = mpsc::sync_channel::<watch::PluginDrop>(DEPLOY_QUEUE);
    let deployer = host.clone();
    std::thread::Builder::new()
        .name("weir-deployer".into())
        .spawn(move || {
            let host = deployer;
            for drop in rx {
                let written = std::fs::metadata(&drop.path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok());
                match host.deploy_file(&drop.id, &drop.bytes) {
                    Ok(v) => tracing::info!(
                        tenant = %drop.id.tenant,
                        pipeline = %drop.id.pipeline,
                        version = %v.id,
                        since_write_ms = written.map(|d| d.as_secs_f64() * 1e3),
                        "plugin file deployed"
                    ),
                    Err(e) => tracing::warn!(tenant = %drop.id.tenant, pipeline = %drop.id.pipeline, error = %e, "plugin file not deployed"),
                }
            }
        })?;
    let rules = watch::Rules {
        max_bytes: host.runtime.limits().max_bytes,
        known: Box::new(move |id| host.knows(id)),
    };
    let watcher = watch::Watcher::start_with(dir, debounce, rules, move |drop| {
        match tx.try_send(drop) {
            Ok(()) => true,
            Err(mpsc::TrySendError::Full(d)) => {
                tracing::warn!(tenant = %d.id.tenant, pipeline = %d.id.pipeline, queue = DEPLOY_QUEUE, "plugin file skipped: the deployer is busy with earlier files; write the file again later");
                false
            }
            Err(mpsc::TrySendError::Disconnected(_)) => false,
        }
    })?;
    Ok(watcher)
}

/// Loads a host config and starts it (used by `weir serve` and tests).
pub fn start(path: &Path) -> anyhow::Result<(HostConfig, Arc<Host>)> {
    let cfg = HostConfig::load(path)?;
    let host = Arc::new(Host::start(&cfg)?);
    Ok((cfg, host))
}
