//! The PostgreSQL harness itself (`support::postgres`): a throwaway server keeps rows across
//! a stop and a restart on the same port, reads back NULLs and awkward text unambiguously,
//! and refuses a wrong password without echoing either password.

mod support;

use support::postgres::{Postgres, available};

const ENABLE: &str = "install PostgreSQL 15 server binaries: apt-get install postgresql";

#[test]
fn rows_survive_a_stop_and_a_restart() {
    if !support::required("rows_survive_a_stop_and_a_restart", available(), ENABLE) {
        return;
    }
    let started = std::time::Instant::now();
    let mut pg = Postgres::start();
    eprintln!("postgres started in {:?}", started.elapsed());
    let port = pg.port();

    pg.execute("CREATE TABLE ticks (symbol text PRIMARY KEY, price double precision, note text)");
    pg.execute(
        "INSERT INTO ticks VALUES ('ACME', 12.5, 'tab\there'), ('GLOBEX', 3, NULL), \
         ('INITECH', 0.25, E'two\\nlines')",
    );
    let expected = vec![
        vec!["ACME".to_string(), "12.5".into(), "tab\there".into()],
        vec!["GLOBEX".to_string(), "3".into(), "NULL".into()],
        vec!["INITECH".to_string(), "0.25".into(), "two\nlines".into()],
    ];
    let read = || pg.query("SELECT symbol, price, note FROM ticks ORDER BY symbol");
    assert_eq!(read(), expected);
    assert_eq!(
        pg.query("SELECT 1 WHERE false"),
        Vec::<Vec<String>>::new(),
        "no rows"
    );
    assert_eq!(
        pg.query("SELECT ''"),
        vec![vec![String::new()]],
        "one empty value"
    );

    pg.stop();
    assert!(!pg.is_running());
    let refused = pg
        .psql()
        .args(["-c", "SELECT 1"])
        .output()
        .expect("psql runs");
    assert!(
        !refused.status.success(),
        "a stopped server accepts no connection"
    );

    let restarted = std::time::Instant::now();
    pg.restart();
    eprintln!("postgres restarted in {:?}", restarted.elapsed());
    assert_eq!(pg.port(), port, "the same port after a restart");
    assert_eq!(
        pg.query("SELECT symbol, price, note FROM ticks ORDER BY symbol"),
        expected
    );
    assert_eq!(
        pg.query("SELECT current_database()"),
        vec![vec!["analytics".to_string()]]
    );
}

#[test]
fn the_password_is_required_and_never_echoed() {
    if !support::required(
        "the_password_is_required_and_never_echoed",
        available(),
        ENABLE,
    ) {
        return;
    }
    let pg = Postgres::start();
    let url = pg.url();
    assert_eq!(
        url,
        format!(
            "postgresql://weir:{}@127.0.0.1:{}/analytics",
            pg.password(),
            pg.port()
        )
    );
    assert!(!pg.password().is_empty() && url.contains(pg.password()));

    let wrong = "not-the-password-4f1c";
    let out = pg
        .psql()
        .env("PGPASSWORD", wrong)
        .args(["-c", "SELECT 1"])
        .output()
        .expect("psql runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a wrong password connects");
    assert!(
        stderr.contains("password authentication failed"),
        "psql says why: {stderr}"
    );
    assert!(
        !stderr.contains(wrong) && !stderr.contains(pg.password()),
        "{stderr}"
    );
    assert!(
        !pg.log().contains(pg.password()),
        "the server log holds the password"
    );

    // The URL (password included) connects, as a client given only the URL would.
    let out = std::process::Command::new(pg.psql().get_program())
        .args(["-X", "-w", "-At", "-c", "SELECT current_user", &url])
        .env_remove("PGPASSWORD")
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "weir");
}

#[test]
fn a_restart_that_cannot_start_fails_with_the_server_log() {
    let test = "a_restart_that_cannot_start_fails_with_the_server_log";
    if !support::required(test, available(), ENABLE) {
        return;
    }
    let mut pg = Postgres::start();
    pg.stop();
    // Something else takes the port while the server is down.
    let squatter = std::net::TcpListener::bind(("127.0.0.1", pg.port())).expect("bind the port");
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pg.restart()))
        .expect_err("a restart on a taken port fails");
    let why = failed.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(why.contains("before accepting connections"), "{why}");
    assert!(why.contains("could not bind"), "the log's tail: {why}");
    assert!(!pg.is_running());

    drop(squatter);
    pg.restart();
    assert_eq!(pg.query("SELECT 1"), vec![vec!["1".to_string()]]);
}
