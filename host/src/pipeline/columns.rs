//! The columns of a pipeline's result rows, and what changes when a new version's
//! outputs differ: the refusal on a CSV sink, and setting a CSV file aside.

use super::*;

/// The columns of a result row, in order: key fields, window bounds, `revision` (when
/// windows can fire more than once), `plugin_version` (in serve), then the plugin's outputs.
pub fn output_columns(cfg: &PipelineConfig, info: &PluginInfo, opts: &Options) -> Vec<String> {
    let mut cols: Vec<String> = cfg.schema.key.clone();
    cols.push("window_start".into());
    cols.push("window_end".into());
    if has_revisions(cfg) {
        cols.push("revision".into());
    }
    if opts.version_column {
        cols.push("plugin_version".into());
    }
    cols.extend(info.outputs.iter().map(|(n, _)| n.clone()));
    cols
}

/// The types of [`output_columns`], in order: what a database sink creates and checks its
/// table by.
pub fn output_types(
    cfg: &PipelineConfig,
    schema: &Schema,
    info: &PluginInfo,
    opts: &Options,
) -> Vec<sink::ColumnType> {
    use crate::value::FieldType;
    use sink::ColumnType;
    let of = |t: FieldType| match t {
        FieldType::F64 => ColumnType::Double,
        FieldType::I64 => ColumnType::BigInt,
        FieldType::Str => ColumnType::Text,
        FieldType::Bool => ColumnType::Boolean,
    };
    let mut types: Vec<ColumnType> = cfg
        .schema
        .key
        .iter()
        .map(|k| {
            schema
                .fields
                .iter()
                .find(|(n, _)| n == k)
                .map_or(ColumnType::Text, |(_, t)| of(*t))
        })
        .collect();
    types.extend([ColumnType::Timestamp, ColumnType::Timestamp]);
    if has_revisions(cfg) {
        types.push(ColumnType::BigInt);
    }
    if opts.version_column {
        types.push(ColumnType::Text);
    }
    types.extend(info.outputs.iter().map(|(_, t)| of(*t)));
    types
}

/// A hot swap refused because the new version's output columns differ from the live
/// one's and the result sink is CSV, whose header is fixed.
#[derive(Debug, thiserror::Error)]
#[error(
    "the new version's output columns differ from the live version's ({difference}) and the sink ({sink}) is CSV with a fixed header: deploy a version with the same outputs, or ask the operator to set `allow_output_change = true` in the pipeline's [plugin] section (a new file is then started)"
)]
pub struct OutputChangeRefused {
    /// The result sink, described.
    pub sink: String,
    /// What differs: columns removed, added, or the same columns in another order.
    pub difference: String,
}

/// Why pipeline `cfg` may not change its output columns from `old` to `new`: its result
/// sink is CSV and `[plugin] allow_output_change` is off. `None` when it may.
pub fn output_change_refusal(
    cfg: &PipelineConfig,
    old: &[String],
    new: &[String],
) -> Option<OutputChangeRefused> {
    // A CSV header fixes the columns unless a new file may be started; a database table
    // fixes them always.
    let csv = sink_format(&cfg.sink) == crate::config::Format::Csv;
    let table = matches!(cfg.sink, SinkConfig::Postgres { .. });
    (old != new && (table || (csv && !cfg.plugin.allow_output_change))).then(|| {
        OutputChangeRefused {
            sink: describe_sink(cfg, &cfg.sink),
            difference: column_difference(old, new),
        }
    })
}

/// A sink of pipeline `cfg` as its checkpoint identity and its errors name it:
/// `file /abs/out.csv (Csv)`, `kafka topic out (Jsonl)`, `stdout (Jsonl)`.
pub(super) fn describe_sink(cfg: &PipelineConfig, c: &SinkConfig) -> String {
    match c {
        SinkConfig::File { path, format, .. } => {
            format!("file {} ({format:?})", cfg.resolve(path).display())
        }
        SinkConfig::Kafka { topic, format, .. } => format!("kafka topic {topic} ({format:?})"),
        SinkConfig::Stdout { format } => format!("stdout ({format:?})"),
        SinkConfig::Stderr { format } => format!("stderr ({format:?})"),
        SinkConfig::Postgres { table, url, .. } => format!(
            "postgres table {table} at {}",
            url.as_ref()
                .map_or_else(|| "(url_env)".into(), |u| sink::describe_url(&u.0))
        ),
    }
}

