//! Local checkpoints (`[checkpoint]`): a run of a file source into file sinks, killed with
//! SIGKILL again and again and restarted each time, leaves the very bytes an uninterrupted
//! run writes; a checkpoint written for another pipeline is refused with what changed, and
//! the operator can discard it.

mod support;

use std::path::Path;

use support::{Scratch, run_weir, wasm};

/// Stock ticks from `in.csv` (CSV with a header, so a resumed run must read the header of
/// the file it resumes in), tumbling 1 s windows with 200 ms of allowed lateness (late
/// re-firings carry revisions), `stats` on `price`; results, late events and dead letters
/// to files; a checkpoint every 100 ms when `checkpoint` is true.
fn pipeline(window: &str, checkpoint: bool) -> String {
    let mut p = format!(
        r#"name = "ck"
[source]
kind = "file"
path = "in.csv"
format = "csv"
[schema]
timestamp = {{ field = "ts", format = "rfc3339" }}
key = ["symbol"]
fields = {{ symbol = "string", price = "f64", volume = "i64" }}
[window]
{window}
allowed_lateness = "200ms"
[watermark]
delay = "100ms"
[plugin]
path = "{plugin}"
params = {{ field = "price" }}
[sink]
kind = "file"
path = "out.jsonl"
[late_sink]
kind = "file"
path = "late.jsonl"
[dead_letter]
kind = "file"
path = "dead.jsonl"
"#,
        plugin = wasm("stats").display()
    );
    if checkpoint {
        p.push_str("[checkpoint]\ndir = \"state\"\nevery = \"100ms\"\n");
    }
    p
}

const TUMBLING: &str = "kind = \"tumbling\"\nsize = \"1s\"";

/// Writes `count` ticks over 40 symbols, 5 ms apart and up to 800 ms out of order (so
/// that many are late), as CSV, with a malformed line every 10 007 lines.
fn ticks(s: &Scratch, count: u64) {
    let out = run_weir(&[
        "gen",
        "stocks",
        "--count",
        &count.to_string(),
        "--keys",
        "40",
        "--interval",
        "5ms",
        "--jitter",
        "800ms",
        "--format",
        "csv",
        "--out",
        &s.path("gen.csv").to_string_lossy(),
    ]);
    assert!(out.status.success(), "weir gen failed");
    let text = std::fs::read_to_string(s.path("gen.csv")).expect("ticks");
    let mut with_bad = String::with_capacity(text.len() + 4096);
    for (i, line) in text.lines().enumerate() {
        with_bad.push_str(line);
        with_bad.push('\n');
        if i % 10_007 == 10_006 {
            with_bad.push_str("not,a,tick\n");
        }
    }
    s.write("in.csv", &with_bad);
}

fn run_ok(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["run", "--no-progress", "--json-summary"];
    all.extend_from_slice(args);
    let file = dir.join("p.toml").to_string_lossy().into_owned();
    all.push(&file);
    let out = run_weir(&all);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "weir run failed:\n{stderr}");
    stderr
}

#[test]
fn killed_ten_times_with_checkpoints_the_output_files_are_byte_identical() {
    // The uninterrupted run, without checkpoints.
    let reference = Scratch::new();
    ticks(&reference, 600_000);
    reference.write("p.toml", &pipeline(TUMBLING, false));
    let summary = support::summary(&run_ok(reference.dir.path(), &[]));
    // The input has what the test is about: late events and dead letters.
    assert!(summary["late"].as_u64().unwrap_or(0) > 1_000, "{summary}");
    assert_eq!(summary["malformed"], 59, "{summary}");

    let s = Scratch::new();
    std::fs::copy(reference.path("in.csv"), s.path("in.csv")).expect("copy input");
    s.write("p.toml", &pipeline(TUMBLING, true));
    let file = s.path("p.toml").to_string_lossy().into_owned();
    let checkpoint = s.path("state/checkpoint");
    // Each run starts from the last checkpoint, on one worker or two in turn (the keys are
    // routed again), waits until it wrote rows of its own and a checkpoint after them, then
    // is killed with SIGKILL 0 to 190 ms later (a fixed pseudo-random sequence): before the
    // next checkpoint or after it, mid-batch, mid-write.
    let out = s.path("out.jsonl");
    support::kill_after_checkpoints(
        &checkpoint,
        |run| {
            let workers = if run % 2 == 0 { "2" } else { "1" };
            ["run", "--no-progress", "--parallelism", workers, &file]
                .map(String::from)
                .to_vec()
        },
        || support::file_len(&out),
        10,
        39,
        0x5eed,
        |r| r % 190,
    );
    let last = support::summary(&run_ok(s.dir.path(), &[]));
    for name in ["out.jsonl", "late.jsonl", "dead.jsonl"] {
        let a = std::fs::read(reference.path(name)).expect("reference output");
        let mut b = std::fs::read(s.path(name)).expect("output");
        if name == "dead.jsonl" {
            // A dead letter names its input file, which lives in another directory here.
            let (theirs, ours) = (
                reference.dir.path().to_string_lossy().into_owned(),
                s.dir.path().to_string_lossy().into_owned(),
            );
            assert_eq!(theirs.len(), ours.len());
            b = String::from_utf8(b)
                .expect("UTF-8")
                .replace(&ours, &theirs)
                .into_bytes();
        }
        assert!(!a.is_empty(), "{name} is empty");
        assert!(
            a == b,
            "{name} differs after ten kills: {} bytes against {} uninterrupted",
            b.len(),
            a.len()
        );
    }
    // Counters carry on across restarts: the last run's summary counts the whole input.
    for counter in ["events_read", "malformed", "late", "rows_written"] {
        assert_eq!(last[counter], summary[counter], "{counter}: {last}");
    }
    // A finished run checkpoints its end: running again reads and writes nothing.
    let again = support::summary(&run_ok(s.dir.path(), &[]));
    assert_eq!(again["rows_written"], summary["rows_written"], "{again}");
    let b = std::fs::read(s.path("out.jsonl")).expect("output");
    assert_eq!(b, std::fs::read(reference.path("out.jsonl")).expect("ref"));
}

