//! The benchmark suite's fixed workloads: their generated inputs (cached on disk) and the
//! pipeline file each variant runs.
//!
//! Owns what is measured; not how (see [`super::measure`]) nor how it is reported (see
//! [`super::report`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;

use crate::config::{Format, GeneratorConfig, Millis, Workload as Generated};

/// How a workload's aggregate runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Variant {
    /// The plugin's wasm component, whole-window style (what `weir run` does by default).
    Wasm,
    /// The same plugin compiled into the host (`weir run --native`, a benchmark-only path).
    Native,
    /// The plugin's incremental wasm component (`<plugin>_incremental.wasm`).
    Incremental,
}

impl Variant {
    /// Every variant, in the order the suite runs them (wasm first: the others are
    /// compared with its output).
    pub const ALL: [Variant; 3] = [Variant::Wasm, Variant::Native, Variant::Incremental];

    /// The name used on the command line and in the table.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Wasm => "wasm",
            Variant::Native => "native",
            Variant::Incremental => "incremental",
        }
    }
}

/// The synthetic input of a workload: one `weir gen` invocation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Data {
    /// Which generator workload.
    pub workload: Generated,
    /// Events at scale 1.
    pub count: u64,
    /// Distinct keys.
    pub keys: u32,
    /// Event-time spacing, ms.
    pub interval_ms: i64,
    /// Out-of-order jitter, ms.
    pub jitter_ms: i64,
    /// Random seed.
    pub seed: u64,
    /// Encoding.
    pub format: Format,
}

impl Data {
    /// The generator settings at `scale` (the count shrunk or grown, at least 1 event).
    pub fn generator(&self, scale: f64) -> GeneratorConfig {
        GeneratorConfig {
            workload: self.workload,
            count: scaled(self.count, scale),
            rate: 0,
            keys: self.keys,
            interval: Millis(self.interval_ms),
            jitter: Millis(self.jitter_ms),
            seed: self.seed,
            start: None,
            format: self.format,
        }
    }

    /// The cache file name: every generator setting is in it, so a file is reused only
    /// for exactly the events it holds.
    pub fn file_name(&self, scale: f64) -> String {
        let workload = match self.workload {
            Generated::Stocks => "stocks",
            Generated::Taxi => "taxi",
            Generated::Ticker => "ticker",
        };
        format!(
            "{workload}-n{}-k{}-i{}ms-j{}ms-s{}.{}",
            scaled(self.count, scale),
            self.keys,
            self.interval_ms,
            self.jitter_ms,
            self.seed,
            extension(self.format)
        )
    }
}

/// `count · scale`, rounded, at least 1.
pub fn scaled(count: u64, scale: f64) -> u64 {
    ((count as f64 * scale).round() as u64).max(1)
}

fn extension(format: Format) -> &'static str {
    match format {
        Format::Jsonl => "jsonl",
        Format::Csv => "csv",
    }
}

/// The aggregate a workload runs, with its params.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// `stats` on `price`, optionally rounded.
    Stats {
        /// `decimals` param, if set.
        decimals: Option<u32>,
    },
    /// `fare-totals` on fare, tips and trip_total, rounded to cents.
    FareTotals,
    /// `hotspot`: trips and distinct pick-up locations per community area.
    Hotspot,
}

impl Aggregate {
    /// The plugin's file stem under the plugin directory for a variant, or `None` where
    /// the variant does not apply (no incremental version).
    pub fn plugin_stem(self, variant: Variant) -> Option<&'static str> {
        let incremental = variant == Variant::Incremental;
        match self {
            Aggregate::Stats { .. } if incremental => Some("stats_incremental"),
            Aggregate::Stats { .. } => Some("stats"),
            Aggregate::FareTotals if incremental => Some("fare_totals_incremental"),
            Aggregate::FareTotals => Some("fare_totals"),
            Aggregate::Hotspot if incremental => None,
            Aggregate::Hotspot => Some("hotspot"),
        }
    }

    fn params(self) -> toml::Table {
        let mut t = toml::Table::new();
        let mut set = |k: &str, v: String| {
            t.insert(k.into(), toml::Value::String(v));
        };
        match self {
            Aggregate::Stats { decimals } => {
                set("field", "price".into());
                if let Some(d) = decimals {
                    set("decimals", d.to_string());
                }
            }
            Aggregate::FareTotals => {
                set("fields", "fare,tips,trip_total".into());
                set("decimals", "2".into());
            }
            Aggregate::Hotspot => {
                set("distinct", "pickup_location".into());
                set("distinct_type", "string".into());
            }
        }
        t
    }
}

