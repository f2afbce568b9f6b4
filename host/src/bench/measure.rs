//! One measured run: `weir run` as a child process, its wall time, its peak resident set
//! (from the kernel's `wait4` accounting) and its JSON summary.
//!
//! Owns process handling and the timeout; not what the pipeline does.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What one successful run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// Wall time from spawning the process to reaping it, seconds.
    pub wall_seconds: f64,
    /// Peak resident set size of the process, KiB.
    pub max_rss_kib: u64,
    /// The child's `--json-summary` object.
    pub summary: serde_json::Map<String, serde_json::Value>,
}

impl Measured {
    /// A counter of the summary, 0 when absent.
    pub fn count(&self, name: &str) -> u64 {
        self.summary
            .get(name)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    }

    /// Cores the run could use: one for a pipeline on one thread; with `parallelism` N > 1
    /// workers, N + 1 threads (the pipeline's own reads and writes), at most the machine's
    /// cores.
    pub fn cores(&self) -> u64 {
        let machine = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
        match self.count("parallelism") {
            0 | 1 => 1,
            n => (n + 1).min(machine.max(1)),
        }
    }
}

/// Runs `<exe> run --json-summary --no-progress [extra…] <pipeline>` and measures it.
///
/// A run that fails, or is still going after `timeout` (it is then killed), is an `Err`
/// holding a one-line reason for the table.
pub fn run(
    exe: &Path,
    extra: &[&str],
    pipeline: &Path,
    timeout: Duration,
) -> Result<Measured, String> {
    let started = Instant::now();
    let mut child = Command::new(exe)
        .args(["run", "--json-summary", "--no-progress"])
        .args(extra)
        .arg(pipeline)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let pid = child.id() as libc::pid_t;
    let mut stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_string(&mut text);
        }
        text
    });
    let (done, done_rx) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let timed_out = matches!(
            done_rx.recv_timeout(timeout),
            Err(mpsc::RecvTimeoutError::Timeout)
        );
        if timed_out {
            // SAFETY: `kill` has no memory effects; the child is not reaped until the
            // waiting thread sees it exit, so `pid` still names it.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        timed_out
    });
    let reaped = wait4(pid);
    let wall_seconds = started.elapsed().as_secs_f64();
    let _ = done.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    let text = reader.join().unwrap_or_default();
    // The child was reaped here; `Child` must not wait for it again (dropping it does not).
    drop(child);
    let (status, max_rss_kib) = reaped.map_err(|e| format!("wait4: {e}"))?;
    if timed_out {
        return Err(format!(
            "timed out after {}",
            humantime::format_duration(timeout)
        ));
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        return Err(failure_reason(status, &text));
    }
    let summary = text
        .lines()
        .rev()
        .find_map(
            |l| match serde_json::from_str::<serde_json::Value>(l.trim()) {
                Ok(serde_json::Value::Object(m)) if m.contains_key("events_read") => Some(m),
                _ => None,
            },
        )
        .ok_or_else(|| "no JSON summary on stderr".to_string())?;
    Ok(Measured {
        wall_seconds,
        max_rss_kib,
        summary,
    })
}

/// Waits for `pid` to exit: its wait status and peak RSS in KiB (Linux reports
/// `ru_maxrss` in KiB).
fn wait4(pid: libc::pid_t) -> std::io::Result<(libc::c_int, u64)> {
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers are to live locals of the right types for the call.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            return Ok((status, u64::try_from(usage.ru_maxrss).unwrap_or(0)));
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// One line saying why a run failed: its `error:` line, else its last line, else the
/// exit status.
fn failure_reason(status: libc::c_int, stderr: &str) -> String {
    let line = stderr
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("error:"))
        .or_else(|| stderr.lines().map(str::trim).rfind(|l| !l.is_empty()));
    let how = if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("exit {}", libc::WEXITSTATUS(status))
    };
    match line {
        Some(l) => shorten(&format!("{how}: {l}"), 100),
        None => how,
    }
}

/// `text` cut to at most `max` characters, with an ellipsis when cut.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_named_by_its_error_line() {
        // Exit code 2 in a wait status is 2 << 8.
        let reason = failure_reason(2 << 8, "noise\nerror: unexpected argument '--native'\n");
        assert_eq!(reason, "exit 2: error: unexpected argument '--native'");
        assert_eq!(failure_reason(1 << 8, ""), "exit 1");
    }

    #[test]
    fn shorten_cuts_long_reasons() {
        assert_eq!(shorten("abc", 3), "abc");
        assert_eq!(shorten("abcd", 3), "ab…");
    }

    /// Writes an executable shell script standing in for `weir`.
    fn script(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("chmod script");
        path
    }

    #[test]
    fn a_child_is_measured_and_a_slow_one_is_killed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let long = Duration::from_secs(30);
        let ok = script(
            dir.path(),
            "ok",
            r#"echo 'log line' >&2; echo '{"events_read": 5, "rows_written": 2, "parallelism": 2}' >&2"#,
        );
        let m = run(&ok, &[], Path::new("p.toml"), long).expect("the script succeeds");
        assert_eq!((m.count("events_read"), m.count("rows_written")), (5, 2));
        // Two workers and the pipeline's thread: three threads, on at most every core.
        let machine = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
        assert_eq!(m.cores(), 3.min(machine));
        assert!(m.max_rss_kib > 0);

        let failing = script(dir.path(), "failing", "echo 'error: nope' >&2; exit 3");
        assert_eq!(
            run(&failing, &[], Path::new("p.toml"), long),
            Err("exit 3: error: nope".to_string())
        );
        let silent = script(dir.path(), "silent", "true");
        assert_eq!(
            run(&silent, &[], Path::new("p.toml"), long),
            Err("no JSON summary on stderr".to_string())
        );
        let slow = script(dir.path(), "slow", "exec sleep 30");
        assert_eq!(
            run(&slow, &[], Path::new("p.toml"), Duration::from_millis(200)),
            Err("timed out after 200ms".to_string())
        );
    }
}
