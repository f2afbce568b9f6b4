//! The console cannot be used to fill the host's memory, against a real `weir serve`:
//!
//! - A tenant's pipelines whose rows carry 128 KiB keys (and whose input has 128 KiB
//!   malformed lines, kept as dead letters): what the console keeps of each pipeline is
//!   bounded by bytes (`[console] keep_bytes`, `keep_error_bytes`), all of one tenant's
//!   pipelines together by `keep_bytes_per_tenant`, each kept row by `max_row_bytes` (its
//!   key cut, with a marker giving the key's length), and each activity response by about
//!   a megabyte of records, its `next` going on from the last record it returned.
//! - Eight clients polling `/activity` as fast as they can grow the host's resident memory
//!   by a few megabytes, not by the size of everything kept times eight.
//! - A tenant has at most four activity requests served at once: a fifth, while four
//!   clients do not read their responses, gets 429 `too_many_requests`; the operator is
//!   counted apart; the slots come back when those clients go away.
//!
//! Expected sizes come from the config: 16 KiB a row, 1 MiB of rows and 256 KiB of errors
//! per pipeline, 1.5 MiB for the tenant, 1 MiB per response.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use support::Scratch;
use support::serve::*;
use weir::serve::control::PipelineState;

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
/// Bytes of each event's key (the symbol), past its 5-character prefix `0042-`.
const KEY_BYTES: usize = 128 * KIB;
/// `[console] max_row_bytes`, `keep_bytes`, `keep_error_bytes` (their defaults) and
/// `keep_bytes_per_tenant` (set below), and the records of one response.
const ROW_CAP: usize = 16 * KIB;
const KEEP_ROWS: usize = MIB;
const KEEP_ERRORS: usize = 256 * KIB;
const TENANT: usize = 1536 * KIB;
const RESPONSE: usize = MIB;

/// Writes `rows` events, one per 1 s window, each keyed by a `KEY_BYTES` symbol, and after
/// every tenth a malformed line of `KEY_BYTES`; returns the file.
fn wide_input(s: &Scratch, name: &str, rows: usize) -> std::path::PathBuf {
    let path = s.path(name);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("input"));
    let pad = "k".repeat(KEY_BYTES);
    let junk = "j".repeat(KEY_BYTES);
    for i in 0..rows {
        let ts = chrono::DateTime::from_timestamp_millis(GEN_START_MS + i as i64 * 1000)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        writeln!(
            out,
            "{{\"ts\":\"{ts}\",\"symbol\":\"{i:04}-{pad}\",\"price\":1.5,\"volume\":3}}"
        )
        .unwrap();
        if i % 10 == 9 {
            writeln!(out, "not json {junk}").unwrap();
        }
    }
    out.flush().unwrap();
    path
}

/// A pipeline file running `stats` over `input`, with its dead letters to a file.
fn wide_pipeline(s: &Scratch, name: &str, input: &std::path::Path) {
    s.write(
        &format!("{name}.toml"),
        &support::pipeline_toml_to(
            name,
            &format!("[source]\nkind = \"file\"\npath = \"{}\"\n", input.display()),
            &support::wasm("stats"),
            "params = { field = \"price\" }",
            &format!(
                "kind = \"file\"\npath = \"{name}.jsonl\"\n\n[dead_letter]\nkind = \"file\"\npath = \"{name}.dead.jsonl\""
            ),
        ),
    );
}

