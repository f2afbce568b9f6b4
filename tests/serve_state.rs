//! `weir serve` with a state directory (`[state] dir`), against the real binary killed with
//! SIGKILL (no clean stop) and started again on the same host file:
//!
//! - Deployed versions, the live one, the history and a pause survive; the rows after the
//!   restart come from the deployed version; a rollback (to a version compiled back from
//!   the state directory) survives the next restart too.
//! - A quarantined pipeline comes back quarantined: it reads nothing and its plugin is not
//!   called until a new version is deployed.
//! - A damaged state file or kept component refuses the start, naming the file and the fix.
//! - A file written to the watched plugin directory while the host was down is deployed at
//!   start; one whose content is a kept version is not deployed again.
//! - A stored live version the pipeline refuses now gives way to the configured plugin,
//!   with a warning, and the history stays; a changed `plugin.path` goes live.
//! - Without `[state]`, the start says that deploys will not survive, and they do not.
//!
//! Expected versions are the ones the test deployed (their ids as the deploys answered),
//! never copied from output.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value as Json;
use support::serve::*;
use support::{Scratch, pipeline_toml};
use weir::serve::control::{PipelineState, PipelineView, VersionStatus, VersionView};

/// The host file's `[state]` table: `state` beside the host file.
const STATE: &str = "[state]\ndir = \"state\"\n\n";

/// A paced stream that outlasts every test: 2 keys, 10 ms of event time apart, 1000 events
/// a second (so 20 rows of 1 s windows a second of wall time).
const STREAM: Gen = Gen {
    count: 10_000_000,
    keys: 2,
    interval_ms: 10,
    seed: 7,
    rate: 1000,
};

/// Writes `<name>.toml`: `STREAM` through `plugin` with `params = { field = "price" }`.
fn pipeline(s: &Scratch, name: &str, plugin: &str) {
    s.write(
        &format!("{name}.toml"),
        &pipeline_toml(
            name,
            &STREAM.toml(),
            &support::wasm(plugin),
            "params = { field = \"price\" }\nallow_output_change = true",
        ),
    );
}

/// Kills the host with SIGKILL (`Child::kill` on Unix): no clean stop, nothing flushed.
fn kill9(serve: &mut Serve) {
    serve.child.kill().expect("SIGKILL");
    serve.child.wait().expect("reaped");
}

/// Starts `weir serve` on `<scratch>/host.toml` expecting it to refuse; its stderr.
fn refused_start(s: &Scratch) -> String {
    let out = support::weir()
        .arg("serve")
        .arg(s.path("host.toml"))
        .stdin(Stdio::null())
        .output()
        .expect("weir serve runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "the start was not refused:\n{stderr}"
    );
    stderr
}

/// How many complete lines `name` holds now.
fn lines(s: &Scratch, name: &str) -> usize {
    std::fs::read(s.path(name))
        .unwrap_or_default()
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// The rows of `name` from line `from` on. A kill may have cut the line at `from` short
/// (the next run then appends to it) and the last one may be in writing: those two may be
/// left out, no other.
fn rows_from(s: &Scratch, name: &str, from: usize) -> Vec<Json> {
    let text = std::fs::read_to_string(s.path(name)).unwrap_or_default();
    let all: Vec<&str> = text.lines().skip(from).collect();
    let mut rows = Vec::new();
    for (i, line) in all.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(row) => rows.push(row),
            Err(e) => assert!(
                i == 0 || i + 1 == all.len(),
                "line {} of {name} is not JSON ({e}): {line}",
                from + i + 1
            ),
        }
    }
    rows
}

/// Waits for at least `n` rows from line `from` on.
fn wait_rows(s: &Scratch, name: &str, from: usize, n: usize) -> Vec<Json> {
    wait_for(
        &format!("{n} rows in {name} past line {from}"),
        Duration::from_secs(60),
        || {
            let rows = rows_from(s, name, from);
            (rows.len() >= n).then_some(rows)
        },
    )
}

/// The ids of the kept versions, oldest first (without the last rejected deploy).
fn kept(v: &PipelineView) -> Vec<&str> {
    v.versions
        .iter()
        .filter(|v| v.status != VersionStatus::Rejected)
        .map(|v| v.id.as_str())
        .collect()
}

