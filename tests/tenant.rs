//! What a tenant and an operator see of a host: its log (no colour codes in a file, no
//! start-up line twice) and its refusal to start without touching any sink.

mod support;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use support::Scratch;
use support::serve::{Serve, serial};

/// Sends SIGTERM to a child with the system's `kill` and waits (at most 30 s) for it.
fn terminate(child: &mut Child) {
    let ok = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -TERM failed");
    let until = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("try_wait").is_none() {
        assert!(
            Instant::now() < until,
            "the process did not stop within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Generated ticks of two symbols, 1 000 000 of them 100 ms apart in event time, paced at
/// `rate` a second (0: as fast as possible), as a `[source]` table.
fn generated(count: u64, rate: u64) -> String {
    format!(
        "[source]\nkind = \"generator\"\nworkload = \"stocks\"\ncount = {count}\nkeys = 2\ninterval = \"100ms\"\nrate = {rate}\n"
    )
}

/// A pipeline of generated ticks through the plugin `plugin` (params `field = "price"`)
/// into `sink` (the keys of its `[sink]` table).
fn pipeline(s: &Scratch, name: &str, plugin: &std::path::Path, sink: &str) -> std::path::PathBuf {
    s.write(
        &format!("{name}.toml"),
        &support::pipeline_toml_to(
            name,
            &generated(200, 0),
            plugin,
            "params = { field = \"price\" }",
            sink,
        ),
    )
}

#[test]
fn serve_logs_to_a_file_carry_no_colour_codes_and_no_line_twice() {
    let _serial = serial();
    let s = Scratch::new();
    let stats = support::wasm("stats");
    pipeline(
        &s,
        "ticks",
        &stats,
        "kind = \"file\"\npath = \"ticks.jsonl\"",
    );
    std::fs::create_dir(s.path("plugins.d")).unwrap();
    let mut serve = Serve::start(
        &s,
        "[plugins]\ndir = \"plugins.d\"\n\n[[tenant]]\nname = \"acme\"\ntoken = \"acme-token-7c2f91d04e63\"\npipelines = [\"ticks.toml\"]\n",
    );
    terminate(&mut serve.child);
    let log = serve.stderr();
    assert!(!log.contains('\u{1b}'), "colour codes in a file:\n{log}");
    // Each line without its timestamp (the first word): none may appear twice.
    let messages: Vec<&str> = log
        .lines()
        .map(|l| l.split_once(' ').map_or(l, |(_, rest)| rest.trim_start()))
        .collect();
    for (i, m) in messages.iter().enumerate() {
        assert!(!messages[..i].contains(m), "logged twice: {m}\nlog:\n{log}");
    }
    // The default level of `weir serve` is info: what it started is in the log, once.
    for wanted in [
        "pipeline started",
        "admin API listening",
        "watching plugin directory",
    ] {
        let n = log.lines().filter(|l| l.contains(wanted)).count();
        assert_eq!(n, 1, "`{wanted}` {n} times:\n{log}");
    }
    // "admin API listening" names the address once, not a second line with the URL.
    assert_eq!(
        log.matches(&format!("127.0.0.1:{}", serve.port)).count(),
        1,
        "{log}"
    );
}

/// Runs `weir serve` on `host` (a config that must fail at start) and returns its stderr.
fn failing_start(s: &Scratch, host: &str) -> String {
    let path = s.write("host.toml", host);
    let out = support::weir()
        .arg("serve")
        .arg(&path)
        .output()
        .expect("weir serve runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "weir serve started:\n{stderr}");
    stderr
}

#[test]
fn a_host_that_fails_at_start_truncates_no_sink() {
    let _serial = serial();
    let s = Scratch::new();
    let stats = support::wasm("stats");
    let truncate = "kind = \"file\"\npath = \"kept.jsonl\"\nmode = \"truncate\"";
    pipeline(&s, "first", &stats, truncate);
    pipeline(
        &s,
        "second",
        &s.path("missing.wasm"),
        "kind = \"file\"\npath = \"second.jsonl\"\nmode = \"truncate\"",
    );
    let before = "{\"rows\":\"of the run before\"}\n";
    s.write("kept.jsonl", before);
    s.write("second.jsonl", before);
    let tenant = |pipelines: &str| {
        format!(
            "[[tenant]]\nname = \"acme\"\ntoken = \"acme-token-7c2f91d04e63\"\npipelines = [{pipelines}]\n"
        )
    };
    let admin = |port: u16| {
        format!(
            "[admin]\nlisten = \"127.0.0.1:{port}\"\noperator_token = \"operator-token-5b1e0c7d9a\"\n"
        )
    };
    let port = support::serve::free_port();

    // The watched plugin directory does not exist.
    let err = failing_start(
        &s,
        &format!(
            "{}[plugins]\ndir = \"absent.d\"\n{}",
            admin(port),
            tenant("\"first.toml\"")
        ),
    );
    assert!(err.contains("plugin directory"), "{err}");
    assert!(err.contains("plugins.dir"), "{err}");
    assert_eq!(
        std::fs::read_to_string(s.path("kept.jsonl")).unwrap(),
        before
    );

    // The second pipeline's plugin is missing: the first pipeline must not have started.
    let err = failing_start(
        &s,
        &format!(
            "{}{}",
            admin(port),
            tenant("\"first.toml\", \"second.toml\"")
        ),
    );
    assert!(err.contains("missing.wasm"), "{err}");
    assert_eq!(
        std::fs::read_to_string(s.path("kept.jsonl")).unwrap(),
        before
    );
    assert_eq!(
        std::fs::read_to_string(s.path("second.jsonl")).unwrap(),
        before
    );

    // The admin address is taken.
    let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let err = failing_start(
        &s,
        &format!("{}{}", admin(taken_port), tenant("\"first.toml\"")),
    );
    assert!(err.contains("binding the admin API"), "{err}");
    assert_eq!(
        std::fs::read_to_string(s.path("kept.jsonl")).unwrap(),
        before
    );
}

/// A paced generator pipeline of ticks through `stats` into the file `<name>.<format>`
/// (`csv` or `jsonl`), the operator allowing output changes or not.
fn paced_pipeline(s: &Scratch, name: &str, format: &str, allow: bool) {
    s.write(
        &format!("{name}.toml"),
        &support::pipeline_toml_to(
            name,
            &generated(1_000_000, 200),
            &support::wasm("stats"),
            &format!("params = {{ field = \"price\" }}\nallow_output_change = {allow}"),
            &format!("kind = \"file\"\npath = \"{name}.{format}\"\nformat = \"{format}\""),
        ),
    );
}

fn csv_pipeline(s: &Scratch, name: &str, allow: bool) {
    paced_pipeline(s, name, "csv", allow);
}

#[test]
fn a_deploy_that_removes_columns_of_a_json_sink_needs_the_tenant_and_the_operator() {
    use support::serve::{ACME, wait_for};
    let _serial = serial();
    let s = Scratch::new();
    paced_pipeline(&s, "closed", "jsonl", false);
    paced_pipeline(&s, "open", "jsonl", true);
    let serve = Serve::start(
        &s,
        &format!(
            "[[tenant]]\nname = \"acme\"\ntoken = \"{ACME}\"\npipelines = [\"closed.toml\", \"open.toml\"]\n"
        ),
    );
    let live = |p: &str| support::serve::live(&serve.view("acme", p)).to_string();
    let stats = live("open");
    // panicky writes one column, `n`, instead of stats' six: readers of the rows lose them.
    let panicky = support::wasm("panicky");
    let panicky = panicky.to_str().unwrap();
    let deploy = |p: &str, confirm: bool| {
        let mut args = vec!["deploy", "--tenant", "acme", "--pipeline", p, panicky];
        if confirm {
            args.push("--allow-output-change");
        }
        serve.cli(ACME, &args)
    };
    // Not confirmed by the tenant: refused with the difference and how to confirm.
    let (ok, _, stderr) = deploy("open", false);
    assert!(!ok, "the deploy was taken:\n{stderr}");
    assert!(
        stderr.contains("removed: count, sum, min, max, avg, stddev; added: n"),
        "{stderr}"
    );
    assert!(stderr.contains("--allow-output-change"), "{stderr}");
    assert_eq!(live("open"), stats);
    // Confirmed, but the operator does not allow it: refused, naming the operator's file.
    let (ok, _, stderr) = deploy("closed", true);
    assert!(!ok, "the deploy was taken:\n{stderr}");
    assert!(
        stderr.contains("the operator must allow it too"),
        "{stderr}"
    );
    assert!(stderr.contains("closed.toml"), "{stderr}");
    assert_eq!(live("closed"), stats);
    // Both: taken, and its rows name their own columns.
    let (ok, out, stderr) = deploy("open", true);
    assert!(ok, "{stderr}");
    assert!(out.contains("weir-test-panicky@"), "{out}");
    wait_for("a row of the new version", Duration::from_secs(60), || {
        let text = std::fs::read_to_string(s.path("open.jsonl")).ok()?;
        text.lines()
            .any(|l| l.contains("\"n\":") && l.contains("weir-test-panicky@"))
            .then_some(())
    });
    // A rollback returns to columns the readers knew: no confirmation.
    assert_eq!(
        serve
            .client(ACME)
            .rollback("acme", "open")
            .expect("rollback")
            .id,
        stats
    );
}

#[test]
fn a_deploy_that_changes_the_columns_of_a_csv_sink_is_refused_unless_allowed() {
    use support::serve::{ACME, wait_for};
    let _serial = serial();
    let s = Scratch::new();
    csv_pipeline(&s, "fixed", false);
    csv_pipeline(&s, "open", true);
    let serve = Serve::start(
        &s,
        &format!(
            "[[tenant]]\nname = \"acme\"\ntoken = \"{ACME}\"\npipelines = [\"fixed.toml\", \"open.toml\"]\n"
        ),
    );
    let stats_header = "symbol,window_start,window_end,plugin_version,count,sum,min,max,avg,stddev";
    let header = |name: &str| {
        std::fs::read_to_string(s.path(name))
            .ok()
            .and_then(|t| t.lines().next().map(str::to_string))
    };
    wait_for("rows in fixed.csv", Duration::from_secs(60), || {
        (std::fs::read_to_string(s.path("fixed.csv"))
            .ok()?
            .lines()
            .count()
            > 2)
        .then_some(())
    });
    assert_eq!(header("fixed.csv").as_deref(), Some(stats_header));
    let live = serve
        .view("acme", "fixed")
        .versions
        .into_iter()
        .find(|v| v.live)
        .unwrap()
        .id;

    // panicky writes one column, `n`, instead of stats' six.
    let panicky = support::wasm("panicky");
    let (ok, _, stderr) = serve.deploy_cli(ACME, "acme", "fixed", &panicky);
    assert!(!ok, "the deploy was taken:\n{stderr}");
    assert!(
        stderr.contains("removed: count, sum, min, max, avg, stddev; added: n"),
        "{stderr}"
    );
    assert!(stderr.contains("allow_output_change = true"), "{stderr}");
    assert!(
        stderr.contains("fixed.toml"),
        "names the operator's file:\n{stderr}"
    );
    let view = serve.view("acme", "fixed");
    assert_eq!(view.versions.iter().find(|v| v.live).unwrap().id, live);
    assert!(
        view.last_rejected
            .as_ref()
            .is_some_and(|r| r.reason.contains("added: n")),
        "{view:?}"
    );
    assert_eq!(header("fixed.csv").as_deref(), Some(stats_header));

    // Allowed: the file is set aside and a new one starts with the new header.
    wait_for("rows in open.csv", Duration::from_secs(60), || {
        (std::fs::read_to_string(s.path("open.csv"))
            .ok()?
            .lines()
            .count()
            > 2)
        .then_some(())
    });
    // The operator allows it; the tenant confirms it (unconfirmed, it is refused).
    let (ok, _, stderr) = serve.deploy_cli(ACME, "acme", "open", &panicky);
    assert!(!ok && stderr.contains("--allow-output-change"), "{stderr}");
    let (ok, _, stderr) = serve.cli(
        ACME,
        &[
            "deploy",
            "--tenant",
            "acme",
            "--pipeline",
            "open",
            panicky.to_str().unwrap(),
            "--allow-output-change",
        ],
    );
    assert!(ok, "{stderr}");
    wait_for("a row in the new open.csv", Duration::from_secs(60), || {
        let text = std::fs::read_to_string(s.path("open.csv")).ok()?;
        (text.lines().count() >= 2).then_some(())
    });
    assert_eq!(
        header("open.csv").as_deref(),
        Some("symbol,window_start,window_end,plugin_version,n")
    );
    let aside: Vec<String> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("open.") && n.ends_with("Z.csv"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(header(&aside[0]).as_deref(), Some(stats_header));
}

#[test]
fn json_logs_are_one_object_a_line() {
    let s = Scratch::new();
    let path = pipeline(
        &s,
        "ticks",
        &support::wasm("stats"),
        "kind = \"file\"\npath = \"ticks.jsonl\"",
    );
    let out = support::weir()
        .args(["--log-format", "json", "run", "--no-progress"])
        .arg(&path)
        .env("RUST_LOG", "info")
        .output()
        .expect("weir runs");
    let (ok, _, stderr) = support::outcome(out);
    assert!(ok, "{stderr}");
    // The summary table follows the log lines; every line before it is a JSON object.
    let logs: Vec<serde_json::Value> = stderr
        .lines()
        .take_while(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let running = logs
        .iter()
        .find(|l| l["fields"]["message"] == "running")
        .unwrap_or_else(|| panic!("no `running` line:\n{stderr}"));
    assert_eq!(running["level"], "INFO");
    assert_eq!(running["fields"]["pipeline"], "ticks");
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
}
