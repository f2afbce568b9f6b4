//! `weir serve` end to end: the real binary, real host and pipeline files in a scratch dir,
//! the admin API over loopback HTTP (the blocking `Client` and the `weir plugin` CLI).
//!
//! - A tenant whose plugin spins to its deadline on every call does not disturb another
//!   tenant: the other's results are exact and its wall time stays near a solo `weir run`.
//! - Every adversarial plugin (endless loop, memory hog, panic, huge output) fails with the
//!   right error kind in its own error sink, the host stays up, a neighbour is exact; a
//!   pipeline quarantines after N failures in a row, stops reading, and a good deploy resumes it.
//! - Hot swap under a paced stream (API deploy, rejected random bytes, rollback by CLI,
//!   deploy by file): every window once, exact counts, each row with the version live when
//!   it fired, versions switching only at the swaps.
//! - The authorization matrix against the real host.
//! - A pipeline that failed (its sink) or finished refuses deploy, pause and resume with
//!   409 and why; a tenant is never shown a host path (in reasons, refusals, the rejected
//!   file), while the operator sees them all.
//!
//! Expected results are worked out here from the generated events (the generator with the
//! same seed, bucketed by key and epoch-aligned half-open window), never copied from output.
//! The tests run one at a time (they share 2 cores and measure time), and every `weir serve`
//! is killed when its guard drops, on success or panic.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use support::serve::*;
use support::{Scratch, pipeline_toml};
use weir::serve::control::{PipelineState, VersionStatus, VersionView};

// ---------------------------------------------------------------------------------------
// 1. Isolation from a neighbour that spins to its deadline
// ---------------------------------------------------------------------------------------

#[test]
fn a_neighbour_spinning_to_its_deadline_does_not_disturb_another_tenant() {
    let _serial = serial();
    let s = Scratch::new();
    let quiet = Gen {
        count: 50_000,
        keys: 10,
        interval_ms: 10,
        seed: 11,
        rate: 0,
    };
    let stats = support::wasm("stats");
    let params = "params = { field = \"price\" }";
    s.write(
        "quiet.toml",
        &pipeline_toml("quiet", &quiet.toml(), &stats, params),
    );
    s.write(
        "alone.toml",
        &pipeline_toml("alone", &quiet.toml(), &stats, params),
    );
    // Spins 20 ms on every call; 41 windows x 10 keys per batch keep it busy for minutes,
    // and it never quarantines.
    let noisy = Gen {
        count: 1_000_000,
        keys: 10,
        interval_ms: 10,
        seed: 3,
        rate: 0,
    };
    s.write(
        "noisy.toml",
        &pipeline_toml(
            "noisy",
            &noisy.toml(),
            &support::wasm("spin"),
            "limits = { deadline = \"20ms\", quarantine_after = 1000000 }",
        ),
    );
    let expected = bucket(&quiet.events(), 1000);
    assert_eq!(expected.len(), 5000, "500 s of events x 10 keys");

    // Alone, through `weir run`.
    let (ok, _, stderr) = support::run_pipeline(&s.path("alone.toml"));
    assert!(ok, "{stderr}");
    let alone = support::summary(&stderr)["wall_seconds"]
        .as_f64()
        .expect("wall_seconds");
    assert_stats_exact(&s.read_jsonl("alone.jsonl"), &expected, "alone");

    // Beside the spinner, which is started first so that it already spins.
    let mut serve = Serve::start(
        &s,
        &format!(
            "{}{}",
            tenant_toml("noisy", GLOBEX, &["noisy.toml"]),
            tenant_toml("quiet", ACME, &["quiet.toml"])
        ),
    );
    let t0 = Instant::now();
    let done = serve.wait_state(
        "quiet",
        "quiet",
        PipelineState::Finished,
        Duration::from_secs(60),
    );
    let shared = t0.elapsed().as_secs_f64();
    assert_eq!(done.counters.events_read, quiet.count);
    assert_eq!(done.counters.plugin_errors, 0);
    let version = live(&done).to_string();

    eprintln!("quiet pipeline: alone {alone:.3} s, beside a spinning tenant {shared:.3} s");
    // The spinner kept failing meanwhile. (Its counters in the API are published after
    // each batch, and one batch of 41 windows x 10 keys takes it over 8 s: read its error
    // sink instead, which fills as it goes.)
    let noisy_view = serve.view("noisy", "noisy");
    assert_eq!(noisy_view.state, PipelineState::Running, "{noisy_view:?}");
    let errs = wait_for(
        "the spinner's error records",
        Duration::from_secs(30),
        || {
            let e = errors(&s, "noisy");
            (e.len() >= 5).then_some(e)
        },
    );
    assert!(errs.iter().all(|e| e["kind"] == "deadline"), "{errs:?}");
    serve.assert_healthy();

    let rows = s.read_jsonl("quiet.jsonl");
    assert_stats_exact(&rows, &expected, "beside the spinner");
    assert!(
        rows.iter().all(|r| r["plugin_version"] == version.as_str()),
        "every row by {version}"
    );
    assert!(
        shared <= 2.0 * alone + 1.0,
        "beside the spinner the pipeline took {shared:.3} s, alone {alone:.3} s"
    );
}

// ---------------------------------------------------------------------------------------
// 2. Adversarial plugins and quarantine
// ---------------------------------------------------------------------------------------