/// The status of version `id`.
fn status(v: &PipelineView, id: &str) -> VersionStatus {
    v.versions
        .iter()
        .find(|x| x.id == id)
        .unwrap_or_else(|| panic!("no version {id} in {v:?}"))
        .status
}

/// The pipeline `acme/ticks` as the operator sees it.
/// A host with the state directory and one pipeline, `ticks`, configured on plugin
/// `configured`, onto which plugin `deployed` is deployed through the API: the host, the
/// configured version's id and the deployed one's.
fn deployed_over(s: &Scratch, configured: &str, deployed: &str) -> (Serve, String, VersionView) {
    pipeline(s, "ticks", configured);
    let serve = Serve::start(
        s,
        &format!("{STATE}{}", tenant_toml("acme", ACME, &["ticks.toml"])),
    );
    let v1 = live(&ticks(&serve)).to_string();
    let v2 = serve
        .client(ACME)
        .deploy_with(
            "acme",
            "ticks",
            std::fs::read(support::wasm(deployed)).unwrap(),
            true,
        )
        .unwrap_or_else(|e| panic!("deploy {deployed}: {e:?}"));
    (serve, v1, v2)
}

fn ticks(serve: &Serve) -> PipelineView {
    serve.view("acme", "ticks")
}

#[test]
fn deploys_a_pause_and_a_rollback_survive_a_sigkill() {
    let _serial = serial();
    let s = Scratch::new();
    pipeline(&s, "ticks", "stats");
    let mut serve = Serve::start(
        &s,
        &format!("{STATE}{}", tenant_toml("acme", ACME, &["ticks.toml"])),
    );
    let acme = serve.client(ACME);
    let v1 = live(&ticks(&serve)).to_string();
    assert!(v1.starts_with("weir-plugin-stats@"), "{v1}");
    wait_rows(&s, "ticks.jsonl", 0, 1);
    // Two deploys through the API: hotspot (other columns: no `sum`), then the incremental
    // stats; then a pause.
    let read = |name: &str| std::fs::read(support::wasm(name)).expect("plugin built");
    let v2 = acme
        .deploy_with("acme", "ticks", read("hotspot"), true)
        .expect("deploy hotspot")
        .id;
    assert!(v2.starts_with("weir-plugin-hotspot@"), "{v2}");
    let v3 = acme
        .deploy_with("acme", "ticks", read("stats_incremental"), true)
        .expect("deploy stats-incremental")
        .id;
    assert!(v3.starts_with("weir-plugin-stats-incremental@"), "{v3}");
    // A refused deploy, kept as the last rejected one.
    let (code, reason) =
        refused(acme.deploy_with("acme", "ticks", random_bytes(4096, 0x5eed), true));
    assert_eq!(code, 422, "{reason}");
    let rejected = ticks(&serve).last_rejected.expect("a last rejected deploy");
    acme.pause("acme", "ticks").expect("pause");
    assert_eq!(ticks(&serve).state, PipelineState::Paused);

    kill9(&mut serve);
    let before = lines(&s, "ticks.jsonl");
    let serve = serve.restart(&s, 2);
    let acme = serve.client(ACME);
    let v = ticks(&serve);
    assert_eq!(live(&v), v3, "the last deploy is live again: {v:?}");
    assert_eq!(kept(&v), [&*v1, &*v2, &*v3], "the history is back");
    let origins: Vec<(&str, &str)> = v
        .versions
        .iter()
        .map(|v| (v.origin.as_str(), v.status.name()))
        .collect();
    assert_eq!(
        origins,
        [
            ("config", "previous"),
            ("api", "previous"),
            ("api", "live"),
            ("api", "rejected")
        ]
    );
    assert_eq!(status(&v, &v2), VersionStatus::Previous);
    assert_eq!(v.last_rejected.as_ref(), Some(&rejected));
    assert_eq!(v.state, PipelineState::Paused, "it starts paused: {v:?}");
    std::thread::sleep(Duration::from_millis(500));
    let v = ticks(&serve);
    assert_eq!(v.counters.events_read, 0, "a paused pipeline reads nothing");
    assert_eq!(lines(&s, "ticks.jsonl"), before, "and writes nothing");

    // Resumed, it runs the deployed version.
    acme.resume("acme", "ticks").expect("resume");
    let rows = wait_rows(&s, "ticks.jsonl", before, 10);
    assert!(
        rows.iter().all(|r| r["plugin_version"] == v3.as_str()),
        "rows after the restart by {v3}: {rows:?}"
    );

    // A rollback returns to v2, whose code is compiled back from the state directory.
    let back = acme.rollback("acme", "ticks").expect("rollback").id;
    assert_eq!(back, v2);
    let from = lines(&s, "ticks.jsonl");
    let rows = wait_for(
        "rows by the rolled-back version",
        Duration::from_secs(60),
        || {
            let rows = rows_from(&s, "ticks.jsonl", from);
            rows.iter()
                .any(|r| r["plugin_version"] == v2.as_str())
                .then_some(rows)
        },
    );
    let by_v2: Vec<&Json> = rows
        .iter()
        .filter(|r| r["plugin_version"] == v2.as_str())
        .collect();
    assert!(
        by_v2
            .iter()
            .all(|r| r.get("sum").is_none() && r["count"].is_i64()),
        "hotspot rows: {by_v2:?}"
    );

    // The rollback survives the next kill: v2 live, v3 rolled back, running.
    let mut serve = serve;
    kill9(&mut serve);
    let before = lines(&s, "ticks.jsonl");
    let serve = serve.restart(&s, 3);
    let v = ticks(&serve);
    assert_eq!(live(&v), v2, "{v:?}");
    assert_eq!(kept(&v), [&*v1, &*v2, &*v3]);
    assert_eq!(status(&v, &v3), VersionStatus::RolledBack);
    assert_eq!(v.state, PipelineState::Running);
    let rows = wait_rows(&s, "ticks.jsonl", before, 10);
    assert!(
        rows.iter()
            .all(|r| r["plugin_version"] == v2.as_str() && r.get("sum").is_none()),
        "rows after the second restart by {v2}: {rows:?}"
    );
    // And the way back goes on from there: to v1, the configured version.
    let back = serve
        .client(ACME)
        .rollback("acme", "ticks")
        .expect("rollback");
    assert_eq!(back.id, v1);
    // The pipeline's store holds the three kept components, not the rejected one.
    let store = s.path("state/acme/ticks");
    let mut components: Vec<String> = std::fs::read_dir(store.join("components"))
        .expect("components")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    components.sort();
    let mut expected: Vec<String> = ticks(&serve)
        .versions
        .iter()
        .filter(|v| v.status != VersionStatus::Rejected)
        .map(|v| format!("{}.wasm", v.sha256))
        .collect();
    expected.sort();
    assert_eq!(components, expected);
}

