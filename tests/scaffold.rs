//! `weir plugin new` writes a crate that works with no edits and moves with its SDK: the SDK
//! by a relative path, a `Cargo.lock`; its `cargo test` passes (run in the sandbox through
//! `weir plugin exec`), `weir plugin build` puts the component where its pipeline file names
//! it even under `CARGO_TARGET_DIR`, and its sample pipeline gives the rows computed by hand
//! from its events. Whole-window and `--incremental`. Then the `weir.toml` it writes: a
//! redeploy is `weir plugin deploy` alone.

mod support;

use std::path::Path;

use support::root;
use support::serve::{ACME, Serve, serial};
use support::tenant::{built_component, cargo_in as cargo, succeed};
use support::{Scratch, outcome};
use weir::serve::control::PipelineView;

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
    // The lock file is resolved from the crates this machine has (no network in tests).
    new.env("CARGO_NET_OFFLINE", "true");
    let said = succeed(new.output().expect("weir runs"), "weir plugin new");
    assert!(
        said.starts_with(&format!("created ./{name} (wrote Cargo.lock)")),
        "{said}"
    );
    let dir = scratch.path().join(name);

    // The SDK by a path relative to the crate, which leads to this checkout's guest-sdk.
    let manifest: toml::Table = std::fs::read_to_string(dir.join("Cargo.toml"))
        .expect("Cargo.toml")
        .parse()
        .expect("Cargo.toml parses");
    let sdk = manifest["dependencies"]["weir-guest"]["path"]
        .as_str()
        .expect("the SDK by path");
    assert!(Path::new(sdk).is_relative(), "{sdk}");
    assert_eq!(
        dir.join(sdk)
            .canonicalize()
            .expect("the SDK path leads somewhere"),
        root().join("guest-sdk").canonicalize().expect("guest-sdk")
    );
    // A lock file holding the crate, the SDK and the SDK's dependencies.
    let lock: toml::Table = std::fs::read_to_string(dir.join("Cargo.lock"))
        .expect("Cargo.lock written")
        .parse()
        .expect("Cargo.lock parses");
    let locked: Vec<&str> = lock["package"]
        .as_array()
        .expect("packages")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for package in [
        name,
        "weir-guest",
        "weir-guest-derive",
        "wit-bindgen",
        "postcard",
    ] {
        assert!(locked.contains(&package), "{package} in {locked:?}");
    }

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

    // `weir plugin build` with cargo's target directory elsewhere (CARGO_TARGET_DIR, as
    // `cargo_in` sets it): the component lands where the pipeline file names it too.
    let target_dir = root().join("target/scaffold");
    let (ok, printed, stderr) = outcome(
        support::weir()
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", &target_dir)
            .env("CARGO_NET_OFFLINE", "true")
            .args(["plugin", "build"])
            .output()
            .expect("weir runs"),
    );
    assert!(ok, "weir plugin build failed:\n{printed}\n{stderr}");
    let lib = name.replace('-', "_");
    let relative = format!("target/wasm32-wasip2/release/{lib}.wasm");
    assert_eq!(printed.trim(), relative, "{stderr}");
    let built = built_component(&lib);
    assert!(
        stderr.contains(&format!("cargo wrote {}", built.display())),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(dir.join(&relative)).expect("the component where the pipeline names it"),
        std::fs::read(&built).expect("the component cargo built"),
    );

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

#[test]
fn without_cargo_the_crate_is_written_and_the_lock_file_left_to_the_first_build() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let out = support::weir()
        .current_dir(scratch.path())
        .env("CARGO", scratch.path().join("no-such-cargo"))
        .args(["plugin", "new", "lockless"])
        .output()
        .expect("weir runs");
    let said = succeed(out, "weir plugin new without cargo");
    assert!(
        said.starts_with("created ./lockless (no Cargo.lock written (cargo could not be run:"),
        "{said}"
    );
    assert!(said.contains("the first `weir plugin build` or `cargo build` writes it"));
    let dir = scratch.path().join("lockless");
    assert!(dir.join("Cargo.toml").is_file());
    assert!(dir.join("weir.toml").is_file());
    assert!(!dir.join("Cargo.lock").exists());
}

