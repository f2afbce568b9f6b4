//! The `weir` command line: `run`, `check`, `gen`, `serve`; `weir plugin` is `plugin.rs`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

mod check;
mod plugin;

pub use plugin::{PluginAction, Remote, Target};

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{Format, GeneratorConfig, Millis, PipelineConfig, Workload};
use crate::pipeline::{self, Pipeline, PipelineSpec};
use crate::plugin::{Plugin as _, Runtime};

/// Weir: user-defined window aggregations as sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about)]
pub struct Cli {
    /// How log lines are written to stderr: `text` (default) or `json` (one JSON object a
    /// line, for log shippers).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = LogFormat::Text,
        hide_possible_values = true
    )]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (colours only on a terminal).
    Text,
    /// One JSON object a line: `timestamp`, `level`, `target`, `fields` (the message and
    /// the event's fields) and the spans.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline until its input ends, then print a summary.
    ///
    /// SIGTERM or SIGINT stops it: reading stops, the batch in hand is finished, every sink
    /// is flushed, the summary is printed and the exit code is 128 + the signal number (143,
    /// 130). Windows still open are not fired (they are not final). A second signal exits at
    /// once.
    Run {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Print the summary as one JSON object instead of a table.
        #[arg(long)]
        json_summary: bool,
        /// Never draw a progress bar.
        #[arg(long)]
        no_progress: bool,
        /// Benchmarks only: run the plugin's logic compiled into the host instead of its
        /// wasm component (same code, no sandbox), chosen by the component's file name
        /// (`stats.wasm` runs the native `stats`). Measures what the sandbox costs.
        #[arg(long, hide = true)]
        native: bool,
        /// Worker threads that share the keys' window state (overrides the pipeline's
        /// `parallelism`; default: one per core). Output is the same for every value.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        parallelism: Option<u16>,
        /// Remove the pipeline's checkpoint (`[checkpoint] dir`) and start from the
        /// beginning of its source instead of resuming: the answer to a checkpoint that is
        /// refused because the pipeline changed.
        #[arg(long)]
        discard_checkpoint: bool,
        /// Serve Prometheus metrics at `http://ADDR/metrics` while the pipeline runs (the
        /// same names as `weir serve`, labelled `tenant="local"`), e.g. `127.0.0.1:9464`.
        #[arg(long, value_name = "ADDR")]
        metrics_addr: Option<std::net::SocketAddr>,
        /// Serve the web console at `http://ADDR/` while the pipeline runs (read-only: one
        /// pipeline, tenant `local`; deploys and pauses are `weir serve`'s), e.g.
        /// `127.0.0.1:8080`. It also serves `/metrics` to the console token.
        #[arg(long, value_name = "ADDR")]
        console: Option<std::net::SocketAddr>,
        /// The token the console asks for, at least 16 characters (default: a random one,
        /// printed at start).
        #[arg(
            long,
            env = "WEIR_CONSOLE_TOKEN",
            value_name = "TOKEN",
            hide_env_values = true
        )]
        console_token: Option<String>,
    },
    /// Run a multi-tenant host: every tenant's pipelines, the admin API, the plugin directory.
    ///
    /// SIGTERM or SIGINT stops it: the admin API stops taking requests, every pipeline
    /// finishes its batch in hand and flushes every sink, then the process exits with 0.
    Serve {
        /// The host file.
        host: PathBuf,
    },
    /// A tenant's plugins: write, build and test one (no host needed), or deploy, list,
    /// roll back, pause or resume them on a running `weir serve`.
    Plugin {
        /// What to do.
        #[command(subcommand)]
        action: PluginAction,
    },
    /// Validate a pipeline file and its plugin without running it.
    Check {
        /// The pipeline file.
        pipeline: PathBuf,
    },
    /// Write synthetic events for a seed workload.
    Gen {
        /// stocks, taxi or ticker.
        workload: Workload,
        /// How many events.
        #[arg(long, default_value_t = 1000)]
        count: u64,
        /// jsonl or csv.
        #[arg(long, default_value = "jsonl", value_parser = parse_format)]
        format: Format,
        /// Write here instead of stdout.
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Number of distinct keys.
        #[arg(long, default_value_t = 10)]
        keys: u32,
        /// Event-time spacing, e.g. `10ms`.
        #[arg(long, default_value = "10ms", value_parser = parse_millis)]
        interval: Millis,
        /// Out-of-order jitter, e.g. `500ms`.
        #[arg(long, default_value = "0s", value_parser = parse_millis)]
        jitter: Millis,
        /// Events per second of wall time (0 = as fast as possible).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Random seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// First event time, RFC 3339.
        #[arg(long)]
        start: Option<String>,
    },
    /// Run the benchmark suite (each workload through `weir run`) and print a table.
    Bench(crate::bench::Args),
    /// Send lines (a file, or stdin: `weir gen stocks | weir produce …`) to a Kafka topic,
    /// one message per line, keyed by fields of each JSON line.
    Produce(crate::produce::Args),
}

