//! What a tenant reads when its plugin fails, through the admin API and `weir plugin list`,
//! against a real `weir serve`: a panic as its message and source location, rejected
//! deploys (API and watched directory) with who fixes them, quarantine saying how it ends,
//! and rollback walking back through the versions that were live.
//!
//! Expected panic locations are read off `tests/plugins/panicky/src/lib.rs`: the panic in
//! `configure` is at line 13, the one in `aggregate` at line 24, both at column 13 (the
//! `panic!` after 12 spaces of indentation). Cargo names workspace members' files from the
//! workspace root.

mod support;

use std::time::Duration;

use support::serve::*;
use support::{Scratch, pipeline_toml};
use weir::serve::control::{PipelineState, PipelineView, VersionStatus};

/// The aggregate panic of panicky, as the tenant must read it.
const AGGREGATE_PANIC: &str = "trapped in aggregate: panicked at tests/plugins/panicky/src/lib.rs:24:13: panicky: refusing key symbol = \"BAD\"";

/// The configure panic of panicky.
const CONFIGURE_PANIC: &str = "trapped in configure: panicked at tests/plugins/panicky/src/lib.rs:13:13: panicky: told to panic in configure";

fn statuses(v: &PipelineView) -> Vec<(String, VersionStatus)> {
    v.versions
        .iter()
        .map(|v| (v.id.clone(), v.status))
        .collect()
}

#[test]
fn a_panic_reaches_the_error_sink_the_api_and_plugin_list_as_its_message_and_location() {
    let _serial = serial();
    let s = Scratch::new();
    // Two BAD windows among three good ones (1 s windows).
    let lines = [
        ("2024-01-22T00:00:00.100Z", "AAPL"),
        ("2024-01-22T00:00:00.200Z", "BAD"),
        ("2024-01-22T00:00:01.100Z", "BAD"),
        ("2024-01-22T00:00:01.200Z", "MSFT"),
        ("2024-01-22T00:00:02.500Z", "AAPL"),
    ];
    let source = support::tick_file_source(&s, "input.jsonl", &lines);
    s.write(
        "panicky.toml",
        &pipeline_toml("panicky", &source, &support::wasm("panicky"), ""),
    );
    // A pipeline whose params make panicky panic in `configure`; it starts with stats.
    s.write(
        "cfg.toml",
        &pipeline_toml(
            "cfg",
            &source,
            &support::wasm("stats"),
            "params = { field = \"price\", panic_in_configure = \"yes\" }",
        ),
    );
    let mut serve = Serve::start(
        &s,
        &tenant_toml("acme", ACME, &["panicky.toml", "cfg.toml"]),
    );
    let v = serve.wait_state(
        "acme",
        "panicky",
        PipelineState::Finished,
        Duration::from_secs(60),
    );
    assert_eq!(v.counters.plugin_errors, 2, "{v:?}");
    // The error sink: one record per BAD window, the panic as message and location.
    let errs = s.read_jsonl("panicky.errors.jsonl");
    assert_eq!(errs.len(), 2, "{errs:?}");
    for e in &errs {
        let text = e["error"].as_str().unwrap_or_default();
        assert!(text.ends_with(AGGREGATE_PANIC), "{text}");
        assert!(
            !text.contains("backtrace") && !text.contains('\n'),
            "{text}"
        );
    }
    // The API and `weir plugin list`.
    let last = v.last_plugin_error.clone().expect("a last plugin error");
    assert!(last.message.ends_with(AGGREGATE_PANIC), "{last:?}");
    assert!(last.version.starts_with("weir-test-panicky@"), "{last:?}");
    assert!(!last.resolved, "its version is live: {last:?}");
    let (ok, out, err) = serve.cli(ACME, &["list"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!(
            "acme/panicky last plugin error of {} (",
            last.version
        )) && out.contains(AGGREGATE_PANIC),
        "{out}"
    );

    // A panic in configure refuses the deploy with the panic, and says who fixes it.
    let panicky = std::fs::read(support::wasm("panicky")).unwrap();
    let (status, reason) = refused(serve.client(ACME).deploy("acme", "cfg", panicky));
    assert_eq!(status, 422, "{reason}");
    assert_eq!(
        reason,
        format!("plugin of acme/cfg {CONFIGURE_PANIC}; fix the plugin and deploy again")
    );
    serve.assert_healthy();
}

/// Writes `p.toml`: 3 generated symbols (seed `seed`) paced at 1 000 events a second
/// through `stats`, with `plugin_extra` keys in `[plugin]`.
fn paced_stats(s: &Scratch, seed: u64, plugin_extra: &str) {
    let input = Gen {
        count: 1_000_000,
        keys: 3,
        interval_ms: 10,
        seed,
        rate: 1_000,
    };
    s.write(
        "p.toml",
        &pipeline_toml("p", &input.toml(), &support::wasm("stats"), plugin_extra),
    );
}

