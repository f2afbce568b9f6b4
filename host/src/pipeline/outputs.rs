//! A pipeline's four sinks by role (results, late events, dead letters, plugin errors),
//! the console's tap around them, and how fired windows' rows and errors are written.

use super::*;

pub(super) const DEAD_LETTER_COLUMNS: [&str; 5] =
    ["pipeline", "origin", "offset", "reason", "record"];

pub(super) const ERROR_COLUMNS: [&str; 8] = [
    "pipeline",
    "plugin",
    "kind",
    "error",
    "key",
    "window_start",
    "window_end",
    "revision",
];

pub(super) fn default_side_sink() -> SinkConfig {
    SinkConfig::Stderr {
        format: crate::config::Format::Jsonl,
    }
}

/// `sink`, the sink of `role`, copying its rows into the console's telemetry when there is
/// one (result rows into its rows, the rest into its error records).
pub(super) fn tap(
    console: Option<&Arc<crate::console::Telemetry>>,
    sink: Box<dyn Sink>,
    columns: Vec<String>,
    role: SinkRole,
) -> Box<dyn Sink> {
    match console {
        None => sink,
        Some(t) => {
            let recent = if role == SinkRole::Results {
                t.rows.clone()
            } else {
                t.errors.clone()
            };
            Box::new(crate::console::TapSink::new(sink, columns, role, recent))
        }
    }
}

pub(super) fn owned(columns: &[&str]) -> Vec<String> {
    columns.iter().map(|c| c.to_string()).collect()
}

pub(super) struct Outputs {
    pub(super) results: Box<dyn Sink>,
    pub(super) late: Option<Box<dyn Sink>>,
    pub(super) dead_letter: Box<dyn Sink>,
    pub(super) errors: Box<dyn Sink>,
}

impl Outputs {
    /// The order sinks are flushed and checkpointed in: the results first, the optional
    /// late sink last.
    pub(super) const ORDER: [SinkRole; 4] = [
        SinkRole::Results,
        SinkRole::DeadLetter,
        SinkRole::Errors,
        SinkRole::Late,
    ];

    /// The sink of `role`, if the pipeline has one.
    pub(super) fn get_mut(&mut self, role: SinkRole) -> Option<&mut Box<dyn Sink>> {
        match role {
            SinkRole::Results => Some(&mut self.results),
            SinkRole::Late => self.late.as_mut(),
            SinkRole::DeadLetter => Some(&mut self.dead_letter),
            SinkRole::Errors => Some(&mut self.errors),
        }
    }

    /// The health of every sink that reports one ([`Sink::health`]), in [`Self::ORDER`].
    pub(super) fn health(&self) -> Vec<std::sync::Arc<sink::Health>> {
        [
            Some(&self.results),
            Some(&self.dead_letter),
            Some(&self.errors),
            self.late.as_ref(),
        ]
        .into_iter()
        .flatten()
        .filter_map(|s| s.health())
        .collect()
    }
}

/// Where an [`Emitter`] hands each fired window: the pipeline's sinks ([`SinkWriter`]), or a
/// worker's list of outputs, merged back into input order by the pipeline's thread
/// (`parallelism`).
pub(crate) trait WindowSink {
    /// A window's rows, buffered until [`WindowSink::commit`].
    fn rows(
        &mut self,
        key: &[Value],
        window: Window,
        revision: u32,
        rows: Vec<plugin::Row>,
    ) -> Result<(), sink::Error>;
    /// A window's error record, handed to the operating system at once.
    fn error(
        &mut self,
        key: &[Value],
        window: Window,
        revision: u32,
        e: plugin::Error,
    ) -> Result<(), sink::Error>;
    /// Hands the buffered rows to the operating system.
    fn commit(&mut self) -> Result<(), sink::Error>;
}

