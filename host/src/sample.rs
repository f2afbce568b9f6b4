//! `weir plugin test`: runs a built component over a sample of events under a pipeline's
//! settings (schema, window, watermark, emit, params) and prints the result rows as a
//! table, with the late, malformed and failed records after it. For a tenant who has a
//! pipeline file from the operator but no pipeline of its own to edit.
//!
//! The pipeline's sinks and checkpoint are left out: rows, late events, dead letters and
//! plugin errors go to files in a temporary directory, read back and printed. It does not
//! change the pipeline file nor write anywhere else.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use serde_json::Value as Json;

use crate::config::{Format, PipelineConfig, SinkConfig, SinkMode, SourceConfig};
use crate::pipeline::{self, Pipeline, PipelineSpec, Summary};
use crate::plugin::{LogBudget, Plugin as _, Runtime};

/// `weir plugin test` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The built component (`target/wasm32-wasip2/release/<name>.wasm`).
    pub plugin: PathBuf,
    /// The pipeline file whose schema, window, watermark, emit and params the sample runs
    /// under (its `[plugin] path` and sinks are not used).
    #[arg(long)]
    pub pipeline: PathBuf,
    /// Sample records (default: the pipeline's own file source). JSON lines, or CSV for a
    /// `.csv` file, unless the pipeline's source says which.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// A plugin param for this run, `name=value`, over the pipeline's `[plugin.params]`
    /// (repeat for more).
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Print at most this many rows (the count of all is printed).
    #[arg(long, default_value_t = 100)]
    pub max_rows: usize,
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE"))
}

/// What a sample run printed, for the caller to pick an exit code.
#[derive(Debug)]
pub struct Outcome {
    /// The run's counters.
    pub summary: Summary,
    /// The report: the rows' table, then late, malformed and failed records.
    pub report: String,
}

/// The temporary files a sample run writes its outputs to.
struct Outputs {
    rows: PathBuf,
    late: PathBuf,
    dead: PathBuf,
    errors: PathBuf,
}

/// Runs `args.plugin` over the sample and returns the report; compiled code is cached in
/// `cache_dir` when given.
pub fn run(args: &Args, cache_dir: Option<PathBuf>) -> anyhow::Result<Outcome> {
    let mut cfg = PipelineConfig::load(&args.pipeline)?;
    let mut runtime = Runtime::new(cfg.plugin.limits.fuel.is_some())?;
    if let Some(dir) = cache_dir {
        runtime = runtime.with_cache_dir(dir);
    }
    let scratch = tempfile::tempdir().context("creating a temporary directory")?;
    let outputs = Outputs {
        rows: scratch.path().join("rows.jsonl"),
        late: scratch.path().join("late.jsonl"),
        dead: scratch.path().join("dead.jsonl"),
        errors: scratch.path().join("errors.jsonl"),
    };
    sample_config(&mut cfg, args, &outputs)?;
    let spec = PipelineSpec::resolve(cfg, None)?;
    let opts = pipeline::Options::default();
    // The pipeline's log budget, held from before its first instance until the count is
    // read: the guest's lines dropped over it are reported once, below.
    let rate = spec.limits.sandbox.log_lines_per_second;
    let log = LogBudget::for_pipeline(&opts.owner.tenant, &spec.cfg.name, rate);
    let plugin = pipeline::load_plugin(&spec, &runtime)?;
    let columns = pipeline::output_columns(&spec.cfg, plugin.info(), &opts);
    let mut p = Pipeline::build(spec, plugin, opts)?;
    let summary = p.run_until(false, &AtomicBool::new(false))?;
    drop(p);
    let mut report = rows_table(&outputs.rows, &columns, args.max_rows)?;
    report.push_str(&format!(
        "\n{} events read, {} windows fired, {} rows, {} late, {} malformed, {} plugin errors\n",
        summary.counters.events_read,
        summary.counters.windows_fired,
        summary.counters.rows_written,
        summary.counters.late,
        summary.counters.malformed,
        summary.counters.plugin_errors
    ));
    report.push_str(&dropped_lines(log.dropped(), rate));
    for (title, path, fields) in [
        (
            "late events (after every window they belong to had fired)",
            &outputs.late,
            &["ts", "watermark"][..],
        ),
        (
            "malformed records (not passed to the plugin)",
            &outputs.dead,
            &["origin", "offset", "reason"][..],
        ),
        (
            "plugin errors",
            &outputs.errors,
            &["kind", "key", "window_start", "error"][..],
        ),
    ] {
        report.push_str(&side_records(title, path, fields)?);
    }
    Ok(Outcome { summary, report })
}

/// The one line about log lines dropped over the pipeline's budget of `rate` lines a
/// second (the guest's stdout and stderr and the host's lines about failed calls), or
/// nothing when none were.
fn dropped_lines(dropped: u64, rate: u32) -> String {
    if dropped == 0 {
        return String::new();
    }
    format!(
        "{dropped} log lines of the plugin dropped over its limit of {rate} lines/s \
         ([plugin.limits] log_lines_per_second; RUST_LOG=weir::guest=info shows the kept ones)\n"
    )
}

