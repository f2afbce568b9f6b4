//! The `weir` command line: `run`, `check` and `gen`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{Format, GeneratorConfig, Millis, PipelineConfig, Workload};
use crate::decode::Schema;
use crate::pipeline::{self, Pipeline};
use crate::plugin::Runtime;

/// Weir: user-defined window aggregations as sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline until its input ends, then print a summary.
    Run {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Print the summary as one JSON object instead of a table.
        #[arg(long)]
        json_summary: bool,
        /// Never draw a progress bar.
        #[arg(long)]
        no_progress: bool,
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Run {
            pipeline,
            json_summary,
            no_progress,
        } => run(
            pipeline,
            json_summary,
            !no_progress && std::io::stderr().is_terminal(),
        ),
        Command::Check { pipeline } => check(pipeline),
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

fn run(path: PathBuf, json_summary: bool, progress: bool) -> anyhow::Result<()> {
    let cfg = load(&path)?;
    let name = cfg.name.clone();
    let runtime = Runtime::new(cfg.plugin.limits.fuel.is_some())?;
    let mut p = Pipeline::build(cfg, &runtime)?;
    tracing::info!(pipeline = %name, source = %p.source_description(), plugin = %p.plugin_info().name, "running");
    let summary = p.run(progress)?;
    if json_summary {
        eprintln!("{}", serde_json::to_string(&summary)?);
    } else {
        eprintln!("weir run: {name}\n{summary}");
    }
    Ok(())
}

fn check(path: PathBuf) -> anyhow::Result<()> {
    let cfg = load(&path)?;
    let schema = Schema::new(&cfg.schema).map_err(|e| anyhow::anyhow!("schema: {e}"))?;
    let runtime = Runtime::new(cfg.plugin.limits.fuel.is_some())?;
    let inst = pipeline::load_plugin(&cfg, &schema, &runtime)?;
    let info = inst.info();
    println!("{}: ok", path.display());
    println!("  plugin   {} {}", info.name, info.version);
    let inputs: Vec<String> = info
        .inputs
        .iter()
        .map(|(n, t)| format!("{n}: {t}"))
        .collect();
    println!("  inputs   {}", inputs.join(", "));
    println!("  filter   {}", if info.has_filter { "yes" } else { "no" });
    println!(
        "  columns  {}",
        pipeline::output_columns(&cfg, info).join(", ")
    );
    Ok(())
}
