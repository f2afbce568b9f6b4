//! The `weir serve` harness shared by the integration tests: a real `weir serve` on a free
//! loopback port (killed when dropped), generated inputs and the expectations worked out from
//! them (the generator with the same seed, bucketed by key and epoch-aligned window), never
//! copied from output.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use weir::admin::{Client, ClientError};
use weir::config::{Format, GeneratorConfig, Millis, Workload};
use weir::serve::control::{PipelineState, PipelineView};

use super::Scratch;

pub const OPERATOR: &str = "operator-token-5b1e0c7d9a";
pub const ACME: &str = "acme-token-7c2f91d04e63";
pub const GLOBEX: &str = "globex-token-e83a55b0c19d";
/// Default first event time of the generator: 2024-01-22T00:00:00Z.
pub const GEN_START_MS: i64 = 1_705_881_600_000;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// The tests measure wall time and deadlines on 2 shared cores: run them one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// A free loopback port, asked of the OS.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// One plain HTTP/1.1 GET on loopback; `(status, body)`, or `None` if nothing answered.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    get(port, path, "")
}

/// [`http_get`] with `Authorization: Bearer token`; `(status, body)`, `(0, "")` if nothing
/// answered.
pub fn http_get_as(port: u16, path: &str, token: &str) -> (u16, String) {
    get(port, path, &format!("Authorization: Bearer {token}\r\n")).unwrap_or_default()
}

