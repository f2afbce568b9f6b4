//! A real, throwaway PostgreSQL 15 server for the tests: it owns a temporary directory
//! (the cluster made by `initdb`, the server's socket directory and its log), one `postgres`
//! process on a free port of 127.0.0.1 with password (SCRAM-SHA-256) authentication for the
//! superuser `weir`, and a database `analytics`. It can be stopped and started again on the
//! same port and data, and it is stopped and removed when dropped. Nothing here uses a
//! server started by hand.
//!
//! PostgreSQL refuses to run as root: when the tests run as root, the temporary directory is
//! handed to the `postgres` OS user and `initdb` and `postgres` are started with that user's
//! uid and gid (no `su`/`runuser` in between, so the child process *is* the server and
//! signals reach it directly). `psql`, the client, runs as whoever runs the tests.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's PostgreSQL 15 server binaries are installed.
const DEBIAN_BIN: &str = "/usr/lib/postgresql/15/bin";
/// The superuser `initdb` creates.
const SUPERUSER: &str = "weir";
/// The database [`Postgres::start`] creates for the tests.
const DATABASE: &str = "analytics";
/// How long a start (or restart) may take before the test fails.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How long a stop may take before the server is killed.
const STOP_WITHIN: Duration = Duration::from_secs(30);

/// A running (or stopped, between [`Postgres::stop`] and [`Postgres::restart`]) PostgreSQL
/// server over a temporary cluster.
pub struct Postgres {
    bin: Binaries,
    /// Set when running as root: the `postgres` OS user's uid and gid, which the server runs as.
    owner: Option<(u32, u32)>,
    port: u16,
    password: String,
    /// The server process while it runs.
    child: Option<Child>,
    /// Holds `data/` (the cluster), `sock/` (the Unix socket) and `server.log`; dropped (and
    /// so removed) after the server is stopped, since it is the last field.
    dir: tempfile::TempDir,
}

/// The programs the harness runs.
#[derive(Clone)]
struct Binaries {
    initdb: PathBuf,
    postgres: PathBuf,
    psql: PathBuf,
}

impl Binaries {
    /// `initdb`, `postgres` and `psql` from Debian's PostgreSQL 15 directory when it holds the
    /// server, else from `PATH`; the error names what is missing.
    fn find() -> Result<Binaries, String> {
        let debian = Path::new(DEBIAN_BIN);
        let find = |name: &str| -> Result<PathBuf, String> {
            let in_debian = debian.join(name);
            if in_debian.is_file() {
                return Ok(in_debian);
            }
            std::env::var_os("PATH")
                .iter()
                .flat_map(std::env::split_paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
                .ok_or_else(|| format!("`{name}` is neither in {DEBIAN_BIN} nor on PATH"))
        };
        Ok(Binaries {
            initdb: find("initdb")?,
            postgres: find("postgres")?,
            psql: find("psql")?,
        })
    }
}

/// Ok when a server can be started here: the PostgreSQL binaries are found and, when running
/// as root, the `postgres` OS user exists to run them. Else the reason, with how to install
/// what is missing.
pub fn available() -> Result<(), String> {
    Binaries::find().map_err(|why| {
        format!("PostgreSQL server binaries missing ({why}); apt-get install postgresql")
    })?;
    if is_root() {
        postgres_user().map_err(|why| {
            format!(
                "running as root, PostgreSQL must run as the `postgres` OS user, but {why}; \
                 apt-get install postgresql creates it"
            )
        })?;
    }
    Ok(())
}

/// True when the tests run as root (effective uid 0).
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The `postgres` OS user's uid and gid, as `id` reports them.
fn postgres_user() -> Result<(u32, u32), String> {
    let id = |flag: &str| -> Result<u32, String> {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .map_err(|e| format!("`id` does not run: {e}"))?;
        if !out.status.success() {
            return Err("there is no `postgres` OS user".to_string());
        }
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|e| format!("`id {flag} postgres` printed no number: {e}"))
    };
    Ok((id("-u")?, id("-g")?))
}

/// A password that differs on every call, recognisable in any text it leaks into.
fn fresh_password() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    format!("pw-{:016x}", h.finish())
}