/// One GET with a bearer token: (status, body).
fn get(port: u16, path: &str, token: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = Vec::new();
    s.read_to_end(&mut text).expect("response");
    let text = String::from_utf8_lossy(&text).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

fn activity_path(pipeline: &str, since: &str) -> String {
    format!("/v1/tenants/acme/pipelines/{pipeline}/activity{since}")
}

fn json_len(v: &Json) -> usize {
    serde_json::to_string(v).unwrap().len()
}

/// The resident memory of a process (`VmRSS`), bytes.
fn rss(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * KIB
}

/// Everything a pipeline's console keeps, read a page at a time from its oldest records
/// on: (rows, error records), each checked against the response budget on the way.
fn read_all(serve: &Serve, pipeline: &str) -> (Vec<Json>, Vec<Json>) {
    let (mut rows, mut errors) = (Vec::new(), Vec::new());
    let mut since = String::new();
    for page in 0.. {
        assert!(page < 100, "{pipeline}: the pages never end");
        let (status, body) = get(serve.port, &activity_path(pipeline, &since), ACME);
        assert_eq!(status, 200, "{body}");
        let a: Json = serde_json::from_str(&body).expect("activity JSON");
        let (r, e) = (&a["rows"], &a["errors"]);
        let records = json_len(r) + json_len(e);
        assert!(
            records <= RESPONSE,
            "{pipeline}: a response carried {records} bytes of records"
        );
        assert!(
            json_len(e) <= RESPONSE / 4 + 2,
            "{pipeline}: {}",
            json_len(e)
        );
        let (r, e) = (r.as_array().unwrap(), e.as_array().unwrap());
        // `next` goes on from the last record returned.
        if let Some(last) = r.last() {
            assert_eq!(a["next"]["row"], last["seq"], "{pipeline}");
        }
        if let Some(last) = e.last() {
            assert_eq!(a["next"]["error"], last["seq"], "{pipeline}");
        }
        if r.is_empty() && e.is_empty() {
            return (rows, errors);
        }
        rows.extend(r.iter().cloned());
        errors.extend(e.iter().cloned());
        since = format!(
            "?row={}&error={}",
            a["next"]["row"].as_u64().unwrap(),
            a["next"]["error"].as_u64().unwrap()
        );
    }
    unreachable!()
}

/// Sequence numbers that follow one another and end at `last`.
fn assert_newest(records: &[Json], last: u64, what: &str) {
    let seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    let first = last + 1 - seqs.len() as u64;
    assert_eq!(seqs, (first..=last).collect::<Vec<_>>(), "{what}");
}

#[test]
fn what_the_console_keeps_and_returns_is_bounded_by_bytes_under_concurrent_reads() {
    let _serial = serial();
    let s = Scratch::new();
    // 300 rows (and 30 dead letters) of about 128 KiB per pipeline: 39 MiB each, 78 MiB
    // for the tenant, where the console may keep 1.5 MiB.
    let rows = 300;
    let input = wide_input(&s, "wide.jsonl", rows);
    wide_pipeline(&s, "wide_a", &input);
    wide_pipeline(&s, "wide_b", &input);
    let mut serve = Serve::start(
        &s,
        &format!(
            "[console]\nkeep_bytes_per_tenant = \"1536KiB\"\n\n{}",
            tenant_toml("acme", ACME, &["wide_a.toml", "wide_b.toml"])
        ),
    );
    for p in ["wide_a", "wide_b"] {
        serve.wait_state("acme", p, PipelineState::Finished, Duration::from_secs(180));
    }
    // The sinks got every row whole.
    let written = s.read_jsonl("wide_a.jsonl");
    assert_eq!(written.len(), rows);
    assert_eq!(
        written[0]["symbol"].as_str().unwrap().len(),
        5 + KEY_BYTES,
        "the sink's row is not cut"
    );

    let mut tenant_total = 0;
    for p in ["wide_a", "wide_b"] {
        let (kept, errors) = read_all(&serve, p);
        let (rows_json, errors_json) = (
            kept.iter().map(json_len).sum::<usize>(),
            errors.iter().map(json_len).sum::<usize>(),
        );
        eprintln!(
            "{p}: {} rows ({rows_json} bytes), {} error records ({errors_json} bytes) kept",
            kept.len(),
            errors.len()
        );
        // Bounded by bytes, well below the count (1000).
        assert!(!kept.is_empty() && kept.len() < rows, "{p}: {}", kept.len());
        assert!(rows_json <= KEEP_ROWS, "{p}: {rows_json} bytes of rows");
        assert!(
            errors_json <= KEEP_ERRORS,
            "{p}: {errors_json} bytes of errors"
        );
        // The newest rows, each cut to the cap with its key's length.
        assert_newest(&kept, rows as u64, p);
        for r in &kept {
            assert!(json_len(r) <= ROW_CAP, "{p}: a kept row of {}", json_len(r));
            let symbol = r["fields"]["symbol"].as_str().unwrap();
            let seq = r["seq"].as_u64().unwrap();
            assert!(symbol.starts_with(&format!("{:04}-kkk", seq - 1)), "{p}");
            assert!(
                symbol.ends_with(&format!("…({} bytes)", 5 + KEY_BYTES)),
                "{p}: {}",
                &symbol[symbol.len() - 40..]
            );
            assert_eq!(r["fields"]["count"], 1, "{p}: the numbers are whole");
        }
        for e in &errors {
            assert_eq!(e["kind"], "dead_letter");
            assert!(
                json_len(e) <= ROW_CAP,
                "{p}: a kept dead letter of {}",
                json_len(e)
            );
        }
        tenant_total += rows_json + errors_json;
    }
    assert!(
        tenant_total <= TENANT,
        "the tenant's pipelines keep {tenant_total} bytes together"
    );

    // Eight clients poll everything kept, as fast as they can, for five seconds.
    let pid = serve.child.id();
    let before = rss(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(before as u64));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss(pid) as u64, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let statuses = Arc::new(Mutex::new(std::collections::BTreeMap::<u16, usize>::new()));
    let until = Instant::now() + Duration::from_secs(5);
    let port = serve.port;
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let statuses = statuses.clone();
            std::thread::spawn(move || {
                let p = if i % 2 == 0 { "wide_a" } else { "wide_b" };
                while Instant::now() < until {
                    let (status, body) = get(port, &activity_path(p, ""), ACME);
                    assert!(status == 200 || status == 429, "{status}: {body}");
                    if status == 429 {
                        assert!(body.contains("too_many_requests"), "{body}");
                    }
                    *statuses.lock().unwrap().entry(status).or_default() += 1;
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client");
    }
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let peak = peak.load(Ordering::Relaxed) as usize;
    let statuses = statuses.lock().unwrap().clone();
    eprintln!(
        "host RSS {} MiB before the polls, at most {} MiB during them; answers {statuses:?}",
        before / MIB,
        peak / MIB
    );
    assert!(statuses.get(&200).copied().unwrap_or(0) > 0);
    // Four requests at once build at most about 2 MiB each (records, then their JSON).
    assert!(
        peak - before <= 48 * MIB,
        "the host grew by {} MiB under eight polling clients",
        (peak - before) / MIB
    );
    serve.assert_healthy();
}

/// A connection that sends `GET path` and then reads nothing, with a tiny receive window
/// and segment size, so that the host cannot hand it a large response at once: the
/// request stays in flight until the connection is dropped.
fn unread_request(port: u16, path: &str, token: &str) -> TcpStream {
    use std::os::fd::FromRawFd;

    fn set(fd: libc::c_int, level: libc::c_int, name: libc::c_int, value: libc::c_int) {
        // SAFETY: `value` outlives the call, which reads `size_of::<c_int>()` bytes of it.
        let r = unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                (&raw const value).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0, "setsockopt {name}");
    }

    // SAFETY: a plain socket call; the descriptor is checked and owned by the stream below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket");
    set(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, 4096);
    set(fd, libc::IPPROTO_TCP, libc::TCP_MAXSEG, 536);
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `addr` is a valid `sockaddr_in` of the length given.
    let r = unsafe {
        libc::connect(
            fd,
            (&raw const addr).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "connect: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` is a connected socket nothing else owns.
    let mut s = unsafe { TcpStream::from_raw_fd(fd) };
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    s
}

#[test]
fn a_tenants_fifth_activity_request_at_once_is_refused() {
    let _serial = serial();
    let s = Scratch::new();
    // 100 rows of 128 KiB keys: the ring keeps about 1 MiB of them, cut, so that each
    // response carries about 1 MiB.
    let input = wide_input(&s, "wide.jsonl", 100);
    wide_pipeline(&s, "wide_a", &input);
    let serve = Serve::start(&s, &tenant_toml("acme", ACME, &["wide_a.toml"]));
    serve.wait_state(
        "acme",
        "wide_a",
        PipelineState::Finished,
        Duration::from_secs(120),
    );
    let path = activity_path("wide_a", "");
    let (status, body) = get(serve.port, &path, ACME);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.len() > RESPONSE / 2,
        "a response of {} bytes",
        body.len()
    );

    let mut unread: Vec<TcpStream> = (0..4)
        .map(|_| unread_request(serve.port, &path, ACME))
        .collect();
    // Each of the four was given a slot: its answer began with 200 (a few bytes read of a
    // megabyte).
    for s in &mut unread {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut status = [0u8; 12];
        s.read_exact(&mut status).expect("a status line");
        assert_eq!(&status, b"HTTP/1.1 200");
    }
    let (status, refused) = get(serve.port, &path, ACME);
    assert_eq!(status, 429, "{refused}");
    let error: Json = serde_json::from_str(&refused).expect("an error body");
    assert_eq!(error["error"], "too_many_requests");
    assert!(
        error["reason"].as_str().unwrap().contains("at most 4"),
        "{error}"
    );
    // Still refused a second later: the four hold their slots while they do not read on.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(get(serve.port, &path, ACME).0, 429);
    // The operator is counted apart.
    assert_eq!(get(serve.port, &path, OPERATOR).0, 200);
    // The slots come back once those clients go away.
    drop(unread);
    wait_for(
        "an activity request to be served again",
        Duration::from_secs(10),
        || (get(serve.port, &path, ACME).0 == 200).then_some(()),
    );
}
