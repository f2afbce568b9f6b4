//! Sinks: where result rows, late events, dead letters and plugin errors are written.
//!
//! Every record is a flat row of named values; a sink encodes it as one JSON object per line
//! or as a CSV line under a header fixed when the sink is opened. Sinks do not know what the
//! rows mean.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::config::{Format, SinkConfig};
use crate::value::Value;

/// Errors opening or writing a sink.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be created or opened.
    #[error("cannot open sink file {path}: {source}; check that the directory is writable")]
    Open {
        /// The path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A write failed.
    #[error("writing to {sink}: {source}")]
    Write {
        /// The sink.
        sink: String,
        /// Why.
        source: io::Error,
    },
}

/// A destination for rows.
pub trait Sink: Send {
    /// Writes one row.
    fn write(&mut self, row: &[(String, Value)]) -> Result<(), Error>;
    /// Flushes buffered rows.
    fn flush(&mut self) -> Result<(), Error>;
    /// A short description: `stdout`, `file out/x.jsonl`.
    fn describe(&self) -> String;
}

/// Opens the sink a config describes. `columns` fixes the CSV header; JSON lines ignore it.
/// Relative file paths resolve against `base_dir`.
pub fn open(
    cfg: &SinkConfig,
    base_dir: &Path,
    columns: Vec<String>,
) -> Result<Box<dyn Sink>, Error> {
    Ok(match cfg {
        SinkConfig::Stdout { format } => Box::new(RowWriter::new(
            "stdout".into(),
            Box::new(io::stdout()),
            *format,
            columns,
            true,
        )),
        SinkConfig::Stderr { format } => Box::new(RowWriter::new(
            "stderr".into(),
            Box::new(io::stderr()),
            *format,
            columns,
            true,
        )),
        SinkConfig::File {
            path,
            format,
            append,
        } => {
            let path = if path.is_absolute() {
                path.clone()
            } else {
                base_dir.join(path)
            };
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| Error::Open {
                    path: path.clone(),
                    source,
                })?;
            }
            let file = OpenOptions::new()
                .create(true)
                .write(true)
                .append(*append)
                .truncate(!*append)
                .open(&path)
                .map_err(|source| Error::Open {
                    path: path.clone(),
                    source,
                })?;
            let empty = file.metadata().map(|m| m.len() == 0).unwrap_or(true);
            Box::new(RowWriter::new(
                format!("file {}", path.display()),
                Box::new(file),
                *format,
                columns,
                empty,
            ))
        }
    })
}

/// A sink that encodes rows onto any writer.
pub struct RowWriter {
    name: String,
    out: BufWriter<Box<dyn Write + Send>>,
    format: Format,
    columns: Vec<String>,
    header_due: bool,
    line: Vec<u8>,
}

impl RowWriter {
    /// A writer; `write_header` says whether a CSV header is due (false when appending to a
    /// non-empty file).
    pub fn new(
        name: String,
        out: Box<dyn Write + Send>,
        format: Format,
        columns: Vec<String>,
        write_header: bool,
    ) -> Self {
        RowWriter {
            name,
            out: BufWriter::with_capacity(64 * 1024, out),
            format,
            columns,
            header_due: write_header,
            line: Vec::with_capacity(256),
        }
    }

    fn io(&self, source: io::Error) -> Error {
        Error::Write {
            sink: self.name.clone(),
            source,
        }
    }
}

impl Sink for RowWriter {
    fn write(&mut self, row: &[(String, Value)]) -> Result<(), Error> {
        self.line.clear();
        match self.format {
            Format::Jsonl => encode_json(row, &mut self.line),
            Format::Csv => {
                if self.header_due {
                    self.header_due = false;
                    let header: Vec<&str> = self.columns.iter().map(String::as_str).collect();
                    encode_csv(header.into_iter(), &mut self.line);
                }
                let cells = self.columns.iter().map(|c| {
                    row.iter()
                        .find(|(k, _)| k == c)
                        .map(|(_, v)| v.to_string())
                        .unwrap_or_default()
                });
                let cells: Vec<String> = cells.collect();
                encode_csv(cells.iter().map(String::as_str), &mut self.line);
            }
        }
        let line = std::mem::take(&mut self.line);
        let res = self.out.write_all(&line);
        self.line = line;
        res.map_err(|e| self.io(e))
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.out.flush().map_err(|e| self.io(e))
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

/// Appends one JSON object and a newline.
fn encode_json(row: &[(String, Value)], out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, (k, v)) in row.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Serializing a str or a JSON value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, k);
        out.push(b':');
        let _ = serde_json::to_writer(&mut *out, &v.to_json());
    }
    out.extend_from_slice(b"}\n");
}

/// Appends one CSV line, quoting cells that need it.
fn encode_csv<'a>(cells: impl Iterator<Item = &'a str>, out: &mut Vec<u8>) {
    for (i, c) in cells.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if c.contains([',', '"', '\n', '\r']) {
            out.push(b'"');
            out.extend_from_slice(c.replace('"', "\"\"").as_bytes());
            out.push(b'"');
        } else {
            out.extend_from_slice(c.as_bytes());
        }
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> Vec<(String, Value)> {
        vec![
            ("symbol".into(), Value::Str("A\"B".into())),
            ("avg".into(), Value::F64(1.5)),
            ("n".into(), Value::I64(3)),
            ("x".into(), Value::Null),
        ]
    }

    #[test]
    fn json_lines_keep_field_order_and_escape() {
        let mut out = Vec::new();
        encode_json(&row(), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"symbol\":\"A\\\"B\",\"avg\":1.5,\"n\":3,\"x\":null}\n"
        );
    }

    #[test]
    fn csv_header_once_then_cells_by_column_with_quoting() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SinkConfig::File {
            path: "out/r.csv".into(),
            format: Format::Csv,
            append: true,
        };
        let cols: Vec<String> = ["symbol", "n", "avg", "missing"].map(String::from).to_vec();
        for _ in 0..2 {
            let mut s = open(&cfg, dir.path(), cols.clone()).unwrap();
            s.write(&row()).unwrap();
            s.flush().unwrap();
        }
        let text = std::fs::read_to_string(dir.path().join("out/r.csv")).unwrap();
        assert_eq!(
            text,
            "symbol,n,avg,missing\n\"A\"\"B\",3,1.5,\n\"A\"\"B\",3,1.5,\n"
        );
    }
}