/// A port of 127.0.0.1 free at the time of the call.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// Gives `path` (and, for a directory, everything under it) to `uid:gid`.
fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("read a directory being chowned") {
            chown_tree(&entry.expect("a directory entry").path(), uid, gid);
        }
    }
}

impl Postgres {
    /// Makes a fresh cluster in a temporary directory (superuser `weir` with a new password,
    /// SCRAM-SHA-256 authentication for every connection), starts `postgres` on a free port
    /// of 127.0.0.1, waits until it accepts connections (at most 30 s; else panics with the
    /// tail of the server's log) and creates the database `analytics`. Panics when the
    /// binaries are missing: check [`available`] first.
    pub fn start() -> Postgres {
        let bin = Binaries::find().unwrap_or_else(|why| panic!("{why}"));
        let owner = is_root().then(|| postgres_user().unwrap_or_else(|why| panic!("{why}")));
        let dir = tempfile::Builder::new()
            .prefix("weir-pg-")
            .tempdir()
            .expect("a temporary directory");
        std::fs::create_dir(dir.path().join("sock")).expect("the socket directory");
        let password = fresh_password();
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, format!("{password}\n")).expect("write the password file");
        if let Some((uid, gid)) = owner {
            chown_tree(dir.path(), uid, gid);
        }

        let mut initdb = Command::new(&bin.initdb);
        initdb
            .arg("-D")
            .arg(dir.path().join("data"))
            .args([
                "--username",
                SUPERUSER,
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .current_dir(dir.path());
        if let Some((uid, gid)) = owner {
            initdb.uid(uid).gid(gid);
        }
        let out = initdb.output().expect("initdb runs");
        let _ = std::fs::remove_file(&pwfile);
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );

        let mut pg = Postgres {
            bin,
            owner,
            port: 0,
            password,
            child: None,
            dir,
        };
        // The port is free when picked, but another process may take it before the server
        // binds it: then try another.
        let mut attempts = 0;
        loop {
            attempts += 1;
            pg.port = free_port();
            pg.spawn();
            match pg.wait_ready() {
                Ok(()) => break,
                Err(why) if attempts < 3 && pg.log_tail().contains("could not bind") => {
                    eprintln!("postgres could not bind port {}: {why}; retrying", pg.port);
                    pg.stop_with(libc::SIGQUIT);
                }
                Err(why) => panic!("{why}"),
            }
        }
        pg.execute_in("postgres", &format!("CREATE DATABASE {DATABASE}"));
        pg
    }

    /// The URL of the `analytics` database: `postgresql://weir:PASSWORD@127.0.0.1:PORT/analytics`.
    pub fn url(&self) -> String {
        format!(
            "postgresql://{SUPERUSER}:{}@127.0.0.1:{}/{DATABASE}",
            self.password, self.port
        )
    }

    /// The server's port on 127.0.0.1 (the same across [`Postgres::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The password of the superuser `weir`.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The superuser's name, `weir`.
    pub fn user(&self) -> &str {
        SUPERUSER
    }

    /// The server's log so far (`server.log` in the temporary directory).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// A `psql` command for the `analytics` database over TCP on 127.0.0.1 as `weir`, with
    /// the right password in `PGPASSWORD` (set another one to try a wrong password), never
    /// prompting (`-w`), reading no `~/.psqlrc` (`-X`) and stopping at the first error.
    /// Add `-c SQL` (or stdin) and run it.
    pub fn psql(&self) -> Command {
        self.psql_in(DATABASE)
    }

