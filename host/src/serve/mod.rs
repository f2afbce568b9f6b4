//! `weir serve`: a long-running host of many tenants' pipelines, each on its own thread
//! with its own sandboxed plugin instance, whose plugins are hot-swapped without a restart.
//!
//! It does not speak HTTP (`admin/` does, through [`HostControl`]). Start-up is a reload
//! from an empty state: every pipeline's configured plugin goes through the same validation
//! as a later deploy (`deploy::prepare`) before the pipeline starts. With a state directory
//! (`[state] dir`), it is a reload from the state the host left: each pipeline's stored live
//! version goes through that validation again and runs, with its history, paused or
//! quarantined as it was (see [`Host::start`]).
//!
//! | file          | owns                                                                     |
//! |---------------|--------------------------------------------------------------------------|
//! | `mod.rs`      | [`Host`]: start-up, shutdown, and [`HostControl`] over the parts below   |
//! | `id.rs`       | [`PipelineId`], the one name of a pipeline (`tenant/pipeline`)           |
//! | `registry.rs` | tenants, pipelines, each pipeline's settings and version history         |
//! | `worker.rs`   | the per-pipeline thread: batches, control messages, status               |
//! | `deploy.rs`   | prepare, deploy and rollback of versions; the watched-directory deployer |
//! | `auth.rs`     | who a bearer token belongs to (constant-time comparison)                 |
//! | `metrics.rs`  | Prometheus metrics per pipeline and how a thread publishes them          |
//! | `control.rs`  | the [`HostControl`] trait, the views the admin API returns, and how host |
//! |               | paths are cut from what a tenant is shown ([`control::Redactor`])        |
//! | `watch.rs`    | the watched plugin directory: files to [`watch::PluginDrop`]s            |
//! | `state.rs`    | the state directory: each pipeline's versions, components, live version, |
//! |               | pause and quarantine on disk, written atomically, checked when read      |
//! | `strikes.rs`  | how long a new version of a pipeline quarantined repeatedly waits        |
//! | `local.rs`    | [`LocalConsole`]: `weir run --console`'s one read-only pipeline          |
//! | `shadow.rs`   | shadow runs: a candidate beside the live version, promote, discard       |
//! | `schema_view.rs` | [`SchemaView`]: what a plugin of a pipeline must match                |

mod auth;
pub mod control;
mod deploy;
mod id;
mod local;
pub mod metrics;
mod registry;
mod schema_view;
mod shadow;
mod state;
mod strikes;
pub mod watch;
mod worker;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;

pub use control::{
    ControlError, HostControl, PipelineState, PipelineView, PluginErrorView, Principal,
    RejectedView, TenantView, VersionStatus, VersionView,
};
pub use deploy::watch_plugin_dir;
pub use id::PipelineId;
pub use local::LocalConsole;
pub use metrics::{GaugeState, Metrics, Publisher};
pub use schema_view::{FieldView, SchemaView};
pub use watch::check_plugin_dir;

use crate::config::{HostConfig, LimitsConfig, PipelineConfig};
use crate::pipeline::{Options, Pipeline, PipelineSpec};
use crate::plugin::{Plugin as _, Runtime};
use auth::Tokens;
use registry::{History, PipelineEntry, Registry};
use worker::Worker;

/// A pipeline whose config and plugin passed every check at start-up, not yet built.
struct Checked {
    id: PipelineId,
    spec: PipelineSpec,
    config_path: std::path::PathBuf,
    /// What it starts as.
    start: Start,
}

/// What a checked pipeline starts as: its configured plugin, or what the state directory
/// kept of it.
struct Start {
    /// The instance of the live version.
    plugin: crate::plugin::PluginInstance,
    /// Its kept versions; the last that went live is `plugin`'s.
    history: History,
    /// The live version's id.
    live: String,
    /// Paused and quarantined as the state directory left it.
    paused: bool,
    quarantined: Option<String>,
    /// With a state directory: what is written there before any pipeline starts.
    keep: Option<Keep>,
}