#[test]
fn a_checkpoint_for_another_window_is_refused_until_discarded() {
    let s = Scratch::new();
    ticks(&s, 2_000);
    s.write("p.toml", &pipeline(TUMBLING, true));
    run_ok(s.dir.path(), &[]);
    let rows = std::fs::read(s.path("out.jsonl")).expect("rows");
    // The window changed: the checkpoint's state means nothing for it.
    s.write(
        "p.toml",
        &pipeline("kind = \"tumbling\"\nsize = \"2s\"", true),
    );
    let file = s.path("p.toml").to_string_lossy().into_owned();
    let out = run_weir(&["run", "--no-progress", &file]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a changed pipeline resumed:\n{err}");
    assert!(err.contains("was written for another pipeline"), "{err}");
    assert!(
        err.contains("window: the checkpoint has Tumbling { size: 1000 }"),
        "{err}"
    );
    assert!(
        err.contains("the pipeline has Tumbling { size: 2000 }"),
        "{err}"
    );
    assert!(err.contains("--discard-checkpoint"), "{err}");
    // Nothing was touched.
    assert_eq!(std::fs::read(s.path("out.jsonl")).expect("rows"), rows);
    // Discarded: the run starts over from the beginning of its input, so the appending
    // sink is first cut back to where the discarded run started (empty): the file then
    // holds the 2 s windows only, as a fresh run writes them, not the 1 s ones before them.
    let summary = support::summary(&run_ok(s.dir.path(), &["--discard-checkpoint"]));
    assert_eq!(summary["events_read"], 2_000, "{summary}");
    let after = std::fs::read(s.path("out.jsonl")).expect("rows");
    let fresh = Scratch::new();
    std::fs::copy(s.path("in.csv"), fresh.path("in.csv")).expect("copy input");
    fresh.write(
        "p.toml",
        &pipeline("kind = \"tumbling\"\nsize = \"2s\"", false),
    );
    run_ok(fresh.dir.path(), &[]);
    let expected = std::fs::read(fresh.path("out.jsonl")).expect("fresh rows");
    assert!(!expected.is_empty() && expected != rows);
    assert_eq!(after, expected);
}

#[test]
fn a_discard_that_cannot_read_the_checkpoint_refuses_rather_than_append_twice() {
    let s = Scratch::new();
    ticks(&s, 2_000);
    s.write("p.toml", &pipeline(TUMBLING, true));
    run_ok(s.dir.path(), &[]);
    let rows = std::fs::read(s.path("out.jsonl")).expect("rows");
    // Both checkpoints damaged: where the run started is lost.
    for name in ["state/checkpoint", "state/checkpoint.prev"] {
        std::fs::write(s.path(name), b"WEIRCKPT garbage").expect("damage");
    }
    let file = s.path("p.toml").to_string_lossy().into_owned();
    let out = run_weir(&["run", "--no-progress", "--discard-checkpoint", &file]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "discarded and appended:\n{err}");
    assert!(err.contains("cannot be cut back"), "{err}");
    assert!(err.contains("out.jsonl"), "{err}");
    assert_eq!(std::fs::read(s.path("out.jsonl")).expect("rows"), rows);
}

#[test]
fn a_sink_shorter_than_its_checkpoint_is_an_error_that_cuts_nothing() {
    let s = Scratch::new();
    ticks(&s, 2_000);
    s.write("p.toml", &pipeline(TUMBLING, true));
    run_ok(s.dir.path(), &[]);
    // Someone emptied the result file since.
    s.write("out.jsonl", "");
    let file = s.path("p.toml").to_string_lossy().into_owned();
    let out = run_weir(&["run", "--no-progress", &file]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("fewer than the"), "{err}");
    assert!(err.contains("the checkpoint recorded"), "{err}");
}
