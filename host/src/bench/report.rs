//! The suite's results: one row per (workload, variant), set against issue 7's targets,
//! with a check that variants of one workload wrote the same rows, rendered as a text or
//! Markdown table.
//!
//! Owns the arithmetic and the layout; not how runs are made.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::workload::{self, Target, Variant};

/// What a (workload, variant) measured over its repetitions.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// Events read (the child's summary).
    pub events: u64,
    /// Median wall time, seconds.
    pub wall_seconds: f64,
    /// Cores the run could use.
    pub cores: u64,
    /// Highest peak RSS of the repetitions, KiB.
    pub max_rss_kib: u64,
    /// Result rows written.
    pub rows: u64,
    /// Records dead-lettered (failed to decode or over a limit).
    pub malformed: u64,
    /// Late events.
    pub late: u64,
    /// Failed plugin calls.
    pub plugin_errors: u64,
}

impl Stats {
    /// Events per second of wall time.
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.wall_seconds.max(1e-9)
    }

    /// Events per second per core the run could use.
    pub fn per_core(&self) -> f64 {
        self.events_per_second() / self.cores.max(1) as f64
    }
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Workload name.
    pub workload: &'static str,
    /// Variant.
    pub variant: Variant,
    /// Its measurements, or why there are none.
    pub outcome: Result<Stats, String>,
    /// Whether its output matched the wasm variant's (`None`: not compared).
    pub same_rows: Option<bool>,
    /// Its targets, met or missed (filled by [`set_targets`]).
    pub target: String,
}

/// The median of `values` (the mean of the middle two for an even count); 0 when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if !n.is_multiple_of(2) => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "missed" }
}

/// Fills each row's target column from the workload's target and, for native rows, the
/// wasm ÷ native ratio. A ratio whose other row is missing or failed is left out.
pub fn set_targets(rows: &mut [Row]) {
    let wall = |rows: &[Row], name: &str, variant: Variant| {
        rows.iter()
            .find(|r| r.workload == name && r.variant == variant)
            .and_then(|r| r.outcome.as_ref().ok())
            .map(|s| s.wall_seconds)
    };
    let mut texts = Vec::with_capacity(rows.len());
    for row in rows.iter() {
        let mut parts = Vec::new();
        if let Ok(stats) = &row.outcome {
            match workload::find(row.workload).and_then(|w| w.target) {
                Some(Target::MaxWall(max)) => parts.push(format!(
                    "wall ≤ {max:.1} s: {}",
                    verdict(stats.wall_seconds <= max)
                )),
                Some(Target::MinPerCore(min)) if row.variant != Variant::Native => {
                    parts.push(format!(
                        "≥ {} ev/s/core: {}",
                        si(min),
                        verdict(stats.per_core() >= min)
                    ))
                }
                Some(Target::WithinOf { base, max }) => {
                    if let Some(b) = wall(rows, base, row.variant) {
                        let ratio = stats.wall_seconds / b.max(1e-9);
                        parts.push(format!(
                            "÷ {base} {ratio:.2} ≤ {max}: {}",
                            verdict(ratio <= max)
                        ));
                    }
                }
                _ => {}
            }
            if row.variant == Variant::Native
                && let Some(w) = wall(rows, row.workload, Variant::Wasm)
            {
                let ratio = w / stats.wall_seconds.max(1e-9);
                parts.push(format!(
                    "wasm÷native {ratio:.2} ≤ {}: {}",
                    workload::MAX_WASM_OVER_NATIVE,
                    verdict(ratio <= workload::MAX_WASM_OVER_NATIVE)
                ));
            }
        }
        texts.push(parts.join("; "));
    }
    for (row, text) in rows.iter_mut().zip(texts) {
        row.target = text;
    }
}

/// `1000000` as `1M`, `1500` as `1.5k`: for target thresholds.
fn si(v: f64) -> String {
    let (n, unit) = if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let s = format!("{n:.1}");
    format!("{}{unit}", s.trim_end_matches(".0"))
}

