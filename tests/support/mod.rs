//! Shared helpers for the integration tests: the real `weir` binary, the plugins built as
//! wasm32-wasip2 components, and temporary pipelines.
#![allow(dead_code)]

pub mod kafka;
pub mod kill;
pub mod postgres;
pub mod serve;
pub mod tenant;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The workspace root.
/// A test that needs something the machine may lack (a browser, a broker, a database,
/// Docker): under `CI=true` a missing one fails the test with the reason; elsewhere the
/// test prints one line naming itself, the reason and how to enable it, and is skipped.
/// True when the test may go on.
pub fn required(test: &str, what: Result<(), String>, enable: &str) -> bool {
    let Err(why) = what else {
        return true;
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {why} (CI=true: a test never passes without running; {enable})");
    }
    eprintln!("SKIPPED {test}: {why}; {enable}");
    false
}

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// Every plugin crate the tests use, by package name.
const PLUGIN_PACKAGES: &[&str] = &[
    "weir-plugin-stats",
    "weir-plugin-stats-incremental",
    "weir-plugin-fare-totals",
    "weir-plugin-fare-totals-incremental",
    "weir-plugin-hotspot",
    "weir-plugin-ticker",
    "weir-plugin-vwap",
    "weir-test-spin",
    "weir-test-hog",
    "weir-test-panicky",
    "weir-test-huge",
    "weir-test-importer",
    "weir-test-wrong-world",
    "weir-test-shouty",
    "weir-test-legacy",
    "weir-test-skewed",
];

/// Path of a plugin component (`stats`, `fare_totals`, `spin`, …), building every plugin for
/// wasm32-wasip2 once per test binary (cargo makes concurrent builds wait for each other).
pub fn wasm(lib_name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(root()).args([
            "build",
            "--quiet",
            "--profile",
            "plugin",
            "--target",
            "wasm32-wasip2",
        ]);
        for p in PLUGIN_PACKAGES {
            cmd.args(["-p", p]);
        }
        let status = cmd.status().expect("cargo runs");
        assert!(
            status.success(),
            "building the plugins for wasm32-wasip2 failed"
        );
    });
    let path = root()
        .join("target/wasm32-wasip2/plugin")
        .join(format!("{lib_name}.wasm"));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// The `weir` binary under test.
pub fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

/// Runs `weir` with `args`, returning its output.
pub fn run_weir(args: &[&str]) -> Output {
    weir().args(args).output().expect("weir runs")
}

/// A temporary directory holding one pipeline file and its outputs.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a file into the scratch dir and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).expect("write scratch file");
        p
    }

    /// Reads a JSON-lines output file into JSON objects.
    pub fn read_jsonl(&self, name: &str) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.path(name)).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
            .collect()
    }
}