fn get(port: u16, path: &str, headers: &str) -> Option<(u16, String)> {
    let mut s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// The rows a `weir run --metrics-addr 127.0.0.1:port` wrote so far
/// (`weir_rows_written_total`), 0 before its endpoint answers: the progress a kill test
/// waits for.
pub fn rows_written(port: u16) -> u64 {
    http_get(port, "/metrics")
        .and_then(|(_, body)| {
            body.lines()
                .filter(|l| l.starts_with("weir_rows_written_total{"))
                .find_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        })
        .map_or(0, |v| v as u64)
}

/// Polls `f` every 20 ms until it returns `Some`, failing after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < until,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `weir serve`, killed (and reaped) when dropped.
pub struct Serve {
    pub child: Child,
    pub port: u16,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Serve {
    /// Writes `<scratch>/host.toml` (an `[admin]` table on a free port, then `body`) and
    /// starts `weir serve` on it; returns once `/healthz` answers. Retries on another port
    /// if the one picked was taken in between.
    pub fn start(scratch: &Scratch, body: &str) -> Serve {
        for attempt in 0..3 {
            let port = free_port();
            scratch.write(
                "host.toml",
                &format!("[admin]\nlisten = \"127.0.0.1:{port}\"\noperator_token = \"{OPERATOR}\"\n\n{body}"),
            );
            match Serve::spawn(scratch, port, "serve") {
                Ok(serve) => return serve,
                Err(err) if err.contains("binding the admin API") && attempt < 2 => {}
                Err(err) => panic!("{err}"),
            }
        }
        unreachable!("three attempts")
    }

    /// Starts `weir serve` again on `<scratch>/host.toml` as it is (same port, same state
    /// directory) once this one is gone, its output in `serve.<run>.stdout` and
    /// `serve.<run>.stderr`; returns once `/healthz` answers.
    pub fn restart(self, scratch: &Scratch, run: u32) -> Serve {
        let port = self.port;
        drop(self);
        Serve::spawn(scratch, port, &format!("serve.{run}")).unwrap_or_else(|err| panic!("{err}"))
    }

    /// Starts `weir serve` on `<scratch>/host.toml`, listening on `port`, its output in
    /// `<name>.stdout` and `<name>.stderr`, and waits (120 s at most) until `/healthz`
    /// answers; the error says why it did not, with its stderr.
    fn spawn(scratch: &Scratch, port: u16, name: &str) -> Result<Serve, String> {
        let (stdout, stderr) = (
            scratch.path(&format!("{name}.stdout")),
            scratch.path(&format!("{name}.stderr")),
        );
        let child = super::weir()
            .arg("serve")
            .arg(scratch.path("host.toml"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("weir serve starts");
        let mut serve = Serve {
            child,
            port,
            stdout,
            stderr,
        };
        let until = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = serve.child.try_wait().expect("try_wait") {
                return Err(format!(
                    "weir serve exited ({status}) before answering:\n{}",
                    serve.stderr()
                ));
            }
            if matches!(http_get(port, "/healthz"), Some((200, _))) {
                return Ok(serve);
            }
            assert!(
                Instant::now() < until,
                "weir serve did not answer within 120 s:\n{}",
                serve.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn client(&self, token: &str) -> Client {
        Client::new(self.url(), token)
    }

    /// One pipeline, as the operator sees it.
    pub fn view(&self, tenant: &str, pipeline: &str) -> PipelineView {
        self.client(OPERATOR)
            .pipelines(tenant)
            .expect("operator lists pipelines")
            .into_iter()
            .find(|p| p.name == pipeline)
            .unwrap_or_else(|| panic!("no pipeline {tenant}/{pipeline}"))
    }

    /// Waits until the pipeline reaches `state`.
    pub fn wait_state(
        &self,
        tenant: &str,
        pipeline: &str,
        state: PipelineState,
        timeout: Duration,
    ) -> PipelineView {
        wait_for(
            &format!("{tenant}/{pipeline} to be {state:?}"),
            timeout,
            || {
                let v = self.view(tenant, pipeline);
                assert_ne!(
                    v.state,
                    PipelineState::Failed,
                    "{tenant}/{pipeline} failed: {:?}",
                    v.reason
                );
                (v.state == state).then_some(v)
            },
        )
    }

    /// The process is alive and `/healthz` answers `ok`.
    pub fn assert_healthy(&mut self) {
        assert!(
            self.child.try_wait().expect("try_wait").is_none(),
            "weir serve died:\n{}",
            self.stderr()
        );
        let (status, body) = http_get(self.port, "/healthz").expect("healthz answers");
        assert_eq!(status, 200, "{body}");
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// `weir plugin deploy --tenant T --pipeline P WASM` as `token`: (success, stdout, stderr).
    pub fn deploy_cli(
        &self,
        token: &str,
        tenant: &str,
        pipeline: &str,
        wasm: &std::path::Path,
    ) -> (bool, String, String) {
        let wasm = wasm.to_str().expect("UTF-8 path");
        self.cli(
            token,
            &["deploy", "--tenant", tenant, "--pipeline", pipeline, wasm],
        )
    }

    /// `weir plugin <args> --url <this host> --token <token>`: (success, stdout, stderr).
    pub fn cli(&self, token: &str, args: &[&str]) -> (bool, String, String) {
        let out = super::weir()
            .arg("plugin")
            .args(args)
            .args(["--url", &self.url(), "--token", token])
            .env_remove("WEIR_URL")
            .env_remove("WEIR_TOKEN")
            .output()
            .expect("weir plugin runs");
        super::outcome(out)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A generated stocks source: `[source]` TOML and the same config for the expectation.
#[derive(Clone, Copy)]
pub struct Gen {
    pub count: u64,
    pub keys: u32,
    pub interval_ms: i64,
    pub seed: u64,
    pub rate: u64,
}

impl Gen {
    pub fn toml(&self) -> String {
        format!(
            "[source]\nkind = \"generator\"\nworkload = \"stocks\"\ncount = {}\nkeys = {}\ninterval = \"{}ms\"\nseed = {}\nrate = {}\n",
            self.count, self.keys, self.interval_ms, self.seed, self.rate
        )
    }

    /// Every generated event as `(ts ms, symbol, price)`, in order.
    pub fn events(&self) -> Vec<(i64, String, f64)> {
        let cfg = GeneratorConfig {
            workload: Workload::Stocks,
            count: self.count,
            rate: 0,
            keys: self.keys,
            interval: Millis(self.interval_ms),
            jitter: Millis(0),
            seed: self.seed,
            start: None,
            format: Format::Jsonl,
        };
        let mut g = weir::source::Generator::new(&cfg).expect("generator config");
        let mut out = Vec::with_capacity(self.count as usize);
        let mut line = String::new();
        while {
            line.clear();
            g.next_record(&mut line)
        } {
            let v: Json = serde_json::from_str(&line).expect("generated JSON");
            out.push((
                ts_ms(v["ts"].as_str().expect("ts")),
                v["symbol"].as_str().expect("symbol").to_string(),
                v["price"].as_f64().expect("price"),
            ));
        }
        out
    }
}

pub fn ts_ms(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("bad timestamp {s:?}: {e}"))
        .timestamp_millis()
}

/// What `stats` should say about one key's window, worked out here.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    pub count: i64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

/// Events bucketed by (symbol, start of the epoch-aligned window of `size` ms).
pub fn bucket(events: &[(i64, String, f64)], size: i64) -> BTreeMap<(String, i64), Bucket> {
    let mut out: BTreeMap<(String, i64), Bucket> = BTreeMap::new();
    for (ts, sym, price) in events {
        let start = ts - ts.rem_euclid(size);
        let b = out.entry((sym.clone(), start)).or_insert(Bucket {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        });
        b.count += 1;
        b.sum += price;
        b.min = b.min.min(*price);
        b.max = b.max.max(*price);
    }
    out
}

/// A `[[tenant]]` table.
pub fn tenant_toml(name: &str, token: &str, pipelines: &[&str]) -> String {
    let list: Vec<String> = pipelines.iter().map(|p| format!("\"{p}\"")).collect();
    format!(
        "[[tenant]]\nname = \"{name}\"\ntoken = \"{token}\"\npipelines = [{}]\n\n",
        list.join(", ")
    )
}

/// Checks `stats` rows against the expectation: every (key, window) exactly once, with the
/// right count, sum, min and max.
pub fn assert_stats_exact(rows: &[Json], expected: &BTreeMap<(String, i64), Bucket>, what: &str) {
    let mut seen = BTreeMap::new();
    for r in rows {
        let key = (
            r["symbol"].as_str().expect("symbol").to_string(),
            ts_ms(r["window_start"].as_str().expect("window_start")),
        );
        assert_eq!(
            ts_ms(r["window_end"].as_str().expect("window_end")) - key.1,
            1000,
            "{what}: window bounds of {r}"
        );
        let want = expected
            .get(&key)
            .unwrap_or_else(|| panic!("{what}: row for a window with no events: {r}"));
        assert_eq!(
            r["count"].as_i64(),
            Some(want.count),
            "{what}: count of {r}"
        );
        let sum = r["sum"].as_f64().expect("sum");
        assert!(
            (sum - want.sum).abs() <= 1e-9 * want.sum.abs().max(1.0),
            "{what}: sum {sum} != {} in {r}",
            want.sum
        );
        assert_eq!(r["min"].as_f64(), Some(want.min), "{what}: min of {r}");
        assert_eq!(r["max"].as_f64(), Some(want.max), "{what}: max of {r}");
        assert!(
            seen.insert(key.clone(), ()).is_none(),
            "{what}: window {key:?} twice"
        );
    }
    assert_eq!(
        seen.len(),
        expected.len(),
        "{what}: {} windows expected, {} written",
        expected.len(),
        seen.len()
    );
}

pub fn refused(r: Result<impl std::fmt::Debug, ClientError>) -> (u16, String) {
    match r {
        Err(e) => (
            e.status().unwrap_or_else(|| panic!("no HTTP status: {e}")),
            e.reason().unwrap_or("").to_string(),
        ),
        Ok(v) => panic!("expected a refusal, got {v:?}"),
    }
}

pub fn live(v: &PipelineView) -> &str {
    &v.versions
        .iter()
        .find(|v| v.live)
        .expect("a live version")
        .id
}

/// Deterministic junk (xorshift), not a wasm module.
pub fn random_bytes(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

/// Peak resident memory of a process (`VmHWM` in `/proc/<pid>/status`), KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}
