//! The whole tenant path, from an empty directory, as the README's "Writing your own
//! plugin" walks it: `weir plugin new`, `cargo test`, `cargo build --release`,
//! `weir plugin test`, a deploy into a running `weir serve`, its rows, a version that
//! panics read back through `weir plugin list`, and a rollback.

mod support;

use std::time::Duration;

use support::Scratch;
use support::serve::{ACME, Serve, serial, wait_for};
use support::tenant::{built_component, cargo_in, succeed};
use weir::serve::control::PipelineState;

/// The tenant's crate.
const NAME: &str = "tenant-summary";
const LIB: &str = "tenant_summary";

/// The rows of `weir plugin test`'s table (its lines up to the first empty one), split on
/// whitespace, header first.
fn table(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// The rows of `ticks.jsonl` written by a version whose id starts with `version`.
fn rows_of(s: &Scratch, version: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(s.path("ticks.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| {
            r["plugin_version"]
                .as_str()
                .is_some_and(|v| v.starts_with(version))
        })
        .collect()
}

#[test]
fn from_an_empty_directory_to_a_live_plugin_a_panic_and_a_rollback() {
    let _serial = serial();
    let s = Scratch::new();

    // 1. A new crate.
    succeed(
        support::weir()
            .current_dir(s.dir.path())
            .args(["plugin", "new", NAME])
            .output()
            .expect("weir runs"),
        "weir plugin new",
    );
    let dir = s.path(NAME);
    // The workspace's lock file makes the SDK's dependencies resolve offline.
    std::fs::copy(support::root().join("Cargo.lock"), dir.join("Cargo.lock")).expect("lock");

    // 2. Its tests pass as written, in the sandbox.
    let tests = succeed(
        cargo_in(&dir)
            .args(["test", "--offline"])
            .output()
            .expect("cargo runs"),
        "cargo test",
    );
    assert!(tests.contains("test result: ok."), "{tests}");

    // 3. The component.
    succeed(
        cargo_in(&dir)
            .args(["build", "--offline", "--release", "--quiet"])
            .output()
            .expect("cargo runs"),
        "cargo build --release",
    );
    let v1 = s.path("v1.wasm");
    std::fs::copy(built_component(LIB), &v1).expect("component built");

    // 4. `weir plugin test` over the crate's sample pipeline and events. By hand, from
    // events.jsonl in 10 s windows from 2024-01-01T00:00:00Z: [0 s, 10 s) AAPL 10.0, 12.5,
    // 11.0 (3 events, mean 11.166666666666666, max 12.5), MSFT 20.0, 22.0 (2, 21.0, 22.0);
    // [10 s, 20 s) AAPL 13.0 (1, 13.0, 13.0), MSFT 25.5 and one without a price (2, 25.5,
    // 25.5).
    let shown = succeed(
        support::weir()
            .current_dir(&dir)
            .args(["plugin", "test"])
            .arg(&v1)
            .args(["--pipeline", "pipeline.toml"])
            .output()
            .expect("weir runs"),
        "weir plugin test",
    );
    let mut rows = table(&shown);
    assert_eq!(
        rows[0],
        [
            "symbol",
            "window_start",
            "window_end",
            "events",
            "mean",
            "max"
        ],
        "{shown}"
    );
    rows.remove(0);
    rows.sort_by(|a, b| (&a[1], &a[0]).cmp(&(&b[1], &b[0])));
    let w0 = ["2024-01-01T00:00:00.000Z", "2024-01-01T00:00:10.000Z"];
    let w1 = ["2024-01-01T00:00:10.000Z", "2024-01-01T00:00:20.000Z"];
    let row = |sym: &str, w: [&str; 2], rest: [&str; 3]| -> Vec<String> {
        [sym, w[0], w[1], rest[0], rest[1], rest[2]]
            .iter()
            .map(|c| c.to_string())
            .collect()
    };
    assert_eq!(
        rows,
        [
            row("AAPL", w0, ["3", &(33.5_f64 / 3.0).to_string(), "12.5"]),
            row("MSFT", w0, ["2", "21.0", "22.0"]),
            row("AAPL", w1, ["1", "13.0", "13.0"]),
            row("MSFT", w1, ["2", "25.5", "25.5"]),
        ],
        "{shown}"
    );

    // 5. A host runs the operator's pipeline with the operator's plugin; the tenant
    // deploys its own and sees its rows.
    let generated = "[source]\nkind = \"generator\"\nworkload = \"stocks\"\ncount = 1000000\nkeys = 2\ninterval = \"100ms\"\nrate = 100\n";
    s.write(
        "ticks.toml",
        &support::pipeline_toml_to(
            "ticks",
            generated,
            &support::wasm("stats"),
            // The operator lets the tenant replace its plugin's columns with its own.
            "params = { field = \"price\" }\nallow_output_change = true",
            "kind = \"file\"\npath = \"ticks.jsonl\"",
        ),
    );
    let serve = Serve::start(
        &s,
        &format!(
            "[[tenant]]\nname = \"acme\"\ntoken = \"{ACME}\"\npipelines = [\"ticks.toml\"]\n[tenant.limits]\nquarantine_after = 3\n"
        ),
    );
    // The tenant's aggregate has other columns than the operator's: it confirms the change.
    let deploy = |wasm: &std::path::Path| {
        let wasm = wasm.to_str().expect("UTF-8 path");
        let (ok, stdout, stderr) = serve.cli(
            ACME,
            &[
                "deploy",
                "--tenant",
                "acme",
                "--pipeline",
                "ticks",
                "--allow-output-change",
                wasm,
            ],
        );
        assert!(ok, "deploy failed:\n{stdout}\n{stderr}");
        stdout
    };
    let said = deploy(&v1);
    assert!(said.contains(&format!("{NAME}@0.1.0+")), "{said}");
    let v1_rows = wait_for("rows of 0.1.0", Duration::from_secs(60), || {
        let rows = rows_of(&s, &format!("{NAME}@0.1.0+"));
        (rows.len() >= 2).then_some(rows)
    });
    for r in &v1_rows {
        // Each 1 s window of one symbol holds its ticks (100 ms apart in event time).
        let events = r["events"].as_i64().expect("events");
        let (mean, max) = (r["mean"].as_f64(), r["max"].as_f64());
        assert!(events >= 1, "{r}");
        assert!(mean.zip(max).is_some_and(|(m, x)| m <= x), "{r}");
    }

    // The host measured the calls: a count of calls and the CPU time spent in them.
    let scrape = serve
        .client(support::serve::OPERATOR)
        .metrics()
        .expect("metrics");
    let value = |name: &str| -> f64 {
        let prefix = format!("{name}{{tenant=\"acme\",pipeline=\"ticks\"}} ");
        scrape
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{scrape}"))
    };
    assert!(value("weir_plugin_call_seconds_count") >= 1.0, "{scrape}");
    assert!(value("weir_plugin_call_seconds_sum") > 0.0, "{scrape}");
    assert!(value("weir_plugin_cpu_seconds_total") > 0.0, "{scrape}");
    assert!(value("weir_plugin_memory_bytes") > 0.0, "{scrape}");
    // The operator's stats and the tenant's 0.1.0 were compiled (the host has no cache
    // directory); the histogram has no labels.
    let compiles: f64 = scrape
        .lines()
        .find_map(|l| l.strip_prefix("weir_plugin_compile_seconds_count "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no compile count in:\n{scrape}"));
    assert!(compiles >= 2.0, "{scrape}");

    // 6. A version that panics in aggregate: its message and location reach the tenant.
    let lib_rs = dir.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib_rs).expect("lib.rs");
    let mut lines: Vec<String> = source.lines().map(str::to_string).collect();
    let at = lines
        .iter()
        .position(|l| l.contains("fn aggregate("))
        .expect("lib.rs has aggregate");
    let panic_line = "        panic!(\"tenant-summary: no summary for {} events\", events.len());";
    lines.insert(at + 1, panic_line.to_string());
    std::fs::write(&lib_rs, lines.join("\n") + "\n").expect("lib.rs written");
    // The line number is 1-based; the column is where `panic!` starts, 1-based.
    let location = format!(
        "src/lib.rs:{}:{}",
        at + 2,
        panic_line.find("panic!").expect("panic!") + 1
    );
    let manifest = dir.join("Cargo.toml");
    let toml = std::fs::read_to_string(&manifest).expect("Cargo.toml");
    std::fs::write(
        &manifest,
        toml.replacen("version = \"0.1.0\"", "version = \"0.2.0\"", 1),
    )
    .expect("Cargo.toml written");
    succeed(
        cargo_in(&dir)
            .args(["build", "--offline", "--release", "--quiet"])
            .output()
            .expect("cargo runs"),
        "cargo build --release of 0.2.0",
    );
    let v2 = s.path("v2.wasm");
    std::fs::copy(built_component(LIB), &v2).expect("component built");
    let said = deploy(&v2);
    assert!(said.contains(&format!("{NAME}@0.2.0+")), "{said}");
    serve.wait_state(
        "acme",
        "ticks",
        PipelineState::Quarantined,
        Duration::from_secs(60),
    );
    let (ok, listed, stderr) = serve.cli(ACME, &["list", "--tenant", "acme"]);
    assert!(ok, "{stderr}");
    let panic_text = format!("panicked at {location}: tenant-summary: no summary for ");
    assert!(
        listed.contains(&panic_text),
        "wanted `{panic_text}` in:\n{listed}"
    );
    assert!(!listed.contains("wasm backtrace"), "{listed}");
    assert!(
        listed.contains("deploy a fixed version or roll back"),
        "{listed}"
    );

    // 7. Roll back: 0.1.0, the version live before, writes rows again.
    let before = rows_of(&s, &format!("{NAME}@0.1.0+")).len();
    let (ok, said, stderr) = serve.cli(
        ACME,
        &["rollback", "--tenant", "acme", "--pipeline", "ticks"],
    );
    assert!(ok, "{stderr}");
    assert!(said.contains(&format!("{NAME}@0.1.0+")), "{said}");
    serve.wait_state(
        "acme",
        "ticks",
        PipelineState::Running,
        Duration::from_secs(30),
    );
    wait_for(
        "rows of 0.1.0 after the rollback",
        Duration::from_secs(60),
        || (rows_of(&s, &format!("{NAME}@0.1.0+")).len() > before).then_some(()),
    );
    assert!(rows_of(&s, &format!("{NAME}@0.2.0+")).is_empty());
}
