//! CSV: one record per line, columns mapped to schema fields by the header (or by
//! `source.csv.columns`), cells coerced like JSON values with empty cells as null.
//!
//! Owns splitting a line into cells (quoted cells with embedded delimiters and `""` quotes)
//! and the column layout of each input file: with `header = true`, the first non-blank line
//! of every origin is a header (blank lines before it are skipped), so files of one glob may
//! order their columns differently.
//!
//! Limitation: sources frame records by line, so a quoted cell cannot contain a line break.
//! Such a record arrives cut in two; its first part fails with "unterminated quoted cell"
//! and its second part usually fails too. The splitter is hand-written rather than
//! `csv_core` because `csv_core` silently closes an unterminated quote at end of input,
//! which would turn that case into a wrong event instead of a dead letter.

use tracing::warn;

use super::coerce::{Raw, check_required, coerce, missing, parse_timestamp};
use super::{DecodeError, Decoder, Event, EventTime, Schema, record_time};
use crate::config::CsvOptions;
use crate::source::RawRecord;
use crate::value::Value;

/// Decodes CSV lines into events of a [`Schema`].
///
/// Columns map to fields by name; columns the schema does not declare are ignored. A
/// declared field with no column is null on every record, or an error naming the column
/// when the field is required (key fields and the timestamp always are).
pub struct CsvDecoder {
    schema: Schema,
    opts: CsvOptions,
    delimiter: u8,
    /// The current column layout; `None` until a header line was read (or after a bad one).
    layout: Option<Layout>,
    /// The origin whose header line has been read (`header = true`); a record from any
    /// other origin starts a new file, whose first non-blank line is its header.
    header_of: Option<std::sync::Arc<str>>,
    /// Unquoted text of the current line's cells, back to back.
    cells: String,
    /// End of each cell in `cells`.
    ends: Vec<usize>,
}

/// Which column holds what, for the current input file.
#[derive(Debug, Clone)]
struct Layout {
    /// Per schema field, its column.
    fields: Vec<Option<usize>>,
    /// The timestamp's column.
    timestamp: Option<usize>,
    /// How many cells every record must have.
    width: usize,
    /// Where `width` comes from, for the error message: "header" or "source.csv.columns".
    named_by: &'static str,
}

impl Layout {
    fn new<'a>(
        schema: &Schema,
        columns: impl Iterator<Item = &'a str> + Clone,
        named_by: &'static str,
    ) -> Self {
        let position = |name: &str| columns.clone().position(|c| c == name);
        Layout {
            fields: schema
                .fields
                .iter()
                .map(|(name, _)| position(name))
                .collect(),
            timestamp: schema.time.field().and_then(position),
            width: columns.clone().count(),
            named_by,
        }
    }
}

impl CsvDecoder {
    /// A decoder for records of this schema. The delimiter must be ASCII (config validation
    /// checks it); a non-ASCII one falls back to `,`.
    pub fn new(schema: Schema, opts: CsvOptions) -> Self {
        let delimiter = u8::try_from(opts.delimiter)
            .ok()
            .filter(u8::is_ascii)
            .unwrap_or(b',');
        let layout = (!opts.header).then(|| {
            Layout::new(
                &schema,
                opts.columns.iter().map(|c| c.trim()),
                "source.csv.columns",
            )
        });
        CsvDecoder {
            schema,
            opts,
            delimiter,
            layout,
            header_of: None,
            cells: String::new(),
            ends: Vec::new(),
        }
    }

    fn cell(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.cells[start..self.ends[i]]
    }

    /// Reads a header line: the new column layout for the rest of this origin.
    fn read_header(&mut self, raw: &RawRecord<'_>, line: &str) -> Result<(), DecodeError> {
        self.layout = None;
        split(line, self.delimiter, &mut self.cells, &mut self.ends)
            .map_err(|e| DecodeError::new(format!("CSV header: {e}")))?;
        let names = (0..self.ends.len())
            .map(|i| self.cell(i).trim())
            .map(|c| c.strip_prefix('\u{feff}').unwrap_or(c));
        let layout = Layout::new(&self.schema, names, "header");
        for (i, (name, _)) in self.schema.fields.iter().enumerate() {
            if layout.fields[i].is_none() {
                warn!(origin = %raw.origin, column = %name, required = self.schema.required[i],
                    "CSV header has no column for a schema field");
            }
        }
        if let Some(ts) = self.schema.time.field()
            && layout.timestamp.is_none()
        {
            warn!(origin = %raw.origin, column = %ts,
                "CSV header has no column for the timestamp field");
        }
        self.layout = Some(layout);
        Ok(())
    }
}

