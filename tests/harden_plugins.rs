//! Hardening of what one tenant's plugin may take from the host and its readers, against
//! the real binary:
//!
//! - A plugin whose output columns are named like the host's own (`window_start`,
//!   `window_end`, `revision`, `plugin_version`) or a key field is refused at load and at
//!   deploy, naming the column; the live version keeps running.
//! - Quarantine follows the pipeline, not the component's hash: a pipeline quarantined again
//!   and again makes each new version wait before it runs, so redeploying a spinning plugin
//!   with one byte changed cannot keep a core busy.
//! - A tenant's plugins together use at most its `cpu` cores on average.

mod support;

use std::time::{Duration, Instant};

use support::Scratch;
use support::serve::{ACME, Gen, OPERATOR, Serve, live, refused, serial, tenant_toml, wait_for};
use weir::serve::control::PipelineState;

/// A pipeline over `input` running `plugin` with `plugin_extra` in its `[plugin]` table.
fn pipeline(s: &Scratch, name: &str, input: &Gen, plugin: &str, plugin_extra: &str) {
    s.write(
        &format!("{name}.toml"),
        &support::pipeline_toml(name, &input.toml(), &support::wasm(plugin), plugin_extra),
    );
}

/// `bytes` with a custom section appended: the same plugin, another SHA-256.
fn variant(bytes: &[u8], tag: u8) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out.extend_from_slice(&[0, 5, 3, b'p', b'a', b'd', tag]);
    out
}

/// The value of `name{tenant="acme",pipeline=P}` in a scrape.
fn sample(metrics: &str, name: &str, pipeline: &str) -> f64 {
    let series = format!("{name}{{tenant=\"acme\",pipeline=\"{pipeline}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
        .trim()
        .parse()
        .expect("a number")
}

#[test]
fn outputs_named_like_the_hosts_columns_are_refused_at_load_and_deploy() {
    let _serial = serial();
    let s = Scratch::new();
    let input = Gen {
        count: 2_000,
        keys: 2,
        interval_ms: 10,
        seed: 1,
        rate: 0,
    };
    // `weir check`: the spoofing plugin named by its outputs.
    for (outputs, column) in [
        ("window_start,n", "`window_start`"),
        ("n,plugin_version", "`plugin_version`"),
        ("revision", "`revision`"),
        ("symbol,n", "`symbol`"),
    ] {
        pipeline(
            &s,
            "spoof",
            &input,
            "spoof",
            &format!("params = {{ outputs = \"{outputs}\" }}"),
        );
        let out = support::run_weir(&["check", s.path("spoof.toml").to_str().unwrap()]);
        let (ok, stdout, stderr) = support::outcome(out);
        assert!(!ok, "{outputs} accepted: {stdout}");
        assert!(
            stderr.contains(column) && stderr.contains("rename the output"),
            "{outputs}: {stderr}"
        );
    }
    // `weir serve`: a deploy of it is refused with 422, naming the column; stats stays live.
    pipeline(
        &s,
        "ticks",
        &input,
        "stats",
        "params = { field = \"price\" }",
    );
    let serve = Serve::start(&s, &tenant_toml("acme", ACME, &["ticks.toml"]));
    let before = live(&serve.view("acme", "ticks")).to_string();
    let bytes = std::fs::read(support::wasm("spoof")).expect("spoof built");
    let (status, reason) = refused(serve.client(ACME).deploy("acme", "ticks", bytes));
    assert_eq!(status, 422, "{reason}");
    assert!(
        reason.contains("`window_start`") && reason.contains("which the host writes"),
        "{reason}"
    );
    let after = serve.view("acme", "ticks");
    assert_eq!(live(&after), before);
    assert_ne!(after.state, PipelineState::Failed);
}

#[test]
fn a_pipeline_quarantined_again_and_again_makes_each_new_version_wait() {
    let _serial = serial();
    let s = Scratch::new();
    // 10 keys, 10 ms apart, 1 s windows: every batch fires windows, each call spins to
    // its 20 ms deadline; the second failure in a row quarantines.
    let input = Gen {
        count: 200_000,
        keys: 10,
        interval_ms: 10,
        seed: 5,
        rate: 0,
    };
    pipeline(
        &s,
        "stuck",
        &input,
        "spin",
        "limits = { deadline = \"20ms\", quarantine_after = 2 }",
    );
    let serve = Serve::start(&s, &tenant_toml("acme", ACME, &["stuck.toml"]));
    let acme = serve.client(ACME);
    let spin = std::fs::read(support::wasm("spin")).expect("spin built");
    let quarantined = || {
        serve.wait_state(
            "acme",
            "stuck",
            PipelineState::Quarantined,
            Duration::from_secs(30),
        )
    };
    // Quarantine 1, then a new build (one byte more): it runs at once, and quarantine 2.
    let first = quarantined();
    acme.deploy("acme", "stuck", variant(&spin, 1))
        .expect("a new build deploys");
    let second = wait_for("a second quarantine", Duration::from_secs(30), || {
        let v = serve.view("acme", "stuck");
        (v.state == PipelineState::Quarantined
            && v.counters.plugin_errors >= first.counters.plugin_errors + 2)
            .then_some(v)
    });
    // A third build: its 2-strike wait is Strikes::BASE (5 s). Before the fix, a changed
    // byte lifted the quarantine and the plugin spun again at once.
    let deployed = Instant::now();
    acme.deploy("acme", "stuck", variant(&spin, 2))
        .expect("a new build deploys");
    let waiting = serve.view("acme", "stuck");
    assert_eq!(waiting.state, PipelineState::Quarantined, "{waiting:?}");
    let reason = waiting.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("waits") && reason.contains("quarantined 2 times"),
        "{reason}"
    );
    std::thread::sleep(Duration::from_secs(3));
    let still = serve.view("acme", "stuck");
    assert_eq!(
        still.counters.plugin_errors, second.counters.plugin_errors,
        "the waiting version must not be called"
    );
    assert_eq!(
        still.counters.events_read, second.counters.events_read,
        "nor read input"
    );
    // After its wait it runs (and, spinning, is quarantined a third time).
    let third = wait_for("the third build to run", Duration::from_secs(30), || {
        let v = serve.view("acme", "stuck");
        (v.counters.plugin_errors > second.counters.plugin_errors).then_some(v)
    });
    assert!(
        deployed.elapsed() >= Duration::from_secs(5),
        "ran after {:?}: {third:?}",
        deployed.elapsed()
    );
}