/// Points the pipeline at the sample, the component and the temporary outputs.
fn sample_config(cfg: &mut PipelineConfig, args: &Args, out: &Outputs) -> anyhow::Result<()> {
    cfg.plugin.path = std::path::absolute(&args.plugin)
        .with_context(|| format!("resolving {}", args.plugin.display()))?;
    for (k, v) in &args.params {
        cfg.plugin.params.insert(k.clone(), v.clone());
    }
    if let Some(input) = &args.input {
        let (format, csv) = match &cfg.source {
            SourceConfig::File { format, csv, .. } | SourceConfig::Stdin { format, csv } => {
                (*format, csv.clone())
            }
            SourceConfig::Kafka(k) => (k.format, k.csv.clone()),
            SourceConfig::Generator(g) => (g.format, Default::default()),
        };
        let format = match input.extension().and_then(|e| e.to_str()) {
            Some("csv") => Format::Csv,
            Some("jsonl" | "json" | "ndjson") => Format::Jsonl,
            _ => format,
        };
        let path =
            std::path::absolute(input).with_context(|| format!("resolving {}", input.display()))?;
        cfg.source = SourceConfig::File {
            path: path.to_string_lossy().into_owned(),
            format,
            csv,
        };
    } else if let SourceConfig::Kafka(_) = cfg.source {
        anyhow::bail!(
            "{} reads Kafka; pass --input FILE with sample records (one JSON object a line, or CSV)",
            args.pipeline.display()
        );
    }
    let file = |path: &Path| SinkConfig::File {
        path: path.to_path_buf(),
        format: Format::Jsonl,
        mode: SinkMode::Truncate,
        sync: false,
    };
    cfg.sink = file(&out.rows);
    cfg.late_sink = Some(file(&out.late));
    cfg.dead_letter = Some(file(&out.dead));
    cfg.error_sink = Some(file(&out.errors));
    cfg.checkpoint = None;
    cfg.parallelism = Some(1);
    cfg.validate()
        .map_err(|e| anyhow::anyhow!("{} with the sample: {e}", args.pipeline.display()))
}

/// The JSON lines of `path` (none if it was never written).
fn read_lines(path: &Path) -> anyhow::Result<Vec<serde_json::Map<String, Json>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).with_context(|| format!("reading a row of {}", path.display()))
        })
        .collect()
}

/// A cell: strings without quotes, null empty, anything else as JSON.
fn cell(v: Option<&Json>) -> String {
    match v {
        None | Some(Json::Null) => String::new(),
        Some(Json::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The result rows as a table in `columns`' order, at most `max` of them.
fn rows_table(path: &Path, columns: &[String], max: usize) -> anyhow::Result<String> {
    let rows = read_lines(path)?;
    if rows.is_empty() {
        return Ok("no rows: no window fired (are there events past the end of a window, and past the watermark delay?)\n".into());
    }
    let header: Vec<&str> = columns.iter().map(String::as_str).collect();
    let right: Vec<bool> = columns
        .iter()
        .map(|c| {
            rows.iter()
                .any(|r| matches!(r.get(c), Some(Json::Number(_))))
        })
        .collect();
    let cells = rows
        .iter()
        .take(max)
        .map(|r| columns.iter().map(|c| cell(r.get(c))).collect())
        .collect();
    let mut out = crate::admin::render::table(&header, &right, cells);
    if rows.len() > max {
        out.push_str(&format!("… {} more rows (--max-rows)\n", rows.len() - max));
    }
    Ok(out)
}

/// `title` and one line per record of `path` with `fields`, or nothing when it is empty.
fn side_records(title: &str, path: &Path, fields: &[&str]) -> anyhow::Result<String> {
    let records = read_lines(path)?;
    if records.is_empty() {
        return Ok(String::new());
    }
    let mut out = format!("\n{title}:\n");
    for r in records.iter().take(20) {
        let parts: Vec<String> = fields
            .iter()
            .filter_map(|f| {
                let v = cell(r.get(*f));
                (!v.is_empty()).then(|| format!("{f}={v}"))
            })
            .collect();
        out.push_str(&format!("  {}\n", parts.join("  ")));
    }
    if records.len() > 20 {
        out.push_str(&format!("  … {} more\n", records.len() - 20));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_split_at_the_first_equals_sign() {
        assert_eq!(
            parse_param("expr=a=b").unwrap(),
            ("expr".to_string(), "a=b".to_string())
        );
        assert!(parse_param("noequals").is_err());
        assert!(parse_param("=v").is_err());
    }

    #[test]
    fn dropped_log_lines_are_one_line_or_none() {
        assert_eq!(dropped_lines(0, 10), "");
        assert_eq!(
            dropped_lines(58, 10),
            "58 log lines of the plugin dropped over its limit of 10 lines/s ([plugin.limits] \
             log_lines_per_second; RUST_LOG=weir::guest=info shows the kept ones)\n"
        );
    }

    #[test]
    fn cells_show_strings_bare_and_null_empty() {
        assert_eq!(cell(Some(&Json::String("AAPL".into()))), "AAPL");
        assert_eq!(cell(Some(&Json::Null)), "");
        assert_eq!(cell(None), "");
        assert_eq!(cell(Some(&serde_json::json!(2.5))), "2.5");
    }
}
