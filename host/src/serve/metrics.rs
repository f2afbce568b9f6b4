//! Prometheus metrics of a host: per-pipeline counters and gauges labelled by
//! [`PipelineId`] (`tenant`, `pipeline`), how a pipeline thread publishes them
//! ([`Publisher`]), and their text exposition for the admin API's `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::PipelineId;
use crate::counters::Counters;
use crate::pipeline::Pipeline;

/// Every per-pipeline metric is labelled `tenant` and `pipeline`.
impl EncodeLabelSet for PipelineId {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        [("tenant", &*self.tenant), ("pipeline", &*self.pipeline)].encode(encoder)
    }
}

/// The labels of a per-partition series: the pipeline's, and the partition's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PartitionLabels {
    pipeline: PipelineId,
    topic: String,
    partition: i32,
}

impl EncodeLabelSet for PartitionLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        self.pipeline.encode(encoder)?;
        let partition = self.partition.to_string();
        [
            ("topic", self.topic.as_str()),
            ("partition", partition.as_str()),
        ]
        .encode(encoder)
    }
}

/// The labels of a shadow run's windows: the pipeline's, and how they compared.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ShadowLabels {
    pipeline: PipelineId,
    result: &'static str,
}

impl EncodeLabelSet for ShadowLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        self.pipeline.encode(encoder)?;
        [("result", self.result)].encode(encoder)
    }
}

/// Every metric family of a host.
#[derive(Default)]
pub struct Metrics {
    registry: Registry,
    /// What each pipeline counted.
    counts: CountFamilies,
    /// Each pipeline's window state, watermark, lag and control state.
    state: StateFamilies,
    /// Plugin calls, CPU, memory and compilation.
    plugin: PluginFamilies,
    /// Commits retried by sinks (a database down).
    sink: SinkFamilies,
    /// Per pipeline, the health of its sinks that report one: read at each encoding, since
    /// a pipeline whose sink retries is blocked and publishes nothing.
    sinks: std::sync::Mutex<std::collections::HashMap<PipelineId, Vec<Arc<crate::sink::Health>>>>,
    /// Windows compared by shadow runs, by result.
    shadow_windows: Family<ShadowLabels, Counter>,
    /// Per pipeline, what its shadow runs counted: read at each encoding.
    shadows:
        std::sync::Mutex<std::collections::HashMap<PipelineId, Arc<crate::pipeline::ShadowTotals>>>,
    /// Per pipeline, its calls since the console's last sample.
    recent_calls:
        std::sync::Mutex<std::collections::HashMap<PipelineId, crate::plugin::RecentCalls>>,
    /// Per pipeline, the counters last published, whole: the console's readings take them
    /// from here, so a reading never sees one counter of a batch without the others.
    latest: std::sync::Mutex<std::collections::HashMap<PipelineId, Counters>>,
}

/// The per-pipeline counters, one family each.
#[derive(Default)]
struct CountFamilies {
    events_read: Family<PipelineId, Counter>,
    malformed: Family<PipelineId, Counter>,
    filtered: Family<PipelineId, Counter>,
    late: Family<PipelineId, Counter>,
    windows_fired: Family<PipelineId, Counter>,
    rows_written: Family<PipelineId, Counter>,
    plugin_errors: Family<PipelineId, Counter>,
    windows_recomputed: Family<PipelineId, Counter>,
    plugin_restarts: Family<PipelineId, Counter>,
    swaps: Family<PipelineId, Counter>,
    rejected_deploys: Family<PipelineId, Counter>,
}

/// The per-pipeline gauges of state and control.
#[derive(Default)]
struct StateFamilies {
    open_windows: Family<PipelineId, Gauge>,
    buffered_events: Family<PipelineId, Gauge>,
    quarantined: Family<PipelineId, Gauge>,
    paused: Family<PipelineId, Gauge>,
    watermark: Family<PipelineId, Gauge<f64, AtomicU64>>,
    watermark_lag: Family<PipelineId, Gauge<f64, AtomicU64>>,
    kafka_lag: Family<PartitionLabels, Gauge>,
}

