//! End-to-end tests: every ready pipeline in `pipelines/` run through the real `weir` binary
//! on the bundled data in `data/`, compared row by row with results worked out by hand.
//!
//! The expected rows below are derived from the input files and the rules of
//! docs/semantics.md ("Time and windows"): windows are half-open and aligned to the epoch, the watermark is
//! `W = max(ts) - delay` updated after each event, an event is late for a window when
//! `end <= W` (W before the event), windows fire when `W >= end` in `(end, start, key)`
//! order and the rest fire at end of input, also in that order. Because of those two rules
//! the output of every pipeline here is sorted by `(end, start, key)`. The arithmetic is
//! written next to each expectation; none of it was copied from the program's output.
//!
//! Each test copies the pipeline file into a scratch directory, rewriting its paths (plugin,
//! source, sinks) to absolute ones by editing the parsed TOML, so the shipped file is what
//! runs, with only its locations changed.

mod support;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value as Json;
use support::Scratch;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A pipeline from `pipelines/`, copied into a scratch dir with absolute paths.
struct Prepared {
    scratch: Scratch,
    toml: PathBuf,
    /// Absolute path of the source file, as the dead letter's `origin` names it.
    data: PathBuf,
}

/// Reads `pipelines/<name>.toml`, points `plugin.path` at the built component,
/// `source.path` at the bundled file in `data/`, and every file sink at the scratch dir
/// (keeping the file name), then writes it as `<scratch>/<name>.toml`.
fn prepare(name: &str) -> Prepared {
    let original = support::root()
        .join("pipelines")
        .join(format!("{name}.toml"));
    let text = std::fs::read_to_string(&original).expect("pipeline file exists");
    let mut doc: toml::Table = text.parse().expect("pipeline is valid TOML");
    let scratch = Scratch::new();

    let plugin = doc["plugin"].as_table_mut().expect("[plugin]");
    let stem = Path::new(plugin["path"].as_str().expect("plugin.path"))
        .file_stem()
        .expect("plugin file name")
        .to_string_lossy()
        .into_owned();
    plugin.insert(
        "path".into(),
        toml::Value::String(support::wasm(&stem).display().to_string()),
    );

    let source = doc["source"].as_table_mut().expect("[source]");
    let file = Path::new(source["path"].as_str().expect("source.path"))
        .file_name()
        .expect("source file name")
        .to_owned();
    let data = support::root().join("data").join(file);
    source.insert(
        "path".into(),
        toml::Value::String(data.display().to_string()),
    );

    for sink in ["sink", "late_sink", "dead_letter", "error_sink"] {
        let Some(t) = doc.get_mut(sink).and_then(toml::Value::as_table_mut) else {
            continue;
        };
        if t.get("kind").and_then(toml::Value::as_str) != Some("file") {
            continue;
        }
        let file = Path::new(t["path"].as_str().expect("sink path"))
            .file_name()
            .expect("sink file name")
            .to_owned();
        t.insert(
            "path".into(),
            toml::Value::String(scratch.dir.path().join(file).display().to_string()),
        );
    }
    let toml = scratch.write(
        &format!("{name}.toml"),
        &toml::to_string(&doc).expect("TOML serializes"),
    );
    Prepared {
        scratch,
        toml,
        data,
    }
}

impl Prepared {
    /// Runs the pipeline, asserting success; returns stderr.
    fn run(&self) -> String {
        let (ok, stdout, stderr) = support::run_pipeline(&self.toml);
        assert!(ok, "weir run failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
        stderr
    }

    /// Line `n` (1-based) of the source file.
    fn data_line(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.data).expect("data file");
        text.lines().nth(n - 1).expect("line exists").to_string()
    }

    /// A JSON-lines output file, every object with its members in file order.
    fn jsonl(&self, file: &str) -> Vec<Vec<(String, Json)>> {
        let text = std::fs::read_to_string(self.scratch.path(file))
            .unwrap_or_else(|e| panic!("reading {file}: {e}"));
        text.lines()
            .map(|l| {
                serde_json::from_str::<Ordered>(l)
                    .unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}"))
                    .0
            })
            .collect()
    }

    /// A CSV output file: the header and the rows, cells unquoted (outputs here never need
    /// quoting, which the assertion checks).
    fn csv(&self, file: &str) -> (Vec<String>, Vec<Vec<String>>) {
        let text = std::fs::read_to_string(self.scratch.path(file))
            .unwrap_or_else(|e| panic!("reading {file}: {e}"));
        assert!(!text.contains('"'), "unexpected quoting in {file}:\n{text}");
        let mut lines = text
            .lines()
            .map(|l| l.split(',').map(String::from).collect());
        let header = lines.next().expect("CSV header");
        (header, lines.collect())
    }
}

/// A JSON object with its members in the order they were written.
struct Ordered(Vec<(String, Json)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut members = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Json>()? {
                    members.push((k, v));
                }
                Ok(Ordered(members))
            }
        }
        d.deserialize_map(V)
    }
}

/// An expected cell.
#[derive(Debug, Clone)]
enum E {
    /// A string, exactly.
    S(String),
    /// An integer, exactly.
    I(i64),
    /// A float, within 1e-9 (relative to the magnitude when it exceeds 1).
    F(f64),
    /// A float that the plugin rounded, exactly.
    R(f64),
    /// Null (JSON) or an empty cell (CSV).
    Null,
}

fn s(v: impl Into<String>) -> E {
    E::S(v.into())
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-9 * want.abs().max(1.0)
}

impl E {
    fn matches_json(&self, v: &Json) -> bool {
        match self {
            E::S(want) => v.as_str() == Some(want),
            E::I(want) => v.as_i64() == Some(*want),
            E::F(want) => v.as_f64().is_some_and(|g| close(g, *want)),
            E::R(want) => v.as_f64() == Some(*want),
            E::Null => v.is_null(),
        }
    }

    fn matches_text(&self, v: &str) -> bool {
        match self {
            E::S(want) => v == want,
            E::I(want) => v.parse::<i64>().ok() == Some(*want),
            E::F(want) => v.parse::<f64>().is_ok_and(|g| close(g, *want)),
            E::R(want) => v.parse::<f64>().ok() == Some(*want),
            E::Null => v.is_empty(),
        }
    }
}

