//! Throughput of one tenant's pipeline in a `weir::serve::Host`, alone and beside tenants
//! whose plugin spins to its CPU deadline on every call; and the demo pipeline's events/s.
//!
//! `cargo bench -p weir --bench isolation`
//!
//! Throughput is the slope of the quiet pipeline's `events_read` (as the host publishes it
//! after every batch, polled every 2 ms) between 10 % and 90 % of its input, so start-up
//! and the final flush do not count. Scenarios are interleaved, 3 rounds, median reported.

mod util;

use std::sync::Arc;
use std::time::{Duration, Instant};

use util::{Scratch, generator, host_toml, median, pipeline_toml, table, tenant_toml, wasm};
use weir::config::{PipelineConfig, SinkConfig};
use weir::serve::{Host, HostControl, PipelineState};

const QUIET_EVENTS: u64 = 1_000_000;
const ROUNDS: usize = 5;

/// Starts a host with `neighbours` spinning tenants (first), each with `cpu` cores of CPU
/// budget (`None`: the default, 1 core), and the quiet tenant; returns the quiet pipeline's
/// events/s and the neighbours' mean CPU duty (failed 10 ms calls per second of the quiet
/// pipeline's run, times 10 ms).
fn scenario(neighbours: usize, cpu: Option<f64>) -> (f64, f64) {
    let s = Scratch::new();
    let stats = wasm("stats");
    let spin = wasm("spin");
    s.write(
        "quiet.toml",
        &pipeline_toml(
            "quiet",
            &generator(QUIET_EVENTS, 10, "10ms", 0, 11),
            &stats,
            "params = { field = \"price\" }",
        ),
    );
    let mut body = String::new();
    for i in 0..neighbours {
        // One window per event (1 key, 1 s apart) at 100 events/s: one 10 ms call per event,
        // so the spinner keeps a core busy and still takes control messages between calls.
        let name = format!("noisy{i}");
        s.write(
            &format!("{name}.toml"),
            &pipeline_toml(
                &name,
                &generator(10_000_000, 1, "1s", 100, i as u64),
                &spin,
                "limits = { deadline = \"10ms\", quarantine_after = 1000000000 }",
            ),
        );
        let tenant = tenant_toml(&name, &[&format!("{name}.toml")]);
        body.push_str(&match cpu {
            Some(cores) => {
                tenant.replace("pipelines = [", &format!("cpu = {cores}\npipelines = ["))
            }
            None => tenant,
        });
    }
    body.push_str(&tenant_toml("quiet", &["quiet.toml"]));
    let path = s.write("host.toml", &host_toml(&body));
    let (_cfg, host): (_, Arc<Host>) = weir::serve::start(&path).expect("host starts");

    let started = Instant::now();
    let mut samples: Vec<(Instant, u64)> = Vec::new();
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let v = host.pipelines("quiet").expect("quiet tenant").remove(0);
        samples.push((Instant::now(), v.counters.events_read));
        if v.state == PipelineState::Finished {
            break;
        }
        assert_ne!(v.state, PipelineState::Failed, "{v:?}");
        assert!(
            Instant::now() < until,
            "quiet pipeline did not finish in 120 s"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut duty = 0.0;
    for i in 0..neighbours {
        let v = host.pipelines(&format!("noisy{i}")).unwrap().remove(0);
        assert!(
            v.counters.plugin_errors > 0,
            "the neighbour never hit its deadline: {v:?}"
        );
        duty += v.counters.plugin_errors as f64 * 0.010 / elapsed / neighbours as f64;
    }
    host.shutdown();
    let at = |frac: f64| {
        let n = (QUIET_EVENTS as f64 * frac) as u64;
        *samples.iter().find(|(_, e)| *e >= n).expect("sample")
    };
    let (t0, e0) = at(0.1);
    let (t1, e1) = at(0.9);
    ((e1 - e0) as f64 / (t1 - t0).as_secs_f64(), duty)
}

/// `pipelines/demo-stocks.toml` in-process, its sinks moved to a scratch dir.
fn demo() -> f64 {
    let s = Scratch::new();
    wasm("stats");
    let mut cfg = PipelineConfig::load(&util::root().join("pipelines/demo-stocks.toml"))
        .expect("demo pipeline");
    cfg.sink = SinkConfig::File {
        path: s.path("demo.jsonl"),
        format: Default::default(),
        mode: weir::config::SinkMode::Truncate,
        sync: false,
    };
    cfg.late_sink = Some(SinkConfig::File {
        path: s.path("demo.late.jsonl"),
        format: Default::default(),
        mode: weir::config::SinkMode::Truncate,
        sync: false,
    });
    let runtime = weir::plugin::Runtime::new(false).expect("runtime");
    let spec = weir::pipeline::PipelineSpec::resolve(cfg, None).expect("spec");
    let plugin = weir::pipeline::load_plugin(&spec, &runtime).expect("plugin");
    let mut p =
        weir::pipeline::Pipeline::build(spec, plugin, Default::default()).expect("pipeline");
    let summary = p.run(false).expect("demo runs");
    summary.events_per_second
}

fn main() {
    if util::skip_unless_benchmarking() {
        return;
    }
    util::machine();
    // (spinning neighbours, their tenants' `cpu`).
    let scenarios = [(0usize, None), (1, None), (2, None), (2, Some(0.25))];
    let mut rates = vec![Vec::new(); scenarios.len()];
    let mut duties = vec![Vec::new(); scenarios.len()];
    for round in 0..ROUNDS {
        for (i, &n) in scenarios.iter().enumerate() {
            let (r, duty) = scenario(n.0, n.1);
            eprintln!(
                "round {round}: {} spinning neighbour(s), cpu {:?}: {r:.0} events/s, neighbour duty {:.0} %",
                n.0,
                n.1,
                duty * 100.0
            );
            rates[i].push(r);
            duties[i].push(duty);
        }
    }
    let alone = median(&rates[0]);
    let rows: Vec<Vec<String>> = scenarios
        .iter()
        .zip(rates.iter().zip(&duties))
        .map(|(n, (r, d))| {
            let m = median(r);
            vec![
                match n {
                    (0, _) => "alone".to_string(),
                    (1, None) => "beside 1 tenant spinning to its deadline".to_string(),
                    (n, None) => format!("beside {n} tenants spinning to their deadlines"),
                    (n, Some(c)) => format!("beside {n} such tenants, each with cpu = {c}"),
                },
                format!("{m:.0}"),
                format!("{:+.1} %", (m / alone - 1.0) * 100.0),
                if n.0 == 0 {
                    "-".to_string()
                } else {
                    format!("{:.0} %", median(d) * 100.0)
                },
                r.iter()
                    .map(|x| format!("{x:.0}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ]
        })
        .collect();
    table(
        &format!(
            "Quiet tenant's pipeline (stats, tumbling 1 s, 10 keys, {QUIET_EVENTS} generated events), events/s, median of {ROUNDS}"
        ),
        &[
            "scenario",
            "events/s",
            "vs alone",
            "neighbour CPU duty",
            "rounds",
        ],
        &rows,
    );

    let demo: Vec<f64> = (0..ROUNDS).map(|_| demo()).collect();
    table(
        "Demo pipeline (pipelines/demo-stocks.toml: 200 000 events, sliding 3 s / 1 s, stats), in-process",
        &["events/s (median)", "rounds"],
        &[vec![
            format!("{:.0}", median(&demo)),
            demo.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", "),
        ]],
    );
}