/// Whether two files hold the same bytes.
pub fn identical(a: &Path, b: &Path) -> std::io::Result<bool> {
    if std::fs::metadata(a)?.len() != std::fs::metadata(b)?.len() {
        return Ok(false);
    }
    let (mut a, mut b) = (
        BufReader::new(std::fs::File::open(a)?),
        BufReader::new(std::fs::File::open(b)?),
    );
    let (mut x, mut y) = (vec![0; 1 << 16], vec![0; 1 << 16]);
    loop {
        let n = read_full(&mut a, &mut x)?;
        let m = read_full(&mut b, &mut y)?;
        if n != m || x[..n] != y[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

/// Fills `buf` as far as the reader allows; returns how much was read (short only at EOF).
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Whether two result files hold the same rows in the same order, numbers equal within
/// 1e-9 relative (how whole-window and incremental results must agree). Lines are JSON
/// objects, or CSV cells split on commas.
pub fn same_rows(a: &Path, b: &Path) -> std::io::Result<bool> {
    let mut a = BufReader::new(std::fs::File::open(a)?).lines();
    let mut b = BufReader::new(std::fs::File::open(b)?).lines();
    loop {
        match (a.next().transpose()?, b.next().transpose()?) {
            (None, None) => return Ok(true),
            (Some(x), Some(y)) if lines_match(&x, &y) => {}
            _ => return Ok(false),
        }
    }
}

fn lines_match(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(x), Ok(y)) if x.is_object() => values_match(&x, &y),
        _ => {
            let (x, y): (Vec<&str>, Vec<&str>) = (a.split(',').collect(), b.split(',').collect());
            x.len() == y.len() && x.iter().zip(&y).all(|(p, q)| {
                p == q
                    || matches!((p.parse::<f64>(), q.parse::<f64>()), (Ok(u), Ok(v)) if close(u, v))
            })
        }
    }
}

fn values_match(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (a, b) {
        (J::Number(x), J::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(u), Some(v)) => close(u, v),
            _ => x == y,
        },
        (J::Object(x), J::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| values_match(v, w)))
        }
        (J::Array(x), J::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| values_match(v, w))
        }
        _ => a == b,
    }
}

/// Equal within 1e-9 relative, or 1e-9 absolute below 1 (rounding noise around zero: a
/// two-pass standard deviation of equal values is 1e-14, an incremental one exactly 0).
fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Table layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TableFormat {
    /// Aligned columns for a terminal.
    Text,
    /// A Markdown table, as BENCHMARKS.md holds it.
    Markdown,
}

const HEADER: [&str; 11] = [
    "workload",
    "variant",
    "events",
    "wall s",
    "events/s",
    "events/s/core",
    "peak RSS MiB",
    "rows",
    "same rows",
    "target",
    "notes",
];

/// Columns aligned right (numbers).
const NUMERIC: [bool; 11] = [
    false, false, true, true, true, true, true, true, false, false, false,
];

/// `1234567` as `1 234 567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

fn cells(row: &Row) -> [String; 11] {
    let same = match row.same_rows {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    };
    match &row.outcome {
        Ok(s) => {
            let mut notes = Vec::new();
            for (n, what) in [
                (s.malformed, "dead-lettered"),
                (s.late, "late"),
                (s.plugin_errors, "plugin errors"),
            ] {
                if n > 0 {
                    notes.push(format!("{} {what}", grouped(n)));
                }
            }
            [
                row.workload.to_string(),
                row.variant.name().to_string(),
                grouped(s.events),
                format!("{:.3}", s.wall_seconds),
                grouped(s.events_per_second().round() as u64),
                grouped(s.per_core().round() as u64),
                format!("{:.1}", s.max_rss_kib as f64 / 1024.0),
                grouped(s.rows),
                same.to_string(),
                row.target.clone(),
                notes.join(", "),
            ]
        }
        Err(reason) => {
            let na = || "n/a".to_string();
            [
                row.workload.to_string(),
                row.variant.name().to_string(),
                na(),
                na(),
                na(),
                na(),
                na(),
                na(),
                same.to_string(),
                row.target.clone(),
                reason.clone(),
            ]
        }
    }
}