type Row = Vec<(&'static str, E)>;

/// Compares JSON rows with expected rows: same count, same columns in the same order, and
/// every cell matching.
fn assert_json_rows(got: &[Vec<(String, Json)>], want: &[Row], what: &str) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let g_cols: Vec<&str> = g.iter().map(|(k, _)| k.as_str()).collect();
        let w_cols: Vec<&str> = w.iter().map(|(k, _)| *k).collect();
        assert_eq!(g_cols, w_cols, "{what} row {i}: columns");
        for ((col, gv), (_, wv)) in g.iter().zip(w) {
            assert!(
                wv.matches_json(gv),
                "{what} row {i} column {col}: got {gv}, want {wv:?}\nrow: {g:?}"
            );
        }
    }
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: number of rows; got {got:#?}"
    );
}

/// Compares CSV rows under `header` with expected rows.
fn assert_csv_rows(header: &[String], got: &[Vec<String>], want: &[Row], what: &str) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let w_cols: Vec<&str> = w.iter().map(|(k, _)| *k).collect();
        assert_eq!(header, w_cols, "{what} row {i}: columns");
        assert_eq!(g.len(), w.len(), "{what} row {i}: cell count in {g:?}");
        for (cell, (col, wv)) in g.iter().zip(w) {
            assert!(
                wv.matches_text(cell),
                "{what} row {i} column {col}: got {cell:?}, want {wv:?}\nrow: {g:?}"
            );
        }
    }
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: number of rows; got {got:#?}"
    );
}

/// The run summary's counters.
#[derive(Debug, PartialEq)]
struct Counts {
    events_read: u64,
    malformed: u64,
    filtered: u64,
    late: u64,
    windows_fired: u64,
    rows_written: u64,
    plugin_errors: u64,
}

fn counts(stderr: &str) -> Counts {
    let s = support::summary(stderr);
    let n = |k: &str| {
        s[k].as_u64()
            .unwrap_or_else(|| panic!("summary has no counter {k}: {s}"))
    };
    Counts {
        events_read: n("events_read"),
        malformed: n("malformed"),
        filtered: n("filtered"),
        late: n("late"),
        windows_fired: n("windows_fired"),
        rows_written: n("rows_written"),
        plugin_errors: n("plugin_errors"),
    }
}

/// Checks one dead-letter row: the pipeline, the data file, the line number, a reason that
/// names `field`, and the record as it was in the file.
fn assert_dead_letter(
    p: &Prepared,
    row: &[(String, Json)],
    pipeline: &str,
    line: usize,
    field: &str,
) {
    let cols: Vec<&str> = row.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(cols, ["pipeline", "origin", "offset", "reason", "record"]);
    assert_eq!(row[0].1, pipeline);
    assert_eq!(row[1].1, p.data.display().to_string(), "origin");
    assert_eq!(
        row[2].1.as_u64(),
        Some(line as u64),
        "offset is the line number"
    );
    let reason = row[3].1.as_str().expect("reason is a string");
    assert!(
        reason.contains(&format!("`{field}`")),
        "reason should name `{field}`: {reason}"
    );
    assert_eq!(
        row[4].1.as_str(),
        Some(p.data_line(line).as_str()),
        "record"
    );
}

/// `2024-01-22T<hms>.000Z`.
fn t(hms: &str) -> E {
    s(format!("2024-01-22T{hms}.000Z"))
}

// ---------------------------------------------------------------------------------------
// stocks-moving-average: sliding 3 s / 1 s, delay 1 s, stats on price
// ---------------------------------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
fn stats_row(
    symbol: &str,
    start: &str,
    end: &str,
    count: i64,
    sum: f64,
    min: f64,
    max: f64,
    avg: f64,
    stddev: Option<f64>,
) -> Row {
    vec![
        ("symbol", s(symbol)),
        ("window_start", t(start)),
        ("window_end", t(end)),
        ("count", E::I(count)),
        ("sum", E::F(sum)),
        ("min", E::F(min)),
        ("max", E::F(max)),
        ("avg", E::F(avg)),
        ("stddev", stddev.map_or(E::Null, E::F)),
    ]
}