/// What start-up writes to a pipeline's store in the state directory.
struct Keep {
    store: Arc<state::Store>,
    record: state::Record,
    /// The configured plugin's component, stored if it is a kept version.
    config_bytes: Vec<u8>,
}

impl Keep {
    /// Stores the configured plugin's component if a version keeps it, writes the record,
    /// and removes the components no version keeps.
    fn write(&mut self) -> std::io::Result<()> {
        let config_sha = state::sha256_hex(&self.config_bytes);
        if self.record.versions.iter().any(|v| v.sha256 == config_sha) {
            self.store.put_component(&self.config_bytes)?;
        }
        self.config_bytes = Vec::new();
        self.store.save(self.record.clone())?;
        self.store.collect_garbage();
        Ok(())
    }
}

/// A running host.
pub struct Host {
    runtime: Runtime,
    tokens: Tokens,
    registry: Registry,
    metrics: Arc<Metrics>,
    /// Per tenant, the bytes its pipelines' console rings keep together
    /// (`[console] keep_bytes_per_tenant`).
    console_budgets: std::collections::HashMap<String, Arc<crate::console::TenantBudget>>,
    keep_versions: usize,
    /// Raised at shutdown to end the console's sampler.
    sampler_stop: Arc<AtomicBool>,
    /// `[console]`.
    console: crate::config::ConsoleConfig,
    /// Cuts the operator's paths (pipeline files, sinks, checkpoints) from what tenants see.
    redactor: control::Redactor,
    /// `[state] dir`, resolved: where each pipeline's versions, pause and quarantine are
    /// kept across restarts.
    state_dir: Option<std::path::PathBuf>,
}