/// Error records of one pipeline's error sink.
fn errors(s: &Scratch, pipeline: &str) -> Vec<Json> {
    s.read_jsonl(&format!("{pipeline}.errors.jsonl"))
}

#[test]
fn adversarial_plugins_fail_alone_and_the_host_survives() {
    let _serial = serial();
    let s = Scratch::new();
    // 1 key, 300 events 10 ms apart: 3 windows, so 3 calls each.
    let small = Gen {
        count: 300,
        keys: 1,
        interval_ms: 10,
        seed: 1,
        rate: 0,
    };
    s.write(
        "spin.toml",
        &pipeline_toml(
            "spin",
            &small.toml(),
            &support::wasm("spin"),
            "limits = { deadline = \"20ms\" }",
        ),
    );
    s.write(
        "hog.toml",
        &pipeline_toml(
            "hog",
            &small.toml(),
            &support::wasm("hog"),
            "limits = { memory = \"16MiB\" }",
        ),
    );
    // A million rows need room in guest memory to be built at all; the row limit (default
    // 10 000 per call) is what must refuse them.
    s.write(
        "huge.toml",
        &pipeline_toml(
            "huge",
            &small.toml(),
            &support::wasm("huge"),
            "limits = { memory = \"512MiB\", deadline = \"10s\" }",
        ),
    );
    // The generator has no BAD symbol: a file with two BAD windows among good ones.
    let lines = [
        ("2024-01-22T00:00:00.100Z", "AAPL"),
        ("2024-01-22T00:00:00.200Z", "BAD"),
        ("2024-01-22T00:00:00.300Z", "AAPL"),
        ("2024-01-22T00:00:01.100Z", "BAD"),
        ("2024-01-22T00:00:01.200Z", "MSFT"),
        ("2024-01-22T00:00:02.500Z", "AAPL"),
    ];
    let file_source = support::tick_file_source(&s, "panicky-input.jsonl", &lines);
    s.write(
        "panicky.toml",
        &pipeline_toml("panicky", &file_source, &support::wasm("panicky"), ""),
    );
    // The neighbour, exact.
    let good = Gen {
        count: 20_000,
        keys: 10,
        interval_ms: 10,
        seed: 21,
        rate: 0,
    };
    s.write(
        "good.toml",
        &pipeline_toml(
            "good",
            &good.toml(),
            &support::wasm("stats"),
            "params = { field = \"price\" }",
        ),
    );

    let mut serve = Serve::start(
        &s,
        &format!(
            "{}{}",
            tenant_toml(
                "bad",
                GLOBEX,
                &["spin.toml", "hog.toml", "huge.toml", "panicky.toml"]
            ),
            tenant_toml("good", ACME, &["good.toml"])
        ),
    );
    for (p, kind, calls) in [
        ("spin", "deadline", 3),
        ("hog", "memory", 3),
        ("huge", "bad_output", 3),
        ("panicky", "trap", 2),
    ] {
        let v = serve.wait_state("bad", p, PipelineState::Finished, Duration::from_secs(60));
        assert_eq!(v.counters.plugin_errors, calls, "{p}: {v:?}");
        let errs = errors(&s, p);
        assert_eq!(errs.len() as u64, calls, "{p}: {errs:?}");
        for e in &errs {
            assert_eq!(e["kind"], kind, "{p}: {e}");
            assert_eq!(e["pipeline"], p, "{e}");
        }
        serve.assert_healthy();
    }
    // The error record names the window that failed.
    let spin = errors(&s, "spin");
    let starts: Vec<&str> = spin
        .iter()
        .map(|e| e["window_start"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        [
            "2024-01-22T00:00:00.000Z",
            "2024-01-22T00:00:01.000Z",
            "2024-01-22T00:00:02.000Z"
        ]
    );
    assert!(
        spin[0]["error"]
            .as_str()
            .unwrap()
            .contains("20 ms deadline"),
        "{}",
        spin[0]
    );
    let huge = errors(&s, "huge");
    assert!(
        huge[0]["error"]
            .as_str()
            .unwrap()
            .contains("max_rows_per_call"),
        "{}",
        huge[0]
    );
    assert!(
        s.read_jsonl("huge.jsonl").is_empty(),
        "no partial output of a refused call"
    );
    // panicky traps on BAD and the next call (a fresh instance) works: AAPL's and MSFT's
    // windows are there, n = their event counts.
    let bad = errors(&s, "panicky");
    assert!(
        bad.iter().all(|e| e["key"] == r#"{"symbol":"BAD"}"#),
        "{bad:?}"
    );
    let got: Vec<(String, String, i64)> = s
        .read_jsonl("panicky.jsonl")
        .iter()
        .map(|r| {
            (
                r["symbol"].as_str().unwrap().to_string(),
                r["window_start"].as_str().unwrap().to_string(),
                r["n"].as_i64().unwrap(),
            )
        })
        .collect();
    let want = [
        ("AAPL", "2024-01-22T00:00:00.000Z", 2),
        ("MSFT", "2024-01-22T00:00:01.000Z", 1),
        ("AAPL", "2024-01-22T00:00:02.000Z", 1),
    ];
    let want: Vec<(String, String, i64)> = want
        .iter()
        .map(|(a, b, n)| (a.to_string(), b.to_string(), *n))
        .collect();
    assert_eq!(got, want);

    let v = serve.wait_state(
        "good",
        "good",
        PipelineState::Finished,
        Duration::from_secs(60),
    );
    assert_eq!(v.counters.plugin_errors, 0);
    assert_stats_exact(
        &s.read_jsonl("good.jsonl"),
        &bucket(&good.events(), 1000),
        "neighbour",
    );
    assert!(errors(&s, "good").is_empty());
    let metrics = serve.client(OPERATOR).metrics().expect("metrics");
    // Every failure is counted; a trap, a deadline or a memory overrun also drops the
    // Store (a refused huge output does not poison it).
    for (p, n) in [("spin", 3), ("hog", 3), ("huge", 3), ("panicky", 2)] {
        let line = format!("weir_plugin_errors_total{{tenant=\"bad\",pipeline=\"{p}\"}} {n}\n");
        assert!(metrics.contains(&line), "{line} missing:\n{metrics}");
    }
    // panicky's two failing windows each fire in one call with other keys' windows: that
    // call traps, then each window is retried alone and BAD's traps again, so its Store is
    // rebuilt twice per failure (spin, hog and huge fail every window, one per call).
    for (p, n) in [("spin", 3), ("hog", 3), ("panicky", 4)] {
        let line = format!("weir_plugin_restarts_total{{tenant=\"bad\",pipeline=\"{p}\"}} {n}\n");
        assert!(metrics.contains(&line), "{line} missing:\n{metrics}");
    }
    serve.assert_healthy();
    // Guest output (panicky's panic message) goes to the tenant's log, never to stdout.
    assert_eq!(serve.stdout(), "", "weir serve wrote to stdout");
}

/// The spinner with `quarantine_after = 3` over 20 000 events (200 windows x 10 keys).
fn quarantine_setup(s: &Scratch, input: Gen) -> Serve {
    s.write(
        "stuck.toml",
        &pipeline_toml(
            "stuck",
            &input.toml(),
            &support::wasm("spin"),
            "limits = { deadline = \"20ms\", quarantine_after = 3 }\nparams = { field = \"price\" }\nallow_output_change = true",
        ),
    );
    Serve::start(s, &tenant_toml("acme", ACME, &["stuck.toml"]))
}

#[test]
fn quarantine_stops_reading_and_a_good_deploy_resumes() {
    let _serial = serial();
    let s = Scratch::new();
    let input = Gen {
        count: 20_000,
        keys: 10,
        interval_ms: 10,
        seed: 5,
        rate: 0,
    };
    let mut serve = quarantine_setup(&s, input);
    let q = serve.wait_state(
        "acme",
        "stuck",
        PipelineState::Quarantined,
        Duration::from_secs(30),
    );
    let reason = q.reason.clone().expect("a reason");
    assert!(
        reason.contains("3 plugin failures in a row") && reason.contains("deadline"),
        "{reason}"
    );
    let read = q.counters.events_read;
    assert!(read > 0 && read < input.count, "{q:?}");
    std::thread::sleep(Duration::from_millis(700));
    let still = serve.view("acme", "stuck");
    assert_eq!(still.state, PipelineState::Quarantined);
    assert_eq!(
        still.counters.events_read, read,
        "a quarantined pipeline must not read on"
    );
    assert_eq!(
        still.counters.plugin_errors, q.counters.plugin_errors,
        "nor call its plugin"
    );
    // While it waits, its error sink already shows every failure (nothing left in a buffer):
    // the 3 calls that missed their deadline first.
    let errs = errors(&s, "stuck");
    assert_eq!(
        errs.len() as u64,
        still.counters.plugin_errors,
        "error records written while quarantined"
    );
    let kinds: Vec<&str> = errs
        .iter()
        .take(4)
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds[..3], ["deadline"; 3], "{kinds:?}");
    let metrics = serve.client(OPERATOR).metrics().expect("metrics");
    assert!(
        metrics.contains(r#"weir_quarantined{tenant="acme",pipeline="stuck"} 1"#),
        "{metrics}"
    );
    serve.assert_healthy();

    // A tenant deploys a good version of its own pipeline: it resumes with it.
    let bytes = std::fs::read(support::wasm("stats")).unwrap();
    let v2 = serve
        .client(ACME)
        .deploy_with("acme", "stuck", bytes, true)
        .expect("deploy stats");
    assert!(v2.id.starts_with("weir-plugin-stats@"), "{v2:?}");
    let done = serve.wait_state(
        "acme",
        "stuck",
        PipelineState::Finished,
        Duration::from_secs(60),
    );
    assert_eq!(done.counters.events_read, input.count);
    assert_eq!(live(&done), v2.id);
    assert!(done.reason.is_none(), "{done:?}");
    // The last plugin error is the stuck version's, resolved now that it is not live.
    let last = done
        .last_plugin_error
        .as_ref()
        .expect("a last plugin error");
    assert!(last.version.starts_with("weir-test-spin@"), "{last:?}");
    assert!(last.resolved, "{last:?}");

    // The three calls that failed are in the error sink as deadline errors.
    let errs = errors(&s, "stuck");
    let deadline: Vec<&Json> = errs.iter().filter(|e| e["kind"] == "deadline").collect();
    assert_eq!(deadline.len(), 3, "{errs:?}");
    // Rows come from the new version, and are exact; every window that starts after the
    // input read before the quarantine is there.
    let rows = s.read_jsonl("stuck.jsonl");
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r["plugin_version"] == v2.id.as_str()));
    let expected = bucket(&input.events(), 1000);
    let resumed_from = GEN_START_MS + read as i64 * input.interval_ms;
    let after: BTreeMap<_, _> = expected
        .iter()
        .filter(|((_, w), _)| *w >= resumed_from)
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let rows_after: Vec<Json> = rows
        .iter()
        .filter(|r| ts_ms(r["window_start"].as_str().unwrap()) >= resumed_from)
        .cloned()
        .collect();
    assert_stats_exact(&rows_after, &after, "after the quarantine");
    for r in &rows {
        let k = (
            r["symbol"].as_str().unwrap().to_string(),
            ts_ms(r["window_start"].as_str().unwrap()),
        );
        assert_eq!(r["count"].as_i64(), Some(expected[&k].count), "{r}");
    }
}