#[test]
fn stocks_moving_average() {
    // data/stocks.jsonl, times as seconds after 13:45:00 (line: time symbol price volume):
    //   1: 0.1 AAPL 100      2: 0.4 MSFT 50      3: 0.9 AAPL 102      4: 1.5 MSFT 51
    //   5: 1.2 AAPL 101 (out of order)           6: 2.0 AAPL 103 (on a window boundary)
    //   7: MSFT price "abc" -> malformed         8: 2.6 MSFT 52       9: 3.4 AAPL 104
    //  10: 2.9 MSFT 53     11: 4.2 AAPL 105     12: 3.8 MSFT 54 (written 08:45:03.8-05:00)
    //  13: 5.5 AAPL 106    14: 1.7 MSFT 60      15: 3.9 AAPL 99      16: 6.1 MSFT 55
    //  17: 6.0 AAPL 107    18: 7.3 AAPL 108
    // An event at t is in the windows [s, s+3) with s in {floor(t)-2, floor(t)-1, floor(t)}.
    // Watermark W = max - 1, after each event:
    //   after 6 (2.0): W=1.0 -> fire [-2,1).          after 9 (3.4): W=2.4 -> fire [-1,2).
    //   after 11 (4.2): W=3.2 -> fire [0,3).          after 13 (5.5): W=4.5 -> fire [1,4).
    //   14 (1.7, MSFT) arrives with W=4.5: its windows [-1,2), [0,3), [1,4) all end <= 4.5,
    //     so it is late for all of them: a late event, in no window.
    //   15 (3.9, AAPL) arrives with W=4.5: late for [1,4) (end 4) only; joins [2,5), [3,6).
    //   after 16 (6.1): W=5.1 -> fire [2,5).          after 18 (7.3): W=6.3 -> fire [3,6).
    //   end of input: [4,7), [5,8), [6,9), [7,10).
    let p = prepare("stocks-moving-average");
    let stderr = p.run();

    let r2 = 2f64.sqrt();
    let rh = 0.5f64.sqrt();
    let want = vec![
        // [-2,1): AAPL 100, 102: sum 202, mean 101, squares 1+1 = 2, /1 -> sqrt 2.
        stats_row(
            "AAPL",
            "13:44:58",
            "13:45:01",
            2,
            202.0,
            100.0,
            102.0,
            101.0,
            Some(r2),
        ),
        // MSFT 50 alone: no stddev.
        stats_row(
            "MSFT", "13:44:58", "13:45:01", 1, 50.0, 50.0, 50.0, 50.0, None,
        ),
        // [-1,2): AAPL 100, 102, 101 (2.0 is not in it: ends are exclusive):
        // sum 303, mean 101, squares 1+1+0 = 2, /2 = 1.
        stats_row(
            "AAPL",
            "13:44:59",
            "13:45:02",
            3,
            303.0,
            100.0,
            102.0,
            101.0,
            Some(1.0),
        ),
        // MSFT 50, 51: mean 50.5, squares .25+.25 = .5, /1 -> sqrt .5.
        stats_row(
            "MSFT",
            "13:44:59",
            "13:45:02",
            2,
            101.0,
            50.0,
            51.0,
            50.5,
            Some(rh),
        ),
        // [0,3): AAPL 100, 102, 101, 103: sum 406, mean 101.5,
        // squares 2.25+.25+.25+2.25 = 5, /3.
        stats_row(
            "AAPL",
            "13:45:00",
            "13:45:03",
            4,
            406.0,
            100.0,
            103.0,
            101.5,
            Some((5.0f64 / 3.0).sqrt()),
        ),
        // MSFT 50, 51, 52, 53: sum 206, mean 51.5, squares 5, /3.
        stats_row(
            "MSFT",
            "13:45:00",
            "13:45:03",
            4,
            206.0,
            50.0,
            53.0,
            51.5,
            Some((5.0f64 / 3.0).sqrt()),
        ),
        // [1,4): AAPL 101, 103, 104: sum 308, mean 308/3, deviations -5/3, 1/3, 4/3,
        // squares (25+1+16)/9 = 14/3, /2 = 7/3.
        stats_row(
            "AAPL",
            "13:45:01",
            "13:45:04",
            3,
            308.0,
            101.0,
            104.0,
            308.0 / 3.0,
            Some((7.0f64 / 3.0).sqrt()),
        ),
        // MSFT 51, 52, 53, 54 (60 at 1.7 was late): sum 210, mean 52.5, squares 5, /3.
        stats_row(
            "MSFT",
            "13:45:01",
            "13:45:04",
            4,
            210.0,
            51.0,
            54.0,
            52.5,
            Some((5.0f64 / 3.0).sqrt()),
        ),
        // [2,5): AAPL 103, 104, 99, 105: sum 411, mean 102.75, deviations .25, 1.25, -3.75,
        // 2.25, squares .0625+1.5625+14.0625+5.0625 = 20.75, /3.
        stats_row(
            "AAPL",
            "13:45:02",
            "13:45:05",
            4,
            411.0,
            99.0,
            105.0,
            102.75,
            Some((20.75f64 / 3.0).sqrt()),
        ),
        // MSFT 52, 53, 54: sum 159, mean 53, squares 1+0+1 = 2, /2 = 1.
        stats_row(
            "MSFT",
            "13:45:02",
            "13:45:05",
            3,
            159.0,
            52.0,
            54.0,
            53.0,
            Some(1.0),
        ),
        // [3,6): AAPL 104, 99, 105, 106: sum 414, mean 103.5, deviations .5, -4.5, 1.5, 2.5,
        // squares .25+20.25+2.25+6.25 = 29, /3.
        stats_row(
            "AAPL",
            "13:45:03",
            "13:45:06",
            4,
            414.0,
            99.0,
            106.0,
            103.5,
            Some((29.0f64 / 3.0).sqrt()),
        ),
        stats_row(
            "MSFT", "13:45:03", "13:45:06", 1, 54.0, 54.0, 54.0, 54.0, None,
        ),
        // [4,7): AAPL 105, 106, 107 (6.0 is in it): mean 106, squares 2, /2 = 1.
        stats_row(
            "AAPL",
            "13:45:04",
            "13:45:07",
            3,
            318.0,
            105.0,
            107.0,
            106.0,
            Some(1.0),
        ),
        stats_row(
            "MSFT", "13:45:04", "13:45:07", 1, 55.0, 55.0, 55.0, 55.0, None,
        ),
        // [5,8): AAPL 106, 107, 108: mean 107, stddev 1.
        stats_row(
            "AAPL",
            "13:45:05",
            "13:45:08",
            3,
            321.0,
            106.0,
            108.0,
            107.0,
            Some(1.0),
        ),
        stats_row(
            "MSFT", "13:45:05", "13:45:08", 1, 55.0, 55.0, 55.0, 55.0, None,
        ),
        // [6,9): AAPL 107, 108: mean 107.5, squares .5, /1.
        stats_row(
            "AAPL",
            "13:45:06",
            "13:45:09",
            2,
            215.0,
            107.0,
            108.0,
            107.5,
            Some(rh),
        ),
        stats_row(
            "MSFT", "13:45:06", "13:45:09", 1, 55.0, 55.0, 55.0, 55.0, None,
        ),
        // [7,10): AAPL 108.
        stats_row(
            "AAPL", "13:45:07", "13:45:10", 1, 108.0, 108.0, 108.0, 108.0, None,
        ),
    ];
    assert_json_rows(&p.jsonl("stocks-moving-average.jsonl"), &want, "results");

    // AAPL has windows [-2,1) .. [7,10) (10), MSFT [-2,1) .. [6,9) (9): 19 windows, one row
    // each. 18 lines read, line 7 malformed, line 14 late.
    assert_eq!(
        counts(&stderr),
        Counts {
            events_read: 18,
            malformed: 1,
            filtered: 0,
            late: 1,
            windows_fired: 19,
            rows_written: 19,
            plugin_errors: 0
        }
    );

    // The late event, with the watermark it met (5.5 - 1 = 4.5) and its fields in schema
    // order (price, symbol, volume).
    let late = p.jsonl("stocks-moving-average.late.jsonl");
    let want_late: Vec<Row> = vec![vec![
        ("pipeline", s("stocks-moving-average")),
        ("reason", s("late for every window")),
        ("watermark", s("2024-01-22T13:45:04.500Z")),
        ("ts", s("2024-01-22T13:45:01.700Z")),
        ("price", E::F(60.0)),
        ("symbol", s("MSFT")),
        ("volume", E::I(100)),
    ]];
    assert_json_rows(&late, &want_late, "late");

    let dead = p.jsonl("stocks-moving-average.dead.jsonl");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_dead_letter(&p, &dead[0], "stocks-moving-average", 7, "price");
    assert!(
        dead[0][3].1.as_str().unwrap().contains("abc"),
        "{:?}",
        dead[0][3]
    );
}

// ---------------------------------------------------------------------------------------
// stocks-vwap: tumbling 5 s, delay 1 s, vwap with the 90th percentile
// ---------------------------------------------------------------------------------------