/// The families of sinks that retry their commits.
#[derive(Default)]
struct SinkFamilies {
    commit_retries: Family<PipelineId, Counter>,
    retrying: Family<PipelineId, Gauge>,
}

/// The plugin families: calls, CPU, memory, compilation and the compiled-code cache.
#[derive(Default)]
struct PluginFamilies {
    plugin_call_seconds: CallHistograms,
    plugin_cpu_seconds: Family<PipelineId, Counter<f64, AtomicU64>>,
    plugin_throttled_seconds: Family<PipelineId, Counter<f64, AtomicU64>>,
    plugin_memory_bytes: Family<PipelineId, Gauge>,
    compile_seconds: CompileHistogram,
    compiled_cache_bytes: Gauge,
    compiled_cache_components: Gauge,
}

impl Metrics {
    /// A registry with every family registered.
    pub fn new() -> Self {
        let mut m = Metrics::default();
        let r = &mut m.registry;
        r.register(
            "weir_sink_commit_retries",
            "Commits of the pipeline's sinks that failed and were tried again (a PostgreSQL database down or refusing)",
            m.sink.commit_retries.clone(),
        );
        r.register(
            "weir_sinks_retrying",
            "The pipeline's sinks retrying a commit now, their rows pending",
            m.sink.retrying.clone(),
        );
        r.register(
            "weir_shadow_windows",
            "Windows a shadow run computed beside the live version, by result: equal, differing, or error (the candidate failed)",
            m.shadow_windows.clone(),
        );
        r.register(
            "weir_events_read",
            "Records read from the source",
            m.counts.events_read.clone(),
        );
        r.register(
            "weir_malformed",
            "Records sent to the dead letter",
            m.counts.malformed.clone(),
        );
        r.register(
            "weir_filtered",
            "Events dropped by the plugin's filter",
            m.counts.filtered.clone(),
        );
        r.register(
            "weir_late_events",
            "Events late for every window",
            m.counts.late.clone(),
        );
        r.register(
            "weir_windows_fired",
            "Window firings (per key)",
            m.counts.windows_fired.clone(),
        );
        r.register(
            "weir_rows_written",
            "Result rows written",
            m.counts.rows_written.clone(),
        );
        r.register(
            "weir_plugin_errors",
            "Plugin calls that failed",
            m.counts.plugin_errors.clone(),
        );
        r.register(
            "weir_windows_recomputed",
            "Windows a failed plugin call left without rows that a later version computed",
            m.counts.windows_recomputed.clone(),
        );
        r.register(
            "weir_plugin_restarts",
            "Plugin instances re-created after a failure",
            m.counts.plugin_restarts.clone(),
        );
        r.register(
            "weir_plugin_swaps",
            "Plugin versions swapped in",
            m.counts.swaps.clone(),
        );
        r.register(
            "weir_plugin_rejected_deploys",
            "Plugin versions rejected at deploy",
            m.counts.rejected_deploys.clone(),
        );
        r.register(
            "weir_open_windows",
            "Windows open",
            m.state.open_windows.clone(),
        );
        r.register(
            "weir_buffered_events",
            "Events held in window state",
            m.state.buffered_events.clone(),
        );
        r.register(
            "weir_quarantined",
            "1 while the pipeline is quarantined",
            m.state.quarantined.clone(),
        );
        r.register(
            "weir_paused",
            "1 while the pipeline is paused",
            m.state.paused.clone(),
        );
        r.register(
            "weir_compiled_cache_bytes",
            "Bytes of compiled plugin code in the in-memory cache (bounded by plugins.compiled_cache, plus what pipelines keep)",
            m.plugin.compiled_cache_bytes.clone(),
        );
        r.register(
            "weir_plugin_call_seconds",
            "Wall time of each plugin call (filter, aggregate, incremental steps)",
            m.plugin.plugin_call_seconds.0.clone(),
        );
        r.register(
            "weir_plugin_cpu_seconds",
            "CPU time the pipeline's thread spent in plugin calls",
            m.plugin.plugin_cpu_seconds.clone(),
        );
        r.register(
            "weir_plugin_throttled_seconds",
            "Time the pipeline waited because its tenant's plugins used more CPU than the tenant's `cpu` cores",
            m.plugin.plugin_throttled_seconds.clone(),
        );
        r.register(
            "weir_plugin_memory_bytes",
            "Linear memory of the pipeline's plugin instance after its last call",
            m.plugin.plugin_memory_bytes.clone(),
        );
        r.register(
            "weir_plugin_compile_seconds",
            "Wall time of each Cranelift compile of a component (cache hits are not compiles)",
            m.plugin.compile_seconds.0.clone(),
        );
        r.register(
            "weir_watermark_seconds",
            "Event-time watermark, seconds since the Unix epoch (absent before the first event)",
            m.state.watermark.clone(),
        );
        r.register(
            "weir_watermark_lag_seconds",
            "Wall clock minus the event-time watermark, in seconds",
            m.state.watermark_lag.clone(),
        );
        r.register(
            "weir_kafka_partition_lag",
            "Records in a Kafka partition after the pipeline's position (high watermark minus position), per partition assigned to it",
            m.state.kafka_lag.clone(),
        );
        r.register(
            "weir_compiled_cache_components",
            "Components in the in-memory compiled-code cache",
            m.plugin.compiled_cache_components.clone(),
        );
        m
    }

