//! `weir bench`: runs a fixed suite of workloads through `weir run`, each variant of the
//! aggregate (wasm, native, incremental) as a child process, and prints a table of wall
//! time, throughput, peak memory and the targets.
//!
//! - [`workload`]: the suite, its cached inputs and the pipeline files it writes.
//! - [`measure`]: one child run, timed, with its peak RSS.
//! - [`report`]: medians, targets, output comparison and the table.
//!
//! A variant that cannot run (its plugin is not built, the host lacks its flag, it failed
//! or timed out) is a row with `n/a` and the reason; the suite goes on.

pub mod measure;
pub mod report;
pub mod workload;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::config::Millis;
use report::{Row, Stats, TableFormat};
use workload::{SUITE, Variant, Workload};

/// `weir bench` options.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Only these workloads, comma-separated (default: all). Names: stocks-2m, demo,
    /// taxi-fares, taxi-hotspots, taxi-today-6h, taxi-today-1m, overlap-10s, overlap-1h.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Variants to run, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        value_enum,
        default_value = "wasm,native,incremental"
    )]
    pub variants: Vec<Variant>,
    /// Runs per variant; the table shows the median wall time and the highest peak RSS.
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
    /// Table layout.
    #[arg(long, value_enum, default_value = "text")]
    pub format: TableFormat,
    /// Also write the table to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Where generated inputs and pipeline files are kept and reused (default:
    /// `bench-data/` in the cargo target directory holding this binary, else
    /// `target/bench-data`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Where the plugin components are (default: `wasm32-wasip2/plugin/` in the cargo target
    /// directory holding this binary, else `target/wasm32-wasip2/plugin`).
    #[arg(long)]
    pub plugin_dir: Option<PathBuf>,
    /// A run still going after this long is killed and shown as n/a.
    #[arg(long, default_value = "120s", value_parser = crate::config::parse_millis)]
    pub timeout: Millis,
    /// Worker threads of every run (`weir run --parallelism`; default: its default, one
    /// per core). `events/s/core` divides by the workers a run used.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub parallelism: Option<u16>,
    /// Multiplies every workload's event count (for quick checks and tests).
    #[arg(long, default_value_t = 1.0, hide = true)]
    pub scale: f64,
}

/// The cargo target directory holding the running binary (`target/` of
/// `target/release/weir`), if it is one.
fn target_dir(exe: &Path) -> Option<PathBuf> {
    let profile_dir = exe.parent()?;
    let target = profile_dir.parent()?;
    target
        .join("wasm32-wasip2")
        .exists()
        .then(|| target.to_path_buf())
}