/// A quarantined pipeline "keeps its input (nothing is dropped)": quarantine falls in the
/// middle of a batch, and the windows that batch makes ready after it stay pending and fire
/// with the next version, so only the 3 windows whose calls failed are missing after the
/// good deploy.
#[test]
fn quarantine_keeps_every_window_the_plugin_was_not_called_for() {
    let _serial = serial();
    let s = Scratch::new();
    let input = Gen {
        count: 20_000,
        keys: 10,
        interval_ms: 10,
        seed: 5,
        rate: 0,
    };
    let serve = quarantine_setup(&s, input);
    serve.wait_state(
        "acme",
        "stuck",
        PipelineState::Quarantined,
        Duration::from_secs(30),
    );
    let bytes = std::fs::read(support::wasm("stats")).unwrap();
    serve
        .client(OPERATOR)
        .deploy_with("acme", "stuck", bytes, true)
        .expect("deploy stats");
    serve.wait_state(
        "acme",
        "stuck",
        PipelineState::Finished,
        Duration::from_secs(60),
    );
    let failed: Vec<(String, i64)> = errors(&s, "stuck")
        .iter()
        .filter(|e| e["kind"] == "deadline")
        .map(|e| {
            let key: Json = serde_json::from_str(e["key"].as_str().unwrap()).unwrap();
            (
                key["symbol"].as_str().unwrap().to_string(),
                ts_ms(e["window_start"].as_str().unwrap()),
            )
        })
        .collect();
    let mut expected = bucket(&input.events(), 1000);
    for k in &failed {
        expected.remove(k);
    }
    assert_stats_exact(
        &s.read_jsonl("stuck.jsonl"),
        &expected,
        "after quarantine and deploy",
    );
}