/// `weir plugin <args>` in `dir` with `token` (none when empty) and no `WEIR_URL`:
/// (success, stdout, stderr).
fn plugin_in(dir: &Path, token: &str, args: &[&str]) -> (bool, String, String) {
    let mut cmd = support::weir();
    cmd.current_dir(dir)
        .arg("plugin")
        .args(args)
        .env_remove("WEIR_URL")
        .env_remove("WEIR_TOKEN");
    if !token.is_empty() {
        cmd.env("WEIR_TOKEN", token);
    }
    outcome(cmd.output().expect("weir runs"))
}

#[test]
fn with_weir_toml_a_redeploy_is_one_command() {
    let _serial = serial();
    let s = Scratch::new();
    // The operator's pipeline runs stats; the tenant deploys stats-incremental (the same
    // params, inputs and output columns).
    let generated = "[source]\nkind = \"generator\"\nworkload = \"stocks\"\ncount = 1000000\nkeys = 2\ninterval = \"100ms\"\nrate = 50\n";
    s.write(
        "ticks.toml",
        &support::pipeline_toml(
            "ticks",
            generated,
            &support::wasm("stats"),
            "params = { field = \"price\" }",
        ),
    );
    let serve = Serve::start(
        &s,
        &format!("[[tenant]]\nname = \"acme\"\ntoken = \"{ACME}\"\npipelines = [\"ticks.toml\"]\n"),
    );
    let dir = s.path("mine");
    std::fs::create_dir_all(dir.join("build")).expect("crate dir");
    std::fs::copy(
        support::wasm("stats_incremental"),
        dir.join("build/plugin.wasm"),
    )
    .expect("component");
    // What `weir plugin new` writes, with the placeholders filled in.
    let weir_toml = format!(
        "url = \"{}\"\ntenant = \"acme\"\npipeline = \"ticks\"\ncomponent = \"build/plugin.wasm\"\n",
        serve.url()
    );
    std::fs::write(dir.join("weir.toml"), &weir_toml).expect("weir.toml");

    let (ok, said, stderr) = plugin_in(&dir, ACME, &["deploy"]);
    assert!(ok, "{said}\n{stderr}");
    let deployed = said
        .strip_prefix("acme/ticks: ")
        .and_then(|rest| rest.trim().strip_suffix(" is live"))
        .unwrap_or_else(|| panic!("{said}"))
        .to_string();
    assert!(
        deployed.starts_with("weir-plugin-stats-incremental@"),
        "{said}"
    );

    // `list --json` is the host's list of pipelines, here as the tenant sees it.
    let (ok, json, stderr) = plugin_in(&dir, ACME, &["list", "--json"]);
    assert!(ok, "{stderr}");
    let pipelines: Vec<PipelineView> = serde_json::from_str(&json).expect("the host's JSON");
    assert_eq!(pipelines.len(), 1, "{json}");
    assert_eq!(
        (pipelines[0].tenant.as_str(), pipelines[0].name.as_str()),
        ("acme", "ticks")
    );
    let live: Vec<&str> = pipelines[0]
        .versions
        .iter()
        .filter(|v| v.live)
        .map(|v| v.id.as_str())
        .collect();
    assert_eq!(live, [deployed.as_str()], "{json}");

    // A flag overrides its key: another pipeline, which the tenant does not have.
    let (ok, _, stderr) = plugin_in(&dir, ACME, &["deploy", "--pipeline", "nope"]);
    assert!(!ok);
    assert!(
        stderr.contains("deploy acme/nope not found (404)"),
        "{stderr}"
    );
    // No token: the 401 says how to give one.
    let (ok, _, stderr) = plugin_in(&dir, "", &["deploy"]);
    assert!(!ok);
    assert!(
        stderr.contains("unauthorized (401)") && stderr.contains("set WEIR_TOKEN or pass --token"),
        "{stderr}"
    );
    // A key left commented out: the error names the flag and the key.
    std::fs::write(
        dir.join("weir.toml"),
        weir_toml.replace("tenant = ", "# tenant = "),
    )
    .expect("weir.toml");
    let (ok, _, stderr) = plugin_in(&dir, ACME, &["deploy"]);
    assert!(!ok);
    assert!(
        stderr.contains("no tenant: pass --tenant, or set `tenant` in ./weir.toml"),
        "{stderr}"
    );
}