/// The window of a workload, as durations in the pipeline file's syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSpec {
    /// `kind = "tumbling"`.
    Tumbling(&'static str),
    /// `kind = "sliding"`: size, slide.
    Sliding(&'static str, &'static str),
    /// `kind = "cumulative"`: size, step.
    Cumulative(&'static str, &'static str),
}

/// The schema of a generated input, as the shipped pipelines declare it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaSpec {
    /// Stock ticks keyed by symbol.
    Stocks,
    /// Taxi trips, no key (fare totals over all trips).
    TaxiFares,
    /// Taxi trips keyed by pick-up community area.
    TaxiAreas,
}

/// A target of issue 7 that a row is set against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// Wall time of the whole `weir run` process at most this many seconds.
    MaxWall(f64),
    /// At least this many events per second per core, for the wasm aggregates.
    MinPerCore(f64),
    /// Wall time at most `max` times that of the same variant of workload `base`.
    WithinOf {
        /// The workload compared with.
        base: &'static str,
        /// Largest ratio that meets the target.
        max: f64,
    },
}

/// One workload of the suite.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Name used by `--only` and in the table.
    pub name: &'static str,
    /// Its input.
    pub data: Data,
    /// Its schema.
    pub schema: SchemaSpec,
    /// Its window.
    pub window: WindowSpec,
    /// Watermark delay.
    pub delay: &'static str,
    /// Its aggregate.
    pub aggregate: Aggregate,
    /// Result rows as CSV (else JSON lines), as the shipped pipeline writes them.
    pub csv_out: bool,
    /// The target it is set against, besides wasm ÷ native.
    pub target: Option<Target>,
}

/// Largest wasm ÷ native wall-time ratio that meets issue 7's target.
pub const MAX_WASM_OVER_NATIVE: f64 = 1.15;

const STOCKS_2M: Data = Data {
    workload: Generated::Stocks,
    count: 2_000_000,
    keys: 1000,
    interval_ms: 1,
    jitter_ms: 0,
    seed: 42,
    format: Format::Jsonl,
};

/// The demo's events (pipelines/demo-stocks.toml), as a JSONL file.
const DEMO: Data = Data {
    workload: Generated::Stocks,
    count: 200_000,
    keys: 10,
    interval_ms: 5,
    jitter_ms: 800,
    seed: 7,
    format: Format::Jsonl,
};

/// Taxi trips; the generator's key `k` is pick-up community area `k + 1`, so 77 keys are
/// Chicago's 77 areas. 10 ms apart: about 2.8 hours.
const TAXI: Data = Data {
    workload: Generated::Taxi,
    count: 1_000_000,
    keys: 77,
    interval_ms: 10,
    jitter_ms: 0,
    seed: 42,
    format: Format::Csv,
};

/// 200 000 trips of one day: 86 400 000 ms / 200 000 = 432 ms apart.
const TAXI_DAY: Data = Data {
    workload: Generated::Taxi,
    count: 200_000,
    keys: 77,
    interval_ms: 432,
    jitter_ms: 0,
    seed: 42,
    format: Format::Csv,
};

/// 1 000 000 ticks of 10 symbols, 36 ms apart: 10 hours.
const OVERLAP: Data = Data {
    workload: Generated::Stocks,
    count: 1_000_000,
    keys: 10,
    interval_ms: 36,
    jitter_ms: 0,
    seed: 42,
    format: Format::Jsonl,
};