// ---------------------------------------------------------------------------------------
// 3. Hot swap under a continuous stream
// ---------------------------------------------------------------------------------------

/// One swap: events read just before it was asked for and just after it was seen live,
/// and the version it made live.
struct Swap {
    before: u64,
    after: u64,
    to: String,
}

#[test]
fn hot_swap_under_a_stream_accounts_for_every_window_with_its_version() {
    let _serial = serial();
    let s = Scratch::new();
    // 3000 events/s, 1 ms apart: 3 windows of 1 s (30 rows) per second of wall time, 10 s.
    let input = Gen {
        count: 30_000,
        keys: 10,
        interval_ms: 1,
        seed: 17,
        rate: 3000,
    };
    let stats = support::wasm("stats");
    let hotspot_bytes = std::fs::read(support::wasm("hotspot")).unwrap();
    s.write(
        "ticks.toml",
        &pipeline_toml(
            "ticks",
            &input.toml(),
            &stats,
            "params = { field = \"price\" }\nallow_output_change = true",
        ),
    );
    let plugins = s.path("plugins");
    std::fs::create_dir_all(plugins.join("acme")).unwrap();
    let serve = Serve::start(
        &s,
        &format!(
            "[plugins]\ndir = \"{}\"\n\n{}",
            plugins.display(),
            tenant_toml("acme", ACME, &["ticks.toml"])
        ),
    );
    let acme = serve.client(ACME);
    let read = || serve.view("acme", "ticks").counters.events_read;
    let v1 = live(&serve.view("acme", "ticks")).to_string();
    assert!(v1.starts_with("weir-plugin-stats@"), "{v1}");
    wait_for("the stream to flow", Duration::from_secs(20), || {
        (read() >= 3000).then_some(())
    });
    let mut swaps = Vec::new();

    // v2 through the API, by the tenant.
    let before = read();
    // hotspot's columns are not stats': the tenant confirms, the operator allows.
    let v2 = acme
        .deploy_with("acme", "ticks", hotspot_bytes.clone(), true)
        .expect("deploy hotspot")
        .id;
    assert!(v2.starts_with("weir-plugin-hotspot@"), "{v2}");
    swaps.push(Swap {
        before,
        after: read(),
        to: v2.clone(),
    });
    assert_eq!(live(&serve.view("acme", "ticks")), v2);
    std::thread::sleep(Duration::from_millis(1000));

    // Random bytes: refused with a reason, v2 keeps running.
    let (status, reason) = refused(acme.deploy("acme", "ticks", random_bytes(4096, 0x9e37_79b9)));
    assert_eq!(status, 422, "{reason}");
    assert!(reason.contains("cannot load"), "{reason}");
    let v = serve.view("acme", "ticks");
    assert_eq!(live(&v), v2);
    assert_eq!(v.state, PipelineState::Running);
    std::thread::sleep(Duration::from_millis(1000));

    // Rollback through the CLI: v1 again.
    let before = read();
    let (ok, out, err) = serve.cli(
        ACME,
        &["rollback", "--tenant", "acme", "--pipeline", "ticks"],
    );
    assert!(ok, "{err}");
    assert!(out.contains(&v1), "{out}");
    swaps.push(Swap {
        before,
        after: read(),
        to: v1.clone(),
    });
    std::thread::sleep(Duration::from_millis(1000));

    // v2 through the watched directory: written under a temp name, renamed into place.
    let before = read();
    let tmp = plugins.join("acme").join(".ticks.wasm.tmp");
    std::fs::write(&tmp, &hotspot_bytes).unwrap();
    std::fs::rename(&tmp, plugins.join("acme").join("ticks.wasm")).unwrap();
    let after = wait_for(
        "the file deploy to go live",
        Duration::from_secs(30),
        || {
            let v = serve.view("acme", "ticks");
            (live(&v) == v2).then_some(v.counters.events_read)
        },
    );
    swaps.push(Swap {
        before,
        after,
        to: v2.clone(),
    });
    let v = serve.view("acme", "ticks");
    let origins: Vec<&str> = v.versions.iter().map(|v| v.origin.as_str()).collect();
    assert_eq!(origins.last(), Some(&"file"), "{v:?}");
    std::thread::sleep(Duration::from_millis(1000));

    // And back to v1 with one call.
    let before = read();
    let back = acme.rollback("acme", "ticks").expect("rollback");
    assert_eq!(back.id, v1);
    swaps.push(Swap {
        before,
        after: read(),
        to: v1.clone(),
    });
    assert!(
        read() < input.count,
        "the stream ended before the last swap; the test proves less than it says"
    );

    let done = serve.wait_state(
        "acme",
        "ticks",
        PipelineState::Finished,
        Duration::from_secs(60),
    );
    assert_eq!(done.counters.events_read, input.count);
    assert_eq!(done.counters.plugin_errors, 0);

    // Every (key, window) once, with the right count.
    let rows = s.read_jsonl("ticks.jsonl");
    let expected = bucket(&input.events(), 1000);
    let mut seen = BTreeMap::new();
    for r in &rows {
        let k = (
            r["symbol"].as_str().unwrap().to_string(),
            ts_ms(r["window_start"].as_str().unwrap()),
        );
        let want = expected
            .get(&k)
            .unwrap_or_else(|| panic!("row for a window with no events: {r}"));
        assert_eq!(r["count"].as_i64(), Some(want.count), "{r}");
        assert!(seen.insert(k.clone(), ()).is_none(), "window {k:?} twice");
    }
    assert_eq!(seen.len(), expected.len(), "every window once");

    for sw in &swaps {
        eprintln!(
            "swap to {} between events {} and {}",
            sw.to, sw.before, sw.after
        );
    }
    // Versions: v1, then each swap's version in turn, each run unbroken.
    let timeline: Vec<&str> = std::iter::once(v1.as_str())
        .chain(swaps.iter().map(|s| s.to.as_str()))
        .collect();
    let mut runs: Vec<&str> = Vec::new();
    for r in &rows {
        let v = r["plugin_version"].as_str().expect("plugin_version");
        if runs.last() != Some(&v) {
            runs.push(v);
        }
    }
    assert_eq!(runs, timeline, "versions in file order");
    // Each row has the version live when its window fired. Window [s, e) fires on the event
    // at e (1 ms apart from the generator's start, so event index e - start); the swap came
    // after `before` and before `after` events were read.
    for r in &rows {
        let fired_by = (ts_ms(r["window_end"].as_str().unwrap()) - GEN_START_MS) as u64;
        let surely = swaps.iter().filter(|s| s.after <= fired_by).count();
        let maybe = swaps.iter().filter(|s| s.before <= fired_by).count();
        let v = r["plugin_version"].as_str().unwrap();
        assert!(
            (surely..=maybe).any(|n| timeline[n] == v),
            "{r} fired by event {fired_by}: expected one of {:?}",
            &timeline[surely..=maybe]
        );
        // Stats rows have a sum, hotspot rows do not: the columns are the version's own.
        assert_eq!(r.get("sum").is_some(), v == v1, "{r}");
    }
}