#[test]
fn stocks_vwap() {
    // Same data as stocks_moving_average (price, volume per line there). Windows [0,5) and
    // [5,10) s after 13:45:00. [0,5) fires when W = max - 1 >= 5, i.e. at line 16 (6.1).
    // Line 14 (1.7 MSFT) and line 15 (3.9 AAPL) arrive with W = 4.5 < 5: not late here.
    let p = prepare("stocks-vwap");
    let stderr = p.run();

    let row = |sym: &str, start: &str, end: &str, vwap: f64, p90: f64, volume: f64| -> Row {
        vec![
            ("symbol", s(sym)),
            ("window_start", t(start)),
            ("window_end", t(end)),
            ("vwap", E::F(vwap)),
            ("price_p90", E::F(p90)),
            ("volume", E::F(volume)),
        ]
    };
    let want = vec![
        // AAPL [0,5): (100,10) (102,20) (101,15) (103,10) (104,10) (105,5) (99,10).
        // price*volume: 1000+2040+1515+1030+1040+525+990 = 8140; volume 80; vwap 101.75.
        // Prices sorted 99..105 (n=7): rank .9*6 = 5.4 -> 104 + .4*(105-104) = 104.4.
        row("AAPL", "13:45:00", "13:45:05", 101.75, 104.4, 80.0),
        // MSFT [0,5): (50,100) (51,100) (52,200) (53,100) (54,100) (60,100).
        // 5000+5100+10400+5300+5400+6000 = 37200; volume 700; vwap 372/7.
        // Sorted 50,51,52,53,54,60 (n=6): rank .9*5 = 4.5 -> 54 + .5*(60-54) = 57.
        row("MSFT", "13:45:00", "13:45:05", 372.0 / 7.0, 57.0, 700.0),
        // AAPL [5,10): (106,10) (107,10) (108,10): 3210/30 = 107;
        // rank .9*2 = 1.8 -> 107 + .8 = 107.8.
        row("AAPL", "13:45:05", "13:45:10", 107.0, 107.8, 30.0),
        // MSFT [5,10): (55,100) alone.
        row("MSFT", "13:45:05", "13:45:10", 55.0, 55.0, 100.0),
    ];
    assert_json_rows(&p.jsonl("stocks-vwap.jsonl"), &want, "results");
    assert_eq!(
        counts(&stderr),
        Counts {
            events_read: 18,
            malformed: 1,
            filtered: 0,
            late: 0,
            windows_fired: 4,
            rows_written: 4,
            plugin_errors: 0
        }
    );
    let dead = p.jsonl("stocks-vwap.dead.jsonl");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_dead_letter(&p, &dead[0], "stocks-vwap", 7, "price");
}

// ---------------------------------------------------------------------------------------
// The taxi data
// ---------------------------------------------------------------------------------------
//
// data/taxi.csv, line 1 is the header. Times as seconds from 12:00:00 (noon, UTC), with
// area, location (P1..P8) and fare / tips / total:
//   2 t01  -8  area 8   P1  10.25 / 2.00 / 12.25
//   3 t02  -6  area 32  P2   7.50 /  --  /  7.50   (empty tips)
//   4 t03  -3  area 8   P3  15.00 / 3.00 / 18.00
//   5 t04   0  area 8   P1   6.50 / 1.00 /  7.50   (12:00:00 PM: noon, a boundary)
//   6 t05   2  area 32  P2  22.75 / 4.55 / 27.30
//   7 t06  -1  area 76  P4  40.00 / 8.00 / 48.00   (out of order, before noon)
//   8 t07   4  area --  P5   9.00 / 0.00 /  9.00   (empty pickup_community_area)
//   9 t08  "2024-01-22 12:00:07": does not match the timestamp pattern
//  10 t09   7  area 32  P6  11.00 / 2.20 / 13.20
//  11 t10  14  area 8   P1   5.00 /  --  /  5.00   (empty tips)
//  12 t11   9  area 76  P4   8.25 / 1.50 /  9.75
//  13 t12  31  area 8   P3  12.00 / 2.40 / 14.40
//  14 t13  -2  area 32  P2   4.00 / 0.50 /  4.50   (very late)
//  15 t14  45  area 32  P7  30.00 / 6.00 / 36.00
//  16 t15  58  area 8   P1   7.75 / 1.25 /  9.00
//  17 t16  62  area 76  P8  19.50 / 3.90 / 23.40
//  18 t17  60  area 8   P3   6.00 / 1.00 /  7.00   (12:01:00, a boundary)
//  19 t18  95  area 32  P2  14.00 / 2.80 / 16.80
// Every pipeline reads 18 records (the header is not one).

fn fare_row(start: E, end: E, trips: i64, fare: f64, tips: f64, total: f64) -> Row {
    vec![
        ("window_start", start),
        ("window_end", end),
        ("trips", E::I(trips)),
        ("fare_sum", E::R(fare)),
        ("tips_sum", E::R(tips)),
        ("trip_total_sum", E::R(total)),
    ]
}

