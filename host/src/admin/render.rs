//! Human-readable tables of what the admin API returns, for the `weir plugin` CLI to print.
//! Plain text with aligned columns; no colours, no terminal detection, no printing.

use crate::serve::control::{PipelineView, ShadowState, ShadowView, VersionStatus, VersionView};

/// One line per pipeline: tenant, pipeline, state, live version, versions kept, events
/// read, rows written and plugin errors; then what a tenant needs to act, one line each:
/// why a pipeline is quarantined or failed, its last plugin error, its last rejected deploy
/// (when no version was deployed after it); then each pipeline's versions with their status
/// ([`render_versions`]). Every line ends with `\n`.
///
/// ```text
/// TENANT  PIPELINE  STATE        LIVE VERSION           VERSIONS  EVENTS  ROWS  ERRORS
/// acme    stocks    running      vwap@0.1.0+0123456789ab       2    1200    40       0
/// globex  rides     quarantined  -                             0      10     0       5
///
/// globex/rides quarantined: 5 plugin failures in a row, the last: …
/// globex/rides last plugin error of p@1+0123456789ab (2025-01-02T04:00:00Z): plugin p trapped in aggregate: panicked at src/lib.rs:3:5: boom
/// acme/stocks last deploy rejected (2025-01-02T05:00:00Z, file /plugins/acme/stocks.wasm): …
///
/// acme/stocks versions:
/// STATUS    VERSION  …
/// ```
pub fn render_pipelines(pipelines: &[PipelineView]) -> String {
    let rows = pipelines
        .iter()
        .map(|p| {
            vec![
                p.tenant.clone(),
                p.name.clone(),
                p.state.name().to_string(),
                p.versions
                    .iter()
                    .find(|v| v.live)
                    .map_or("-".to_string(), |v| v.id.clone()),
                p.versions
                    .iter()
                    .filter(|v| v.status != VersionStatus::Rejected)
                    .count()
                    .to_string(),
                p.counters.events_read.to_string(),
                p.counters.rows_written.to_string(),
                p.counters.plugin_errors.to_string(),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "TENANT",
            "PIPELINE",
            "STATE",
            "LIVE VERSION",
            "VERSIONS",
            "EVENTS",
            "ROWS",
            "ERRORS",
        ],
        &[false, false, false, false, true, true, true, true],
        rows,
    );
    let mut notes = String::new();
    for p in pipelines {
        let id = p.id();
        if let Some(reason) = &p.reason {
            notes.push_str(&format!("{id} {}: {reason}\n", p.state.name()));
        }
        if let Some(r) = &p.sink_retrying {
            notes.push_str(&format!(
                "{id} retrying a commit to {} since {} ({} attempts): {}\n",
                r.sink, r.since, r.attempts, r.error
            ));
        }
        if let Some(e) = &p.last_plugin_error {
            let resolved = if e.resolved {
                format!(" [resolved: {} is no longer live]", e.version)
            } else {
                String::new()
            };
            notes.push_str(&format!(
                "{id} last plugin error of {} ({}): {}{resolved}\n",
                e.version, e.at, e.message
            ));
        }
        if let Some(r) = &p.last_rejected {
            let superseded = p
                .versions
                .iter()
                .any(|v| v.status != VersionStatus::Rejected && v.deployed_at > r.at);
            if !superseded {
                let file = r
                    .file
                    .as_ref()
                    .map_or(String::new(), |f| format!(", file {f}"));
                notes.push_str(&format!(
                    "{id} last deploy rejected ({}, {}{file}): {}\n",
                    r.at, r.origin, r.reason
                ));
            }
        }
    }
    if !notes.is_empty() {
        out.push('\n');
        out.push_str(&notes);
    }
    for p in pipelines.iter().filter(|p| !p.versions.is_empty()) {
        out.push_str(&format!("\n{} versions:\n", p.id()));
        out.push_str(&render_versions(&p.versions));
    }
    out
}

/// One line per version, in the order given (the API lists them oldest first), with its
/// status (`live`, `previous` — where a rollback goes —, `rolled_back`, `quarantined`,
/// `rejected`, `kept`) and, for a quarantined or rejected one, why. Every line ends with
/// `\n`.
///
/// ```text
/// STATUS    VERSION                  ORIGIN  DEPLOYED AT           REASON
/// previous  vwap@0.1.0+0123456789ab  config  2025-01-02T03:04:05Z
/// live      vwap@0.2.0+ba9876543210  api     2025-01-02T04:00:00Z
/// ```
pub fn render_versions(versions: &[VersionView]) -> String {
    let rows = versions
        .iter()
        .map(|v| {
            vec![
                v.status.name().to_string(),
                v.id.clone(),
                v.origin.clone(),
                v.deployed_at.clone(),
                v.status_reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &["STATUS", "VERSION", "ORIGIN", "DEPLOYED AT", "REASON"],
        &[false; 5],
        rows,
    )
}

/// A pipeline's last shadow run as `weir plugin diff` prints it: where it stands, the
/// counts, both versions' costs, and the first differing windows, a line per cell.
pub fn render_shadow(tenant: &str, pipeline: &str, s: &ShadowView) -> String {
    let r = &s.report;
    let state = match s.state {
        ShadowState::Running => "running",
        ShadowState::Stopped => "stopped",
        ShadowState::Promoted => "promoted",
        ShadowState::Discarded => "discarded",
    };
    let mut out = format!(
        "{tenant}/{pipeline}: shadow {} ({state}, since {}) beside live {}\n",
        r.version, r.since, s.live_version
    );
    out.push_str(&format!(
        "windows compared {}, equal {}, differing {}, candidate errors {}\n",
        r.windows_compared, r.windows_equal, r.windows_differing, r.candidate_errors
    ));
    if let Some(why) = &r.stopped {
        out.push_str(&format!("stopped: {why}\n"));
    }
    if let Some(p) = &r.promote_after {
        out.push_str(&format!(
            "promotes by itself after {} windows with at most {} differing\n",
            p.windows, p.differing
        ));
    }
    if !r.columns_added.is_empty() {
        out.push_str(&format!("columns added: {}\n", r.columns_added.join(", ")));
    }
    if !r.columns_removed.is_empty() {
        out.push_str(&format!(
            "columns removed: {}\n",
            r.columns_removed.join(", ")
        ));
    }
    let cost = |who: &str, c: &crate::pipeline::Cost| {
        vec![
            who.to_string(),
            c.calls.to_string(),
            format!("{:.3}", c.p50_seconds * 1e3),
            format!("{:.3}", c.p99_seconds * 1e3),
            format!("{:.3}", c.cpu_seconds),
            c.memory_bytes.to_string(),
        ]
    };
    out.push('\n');
    out.push_str(&table(
        &["", "CALLS", "P50 MS", "P99 MS", "CPU S", "MEMORY B"],
        &[false, true, true, true, true, true],
        vec![
            cost("live", &r.live_cost),
            cost("candidate", &r.candidate_cost),
        ],
    ));
    if !r.differing.is_empty() {
        let mut rows = Vec::new();
        for w in &r.differing {
            let key = w
                .key
                .values()
                .map(|v| match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(",");
            let at = |row: String, column: String, live: String, candidate: String| {
                vec![
                    key.clone(),
                    w.window_start.clone(),
                    w.window_end.clone(),
                    row,
                    column,
                    live,
                    candidate,
                ]
            };
            if let Some(e) = &w.error {
                rows.push(at(
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    format!("error: {e}"),
                ));
            } else if w.cells.is_empty() {
                rows.push(at(
                    "-".into(),
                    "(rows)".into(),
                    w.live_rows.to_string(),
                    w.candidate_rows.to_string(),
                ));
            }
            for c in &w.cells {
                rows.push(at(
                    c.row.to_string(),
                    c.column.clone(),
                    c.live.to_string(),
                    c.candidate.to_string(),
                ));
            }
        }
        out.push('\n');
        out.push_str(&table(
            &[
                "KEY",
                "WINDOW START",
                "WINDOW END",
                "ROW",
                "COLUMN",
                "LIVE",
                "CANDIDATE",
            ],
            &[false, false, false, true, false, true, true],
            rows,
        ));
    }
    out
}

/// The view as `weir plugin schema` prints it.
pub fn render_schema(tenant: &str, pipeline: &str, s: &crate::serve::SchemaView) -> String {
    let mut out = format!("{tenant}/{pipeline}\n");
    out.push_str(&format!("key:        {}\n", s.key.join(", ")));
    out.push_str(&format!("timestamp:  {}\n", s.timestamp));
    out.push_str(&format!(
        "window:     {} (allowed lateness {})\n",
        s.window, s.allowed_lateness
    ));
    out.push_str(&format!("watermark:  {} behind\n", s.watermark_delay));
    out.push_str(&format!(
        "rows:       {}\n\nfields:\n",
        s.output_columns.join(", ")
    ));
    for f in &s.fields {
        let mut notes = Vec::new();
        if f.key {
            notes.push("key");
        }
        if f.required {
            notes.push("required");
        }
        out.push_str(&format!("  {} {}", f.name, f.ty));
        if !notes.is_empty() {
            out.push_str(&format!(" ({})", notes.join(", ")));
        }
        out.push('\n');
    }
    out.push_str("\nparams:\n");
    if s.params.is_empty() {
        out.push_str("  (none)\n");
    }
    for (k, v) in &s.params {
        out.push_str(&format!("  {k} = {v:?}\n"));
    }
    out
}

/// Columns separated by two spaces, each as wide as its widest cell, right-aligned where
/// `right` says so; no trailing spaces.
pub(crate) fn table(header: &[&str], right: &[bool], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header = header.iter().map(|h| h.to_string()).collect();
    let mut out = String::new();
    for row in std::iter::once(header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .zip(right)
            .map(|((cell, &width), &right)| {
                if right {
                    format!("{cell:>width$}")
                } else {
                    format!("{cell:<width$}")
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::control::{PipelineState, PluginErrorView, RejectedView, SinkRetryView};

    fn version(id: &str, origin: &str, at: &str, status: VersionStatus) -> VersionView {
        VersionView {
            id: id.into(),
            sha256: "00".repeat(32),
            origin: origin.into(),
            deployed_at: at.into(),
            live: status == VersionStatus::Live,
            status,
            status_reason: None,
        }
    }

    #[test]
    fn pipelines_table_aligns_columns_and_lists_what_to_act_on() {
        let mut rejected = version(
            "rejected+cccccccccccc",
            "file",
            "t2",
            VersionStatus::Rejected,
        );
        rejected.status_reason = Some("not a WebAssembly component: the file is empty".into());
        let pipelines = vec![
            PipelineView {
                tenant: "acme".into(),
                name: "stocks".into(),
                state: PipelineState::Running,
                reason: None,
                versions: vec![
                    version(
                        "vwap@0.1.0+aaaaaaaaaaaa",
                        "config",
                        "t0",
                        VersionStatus::Previous,
                    ),
                    version("vwap@0.2.0+bbbbbbbbbbbb", "api", "t1", VersionStatus::Live),
                    rejected,
                ],
                last_rejected: Some(RejectedView {
                    reason: "not a WebAssembly component: the file is empty".into(),
                    at: "t2".into(),
                    origin: "file".into(),
                    file: Some("/p/acme/stocks.wasm".into()),
                    sha256: "cc".repeat(32),
                }),
                last_plugin_error: None,
                sink_retrying: Some(SinkRetryView {
                    sink: "postgres table stocks_ma".into(),
                    since: "t4".into(),
                    attempts: 3,
                    error: "connecting to postgresql://db:5432/analytics: connection refused"
                        .into(),
                }),
                counters: crate::counters::Counters {
                    events_read: 1200,
                    rows_written: 40,
                    plugin_errors: 0,
                    ..Default::default()
                },
            },
            PipelineView {
                tenant: "globex".into(),
                name: "rides".into(),
                state: PipelineState::Quarantined,
                reason: Some("5 plugin failures in a row".into()),
                versions: vec![],
                last_rejected: None,
                last_plugin_error: Some(PluginErrorView {
                    message: "plugin p trapped in aggregate: panicked at src/lib.rs:3:5: boom"
                        .into(),
                    at: "t9".into(),
                    version: "p@1+aaaaaaaaaaaa".into(),
                    resolved: false,
                }),
                sink_retrying: None,
                counters: crate::counters::Counters {
                    events_read: 10,
                    rows_written: 0,
                    plugin_errors: 5,
                    ..Default::default()
                },
            },
        ];
        // VERSIONS counts kept versions only: the rejected one is not kept.
        let expected = "\
TENANT  PIPELINE  STATE        LIVE VERSION             VERSIONS  EVENTS  ROWS  ERRORS
acme    stocks    running      vwap@0.2.0+bbbbbbbbbbbb         2    1200    40       0
globex  rides     quarantined  -                               0      10     0       5

acme/stocks retrying a commit to postgres table stocks_ma since t4 (3 attempts): connecting to postgresql://db:5432/analytics: connection refused
acme/stocks last deploy rejected (t2, file, file /p/acme/stocks.wasm): not a WebAssembly component: the file is empty
globex/rides quarantined: 5 plugin failures in a row
globex/rides last plugin error of p@1+aaaaaaaaaaaa (t9): plugin p trapped in aggregate: panicked at src/lib.rs:3:5: boom

acme/stocks versions:
STATUS    VERSION                  ORIGIN  DEPLOYED AT  REASON
previous  vwap@0.1.0+aaaaaaaaaaaa  config  t0
live      vwap@0.2.0+bbbbbbbbbbbb  api     t1
rejected  rejected+cccccccccccc    file    t2           not a WebAssembly component: the file is empty
";
        assert_eq!(render_pipelines(&pipelines), expected);
    }

    #[test]
    fn a_rejection_followed_by_a_good_deploy_is_not_listed() {
        let p = PipelineView {
            tenant: "acme".into(),
            name: "stocks".into(),
            state: PipelineState::Running,
            reason: None,
            versions: vec![version(
                "v@1+aaaaaaaaaaaa",
                "api",
                "t3",
                VersionStatus::Live,
            )],
            last_rejected: Some(RejectedView {
                reason: "bad".into(),
                at: "t2".into(),
                origin: "api".into(),
                file: None,
                sha256: String::new(),
            }),
            last_plugin_error: None,
            sink_retrying: None,
            counters: crate::counters::Counters {
                events_read: 0,
                rows_written: 0,
                plugin_errors: 0,
                ..Default::default()
            },
        };
        assert!(!render_pipelines(&[p]).contains("rejected"));
    }

    #[test]
    fn no_pipelines_is_just_the_header() {
        assert_eq!(
            render_pipelines(&[]),
            "TENANT  PIPELINE  STATE  LIVE VERSION  VERSIONS  EVENTS  ROWS  ERRORS\n"
        );
    }

    #[test]
    fn versions_table_gives_each_status_and_reason() {
        let mut q = version(
            "vwap@0.3.0+cccccccccccc",
            "file",
            "2025-01-02T05:00:00Z",
            VersionStatus::Quarantined,
        );
        q.status_reason = Some("10 plugin failures in a row".into());
        let versions = vec![
            version(
                "vwap@0.1.0+aaaaaaaaaaaa",
                "config",
                "2025-01-02T03:04:05Z",
                VersionStatus::Previous,
            ),
            version(
                "vwap@0.2.0+bbbbbbbbbbbb",
                "api",
                "2025-01-02T04:00:00Z",
                VersionStatus::Live,
            ),
            q,
        ];
        let expected = "\
STATUS       VERSION                  ORIGIN  DEPLOYED AT           REASON
previous     vwap@0.1.0+aaaaaaaaaaaa  config  2025-01-02T03:04:05Z
live         vwap@0.2.0+bbbbbbbbbbbb  api     2025-01-02T04:00:00Z
quarantined  vwap@0.3.0+cccccccccccc  file    2025-01-02T05:00:00Z  10 plugin failures in a row
";
        assert_eq!(render_versions(&versions), expected);
    }
}