    /// Sets the compiled-code cache gauges.
    pub fn compiled_cache(&self, bytes: u64, components: usize) {
        self.plugin
            .compiled_cache_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.plugin
            .compiled_cache_components
            .set(i64::try_from(components).unwrap_or(i64::MAX));
    }

    /// Reads the health of pipeline `l`'s `sinks` at each encoding from now on (nothing
    /// when none reports one).
    pub fn watch_sinks(&self, l: &PipelineId, sinks: Vec<Arc<crate::sink::Health>>) {
        if sinks.is_empty() {
            return;
        }
        let _ = self.sink.commit_retries.get_or_create(l);
        let _ = self.sink.retrying.get_or_create(l);
        if let Ok(mut watched) = self.sinks.lock() {
            watched.insert(l.clone(), sinks);
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        if let Ok(watched) = self.sinks.lock() {
            for (l, sinks) in watched.iter() {
                let retries: u64 = sinks.iter().map(|h| h.retries()).sum();
                let counter = self.sink.commit_retries.get_or_create(l);
                counter.inc_by(retries.saturating_sub(counter.get()));
                let retrying = sinks.iter().filter(|h| h.retrying().is_some()).count();
                self.sink.retrying.get_or_create(l).set(retrying as i64);
            }
        }
        if let Ok(shadows) = self.shadows.lock() {
            for (l, totals) in shadows.iter() {
                for (result, n) in [
                    ("equal", &totals.equal),
                    ("differing", &totals.differing),
                    ("error", &totals.error),
                ] {
                    let counter = self.shadow_windows.get_or_create(&ShadowLabels {
                        pipeline: l.clone(),
                        result,
                    });
                    let n = n.load(std::sync::atomic::Ordering::Relaxed);
                    counter.inc_by(n.saturating_sub(counter.get()));
                }
            }
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Publishes the counters of `now` that grew since `before`, and the gauges.
    pub fn publish(&self, l: &PipelineId, before: &Counters, now: &Counters, state: &GaugeState) {
        // Created at the first publication even at 0, so that a dashboard finds every
        // series of a pipeline from its start.
        let inc = |f: &Family<PipelineId, Counter>, a: u64, b: u64| {
            let counter = f.get_or_create(l);
            if b > a {
                counter.inc_by(b - a);
            }
        };
        inc(
            &self.counts.events_read,
            before.events_read,
            now.events_read,
        );
        inc(&self.counts.malformed, before.malformed, now.malformed);
        inc(&self.counts.filtered, before.filtered, now.filtered);
        inc(&self.counts.late, before.late, now.late);
        inc(
            &self.counts.windows_fired,
            before.windows_fired,
            now.windows_fired,
        );
        inc(
            &self.counts.rows_written,
            before.rows_written,
            now.rows_written,
        );
        inc(
            &self.counts.plugin_errors,
            before.plugin_errors,
            now.plugin_errors,
        );
        inc(
            &self.counts.windows_recomputed,
            before.windows_recomputed,
            now.windows_recomputed,
        );
        if let Ok(mut latest) = self.latest.lock() {
            latest.insert(l.clone(), *now);
        }
        let gauge = |f: &Family<PipelineId, Gauge>, v: u64| {
            f.get_or_create(l).set(i64::try_from(v).unwrap_or(i64::MAX));
        };
        gauge(&self.state.open_windows, state.open_windows);
        gauge(&self.state.buffered_events, state.buffered_events);
        gauge(&self.state.quarantined, u64::from(state.quarantined));
        gauge(&self.state.paused, u64::from(state.paused));
        if let Some(w) = state.watermark_ms {
            self.state.watermark.get_or_create(l).set(w as f64 / 1e3);
            self.state
                .watermark_lag
                .get_or_create(l)
                .set((state.now_ms - w) as f64 / 1e3);
        }
    }

    /// Creates every counter of pipeline `l` at 0, so that a dashboard finds its series
    /// (swaps, restarts, rejected deploys) before the first one happens.
    pub fn register_pipeline(&self, l: &PipelineId) {
        for f in [
            &self.counts.events_read,
            &self.counts.malformed,
            &self.counts.filtered,
            &self.counts.late,
            &self.counts.windows_fired,
            &self.counts.rows_written,
            &self.counts.plugin_errors,
            &self.counts.windows_recomputed,
            &self.counts.plugin_restarts,
            &self.counts.swaps,
            &self.counts.rejected_deploys,
        ] {
            let _ = f.get_or_create(l);
        }
        let _ = self.plugin.plugin_cpu_seconds.get_or_create(l);
        let _ = self.plugin.plugin_throttled_seconds.get_or_create(l);
    }

    /// Sets pipeline `l`'s lag per partition to `now`, and removes the series of the
    /// partitions in `before` it no longer reports (revoked in a rebalance: another
    /// process reads them now).
    fn partition_lag(
        &self,
        l: &PipelineId,
        before: &[(String, i32)],
        now: &[crate::source::PartitionLag],
    ) {
        let labels = |topic: &str, partition: i32| PartitionLabels {
            pipeline: l.clone(),
            topic: topic.to_string(),
            partition,
        };
        for (topic, partition) in before {
            if !now
                .iter()
                .any(|n| n.partition == *partition && n.topic == *topic)
            {
                self.state.kafka_lag.remove(&labels(topic, *partition));
            }
        }
        for n in now {
            self.state
                .kafka_lag
                .get_or_create(&labels(&n.topic, n.partition))
                .set(n.records);
        }
    }

    /// Counts plugin instance restarts.
    pub fn restarts(&self, l: &PipelineId, n: u64) {
        if n > 0 {
            self.counts.plugin_restarts.get_or_create(l).inc_by(n);
        }
    }

    /// Where pipeline `l`'s plugin calls are measured.
    pub fn call_meter(&self, l: &PipelineId) -> crate::plugin::CallMeter {
        crate::plugin::CallMeter {
            latency: self.plugin.plugin_call_seconds.0.get_or_create(l).clone(),
            cpu_seconds: self.plugin.plugin_cpu_seconds.get_or_create(l).clone(),
            memory_bytes: self.plugin.plugin_memory_bytes.get_or_create(l).clone(),
            recent: self.recent_calls(l),
        }
    }

    /// Where a shadow candidate of pipeline `l` is measured: its CPU time counts as the
    /// pipeline's (its tenant pays for it), its latency and memory are its own.
    pub fn shadow_meter(&self, l: &PipelineId) -> crate::plugin::CallMeter {
        crate::plugin::CallMeter {
            latency: Histogram::new(exponential_buckets(1e-5, 4.0, 10)),
            cpu_seconds: self.plugin.plugin_cpu_seconds.get_or_create(l).clone(),
            memory_bytes: Gauge::default(),
            recent: crate::plugin::RecentCalls::default(),
        }
    }

    /// What pipeline `l`'s shadow runs count, from its first on.
    pub fn shadow_totals(&self, l: &PipelineId) -> Arc<crate::pipeline::ShadowTotals> {
        let mut shadows = self.shadows.lock().unwrap_or_else(|p| p.into_inner());
        shadows.entry(l.clone()).or_default().clone()
    }

    /// Pipeline `l`'s live instance's linear memory after its last call, bytes.
    pub fn plugin_memory(&self, l: &PipelineId) -> u64 {
        u64::try_from(self.plugin.plugin_memory_bytes.get_or_create(l).get()).unwrap_or(0)
    }

    /// Pipeline `l`'s calls since the last [`Metrics::reading`].
    fn recent_calls(&self, l: &PipelineId) -> crate::plugin::RecentCalls {
        let mut map = self.recent_calls.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(l.clone()).or_default().clone()
    }

    /// What the metrics say of pipeline `l` now, for the console: its counters and gauges
    /// as a scrape shows them, and the quantiles of its plugin calls since the last reading
    /// (which are then forgotten).
    pub fn reading(&self, l: &PipelineId) -> crate::console::Reading {
        let gauge = |f: &Family<PipelineId, Gauge>| {
            f.get(l).map_or(0, |g| u64::try_from(g.get()).unwrap_or(0))
        };
        crate::console::Reading {
            counters: self
                .latest
                .lock()
                .ok()
                .and_then(|latest| latest.get(l).copied())
                .unwrap_or_default(),
            open_windows: gauge(&self.state.open_windows),
            watermark_ms: self
                .state
                .watermark
                .get(l)
                .map(|w| (w.get() * 1e3).round() as i64),
            memory_bytes: gauge(&self.plugin.plugin_memory_bytes),
            cpu_seconds: self
                .plugin
                .plugin_cpu_seconds
                .get(l)
                .map_or(0.0, |c| c.get()),
            calls: self.recent_calls(l).take(),
        }
    }

    /// Where the runtime records its compile times ([`crate::plugin::Runtime::with_compile_meter`]).
    pub fn compile_meter(&self) -> Histogram {
        self.plugin.compile_seconds.0.clone()
    }

    /// Adds `seconds` pipeline `l` waits for its tenant's CPU budget.
    pub fn throttled(&self, l: &PipelineId, seconds: f64) {
        self.plugin
            .plugin_throttled_seconds
            .get_or_create(l)
            .inc_by(seconds);
    }

    /// Counts a swapped-in version.
    pub fn swapped(&self, l: &PipelineId) {
        self.counts.swaps.get_or_create(l).inc();
    }

    /// Counts a rejected version.
    pub fn rejected(&self, l: &PipelineId) {
        self.counts.rejected_deploys.get_or_create(l).inc();
    }
}

/// The buckets of `weir_plugin_call_seconds`: 10 µs × 4ⁿ, from 10 µs to about 2.6 s (the
/// default deadline is 1 s).
#[derive(Clone, Default)]
struct CallBuckets;

impl MetricConstructor<Histogram> for CallBuckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(1e-5, 4.0, 10))
    }
}