#[test]
fn taxi_fare_totals() {
    // No key, 5 s tumbling windows, delay 3 s. The filter drops t02 and t10 (empty tips);
    // filtered events do not move the watermark (ARCHITECTURE.md). t08 is malformed; t07's
    // empty area does not matter (not in this schema).
    // Placement in input order, W = max - 3 after each event:
    //   t01 -8 [-10,-5) W=-11 | t03 -3 [-5,0) W=-6 | t04 0 [0,5) W=-3: fire [-10,-5)
    //   t05 2 [0,5) W=-1 | t06 -1 [-5,0): end 0 > -1, accepted | t07 4 [0,5) W=1: fire [-5,0)
    //   t09 7 [5,10) W=4 | (t10 at 14 filtered: W stays 4) | t11 9 [5,10) W=6: fire [0,5)
    //   t12 31 [30,35) W=28: fire [5,10) (t11 is in it: had t10 moved W to 11, it would
    //     have fired without t11 and t11 would be late)
    //   t13 -2: [-5,0) ends at 0 <= 28: late for its only window -> late event
    //   t14 45 W=42: fire [30,35) | t15 58 W=55: fire [45,50) | t16 62 W=59
    //   t17 60 [60,65): 65 > 59 accepted | t18 95 W=92: fire [55,60), [60,65) | EOF: [95,100)
    let p = prepare("taxi-fare-totals");
    let stderr = p.run();
    let want = vec![
        // t01.
        fare_row(t("11:59:50"), t("11:59:55"), 1, 10.25, 2.00, 12.25),
        // t03 + t06: 15 + 40 = 55; 3 + 8 = 11; 18 + 48 = 66 (t13 was late).
        fare_row(t("11:59:55"), t("12:00:00"), 2, 55.00, 11.00, 66.00),
        // t04 + t05 + t07: 6.50 + 22.75 + 9 = 38.25; 1 + 4.55 + 0 = 5.55;
        // 7.50 + 27.30 + 9 = 43.80.
        fare_row(t("12:00:00"), t("12:00:05"), 3, 38.25, 5.55, 43.80),
        // t09 + t11: 11 + 8.25 = 19.25; 2.20 + 1.50 = 3.70; 13.20 + 9.75 = 22.95.
        fare_row(t("12:00:05"), t("12:00:10"), 2, 19.25, 3.70, 22.95),
        // t12.
        fare_row(t("12:00:30"), t("12:00:35"), 1, 12.00, 2.40, 14.40),
        // t14.
        fare_row(t("12:00:45"), t("12:00:50"), 1, 30.00, 6.00, 36.00),
        // t15.
        fare_row(t("12:00:55"), t("12:01:00"), 1, 7.75, 1.25, 9.00),
        // t16 + t17: 19.50 + 6 = 25.50; 3.90 + 1 = 4.90; 23.40 + 7 = 30.40.
        fare_row(t("12:01:00"), t("12:01:05"), 2, 25.50, 4.90, 30.40),
        // t18.
        fare_row(t("12:01:35"), t("12:01:40"), 1, 14.00, 2.80, 16.80),
    ];
    let (header, rows) = p.csv("taxi-fare-totals.csv");
    assert_eq!(
        header,
        [
            "window_start",
            "window_end",
            "trips",
            "fare_sum",
            "tips_sum",
            "trip_total_sum"
        ]
    );
    assert_csv_rows(&header, &rows, &want, "results");
    // 18 records: 1 malformed (t08), 2 filtered, 1 late (t13); 15 - 1 = 14 trips counted in 9
    // windows (1+2+3+2+1+1+1+2+1 = 14).
    assert_eq!(
        counts(&stderr),
        Counts {
            events_read: 18,
            malformed: 1,
            filtered: 2,
            late: 1,
            windows_fired: 9,
            rows_written: 9,
            plugin_errors: 0
        }
    );
    // t13, met by W = 31 - 3 = 28 s after noon; fields in schema order.
    let want_late: Vec<Row> = vec![vec![
        ("pipeline", s("taxi-fare-totals")),
        ("reason", s("late for every window")),
        ("watermark", t("12:00:28")),
        ("ts", t("11:59:58")),
        ("fare", E::F(4.0)),
        ("tips", E::F(0.5)),
        ("trip_id", s("t13")),
        ("trip_total", E::F(4.5)),
    ]];
    assert_json_rows(&p.jsonl("taxi-fare-totals.late.jsonl"), &want_late, "late");
    let dead = p.jsonl("taxi-fare-totals.dead.jsonl");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_dead_letter(&p, &dead[0], "taxi-fare-totals", 9, "trip_start_timestamp");
}

#[test]
fn taxi_hotspots() {
    // Key pickup_community_area (i64, so keys order 8 < 32 < 76), 60 s windows sliding
    // 30 s, delay 3 s. t07 (empty area: key fields are required) and t08 (timestamp) are
    // malformed. An event at t is in [s, s+60) for the two multiples s of 30 with
    // t - 60 < s <= t. W = max - 3:
    //   t09 at 7: W=4 -> fire [-60,0).  t12 at 31: W=28.  t13 at -2 arrives with W=28:
    //   late for [-60,0) (fired) but joins [-30,30) (end 30 > 28): not a late event.
    //   t14 at 45: W=42 -> fire [-30,30).  t18 at 95: W=92 -> fire [0,60), [30,90).
    //   End of input: [60,120), [90,150).
    let p = prepare("taxi-hotspots");
    let stderr = p.run();
    let row = |area: i64, start: &str, end: &str, count: i64, distinct: i64| -> Row {
        vec![
            ("pickup_community_area", E::I(area)),
            ("window_start", t(start)),
            ("window_end", t(end)),
            ("count", E::I(count)),
            ("distinct_pickup_location", E::I(distinct)),
        ]
    };
    let want = vec![
        // [11:59:00, 12:00:00): area 8 t01 P1, t03 P3; area 32 t02 P2; area 76 t06 P4.
        row(8, "11:59:00", "12:00:00", 2, 2),
        row(32, "11:59:00", "12:00:00", 1, 1),
        row(76, "11:59:00", "12:00:00", 1, 1),
        // [11:59:30, 12:00:30): 8: t01 P1, t03 P3, t04 P1, t10 P1 -> 4, {P1,P3};
        // 32: t02 P2, t13 P2, t05 P2, t09 P6 -> 4, {P2,P6}; 76: t06 P4, t11 P4 -> 2, {P4}.
        row(8, "11:59:30", "12:00:30", 4, 2),
        row(32, "11:59:30", "12:00:30", 4, 2),
        row(76, "11:59:30", "12:00:30", 2, 1),
        // [12:00:00, 12:01:00): 8: t04 P1, t10 P1, t12 P3, t15 P1 -> 4, 2;
        // 32: t05 P2, t09 P6, t14 P7 -> 3, 3; 76: t11 P4 -> 1, 1.
        row(8, "12:00:00", "12:01:00", 4, 2),
        row(32, "12:00:00", "12:01:00", 3, 3),
        row(76, "12:00:00", "12:01:00", 1, 1),
        // [12:00:30, 12:01:30): 8: t12 P3, t15 P1, t17 P3 -> 3, 2; 32: t14 P7; 76: t16 P8.
        row(8, "12:00:30", "12:01:30", 3, 2),
        row(32, "12:00:30", "12:01:30", 1, 1),
        row(76, "12:00:30", "12:01:30", 1, 1),
        // [12:01:00, 12:02:00): 8: t17 (at 60, a boundary); 32: t18; 76: t16.
        row(8, "12:01:00", "12:02:00", 1, 1),
        row(32, "12:01:00", "12:02:00", 1, 1),
        row(76, "12:01:00", "12:02:00", 1, 1),
        // [12:01:30, 12:02:30): 32: t18.
        row(32, "12:01:30", "12:02:30", 1, 1),
    ];
    assert_json_rows(&p.jsonl("taxi-hotspots.jsonl"), &want, "results");
    assert_eq!(
        counts(&stderr),
        Counts {
            events_read: 18,
            malformed: 2,
            filtered: 0,
            late: 0,
            windows_fired: 16,
            rows_written: 16,
            plugin_errors: 0
        }
    );
    let dead = p.jsonl("taxi-hotspots.dead.jsonl");
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_dead_letter(&p, &dead[0], "taxi-hotspots", 8, "pickup_community_area");
    assert_dead_letter(&p, &dead[1], "taxi-hotspots", 9, "trip_start_timestamp");
}