/// The suite, in the order it runs.
pub const SUITE: [Workload; 8] = [
    Workload {
        name: "stocks-2m",
        data: STOCKS_2M,
        schema: SchemaSpec::Stocks,
        window: WindowSpec::Sliding("3s", "1s"),
        delay: "1s",
        aggregate: Aggregate::Stats { decimals: None },
        csv_out: false,
        target: Some(Target::MaxWall(1.0)),
    },
    Workload {
        name: "demo",
        data: DEMO,
        schema: SchemaSpec::Stocks,
        window: WindowSpec::Sliding("3s", "1s"),
        delay: "1s",
        // Unrounded (the demo rounds to 4 places): rounding would turn the last-bit
        // differences between whole-window and incremental into 1e-4 ones at ties.
        aggregate: Aggregate::Stats { decimals: None },
        csv_out: false,
        target: Some(Target::MinPerCore(1_000_000.0)),
    },
    Workload {
        name: "taxi-fares",
        data: TAXI,
        schema: SchemaSpec::TaxiFares,
        window: WindowSpec::Tumbling("5s"),
        delay: "3s",
        aggregate: Aggregate::FareTotals,
        csv_out: true,
        target: None,
    },
    Workload {
        name: "taxi-hotspots",
        data: TAXI,
        schema: SchemaSpec::TaxiAreas,
        window: WindowSpec::Sliding("1m", "30s"),
        delay: "3s",
        aggregate: Aggregate::Hotspot,
        csv_out: false,
        target: None,
    },
    Workload {
        name: "taxi-today-6h",
        data: TAXI_DAY,
        schema: SchemaSpec::TaxiFares,
        window: WindowSpec::Cumulative("1d", "6h"),
        delay: "3s",
        aggregate: Aggregate::FareTotals,
        csv_out: false,
        target: None,
    },
    Workload {
        name: "taxi-today-1m",
        data: TAXI_DAY,
        schema: SchemaSpec::TaxiFares,
        window: WindowSpec::Cumulative("1d", "1m"),
        delay: "3s",
        aggregate: Aggregate::FareTotals,
        csv_out: false,
        target: Some(Target::WithinOf {
            base: "taxi-today-6h",
            max: 1.5,
        }),
    },
    Workload {
        name: "overlap-10s",
        data: OVERLAP,
        schema: SchemaSpec::Stocks,
        window: WindowSpec::Sliding("10s", "1s"),
        delay: "1s",
        aggregate: Aggregate::Stats { decimals: None },
        csv_out: false,
        target: None,
    },
    Workload {
        name: "overlap-1h",
        data: OVERLAP,
        schema: SchemaSpec::Stocks,
        window: WindowSpec::Sliding("1h", "1s"),
        delay: "1s",
        aggregate: Aggregate::Stats { decimals: None },
        csv_out: false,
        target: Some(Target::WithinOf {
            base: "overlap-10s",
            max: 1.5,
        }),
    },
];

/// The workload named `name`.
pub fn find(name: &str) -> Option<&'static Workload> {
    SUITE.iter().find(|w| w.name == name)
}