    /// [`Postgres::psql`] for the database `database`.
    fn psql_in(&self, database: &str) -> Command {
        let mut cmd = Command::new(&self.bin.psql);
        cmd.args(["-X", "-w", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
                "-d",
                database,
            ])
            .env("PGPASSWORD", &self.password)
            .env("PGCONNECT_TIMEOUT", "5")
            .env("PGSSLMODE", "disable")
            .env_remove("PGSERVICE")
            .env_remove("PGSERVICEFILE")
            .env_remove("PGOPTIONS")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs one query on `analytics` and returns its rows, each column as text, a NULL as the
    /// string `NULL`. Values may hold tabs and newlines: the rows are read with separators
    /// that no text value contains (`\x1f` between columns, NUL after each row). Panics with
    /// psql's error when the query fails.
    pub fn query(&self, sql: &str) -> Vec<Vec<String>> {
        let out = self
            .psql()
            .args(["-A", "-t", "-F", "\x1f", "-0", "-P", "null=NULL", "-c", sql])
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "query failed: {sql}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("psql prints UTF-8")
            .split_terminator('\0')
            .map(|row| row.split('\x1f').map(str::to_string).collect())
            .collect()
    }

    /// Runs SQL (one or more statements) on `analytics`; panics with psql's error on failure.
    pub fn execute(&self, sql: &str) {
        self.execute_in(DATABASE, sql);
    }

    /// [`Postgres::execute`] on the database `database`.
    fn execute_in(&self, database: &str, sql: &str) {
        let out = self
            .psql_in(database)
            .args(["-c", sql])
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "SQL failed: {sql}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// True while the server process runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().expect("poll postgres").is_none())
    }

    /// Stops the server with a fast shutdown (SIGINT: open sessions are ended, their
    /// transactions rolled back, committed data kept) and waits for it to exit. Does nothing
    /// when it is not running.
    pub fn stop(&mut self) {
        self.stop_with(libc::SIGINT);
    }

    /// Starts the server again on the same port and data, waiting until it accepts
    /// connections (at most 30 s); stops it first if it runs.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
        if let Err(why) = self.wait_ready() {
            panic!("{why}");
        }
    }

    /// Starts `postgres` on `self.port`, its output appended to `server.log`.
    fn spawn(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("open the server log");
        let mut cmd = Command::new(&self.bin.postgres);
        cmd.arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(self.dir.path().join("sock"))
            .args(["-c", "listen_addresses=127.0.0.1"])
            // Throwaway data: no fsync (a killed server still loses nothing the kernel
            // holds), no collector process, and the log on stderr.
            .args(["-c", "fsync=off", "-c", "logging_collector=off"])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log);
        if let Some((uid, gid)) = self.owner {
            cmd.uid(uid).gid(gid);
        }
        self.child = Some(cmd.spawn().expect("postgres starts"));
    }

    /// Waits until the server accepts connections to the `postgres` database, at most 30 s;
    /// the error carries the server log's tail.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().expect("poll postgres"))
            {
                self.child = None;
                return Err(format!(
                    "postgres exited ({status}) before accepting connections on port {}; \
                     its log ends with:\n{}",
                    self.port,
                    self.log_tail()
                ));
            }
            let probe = self
                .psql_in("postgres")
                .args(["-c", "SELECT 1"])
                .env("PGCONNECT_TIMEOUT", "2")
                .output()
                .expect("psql runs");
            if probe.status.success() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.stop_with(libc::SIGQUIT);
                return Err(format!(
                    "postgres did not accept connections on port {} within {} s (last \
                     attempt: {}); its log ends with:\n{}",
                    self.port,
                    READY_WITHIN.as_secs(),
                    String::from_utf8_lossy(&probe.stderr).trim(),
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last 40 lines of the server's log.
    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Sends `signal` (SIGINT: fast shutdown, SIGQUIT: immediate) and waits for the server to
    /// exit; kills it when it outlives [`STOP_WITHIN`].
    fn stop_with(&mut self, signal: libc::c_int) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if child.try_wait().expect("poll postgres").is_some() {
            return;
        }
        let pid = libc::pid_t::try_from(child.id()).expect("a pid fits pid_t");
        // SAFETY: `pid` is our own child, not yet reaped, so it names the server.
        unsafe { libc::kill(pid, signal) };
        let deadline = Instant::now() + STOP_WITHIN;
        while child.try_wait().expect("poll postgres").is_none() {
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Postgres {
    /// Stops the server at once (immediate shutdown, then SIGKILL if it lingers); the
    /// temporary directory is removed afterwards.
    fn drop(&mut self) {
        self.stop_with(libc::SIGQUIT);
    }
}