#[test]
fn taxi_so_far_today() {
    // No key; cumulative 1 day in 6 h steps: an event before noon is in [00:00, 12:00),
    // [00:00, 18:00) and [00:00, 24:00); one from noon on only in the last two. Delay 3 s.
    // The filter drops t02 and t10; t08 is malformed. [00:00, 12:00) fires when
    // W = max - 3 >= 0 s after noon: at t07 (4 s, W = 1), holding t01, t03, t06.
    // t13 (-2 s) then arrives with W = 28: late for [00:00, 12:00) only, so it is in the
    // other two windows and is not a late event.
    let p = prepare("taxi-so-far-today");
    let stderr = p.run();
    let want = vec![
        // t01 + t03 + t06: 10.25 + 15 + 40 = 65.25; 2 + 3 + 8 = 13; 12.25 + 18 + 48 = 78.25.
        fare_row(t("00:00:00"), t("12:00:00"), 3, 65.25, 13.00, 78.25),
        // All 15 decoded, unfiltered trips (t01 t03 t04 t05 t06 t07 t09 t11 t12 t13 t14 t15
        // t16 t17 t18):
        //  fare 10.25+15+6.50+22.75+40+9+11+8.25+12+4+30+7.75+19.50+6+14 = 216.00
        //  tips 2+3+1+4.55+8+0+2.20+1.50+2.40+0.50+6+1.25+3.90+1+2.80 = 40.10
        //  total = fare + tips on every line = 256.10.
        fare_row(t("00:00:00"), t("18:00:00"), 15, 216.00, 40.10, 256.10),
        fare_row(
            t("00:00:00"),
            s("2024-01-23T00:00:00.000Z"),
            15,
            216.00,
            40.10,
            256.10,
        ),
    ];
    assert_json_rows(&p.jsonl("taxi-so-far-today.jsonl"), &want, "results");
    assert_eq!(
        counts(&stderr),
        Counts {
            events_read: 18,
            malformed: 1,
            filtered: 2,
            late: 0,
            windows_fired: 3,
            rows_written: 3,
            plugin_errors: 0
        }
    );
    let dead = p.jsonl("taxi-so-far-today.dead.jsonl");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_dead_letter(&p, &dead[0], "taxi-so-far-today", 9, "trip_start_timestamp");
}

// ---------------------------------------------------------------------------------------
// crypto-ticker: tumbling 1 min, delay 2 min, CSV in append mode
// ---------------------------------------------------------------------------------------

#[test]
fn crypto_ticker_appends_on_rerun() {
    // data/ticker.jsonl (numbers as strings; µs times truncate to ms):
    //   1: a `subscriptions` message without `time` -> malformed
    //   2: BTC 13:45:05.250123 price 42000.50 bid 42000.25 ask 42000.75 vol 15000.50
    //   3: ETH 13:45:10.500000       2500.25     2500.00     2500.50     300000.00
    //   4: BTC 13:45:40.999999       42010.00    42009.50    42010.50    15001.50
    //   5: ETH 13:46:02.000001       2501.50     2501.25     2501.75     300010.00
    //   6: BTC 13:45:59.999999       42005.00    42004.50    42005.50    15002.00 (out of order)
    //   7: BTC 13:46:00.000000       42020.00    42019.50    42020.50    15003.00 (boundary)
    //   8: ETH 13:46:30.123456       2502.50     2502.25     2502.75     300020.00
    //   9: BTC 13:47:15.500000       42030.00    42029.50    42030.50    15004.00
    //  10: ETH 13:47:45.000000       2503.00     2502.75     2503.25     300030.00
    //  11: BTC 13:48:20.000000       42040.00    42039.50    42040.50    15005.00
    //  12: ETH 13:45:30.000000       2499.00     2498.75     2499.25     299990.00
    //  13: BTC 13:49:05.000000       42050.00    42049.50    42050.50    15006.00
    //  14: ETH 13:49:30.654321       2504.00     2503.75     2504.25     300040.00
    // W = max - 2 min. After line 11, W = 13:46:20 -> fire [13:45, 13:46) for BTC, ETH.
    // Line 12 (ETH 13:45:30) meets W = 13:46:20 >= 13:46: late. After line 13, W = 13:47:05
    // -> fire [13:46, 13:47). End of input: [13:47,13:48), [13:48,13:49), [13:49,13:50).
    let p = prepare("crypto-ticker");
    let row = |product: &str,
               start: &str,
               end: &str,
               price: f64,
               bid: f64,
               ask: f64,
               vol: f64,
               latest: &str,
               events: i64|
     -> Row {
        vec![
            ("product_id", s(product)),
            ("window_start", t(start)),
            ("window_end", t(end)),
            ("mean_price", E::F(price)),
            ("max_best_bid", E::F(bid)),
            ("max_best_ask", E::F(ask)),
            ("mean_volume_24h", E::F(vol)),
            ("latest_time", s(format!("2024-01-22T{latest}Z"))),
            ("events", E::I(events)),
        ]
    };
    let want = vec![
        // BTC lines 2, 4, 6: (42000.5 + 42010 + 42005) / 3 = 126015.5 / 3; max bid 42009.50,
        // max ask 42010.50; (15000.5 + 15001.5 + 15002) / 3 = 45004 / 3; latest 13:45:59.999.
        row(
            "BTC-USD",
            "13:45:00",
            "13:46:00",
            126015.5 / 3.0,
            42009.5,
            42010.5,
            45004.0 / 3.0,
            "13:45:59.999",
            3,
        ),
        // ETH line 3 alone (line 12 was late).
        row(
            "ETH-USD",
            "13:45:00",
            "13:46:00",
            2500.25,
            2500.0,
            2500.5,
            300000.0,
            "13:45:10.500",
            1,
        ),
        // BTC line 7 alone (13:46:00.000000 starts the next window).
        row(
            "BTC-USD",
            "13:46:00",
            "13:47:00",
            42020.0,
            42019.5,
            42020.5,
            15003.0,
            "13:46:00.000",
            1,
        ),
        // ETH lines 5, 8: (2501.5 + 2502.5) / 2 = 2502; (300010 + 300020) / 2 = 300015.
        row(
            "ETH-USD",
            "13:46:00",
            "13:47:00",
            2502.0,
            2502.25,
            2502.75,
            300015.0,
            "13:46:30.123",
            2,
        ),
        row(
            "BTC-USD",
            "13:47:00",
            "13:48:00",
            42030.0,
            42029.5,
            42030.5,
            15004.0,
            "13:47:15.500",
            1,
        ),
        row(
            "ETH-USD",
            "13:47:00",
            "13:48:00",
            2503.0,
            2502.75,
            2503.25,
            300030.0,
            "13:47:45.000",
            1,
        ),
        row(
            "BTC-USD",
            "13:48:00",
            "13:49:00",
            42040.0,
            42039.5,
            42040.5,
            15005.0,
            "13:48:20.000",
            1,
        ),
        row(
            "BTC-USD",
            "13:49:00",
            "13:50:00",
            42050.0,
            42049.5,
            42050.5,
            15006.0,
            "13:49:05.000",
            1,
        ),
        row(
            "ETH-USD",
            "13:49:00",
            "13:50:00",
            2504.0,
            2503.75,
            2504.25,
            300040.0,
            "13:49:30.654",
            1,
        ),
    ];
    let columns = [
        "product_id",
        "window_start",
        "window_end",
        "mean_price",
        "max_best_bid",
        "max_best_ask",
        "mean_volume_24h",
        "latest_time",
        "events",
    ];
    let expected_counts = Counts {
        events_read: 14,
        malformed: 1,
        filtered: 0,
        late: 1,
        windows_fired: 9,
        rows_written: 9,
        plugin_errors: 0,
    };

    let stderr = p.run();
    let (header, rows) = p.csv("crypto-ticker.csv");
    assert_eq!(header, columns);
    assert_csv_rows(&header, &rows, &want, "first run");
    assert_eq!(counts(&stderr), expected_counts);

    let want_late: Vec<Row> = vec![vec![
        ("pipeline", s("crypto-ticker")),
        ("reason", s("late for every window")),
        ("watermark", t("13:46:20")),
        ("ts", t("13:45:30")),
        ("best_ask", E::F(2499.25)),
        ("best_bid", E::F(2498.75)),
        ("price", E::F(2499.0)),
        ("product_id", s("ETH-USD")),
        ("volume_24h", E::F(299990.0)),
    ]];
    assert_json_rows(&p.jsonl("crypto-ticker.late.jsonl"), &want_late, "late");
    let dead = p.jsonl("crypto-ticker.dead.jsonl");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_dead_letter(&p, &dead[0], "crypto-ticker", 1, "time");

    // A rerun appends: the header stays single, the same nine rows follow again.
    let stderr = p.run();
    assert_eq!(counts(&stderr), expected_counts);
    let (header, rows) = p.csv("crypto-ticker.csv");
    assert_eq!(header, columns);
    let twice: Vec<Row> = want.iter().chain(&want).cloned().collect();
    assert_csv_rows(&header, &rows, &twice, "after rerun");
}