impl Decoder for CsvDecoder {
    fn decode(&mut self, raw: &RawRecord<'_>) -> Result<Option<Event>, DecodeError> {
        let line = raw.payload.strip_suffix('\r').unwrap_or(raw.payload);
        if self.opts.header && self.header_of.as_deref() != Some(&**raw.origin) {
            if line.trim().is_empty() {
                // Blank lines before the header carry nothing: skipped, not dead-lettered.
                return Ok(None);
            }
            self.header_of = Some(raw.origin.clone());
            self.read_header(raw, line)?;
            return Ok(None);
        }
        if line.trim().is_empty() {
            return Err(DecodeError::new("empty record"));
        }
        let Some(layout) = self.layout.take() else {
            return Err(DecodeError::new(
                "no valid CSV header line before this record (source.csv.header = true)",
            ));
        };
        let result = self.decode_cells(&layout, raw, line);
        self.layout = Some(layout);
        result.map(Some)
    }

    fn prime(&mut self, header: &RawRecord<'_>) {
        if self.opts.header {
            // A bad header was dead-lettered by the run that read it first; its records
            // are refused again, as they were then.
            let _ = self.decode(header);
        }
    }
}

impl CsvDecoder {
    fn decode_cells(
        &mut self,
        layout: &Layout,
        raw: &RawRecord<'_>,
        line: &str,
    ) -> Result<Event, DecodeError> {
        split(line, self.delimiter, &mut self.cells, &mut self.ends).map_err(DecodeError::new)?;
        if self.ends.len() != layout.width {
            return Err(DecodeError::new(format!(
                "CSV line has {} cells, {} has {}",
                self.ends.len(),
                layout.named_by,
                layout.width
            )));
        }
        let schema = &self.schema;
        let no_column = |name: &str| {
            let columns = if layout.named_by == "header" {
                "the CSV header"
            } else {
                layout.named_by
            };
            DecodeError::new(format!(
                "missing required field `{name}`: {columns} has no column `{name}`"
            ))
        };
        let ts = match &schema.time {
            EventTime::Field { name, format } => {
                let col = layout.timestamp.ok_or_else(|| no_column(name))?;
                parse_timestamp(format, Raw::Str(self.cell(col)))
                    .map_err(|e| DecodeError::new(format!("field `{name}`: {e}")))?
                    .ok_or_else(|| missing(name))?
            }
            EventTime::Record => record_time(raw)?,
        };
        let mut values = Vec::with_capacity(schema.fields.len());
        for (i, (name, ty)) in schema.fields.iter().enumerate() {
            let value = match layout.fields[i] {
                Some(col) => coerce(*ty, Raw::Str(self.cell(col)), true)
                    .map_err(|e| DecodeError::new(format!("field `{name}`: {e}")))?,
                None if schema.required[i] => return Err(no_column(name)),
                None => Value::Null,
            };
            values.push(value);
        }
        check_required(schema, &values)?;
        Ok(Event { ts, values })
    }
}