#[test]
fn rejected_deploys_are_listed_with_their_reason_time_and_file() {
    let _serial = serial();
    let s = Scratch::new();
    paced_stats(&s, 9, "params = { field = \"price\" }");
    let plugins = s.path("plugins");
    std::fs::create_dir_all(plugins.join("acme")).unwrap();
    let mut serve = Serve::start(
        &s,
        &format!(
            "[plugins]\ndir = \"{}\"\n\n{}",
            plugins.display(),
            tenant_toml("acme", ACME, &["p.toml"])
        ),
    );
    let acme = serve.client(ACME);
    let first = live(&serve.view("acme", "p")).to_string();

    // A plugin that reads a field the schema lacks: only the operator can fix that.
    let ticker = std::fs::read(support::wasm("ticker")).unwrap();
    let (status, reason) = refused(acme.deploy("acme", "p", ticker));
    assert_eq!(status, 422, "{reason}");
    assert!(
        reason.contains("needs input field")
            && reason.contains("Only the operator can fix this, in ")
            && reason.contains("p.toml: add `"),
        "{reason}"
    );
    let v = serve.view("acme", "p");
    let r = v.last_rejected.clone().expect("recorded");
    // The operator reads the file's path; the tenant only its name.
    let full = s.path("p.toml").display().to_string();
    assert!(r.reason.contains(&full), "{}", r.reason);
    assert_eq!(
        (
            r.reason.replace(&full, "p.toml").as_str(),
            r.origin.as_str()
        ),
        (reason.as_str(), "api")
    );
    assert_eq!(r.file, None);

    // A text file dropped into the watched directory: one line saying what it is.
    let file = plugins.join("acme").join("p.wasm");
    std::fs::write(&file, "hello, I am not wasm\n").unwrap();
    let r = wait_for("the file to be rejected", Duration::from_secs(30), || {
        serve
            .view("acme", "p")
            .last_rejected
            .filter(|r| r.origin == "file")
    });
    assert!(
        r.reason.ends_with(
            "cannot load: not a WebAssembly component: the first bytes look like text (\"hello, I am not wasm\"), not wasm"
        ),
        "{r:?}"
    );
    let file = file.canonicalize().unwrap();
    assert_eq!(r.file.as_deref(), Some(file.to_str().unwrap()));
    let v = serve.view("acme", "p");
    assert_eq!(live(&v), first, "the live version is untouched");
    // Only the last rejection is listed in the history, after the live version.
    let st = statuses(&v);
    assert_eq!(st.len(), 2, "{st:?}");
    assert_eq!(st[0], (first.clone(), VersionStatus::Live));
    assert_eq!(st[1].1, VersionStatus::Rejected);
    assert!(v.versions[1].deployed_at >= v.versions[0].deployed_at);
    let (ok, out, err) = serve.cli(ACME, &["list"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!(
            "acme/p last deploy rejected ({}, file, file acme/p.wasm): {}\n",
            r.at, r.reason
        )),
        "{out}"
    );
    serve.assert_healthy();
}

#[test]
fn rollback_walks_back_through_the_versions_that_were_live() {
    let _serial = serial();
    let s = Scratch::new();
    paced_stats(
        &s,
        4,
        "limits = { deadline = \"20ms\", quarantine_after = 3 }\nparams = { field = \"price\" }\nallow_output_change = true",
    );
    let mut serve = Serve::start(&s, &tenant_toml("acme", ACME, &["p.toml"]));
    let acme = serve.client(ACME);
    let a = live(&serve.view("acme", "p")).to_string();
    let b = acme
        .deploy_with(
            "acme",
            "p",
            std::fs::read(support::wasm("hotspot")).unwrap(),
            true,
        )
        .expect("B")
        .id;
    let (status, _) = refused(acme.deploy_with("acme", "p", random_bytes(64, 3), true));
    assert_eq!(status, 422);
    let c = acme
        .deploy_with(
            "acme",
            "p",
            std::fs::read(support::wasm("spin")).unwrap(),
            true,
        )
        .expect("C")
        .id;
    let q = serve.wait_state(
        "acme",
        "p",
        PipelineState::Quarantined,
        Duration::from_secs(30),
    );
    let reason = q.reason.clone().unwrap_or_default();
    assert!(
        reason.ends_with("It reads no input until you deploy a fixed version or roll back"),
        "{reason}"
    );
    let st = statuses(&q);
    assert_eq!(st.len(), 4, "{st:?}");
    assert_eq!(st[0], (a.clone(), VersionStatus::Previous));
    assert_eq!(st[1], (b.clone(), VersionStatus::Previous));
    assert_eq!(st[2].1, VersionStatus::Rejected);
    assert_eq!(st[3], (c.clone(), VersionStatus::Quarantined));
    assert!(q.versions[3].live);
    assert_eq!(
        q.versions[3].status_reason.as_deref(),
        Some(reason.as_str())
    );

    // Back to B (live before C), then A (live before B), then nothing.
    assert_eq!(acme.rollback("acme", "p").expect("to B").id, b);
    let v = serve.view("acme", "p");
    assert_eq!(live(&v), b);
    let st = statuses(&v);
    assert_eq!(st[0].1, VersionStatus::Previous);
    assert_eq!(
        st[3],
        (c.clone(), VersionStatus::Quarantined),
        "stays marked"
    );
    assert_eq!(acme.rollback("acme", "p").expect("to A").id, a);
    let v = serve.view("acme", "p");
    let st = statuses(&v);
    assert_eq!(st[0], (a.clone(), VersionStatus::Live));
    assert_eq!(st[1], (b.clone(), VersionStatus::RolledBack));
    assert_eq!(st[3], (c.clone(), VersionStatus::Quarantined));
    let (status, text) = refused(acme.rollback("acme", "p"));
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("nothing to roll back to"), "{text}");
    // `weir plugin list` shows the history with the marks.
    let (ok, out, err) = serve.cli(ACME, &["list"]);
    assert!(ok, "{err}");
    for (status, id) in [("live", &a), ("rolled_back", &b), ("quarantined", &c)] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(status) && l.contains(id.as_str())),
            "{status} {id}:\n{out}"
        );
    }

    // Deploying B again puts it on top: a rollback from it returns to A, not to C.
    let again = acme
        .deploy_with(
            "acme",
            "p",
            std::fs::read(support::wasm("hotspot")).unwrap(),
            true,
        )
        .expect("B again");
    assert_eq!(again.id, b);
    assert_eq!(acme.rollback("acme", "p").expect("to A").id, a);
    serve.assert_healthy();
}