// ---------------------------------------------------------------------------------------
// 4. Authorization, end to end
// ---------------------------------------------------------------------------------------

#[test]
fn tenants_cannot_touch_each_other_on_a_real_host() {
    let _serial = serial();
    let s = Scratch::new();
    // Paced so that both keep running for the whole test.
    let slow = Gen {
        count: 1_000_000,
        keys: 10,
        interval_ms: 10,
        seed: 2,
        rate: 500,
    };
    let stats = support::wasm("stats");
    let params = "params = { field = \"price\" }\nallow_output_change = true";
    s.write(
        "ticks.toml",
        &pipeline_toml("ticks", &slow.toml(), &stats, params),
    );
    s.write(
        "rides.toml",
        &pipeline_toml("rides", &slow.toml(), &stats, params),
    );
    let serve = Serve::start(
        &s,
        &format!(
            "{}{}",
            tenant_toml("acme", ACME, &["ticks.toml"]),
            tenant_toml("globex", GLOBEX, &["rides.toml"])
        ),
    );
    let (acme, op) = (serve.client(ACME), serve.client(OPERATOR));
    let hotspot = std::fs::read(support::wasm("hotspot")).unwrap();
    let globex_before = serve.view("globex", "rides");

    // acme cannot read, deploy to, roll back, pause or resume globex.
    assert_eq!(refused(acme.pipelines("globex")).0, 403);
    assert_eq!(
        refused(acme.deploy("globex", "rides", hotspot.clone())).0,
        403
    );
    assert_eq!(refused(acme.rollback("globex", "rides")).0, 403);
    assert_eq!(refused(acme.pause("globex", "rides")).0, 403);
    assert_eq!(refused(acme.resume("globex", "rides")).0, 403);
    assert_eq!(refused(acme.metrics()).0, 403);
    let names: Vec<String> = acme
        .tenants()
        .expect("own tenants")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["acme"]);
    // Nor through the CLI.
    let (ok, _, err) = serve.cli(ACME, &["list", "--tenant", "globex"]);
    assert!(!ok && err.contains("403"), "{err}");
    let wasm = support::wasm("hotspot").display().to_string();
    let (ok, _, err) = serve.cli(
        ACME,
        &["deploy", "--tenant", "globex", "--pipeline", "rides", &wasm],
    );
    assert!(!ok && err.contains("403"), "{err}");
    let (ok, _, err) = serve.cli(
        ACME,
        &["pause", "--tenant", "globex", "--pipeline", "rides"],
    );
    assert!(!ok && err.contains("403"), "{err}");
    // ... and nothing changed for globex.
    let globex_after = serve.view("globex", "rides");
    assert_eq!(globex_after.versions, globex_before.versions);
    assert_eq!(globex_after.state, PipelineState::Running);

    // Unknown and missing tokens: 401.
    let nobody = serve.client("nobody-token-1234567890");
    assert_eq!(refused(nobody.tenants()).0, 401);
    assert_eq!(refused(nobody.pipelines("acme")).0, 401);
    assert_eq!(
        refused(nobody.deploy("acme", "ticks", hotspot.clone())).0,
        401
    );
    assert_eq!(refused(nobody.pause("acme", "ticks")).0, 401);
    assert_eq!(refused(serve.client("").tenants()).0, 401);
    assert_eq!(
        live(&serve.view("acme", "ticks")),
        live(&globex_before),
        "acme untouched"
    );

    // acme may do all of it to its own pipeline.
    let paused = acme.pause("acme", "ticks").expect("pause own");
    assert_eq!(paused.state, PipelineState::Paused);
    let n = paused.counters.events_read;
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        serve.view("acme", "ticks").counters.events_read,
        n,
        "paused pipelines do not read"
    );
    assert_eq!(
        acme.resume("acme", "ticks").expect("resume own").state,
        PipelineState::Running
    );
    let v = acme
        .deploy_with("acme", "ticks", hotspot.clone(), true)
        .expect("deploy own");
    assert!(v.id.starts_with("weir-plugin-hotspot@"));
    assert_eq!(
        acme.rollback("acme", "ticks").expect("rollback own").id,
        live(&globex_before)
    );
    let own: Vec<String> = acme
        .pipelines("acme")
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(own, ["ticks"]);

    // The operator may do everything to anyone.
    let names: Vec<String> = op.tenants().unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["acme", "globex"]);
    assert_eq!(
        op.pause("globex", "rides").unwrap().state,
        PipelineState::Paused
    );
    assert_eq!(
        op.resume("globex", "rides").unwrap().state,
        PipelineState::Running
    );
    let v = op
        .deploy_with("globex", "rides", hotspot, true)
        .expect("operator deploys");
    assert_eq!(live(&serve.view("globex", "rides")), v.id);
    let back: VersionView = op.rollback("globex", "rides").expect("operator rolls back");
    assert_eq!(back.id, live(&globex_before));
    let (ok, out, err) = serve.cli(OPERATOR, &["list"]);
    assert!(ok, "{err}");
    assert!(out.contains("acme") && out.contains("globex"), "{out}");
    assert!(op.metrics().unwrap().contains("weir_events_read_total"));
}

