//! `weir plugin new` writes a crate that works with no edits: its `cargo test` passes (run
//! in the sandbox through `weir plugin exec`), `cargo build --release` builds the
//! component, and its sample pipeline gives the rows computed by hand from its events.
//! Whole-window and `--incremental`.

mod support;

use support::root;
use support::tenant::{built_component, cargo_in as cargo, succeed};

/// One row of the sample pipeline: window start, symbol, events, mean, max.
type SampleRow = (String, String, i64, Option<f64>, Option<f64>);

/// `weir plugin new NAME [--incremental]` in a temp dir, then the crate's own commands.
fn scaffold_and_run(name: &str, incremental: bool) {
    let scratch = tempfile::tempdir().expect("temp dir");
    let mut new = support::weir();
    new.current_dir(scratch.path())
        .args(["plugin", "new", name]);
    if incremental {
        new.arg("--incremental");
    }
    let said = succeed(new.output().expect("weir runs"), "weir plugin new");
    assert!(said.starts_with(&format!("created ./{name}")), "{said}");
    let dir = scratch.path().join(name);
    // The workspace's lock file: the SDK's dependency versions, resolvable offline.
    std::fs::copy(root().join("Cargo.lock"), dir.join("Cargo.lock")).expect("Cargo.lock");

    // `cargo test`: a wasm32-wasip2 test binary, run by `weir plugin exec`.
    let tests = succeed(
        cargo(&dir)
            .args(["test", "--offline"])
            .output()
            .expect("cargo runs"),
        "cargo test in the new crate",
    );
    assert!(
        tests.contains("test result: ok. 2 passed; 0 failed"),
        "{tests}"
    );

    succeed(
        cargo(&dir)
            .args(["build", "--offline", "--release", "--quiet"])
            .output()
            .expect("cargo runs"),
        "cargo build --release in the new crate",
    );
    // The pipeline names the component where `cargo build --release` puts it without
    // CARGO_TARGET_DIR: copy it there.
    let lib = name.replace('-', "_");
    let built = built_component(&lib);
    let expected_at = dir.join(format!("target/wasm32-wasip2/release/{lib}.wasm"));
    std::fs::create_dir_all(expected_at.parent().expect("has a parent")).expect("target dir");
    std::fs::copy(&built, &expected_at).unwrap_or_else(|e| panic!("{}: {e}", built.display()));

    let check = succeed(
        support::weir()
            .current_dir(&dir)
            .args(["check", "pipeline.toml"])
            .output()
            .expect("weir runs"),
        "weir check",
    );
    assert!(check.contains(&format!("plugin   {name} 0.1.0")), "{check}");

    let stdout = succeed(
        support::weir()
            .current_dir(&dir)
            .args(["run", "--no-progress", "pipeline.toml"])
            .output()
            .expect("weir runs"),
        "weir run",
    );
    let mut rows: Vec<SampleRow> = stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
            (
                v["window_start"]
                    .as_str()
                    .expect("window_start")
                    .to_string(),
                v["symbol"].as_str().expect("symbol").to_string(),
                v["events"].as_i64().expect("events"),
                v["mean"].as_f64(),
                v["max"].as_f64(),
            )
        })
        .collect();
    rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    // events.jsonl, 10 s tumbling windows from 2024-01-01T00:00:00Z:
    // [0 s, 10 s): AAPL 10.0, 12.5, 11.0 -> 3 events, mean 33.5 / 3, max 12.5;
    //              MSFT 20.0, 22.0       -> 2 events, mean 21, max 22.
    // [10 s, 20 s): AAPL 13.0            -> 1 event, mean 13, max 13;
    //              MSFT 25.5 and no price -> 2 events, mean 25.5, max 25.5.
    let w0 = "2024-01-01T00:00:00.000Z";
    let w1 = "2024-01-01T00:00:10.000Z";
    let expected = [
        (w0, "AAPL", 3, 33.5 / 3.0, 12.5),
        (w0, "MSFT", 2, 21.0, 22.0),
        (w1, "AAPL", 1, 13.0, 13.0),
        (w1, "MSFT", 2, 25.5, 25.5),
    ];
    assert_eq!(rows.len(), expected.len(), "{stdout}");
    for (row, (window, symbol, events, mean, max)) in rows.iter().zip(expected) {
        assert_eq!(
            (row.0.as_str(), row.1.as_str(), row.2),
            (window, symbol, events),
            "{stdout}"
        );
        let mean_got = row.3.expect("mean is set");
        assert!(
            (mean_got - mean).abs() < 1e-9,
            "mean {mean_got} != {mean}: {stdout}"
        );
        assert_eq!(row.4, Some(max), "{stdout}");
    }
}

#[test]
fn whole_window_crate_tests_builds_and_runs() {
    scaffold_and_run("summary-whole", false);
}

#[test]
fn incremental_crate_tests_builds_and_runs() {
    scaffold_and_run("summary-incremental", true);
}

#[test]
fn refuses_a_bad_name_and_a_taken_directory() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let out = support::weir()
        .current_dir(scratch.path())
        .args(["plugin", "new", "2fast"])
        .output()
        .expect("weir runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`2fast` is not a valid crate name: it must start with an ASCII letter"),
        "{stderr}"
    );

    std::fs::create_dir(scratch.path().join("mine")).expect("dir");
    std::fs::write(scratch.path().join("mine/keep.txt"), "x").expect("file");
    let out = support::weir()
        .current_dir(scratch.path())
        .args(["plugin", "new", "mine"])
        .output()
        .expect("weir runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("already exists and is not empty"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(scratch.path().join("mine"))
            .expect("dir")
            .count(),
        1
    );

    let out = support::weir()
        .current_dir(scratch.path())
        .args(["plugin", "new", "elsewhere", "--sdk"])
        .arg(root().join("host"))
        .output()
        .expect("weir runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not the weir-guest SDK"), "{stderr}");
}