/// `weir_plugin_compile_seconds`: 10 ms × 2ⁿ, from 10 ms to about 20 s (the default
/// `compile_timeout`).
struct CompileHistogram(Histogram);

impl Default for CompileHistogram {
    fn default() -> Self {
        CompileHistogram(Histogram::new(exponential_buckets(0.01, 2.0, 12)))
    }
}

/// `weir_plugin_call_seconds`, a family whose histograms have [`CallBuckets`].
struct CallHistograms(Family<PipelineId, Histogram, CallBuckets>);

impl Default for CallHistograms {
    fn default() -> Self {
        CallHistograms(Family::new_with_constructor(CallBuckets))
    }
}

/// Point-in-time gauges of a pipeline.
#[derive(Debug, Clone, Copy, Default)]
pub struct GaugeState {
    /// Windows open.
    pub open_windows: u64,
    /// Events buffered.
    pub buffered_events: u64,
    /// Quarantined?
    pub quarantined: bool,
    /// Paused?
    pub paused: bool,
    /// The event-time watermark (epoch ms), if any event came.
    pub watermark_ms: Option<i64>,
    /// Wall clock (epoch ms) when the gauges were taken.
    pub now_ms: i64,
}

impl GaugeState {
    /// The gauges of `p` now.
    pub fn of(p: &Pipeline, paused: bool) -> Self {
        let (open, buffered) = p.state_size();
        GaugeState {
            open_windows: open as u64,
            buffered_events: buffered as u64,
            quarantined: p.quarantined().is_some(),
            paused,
            watermark_ms: p.watermark(),
            now_ms: chrono::Utc::now().timestamp_millis(),
        }
    }
}