/// Splits one CSV line into cells, written unquoted into `cells` with their ends in `ends`.
///
/// A cell that starts with `"` is quoted: it runs to the next lone `"`, `""` inside it is
/// one quote, and delimiters inside it are text. Text after the closing quote up to the
/// delimiter is kept as is (lenient, like the `csv` crate). A quote elsewhere is plain text.
fn split(
    line: &str,
    delimiter: u8,
    cells: &mut String,
    ends: &mut Vec<usize>,
) -> Result<(), String> {
    cells.clear();
    ends.clear();
    let bytes = line.as_bytes();
    let find_delimiter = |from: usize| {
        bytes[from..]
            .iter()
            .position(|&b| b == delimiter)
            .map_or(bytes.len(), |p| from + p)
    };
    // Every index below is at an ASCII byte or at the end, so slicing stays on char boundaries.
    let mut i = 0;
    loop {
        if bytes.get(i) == Some(&b'"') {
            i += 1;
            loop {
                let Some(q) = bytes[i..].iter().position(|&b| b == b'"') else {
                    return Err(format!(
                        "unterminated quoted cell {} (quoted line breaks are not supported)",
                        ends.len() + 1
                    ));
                };
                cells.push_str(&line[i..i + q]);
                i += q + 1;
                if bytes.get(i) == Some(&b'"') {
                    cells.push('"');
                    i += 1;
                } else {
                    break;
                }
            }
        }
        let end = find_delimiter(i);
        cells.push_str(&line[i..end]);
        ends.push(cells.len());
        if end == bytes.len() {
            return Ok(());
        }
        i = end + 1;
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::config::SchemaConfig;

    const TAXI_HEADER: &str = "trip_id,trip_start_timestamp,trip_seconds,trip_miles,pickup_community_area,pickup_location,fare,tips,trip_total,payment_type";

    fn taxi_schema() -> Schema {
        let cfg: SchemaConfig = toml::from_str(
            r#"
            timestamp = { field = "trip_start_timestamp", format = "%m/%d/%Y %I:%M:%S %p" }
            key = ["pickup_community_area"]
            fields = { pickup_community_area = "string", pickup_location = "string", fare = "f64", tips = "f64", trip_total = "f64" }
            "#,
        )
        .unwrap();
        Schema::new(&cfg).unwrap()
    }

    fn rec(origin: &str, offset: u64, payload: &str) -> RawRecord<'static> {
        RawRecord::leaked(origin, offset, payload)
    }

    #[test]
    fn event_time_from_the_record_needs_no_column() {
        let cfg: SchemaConfig = toml::from_str(
            r#"
            timestamp = { from = "kafka" }
            key = ["symbol"]
            fields = { symbol = "string", price = "f64" }
            "#,
        )
        .unwrap();
        let opts = CsvOptions {
            header: false,
            columns: vec!["symbol".into(), "price".into()],
            ..CsvOptions::default()
        };
        let mut d = CsvDecoder::new(Schema::new(&cfg).unwrap(), opts);
        let at = |ts: Option<i64>| RawRecord {
            timestamp: ts,
            ..rec("t/0", 7, "A,2.5")
        };
        let e = d.decode(&at(Some(1_000))).unwrap().unwrap();
        assert_eq!(e.ts, 1_000);
        let r = d.decode(&at(None)).unwrap_err().reason;
        assert!(r.starts_with("the record has no timestamp"), "{r}");
    }

    fn cells(line: &str) -> Result<Vec<String>, String> {
        let (mut text, mut ends) = (String::new(), Vec::new());
        split(line, b',', &mut text, &mut ends)?;
        let mut start = 0;
        Ok(ends
            .iter()
            .map(|&e| {
                let c = text[start..e].to_string();
                start = e;
                c
            })
            .collect())
    }

    fn get<'e>(s: &Schema, e: &'e Event, name: &str) -> &'e Value {
        &e.values[s.index_of(name).unwrap()]
    }

    #[test]
    fn splits_quoted_cells() {
        assert_eq!(cells("a,b,c").unwrap(), ["a", "b", "c"]);
        assert_eq!(cells("").unwrap(), [""]);
        assert_eq!(cells("a,,").unwrap(), ["a", "", ""]);
        assert_eq!(cells(r#""x,y",2"#).unwrap(), ["x,y", "2"]);
        assert_eq!(cells(r#""say ""hi""",é"#).unwrap(), [r#"say "hi""#, "é"]);
        assert_eq!(cells(r#""""#).unwrap(), [""]);
        assert_eq!(cells(r#"a"b,"c"d"#).unwrap(), [r#"a"b"#, "cd"]);
        assert_eq!(
            cells(r#"1,"two"#).unwrap_err(),
            "unterminated quoted cell 2 (quoted line breaks are not supported)"
        );
    }

    #[test]
    fn taxi_rows_with_us_timestamps_quotes_and_empty_cells() {
        let schema = taxi_schema();
        let mut d = CsvDecoder::new(schema.clone(), CsvOptions::default());
        assert_eq!(d.decode(&rec("a.csv", 1, TAXI_HEADER)).unwrap(), None);
        let e = d
            .decode(&rec(
                "a.csv",
                2,
                "t1,01/22/2024 01:45:00 PM,540,2.1,8,\"POINT (-87.6, 41.8)\",12.25,,12.25,Cash\r",
            ))
            .unwrap()
            .unwrap();
        assert_eq!(e.ts, 1_705_931_100_000);
        assert_eq!(
            get(&schema, &e, "pickup_community_area"),
            &Value::Str("8".into())
        );
        assert_eq!(
            get(&schema, &e, "pickup_location"),
            &Value::Str("POINT (-87.6, 41.8)".into())
        );
        assert_eq!(get(&schema, &e, "fare"), &Value::F64(12.25));
        assert_eq!(get(&schema, &e, "tips"), &Value::Null);
        assert_eq!(get(&schema, &e, "trip_total"), &Value::F64(12.25));
        // An empty optional string cell is null too.
        let e = d
            .decode(&rec(
                "a.csv",
                3,
                "t2,01/22/2024 12:00:00 AM,60,1,8,,3.25,0,3.25,Cash",
            ))
            .unwrap()
            .unwrap();
        assert_eq!(e.ts, 1_705_881_600_000);
        assert_eq!(get(&schema, &e, "pickup_location"), &Value::Null);
        assert_eq!(get(&schema, &e, "tips"), &Value::F64(0.0));
    }

    #[test]
    fn empty_key_cell_and_bad_cells_name_the_field() {
        let mut d = CsvDecoder::new(taxi_schema(), CsvOptions::default());
        d.decode(&rec("a.csv", 1, TAXI_HEADER)).unwrap();
        let reason =
            |d: &mut CsvDecoder, line: &str| d.decode(&rec("a.csv", 2, line)).unwrap_err().reason;
        assert_eq!(
            reason(
                &mut d,
                "t,01/22/2024 01:45:00 PM,540,2.1,,P,12.25,1,13.25,Cash"
            ),
            "missing required field `pickup_community_area`"
        );
        assert_eq!(
            reason(
                &mut d,
                "t,01/22/2024 01:45:00 PM,540,2.1,8,P,abc,1,13.25,Cash"
            ),
            "field `fare`: `abc` is not a number"
        );
        assert_eq!(
            reason(&mut d, "t,,540,2.1,8,P,1,1,2,Cash"),
            "missing required field `trip_start_timestamp`"
        );
        let r = reason(&mut d, "t,2024-01-22,540,2.1,8,P,1,1,2,Cash");
        assert!(
            r.starts_with("field `trip_start_timestamp`: `2024-01-22` does not match"),
            "{r}"
        );
        assert_eq!(
            reason(&mut d, "t,x,540,2.1,8"),
            "CSV line has 5 cells, header has 10"
        );
        let r = reason(&mut d, "t,\"01/22/2024 01:45:00 PM,540");
        assert!(r.starts_with("unterminated quoted cell 2"), "{r}");
    }

    #[test]
    fn header_is_read_per_origin() {
        let schema = taxi_schema();
        let mut d = CsvDecoder::new(schema.clone(), CsvOptions::default());
        let h1 = "pickup_community_area,fare,trip_start_timestamp";
        let h2 = "\u{feff}trip_start_timestamp,extra,pickup_community_area,fare";
        assert_eq!(d.decode(&rec("a.csv", 1, h1)).unwrap(), None);
        let a = d
            .decode(&rec("a.csv", 2, "3,10.5,01/22/2024 01:45:00 PM"))
            .unwrap()
            .unwrap();
        assert_eq!(d.decode(&rec("b.csv", 1, h2)).unwrap(), None);
        let b = d
            .decode(&rec("b.csv", 2, "01/22/2024 01:45:01 PM,zzz,4,20"))
            .unwrap()
            .unwrap();
        assert_eq!((a.ts, b.ts), (1_705_931_100_000, 1_705_931_101_000));
        assert_eq!(
            get(&schema, &a, "pickup_community_area"),
            &Value::Str("3".into())
        );
        assert_eq!(get(&schema, &a, "fare"), &Value::F64(10.5));
        assert_eq!(
            get(&schema, &b, "pickup_community_area"),
            &Value::Str("4".into())
        );
        assert_eq!(get(&schema, &b, "fare"), &Value::F64(20.0));
        // Columns absent from the header are null when optional.
        assert_eq!(get(&schema, &b, "tips"), &Value::Null);
    }

    #[test]
    fn header_missing_a_required_column_fails_each_record_naming_it() {
        let mut d = CsvDecoder::new(taxi_schema(), CsvOptions::default());
        assert_eq!(
            d.decode(&rec("a.csv", 1, "trip_start_timestamp,fare"))
                .unwrap(),
            None
        );
        for offset in [2, 3] {
            assert_eq!(
                d.decode(&rec("a.csv", offset, "01/22/2024 01:45:00 PM,1"))
                    .unwrap_err()
                    .reason,
                "missing required field `pickup_community_area`: the CSV header has no column `pickup_community_area`"
            );
        }
        assert_eq!(
            d.decode(&rec("b.csv", 1, "pickup_community_area,fare"))
                .unwrap(),
            None
        );
        assert_eq!(
            d.decode(&rec("b.csv", 2, "1,2")).unwrap_err().reason,
            "missing required field `trip_start_timestamp`: the CSV header has no column `trip_start_timestamp`"
        );
    }

    #[test]
    fn columns_without_header_and_other_delimiter() {
        let cfg: SchemaConfig = toml::from_str(
            r#"
            timestamp = { field = "ts", format = "epoch_s" }
            key = ["symbol"]
            fields = { symbol = "string", price = "f64", volume = "i64" }
            "#,
        )
        .unwrap();
        let schema = Schema::new(&cfg).unwrap();
        let opts = CsvOptions {
            header: false,
            columns: vec![
                "ts".into(),
                "symbol".into(),
                "price".into(),
                "volume".into(),
            ],
            delimiter: ';',
        };
        let mut d = CsvDecoder::new(schema.clone(), opts);
        // Line 1 is a record, not a header.
        let e = d
            .decode(&rec("s.csv", 1, "1700000000.5;\"A;B\";42000.12;3.0"))
            .unwrap()
            .unwrap();
        assert_eq!(e.ts, 1_700_000_000_500);
        assert_eq!(get(&schema, &e, "symbol"), &Value::Str("A;B".into()));
        assert_eq!(get(&schema, &e, "price"), &Value::F64(42000.12));
        assert_eq!(get(&schema, &e, "volume"), &Value::I64(3));
        assert_eq!(
            d.decode(&rec("s.csv", 2, "1;A;2")).unwrap_err().reason,
            "CSV line has 3 cells, source.csv.columns has 4"
        );
    }

    #[test]
    fn header_is_the_first_non_blank_line() {
        let schema = taxi_schema();
        let mut d = CsvDecoder::new(schema.clone(), CsvOptions::default());
        let h = "pickup_community_area,fare,trip_start_timestamp";
        // Lines 1 and 2 are blank (one with a CR and spaces), line 3 is the header.
        assert_eq!(d.decode(&rec("a.csv", 1, "")).unwrap(), None);
        assert_eq!(d.decode(&rec("a.csv", 2, "  \r")).unwrap(), None);
        assert_eq!(d.decode(&rec("a.csv", 3, h)).unwrap(), None);
        let e = d
            .decode(&rec("a.csv", 4, "3,10.5,01/22/2024 01:45:00 PM"))
            .unwrap()
            .unwrap();
        assert_eq!(e.ts, 1_705_931_100_000);
        assert_eq!(get(&schema, &e, "fare"), &Value::F64(10.5));
        // A blank line after the header is an empty record again.
        assert_eq!(
            d.decode(&rec("a.csv", 5, "")).unwrap_err().reason,
            "empty record"
        );
        // The next file starts over: its first non-blank line is its header.
        assert_eq!(d.decode(&rec("b.csv", 1, "")).unwrap(), None);
        assert_eq!(
            d.decode(&rec(
                "b.csv",
                2,
                "trip_start_timestamp,pickup_community_area"
            ))
            .unwrap(),
            None
        );
        let b = d
            .decode(&rec("b.csv", 3, "01/22/2024 01:45:01 PM,4"))
            .unwrap()
            .unwrap();
        assert_eq!(b.ts, 1_705_931_101_000);
        assert_eq!(get(&schema, &b, "fare"), &Value::Null);
    }

    #[test]
    fn record_after_a_bad_header_is_an_error() {
        let mut d = CsvDecoder::new(taxi_schema(), CsvOptions::default());
        let r = d
            .decode(&rec("a.csv", 1, "\"unterminated,x"))
            .unwrap_err()
            .reason;
        assert!(r.starts_with("CSV header: unterminated quoted cell"), "{r}");
        let r = d.decode(&rec("a.csv", 2, "1,2")).unwrap_err().reason;
        assert!(r.starts_with("no valid CSV header line"), "{r}");
        assert_eq!(
            d.decode(&rec("a.csv", 3, " ")).unwrap_err().reason,
            "empty record"
        );
    }
}