/// The input file of `data` at `scale` in `dir`, generated first unless it is there.
/// Generation writes a temporary file and renames it, so an interrupted one is not
/// mistaken for a complete file; progress goes to stderr.
pub fn ensure_data(dir: &Path, data: &Data, scale: f64) -> anyhow::Result<PathBuf> {
    let path = dir.join(data.file_name(scale));
    if path.exists() {
        return Ok(path);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cfg = data.generator(scale);
    let partial = dir.join(format!("{}.partial", data.file_name(scale)));
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let started = Instant::now();
    let mut out = Progress {
        inner: std::io::BufWriter::with_capacity(1 << 20, file),
        name: data.file_name(scale),
        total: cfg.count,
        lines: 0,
        bytes: 0,
        shown: 0,
    };
    crate::source::write_generated(&cfg, &mut out)
        .with_context(|| format!("generating {}", partial.display()))?;
    out.inner.flush()?;
    eprintln!(
        "\rbench: generated {} ({} events, {:.0} MB) in {:.1} s",
        out.name,
        cfg.count,
        out.bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    std::fs::rename(&partial, &path)
        .with_context(|| format!("renaming {} to {}", partial.display(), path.display()))?;
    Ok(path)
}

/// A writer that counts the lines through it and shows the share done on stderr.
struct Progress<W> {
    inner: W,
    name: String,
    total: u64,
    lines: u64,
    bytes: u64,
    /// Last percentage shown.
    shown: u64,
}

impl<W: Write> Write for Progress<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        self.lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        let percent = (self.lines * 100 / self.total.max(1)).min(100);
        if percent >= self.shown + 10 {
            self.shown = percent;
            eprint!("\rbench: generating {}: {percent}%", self.name);
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The pipeline file (TOML) that runs `workload` with the plugin at `plugin`, reading
/// `input` and writing its rows to `out`.
pub fn pipeline_toml(
    workload: &Workload,
    variant: Variant,
    input: &Path,
    plugin: &Path,
    out: &Path,
) -> String {
    use toml::Value::String as S;
    fn table(pairs: Vec<(&str, toml::Value)>) -> toml::Value {
        toml::Value::Table(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }
    fn path(p: &Path) -> toml::Value {
        S(p.display().to_string())
    }
    fn strings(items: &[&str]) -> toml::Value {
        toml::Value::Array(items.iter().map(|s| S(s.to_string())).collect())
    }
    let (ts_field, ts_format, key, fields): (_, _, &[&str], &[(&str, &str)]) = match workload.schema
    {
        SchemaSpec::Stocks => (
            "ts",
            "rfc3339",
            &["symbol"],
            &[("symbol", "string"), ("price", "f64"), ("volume", "i64")],
        ),
        SchemaSpec::TaxiFares => (
            "trip_start_timestamp",
            "%m/%d/%Y %I:%M:%S %p",
            &[],
            &[
                ("trip_id", "string"),
                ("fare", "f64"),
                ("tips", "f64"),
                ("trip_total", "f64"),
            ],
        ),
        SchemaSpec::TaxiAreas => (
            "trip_start_timestamp",
            "%m/%d/%Y %I:%M:%S %p",
            &["pickup_community_area"],
            &[
                ("pickup_community_area", "i64"),
                ("pickup_location", "string"),
            ],
        ),
    };
    let window = match workload.window {
        WindowSpec::Tumbling(size) => table(vec![
            ("kind", S("tumbling".into())),
            ("size", S(size.into())),
        ]),
        WindowSpec::Sliding(size, slide) => table(vec![
            ("kind", S("sliding".into())),
            ("size", S(size.into())),
            ("slide", S(slide.into())),
        ]),
        WindowSpec::Cumulative(size, step) => table(vec![
            ("kind", S("cumulative".into())),
            ("size", S(size.into())),
            ("step", S(step.into())),
        ]),
    };
    let doc = table(vec![
        (
            "name",
            S(format!("bench-{}-{}", workload.name, variant.name())),
        ),
        (
            "source",
            table(vec![
                ("kind", S("file".into())),
                ("path", path(input)),
                ("format", S(extension(workload.data.format).into())),
            ]),
        ),
        (
            "schema",
            table(vec![
                (
                    "timestamp",
                    table(vec![
                        ("field", S(ts_field.into())),
                        ("format", S(ts_format.into())),
                    ]),
                ),
                ("key", strings(key)),
                (
                    "fields",
                    table(fields.iter().map(|&(k, t)| (k, S(t.into()))).collect()),
                ),
            ]),
        ),
        ("window", window),
        (
            "watermark",
            table(vec![("delay", S(workload.delay.into()))]),
        ),
        (
            "plugin",
            table(vec![
                ("path", path(plugin)),
                ("params", toml::Value::Table(workload.aggregate.params())),
            ]),
        ),
        (
            "sink",
            table(vec![
                ("kind", S("file".into())),
                ("path", path(out)),
                (
                    "format",
                    S(if workload.csv_out { "csv" } else { "jsonl" }.into()),
                ),
                ("mode", S("truncate".into())),
            ]),
        ),
    ]);
    // A table of strings, arrays and tables always serializes.
    toml::to_string(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PipelineConfig;

    #[test]
    fn every_pipeline_parses_and_names_its_paths() {
        for w in &SUITE {
            for v in Variant::ALL {
                let Some(stem) = w.aggregate.plugin_stem(v) else {
                    assert_eq!((w.name, v), ("taxi-hotspots", Variant::Incremental));
                    continue;
                };
                let plugin = PathBuf::from(format!("/p/{stem}.wasm"));
                let text = pipeline_toml(w, v, Path::new("/d/in"), &plugin, Path::new("/o/out"));
                let cfg = PipelineConfig::parse(&text)
                    .unwrap_or_else(|e| panic!("{} {}: {e}\n{text}", w.name, v.name()));
                assert_eq!(cfg.plugin.path, plugin);
            }
        }
    }

    #[test]
    fn names_are_unique_and_ratio_bases_exist() {
        for (i, w) in SUITE.iter().enumerate() {
            assert!(SUITE[..i].iter().all(|o| o.name != w.name), "{}", w.name);
            if let Some(Target::WithinOf { base, .. }) = w.target {
                assert!(find(base).is_some(), "{base}");
            }
        }
    }

    #[test]
    fn the_help_of_only_names_every_workload() {
        use clap::CommandFactory;
        let cli = crate::cli::Cli::command();
        let bench = cli.find_subcommand("bench").expect("a bench subcommand");
        let only = bench
            .get_arguments()
            .find(|a| a.get_id() == "only")
            .and_then(|a| a.get_help())
            .map(|h| h.to_string())
            .expect("--only has help");
        for w in &SUITE {
            assert!(only.contains(w.name), "--only's help misses {}", w.name);
        }
    }

    #[test]
    fn scale_shrinks_counts_and_names_the_file() {
        assert_eq!(scaled(200_000, 0.01), 2_000);
        assert_eq!(scaled(10, 0.001), 1);
        assert_eq!(
            DEMO.file_name(0.01),
            "stocks-n2000-k10-i5ms-j800ms-s7.jsonl"
        );
        assert_eq!(TAXI_DAY.generator(1.0).interval, Millis(432));
        // 200 000 trips 432 ms apart span exactly one day.
        assert_eq!(TAXI_DAY.count as i64 * TAXI_DAY.interval_ms, 86_400_000);
    }
}
