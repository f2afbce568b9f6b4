//! Results into PostgreSQL, against a real server (`support::postgres`: a throwaway
//! PostgreSQL 15 on 127.0.0.1): the table holds the file sink's rows with their types, a
//! Kafka → PostgreSQL run killed with SIGKILL again and again leaves the table of an
//! uninterrupted run, a database stopped mid-run loses and doubles nothing, and a table
//! that does not fit or a bad URL is refused with the reason (and no password).

mod support;

use std::collections::BTreeMap;

use support::postgres::Postgres;
use support::{Scratch, run_weir, wasm};

/// Skips (or, under CI=true, fails) without PostgreSQL.
fn postgres(test: &str) -> Option<Postgres> {
    support::required(
        test,
        support::postgres::available(),
        "install PostgreSQL 15's server: apt-get install postgresql",
    )
    .then(Postgres::start)
}

/// Stock ticks by symbol, sliding 3 s / 1 s, 1 s watermark delay, `stats` on `price`,
/// from `source` (a `[source]` table's keys) to `sink` (a `[sink]` table's keys).
fn pipeline(name: &str, source: &str, sink: &str) -> String {
    format!(
        r#"name = "{name}"
[source]
{source}
[schema]
timestamp = {{ field = "ts", format = "rfc3339" }}
key = ["symbol"]
fields = {{ symbol = "string", price = "f64", volume = "i64" }}
[window]
kind = "sliding"
size = "3s"
slide = "1s"
[watermark]
delay = "1s"
[plugin]
path = "{plugin}"
params = {{ field = "price" }}
[sink]
{sink}
"#,
        plugin = wasm("stats").display()
    )
}

fn pg_sink(pg: &Postgres, table: &str) -> String {
    format!(
        "kind = \"postgres\"\nurl = \"{}\"\ntable = \"{table}\"\ncreate = true",
        pg.url()
    )
}

fn file_sink(path: &str) -> String {
    format!("kind = \"file\"\npath = \"{path}\"\nmode = \"truncate\"")
}

/// Runs `weir run` on `file` in `s` and asserts it succeeded.
fn run(s: &Scratch, file: &str) {
    let path = s.path(file).to_string_lossy().into_owned();
    let out = run_weir(&["run", "--no-progress", &path]);
    assert!(
        out.status.success(),
        "{file} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A result row as both sides give it: (symbol, start ms, end ms) → (count, sum, min,
/// max, avg, stddev), the floats as their exact values.
type Rows = BTreeMap<(String, i64, i64), (i64, [Option<f64>; 5])>;

/// The rows of a JSON-lines result file.
fn file_rows(text: &str) -> Rows {
    let ms = |v: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a time"))
            .expect("RFC 3339")
            .timestamp_millis()
    };
    text.lines()
        .map(|line| {
            let r: serde_json::Value = serde_json::from_str(line).expect("a JSON row");
            let f = |k: &str| r[k].as_f64();
            (
                (
                    r["symbol"].as_str().expect("symbol").to_string(),
                    ms(&r["window_start"]),
                    ms(&r["window_end"]),
                ),
                (
                    r["count"].as_i64().expect("count"),
                    [f("sum"), f("min"), f("max"), f("avg"), f("stddev")],
                ),
            )
        })
        .collect()
}

/// The rows of `table`, each once (the primary key), with their `row` 0.
fn table_rows(pg: &Postgres, table: &str) -> Rows {
    let rows = pg.query(&format!(
        "SELECT symbol, (extract(epoch FROM window_start) * 1000)::bigint, \
         (extract(epoch FROM window_end) * 1000)::bigint, count, sum, min, max, avg, stddev, \"row\" \
         FROM {table}"
    ));
    let f = |s: &String| (s != "NULL").then(|| s.parse::<f64>().expect("a float"));
    let mut out = Rows::new();
    for r in rows {
        assert_eq!(r[9], "0", "one row per window: {r:?}");
        let key = (
            r[0].clone(),
            r[1].parse().expect("ms"),
            r[2].parse().expect("ms"),
        );
        let value = (
            r[3].parse().expect("count"),
            [f(&r[4]), f(&r[5]), f(&r[6]), f(&r[7]), f(&r[8])],
        );
        assert!(out.insert(key.clone(), value).is_none(), "{key:?} twice");
    }
    out
}

/// Whether two rows' values agree: counts equal, floats within a relative 1e-12 (the file
/// sink writes a float with at most 16 significant digits; the table keeps all 17).
fn agree(a: &(i64, [Option<f64>; 5]), b: &(i64, [Option<f64>; 5])) -> bool {
    a.0 == b.0
        && a.1.iter().zip(&b.1).all(|(x, y)| match (x, y) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-12 * x.abs().max(y.abs()).max(1.0),
            (None, None) => true,
            _ => false,
        })
}

