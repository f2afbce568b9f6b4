//! Human-readable tables of what the admin API returns, for the `weir plugin` CLI to print.
//! Plain text with aligned columns; no colours, no terminal detection, no printing.

use crate::serve::control::{PipelineState, PipelineView, VersionView};

/// One line per pipeline: tenant, pipeline, state, live version, versions kept, events
/// read, rows written and plugin errors; then one line per quarantined or failed pipeline
/// with its reason. Every line ends with `\n`.
///
/// ```text
/// TENANT  PIPELINE  STATE        LIVE VERSION           VERSIONS  EVENTS  ROWS  ERRORS
/// acme    stocks    running      vwap@0.1.0+0123456789ab       2    1200    40       0
/// globex  rides     quarantined  -                             0      10     0       5
///
/// globex/rides quarantined: 5 plugin failures in a row
/// ```
pub fn render_pipelines(pipelines: &[PipelineView]) -> String {
    let rows = pipelines
        .iter()
        .map(|p| {
            vec![
                p.tenant.clone(),
                p.name.clone(),
                state_name(&p.state).to_string(),
                p.versions
                    .iter()
                    .find(|v| v.live)
                    .map_or("-".to_string(), |v| v.id.clone()),
                p.versions.len().to_string(),
                p.events_read.to_string(),
                p.rows_written.to_string(),
                p.plugin_errors.to_string(),
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
    let reasons: Vec<String> = pipelines
        .iter()
        .filter_map(|p| {
            let reason = p.reason.as_deref()?;
            Some(format!("{} {}: {reason}\n", p.id(), state_name(&p.state)))
        })
        .collect();
    if !reasons.is_empty() {
        out.push('\n');
        out.extend(reasons);
    }
    out
}

/// One line per version, in the order given (the API lists them oldest first), with `*`
/// marking the live one. Every line ends with `\n`.
///
/// ```text
/// LIVE  VERSION                ORIGIN  DEPLOYED AT
///       vwap@0.1.0+0123456789ab  config  2025-01-02T03:04:05Z
/// *     vwap@0.2.0+ba9876543210  api     2025-01-02T04:00:00Z
/// ```
pub fn render_versions(versions: &[VersionView]) -> String {
    let rows = versions
        .iter()
        .map(|v| {
            vec![
                if v.live { "*" } else { "" }.to_string(),
                v.id.clone(),
                v.origin.clone(),
                v.deployed_at.clone(),
            ]
        })
        .collect();
    table(
        &["LIVE", "VERSION", "ORIGIN", "DEPLOYED AT"],
        &[false; 4],
        rows,
    )
}

/// The lowercase name the API uses for `state`.
fn state_name(state: &PipelineState) -> &'static str {
    match state {
        PipelineState::Running => "running",
        PipelineState::Paused => "paused",
        PipelineState::Quarantined => "quarantined",
        PipelineState::Finished => "finished",
        PipelineState::Failed => "failed",
    }
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

    fn version(id: &str, origin: &str, at: &str, live: bool) -> VersionView {
        VersionView {
            id: id.into(),
            sha256: "00".repeat(32),
            origin: origin.into(),
            deployed_at: at.into(),
            live,
        }
    }

    #[test]
    fn pipelines_table_aligns_columns_and_lists_reasons() {
        let pipelines = vec![
            PipelineView {
                tenant: "acme".into(),
                name: "stocks".into(),
                state: PipelineState::Running,
                reason: None,
                versions: vec![
                    version("vwap@0.1.0+aaaaaaaaaaaa", "config", "t0", false),
                    version("vwap@0.2.0+bbbbbbbbbbbb", "api", "t1", true),
                ],
                events_read: 1200,
                rows_written: 40,
                plugin_errors: 0,
            },
            PipelineView {
                tenant: "globex".into(),
                name: "rides".into(),
                state: PipelineState::Quarantined,
                reason: Some("5 plugin failures in a row".into()),
                versions: vec![],
                events_read: 10,
                rows_written: 0,
                plugin_errors: 5,
            },
        ];
        let expected = "\
TENANT  PIPELINE  STATE        LIVE VERSION             VERSIONS  EVENTS  ROWS  ERRORS
acme    stocks    running      vwap@0.2.0+bbbbbbbbbbbb         2    1200    40       0
globex  rides     quarantined  -                               0      10     0       5

globex/rides quarantined: 5 plugin failures in a row
";
        assert_eq!(render_pipelines(&pipelines), expected);
    }

    #[test]
    fn no_pipelines_is_just_the_header() {
        assert_eq!(
            render_pipelines(&[]),
            "TENANT  PIPELINE  STATE  LIVE VERSION  VERSIONS  EVENTS  ROWS  ERRORS\n"
        );
    }

    #[test]
    fn versions_table_marks_the_live_one() {
        let versions = vec![
            version(
                "vwap@0.1.0+aaaaaaaaaaaa",
                "config",
                "2025-01-02T03:04:05Z",
                false,
            ),
            version(
                "vwap@0.2.0+bbbbbbbbbbbb",
                "api",
                "2025-01-02T04:00:00Z",
                true,
            ),
        ];
        let expected = "\
LIVE  VERSION                  ORIGIN  DEPLOYED AT
      vwap@0.1.0+aaaaaaaaaaaa  config  2025-01-02T03:04:05Z
*     vwap@0.2.0+bbbbbbbbbbbb  api     2025-01-02T04:00:00Z
";
        assert_eq!(render_versions(&versions), expected);
    }
}
