//! Hot swaps that change the output columns of a CSV result sink: refused without
//! `allow_output_change`, and with it the file is set aside and a new one started.

use std::path::Path;

use super::test_pipeline::{stats_wasm, tick_config};
use super::{Options, OutputChangeRefused, Pipeline, Step, load_plugin};
use crate::config::PipelineConfig;
use crate::pipeline::PipelineSpec;
use crate::plugin::{PluginInstance, Runtime};

/// `tests/plugins/panicky` built: one output, `n` (the number of events).
fn panicky_wasm() -> std::path::PathBuf {
    stats_wasm().with_file_name("panicky.wasm")
}

/// Ticks to `out.csv` through `stats`; AAPL at 100 ms and 1500 ms, so reading both fires
/// the window [0, 1 s) and leaves [1 s, 2 s) open.
fn csv_pipeline(dir: &Path, allow: bool) -> (Pipeline, PipelineConfig) {
    std::fs::write(
        dir.join("in.jsonl"),
        "{\"symbol\":\"AAPL\",\"t\":100,\"price\":2.0}\n{\"symbol\":\"AAPL\",\"t\":1500,\"price\":4.0}\n",
    )
    .unwrap();
    let cfg = tick_config(
        "csv",
        dir,
        "in.jsonl",
        &format!("allow_output_change = {allow}"),
        "kind = \"file\"\npath = \"out.csv\"\nformat = \"csv\"",
    );
    let spec = PipelineSpec::resolve(cfg.clone(), None).unwrap();
    let runtime = Runtime::new(false).unwrap();
    let plugin = load_plugin(&spec, &runtime).unwrap();
    (
        Pipeline::build(spec, plugin, Options::default()).unwrap(),
        cfg,
    )
}

fn panicky(cfg: &PipelineConfig) -> PluginInstance {
    let mut cfg = cfg.clone();
    cfg.plugin.path = panicky_wasm();
    let spec = PipelineSpec::resolve(cfg, None).unwrap();
    load_plugin(&spec, &Runtime::new(false).unwrap()).unwrap()
}

fn run_to_end(p: &mut Pipeline) {
    while p.step().unwrap() == Step::More {}
}

const STATS_HEADER: &str = "symbol,window_start,window_end,count,sum,min,max,avg,stddev";

#[test]
fn a_swap_to_other_columns_is_refused_and_the_live_version_keeps_writing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut p, cfg) = csv_pipeline(dir.path(), false);
    assert_eq!(p.step().unwrap(), Step::More);
    let live = p.version().to_string();
    let err = p.swap_plugin(panicky(&cfg)).unwrap_err();
    let refused = err
        .downcast_ref::<OutputChangeRefused>()
        .unwrap_or_else(|| panic!("not a refusal: {err:#}"));
    // stats writes count..stddev; panicky writes n.
    assert_eq!(
        refused.difference,
        "removed: count, sum, min, max, avg, stddev; added: n"
    );
    assert!(
        err.to_string().contains("allow_output_change = true"),
        "{err}"
    );
    assert_eq!(p.version(), live);
    run_to_end(&mut p);
    // Both windows by stats: [0, 1 s) holds 2.0, [1 s, 2 s) holds 4.0.
    let text = std::fs::read_to_string(dir.path().join("out.csv")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], STATS_HEADER);
    // count 1, sum = min = max = avg = the price (CSV writes 2.0 as 2), stddev null.
    assert_eq!(
        lines[1],
        "AAPL,1970-01-01T00:00:00.000Z,1970-01-01T00:00:01.000Z,1,2,2,2,2,"
    );
    assert_eq!(
        lines[2],
        "AAPL,1970-01-01T00:00:01.000Z,1970-01-01T00:00:02.000Z,1,4,4,4,4,"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "in.jsonl and out.csv only"
    );
}

#[test]
fn an_allowed_change_sets_the_file_aside_and_starts_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let (mut p, cfg) = csv_pipeline(dir.path(), true);
    assert_eq!(p.step().unwrap(), Step::More);
    p.swap_plugin(panicky(&cfg)).unwrap();
    run_to_end(&mut p);
    drop(p);
    let mut aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("out.") && n != "out.csv")
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    let aside = aside.remove(0);
    // out.<YYYYMMDD>T<HHMMSS>Z.csv
    assert!(
        aside.len() == "out.20261123T213000Z.csv".len() && aside.ends_with("Z.csv"),
        "{aside}"
    );
    // The window [0, 1 s) fired before the swap, by stats, into the file set aside.
    let old = std::fs::read_to_string(dir.path().join(&aside)).unwrap();
    let old: Vec<&str> = old.lines().collect();
    assert_eq!(old.len(), 2, "{old:?}");
    assert_eq!(old[0], STATS_HEADER);
    // [1 s, 2 s) fired after it, by panicky: n = 1 event, under the new header.
    let new = std::fs::read_to_string(dir.path().join("out.csv")).unwrap();
    assert_eq!(
        new,
        "symbol,window_start,window_end,n\nAAPL,1970-01-01T00:00:01.000Z,1970-01-01T00:00:02.000Z,1\n"
    );
}

#[test]
fn a_postgres_table_refuses_other_output_columns_as_a_csv_file_does() {
    let dir = tempfile::tempdir().unwrap();
    let sink = |allow: bool| {
        tick_config(
            "pg",
            dir.path(),
            "in.jsonl",
            &format!("allow_output_change = {allow}"),
            "kind = \"postgres\"\nurl = \"postgresql://u:p@127.0.0.1:5432/db\"\ntable = \"t\"",
        )
    };
    let old = ["symbol", "window_start", "window_end", "count"].map(String::from);
    let new = ["symbol", "window_start", "window_end", "n"].map(String::from);
    let refused = super::output_change_refusal(&sink(false), &old, &new)
        .expect("a table's columns are fixed");
    assert!(
        refused.sink.contains("postgres table t"),
        "{}",
        refused.sink
    );
    assert!(
        !refused.sink.contains(":p@"),
        "the password in {}",
        refused.sink
    );
    // Even with allow_output_change: a table cannot be set aside as a file can.
    assert!(super::output_change_refusal(&sink(true), &old, &new).is_some());
    assert!(super::output_change_refusal(&sink(false), &old, &old).is_none());
}