/// One pipeline's side of the metrics: remembers what it published last, so that each
/// publication adds only what grew since.
pub struct Publisher {
    metrics: Arc<Metrics>,
    id: PipelineId,
    published: Counters,
    restarts: u64,
    /// The partitions whose lag was published last, and when.
    lagging: Vec<(String, i32)>,
    lag_at: Option<std::time::Instant>,
}

/// How often a pipeline's partition lag is published (it is a few lookups per partition).
const LAG_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

impl Publisher {
    /// A publisher for `id` that has published nothing yet; `id`'s counters start at 0.
    pub fn new(metrics: Arc<Metrics>, id: PipelineId) -> Self {
        metrics.register_pipeline(&id);
        Publisher {
            metrics,
            id,
            published: Counters::default(),
            restarts: 0,
            lagging: Vec::new(),
            lag_at: None,
        }
    }

    /// Publishes `p`'s counters (the growth since the last call) and gauges.
    pub fn publish(&mut self, p: &Pipeline, paused: bool) {
        let counters = p.summary().counters;
        self.metrics.publish(
            &self.id,
            &self.published,
            &counters,
            &GaugeState::of(p, paused),
        );
        self.published = counters;
        if self.lag_at.is_none_or(|at| at.elapsed() >= LAG_EVERY) {
            self.lag_at = Some(std::time::Instant::now());
            let lag = p.partition_lag();
            self.metrics.partition_lag(&self.id, &self.lagging, &lag);
            self.lagging = lag.into_iter().map(|n| (n.topic, n.partition)).collect();
        }
    }