/// A finished command's (success, stdout, stderr).
pub fn outcome(out: Output) -> (bool, String, String) {
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a pipeline file and returns (success, stdout, stderr).
pub fn run_pipeline(path: &Path) -> (bool, String, String) {
    outcome(
        weir()
            .args(["run", "--json-summary", "--no-progress"])
            .arg(path)
            .output()
            .expect("weir runs"),
    )
}

/// Writes `count` stock ticks of `keys` symbols, 5 ms apart, to `name` in the scratch dir
/// (`weir gen stocks`) and returns its path.
pub fn gen_ticks(s: &Scratch, name: &str, count: u32, keys: u32) -> PathBuf {
    let path = s.path(name);
    let out = run_weir(&[
        "gen",
        "stocks",
        "--count",
        &count.to_string(),
        "--keys",
        &keys.to_string(),
        "--interval",
        "5ms",
        "--out",
        &path.to_string_lossy(),
    ]);
    assert!(
        out.status.success(),
        "weir gen failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// Writes `file` in the scratch dir with one stock tick (price 1.5, volume 3) per
/// `(rfc3339 ts, symbol)` and returns a `[source]` table reading it.
pub fn tick_file_source(s: &Scratch, file: &str, ticks: &[(&str, &str)]) -> String {
    let data: String = ticks
        .iter()
        .map(|(ts, sym)| {
            format!("{{\"ts\":\"{ts}\",\"symbol\":\"{sym}\",\"price\":1.5,\"volume\":3}}\n")
        })
        .collect();
    let path = s.write(file, &data);
    format!("[source]\nkind = \"file\"\npath = \"{}\"\n", path.display())
}

/// The JSON summary `weir run --json-summary` prints as the last stderr line.
pub fn summary(stderr: &str) -> serde_json::Value {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON summary in stderr:\n{stderr}"));
    serde_json::from_str(line).expect("summary is JSON")
}

/// A pipeline file body: stock ticks from `source`, keyed by symbol, tumbling 1 s windows,
/// results to `<name>.jsonl` and errors to `<name>.errors.jsonl` beside the file.
pub fn pipeline_toml(name: &str, source: &str, plugin: &Path, plugin_extra: &str) -> String {
    pipeline_toml_to(
        name,
        source,
        plugin,
        plugin_extra,
        &format!(
            "kind = \"file\"\npath = \"{name}.jsonl\"\n\n[error_sink]\nkind = \"file\"\npath = \"{name}.errors.jsonl\""
        ),
    )
}

/// [`pipeline_toml`] with `sink` as the keys of its `[sink]` table (and any tables after).
pub fn pipeline_toml_to(
    name: &str,
    source: &str,
    plugin: &Path,
    plugin_extra: &str,
    sink: &str,
) -> String {
    format!(
        r#"name = "{name}"
{source}
[schema]
timestamp = {{ field = "ts", format = "rfc3339" }}
key = ["symbol"]
fields = {{ symbol = "string", price = "f64", volume = "i64" }}

[window]
kind = "tumbling"
size = "1s"

[plugin]
path = "{plugin}"
{plugin_extra}

[sink]
{sink}
"#,
        plugin = plugin.display()
    )
}

/// Runs `weir run` with `args(run)` (run counts from 1) again and again, each run killed
/// with SIGKILL at a moment chosen from its progress: once it wrote rows (`progress`, e.g.
/// the output file's length, grew past what the runs before left) and then wrote
/// `checkpoint` anew, `delay(k)` ms later for the k-th pseudo-random number of a fixed
/// sequence from `seed`; until `kills` runs were killed before their end, at most
/// `max_runs` runs. Every killed run wrote rows before it was killed.
pub fn kill_after_checkpoints(
    checkpoint: &Path,
    args: impl Fn(u32) -> Vec<String>,
    progress: impl Fn() -> u64,
    kills: u32,
    max_runs: u32,
    mut seed: u64,
    delay: impl Fn(u64) -> u64,
) {
    use std::time::{Duration, Instant};
    let modified = || {
        std::fs::metadata(checkpoint)
            .and_then(|m| m.modified())
            .ok()
    };
    let (mut killed, mut runs) = (0, 0);
    while killed < kills {
        runs += 1;
        assert!(
            runs <= max_runs,
            "only {killed} runs were killed before the input ended"
        );
        let before = progress();
        let mut child = weir()
            .args(args(runs))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("weir run starts");
        let deadline = Instant::now() + Duration::from_secs(60);
        // Rows written by this run, then a checkpoint after them.
        let mut seen: Option<Option<std::time::SystemTime>> = None;
        while child.try_wait().expect("wait").is_none() {
            assert!(
                Instant::now() < deadline,
                "no rows and checkpoint within 60 s"
            );
            match seen {
                None if progress() > before => seen = Some(modified()),
                Some(at) if modified() != at => break,
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(delay(seed >> 33)));
        if child.try_wait().expect("wait").is_none() {
            child.kill().expect("SIGKILL");
            killed += 1;
            assert!(
                progress() > before,
                "run {runs} was killed before it wrote a row"
            );
        }
        child.wait().expect("reaped");
    }
    eprintln!("{killed} of {runs} runs killed before the input ended");
}

/// The length of the file at `path`, 0 when there is none: the progress of a run writing it.
pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Every metric name the Grafana dashboard (`grafana/weir.json`) queries.
pub fn dashboard_metrics() -> std::collections::BTreeSet<String> {
    fn queries(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("expr" | "query", serde_json::Value::String(q)) => out.push(q.clone()),
                        _ => queries(v, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| queries(v, out)),
            _ => {}
        }
    }
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("grafana/weir.json")).expect("dashboard"),
    )
    .expect("dashboard is JSON");
    let mut exprs = Vec::new();
    queries(&dashboard, &mut exprs);
    let name = regex::Regex::new(r"weir_[a-z0-9_]+").expect("regex");
    exprs
        .iter()
        .flat_map(|q| name.find_iter(q).map(|m| m.as_str().to_string()))
        .collect()
}