/// Builds `weir-test-skewed` for wasm32-wasip2 with `args` (a debug build, a release test
/// harness) and returns the component cargo names.
fn build_skewed(args: &[&str]) -> std::path::PathBuf {
    let out = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(support::root())
        .args(args)
        .args([
            "--target",
            "wasm32-wasip2",
            "-p",
            "weir-test-skewed",
            "--message-format",
            "json",
        ])
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A test harness's executable; else the library's component.
    let artifacts: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "skewed")
        .collect();
    let executable = artifacts
        .iter()
        .find_map(|m| m["executable"].as_str().map(std::path::PathBuf::from));
    executable
        .or_else(|| {
            artifacts
                .iter()
                .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
                .filter_map(|f| f.as_str().map(std::path::PathBuf::from))
                .find(|f| f.extension().is_some_and(|e| e == "wasm"))
        })
        .expect("a .wasm artifact")
}

#[test]
fn debug_builds_and_test_harnesses_are_refused_and_a_reused_version_string_is_flagged() {
    let _serial = serial();
    let s = Scratch::new();
    paced_stats(&s, 6, "params = { field = \"price\" }");
    let serve = Serve::start(&s, &tenant_toml("acme", ACME, &["p.toml"]));
    let acme = serve.client(ACME);
    let live_before = live(&serve.view("acme", "p")).to_string();

    // A debug build: refused, pointing at the release build.
    let debug = build_skewed(&["build"]);
    let (status, reason) = refused(acme.deploy("acme", "p", std::fs::read(&debug).unwrap()));
    assert_eq!(status, 422, "{reason}");
    assert!(reason.contains("is a debug build ("), "{reason}");
    assert!(
        reason.contains("cargo build --release --target wasm32-wasip2"),
        "{reason}"
    );
    // A release test harness: a command, not a plugin.
    let harness = build_skewed(&["test", "--release", "--no-run"]);
    let (status, reason) = refused(acme.deploy("acme", "p", std::fs::read(&harness).unwrap()));
    assert_eq!(status, 422, "{reason}");
    assert!(reason.contains("is a command, not a plugin"), "{reason}");
    assert!(reason.contains("wasi:cli/run"), "{reason}");
    assert_eq!(live(&serve.view("acme", "p")), live_before);

    // Another build of the live version's name@version (here: the same component with a
    // custom section added): it goes live, flagged.
    let mut other = std::fs::read(support::wasm("stats")).unwrap();
    let name = b"weir-test";
    other.extend_from_slice(&[0x00, (1 + name.len() + 3) as u8, name.len() as u8]);
    other.extend_from_slice(name);
    other.extend_from_slice(b"abc");
    let v = acme
        .deploy("acme", "p", other.clone())
        .expect("another build");
    assert_ne!(v.id, live_before);
    let same = live_before.split_once('+').unwrap().0;
    assert_eq!(v.id.split_once('+').unwrap().0, same);
    let warning = v.status_reason.clone().expect("a warning");
    assert!(
        warning.contains(&format!("another build of {same} is kept ({live_before})")),
        "{warning}"
    );
    // The CLI prints it.
    std::fs::write(s.path("other.wasm"), &other).unwrap();
    let (ok, _, err) = serve.deploy_cli(ACME, "acme", "p", &s.path("other.wasm"));
    assert!(ok, "{err}");
}
