//! Shadow runs under a real `weir serve`: a candidate version computes every window beside
//! the live one and only its diff is kept; the live output is byte-identical to a run
//! without a shadow; promote, discard, rollback and a promotion policy keep every window
//! exactly once. Expected values are worked out from the generated events.

mod support;

use std::time::Duration;

use support::serve::*;
use support::{Scratch, pipeline_toml};
use weir::serve::control::{PipelineState, ShadowOptions, ShadowState, VersionStatus};

/// The plugin versions of a result file's rows, each run of rows of one version once, in
/// file order.
fn versions_in_order(rows: &[serde_json::Value]) -> Vec<String> {
    let mut runs: Vec<String> = Vec::new();
    for r in rows {
        let v = r["plugin_version"].as_str().expect("plugin_version");
        if runs.last().map(String::as_str) != Some(v) {
            runs.push(v.to_string());
        }
    }
    runs
}

#[test]
fn a_skewed_and_panicking_candidate_reports_exactly_its_windows_and_the_live_output_is_untouched() {
    let _serial = serial();
    let s = Scratch::new();
    // 4 symbols (AAPL, MSFT, GOOG, AMZN), 5 ms apart in event time, 2 000 a second: 150 s
    // of event time, 150 windows of 1 s per symbol. The watermark waits 120 s of event time
    // (12 s of wall time): the shadow is deployed before any window fires, so it compares
    // every window.
    let input = Gen {
        count: 30_000,
        keys: 4,
        interval_ms: 5,
        seed: 23,
        rate: 2_000,
    };
    let stats = support::wasm("stats");
    let params = "params = { field = \"price\" }";
    let late = "\n[watermark]\ndelay = \"120s\"\n";
    for name in ["plain", "shadowed"] {
        s.write(
            &format!("{name}.toml"),
            &format!(
                "{}{late}",
                pipeline_toml(name, &input.toml(), &stats, params)
            ),
        );
    }
    let serve = Serve::start(
        &s,
        &format!(
            "{}{}",
            tenant_toml("acme", ACME, &["plain.toml", "shadowed.toml"]),
            tenant_toml("globex", GLOBEX, &[])
        ),
    );
    let live_version = live(&serve.view("acme", "shadowed")).to_string();
    let skewed = support::wasm("skewed");
    let (ok, out, err) = serve.cli(
        ACME,
        &[
            "deploy",
            "--shadow",
            "--tenant",
            "acme",
            "--pipeline",
            "shadowed",
            skewed.to_str().expect("UTF-8"),
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("runs as the shadow of"), "{out}");
    assert_eq!(
        serve.view("acme", "shadowed").counters.windows_fired,
        0,
        "a window fired before the shadow started: give the stream a longer watermark delay"
    );
    for name in ["plain", "shadowed"] {
        serve.wait_state(
            "acme",
            name,
            PipelineState::Finished,
            Duration::from_secs(90),
        );
    }

    // The live output with a shadow is byte for byte the output without one.
    let plain = std::fs::read(s.path("plain.jsonl")).expect("plain output");
    let shadowed = std::fs::read(s.path("shadowed.jsonl")).expect("shadowed output");
    assert!(!plain.is_empty());
    assert!(
        plain == shadowed,
        "the shadowed pipeline's output differs: {} bytes against {}",
        shadowed.len(),
        plain.len()
    );
    let expected = bucket(&input.events(), 1000);
    assert_stats_exact(&s.read_jsonl("shadowed.jsonl"), &expected, "live rows");

    // The diff, through the CLI as JSON: every window compared; MSFT's differ in `max` by
    // exactly 1, GOOG's failed in the candidate, the others are equal.
    let (ok, json, err) = serve.cli(
        ACME,
        &[
            "diff",
            "--json",
            "--tenant",
            "acme",
            "--pipeline",
            "shadowed",
        ],
    );
    assert!(ok, "{err}");
    let d: serde_json::Value = serde_json::from_str(&json).expect("diff JSON");
    let per_symbol = |sym: &str| expected.keys().filter(|(s, _)| s == sym).count() as u64;
    assert_eq!(d["state"], "running", "{d}");
    assert_eq!(d["live_version"], live_version.as_str());
    assert!(
        d["version"]
            .as_str()
            .unwrap()
            .starts_with("weir-test-skewed@")
    );
    assert_eq!(d["windows_compared"], expected.len() as u64, "{d}");
    assert_eq!(d["windows_differing"], per_symbol("MSFT"), "{d}");
    assert_eq!(d["candidate_errors"], per_symbol("GOOG"), "{d}");
    assert_eq!(
        d["windows_equal"],
        per_symbol("AAPL") + per_symbol("AMZN"),
        "{d}"
    );
    assert_eq!(
        d["columns_removed"],
        serde_json::json!(["sum", "min", "avg", "stddev"])
    );
    assert_eq!(d["columns_added"], serde_json::json!([]));
    assert!(d["since"].as_str().is_some_and(|t| t.ends_with('Z')));
    // Costs of both versions, side by side.
    for side in ["live_cost", "candidate_cost"] {
        let c = &d[side];
        assert!(c["calls"].as_u64().is_some_and(|n| n > 0), "{side}: {c}");
        assert!(
            c["p50_seconds"].as_f64().is_some_and(|t| t > 0.0),
            "{side}: {c}"
        );
        assert!(
            c["p99_seconds"].as_f64() >= c["p50_seconds"].as_f64(),
            "{side}: {c}"
        );
        assert!(
            c["memory_bytes"].as_u64().is_some_and(|b| b > 0),
            "{side}: {c}"
        );
    }
    let diffs = d["differing"].as_array().expect("differing");
    assert_eq!(diffs.len(), 100, "the first 100 are kept");
    for w in diffs {
        let sym = w["key"]["symbol"].as_str().expect("symbol");
        let start = ts_ms(w["window_start"].as_str().unwrap());
        assert_eq!(ts_ms(w["window_end"].as_str().unwrap()) - start, 1000);
        let b = expected
            .get(&(sym.to_string(), start))
            .unwrap_or_else(|| panic!("a diff for a window with no events: {w}"));
        match sym {
            "MSFT" => {
                assert_eq!(w["result"], "differing", "{w}");
                assert_eq!(
                    w["cells"],
                    serde_json::json!([{
                        "row": 0, "column": "max", "live": b.max, "candidate": b.max + 1.0
                    }]),
                    "{w}"
                );
            }
            "GOOG" => {
                assert_eq!(w["result"], "error", "{w}");
                assert!(w["error"].as_str().unwrap().contains("refusing key"), "{w}");
            }
            other => panic!("{other}'s windows are equal, yet listed: {w}"),
        }
    }
    // The table the CLI prints without --json names the cells.
    let (ok, text, err) = serve.cli(
        ACME,
        &["diff", "--tenant", "acme", "--pipeline", "shadowed"],
    );
    assert!(ok, "{err}");
    assert!(
        text.contains(&format!(
            "windows compared {}, equal {}, differing {}, candidate errors {}",
            expected.len(),
            per_symbol("AAPL") + per_symbol("AMZN"),
            per_symbol("MSFT"),
            per_symbol("GOOG")
        )),
        "{text}"
    );
    assert!(
        text.contains("columns removed: sum, min, avg, stddev"),
        "{text}"
    );
    // The metrics count them per pipeline.
    let metrics = serve.client(OPERATOR).metrics().expect("metrics");
    for (result, n) in [
        ("equal", per_symbol("AAPL") + per_symbol("AMZN")),
        ("differing", per_symbol("MSFT")),
        ("error", per_symbol("GOOG")),
    ] {
        let line = format!(
            "weir_shadow_windows_total{{tenant=\"acme\",pipeline=\"shadowed\",result=\"{result}\"}} {n}"
        );
        assert!(
            metrics.lines().any(|l| l == line),
            "no `{line}` in:\n{metrics}"
        );
    }
    // Its errors never touched the live version.
    let v = serve.view("acme", "shadowed");
    assert_eq!(v.counters.plugin_errors, 0);
    assert!(v.last_plugin_error.is_none(), "{:?}", v.last_plugin_error);
    let shadow = v
        .versions
        .iter()
        .find(|x| x.status == VersionStatus::Shadow);
    assert!(
        shadow.is_some(),
        "the history lists the shadow: {:?}",
        v.versions
    );
    // A tenant sees only its own pipelines' shadows and schemas.
    let globex = serve.client(GLOBEX);
    let (status, _) = refused(globex.shadow("acme", "shadowed"));
    assert_eq!(status, 403);
    let (status, _) = refused(globex.schema("acme", "shadowed"));
    assert_eq!(status, 403);
    // The same through the CLI.
    let (ok, text, err) = serve.cli(
        ACME,
        &["schema", "--tenant", "acme", "--pipeline", "shadowed"],
    );
    assert!(ok, "{err}");
    assert!(
        text.contains("window:     tumbling 1s (allowed lateness 0s)"),
        "{text}"
    );
    assert!(text.contains("  volume i64\n"), "{text}");
    assert!(text.contains("  field = \"price\""), "{text}");
    // A pipeline name mistyped: the tenant is told its pipelines.
    let (status, reason) = refused(serve.client(ACME).schema("acme", "shadowd"));
    assert_eq!(status, 404, "{reason}");
    assert!(
        reason.contains("tenant acme's pipelines are plain, shadowed"),
        "{reason}"
    );
    // What a candidate must match, as the pipeline file says.
    let schema = serve
        .client(ACME)
        .schema("acme", "shadowed")
        .expect("schema");
    let fields: Vec<(&str, &str, bool)> = schema
        .fields
        .iter()
        .map(|f| (f.name.as_str(), f.ty.as_str(), f.key))
        .collect();
    assert_eq!(
        fields,
        [
            ("price", "f64", false),
            ("symbol", "string", true),
            ("volume", "i64", false)
        ]
    );
    assert_eq!(schema.key, ["symbol"]);
    assert_eq!(schema.window, "tumbling 1s");
    assert_eq!(schema.watermark_delay, "2m");
    assert_eq!(schema.timestamp, "ts (rfc3339)");
    assert_eq!(
        schema.params.get("field").map(String::as_str),
        Some("price")
    );
    assert_eq!(
        schema.output_columns,
        [
            "symbol",
            "window_start",
            "window_end",
            "plugin_version",
            "count",
            "sum",
            "min",
            "max",
            "avg",
            "stddev"
        ]
    );
}

#[test]
fn promote_discard_rollback_and_a_policy_keep_every_window_exactly_once() {
    let _serial = serial();
    let s = Scratch::new();
    // 3 000 events/s, 1 ms apart: 9 windows (3 keys) a second, 30 s.
    let input = Gen {
        count: 90_000,
        keys: 3,
        interval_ms: 1,
        seed: 29,
        rate: 3_000,
    };
    let stats = support::wasm("stats");
    s.write(
        "ticks.toml",
        &pipeline_toml(
            "ticks",
            &input.toml(),
            &stats,
            "params = { field = \"price\" }",
        ),
    );
    let serve = Serve::start(&s, &tenant_toml("acme", ACME, &["ticks.toml"]));
    let acme = serve.client(ACME);
    let v1 = live(&serve.view("acme", "ticks")).to_string();
    let incremental = std::fs::read(support::wasm("stats_incremental")).expect("component");
    let status_of = |v: &weir::serve::PipelineView, id: &str| {
        v.versions
            .iter()
            .find(|x| x.id == id)
            .map(|x| x.status)
            .unwrap_or_else(|| panic!("{id} not in {:?}", v.versions))
    };
    let compared = |n: u64| {
        wait_for("windows compared", Duration::from_secs(30), || {
            let d = acme.shadow("acme", "ticks").expect("diff");
            (d.report.windows_compared >= n).then_some(d)
        })
    };

    // 0. A candidate that fails every call stops after its own `quarantine_after` (10) failures
    // in a row, with the reason; the live version never notices.
    let shouty = std::fs::read(support::wasm("shouty")).expect("component");
    acme.deploy_shadow("acme", "ticks", shouty, Default::default())
        .expect("shadow");
    let d = wait_for(
        "the failing shadow to stop",
        Duration::from_secs(30),
        || {
            let d = acme.shadow("acme", "ticks").expect("diff");
            (d.state == ShadowState::Stopped).then_some(d)
        },
    );
    let why = d.report.stopped.as_deref().unwrap_or_default();
    assert!(why.contains("failed 10 times in a row"), "{why}");
    assert_eq!(d.report.candidate_errors, 10);
    assert_eq!(d.report.windows_compared, 10);
    let v = serve.view("acme", "ticks");
    assert_eq!(v.state, PipelineState::Running);
    assert_eq!(v.counters.plugin_errors, 0);
    let shouty_id = d.report.version.clone();
    assert_eq!(status_of(&v, &shouty_id), VersionStatus::Discarded);

    // 1. The incremental build of the same aggregate: no window differs.
    let shadow = acme
        .deploy_shadow("acme", "ticks", incremental.clone(), Default::default())
        .expect("shadow");
    let v2 = shadow.report.version.clone();
    assert!(v2.starts_with("weir-plugin-stats-incremental@"), "{v2}");
    assert_eq!(shadow.state, ShadowState::Running);
    let d = compared(30);
    assert_eq!(
        d.report.windows_differing,
        0,
        "{:?}",
        d.report.differing.first()
    );
    assert_eq!(d.report.candidate_errors, 0);
    assert_eq!(d.report.windows_equal, d.report.windows_compared);
    // 2. Discarded through the CLI: the history says so, v1 stays live.
    let (ok, out, err) = serve.cli(
        ACME,
        &["discard", "--tenant", "acme", "--pipeline", "ticks"],
    );
    assert!(ok, "{err}");
    assert!(out.contains("discarded"), "{out}");
    let v = serve.view("acme", "ticks");
    assert_eq!(live(&v), v1);
    assert_eq!(status_of(&v, &v2), VersionStatus::Discarded);
    let (status, reason) = refused(acme.promote("acme", "ticks"));
    assert_eq!(status, 409, "{reason}");

    // 3. Again, promoted through the CLI once it compared some windows.
    acme.deploy_shadow("acme", "ticks", incremental.clone(), Default::default())
        .expect("shadow");
    compared(20);
    let (ok, out, err) = serve.cli(
        ACME,
        &["promote", "--tenant", "acme", "--pipeline", "ticks"],
    );
    assert!(ok, "{err}");
    assert!(out.contains(&v2), "{out}");
    let v = serve.view("acme", "ticks");
    assert_eq!(live(&v), v2);
    assert_eq!(status_of(&v, &v1), VersionStatus::Previous);
    assert_eq!(
        acme.shadow("acme", "ticks").expect("diff").state,
        ShadowState::Promoted
    );
    std::thread::sleep(Duration::from_millis(1000));

    // 4. Rolled back through the API: v1 again.
    assert_eq!(acme.rollback("acme", "ticks").expect("rollback").id, v1);
    std::thread::sleep(Duration::from_millis(500));

    // 5. A shadow with a policy: live by itself after 40 windows, none differing.
    let s5 = acme
        .deploy_shadow(
            "acme",
            "ticks",
            incremental,
            ShadowOptions {
                promote_after: Some(weir::pipeline::PromoteAfter {
                    windows: 40,
                    differing: 0,
                }),
                allow_output_change: false,
            },
        )
        .expect("shadow with a policy");
    assert_eq!(s5.state, ShadowState::Running);
    wait_for("the policy to promote", Duration::from_secs(30), || {
        (live(&serve.view("acme", "ticks")) == v2).then_some(())
    });
    let d = acme.shadow("acme", "ticks").expect("diff");
    assert_eq!(d.state, ShadowState::Promoted);
    assert!(
        d.report.windows_compared >= 40,
        "{}",
        d.report.windows_compared
    );
    assert!(
        serve.view("acme", "ticks").counters.events_read < input.count,
        "the stream ended before the last promotion; the test proves less than it says"
    );

    let done = serve.wait_state(
        "acme",
        "ticks",
        PipelineState::Finished,
        Duration::from_secs(60),
    );
    assert_eq!(done.counters.plugin_errors, 0);
    // Every window exactly once, right, and the versions in the order they went live.
    let rows = s.read_jsonl("ticks.jsonl");
    let expected = bucket(&input.events(), 1000);
    assert_stats_exact(&rows, &expected, "rows");
    assert_eq!(
        versions_in_order(&rows),
        [v1.clone(), v2.clone(), v1, v2],
        "versions in file order"
    );
}