fn parse_format(s: &str) -> Result<Format, String> {
    match s {
        "jsonl" => Ok(Format::Jsonl),
        "csv" => Ok(Format::Csv),
        other => Err(format!("`{other}` is not a format; use jsonl or csv")),
    }
}

fn parse_millis(s: &str) -> Result<Millis, String> {
    crate::config::parse_millis(s)
}

/// Parses arguments and runs; the binary's `main` only reports the error.
pub fn try_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // A service logs what it does (info); a command line tool only what went wrong.
    let default_level = match cli.command {
        Command::Serve { .. } => "info",
        // `weir plugin test` sums up the guest's log lines dropped over its budget in one
        // line of its report, instead of a warning each time a trap ends an instance.
        Command::Plugin {
            action: PluginAction::Test(_),
        } => "warn,weir::guest=error",
        _ => "warn",
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        // Colour codes only on a terminal: never in a file or a pipe.
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().init(),
    }
    match cli.command {
        Command::Run {
            pipeline,
            json_summary,
            no_progress,
            native,
            parallelism,
            discard_checkpoint,
            metrics_addr,
            console,
            console_token,
        } => run(
            pipeline,
            RunFlags {
                json_summary,
                progress: !no_progress && std::io::stderr().is_terminal(),
                native,
                parallelism: parallelism.map(usize::from),
                discard_checkpoint,
                metrics_addr,
                console: console.map(|addr| (addr, console_token)),
            },
        ),
        Command::Check { pipeline } => check::check(pipeline),
        Command::Serve { host } => serve(&host),
        Command::Plugin { action } => plugin::run(action),
        Command::Bench(args) => crate::bench::run(args),
        Command::Produce(args) => {
            let sent = crate::produce::run(&args)?;
            eprintln!("weir produce: {sent} messages sent to {}", args.topic);
            Ok(())
        }
        Command::Gen {
            workload,
            count,
            format,
            out,
            keys,
            interval,
            jitter,
            rate,
            seed,
            start,
        } => {
            let cfg = GeneratorConfig {
                workload,
                count,
                rate,
                keys,
                interval,
                jitter,
                seed,
                start,
                format,
            };
            let written = match out {
                Some(path) => {
                    let file = std::fs::File::create(&path)
                        .with_context(|| format!("creating {}", path.display()))?;
                    let mut w = std::io::BufWriter::new(file);
                    let n = crate::source::write_generated(&cfg, &mut w)?;
                    w.flush()?;
                    n
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut w = std::io::BufWriter::new(stdout.lock());
                    let n = crate::source::write_generated(&cfg, &mut w)?;
                    w.flush()?;
                    n
                }
            };
            tracing::info!(records = written, "generated");
            Ok(())
        }
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<PipelineConfig> {
    Ok(PipelineConfig::load(path)?)
}

/// The signal that asked `weir run` to stop: set once by the signal thread.
struct StopSignal {
    /// Raised at the first SIGTERM or SIGINT; the pipeline checks it between batches and
    /// declines firings once it is up.
    flag: Arc<AtomicBool>,
    /// The signal's number (15 or 2), 0 until one came.
    number: Arc<AtomicI32>,
}

/// Listens for SIGTERM and SIGINT on a thread of its own: the first raises the stop flag,
/// a second exits at once with 128 + its number.
fn stop_on_signal() -> anyhow::Result<StopSignal> {
    use tokio::signal::unix::{SignalKind, signal};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let (mut term, mut int) = rt.block_on(async {
        Ok::<_, std::io::Error>((
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        ))
    })?;
    let stop = StopSignal {
        flag: Arc::new(AtomicBool::new(false)),
        number: Arc::new(AtomicI32::new(0)),
    };
    let (flag, number) = (stop.flag.clone(), stop.number.clone());
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            rt.block_on(async move {
                loop {
                    let sig = tokio::select! {
                        _ = term.recv() => 15,
                        _ = int.recv() => 2,
                    };
                    if flag.swap(true, Ordering::SeqCst) {
                        eprintln!("weir run: second signal, exiting without flushing");
                        std::process::exit(128 + sig);
                    }
                    number.store(sig, Ordering::SeqCst);
                    tracing::info!(
                        signal = sig,
                        "stopping: finishing the batch in hand and flushing the sinks"
                    );
                }
            });
        })?;
    Ok(stop)
}