/// The table of `rows`.
pub fn render(rows: &[Row], format: TableFormat) -> String {
    let body: Vec<[String; 11]> = rows.iter().map(cells).collect();
    let mut widths = HEADER.map(|h| h.chars().count());
    for r in &body {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String; 11]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .zip(NUMERIC)
            .map(|((c, w), right)| {
                if right {
                    format!("{c:>w$}")
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        match format {
            TableFormat::Text => padded.join("  ").trim_end().to_string(),
            TableFormat::Markdown => format!("| {} |", padded.join(" | ")),
        }
    };
    let mut out = String::new();
    out.push_str(&line(&HEADER.map(String::from)));
    out.push('\n');
    match format {
        TableFormat::Text => {
            let total = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
            out.push_str(&"-".repeat(total));
        }
        TableFormat::Markdown => {
            // Each rule spans its cell and the spaces either side; `:` aligns right.
            let rules: Vec<String> = widths
                .iter()
                .zip(NUMERIC)
                .map(|(&w, right)| {
                    if right {
                        format!("{}:", "-".repeat(w + 1))
                    } else {
                        "-".repeat(w + 2)
                    }
                })
                .collect();
            out.push_str(&format!("|{}|", rules.join("|")));
        }
    }
    out.push('\n');
    for r in &body {
        out.push_str(&line(r));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(events: u64, wall: f64) -> Stats {
        Stats {
            events,
            wall_seconds: wall,
            cores: 1,
            max_rss_kib: 2048,
            rows: 10,
            malformed: 0,
            late: 0,
            plugin_errors: 0,
        }
    }

    fn row(workload: &'static str, variant: Variant, outcome: Result<Stats, String>) -> Row {
        Row {
            workload,
            variant,
            outcome,
            same_rows: None,
            target: String::new(),
        }
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn rates_divide_by_wall_time_and_cores() {
        let mut s = stats(2_000_000, 4.0);
        assert_eq!(s.events_per_second(), 500_000.0);
        s.cores = 2;
        assert_eq!(s.per_core(), 250_000.0);
    }

    #[test]
    fn targets_compare_walls_and_ratios() {
        let mut rows = vec![
            row("stocks-2m", Variant::Wasm, Ok(stats(2_000_000, 12.0))),
            // wasm 12.0 s ÷ native 10.0 s = 1.2 > 1.15.
            row("stocks-2m", Variant::Native, Ok(stats(2_000_000, 10.0))),
            row("stocks-2m", Variant::Incremental, Err("no plugin".into())),
            // 200 000 events in 0.1 s = 2 M/s on one core ≥ 1 M.
            row("demo", Variant::Wasm, Ok(stats(200_000, 0.1))),
            row("overlap-10s", Variant::Wasm, Ok(stats(1_000_000, 2.0))),
            // 2.8 s ÷ 2.0 s = 1.40 ≤ 1.5.
            row("overlap-1h", Variant::Wasm, Ok(stats(1_000_000, 2.8))),
            // No native overlap-10s row to divide by: no ratio.
            row("overlap-1h", Variant::Native, Ok(stats(1_000_000, 2.8))),
        ];
        set_targets(&mut rows);
        let t: Vec<&str> = rows.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(
            t,
            [
                "wall ≤ 1.0 s: missed",
                "wall ≤ 1.0 s: missed; wasm÷native 1.20 ≤ 1.15: missed",
                "",
                "≥ 1M ev/s/core: met",
                "",
                "÷ overlap-10s 1.40 ≤ 1.5: met",
                "wasm÷native 1.00 ≤ 1.15: met",
            ]
        );
    }

    #[test]
    fn rows_match_within_a_relative_tolerance() {
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).expect("write");
            p
        };
        let a = write("a", "{\"k\":\"A\",\"sum\":0.30000000000000004}\nx,1.5,2\n");
        let b = write("b", "{\"sum\":0.3,\"k\":\"A\"}\nx,1.5000000000001,2\n");
        let c = write("c", "{\"k\":\"A\",\"sum\":0.3001}\nx,1.5,2\n");
        let d = write("d", "{\"k\":\"A\",\"sum\":0.3}\n");
        assert!(same_rows(&a, &b).expect("read"));
        assert!(!same_rows(&a, &c).expect("read"), "1e-4 apart");
        assert!(!same_rows(&b, &d).expect("read"), "a row missing");
        assert!(identical(&a, &a).expect("read"));
        assert!(!identical(&a, &b).expect("read"));
    }

    #[test]
    fn tables_hold_numbers_and_reasons() {
        let mut rows = vec![
            row("demo", Variant::Wasm, Ok(stats(1_234_567, 0.5))),
            row("demo", Variant::Native, Err("exit 2: no --native".into())),
        ];
        rows[1].same_rows = None;
        let text = render(&rows, TableFormat::Text);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("workload  variant"));
        // 1 234 567 events in 0.5 s: 2 469 134 events/s; 2 048 KiB = 2.0 MiB.
        let cols: Vec<&str> = lines[2]
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(
            cols,
            [
                "demo",
                "wasm",
                "1 234 567",
                "0.500",
                "2 469 134",
                "2 469 134",
                "2.0",
                "10",
                "-"
            ]
        );
        assert!(lines[3].ends_with("exit 2: no --native"));
        let md = render(&rows, TableFormat::Markdown);
        assert!(
            md.lines()
                .all(|l| l.starts_with("| ") || l.starts_with("|-"))
        );
        assert_eq!(md.lines().nth(1).map(|l| l.matches('|').count()), Some(12));
    }
}