#[test]
fn a_quarantined_pipeline_comes_back_quarantined() {
    let _serial = serial();
    let s = Scratch::new();
    let input = Gen {
        count: 20_000,
        keys: 10,
        interval_ms: 10,
        seed: 5,
        rate: 0,
    };
    s.write(
        "stuck.toml",
        &pipeline_toml(
            "stuck",
            &input.toml(),
            &support::wasm("spin"),
            "limits = { deadline = \"20ms\", quarantine_after = 3 }\nparams = { field = \"price\" }\nallow_output_change = true",
        ),
    );
    let mut serve = Serve::start(
        &s,
        &format!("{STATE}{}", tenant_toml("acme", ACME, &["stuck.toml"])),
    );
    let q = serve.wait_state(
        "acme",
        "stuck",
        PipelineState::Quarantined,
        Duration::from_secs(30),
    );
    let spin = live(&q).to_string();
    let reason = q.reason.clone().expect("a reason");
    assert!(reason.contains("3 plugin failures in a row"), "{reason}");

    kill9(&mut serve);
    let serve = serve.restart(&s, 2);
    let acme = serve.client(ACME);
    let v = serve.view("acme", "stuck");
    assert_eq!(v.state, PipelineState::Quarantined, "{v:?}");
    assert_eq!(live(&v), spin);
    assert_eq!(status(&v, &spin), VersionStatus::Quarantined);
    assert!(
        v.reason
            .as_deref()
            .is_some_and(|r| r.contains("3 plugin failures in a row")),
        "{v:?}"
    );
    // A resume is no fix: it stays quarantined, reads nothing, calls nothing.
    acme.resume("acme", "stuck").expect("resume");
    std::thread::sleep(Duration::from_millis(700));
    let still = serve.view("acme", "stuck");
    assert_eq!(still.state, PipelineState::Quarantined);
    assert_eq!(still.counters.events_read, 0, "{still:?}");
    assert_eq!(still.counters.plugin_errors, 0, "{still:?}");

    // A fixed version runs at once, over the whole input.
    let fixed = acme
        .deploy_with(
            "acme",
            "stuck",
            std::fs::read(support::wasm("stats")).unwrap(),
            true,
        )
        .expect("deploy stats")
        .id;
    let done = serve.wait_state(
        "acme",
        "stuck",
        PipelineState::Finished,
        Duration::from_secs(60),
    );
    assert_eq!(done.counters.events_read, input.count);
    assert_eq!(live(&done), fixed);
    assert_eq!(done.counters.plugin_errors, 0);
}