/// Runs the suite as `args` select and prints the table on stdout.
pub fn run(args: Args) -> anyhow::Result<()> {
    if !(args.scale > 0.0 && args.scale.is_finite()) {
        bail!("--scale must be a positive number, not {}", args.scale);
    }
    if args.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    for name in &args.only {
        if workload::find(name).is_none() {
            let names: Vec<&str> = SUITE.iter().map(|w| w.name).collect();
            bail!(
                "--only: no workload `{name}`; the workloads are {}",
                names.join(", ")
            );
        }
    }
    let exe = std::env::current_exe().context("finding the weir binary")?;
    let target = target_dir(&exe);
    let data_dir = args.data_dir.clone().unwrap_or_else(|| {
        target
            .as_ref()
            .map_or_else(|| PathBuf::from("target"), Clone::clone)
            .join("bench-data")
    });
    let plugin_dir = args.plugin_dir.clone().unwrap_or_else(|| {
        target
            .as_ref()
            .map_or_else(|| PathBuf::from("target"), Clone::clone)
            .join("wasm32-wasip2/plugin")
    });
    let mut variants = args.variants.clone();
    variants.sort();
    variants.dedup();
    let scratch = std::env::temp_dir().join(format!("weir-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let suite = Suite {
        exe,
        data_dir,
        plugin_dir,
        scratch: scratch.clone(),
        args: &args,
    };
    let result = suite.run_all(&variants);
    let _ = std::fs::remove_dir_all(&scratch);
    let mut rows = result?;
    report::set_targets(&mut rows);
    let table = report::render(&rows, args.format);
    print!("{table}");
    if let Some(out) = &args.out {
        std::fs::write(out, &table).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

/// Where a suite run reads and writes.
struct Suite<'a> {
    exe: PathBuf,
    data_dir: PathBuf,
    plugin_dir: PathBuf,
    /// Sinks' files, removed at the end.
    scratch: PathBuf,
    args: &'a Args,
}

impl Suite<'_> {
    fn run_all(&self, variants: &[Variant]) -> anyhow::Result<Vec<Row>> {
        let mut rows = Vec::new();
        for w in SUITE
            .iter()
            .filter(|w| self.args.only.is_empty() || self.args.only.iter().any(|n| n == w.name))
        {
            rows.extend(self.run_workload(w, variants)?);
        }
        Ok(rows)
    }

    /// Every applicable variant of one workload, then their outputs compared with wasm's.
    fn run_workload(&self, w: &Workload, variants: &[Variant]) -> anyhow::Result<Vec<Row>> {
        let input = workload::ensure_data(&self.data_dir, &w.data, self.args.scale)?;
        let pipelines = self.data_dir.join("pipelines");
        std::fs::create_dir_all(&pipelines)
            .with_context(|| format!("creating {}", pipelines.display()))?;
        let mut rows = Vec::new();
        let mut outputs = Vec::new();
        for &variant in variants {
            let Some(stem) = w.aggregate.plugin_stem(variant) else {
                continue;
            };
            let ext = if w.csv_out { "csv" } else { "jsonl" };
            let out = self
                .scratch
                .join(format!("{}-{}.{ext}", w.name, variant.name()));
            let outcome = self.measure(w, variant, stem, &input, &pipelines, &out);
            if outcome.is_ok() {
                outputs.push((variant, out));
            }
            rows.push(Row {
                workload: w.name,
                variant,
                outcome,
                same_rows: None,
                target: String::new(),
            });
        }
        if let Some((_, reference)) = outputs.iter().find(|(v, _)| *v == Variant::Wasm) {
            for (variant, out) in outputs.iter().filter(|(v, _)| *v != Variant::Wasm) {
                let same = match variant {
                    Variant::Native => report::identical(reference, out),
                    _ => report::same_rows(reference, out),
                };
                if let Some(row) = rows.iter_mut().find(|r| r.variant == *variant) {
                    row.same_rows = same.ok();
                }
            }
        }
        for (_, out) in outputs {
            let _ = std::fs::remove_file(out);
        }
        Ok(rows)
    }

    /// Runs one variant `repeat` times; the first failure ends it.
    fn measure(
        &self,
        w: &Workload,
        variant: Variant,
        stem: &str,
        input: &Path,
        pipelines: &Path,
        out: &Path,
    ) -> Result<Stats, String> {
        let plugin = self.plugin_dir.join(format!("{stem}.wasm"));
        if !plugin.exists() {
            return Err(format!(
                "{stem}.wasm not built (not in {})",
                self.plugin_dir.display()
            ));
        }
        let toml = workload::pipeline_toml(w, variant, input, &plugin, out);
        let file = pipelines.join(format!("{}-{}.toml", w.name, variant.name()));
        std::fs::write(&file, toml).map_err(|e| format!("writing {}: {e}", file.display()))?;
        let mut extra: Vec<String> = match variant {
            Variant::Native => vec!["--native".into()],
            Variant::Wasm | Variant::Incremental => Vec::new(),
        };
        if let Some(n) = self.args.parallelism {
            extra.extend(["--parallelism".into(), n.to_string()]);
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let timeout = Duration::from_millis(self.args.timeout.0.max(1) as u64);
        let mut runs = Vec::new();
        for i in 1..=self.args.repeat {
            eprint!(
                "bench: {} {} run {i}/{} … ",
                w.name,
                variant.name(),
                self.args.repeat
            );
            match measure::run(&self.exe, &extra, &file, timeout) {
                Ok(m) => {
                    eprintln!("{:.3} s", m.wall_seconds);
                    runs.push(m);
                }
                Err(reason) => {
                    eprintln!("n/a: {reason}");
                    return Err(reason);
                }
            }
        }
        let walls: Vec<f64> = runs.iter().map(|m| m.wall_seconds).collect();
        let last = runs.last().ok_or("no run")?;
        Ok(Stats {
            events: last.count("events_read"),
            wall_seconds: report::median(&walls),
            cores: last.cores(),
            max_rss_kib: runs.iter().map(|m| m.max_rss_kib).max().unwrap_or(0),
            rows: last.count("rows_written"),
            malformed: last.count("malformed"),
            late: last.count("late"),
            plugin_errors: last.count("plugin_errors"),
        })
    }
}