/// Asserts `got` holds the rows of `want`, naming the first few differences.
fn same(got: &Rows, want: &Rows, what: &str) {
    if got.len() == want.len()
        && want
            .iter()
            .all(|(k, v)| got.get(k).is_some_and(|g| agree(g, v)))
    {
        return;
    }
    let missing: Vec<_> = want
        .keys()
        .filter(|k| !got.contains_key(*k))
        .take(3)
        .collect();
    let extra: Vec<_> = got
        .keys()
        .filter(|k| !want.contains_key(*k))
        .take(3)
        .collect();
    let differ: Vec<_> = want
        .iter()
        .filter_map(|(k, v)| got.get(k).filter(|g| !agree(g, v)).map(|g| (k, v, g)))
        .take(3)
        .collect();
    panic!(
        "{what}: {} rows, {} expected; missing {missing:?}; extra {extra:?}; differing (key, want, got) {differ:?}",
        got.len(),
        want.len()
    );
}

#[test]
fn a_file_run_into_postgres_holds_the_file_sinks_rows_with_their_types() {
    let Some(pg) = postgres("a_file_run_into_postgres_holds_the_file_sinks_rows_with_their_types")
    else {
        return;
    };
    let s = Scratch::new();
    support::gen_ticks(&s, "ticks.jsonl", 20_000, 5);
    let source = "kind = \"file\"\npath = \"ticks.jsonl\"";
    s.write("file.toml", &pipeline("ma", source, &file_sink("ma.jsonl")));
    run(&s, "file.toml");
    let expected = file_rows(&std::fs::read_to_string(s.path("ma.jsonl")).expect("rows"));
    assert!(expected.len() > 400, "{} windows", expected.len());
    s.write(
        "pg.toml",
        &pipeline("ma", source, &pg_sink(&pg, "analytics_ma")),
    );
    run(&s, "pg.toml");
    same(&table_rows(&pg, "analytics_ma"), &expected, "the table");
    // The table it made: key, window bounds as timestamps, the plugin's outputs by type,
    // `row`; the primary key is the window and the row.
    let columns = pg.query(
        "SELECT column_name, data_type FROM information_schema.columns \
         WHERE table_name = 'analytics_ma' ORDER BY ordinal_position",
    );
    let columns: Vec<(String, String)> = columns
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    let ts = "timestamp with time zone";
    let dp = "double precision";
    let want: Vec<(&str, &str)> = vec![
        ("symbol", "text"),
        ("window_start", ts),
        ("window_end", ts),
        ("count", "bigint"),
        ("sum", dp),
        ("min", dp),
        ("max", dp),
        ("avg", dp),
        ("stddev", dp),
        ("row", "bigint"),
    ];
    assert_eq!(
        columns,
        want.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    );
    // `weir check` connects and finds the table fitting.
    let out = run_weir(&["check", &s.path("pg.toml").to_string_lossy()]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("table    analytics_ma: fits"),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A second run over the same input replaces its rows: nothing doubles.
    run(&s, "pg.toml");
    same(
        &table_rows(&pg, "analytics_ma"),
        &expected,
        "after a second run",
    );
}

#[test]
fn a_table_that_does_not_fit_and_a_bad_url_are_refused_with_the_reason() {
    let Some(pg) = postgres("a_table_that_does_not_fit_and_a_bad_url_are_refused_with_the_reason")
    else {
        return;
    };
    let s = Scratch::new();
    support::gen_ticks(&s, "ticks.jsonl", 100, 2);
    let source = "kind = \"file\"\npath = \"ticks.jsonl\"";
    // Refused by `weir run` and by `weir check` alike, with every one of `needle`.
    let refused = |sink: String, needle: &[&str]| {
        s.write("p.toml", &pipeline("bad", source, &sink));
        let file = s.path("p.toml").to_string_lossy().into_owned();
        let mut errors = String::new();
        for args in [vec!["run", "--no-progress", &file], vec!["check", &file]] {
            let out = run_weir(&args);
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(!out.status.success(), "{args:?} went through with {sink}");
            for n in needle {
                assert!(err.contains(n), "`{n}` not in {args:?}'s:\n{err}");
            }
            errors.push_str(&err);
        }
        errors
    };
    // A column of another type, and one missing: each named, with what it should be.
    pg.execute(
        "CREATE TABLE wrong_type (symbol text, window_start timestamptz, window_end timestamptz, \
         count text, sum double precision, min double precision, max double precision, \
         avg double precision, stddev double precision, \"row\" bigint, \
         PRIMARY KEY (symbol, window_start, window_end, \"row\"))",
    );
    let no_create = |table: &str| {
        format!(
            "kind = \"postgres\"\nurl = \"{}\"\ntable = \"{table}\"",
            pg.url()
        )
    };
    refused(no_create("wrong_type"), &["`count`", "text", "bigint"]);
    pg.execute(
        "CREATE TABLE missing (symbol text, window_start timestamptz, window_end timestamptz, \
         count bigint, sum double precision, min double precision, max double precision, \
         avg double precision, \"row\" bigint, \
         PRIMARY KEY (symbol, window_start, window_end, \"row\"))",
    );
    refused(no_create("missing"), &["`stddev`", "ADD COLUMN"]);
    refused(no_create("nowhere"), &["does not exist", "create = true"]);
    // A wrong password: refused, and neither password appears.
    let wrong = pg.url().replace(pg.password(), "not-the-pw-123");
    let err = refused(
        format!("kind = \"postgres\"\nurl = \"{wrong}\"\ntable = \"t\"\ncreate = true"),
        &["password authentication failed", "127.0.0.1"],
    );
    assert!(!err.contains("not-the-pw-123") && !err.contains(pg.password()));
    // A URL from a variable that is not set: the key is named.
    refused(
        "kind = \"postgres\"\nurl_env = \"WEIR_TEST_NO_SUCH_URL\"\ntable = \"t\"".into(),
        &["url_env", "WEIR_TEST_NO_SUCH_URL"],
    );
}

#[test]
fn a_database_stopped_mid_run_loses_and_doubles_nothing() {
    let Some(mut pg) = postgres("a_database_stopped_mid_run_loses_and_doubles_nothing") else {
        return;
    };
    let s = Scratch::new();
    // Generated ticks, paced to 20 000 a second: the run is still going when the database
    // stops. The reference is the same events unpaced, to a file.
    let generator = |rate: u32| {
        format!(
            "kind = \"generator\"\nworkload = \"stocks\"\ncount = 100000\nkeys = 8\nrate = {rate}"
        )
    };
    s.write(
        "file.toml",
        &pipeline("down", &generator(0), &file_sink("down.jsonl")),
    );
    run(&s, "file.toml");
    let expected = file_rows(&std::fs::read_to_string(s.path("down.jsonl")).expect("rows"));
    s.write(
        "pg.toml",
        &pipeline("down", &generator(20_000), &pg_sink(&pg, "down_ma")),
    );
    let port = support::serve::free_port();
    let console = support::serve::free_port();
    let token = "down-console-token-0123456";
    let mut child = support::weir()
        .args(["run", "--no-progress", "--metrics-addr"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--console")
        .arg(format!("127.0.0.1:{console}"))
        .env("WEIR_CONSOLE_TOKEN", token)
        .arg(s.path("pg.toml"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("weir run starts");
    support::serve::wait_for("rows written", std::time::Duration::from_secs(60), || {
        (support::serve::rows_written(port) > 0).then_some(())
    });
    assert!(
        child.try_wait().expect("wait").is_none(),
        "the run ended before the database stopped: give it more input"
    );
    pg.stop();
    // The metrics say so while it lasts, for this pipeline: a sink retrying, commits
    // retried.
    let metric = |name: &str| {
        let series = format!("{name}{{tenant=\"local\",pipeline=\"down\"}} ");
        support::serve::http_get(port, "/metrics").and_then(|(_, body)| {
            body.lines()
                .find(|l| l.starts_with(&series))
                .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        })
    };
    support::serve::wait_for(
        "the metrics to show the retries",
        std::time::Duration::from_secs(30),
        || {
            (metric("weir_sinks_retrying") == Some(1.0)
                && metric("weir_sink_commit_retries_total").is_some_and(|n| n >= 1.0))
            .then_some(())
        },
    );
    // So does the console: which sink, since when, how many attempts and why, without
    // the password.
    let (status, body) =
        support::serve::http_get_as(console, "/v1/tenants/local/pipelines/down/activity", token);
    assert_eq!(status, 200, "{body}");
    let activity: serde_json::Value = serde_json::from_str(&body).expect("json");
    let retrying = &activity["pipeline"]["sink_retrying"];
    assert_eq!(retrying["sink"], "postgres table down_ma", "{body}");
    assert!(
        retrying["attempts"].as_u64().is_some_and(|n| n >= 1),
        "{body}"
    );
    assert!(
        retrying["since"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{body}"
    );
    assert!(
        !retrying["error"].as_str().unwrap_or_default().is_empty(),
        "{body}"
    );
    assert!(!body.contains(pg.password()), "the password leaked: {body}");
    std::thread::sleep(std::time::Duration::from_secs(2));
    pg.restart();
    let out = child.wait_with_output().expect("the run ends");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the run failed:\n{err}");
    assert!(
        err.contains("retrying"),
        "the run never saw the database down:\n{err}"
    );
    same(&table_rows(&pg, "down_ma"), &expected, "the table");
}

#[test]
fn killed_again_and_again_a_kafka_to_postgres_run_leaves_the_table_of_an_uninterrupted_run() {
    let Some(pg) = postgres(
        "killed_again_and_again_a_kafka_to_postgres_run_leaves_the_table_of_an_uninterrupted_run",
    ) else {
        return;
    };
    let broker = support::kafka::Broker::start();
    let brokers = broker.brokers();
    let s = Scratch::new();
    support::gen_ticks(&s, "ticks.jsonl", 300_000, 12);
    let out = run_weir(&[
        "produce",
        "--brokers",
        &brokers,
        "--topic",
        "ticks",
        "--partitions",
        "3",
        "--key",
        "symbol",
        "--input",
        &s.path("ticks.jsonl").to_string_lossy(),
        "-X",
        "batch.num.messages=1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let source = format!(
        "kind = \"kafka\"\nbrokers = \"{brokers}\"\ntopics = [\"ticks\"]\ngroup_id = \"eos-pg\"\nstop = \"at-end\"\ncommit_every = \"100ms\""
    );
    s.write(
        "pg.toml",
        &pipeline("eos-pg", &source, &pg_sink(&pg, "eos_ma")),
    );
    let file = s.path("pg.toml").to_string_lossy().into_owned();
    // Killed once it read 20 000 to 60 000 events (and wrote rows), four times.
    support::kill::kill_by_events(&file, 0x9e05, 20_000, 40_000, 4);
    // What the killed runs committed is in the table, with their positions.
    let stored = pg.query("SELECT count(*) FROM weir_positions WHERE pipeline = 'eos-pg'");
    assert_ne!(stored[0][0], "0", "no positions stored");
    run(&s, "pg.toml");
    // The uninterrupted run: the same ticks from the file.
    s.write(
        "file.toml",
        &pipeline(
            "eos-pg",
            "kind = \"file\"\npath = \"ticks.jsonl\"",
            &file_sink("reference.jsonl"),
        ),
    );
    run(&s, "file.toml");
    let expected = file_rows(&std::fs::read_to_string(s.path("reference.jsonl")).expect("rows"));
    let got = table_rows(&pg, "eos_ma");
    let count = pg.query("SELECT count(*) FROM eos_ma");
    assert_eq!(count[0][0], expected.len().to_string(), "count(*)");
    same(&got, &expected, "the table");
    // The positions are the database's, not the group's: with the group's offsets moved
    // back to the start, one more run reads nothing again, so rows removed from the table
    // stay removed.
    {
        use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
        use rdkafka::{ClientConfig, Offset, TopicPartitionList};
        let group: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", "eos-pg")
            .set("enable.auto.commit", "false")
            .create()
            .expect("a consumer of the group");
        let mut tpl = TopicPartitionList::new();
        for p in 0..3 {
            tpl.add_partition_offset("ticks", p, Offset::Offset(0))
                .expect("partition");
        }
        group
            .commit(&tpl, CommitMode::Sync)
            .expect("the group's offsets moved back");
    }
    pg.execute("DELETE FROM eos_ma WHERE symbol = 'AAPL'");
    let left = pg.query("SELECT count(*) FROM eos_ma")[0][0].clone();
    run(&s, "pg.toml");
    assert_eq!(
        pg.query("SELECT count(*) FROM eos_ma")[0][0],
        left,
        "a run read the topic again from the group's offsets"
    );
}

#[test]
fn killed_again_and_again_a_checkpointed_file_run_leaves_the_table_of_an_uninterrupted_run() {
    let Some(pg) = postgres(
        "killed_again_and_again_a_checkpointed_file_run_leaves_the_table_of_an_uninterrupted_run",
    ) else {
        return;
    };
    let s = Scratch::new();
    support::gen_ticks(&s, "ticks.jsonl", 600_000, 12);
    // A file source resumes from its checkpoint: the windows it held, the byte it had
    // read to. Rows written after the checkpoint are written again by the resumed run,
    // with the same values, and replace themselves.
    let source = "kind = \"file\"\npath = \"ticks.jsonl\"";
    s.write(
        "pg.toml",
        &format!(
            "{}[checkpoint]\ndir = \"state\"\nevery = \"100ms\"\n",
            pipeline("ck-pg", source, &pg_sink(&pg, "ck_ma"))
        ),
    );
    let file = s.path("pg.toml").to_string_lossy().into_owned();
    // Rows in the table (0 before the first run made it).
    let rows = || {
        if pg.query("SELECT to_regclass('ck_ma') IS NULL")[0][0] == "t" {
            return 0;
        }
        pg.query("SELECT count(*) FROM ck_ma")[0][0]
            .parse::<u64>()
            .expect("a count")
    };
    // Each run waits until the table grew and a checkpoint came after, then is killed 0
    // to 190 ms later, four times.
    support::kill_after_checkpoints(
        &s.path("state/checkpoint"),
        |_| ["run", "--no-progress", &file].map(String::from).to_vec(),
        rows,
        4,
        30,
        0xc4e7,
        |r| r % 190,
    );
    run(&s, "pg.toml");
    s.write(
        "file.toml",
        &pipeline("ck-pg", source, &file_sink("reference.jsonl")),
    );
    run(&s, "file.toml");
    let expected = file_rows(&std::fs::read_to_string(s.path("reference.jsonl")).expect("rows"));
    assert_eq!(rows(), expected.len() as u64, "count(*)");
    same(&table_rows(&pg, "ck_ma"), &expected, "the table");
}

#[test]
fn under_serve_each_tenant_writes_its_own_table_and_no_one_sees_a_database_password() {
    use support::serve::{ACME, GLOBEX, OPERATOR, Serve, bucket, serial, tenant_toml};
    use weir::serve::control::PipelineState;
    let Some(pg) = postgres(
        "under_serve_each_tenant_writes_its_own_table_and_no_one_sees_a_database_password",
    ) else {
        return;
    };
    let _serial = serial();
    // globex logs in with its own role and password.
    pg.execute(
        "CREATE ROLE globex LOGIN PASSWORD 'globex-pw-5521'; \
         GRANT CREATE ON SCHEMA public TO globex",
    );
    let globex_url = format!(
        "postgresql://globex:globex-pw-5521@127.0.0.1:{}/analytics",
        pg.port()
    );
    let s = Scratch::new();
    let ticks = support::serve::Gen {
        count: 20_000,
        keys: 5,
        interval_ms: 10,
        seed: 3,
        rate: 0,
    };
    let stats = wasm("stats");
    let params = "params = { field = \"price\" }";
    let sink = |url: &str, table: &str| {
        format!("kind = \"postgres\"\nurl = \"{url}\"\ntable = \"{table}\"\ncreate = true")
    };
    s.write(
        "ticks.toml",
        &support::pipeline_toml_to(
            "ticks",
            &ticks.toml(),
            &stats,
            params,
            &sink(&pg.url(), "acme_ticks"),
        ),
    );
    s.write(
        "rides.toml",
        &support::pipeline_toml_to(
            "rides",
            &ticks.toml(),
            &stats,
            params,
            &sink(&globex_url, "globex_rides"),
        ),
    );
    let serve = Serve::start(
        &s,
        &format!(
            "{}{}",
            tenant_toml("acme", ACME, &["ticks.toml"]),
            tenant_toml("globex", GLOBEX, &["rides.toml"])
        ),
    );
    for (tenant, p) in [("acme", "ticks"), ("globex", "rides")] {
        serve.wait_state(
            tenant,
            p,
            PipelineState::Finished,
            std::time::Duration::from_secs(120),
        );
    }
    // Each table holds its pipeline's windows (tumbling 1 s), counted from the events.
    let expected: BTreeMap<(String, i64), i64> = bucket(&ticks.events(), 1_000)
        .into_iter()
        .map(|(k, b)| (k, b.count))
        .collect();
    for table in ["acme_ticks", "globex_rides"] {
        let got: BTreeMap<(String, i64), i64> = pg
            .query(&format!(
                "SELECT symbol, (extract(epoch FROM window_start) * 1000)::bigint, count FROM {table}"
            ))
            .into_iter()
            .map(|r| {
                (
                    (r[0].clone(), r[1].parse().expect("ms")),
                    r[2].parse().expect("count"),
                )
            })
            .collect();
        assert_eq!(got, expected, "{table}");
    }
    assert_eq!(
        pg.query("SELECT tableowner FROM pg_tables WHERE tablename = 'globex_rides'")[0][0],
        "globex",
        "globex's pipeline wrote with globex's login"
    );
    // What the admin API shows a tenant, or the operator, holds no password.
    for (token, tenant) in [
        (ACME, "acme"),
        (GLOBEX, "globex"),
        (OPERATOR, "acme"),
        (OPERATOR, "globex"),
    ] {
        let (_, body) = support::serve::http_get_as(
            serve.port,
            &format!("/v1/tenants/{tenant}/pipelines"),
            token,
        );
        assert!(body.contains("\"name\""), "{body}");
        for secret in [pg.password(), "globex-pw-5521"] {
            assert!(
                !body.contains(secret),
                "{tenant}'s pipelines as {token} show a password: {body}"
            );
        }
    }
    for log in [serve.stderr(), serve.stdout()] {
        assert!(
            !log.contains(pg.password()) && !log.contains("globex-pw-5521"),
            "a password in the host's output"
        );
    }
}

#[test]
fn dead_letters_go_to_a_table_once_however_often_a_run_writes_them() {
    let Some(pg) = postgres("dead_letters_go_to_a_table_once_however_often_a_run_writes_them")
    else {
        return;
    };
    let s = Scratch::new();
    support::gen_ticks(&s, "good.jsonl", 200, 2);
    let good = std::fs::read_to_string(s.path("good.jsonl")).expect("ticks");
    let mut lines: Vec<&str> = good.lines().collect();
    // Lines 3, 50 and 120 (1-based) cannot be read.
    lines.insert(2, "not json");
    lines.insert(
        49,
        "{\"ts\":\"yesterday\",\"symbol\":\"X\",\"price\":1.0,\"volume\":1}",
    );
    lines.insert(119, "{\"ts\":");
    s.write("ticks.jsonl", &(lines.join("\n") + "\n"));
    let dead = format!(
        "\n[dead_letter]\nkind = \"postgres\"\nurl = \"{}\"\ntable = \"dead\"\ncreate = true",
        pg.url()
    );
    s.write(
        "p.toml",
        &(pipeline(
            "dl",
            "kind = \"file\"\npath = \"ticks.jsonl\"",
            &file_sink("dl.jsonl"),
        ) + &dead),
    );
    // Twice: the second run writes the same dead letters again.
    run(&s, "p.toml");
    run(&s, "p.toml");
    let rows =
        pg.query("SELECT pipeline, \"offset\", reason <> '', record FROM dead ORDER BY \"offset\"");
    let got: Vec<(String, String, String, String)> = rows
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone(), r[3].clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("dl".into(), "3".into(), "t".into(), "not json".into()),
            (
                "dl".into(),
                "50".into(),
                "t".into(),
                "{\"ts\":\"yesterday\",\"symbol\":\"X\",\"price\":1.0,\"volume\":1}".into()
            ),
            ("dl".into(), "120".into(), "t".into(), "{\"ts\":".into()),
        ]
    );
}