/// A deploy lands between two window firings, not only between two batches: onto a
/// pipeline whose every call runs to its 50 ms deadline (one batch holds hundreds of such
/// windows, minutes of calls), the new version is live when the deploy answers, every
/// window not yet fired fires with it, and every window the old one failed on is computed
/// by it too.
#[test]
fn a_deploy_lands_at_once_even_while_every_call_runs_to_its_deadline() {
    let _serial = serial();
    let s = Scratch::new();
    let input = Gen {
        count: 4_000,
        keys: 10,
        interval_ms: 10,
        seed: 11,
        rate: 0,
    };
    s.write(
        "slow.toml",
        &pipeline_toml(
            "slow",
            &input.toml(),
            &support::wasm("spin"),
            "limits = { deadline = \"50ms\", quarantine_after = 1000000 }\nparams = { field = \"price\" }\nallow_output_change = true",
        ),
    );
    let serve = Serve::start(&s, &tenant_toml("acme", ACME, &["slow.toml"]));
    wait_for("the first deadline", Duration::from_secs(30), || {
        (errors(&s, "slow").len() >= 2).then_some(())
    });
    let stats = std::fs::read(support::wasm("stats")).unwrap();
    let v = serve
        .client(ACME)
        .deploy_with("acme", "slow", stats, true)
        .expect("deploy accepted");
    assert!(
        v.live,
        "the version must be live when the deploy answers: {v:?}"
    );
    let done = serve.wait_state(
        "acme",
        "slow",
        PipelineState::Finished,
        Duration::from_secs(60),
    );
    assert_eq!(live(&done), v.id);

    // 4000 events 10 ms apart: 40 one-second windows per key. Each window has exactly one
    // row, by stats: those it fired after the swap, and those spin failed on before it
    // (an error record each), which stats computed first from their kept events.
    let expected = bucket(&input.events(), 1000);
    let rows = s.read_jsonl("slow.jsonl");
    let failed: BTreeSet<(String, i64)> = errors(&s, "slow")
        .iter()
        .map(|e| {
            let key: Json = serde_json::from_str(e["key"].as_str().unwrap()).unwrap();
            (
                key["symbol"].as_str().unwrap().to_string(),
                ts_ms(e["window_start"].as_str().unwrap()),
            )
        })
        .collect();
    assert!(!failed.is_empty());
    let mut seen = BTreeSet::new();
    for r in &rows {
        assert_eq!(r["plugin_version"], v.id.as_str(), "{r}");
        let k = (
            r["symbol"].as_str().unwrap().to_string(),
            ts_ms(r["window_start"].as_str().unwrap()),
        );
        assert_eq!(r["count"].as_i64(), Some(expected[&k].count), "{r}");
        assert!(seen.insert(k.clone()), "{k:?} twice in the rows");
    }
    let all: BTreeSet<(String, i64)> = expected.keys().cloned().collect();
    assert_eq!(seen, all, "every window has its row, once");
    assert!(failed.is_subset(&seen));
    assert_eq!(
        done.counters.windows_recomputed,
        failed.len() as u64,
        "every failed window was computed by the new version"
    );
}