// ---------------------------------------------------------------------------------------
// weir check and weir gen
// ---------------------------------------------------------------------------------------

#[test]
fn check_accepts_every_ready_pipeline_and_prints_its_columns() {
    let cases: [(&str, &str, &str); 6] = [
        (
            "stocks-moving-average",
            "stats",
            "symbol, window_start, window_end, count, sum, min, max, avg, stddev",
        ),
        (
            "stocks-vwap",
            "vwap",
            "symbol, window_start, window_end, vwap, price_p90, volume",
        ),
        (
            "taxi-fare-totals",
            "fare_totals",
            "window_start, window_end, trips, fare_sum, tips_sum, trip_total_sum",
        ),
        (
            "taxi-hotspots",
            "hotspot",
            "pickup_community_area, window_start, window_end, count, distinct_pickup_location",
        ),
        (
            "taxi-so-far-today",
            "fare_totals",
            "window_start, window_end, trips, fare_sum, tips_sum, trip_total_sum",
        ),
        (
            "crypto-ticker",
            "ticker",
            "product_id, window_start, window_end, mean_price, max_best_bid, max_best_ask, \
             mean_volume_24h, latest_time, events",
        ),
    ];
    for (name, plugin, columns) in cases {
        // The shipped file, unchanged: its plugin path must point where the build puts it.
        support::wasm(plugin);
        let path = support::root()
            .join("pipelines")
            .join(format!("{name}.toml"));
        let out = support::run_weir(&["check", path.to_str().expect("UTF-8 path")]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "weir check {name} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        assert!(stdout.contains(": ok"), "{name}: {stdout}");
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with("columns"))
            .unwrap_or_else(|| panic!("{name}: no columns line in\n{stdout}"));
        assert_eq!(
            line.trim_start().trim_start_matches("columns").trim(),
            columns,
            "{name}"
        );
    }
}