/// Writes fired windows into a pipeline's result and error sinks, in the columns of
/// [`output_columns`].
pub(crate) struct SinkWriter<'a> {
    pub(super) out: &'a mut Outputs,
    pub(super) pipeline: &'a str,
    pub(super) key_names: &'a [String],
    pub(super) revisions: bool,
    pub(super) version: Option<&'a str>,
}

impl WindowSink for SinkWriter<'_> {
    fn rows(
        &mut self,
        key: &[Value],
        window: Window,
        revision: u32,
        rows: Vec<plugin::Row>,
    ) -> Result<(), sink::Error> {
        self.write_rows(key, window, revision, &rows)
    }

    fn error(
        &mut self,
        key: &[Value],
        window: Window,
        revision: u32,
        e: plugin::Error,
    ) -> Result<(), sink::Error> {
        let k = Key(key.to_vec());
        let at = Some((&k, window, revision));
        // Error records are rare and wanted at once: no buffering.
        write_error_row(&mut *self.out.errors, self.pipeline, self.key_names, &e, at)?;
        self.out.errors.flush()
    }

    fn commit(&mut self) -> Result<(), sink::Error> {
        self.out.results.commit()
    }
}

impl SinkWriter<'_> {
    /// Writes a window's rows (positional, in the plugin's output order) after its key,
    /// bounds, revision and version, straight into the result sink's buffer.
    pub(super) fn write_rows(
        &mut self,
        key: &[Value],
        window: Window,
        revision: u32,
        rows: &[plugin::Row],
    ) -> Result<(), sink::Error> {
        let mut cells: Vec<Cell<'_>> =
            Vec::with_capacity(key.len() + 4 + rows.first().map_or(0, Vec::len));
        for r in rows {
            cells.clear();
            cells.extend(key.iter().map(Cell::Value));
            cells.push(Cell::Time(window.start));
            cells.push(Cell::Time(window.end));
            if self.revisions {
                cells.push(Cell::I64(i64::from(revision)));
            }
            if let Some(v) = self.version {
                cells.push(Cell::Str(v));
            }
            cells.extend(r.iter().map(Cell::Value));
            self.out.results.write(&cells)?;
        }
        Ok(())
    }
}

/// Writes one error record, in [`ERROR_COLUMNS`]; the key and window columns are absent for
/// a failure outside a window (a filter call).
pub(super) fn write_error_row(
    sink: &mut dyn Sink,
    pipeline: &str,
    key_names: &[String],
    e: &plugin::Error,
    at: Option<(&Key, crate::window::Window, u32)>,
) -> Result<(), sink::Error> {
    let plugin_name = match e {
        plugin::Error::Trap { plugin, .. }
        | plugin::Error::Deadline { plugin, .. }
        | plugin::Error::Memory { plugin, .. }
        | plugin::Error::Fuel { plugin, .. }
        | plugin::Error::Failed { plugin, .. }
        | plugin::Error::BadOutput { plugin, .. }
        | plugin::Error::Configure { plugin, .. }
        | plugin::Error::Incompatible { plugin, .. } => plugin,
        plugin::Error::Compile { path, .. } => path,
    };
    let message = e.to_string();
    let key = at.map(|(key, _, _)| {
        let key_json: serde_json::Map<String, serde_json::Value> = key_names
            .iter()
            .cloned()
            .zip(key.0.iter().map(Value::to_json))
            .collect();
        serde_json::Value::Object(key_json).to_string()
    });
    let mut row = [
        Cell::Str(pipeline),
        Cell::Str(plugin_name),
        Cell::Str(e.kind()),
        Cell::Str(&message),
        Cell::Absent,
        Cell::Absent,
        Cell::Absent,
        Cell::Absent,
    ];
    if let (Some(key), Some((_, w, rev))) = (&key, at) {
        row[4] = Cell::Str(key);
        row[5] = Cell::Time(w.start);
        row[6] = Cell::Time(w.end);
        row[7] = Cell::I64(i64::from(rev));
    }
    sink.write(&row)
}