/// Every kind of unfit component is refused at deploy with its reason, through the API,
/// while the live version keeps running.
#[test]
fn unfit_components_are_rejected_at_deploy_and_the_live_version_keeps_running() {
    let _serial = serial();
    let s = Scratch::new();
    let input = Gen {
        count: 1_000_000,
        keys: 5,
        interval_ms: 10,
        seed: 3,
        rate: 2_000,
    };
    s.write(
        "steady.toml",
        &pipeline_toml(
            "steady",
            &input.toml(),
            &support::wasm("stats"),
            "params = { field = \"price\" }",
        ),
    );
    let serve = Serve::start(&s, &tenant_toml("acme", ACME, &["steady.toml"]));
    let client = serve.client(ACME);
    let before = serve.view("acme", "steady");
    let read = |b: &[u8]| b.to_vec();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "random bytes",
            random_bytes(4096, 7),
            "not a WebAssembly component",
        ),
        (
            "a core module",
            read(b"\0asm\x01\0\0\0"),
            "not a WebAssembly component",
        ),
        (
            "a component importing `fetch`",
            std::fs::read(support::wasm("importer")).unwrap(),
            "imports something the host does not provide",
        ),
        (
            "a WASI command",
            std::fs::read(support::wasm("wrong_world")).unwrap(),
            "does not export the weir:plugin `aggregator` world",
        ),
        (
            "a plugin whose inputs the schema lacks",
            std::fs::read(support::wasm("ticker")).unwrap(),
            "needs input field",
        ),
    ];
    for (what, bytes, reason) in cases {
        let (status, text) = refused(client.deploy("acme", "steady", bytes));
        assert_eq!(status, 422, "{what}: {text}");
        assert!(text.contains(reason), "{what}: {text}");
    }
    let after = wait_for("the stream to go on", Duration::from_secs(30), || {
        let v = serve.view("acme", "steady");
        (v.counters.events_read > before.counters.events_read).then_some(v)
    });
    assert_eq!(live(&after), live(&before), "the live version is untouched");
    let kept = after
        .versions
        .iter()
        .filter(|v| v.status != VersionStatus::Rejected)
        .count();
    assert_eq!(kept, 1, "rejected versions are not kept: {after:?}");
    // The last refusal (ticker's) is listed, saying who fixes it.
    let last = after.last_rejected.clone().expect("the last rejection");
    assert!(
        last.reason.contains("Only the operator can fix this"),
        "{last:?}"
    );
    assert_eq!(after.state, PipelineState::Running);
}

// ---------------------------------------------------------------------------------------
// 5. Failed and finished pipelines; host paths
// ---------------------------------------------------------------------------------------

/// `GET path` with `token`: the body of a 200.
fn get_as(port: u16, path: &str, token: &str) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "GET {path}: {text}");
    text.split_once("\r\n\r\n").unwrap().1.to_string()
}

/// Every word of `text` that is an absolute path.
fn absolute_paths(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || "\"'`()[]{}<>,;=|\\".contains(c))
        .filter(|w| w.starts_with('/') && w.len() > 1)
        .map(str::to_string)
        .collect()
}