#[test]
fn a_damaged_store_refuses_the_start_naming_the_file() {
    let _serial = serial();
    let s = Scratch::new();
    let (mut serve, v1, v2) = deployed_over(&s, "stats", "hotspot");
    kill9(&mut serve);
    let rows = lines(&s, "ticks.jsonl");

    // One byte changed in the state file.
    let file = s.path("state/acme/ticks/state");
    let good = std::fs::read(&file).expect("the state file");
    let mut bad = good.clone();
    let at = bad.len() - 10;
    bad[at] ^= 0x20;
    std::fs::write(&file, &bad).unwrap();
    let err = refused_start(&s);
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(
        err.contains("damaged") && err.contains("Delete it"),
        "{err}"
    );
    assert_eq!(lines(&s, "ticks.jsonl"), rows, "no pipeline ran");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        bad,
        "the file is left as it is"
    );

    // A kept component changed on disk.
    std::fs::write(&file, &good).unwrap();
    let component = s.path(&format!("state/acme/ticks/components/{}.wasm", v2.sha256));
    let mut wasm = std::fs::read(&component).expect("the deployed component");
    wasm.truncate(wasm.len() / 2);
    std::fs::write(&component, &wasm).unwrap();
    let err = refused_start(&s);
    assert!(err.contains(&component.display().to_string()), "{err}");
    assert!(err.contains(&file.display().to_string()), "{err}");

    // Deleted, as the error says: the pipeline starts from its configured plugin.
    std::fs::remove_file(&file).unwrap();
    let serve = serve.restart(&s, 2);
    let v = ticks(&serve);
    assert_eq!(live(&v), v1);
    assert_eq!(kept(&v), [&*v1]);
}

#[test]
fn a_file_dropped_while_the_host_was_down_is_deployed_at_start() {
    let _serial = serial();
    let s = Scratch::new();
    pipeline(&s, "ticks", "stats");
    let plugins = s.path("plugins");
    std::fs::create_dir_all(plugins.join("acme")).unwrap();
    let mut serve = Serve::start(
        &s,
        &format!(
            "{STATE}[plugins]\ndir = \"plugins\"\n\n{}",
            tenant_toml("acme", ACME, &["ticks.toml"])
        ),
    );
    let v1 = live(&ticks(&serve)).to_string();
    kill9(&mut serve);

    std::fs::copy(support::wasm("hotspot"), plugins.join("acme/ticks.wasm")).unwrap();
    let before = lines(&s, "ticks.jsonl");
    let serve = serve.restart(&s, 2);
    let v = wait_for(
        "the file's version to go live",
        Duration::from_secs(60),
        || {
            let v = ticks(&serve);
            (live(&v) != v1).then_some(v)
        },
    );
    let v2 = live(&v).to_string();
    assert!(v2.starts_with("weir-plugin-hotspot@"), "{v2}");
    let file_version = v.versions.iter().find(|x| x.id == v2).unwrap();
    assert_eq!(file_version.origin, "file");
    assert_eq!(kept(&v), [&*v1, &*v2]);
    // The configured version runs until the file's is live, then the file's.
    wait_for(
        "rows by the file's version",
        Duration::from_secs(60),
        || {
            rows_from(&s, "ticks.jsonl", before)
                .iter()
                .any(|r| r["plugin_version"] == v2.as_str())
                .then_some(())
        },
    );

    // Rolled back, then killed: the file is still there, but its content is a kept
    // version, so the next start does not deploy it again.
    assert_eq!(
        serve
            .client(ACME)
            .rollback("acme", "ticks")
            .expect("rollback")
            .id,
        v1
    );
    let mut serve = serve;
    kill9(&mut serve);
    let serve = serve.restart(&s, 3);
    wait_for(
        "the present file to be considered",
        Duration::from_secs(60),
        || {
            serve
                .stderr()
                .contains("a version the pipeline keeps; not deployed again")
                .then_some(())
        },
    );
    let v = ticks(&serve);
    assert_eq!(live(&v), v1, "{v:?}");
    assert_eq!(status(&v, &v2), VersionStatus::RolledBack);
}