/// `weir run`'s flags.
struct RunFlags {
    json_summary: bool,
    progress: bool,
    native: bool,
    parallelism: Option<usize>,
    discard_checkpoint: bool,
    metrics_addr: Option<std::net::SocketAddr>,
    /// `--console ADDR` and its `--console-token`.
    console: Option<(std::net::SocketAddr, Option<String>)>,
}

/// The shortest `--console-token` taken, as for the tokens of a host config.
const MIN_CONSOLE_TOKEN_CHARS: usize = 16;

/// `weir run --console`: the console's listener, bound before any sink opens, and its
/// token.
struct RunConsole {
    listener: std::net::TcpListener,
    addr: std::net::SocketAddr,
    token: String,
    telemetry: Arc<crate::console::Telemetry>,
}

impl RunConsole {
    fn bind(addr: std::net::SocketAddr, token: Option<String>) -> anyhow::Result<Self> {
        let token = token.filter(|t| !t.trim().is_empty());
        if let Some(t) = &token {
            let n = t.chars().count();
            if n < MIN_CONSOLE_TOKEN_CHARS {
                anyhow::bail!(
                    "--console-token (or WEIR_CONSOLE_TOKEN) is {n} characters; a console token must be at least {MIN_CONSOLE_TOKEN_CHARS}: use a long random token, e.g. the output of `openssl rand -hex 24`, or leave it out and weir run makes one and prints it"
                );
            }
        }
        let listener = std::net::TcpListener::bind(addr)
            .with_context(|| format!("binding the console to {addr} (--console)"))?;
        let addr = listener.local_addr()?;
        let token = match token {
            Some(t) => t,
            None => {
                use rand::TryRngCore as _;
                let mut bytes = [0u8; 16];
                rand::rngs::OsRng.try_fill_bytes(&mut bytes)?;
                let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                eprintln!(
                    "weir run: console at http://{addr}/ - sign in with token {token} (set one with --console-token or WEIR_CONSOLE_TOKEN)"
                );
                token
            }
        };
        Ok(RunConsole {
            listener,
            addr,
            token,
            telemetry: Arc::default(),
        })
    }

