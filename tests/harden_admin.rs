//! Hardening against hostile admin requests, deploys and plugin files: each attack runs against the real `weir serve` with two
//! tenants on 127.0.0.1, and the other tenant keeps getting exact results.
//!
//! - `admin_api_slow_and_greedy_clients`: connections over `admin.max_connections` wait and
//!   idle ones are closed after `admin.header_timeout`; headers trickled slowly are cut off
//!   after the header timeout; uploads that stall are cut off with 408 after
//!   `admin.request_timeout`; a third concurrent upload of one tenant gets 429 before its
//!   body is read, while the other tenant's deploys go through.
//! - `deploy_cost_is_bounded`: a large component of the wrong world is refused in well under
//!   a second, without compiling; an oversized one gets 413; no rejected version leaves an
//!   artifact in the disk cache; many one-byte variants keep both caches bounded.
//! - `watched_directory_refuses_before_reading`: an oversized file, files of unknown
//!   tenants/pipelines, a symlink, a hard link to a file outside the directory and a FIFO
//!   are refused unread (the host's peak RSS stays flat, nothing of the linked file reaches
//!   the tenant or the log), and a proper file is still deployed.
//! - `anonymous_requests_cannot_flood_the_log`: 1000 requests without a valid token, each
//!   with a 60 KB path, add a few kilobytes to the log, not 60 MB: values from the request
//!   are cut to 64 characters and 401s are logged 10 a second, then counted.
//! - `a_short_console_token_is_refused`: `weir run --console` refuses a console token under
//!   16 characters, from the flag or the environment, saying how to make one.
//!
//! In each, tenant `globex` runs a paced generated stream through `stats` and its rows are
//! checked exactly against the generator (`bucket`) at the end.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use support::serve::*;
use support::{Scratch, pipeline_toml};
use weir::serve::control::PipelineState;

const PARAMS: &str = "params = { field = \"price\" }";

/// The victim's stream: 12 000 events over 10 keys, paced at 3 000 events/s (about 4 s), so
/// it runs while the attacks do.
fn victim_gen() -> Gen {
    Gen {
        count: 12_000,
        keys: 10,
        interval_ms: 10,
        seed: 21,
        rate: 3_000,
    }
}

/// The attacker's own pipeline: a slow endless stream through `stats`, running for the
/// whole test (a finished pipeline refuses deploys).
fn attacker_gen() -> Gen {
    Gen {
        count: 1_000_000,
        keys: 3,
        interval_ms: 10,
        seed: 5,
        rate: 200,
    }
}

/// Writes `victim.toml` (globex) and `target.toml` (acme) and returns the `[[tenant]]`
/// tables.
fn two_tenants(s: &Scratch) -> String {
    let stats = support::wasm("stats");
    s.write(
        "victim.toml",
        &pipeline_toml("victim", &victim_gen().toml(), &stats, PARAMS),
    );
    s.write(
        "target.toml",
        &pipeline_toml("target", &attacker_gen().toml(), &stats, PARAMS),
    );
    format!(
        "{}{}",
        tenant_toml("acme", ACME, &["target.toml"]),
        tenant_toml("globex", GLOBEX, &["victim.toml"])
    )
}

/// The victim finished with exact rows and the host is healthy.
fn assert_victim_exact(serve: &mut Serve, s: &Scratch) {
    serve.wait_state(
        "globex",
        "victim",
        PipelineState::Finished,
        Duration::from_secs(120),
    );
    let expected = bucket(&victim_gen().events(), 1000);
    assert_stats_exact(&s.read_jsonl("victim.jsonl"), &expected, "victim");
    serve.assert_healthy();
}

fn connect(port: u16) -> TcpStream {
    let c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    c.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    c
}

/// Whether the server closed `c` (end of stream or a reset); a response it sends first is
/// returned as well. Waits at most `within`.
fn closed_within(c: &mut TcpStream, within: Duration) -> Option<String> {
    let until = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < until {
        match c.read(&mut buf) {
            Ok(0) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(String::from_utf8_lossy(&got).into_owned()),
        }
    }
    None
}