#[test]
fn a_stored_version_refused_now_gives_way_to_the_configured_plugin() {
    let _serial = serial();
    let s = Scratch::new();
    // Configured: hotspot, which reads no field; deployed: stats, which reads `price`.
    let (mut serve, v1, v2) = deployed_over(&s, "hotspot", "stats");
    let v2 = v2.id;
    kill9(&mut serve);

    // The operator makes `price` a string: stats no longer fits, hotspot still does.
    let text = std::fs::read_to_string(s.path("ticks.toml")).unwrap();
    let changed = text.replace("price = \"f64\"", "price = \"string\"");
    assert_ne!(changed, text);
    s.write("ticks.toml", &changed);
    let serve = serve.restart(&s, 2);
    let v = ticks(&serve);
    assert_eq!(live(&v), v1, "the configured plugin runs: {v:?}");
    assert_eq!(kept(&v), [&*v2, &*v1], "the stored history stays");
    let err = serve.stderr();
    let warning = err
        .lines()
        .find(|l| l.contains("the stored live version is refused now"))
        .unwrap_or_else(|| panic!("no warning:\n{err}"));
    assert!(
        warning.contains("acme") && warning.contains("ticks") && warning.contains("price"),
        "{warning}"
    );

    // The operator puts the schema back and points plugin.path at another plugin: that
    // one goes live, as a deploy would, and the history stays.
    let mut serve = serve;
    kill9(&mut serve);
    s.write(
        "ticks.toml",
        &text.replace(
            &support::wasm("hotspot").display().to_string(),
            &support::wasm("stats_incremental").display().to_string(),
        ),
    );
    let serve = serve.restart(&s, 3);
    let v = ticks(&serve);
    let v3 = live(&v).to_string();
    assert!(v3.starts_with("weir-plugin-stats-incremental@"), "{v3}");
    assert_eq!(kept(&v), [&*v2, &*v1, &*v3]);
    let origin = |id: &str| {
        v.versions
            .iter()
            .find(|x| x.id == id)
            .unwrap()
            .origin
            .clone()
    };
    assert_eq!(origin(&v3), "config");
    assert_eq!(
        serve
            .client(ACME)
            .rollback("acme", "ticks")
            .expect("rollback")
            .id,
        v1
    );
}

#[test]
fn without_a_state_directory_the_start_says_deploys_do_not_survive() {
    let _serial = serial();
    let s = Scratch::new();
    pipeline(&s, "ticks", "stats");
    let mut serve = Serve::start(&s, &tenant_toml("acme", ACME, &["ticks.toml"]));
    let err = serve.stderr();
    assert!(
        err.contains("no [state] in the host config") && err.contains("dir = \"state\""),
        "{err}"
    );
    assert_eq!(
        err.matches("no [state] in the host config").count(),
        1,
        "said once"
    );
    let v1 = live(&ticks(&serve)).to_string();
    serve
        .client(ACME)
        .deploy_with(
            "acme",
            "ticks",
            std::fs::read(support::wasm("hotspot")).unwrap(),
            true,
        )
        .expect("deploy hotspot");
    kill9(&mut serve);
    let serve = serve.restart(&s, 2);
    let v = ticks(&serve);
    assert_eq!(live(&v), v1);
    assert_eq!(kept(&v), [&*v1]);
    assert!(!Path::new(&s.path("state")).exists());
}
