//! Runs killed with SIGKILL at moments chosen from their observed progress (their
//! metrics endpoint), for the crash tests.

use super::serve;

/// The next of a fixed pseudo-random sequence.
pub fn next_seed(seed: u64) -> u64 {
    seed.wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
}

/// What a run's metrics must show before it is killed: rows written, or events read (and
/// rows written).
#[derive(Clone, Copy)]
pub enum Progress {
    /// At least this many rows written.
    Rows(u64),
    /// At least this many events read, and rows written.
    Events(u64),
}

impl Progress {
    /// Whether the run's metrics on `port` show it.
    pub fn reached(self, port: u16) -> bool {
        match self {
            Progress::Rows(n) => serve::rows_written(port) >= n,
            // And rows written: a killed run must have written some.
            Progress::Events(n) => events_read(port) >= n && serve::rows_written(port) > 0,
        }
    }
}

/// The `weir_events_read_total` a run's metrics endpoint shows (0 before it answers).
pub fn events_read(port: u16) -> u64 {
    serve::http_get(port, "/metrics")
        .and_then(|(_, body)| {
            body.lines()
                .filter(|l| l.starts_with("weir_events_read_total{"))
                .find_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        })
        .map_or(0, |v| v as u64)
}

/// Starts `weir run FILE` and kills it with SIGKILL `after` its metrics showed `progress`;
/// false when it ended before.
pub fn run_and_kill(file: &str, progress: Progress, after: std::time::Duration) -> bool {
    let port = serve::free_port();
    let mut child = super::weir()
        .args(["run", "--no-progress", "--metrics-addr"])
        .arg(format!("127.0.0.1:{port}"))
        .arg(file)
        .stdout(std::process::Stdio::null())
        .stderr(if std::env::var("WEIR_TEST_DEBUG").is_ok() {
            std::process::Stdio::inherit()
        } else {
            std::process::Stdio::null()
        })
        .spawn()
        .expect("weir run starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !progress.reached(port) && child.try_wait().expect("wait").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "no progress within 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
        if std::env::var("WEIR_TEST_DEBUG").is_ok() {
            eprintln!(
                "DEBUG events {} rows {}",
                events_read(port),
                serve::rows_written(port)
            );
        }
    }
    std::thread::sleep(after);
    let killed = child.try_wait().expect("wait").is_none();
    if killed {
        assert!(
            serve::rows_written(port) > 0,
            "killed before it wrote a row"
        );
        child.kill().expect("SIGKILL");
    }
    child.wait().expect("reaped");
    killed
}

/// Runs `weir run FILE` again and again, each run killed once it read `from` to
/// `from + span` events (a fixed pseudo-random sequence from `seed`) and wrote rows,
/// until `kills` runs were killed; fails when runs end before their kill instead (the
/// input ran out first).
pub fn kill_by_events(file: &str, seed: u64, from: u64, span: u64, kills: usize) {
    let mut seed = seed;
    let mut killed = 0;
    for _ in 0..kills * 2 {
        seed = next_seed(seed);
        let events = from + (seed >> 33) % span;
        if run_and_kill(file, Progress::Events(events), std::time::Duration::ZERO) {
            killed += 1;
        }
        if killed == kills {
            return;
        }
    }
    panic!("{killed} runs killed of {kills}: the others ended before their kill");
}