    /// Counts the plugin restarts of `p` since the last call.
    pub fn restarts(&mut self, p: &Pipeline) {
        let now = p.plugin().restarts();
        self.metrics
            .restarts(&self.id, now.saturating_sub(self.restarts));
        self.restarts = now;
    }

    /// Takes `p`'s restart count as the new baseline without counting it: a swapped-in
    /// instance starts its own count.
    pub(super) fn restarts_baseline(&mut self, p: &Pipeline) {
        self.restarts = p.plugin().restarts();
    }
}

/// Serves `metrics` as Prometheus text at `GET /metrics` on `listener`, without tokens, on a
/// thread of its own, until the process exits: `weir run --metrics-addr` (one pipeline,
/// labelled tenant `local`).
pub fn serve_standalone(
    listener: std::net::TcpListener,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()> {
    use axum::routing::get;
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    std::thread::Builder::new()
        .name("weir-metrics".into())
        .spawn(move || {
            runtime.block_on(async move {
                let app = axum::Router::new().route(
                    "/metrics",
                    get(move || {
                        let text = metrics.encode();
                        async move {
                            (
                                [(
                                    axum::http::header::CONTENT_TYPE,
                                    "text/plain; version=0.0.4; charset=utf-8",
                                )],
                                text,
                            )
                        }
                    }),
                );
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => {
                        if let Err(e) = axum::serve(l, app).await {
                            tracing::error!(error = %e, "metrics endpoint stopped");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "metrics endpoint did not start"),
                }
            });
        })?;
    Ok(())
}

/// Takes a console sample of every pipeline in `pipelines` from `metrics` each second, on a thread
/// of its own, until `stop` is raised.
///
/// # Errors
///
/// The thread could not be started.
pub fn spawn_sampler(
    metrics: Arc<Metrics>,
    pipelines: Vec<(PipelineId, Arc<crate::console::Telemetry>)>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("weir-console".into())
        .spawn(move || {
            let tick = Duration::from_secs(1);
            let mut next = std::time::Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let now = chrono::Utc::now().timestamp_millis();
                for (id, telemetry) in &pipelines {
                    telemetry.record(now, metrics.reading(id));
                }
                next += tick;
                // Behind by more than a tick (a stalled machine): take the next one a tick
                // from now rather than several at once.
                let now = std::time::Instant::now();
                if next + tick < now {
                    next = now + tick;
                }
                // Sleep in short steps so that a stop is seen within 100 ms.
                while !stop.load(Ordering::Relaxed) {
                    let left = next.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    std::thread::sleep(left.min(Duration::from_millis(100)));
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_lag_has_a_series_per_assigned_partition_only() {
        let m = Metrics::new();
        let l = PipelineId::new("acme", "ticks");
        let lag = |partition, records| crate::source::PartitionLag {
            topic: "ticks".into(),
            partition,
            records,
        };
        m.partition_lag(&l, &[], &[lag(0, 7), lag(1, 3)]);
        let text = m.encode();
        assert!(
            text.contains("weir_kafka_partition_lag{tenant=\"acme\",pipeline=\"ticks\",topic=\"ticks\",partition=\"0\"} 7"),
            "{text}"
        );
        assert!(text.contains("partition=\"1\"} 3"), "{text}");
        // Partition 1 revoked: its series goes, partition 0 is caught up.
        m.partition_lag(
            &l,
            &[("ticks".into(), 0), ("ticks".into(), 1)],
            &[lag(0, 0)],
        );
        let text = m.encode();
        assert!(text.contains("partition=\"0\"} 0"), "{text}");
        assert!(!text.contains("partition=\"1\""), "{text}");
    }

    #[test]
    fn publishes_deltas_with_labels() {
        let m = Metrics::new();
        let l = PipelineId::new("acme", "stocks");
        let a = Counters::default();
        let b = Counters {
            events_read: 5,
            rows_written: 2,
            ..Counters::default()
        };
        m.publish(&l, &a, &b, &GaugeState::default());
        let c = Counters {
            events_read: 7,
            ..b
        };
        m.publish(&l, &b, &c, &GaugeState::default());
        // Watermark at 2024-01-22T00:00:00Z, taken 90.5 s later.
        let state = GaugeState {
            watermark_ms: Some(1_705_881_600_000),
            now_ms: 1_705_881_690_500,
            ..GaugeState::default()
        };
        m.publish(&l, &c, &c, &state);
        let text = m.encode();
        assert!(
            text.contains(
                "weir_watermark_seconds{tenant=\"acme\",pipeline=\"stocks\"} 1705881600.0"
            ),
            "{text}"
        );
        assert!(
            text.contains("weir_watermark_lag_seconds{tenant=\"acme\",pipeline=\"stocks\"} 90.5"),
            "{text}"
        );
        assert!(
            text.contains("weir_events_read_total{tenant=\"acme\",pipeline=\"stocks\"} 7"),
            "{text}"
        );
        assert!(
            text.contains("weir_rows_written_total{tenant=\"acme\",pipeline=\"stocks\"} 2"),
            "{text}"
        );
    }
}