    /// Serves the console of pipeline `id` on a thread of its own until the process exits,
    /// with a sampler taking a sample of `metrics` each second.
    fn start(
        self,
        id: crate::serve::PipelineId,
        key: Vec<String>,
        metrics: Arc<crate::serve::Metrics>,
    ) -> anyhow::Result<Arc<crate::serve::LocalConsole>> {
        let control = Arc::new(crate::serve::LocalConsole::new(
            self.token,
            id.clone(),
            key,
            metrics.clone(),
            self.telemetry.clone(),
        ));
        crate::serve::metrics::spawn_sampler(
            metrics,
            vec![(id, self.telemetry)],
            Arc::new(AtomicBool::new(false)),
        )?;
        self.listener.set_nonblocking(true)?;
        let listener = self.listener;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let served: Arc<dyn crate::admin::HostControl> = control.clone();
        std::thread::Builder::new()
            .name("weir-console".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => {
                            let never = std::future::pending::<()>();
                            if let Err(e) = crate::admin::serve_with(
                                l,
                                served,
                                crate::admin::AdminLimits::default(),
                                never,
                            )
                            .await
                            {
                                tracing::error!(error = %e, "console stopped");
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "console did not start"),
                    }
                });
            })?;
        tracing::info!(addr = %self.addr, "console at http://{}/", self.addr);
        Ok(control)
    }
}

fn run(path: PathBuf, flags: RunFlags) -> anyhow::Result<()> {
    let RunFlags {
        json_summary,
        progress,
        native,
        parallelism,
        discard_checkpoint,
        metrics_addr,
        console,
    } = flags;
    let stop = stop_on_signal()?;
    // The console is bound before any sink opens, like the metrics endpoint.
    let console = console
        .map(|(addr, token)| RunConsole::bind(addr, token))
        .transpose()?;
    let spec = PipelineSpec::resolve(load(&path)?, None)?;
    let cfg = &spec.cfg;
    let name = cfg.name.clone();
    let workers = parallelism
        .or(cfg.parallelism)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let opts = pipeline::Options {
        discard_checkpoint,
        console: console.as_ref().map(|c| c.telemetry.clone()),
        parallelism: workers,
        ..pipeline::Options::default()
    };
    // The metrics endpoint is bound before any sink opens: a taken address stops the run
    // before it writes anything.
    let id = crate::serve::PipelineId::new("local", name.as_str());
    let metrics = match metrics_addr {
        Some(addr) => {
            let listener = std::net::TcpListener::bind(addr).with_context(|| {
                format!("binding the metrics endpoint to {addr} (--metrics-addr)")
            })?;
            let metrics = Arc::new(crate::serve::Metrics::new());
            crate::serve::metrics::serve_standalone(listener, metrics.clone())?;
            tracing::info!(%addr, "metrics at /metrics");
            Some(metrics)
        }
        None if console.is_some() => Some(Arc::new(crate::serve::Metrics::new())),
        None => None,
    };
    let key = cfg.schema.key.clone();
    let mut p = if native {
        let stem = cfg
            .plugin
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let params: Vec<(String, String)> = cfg
            .plugin
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let plugin =
            crate::plugin::native::NativePlugin::new(&stem, &params, &cfg.schema.key, spec.limits)?;
        crate::plugin::check_inputs(plugin.info(), |n| spec.schema.type_of(n))?;
        crate::plugin::check_outputs(plugin.info(), &cfg.schema.key)?;
        Pipeline::build(spec, plugin, opts)?
    } else {
        let mut runtime = Runtime::new(cfg.plugin.limits.fuel.is_some())?;
        if let Some(dir) = compiled_cache_dir() {
            runtime = runtime.with_cache_dir(dir);
        }
        if let Some(m) = &metrics {
            runtime = runtime.with_compile_meter(m.compile_meter());
        }
        let mut plugin = pipeline::load_plugin(&spec, &runtime)?;
        if let Some(m) = &metrics {
            plugin.meter_calls(m.call_meter(&id));
        }
        Pipeline::build(spec, plugin, opts)?
    };
    tracing::info!(pipeline = %name, source = %p.source_description(), plugin = %p.plugin_info().name, workers, "running");
    let local = match (console, &metrics) {
        (Some(c), Some(m)) => Some(c.start(id.clone(), key, m.clone())?),
        _ => None,
    };
    let summary = match &metrics {
        Some(m) => {
            m.watch_sinks(&id, p.sink_health());
            if let Some(l) = &local {
                l.update(&p);
            }
            let mut publisher = crate::serve::Publisher::new(m.clone(), id);
            let ran = p.run_observed(progress, &stop.flag, &mut |p| {
                publisher.publish(p, false);
                publisher.restarts(p);
                if let Some(l) = &local {
                    l.update(p);
                }
            });
            if let Some(l) = &local {
                l.finish(ran.as_ref().err().map(|e| format!("{e:#}")));
            }
            ran?
        }
        None => p.run_until(progress, &stop.flag)?,
    };
    let stopped = p.was_stopped().then(|| stop.number.load(Ordering::SeqCst));
    if json_summary {
        eprintln!("{}", serde_json::to_string(&summary)?);
    } else {
        eprintln!("weir run: {name}\n{summary}");
    }
    if let Some(sig) = stopped {
        let (open, _) = p.state_size();
        eprintln!(
            "weir run: stopped by {} before the end of input; every sink was flushed; {open} open window(s) were not fired",
            if sig == 2 { "SIGINT" } else { "SIGTERM" }
        );
        // The sinks are flushed and the summary printed: nothing is left to drop.
        std::process::exit(128 + sig);
    }
    Ok(())
}