/// The status code of the first response in `text`, if any.
fn status_of(text: &str) -> Option<u16> {
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Starts a deploy of `declared` bytes for `tenant/pipeline` and sends `send` of them.
fn start_upload(port: u16, token: &str, tenant: &str, declared: usize, send: usize) -> TcpStream {
    let mut c = connect(port);
    write!(
        c,
        "POST /v1/tenants/{tenant}/pipelines/target/deploy HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/wasm\r\nContent-Length: {declared}\r\n\r\n"
    )
    .expect("send headers");
    let chunk = vec![0u8; 64 * 1024];
    let mut sent = 0;
    while sent < send {
        let n = chunk.len().min(send - sent);
        c.write_all(&chunk[..n]).expect("send body");
        sent += n;
    }
    c
}

// ---------------------------------------------------------------------------------------
// Hole 4: the admin API
// ---------------------------------------------------------------------------------------

#[test]
fn admin_api_slow_and_greedy_clients() {
    let _serial = serial();
    let s = Scratch::new();
    // Keys before the first table header land in [admin] (see `Serve::start`).
    let limits = "header_timeout = \"1s\"\nrequest_timeout = \"3s\"\nmax_connections = 8\nmax_uploads_per_tenant = 2\n\n";
    let mut serve = Serve::start(&s, &format!("{limits}{}", two_tenants(&s)));
    let port = serve.port;
    let stats = std::fs::read(support::wasm("stats")).unwrap();

    // Connections over the cap: 8 connections that send nothing hold every slot; a 9th
    // request waits (it is not answered while they are open), and is answered once the
    // header timeout (1 s) closes the idle ones.
    let mut idle: Vec<TcpStream> = (0..8).map(|_| connect(port)).collect();
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    let mut ninth = connect(port);
    ninth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let answer = closed_within(&mut ninth, Duration::from_secs(6))
        .expect("the 9th connection is served within 6 s");
    let waited = started.elapsed();
    assert_eq!(status_of(&answer), Some(200), "{answer}");
    assert!(
        waited >= Duration::from_millis(700),
        "over the connection cap, served after {waited:?}: not held back"
    );
    for c in &mut idle {
        assert!(
            closed_within(c, Duration::from_secs(3)).is_some(),
            "an idle connection is closed by the header timeout"
        );
    }

    // Headers trickled one line every 200 ms: cut off after the 1 s header timeout, long
    // before the 20 lines are sent.
    let mut trickle: Vec<TcpStream> = (0..4).map(|_| connect(port)).collect();
    let started = Instant::now();
    for c in &mut trickle {
        c.write_all(b"GET /v1/tenants HTTP/1.1\r\n").unwrap();
    }
    let mut cut_at: Vec<Option<Duration>> = vec![None; trickle.len()];
    for i in 0..20 {
        std::thread::sleep(Duration::from_millis(200));
        for (c, cut) in trickle.iter_mut().zip(&mut cut_at) {
            if cut.is_some() {
                continue;
            }
            let _ = c.write_all(format!("X-Slow-{i}: x\r\n").as_bytes());
            if let Some(text) = closed_within(c, Duration::from_millis(1)) {
                assert_ne!(status_of(&text), Some(200), "{text}");
                *cut = Some(started.elapsed());
            }
        }
        if cut_at.iter().all(Option::is_some) {
            break;
        }
    }
    assert!(
        cut_at
            .iter()
            .all(|t| t
                .is_some_and(|t| t >= Duration::from_millis(800) && t <= Duration::from_secs(3))),
        "trickling clients cut off at {cut_at:?}, expected about 1 s after they connected"
    );

    // Two stalled uploads of acme (8 MiB sent of 16 MiB declared) take both of its upload
    // slots; a third is refused with 429 before its body is read; globex's deploy works.
    let declared = 16 * 1024 * 1024;
    let started = Instant::now();
    let mut stalled: Vec<TcpStream> = (0..2)
        .map(|_| start_upload(port, ACME, "acme", declared, 8 * 1024 * 1024))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut third = start_upload(port, ACME, "acme", declared, 0);
    let text = closed_within(&mut third, Duration::from_secs(2)).unwrap_or_default();
    assert_eq!(status_of(&text), Some(429), "third upload: {text}");
    assert!(text.contains("too_many_uploads"), "{text}");
    assert!(text.contains("max_uploads_per_tenant"), "{text}");
    let v = serve
        .client(GLOBEX)
        .deploy("globex", "victim", stats.clone())
        .expect("globex deploys while acme's uploads stall");
    assert!(v.live, "{v:?}");

    // The stalled uploads are cut off with 408 after the 3 s request timeout.
    for c in &mut stalled {
        let text = closed_within(c, Duration::from_secs(6)).expect("a stalled upload is cut off");
        assert_eq!(status_of(&text), Some(408), "stalled upload: {text}");
    }
    let cut = started.elapsed();
    assert!(
        cut >= Duration::from_millis(2500) && cut <= Duration::from_secs(7),
        "stalled uploads cut off after {cut:?}, expected about 3 s"
    );
    // Their slots are free again: acme can deploy.
    let v = serve
        .client(ACME)
        .deploy("acme", "target", stats)
        .expect("acme deploys once its stalled uploads are gone");
    assert!(v.id.starts_with("weir-plugin-stats@"), "{v:?}");

    assert_victim_exact(&mut serve, &s);
}

// ---------------------------------------------------------------------------------------
// Hole 5: deploy cost
// ---------------------------------------------------------------------------------------

/// `component` with a custom section named `pad` of `size` bytes holding `tag`, appended
/// at the end (a custom section is valid anywhere in a component).
fn with_custom_section(component: &[u8], tag: u64, size: usize) -> Vec<u8> {
    let name = b"pad";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(&tag.to_le_bytes());
    payload.resize(payload.len().max(size), 0xAB);
    let mut out = component.to_vec();
    out.push(0);
    let mut n = payload.len();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(&payload);
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The `.cwasm` files in the cache dir, by name without the extension.
fn cached(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_suffix(".cwasm")
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
}

#[test]
fn deploy_cost_is_bounded() {
    let _serial = serial();
    let s = Scratch::new();
    // compiled_cache = 1 byte: code no pipeline keeps is evicted at once, so the in-memory
    // cache holds exactly the versions the pipelines keep. cache_dir_max = 1 byte: the disk
    // cache keeps only the artifact written last.
    let plugins = "[plugins]\ncache_dir = \"cache\"\nkeep_versions = 2\nmax_bytes = \"16MiB\"\ncompiled_cache = 1\ncache_dir_max = 1\n\n";
    let mut serve = Serve::start(&s, &format!("{plugins}{}", two_tenants(&s)));
    let cache = s.path("cache");
    let stats = std::fs::read(support::wasm("stats")).unwrap();
    assert_eq!(
        cached(&cache),
        vec![sha256_hex(&stats)],
        "start-up caches the validated stats"
    );
    let acme = serve.client(ACME);

    // A valid component of the wrong world, padded to 12 MiB: refused by reading its
    // exports, far faster than compiling it would be.
    let wrong = with_custom_section(
        &std::fs::read(support::wasm("wrong_world")).unwrap(),
        1,
        12 * 1024 * 1024,
    );
    let started = Instant::now();
    let (status, reason) = refused(acme.deploy("acme", "target", wrong.clone()));
    let took = started.elapsed();
    assert_eq!(status, 422, "{reason}");
    assert!(
        reason.contains("does not export the weir:plugin `aggregator` world"),
        "{reason}"
    );
    assert!(took < Duration::from_secs(2), "refused after {took:?}");
    eprintln!("12 MiB wrong-world component refused in {took:?}");

    // One that imports something the host lacks: refused by its imports.
    let importer = with_custom_section(&std::fs::read(support::wasm("importer")).unwrap(), 2, 1024);
    let (status, reason) = refused(acme.deploy("acme", "target", importer.clone()));
    assert_eq!(status, 422, "{reason}");
    assert!(
        reason.contains("imports something the host does not provide"),
        "{reason}"
    );

    // Over plugins.max_bytes: 413 from the declared length, before the body is read.
    let (status, reason) = refused(acme.deploy("acme", "target", vec![0u8; 16 * 1024 * 1024 + 1]));
    assert_eq!(status, 413, "{reason}");

    // A component of the right world that fails validation after compiling (ticker's
    // inputs are not in the schema): rejected, and its artifact is not cached.
    let ticker = std::fs::read(support::wasm("ticker")).unwrap();
    let (status, reason) = refused(acme.deploy("acme", "target", ticker.clone()));
    assert_eq!(status, 422, "{reason}");
    assert_eq!(
        cached(&cache),
        vec![sha256_hex(&stats)],
        "no artifact of a rejected version is written"
    );

    // Many one-byte variants of stats, deployed in a row: each is a new version.
    let n = 8;
    let mut last = Vec::new();
    for i in 0..n {
        let variant = with_custom_section(&stats, 100 + i, 0);
        let v = acme
            .deploy("acme", "target", variant.clone())
            .unwrap_or_else(|e| panic!("variant {i}: {e}"));
        assert_eq!(v.sha256, sha256_hex(&variant));
        last = variant;
    }
    // Memory: the versions kept are globex's stats and acme's last two variants (acme's
    // original stats is the same code as globex's): 3 components, nothing else.
    let text = serve.client(OPERATOR).metrics().expect("metrics");
    assert_eq!(
        metric(&text, "weir_compiled_cache_components"),
        3,
        "compiled cache holds only kept versions:\n{text}"
    );
    eprintln!(
        "after {n} variants: compiled cache {} bytes in {} components",
        metric(&text, "weir_compiled_cache_bytes"),
        metric(&text, "weir_compiled_cache_components")
    );
    // Disk: only the artifact written last remains.
    assert_eq!(cached(&cache), vec![sha256_hex(&last)]);
    for rejected in [&wrong, &importer, &ticker] {
        assert!(!cached(&cache).contains(&sha256_hex(rejected)));
    }
    // A rollback still works: the previous variant's code is kept by the pipeline.
    let back = acme.rollback("acme", "target").expect("rollback");
    assert_eq!(
        back.sha256,
        sha256_hex(&with_custom_section(&stats, 100 + n - 2, 0))
    );

    assert_victim_exact(&mut serve, &s);
}

// ---------------------------------------------------------------------------------------
// Hole 6: the watched plugin directory
// ---------------------------------------------------------------------------------------

/// A sparse file of `len` bytes: no disk used, but reading it whole would allocate `len`.
fn sparse(path: &Path, len: u64) {
    let f = std::fs::File::create(path).expect("create");
    f.set_len(len).expect("set_len");
}

#[test]
fn watched_directory_refuses_before_reading() {
    let _serial = serial();
    let s = Scratch::new();
    let dir = s.path("plugins");
    std::fs::create_dir_all(dir.join("acme")).unwrap();
    std::fs::create_dir_all(dir.join("nobody")).unwrap();
    let plugins = "[plugins]\ndir = \"plugins\"\ndebounce = \"100ms\"\nmax_bytes = \"4MiB\"\n\n";
    let mut serve = Serve::start(&s, &format!("{plugins}{}", two_tenants(&s)));
    let pid = serve.child.id();
    let before = live(&serve.view("acme", "target")).to_string();
    let peak_before = peak_rss_kib(pid);
    let big = 400 * 1024 * 1024;

    let wait_log = |what: &str, needle: &str, path: &str, serve: &Serve| {
        wait_for(what, Duration::from_secs(10), || {
            serve
                .stderr()
                .lines()
                .any(|l| l.contains(needle) && l.contains(path))
                .then_some(())
        })
    };

    // An oversized file for a real pipeline: refused from its size.
    sparse(&dir.join("acme/target.wasm"), big);
    wait_log(
        "the oversized file refused",
        "plugins.max_bytes",
        "acme/target.wasm",
        &serve,
    );
    std::fs::remove_file(dir.join("acme/target.wasm")).unwrap();

    // Files for an unknown tenant and an unknown pipeline: refused by name.
    sparse(&dir.join("nobody/target.wasm"), big);
    sparse(&dir.join("acme/ghost.wasm"), big);
    wait_log(
        "the unknown tenant refused",
        "unknown tenant or pipeline",
        "nobody/target.wasm",
        &serve,
    );
    wait_log(
        "the unknown pipeline refused",
        "unknown tenant or pipeline",
        "acme/ghost.wasm",
        &serve,
    );

    // A symlink to a perfectly good component outside the directory: refused.
    let stats = std::fs::read(support::wasm("stats")).unwrap();
    let outside = s.path("outside.wasm");
    std::fs::write(&outside, with_custom_section(&stats, 7, 0)).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("acme/target.wasm")).unwrap();
    wait_log(
        "the symlink refused",
        "is a symlink",
        "acme/target.wasm",
        &serve,
    );
    std::fs::remove_file(dir.join("acme/target.wasm")).unwrap();

    // A hard link to a file outside the directory (a secret of the host's, say): refused
    // unread, and nothing of it reaches the tenant or the log.
    let secret = s.path("secret.txt");
    std::fs::write(&secret, "SECRET-FIRST-LINE of the operator\n").unwrap();
    std::fs::hard_link(&secret, dir.join("acme/target.wasm")).unwrap();
    wait_log(
        "the hard link refused",
        "has 2 hard links",
        "acme/target.wasm",
        &serve,
    );
    std::fs::remove_file(dir.join("acme/target.wasm")).unwrap();

    // A FIFO: refused, and the watcher is not blocked opening it (see the good file below).
    let fifo = std::ffi::CString::new(dir.join("acme/target.wasm").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    wait_log(
        "the FIFO refused",
        "not a regular file",
        "acme/target.wasm",
        &serve,
    );
    std::fs::remove_file(dir.join("acme/target.wasm")).unwrap();
    let view = serve.view("acme", "target");
    assert!(
        view.last_rejected.is_none(),
        "a refused file reached the deployer: {:?}",
        view.last_rejected
    );
    assert!(
        !serve.stderr().contains("SECRET"),
        "the linked file was read"
    );

    let peak_after = peak_rss_kib(pid);
    eprintln!("serve VmHWM before the refused files: {peak_before} KiB, after: {peak_after} KiB");
    assert!(
        peak_after < peak_before + 50 * 1024,
        "peak RSS grew from {peak_before} KiB to {peak_after} KiB: a refused file was read"
    );
    assert_eq!(live(&serve.view("acme", "target")), before);

    // The watcher still works: a real file is deployed.
    let good = with_custom_section(&stats, 8, 0);
    std::fs::write(dir.join("acme/.target.tmp"), &good).unwrap();
    std::fs::rename(dir.join("acme/.target.tmp"), dir.join("acme/target.wasm")).unwrap();
    let sha = sha256_hex(&good);
    wait_for("the good file deployed", Duration::from_secs(30), || {
        let v = serve.view("acme", "target");
        v.versions
            .iter()
            .any(|x| x.live && x.sha256 == sha)
            .then_some(())
    });

    assert_victim_exact(&mut serve, &s);
}

// ---------------------------------------------------------------------------------------
// Anonymous clients and the log
// ---------------------------------------------------------------------------------------

/// One request on a connection of its own; the status of the answer.
fn request_status(port: u16, head: &str) -> Option<u16> {
    let mut c = TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    c.write_all(head.as_bytes()).ok()?;
    let mut text = String::new();
    c.read_to_string(&mut text).ok()?;
    status_of(&text)
}

#[test]
fn anonymous_requests_cannot_flood_the_log() {
    let _serial = serial();
    let s = Scratch::new();
    let mut serve = Serve::start(&s, &two_tenants(&s));
    let port = serve.port;
    // Only what is logged from now on.
    let before = serve.stderr().len();
    let (tenant, pipeline) = ("t".repeat(30_000), "p".repeat(30_000));
    let n = 1000;
    let started = Instant::now();
    for i in 0..n {
        // Without a token, and with an unknown one.
        let auth = if i % 2 == 0 {
            ""
        } else {
            "Authorization: Bearer not-a-token-of-this-host\r\n"
        };
        let head = format!(
            "POST /v1/tenants/{tenant}/pipelines/{pipeline}/pause HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(request_status(port, &head), Some(401), "request {i}");
    }
    let took = started.elapsed();
    // The count of the last second is logged when that second ends.
    std::thread::sleep(Duration::from_millis(1500));
    let log = serve.stderr();
    let added = &log[before..];
    let refused: Vec<&str> = added
        .lines()
        .filter(|l| l.contains("admin request refused") && l.contains("401"))
        .collect();
    let not_logged: u64 = added
        .lines()
        .filter_map(|l| {
            let rest = &l[l.find("not_logged=")? + "not_logged=".len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().ok()
        })
        .sum();
    eprintln!(
        "{n} anonymous requests with 60 KB paths in {took:?}: {} log bytes, {} lines of them, {not_logged} counted as not logged",
        added.len(),
        refused.len()
    );
    assert_eq!(
        refused.len() as u64 + not_logged,
        n,
        "every refusal is logged or counted:\n{added}"
    );
    let seconds = took.as_secs() + 2;
    assert!(
        refused.len() as u64 <= 10 * seconds,
        "{} refusals logged in about {seconds} s",
        refused.len()
    );
    for line in &refused {
        assert!(
            line.len() < 1024,
            "a refusal logged in {} bytes",
            line.len()
        );
        assert!(line.contains("… (30000 bytes)"), "{line}");
    }
    assert!(added.len() < 64 * 1024, "{} bytes logged", added.len());

    serve.assert_healthy();
    assert_victim_exact(&mut serve, &s);
}

// ---------------------------------------------------------------------------------------
// The console token of `weir run`
// ---------------------------------------------------------------------------------------

#[test]
fn a_short_console_token_is_refused() {
    let _serial = serial();
    let s = Scratch::new();
    let short = Gen {
        count: 200,
        rate: 0,
        ..attacker_gen()
    };
    let path = s.write(
        "solo.toml",
        &pipeline_toml("solo", &short.toml(), &support::wasm("stats"), PARAMS),
    );
    let run = |flag: Option<&str>, env: Option<&str>| {
        let mut cmd = support::weir();
        cmd.args(["run", "--console", "127.0.0.1:0"]);
        if let Some(t) = flag {
            cmd.args(["--console-token", t]);
        }
        cmd.env_remove("WEIR_CONSOLE_TOKEN");
        if let Some(t) = env {
            cmd.env("WEIR_CONSOLE_TOKEN", t);
        }
        support::outcome(cmd.arg(&path).output().expect("weir run"))
    };
    for (flag, env) in [
        (Some("x"), None),
        (Some("fifteen-chars-x"), None),
        (None, Some("y")),
    ] {
        let (ok, _, stderr) = run(flag, env);
        assert!(!ok, "{flag:?} {env:?} taken:\n{stderr}");
        assert!(
            stderr.contains("--console-token (or WEIR_CONSOLE_TOKEN) is")
                && stderr.contains("at least 16")
                && stderr.contains("openssl rand -hex 24"),
            "{stderr}"
        );
        assert!(
            !s.path("solo.jsonl").exists(),
            "the pipeline ran before the refusal"
        );
    }
    let (ok, _, stderr) = run(Some("sixteen-chars-xx"), None);
    assert!(ok, "a 16-character token is taken:\n{stderr}");
}