/// The format rows are written in by a sink.
pub(super) fn sink_format(cfg: &SinkConfig) -> crate::config::Format {
    match cfg {
        SinkConfig::Stdout { format }
        | SinkConfig::Stderr { format }
        | SinkConfig::File { format, .. }
        | SinkConfig::Kafka { format, .. } => *format,
        // Rows are table rows; JSON is what a change of columns compares as.
        SinkConfig::Postgres { .. } => crate::config::Format::Jsonl,
    }
}

/// `removed: a, b; added: c`, or `same columns in another order: …`.
pub fn column_difference(old: &[String], new: &[String]) -> String {
    let removed: Vec<&str> = old
        .iter()
        .filter(|c| !new.contains(c))
        .map(String::as_str)
        .collect();
    let added: Vec<&str> = new
        .iter()
        .filter(|c| !old.contains(c))
        .map(String::as_str)
        .collect();
    let mut parts = Vec::new();
    if !removed.is_empty() {
        parts.push(format!("removed: {}", removed.join(", ")));
    }
    if !added.is_empty() {
        parts.push(format!("added: {}", added.join(", ")));
    }
    if parts.is_empty() {
        parts.push(format!("same columns in another order: {}", new.join(", ")));
    }
    parts.join("; ")
}

/// Where a CSV file is set aside when the output columns change at `at`:
/// `out/rides.csv` → `out/rides.20261123T213000Z.csv`, with `-2`, `-3`… if taken.
pub(super) fn set_aside_name(path: &Path, at: chrono::DateTime<chrono::Utc>) -> PathBuf {
    let stem = path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let ext = path
        .extension()
        .map_or_else(String::new, |e| format!(".{}", e.to_string_lossy()));
    let stamp = at.format("%Y%m%dT%H%M%SZ");
    let mut n = 1;
    loop {
        let suffix = if n == 1 {
            String::new()
        } else {
            format!("-{n}")
        };
        let candidate = path.with_file_name(format!("{stem}.{stamp}{suffix}{ext}"));
        if !candidate.exists() {
            return candidate;
        }
        n += 1;
    }
}

pub(super) fn has_revisions(cfg: &PipelineConfig) -> bool {
    cfg.window.allowed_lateness.0 > 0 || cfg.emit.mode == EmitMode::Update
}

impl Pipeline {
    /// Writes rows in `columns` from now on. JSON lines name their columns, so the sink only
    /// learns the new ones; a CSV file sink is flushed, renamed to `<stem>.<UTC time of the
    /// change>.csv` and a new file started with the new header; CSV on stdout or stderr is
    /// opened again, which writes the new header line; a Kafka CSV sink writes the new
    /// columns in order.
    pub(super) fn change_output_columns(&mut self, columns: Vec<String>) -> anyhow::Result<()> {
        let csv = sink_format(&self.spec.cfg.sink) == crate::config::Format::Csv;
        let reopen = match &self.spec.cfg.sink {
            SinkConfig::File { path, .. } if csv => {
                self.out.results.flush().context("sink")?;
                let path = self.spec.cfg.resolve(path);
                let aside = set_aside_name(&path, chrono::Utc::now());
                std::fs::rename(&path, &aside).with_context(|| {
                    format!(
                        "setting {} aside as {} for the new output columns",
                        path.display(),
                        aside.display()
                    )
                })?;
                tracing::info!(pipeline = %self.spec.cfg.name, old = %aside.display(), new = %path.display(), "output columns changed: the CSV file was set aside and a new one started");
                true
            }
            SinkConfig::Stdout { .. } | SinkConfig::Stderr { .. } if csv => {
                self.out.results.flush().context("sink")?;
                true
            }
            _ => false,
        };
        if reopen {
            let sink = sink::open_for(
                &self.spec.cfg.sink,
                &self.spec.cfg.base_dir,
                columns.clone(),
                &self.spec.cfg.name,
            )
            .context("sink")?;
            self.out.results = tap(self.opts.console.as_ref(), sink, columns, SinkRole::Results);
        } else {
            self.out.results.set_columns(columns);
        }
        Ok(())
    }
}