/// Where `weir run` keeps compiled plugins, so that running the same component again
/// skips Cranelift (≈ 0.2 s for the example plugins): `$WEIR_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/weir/compiled`, else `~/.cache/weir/compiled`. `WEIR_CACHE_DIR=""`
/// turns it off. The directory holds native code: it must be private to the user.
fn compiled_cache_dir() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(dir) = std::env::var_os("WEIR_CACHE_DIR") {
        return (!dir.is_empty()).then(|| PathBuf::from(dir));
    }
    var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("weir/compiled"))
}

fn serve(path: &std::path::Path) -> anyhow::Result<()> {
    // Everything that can refuse the start is checked before any pipeline opens its sinks
    // (a `truncate` sink is emptied when it opens): the config, the admin address, the
    // plugin directory, then every pipeline's plugin (`Host::start`).
    let cfg = crate::config::HostConfig::load(path)?;
    let listen = cfg.admin.listen;
    let listener = std::net::TcpListener::bind(listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .with_context(|| format!("binding the admin API to {listen} (admin.listen)"))?;
    let plugin_dir = cfg.plugins.dir.as_ref().map(|d| cfg.resolve(d));
    if let Some(dir) = &plugin_dir {
        crate::serve::check_plugin_dir(dir)?;
    }
    let host = std::sync::Arc::new(crate::serve::Host::start(&cfg)?);
    let _watcher = match &plugin_dir {
        Some(dir) => {
            let debounce = std::time::Duration::from_millis(cfg.plugins.debounce.0.max(1) as u64);
            Some(crate::serve::watch_plugin_dir(host.clone(), dir, debounce)?)
        }
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let control: std::sync::Arc<dyn crate::serve::HostControl> = host.clone();
    let limits = crate::admin::AdminLimits::of(&cfg);
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)
            .with_context(|| format!("serving the admin API on {listen}"))?;
        let shutdown = shutdown_signal()?;
        crate::admin::serve_with(listener, control, limits, shutdown).await?;
        anyhow::Ok(())
    })?;
    tracing::info!("shutting down: flushing every pipeline's sinks");
    host.shutdown();
    tracing::info!("stopped; every pipeline's sinks were flushed");
    Ok(())
}

/// Resolves at the first SIGTERM (what supervisors send) or SIGINT (Ctrl-C). Registered
/// before the admin API starts, so a signal is never missed.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    Ok(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "stopping");
    })
}
