//! Failed windows computed again: under `weir serve`, a window whose plugin call failed
//! keeps its events ([`FailedWindows`], within `[plugin] keep_failed_windows` and
//! `keep_failed_events`), and when another version goes live (a deploy or a rollback) it
//! computes them, before anything else fires. Their rows take the revision the failed
//! firing had, so they are the rows the window would have had. Kept windows live in memory
//! only: after a restart, or past the budget, the error records name the windows that have
//! no rows.

use super::*;

impl Pipeline {
    /// Keeps failed windows for the next version when the pipeline runs under `weir serve`
    /// (no other version can come under `weir run`).
    pub(super) fn keeping_failed_windows(mut self) -> Self {
        if self.opts.quarantine {
            let c = &self.spec.cfg.plugin;
            self.shard.failed = Some(FailedWindows::new(
                c.keep_failed_windows,
                c.keep_failed_events,
            ));
        }
        self
    }

    /// Computes the kept failed windows with the live version, writing their rows; those
    /// it declines (a stop, a waiting control message) or fails again are kept again.
    pub(super) fn recompute_failed(&mut self) -> anyhow::Result<()> {
        let Some(kept) = self.shard.failed.as_mut().map(FailedWindows::take) else {
            return Ok(());
        };
        if kept.is_empty() {
            return Ok(());
        }
        // The kept windows, rebuilt in an operator of their own from their events.
        let mut rebuilt = WindowOperator::new(self.spec.window, 0);
        let mut wanted: BTreeMap<(Key, i64, i64), u32> = BTreeMap::new();
        for w in kept {
            for e in w.events {
                rebuilt.process(e.ts, w.key.clone(), e.values, NO_WATERMARK);
            }
            wanted.insert((w.key, w.window.start, w.window.end), w.revision);
        }
        let mut due = Vec::new();
        for d in rebuilt.take_due(None) {
            let Some((f, _)) = rebuilt.firing(d) else {
                continue;
            };
            if let Some(&revision) = wanted.get(&(f.key.clone(), f.window.start, f.window.end)) {
                // The rows take the failed firing's revision.
                for _ in 0..revision {
                    rebuilt.fired(d);
                }
                due.push(d);
            }
        }
        let n = due.len() as u64;
        // The rebuilt windows stand in for the shard's own while they fire.
        std::mem::swap(&mut self.shard.operator, &mut rebuilt);
        let (counted, failed) = self.fire_into_sinks(due);
        std::mem::swap(&mut self.shard.operator, &mut rebuilt);
        // Declined ones are pending again in `rebuilt`: kept for the next chance.
        let left = rebuilt.take_due(None);
        let again = left.len() as u64;
        if let Some(kept) = self.shard.failed.as_mut() {
            for d in left {
                kept.keep(&mut rebuilt, d);
            }
        }
        let recomputed = n
            .saturating_sub(again)
            .saturating_sub(counted.plugin_errors);
        self.summary.counters.add(&counted);
        self.summary.counters.windows_recomputed += recomputed;
        tracing::info!(pipeline = %self.spec.cfg.name, version = %self.shard.version, windows = n, recomputed, failed_again = counted.plugin_errors, declined = again, "failed windows computed by the new version");
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::test_pipeline::{stats_wasm, tick_config};

    /// A `weir serve`-like pipeline over `events` (symbol, ms) on the `panicky` plugin,
    /// which fails every window of key BAD, keeping at most `keep` failed windows.
    fn serve_pipeline(dir: &Path, events: &[(&str, i64)], keep: usize) -> (Pipeline, PipelineSpec) {
        let lines: Vec<String> = events
            .iter()
            .map(|(s, t)| format!("{{\"symbol\":\"{s}\",\"t\":{t},\"price\":1.0}}"))
            .collect();
        std::fs::write(dir.join("in.jsonl"), lines.join("\n") + "\n").expect("input");
        let mut cfg = tick_config(
            "recompute",
            dir,
            "in.jsonl",
            &format!("keep_failed_windows = {keep}"),
            "kind = \"file\"\npath = \"out.jsonl\"\n[error_sink]\nkind = \"file\"\npath = \"errors.jsonl\"",
        );
        cfg.plugin.path = stats_wasm().with_file_name("panicky.wasm");
        let spec = PipelineSpec::resolve(cfg, None).expect("spec");
        let runtime = Runtime::new(false).expect("runtime");
        let plugin = load_plugin(&spec, &runtime).expect("panicky");
        let opts = Options {
            quarantine: true,
            version_column: true,
            ..Options::default()
        };
        let mut stats = spec.clone();
        stats.cfg.plugin.path = stats_wasm();
        (
            Pipeline::build(spec, plugin, opts).expect("pipeline"),
            stats,
        )
    }

    /// (symbol, window_start, count, plugin_version) of the result rows.
    fn rows(dir: &Path) -> Vec<(String, String, Option<i64>, String)> {
        std::fs::read_to_string(dir.join("out.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let r: serde_json::Value = serde_json::from_str(l).expect("row");
                (
                    r["symbol"].as_str().expect("symbol").to_string(),
                    r["window_start"].as_str().expect("start").to_string(),
                    r["count"].as_i64(),
                    r["plugin_version"].as_str().expect("version").to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn the_next_version_computes_the_windows_a_failing_one_could_not() {
        let dir = tempfile::tempdir().expect("dir");
        // 1 s tumbling windows: BAD fails [0, 1 s) (2 events) and [1 s, 2 s) (1 event);
        // OK's [0, 1 s) works. The input ends at 2.5 s, [2 s, 3 s) is flushed at the end.
        let (mut p, stats) = serve_pipeline(
            dir.path(),
            &[
                ("BAD", 100),
                ("OK", 200),
                ("BAD", 900),
                ("BAD", 1_500),
                ("OK", 2_500),
            ],
            1_000,
        );
        while p.step().expect("step") == Step::More {}
        assert_eq!(p.summary().counters.plugin_errors, 2);
        let before = rows(dir.path());
        assert!(before.iter().all(|r| r.0 == "OK"), "{before:?}");
        let runtime = Runtime::new(false).expect("runtime");
        let fixed = load_plugin(&stats, &runtime).expect("stats");
        let version = fixed.version_id();
        p.swap_plugin(fixed).expect("swap");
        assert_eq!(p.summary().counters.windows_recomputed, 2);
        let start = |ms: i64| format_rfc3339_ms(ms);
        let after: Vec<_> = rows(dir.path())
            .into_iter()
            .filter(|r| r.3 == version)
            .collect();
        assert_eq!(
            after,
            [
                ("BAD".to_string(), start(0), Some(2), version.clone()),
                ("BAD".to_string(), start(1_000), Some(1), version.clone()),
            ]
        );
        // Computed once: a second swap has nothing left to compute.
        let again = load_plugin(&stats, &runtime).expect("stats");
        p.swap_plugin(again).expect("swap");
        assert_eq!(p.summary().counters.windows_recomputed, 2);
    }

    #[test]
    fn past_the_budget_the_oldest_failed_windows_go_first() {
        let dir = tempfile::tempdir().expect("dir");
        let (mut p, stats) = serve_pipeline(
            dir.path(),
            &[("BAD", 100), ("BAD", 1_100), ("BAD", 2_100), ("OK", 3_500)],
            1,
        );
        while p.step().expect("step") == Step::More {}
        assert_eq!(p.summary().counters.plugin_errors, 3);
        let runtime = Runtime::new(false).expect("runtime");
        p.swap_plugin(load_plugin(&stats, &runtime).expect("stats"))
            .expect("swap");
        assert_eq!(p.summary().counters.windows_recomputed, 1);
        let bad: Vec<_> = rows(dir.path())
            .into_iter()
            .filter(|r| r.0 == "BAD")
            .collect();
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert_eq!(bad[0].1, format_rfc3339_ms(2_000));
    }
}