#[test]
fn a_tenants_plugins_use_at_most_its_cpu_cores() {
    let _serial = serial();
    let s = Scratch::new();
    // One window per event (1 key, 1 s apart, 200 events/s): one 20 ms call per event
    // keeps a core busy without a budget, and the spinner never quarantines.
    let input = Gen {
        count: 10_000_000,
        keys: 1,
        interval_ms: 1000,
        seed: 3,
        rate: 200,
    };
    pipeline(
        &s,
        "noisy",
        &input,
        "spin",
        "limits = { deadline = \"20ms\", quarantine_after = 1000000000 }",
    );
    let tenant = tenant_toml("acme", ACME, &["noisy.toml"]).replace(
        &format!("token = \"{ACME}\""),
        &format!("token = \"{ACME}\"\ncpu = 0.2"),
    );
    assert!(tenant.contains("cpu = 0.2"), "{tenant}");
    let serve = Serve::start(&s, &tenant);
    let operator = serve.client(OPERATOR);
    let started = Instant::now();
    let scrape = || operator.metrics().expect("metrics");
    let first = sample(&scrape(), "weir_plugin_cpu_seconds_total", "noisy");
    std::thread::sleep(Duration::from_secs(6));
    let metrics = scrape();
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = sample(&metrics, "weir_plugin_cpu_seconds_total", "noisy") - first;
    let throttled = sample(&metrics, "weir_plugin_throttled_seconds_total", "noisy");
    let calls = serve.view("acme", "noisy").counters.plugin_errors;
    assert!(calls > 0, "the spinner never ran");
    // 0.2 cores over the run, plus the bucket's one-second burst (0.2 s) and one batch
    // charged after the fact (a few 20 ms calls); without the budget it is ~1 core.
    assert!(
        cpu <= 0.2 * elapsed + 0.2 + 0.3,
        "{cpu:.2} s of CPU in {elapsed:.1} s (throttled {throttled:.1} s)"
    );
    assert!(throttled > 1.0, "never throttled: {throttled}");
}