#[test]
fn failed_and_finished_pipelines_refuse_control_and_tenants_see_no_host_paths() {
    let _serial = serial();
    let s = Scratch::new();
    let stats = support::wasm("stats");
    let params = "params = { field = \"price\" }";
    let ticks = |count, rate| Gen {
        count,
        keys: 3,
        interval_ms: 10,
        seed: 8,
        rate,
    };
    // Its sink fails at the first write.
    s.write(
        "broken.toml",
        &pipeline_toml("broken", &ticks(2_000, 0).toml(), &stats, params)
            .replace("path = \"broken.jsonl\"", "path = \"/dev/full\""),
    );
    s.write(
        "done.toml",
        &pipeline_toml("done", &ticks(300, 0).toml(), &stats, params),
    );
    s.write(
        "p.toml",
        &pipeline_toml("p", &ticks(1_000_000, 500).toml(), &stats, params),
    );
    let plugins = s.path("plugins");
    std::fs::create_dir_all(plugins.join("acme")).unwrap();
    let serve = Serve::start(
        &s,
        &format!(
            "[plugins]\ndir = \"plugins\"\ndebounce = \"100ms\"\n\n{}",
            tenant_toml("acme", ACME, &["broken.toml", "done.toml", "p.toml"])
        ),
    );
    let (acme, op) = (serve.client(ACME), serve.client(OPERATOR));
    let hotspot = std::fs::read(support::wasm("hotspot")).unwrap();

    // The failed pipeline: deploy, pause and resume are refused with why and what to do.
    let failed = wait_for("the sink to fail", Duration::from_secs(60), || {
        let v = serve.view("acme", "broken");
        (v.state == PipelineState::Failed).then_some(v)
    });
    let cause = failed.reason.clone().expect("a reason");
    assert!(cause.contains("/dev/full"), "the operator sees it: {cause}");
    let attempts = [
        refused(acme.deploy("acme", "broken", hotspot.clone())),
        refused(acme.pause("acme", "broken")),
        refused(acme.resume("acme", "broken")),
    ];
    for (status, reason) in &attempts {
        assert_eq!(*status, 409, "{reason}");
        assert!(
            reason.contains("has failed (")
                && reason.contains("No space left on device")
                && reason.contains("restart the host"),
            "{reason}"
        );
        assert_eq!(absolute_paths(reason), Vec::<String>::new(), "{reason}");
    }
    let (status, reason) = refused(op.pause("acme", "broken"));
    assert_eq!(status, 409);
    assert!(
        reason.contains("/dev/full"),
        "the operator sees it: {reason}"
    );
    let after = serve.view("acme", "broken");
    assert_eq!(after.state, PipelineState::Failed);
    assert_eq!(after.versions, failed.versions, "no version recorded");

    // The finished one likewise.
    serve.wait_state(
        "acme",
        "done",
        PipelineState::Finished,
        Duration::from_secs(60),
    );
    for (status, reason) in [
        refused(acme.deploy("acme", "done", hotspot.clone())),
        refused(acme.pause("acme", "done")),
        refused(acme.resume("acme", "done")),
    ] {
        assert_eq!(status, 409, "{reason}");
        assert!(reason.contains("has finished"), "{reason}");
    }
    // A component that is not fit is still refused as such (422), finished or not.
    let (status, _) = refused(acme.deploy("acme", "done", random_bytes(64, 1)));
    assert_eq!(status, 422);

    // Rejections that name the operator's file and the plugin file.
    let ticker = std::fs::read(support::wasm("ticker")).unwrap();
    let (status, reason) = refused(acme.deploy("acme", "p", ticker));
    assert_eq!(status, 422, "{reason}");
    assert!(reason.contains("in p.toml: add"), "{reason}");
    assert_eq!(absolute_paths(&reason), Vec::<String>::new(), "{reason}");
    let op_view = serve.view("acme", "p");
    let p_toml = s.path("p.toml").display().to_string();
    assert!(
        op_view
            .last_rejected
            .as_ref()
            .is_some_and(|r| r.reason.contains(&p_toml)),
        "the operator sees {p_toml}: {:?}",
        op_view.last_rejected
    );
    std::fs::write(plugins.join("acme/p.wasm"), "not wasm\n").unwrap();
    let op_rejected = wait_for("the file rejected", Duration::from_secs(30), || {
        serve
            .view("acme", "p")
            .last_rejected
            .filter(|r| r.origin == "file")
    });
    let canonical = plugins.join("acme/p.wasm").canonicalize().unwrap();
    assert_eq!(
        op_rejected.file.as_deref(),
        Some(canonical.to_str().unwrap())
    );
    let mine = acme.pipelines("acme").unwrap();
    let p = mine.iter().find(|v| v.name == "p").unwrap();
    assert_eq!(
        p.last_rejected.as_ref().and_then(|r| r.file.as_deref()),
        Some("acme/p.wasm")
    );

    // Everything the tenant reads: no absolute path anywhere; the operator's reads have them.
    let port = serve.port;
    let reads = [
        "/v1/tenants/acme/pipelines",
        "/v1/overview",
        "/v1/tenants/acme/pipelines/broken/activity",
        "/v1/tenants/acme/pipelines/p/activity",
    ];
    for path in reads {
        let body = get_as(port, path, ACME);
        assert_eq!(
            absolute_paths(&body),
            Vec::<String>::new(),
            "{path}: {body}"
        );
    }
    let body = get_as(port, "/v1/tenants/acme/pipelines", OPERATOR);
    for needle in ["/dev/full", canonical.to_str().unwrap()] {
        assert!(body.contains(needle), "the operator sees {needle}: {body}");
    }
    let (ok, out, err) = serve.cli(ACME, &["list"]);
    assert!(ok, "{err}");
    assert_eq!(absolute_paths(&out), Vec::<String>::new(), "{out}");
}