impl Host {
    /// Loads every tenant's pipelines, validates their plugins, and starts one thread per
    /// pipeline.
    ///
    /// With `[state] dir`, each pipeline starts as the state directory left it: its stored
    /// live version (validated again, as a deploy is), its kept versions and the way back
    /// of a rollback, its last rejected deploy, paused if it was paused, and quarantined if
    /// it was quarantined while that version was live (it then reads nothing until a deploy
    /// or a rollback, as after any quarantine: a restart is no fix, the way a Flink job that
    /// failed stays failed until it is resubmitted). Two exceptions, both logged with the
    /// pipeline and why: a configured plugin (`plugin.path`) whose content changed since the
    /// last start goes live as a deploy would (the operator changed it), and a stored live
    /// version that is refused now (say, the pipeline's schema changed) gives way to the
    /// configured plugin; the kept versions stay either way. A damaged state file or kept
    /// component refuses the start, naming the file and the fix. Without `[state]`, every
    /// pipeline starts on its configured plugin (logged once).
    pub fn start(cfg: &HostConfig) -> anyhow::Result<Self> {
        let fuel = cfg.tenants.iter().any(|t| t.limits.fuel.is_some());
        let metrics = Arc::new(Metrics::new());
        let mut runtime = Runtime::new(fuel)?
            .with_limits(crate::plugin::LoadLimits::of(&cfg.plugins))
            .with_compile_meter(metrics.compile_meter());
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
            registry: Registry::default(),
            metrics,
            console_budgets: cfg
                .tenants
                .iter()
                .map(|t| {
                    (
                        t.name.clone(),
                        Arc::new(crate::console::TenantBudget::of(&cfg.console)),
                    )
                })
                .collect(),
            keep_versions: cfg.plugins.keep_versions,
            sampler_stop: Arc::new(AtomicBool::new(false)),
            console: cfg.console,
            redactor: control::Redactor::default(),
            state_dir: cfg.state.as_ref().map(|s| cfg.resolve(&s.dir)),
        };
        match &host.state_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!(
                        "creating the state directory {} (state.dir); make its parent writable by the host, or remove [state]",
                        dir.display()
                    )
                })?;
            }
            None => tracing::warn!(
                "no [state] in the host config: deploys, rollbacks, pauses and quarantines are kept in memory only, and a restart starts every pipeline on its configured plugin; to keep them across restarts, add [state] with dir = \"state\" (relative to the host file)"
            ),
        }
        // Every pipeline's config and plugin is checked before any pipeline opens its source
        // or sinks: a host that fails at start leaves every sink as it was.
        let mut ready = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for t in &cfg.tenants {
            host.registry.add_tenant(&t.name);
            let budget = Arc::new(crate::plugin::CpuBudget::new(t.cpu));
            for path in &t.pipelines {
                let path = cfg.resolve(path);
                let context = || format!("tenant {}, pipeline {}", t.name, path.display());
                let pcfg = PipelineConfig::load(&path)?;
                if pcfg.plugin.limits.fuel.is_some() && !fuel {
                    anyhow::bail!(
                        "{}: plugin.limits.fuel is set but fuel metering is off; set `fuel` in [tenant.limits] of tenant {} too",
                        path.display(),
                        t.name
                    );
                }
                let id = PipelineId::new(t.name.as_str(), pcfg.name.as_str());
                if !seen.insert(id.clone()) {
                    anyhow::bail!(
                        "tenant {}: two pipelines are named `{}`; pipeline names must be unique per tenant",
                        t.name,
                        id.pipeline
                    );
                }
                let checked = host
                    .check_pipeline(id, pcfg, path.clone(), &t.limits)
                    .with_context(context)?;
                ready.push((checked, context(), budget.clone()));
            }
        }
        // What the state directory keeps is written before any pipeline opens its sinks.
        if let Some(root) = &host.state_dir {
            let mut configured = std::collections::BTreeSet::new();
            for (checked, context, _) in &mut ready {
                let Some(keep) = checked.start.keep.as_mut() else {
                    continue;
                };
                configured.insert(keep.store.dir().to_path_buf());
                keep.write().with_context(|| {
                    format!(
                        "{context}: writing its state in {} (state.dir); make the directory writable by the host, or remove [state]",
                        keep.store.dir().display()
                    )
                })?;
            }
            for stray in state::strays(root, &configured) {
                tracing::info!(path = %stray.display(), "the state directory keeps a pipeline that is not in the host config; its state is left alone (delete the directory to forget it)");
            }
        }
        for (checked, context, budget) in ready {
            let entry = host.launch(checked, budget).context(context)?;
            host.registry.add(entry);
        }
        host.redactor = host_paths(&host.registry);
        let watched: Vec<_> = host
            .registry
            .all()
            .filter_map(|e| Some((e.id.clone(), e.telemetry.clone()?)))
            .collect();
        if !watched.is_empty() {
            metrics::spawn_sampler(host.metrics.clone(), watched, host.sampler_stop.clone())
                .context("starting the console's sampler thread")?;
        }
        Ok(host)
    }

    /// Validates the configured plugin of pipeline `id`; nothing is opened yet.
    fn check_pipeline(
        &self,
        id: PipelineId,
        cfg: PipelineConfig,
        config_path: std::path::PathBuf,
        ceiling: &LimitsConfig,
    ) -> anyhow::Result<Checked> {
        let spec = PipelineSpec::resolve(cfg, Some(ceiling))?;
        let cfg = &spec.cfg;
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
        let target = deploy::Target {
            id: &id,
            spec: &spec,
            config_path: &config_path,
        };
        let (plugin, version) = deploy::prepare(&self.runtime, target, &bytes, "config")
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let start = match &self.state_dir {
            Some(root) => self.restore(root, target, (plugin, version), bytes)?,
            None => Start {
                plugin,
                live: version.view.id.clone(),
                history: History::new(version),
                paused: false,
                quarantined: None,
                keep: None,
            },
        };
        Ok(Checked {
            id,
            spec,
            config_path,
            start,
        })
    }

    /// What pipeline `target` starts as, from its store under the state directory `root`
    /// and its configured plugin `config` (prepared, from `config_bytes`); see
    /// [`Host::start`].
    fn restore(
        &self,
        root: &std::path::Path,
        target: deploy::Target<'_>,
        config: (crate::plugin::PluginInstance, registry::Version),
        config_bytes: Vec<u8>,
    ) -> anyhow::Result<Start> {
        let id = target.id;
        let store = Arc::new(state::Store::new(root, id));
        let (config_plugin, config_version) = config;
        let config_sha = config_version.view.sha256.clone();
        let config_id = config_version.view.id.clone();
        let Some(record) = store.read()? else {
            let history = History::new(config_version);
            let (versions, went_live, rejected) = history.stored();
            return Ok(Start {
                plugin: config_plugin,
                live: config_id,
                history,
                paused: false,
                quarantined: None,
                keep: Some(Keep {
                    store,
                    record: state::Record::new(id, &config_sha, versions, went_live, rejected),
                    config_bytes,
                }),
            });
        };
        // Every kept component reads back whole before anything starts.
        let mut live_bytes = Vec::new();
        for v in &record.versions {
            let bytes = store
                .read_component(&v.sha256)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if v.id == record.live {
                live_bytes = bytes;
            }
        }
        let versions = record
            .versions
            .iter()
            .map(|v| registry::Version {
                view: v.clone(),
                code: None,
            })
            .collect();
        let mut history = History::restore(
            versions,
            record.went_live.clone(),
            record.last_rejected.clone(),
        );
        if let Some(code) = &config_version.code {
            history.set_code(&config_id, code.clone());
        }
        let stored_live = record.live_version().clone();
        let mut quarantined = record.live_quarantine().map(str::to_string);
        let plugin = if record.config_sha256 != config_sha {
            tracing::info!(tenant = %id.tenant, pipeline = %id.pipeline, version = %config_id, stored_live = %stored_live.id, "the configured plugin (plugin.path) changed since the host last started: it goes live as a deploy would; the kept versions stay (a rollback returns to the stored live one)");
            history.record(config_version, self.keep_versions);
            history.went_live(&config_id);
            quarantined = None;
            config_plugin
        } else if stored_live.sha256 == config_sha {
            // The stored live version is the configured one, prepared already.
            config_plugin
        } else {
            let prepared = deploy::prepare(&self.runtime, target, &live_bytes, &stored_live.origin);
            match prepared {
                Ok((plugin, v)) if v.view.id == stored_live.id => {
                    if let Some(code) = v.code {
                        history.set_code(&stored_live.id, code);
                    }
                    plugin
                }
                refused => {
                    let reason = match refused {
                        Ok((_, v)) => format!("its component now identifies as {}", v.view.id),
                        Err(reason) => reason,
                    };
                    tracing::warn!(tenant = %id.tenant, pipeline = %id.pipeline, version = %stored_live.id, %reason, "the stored live version is refused now: the pipeline starts on its configured plugin instead; its kept versions stay");
                    history.record(config_version, self.keep_versions);
                    history.went_live(&config_id);
                    quarantined = None;
                    config_plugin
                }
            }
        };
        let (versions, went_live, rejected) = history.stored();
        let live = went_live.last().cloned().unwrap_or_default();
        let mut kept = state::Record::new(id, &config_sha, versions, went_live, rejected);
        kept.paused = record.paused;
        if let Some(reason) = &quarantined {
            kept.quarantined(&live, reason);
        }
        tracing::info!(tenant = %id.tenant, pipeline = %id.pipeline, version = %live, versions = kept.versions.len(), paused = kept.paused, quarantined = quarantined.is_some(), "pipeline restored from the state directory");
        Ok(Start {
            plugin,
            live,
            history,
            paused: record.paused,
            quarantined,
            keep: Some(Keep {
                store,
                record: kept,
                config_bytes,
            }),
        })
    }

    /// Builds a checked pipeline (opening its source and sinks) and starts its thread, its
    /// plugin's CPU charged to its tenant's `budget`.
    fn launch(
        &self,
        checked: Checked,
        budget: Arc<crate::plugin::CpuBudget>,
    ) -> anyhow::Result<PipelineEntry> {
        let Checked {
            id,
            spec,
            config_path,
            start,
        } = checked;
        let Start {
            mut plugin,
            history,
            live,
            paused,
            quarantined,
            keep,
        } = start;
        let store = keep.map(|k| k.store);
        let last_error = crate::plugin::LastError::default();
        plugin.report_errors_to(last_error.clone());
        plugin.meter_calls(self.metrics.call_meter(&id));
        let interrupt = Arc::new(AtomicBool::new(false));
        let cpu = Arc::new(crate::plugin::CpuShare::new(
            budget,
            self.metrics.call_meter(&id).cpu_seconds,
        ));
        let telemetry = self.console.enabled.then(|| {
            Arc::new(crate::console::Telemetry::with_limits(
                &crate::console::Limits::of(&self.console),
                self.console_budgets.get(&*id.tenant).cloned(),
            ))
        });
        let opts = Options {
            owner: id.owner(),
            version_column: true,
            quarantine: true,
            interrupt: Some(interrupt.clone()),
            discard_checkpoint: false,
            console: telemetry.clone(),
            cpu: Some(cpu.clone()),
            parallelism: 1,
        };
        if spec.cfg.parallelism.is_some_and(|n| n > 1) {
            tracing::warn!(pipeline = %id, "parallelism is for weir run; under weir serve a pipeline runs on one thread (hot swaps and quarantine act between two firings of one plugin instance)");
        }
        let columns = crate::pipeline::output_columns(&spec.cfg, plugin.info(), &opts);
        let pipe = Pipeline::build(spec.clone(), plugin, opts)?;
        let sinks = pipe.sink_health();
        self.metrics.watch_sinks(&id, sinks.clone());
        let on_quarantine = store.clone().map(|store| {
            Box::new(move |version: &str, reason: &str| {
                store.update(|r| r.quarantined(version, reason));
            }) as worker::OnQuarantine
        });
        let begin = worker::Begin {
            paused,
            quarantined,
            on_quarantine,
        };
        let worker = Worker::spawn(
            id.clone(),
            pipe,
            interrupt,
            live.clone(),
            self.metrics.clone(),
            cpu,
            begin,
        )?;
        tracing::info!(tenant = %id.tenant, pipeline = %id.pipeline, version = %live, "pipeline started");
        Ok(PipelineEntry {
            id,
            spec,
            config_path,
            last_error,
            worker,
            versions: std::sync::Mutex::new(history),
            columns: std::sync::Mutex::new(columns),
            deploy: std::sync::Mutex::new(()),
            telemetry,
            store,
            sinks,
            shadow: std::sync::Mutex::new(None),
        })
    }

    /// Whether pipeline `id` exists: the watched directory asks before it reads a file.
    pub fn knows(&self, id: &PipelineId) -> bool {
        self.registry.contains(id)
    }

    /// The plugin runtime (its load limits and compiled-code cache).
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Stops every pipeline (without flushing open windows of unbounded sources) and waits
    /// for their threads.
    pub fn shutdown(&self) {
        self.sampler_stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
        for e in self.registry.all() {
            e.worker.stop();
        }
        for e in self.registry.all() {
            e.worker.join();
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.sampler_stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl HostControl for Host {
    fn authenticate(&self, token: &str) -> Option<Principal> {
        self.tokens.principal(token)
    }

    fn tenants(&self) -> Vec<TenantView> {
        self.registry.tenant_views()
    }

    fn pipelines(&self, tenant: &str) -> Result<Vec<PipelineView>, ControlError> {
        Ok(self.registry.of_tenant(tenant)?.map(|e| e.view()).collect())
    }

    fn deploy(&self, id: &PipelineId, wasm: Vec<u8>) -> Result<VersionView, ControlError> {
        self.deploy_to(
            self.registry.get(id)?,
            &wasm,
            "api",
            None,
            registry::Removals::Unconfirmed,
        )
    }

    fn deploy_changing_outputs(
        &self,
        id: &PipelineId,
        wasm: Vec<u8>,
    ) -> Result<VersionView, ControlError> {
        self.deploy_to(
            self.registry.get(id)?,
            &wasm,
            "api",
            None,
            registry::Removals::Confirmed,
        )
    }

    fn rollback(&self, id: &PipelineId) -> Result<VersionView, ControlError> {
        self.rollback_entry(self.registry.get(id)?)
    }

    fn pause(&self, id: &PipelineId) -> Result<PipelineView, ControlError> {
        let entry = self.registry.get(id)?;
        entry.worker.set_paused(true)?;
        entry.persist(|r| r.paused = true);
        Ok(entry.view())
    }

    fn resume(&self, id: &PipelineId) -> Result<PipelineView, ControlError> {
        let entry = self.registry.get(id)?;
        entry.worker.set_paused(false)?;
        entry.persist(|r| r.paused = false);
        Ok(entry.view())
    }

    fn metrics(&self) -> String {
        let (bytes, count) = self.runtime.compiled_cache_size();
        self.metrics.compiled_cache(bytes, count);
        self.metrics.encode()
    }

    fn deploy_shadow(
        &self,
        id: &PipelineId,
        wasm: Vec<u8>,
        options: control::ShadowOptions,
    ) -> Result<control::ShadowView, ControlError> {
        self.shadow_entry(self.registry.get(id)?, &wasm, options)
    }

    fn schema(&self, id: &PipelineId) -> Result<SchemaView, ControlError> {
        let entry = self.registry.get(id)?;
        let columns = entry.live_columns();
        Ok(SchemaView::of(&entry.spec, columns))
    }

    fn shadow(&self, id: &PipelineId) -> Result<control::ShadowView, ControlError> {
        self.shadow_of(self.registry.get(id)?)
    }

    fn promote(&self, id: &PipelineId) -> Result<VersionView, ControlError> {
        self.promote_entry(self.registry.get(id)?)
    }

    fn discard(&self, id: &PipelineId) -> Result<control::ShadowView, ControlError> {
        self.discard_entry(self.registry.get(id)?)
    }

    fn activity(
        &self,
        id: &PipelineId,
        since: &crate::console::Since,
    ) -> Result<control::Activity, ControlError> {
        let e = self.registry.get(id)?;
        let telemetry = e.telemetry.as_ref().ok_or_else(|| {
            ControlError::NotFound(
                "the console is off on this host ([console] enabled = false)".into(),
            )
        })?;
        Ok(control::Activity::new(
            e.view(),
            e.spec.cfg.schema.key.clone(),
            telemetry.recorded(since),
        ))
    }

    fn latest_sample(&self, id: &PipelineId) -> Option<crate::console::Sample> {
        self.registry.get(id).ok()?.telemetry.as_ref()?.latest()
    }

    fn console(&self) -> bool {
        self.console.enabled
    }

    fn redactor(&self) -> control::Redactor {
        self.redactor.clone()
    }
}

/// What cuts the operator's paths of every pipeline from what a tenant is shown: its file,
/// its file sinks and its checkpoint directory, as the host names them in errors.
fn host_paths(registry: &Registry) -> control::Redactor {
    let mut paths = Vec::new();
    for e in registry.all() {
        paths.push(e.config_path.clone());
        let sinks = [
            Some(&e.spec.cfg.sink),
            e.spec.cfg.late_sink.as_ref(),
            e.spec.cfg.dead_letter.as_ref(),
            e.spec.cfg.error_sink.as_ref(),
        ];
        for sink in sinks.into_iter().flatten() {
            if let crate::config::SinkConfig::File { path, .. } = sink {
                paths.push(e.spec.cfg.resolve(path));
            }
        }
        if let Some(checkpoint) = &e.spec.cfg.checkpoint {
            paths.push(e.spec.cfg.resolve(&checkpoint.dir));
        }
    }
    control::Redactor::new(paths.iter().map(std::path::PathBuf::as_path))
}

/// Loads a host config and starts its pipelines (the benchmarks' host; `weir serve` checks
/// its admin address and plugin directory first).
pub fn start(path: &std::path::Path) -> anyhow::Result<(HostConfig, Arc<Host>)> {
    let cfg = HostConfig::load(path)?;
    let host = Arc::new(Host::start(&cfg)?);
    Ok((cfg, host))
}