#[test]
fn gen_stocks_writes_ticks_as_json_lines() {
    let out = support::run_weir(&["gen", "stocks", "--count", "5"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    for (i, line) in lines.iter().enumerate() {
        let row = serde_json::from_str::<Ordered>(line)
            .unwrap_or_else(|e| panic!("line {i} {line:?}: {e}"))
            .0;
        let cols: Vec<&str> = row.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(cols, ["ts", "symbol", "price", "volume"], "{line}");
        // Defaults: first event 2024-01-22T00:00:00Z, 10 ms apart, no jitter.
        assert_eq!(
            row[0].1.as_str(),
            Some(format!("2024-01-22T00:00:00.{:03}Z", i * 10).as_str()),
            "{line}"
        );
        assert!(row[1].1.as_str().is_some_and(|s| !s.is_empty()), "{line}");
        assert!(row[2].1.as_f64().is_some_and(|p| p > 0.0), "{line}");
        assert!(row[3].1.as_i64().is_some_and(|v| v >= 0), "{line}");
    }
    // Same seed, same ticks.
    let again = support::run_weir(&["gen", "stocks", "--count", "5"]);
    assert_eq!(String::from_utf8(again.stdout).unwrap(), text);
}

/// Sessions with allowed lateness, through the binary: merging, a late re-firing with a
/// higher revision, and an event late for every window routed to the late sink.
#[test]
fn session_windows_with_allowed_lateness_refire_with_revisions() {
    let s = support::Scratch::new();
    // gap 5 s, delay 0, allowed lateness 3 s. A@1 and A@3 form [1,8). A@9 opens [9,14) and
    // moves W to 9 ≥ 8: [1,8) fires, revision 0, count 2 (kept until W ≥ 11).
    // A@7 bridges [1,8) and [9,14) into [1,14), which already fired once → revision 1.
    // A@20 moves W to 20: [1,14) fires with 1, 3, 7, 9 (count 4) and is purged (14+3 ≤ 20).
    // A@2 then has only the proto-session [2,7), 7+3 ≤ 20: late for every window.
    // EOF flushes [20,25) with count 1.
    s.write(
        "events.jsonl",
        "{\"ts\":1000,\"symbol\":\"A\"}\n{\"ts\":3000,\"symbol\":\"A\"}\n{\"ts\":9000,\"symbol\":\"A\"}\n\
         {\"ts\":7000,\"symbol\":\"A\"}\n{\"ts\":20000,\"symbol\":\"A\"}\n{\"ts\":2000,\"symbol\":\"A\"}\n",
    );
    let p = s.write(
        "p.toml",
        &format!(
            r#"
name = "sessions"
[source]
kind = "file"
path = "events.jsonl"
[schema]
timestamp = {{ field = "ts", format = "epoch_ms" }}
key = ["symbol"]
fields = {{ symbol = "string" }}
[window]
kind = "session"
gap = "5s"
allowed_lateness = "3s"
[plugin]
path = "{}"
[sink]
kind = "file"
path = "rows.jsonl"
[late_sink]
kind = "file"
path = "late.jsonl"
"#,
            support::wasm("hotspot").display()
        ),
    );
    let (ok, _, stderr) = support::run_pipeline(&p);
    assert!(ok, "{stderr}");
    let rows: Vec<(String, String, i64, i64)> = s
        .read_jsonl("rows.jsonl")
        .iter()
        .map(|r| {
            (
                r["window_start"].as_str().unwrap().to_string(),
                r["window_end"].as_str().unwrap().to_string(),
                r["revision"].as_i64().unwrap(),
                r["count"].as_i64().unwrap(),
            )
        })
        .collect();
    let t = |s: &str| format!("1970-01-01T00:00:{s}.000Z");
    assert_eq!(
        rows,
        vec![
            (t("01"), t("08"), 0, 2),
            (t("01"), t("14"), 1, 4),
            (t("20"), t("25"), 0, 1),
        ]
    );
    let late = s.read_jsonl("late.jsonl");
    assert_eq!(late.len(), 1);
    assert_eq!(late[0]["ts"], t("02"));
    assert_eq!(late[0]["watermark"], t("20"));
    assert_eq!(support::summary(&stderr)["late"], 1);
}

/// Grouping by two key fields: rows per (symbol, venue), ordered by window end, then key
/// fields in order.
#[test]
fn grouping_by_two_key_fields() {
    let s = support::Scratch::new();
    // Tumbling 10 s. [0,10): (A,x) 2 events, (A,y) 1, (B,x) 1. [10,20): (A,x) 1.
    s.write(
        "events.jsonl",
        "{\"ts\":1000,\"symbol\":\"B\",\"venue\":\"x\"}\n{\"ts\":2000,\"symbol\":\"A\",\"venue\":\"y\"}\n\
         {\"ts\":3000,\"symbol\":\"A\",\"venue\":\"x\"}\n{\"ts\":4000,\"symbol\":\"A\",\"venue\":\"x\"}\n\
         {\"ts\":12000,\"symbol\":\"A\",\"venue\":\"x\"}\n",
    );
    let p = s.write(
        "p.toml",
        &format!(
            r#"
name = "two-keys"
[source]
kind = "file"
path = "events.jsonl"
[schema]
timestamp = {{ field = "ts", format = "epoch_ms" }}
key = ["symbol", "venue"]
fields = {{ symbol = "string", venue = "string" }}
[window]
kind = "tumbling"
size = "10s"
[plugin]
path = "{}"
[sink]
kind = "file"
path = "rows.csv"
format = "csv"
"#,
            support::wasm("hotspot").display()
        ),
    );
    let (ok, _, stderr) = support::run_pipeline(&p);
    assert!(ok, "{stderr}");
    let text = std::fs::read_to_string(s.path("rows.csv")).unwrap();
    assert_eq!(
        text,
        "symbol,venue,window_start,window_end,count\n\
         A,x,1970-01-01T00:00:00.000Z,1970-01-01T00:00:10.000Z,2\n\
         A,y,1970-01-01T00:00:00.000Z,1970-01-01T00:00:10.000Z,1\n\
         B,x,1970-01-01T00:00:00.000Z,1970-01-01T00:00:10.000Z,1\n\
         A,x,1970-01-01T00:00:10.000Z,1970-01-01T00:00:20.000Z,1\n"
    );
}

/// A plugin input declared `f64` reads a schema field declared `i64`: each value is
/// widened, as the decoder widens an integer in an `f64` field.
#[test]
fn an_f64_input_reads_an_i64_field_widened() {
    let s = support::Scratch::new();
    s.write(
        "events.jsonl",
        "{\"ts\":1000,\"symbol\":\"A\",\"volume\":1}\n\
         {\"ts\":2000,\"symbol\":\"A\",\"volume\":2}\n\
         {\"ts\":3000,\"symbol\":\"A\",\"volume\":4}\n\
         {\"ts\":12000,\"symbol\":\"A\",\"volume\":9007199254740993}\n",
    );
    let path = s.write(
        "p.toml",
        &format!(
            r#"name = "widen"
[source]
kind = "file"
path = "events.jsonl"
[schema]
timestamp = {{ field = "ts", format = "epoch_ms" }}
key = ["symbol"]
fields = {{ symbol = "string", volume = "i64" }}
[window]
kind = "tumbling"
size = "10s"
[plugin]
path = "{}"
params = {{ field = "volume" }}
[sink]
kind = "file"
path = "rows.jsonl"
"#,
            support::wasm("stats").display()
        ),
    );
    let (ok, _, err) = support::run_pipeline(&path);
    assert!(ok, "{err}");
    let rows = s.read_jsonl("rows.jsonl");
    assert_eq!(rows.len(), 2, "{rows:?}");
    // 1, 2 and 4: count 3, sum 7, min 1, max 4, mean 7/3.
    assert_eq!(rows[0]["count"], 3);
    assert_eq!(rows[0]["sum"].as_f64(), Some(7.0));
    assert_eq!(rows[0]["min"].as_f64(), Some(1.0));
    assert_eq!(rows[0]["max"].as_f64(), Some(4.0));
    assert!((rows[0]["avg"].as_f64().unwrap() - 7.0 / 3.0).abs() < 1e-12);
    // 2^53 + 1 widens to the nearest f64, 2^53.
    assert_eq!(rows[1]["max"].as_f64(), Some(9_007_199_254_740_992.0));
}
