//! A PostgreSQL table as a sink. Result rows are upserted by their window (key fields,
//! `window_start`, `window_end`, and `row`, the row's place among its window's rows), so a
//! window that fires again (a later revision, or a replay after a crash) replaces its rows.
//! Rows wait in memory until a commit writes them in one database transaction (binary COPY
//! into a staging table, then one upsert); with a
//! Kafka source the same transaction stores the source's positions and replay floors in
//! `weir_positions` ([`PostgresSink::position_store`]), and a restart reads from there: the
//! table after any number of crashes equals an uninterrupted run.
//!
//! Side sinks (late events, dead letters, errors) insert their rows with `row_id`, a digest
//! of the row: the same row written again (a replay after a crash) adds nothing.
//!
//! The URL is never logged nor put in an error: errors name the table and the host only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use postgres::types::{IsNull, ToSql, Type};
use postgres::{Client, NoTls};

mod store;
mod write;

use super::{Cell, ColumnType, Error, Health, PositionStore, Sink, TxnOffsets};
use crate::value::Value;

/// The table where a pipeline's source positions are kept, in the sink's database.
pub const POSITIONS_TABLE: &str = "weir_positions";

/// Rows in one `INSERT` statement at most (PostgreSQL takes 65 535 parameters).
const ROWS_PER_STATEMENT: usize = 500;

/// How a sink retries a database that is down or refuses a write.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// The first wait; each next one doubles, up to `max_backoff`.
    pub backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// How long one commit keeps trying before the pipeline fails.
    pub give_up_after: Duration,
}

/// What a PostgreSQL sink is opened with.
#[derive(Debug, Clone)]
pub struct Target {
    /// The connection URL (secret: never logged).
    pub url: String,
    /// The table, as written in the config (`name` or `schema.name`).
    pub table: String,
    /// Create the table when it is missing.
    pub create: bool,
    /// The pipeline, which keys its positions.
    pub pipeline: String,
    /// Retries.
    pub retry: Retry,
}

/// A column of the table.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    ty: ColumnType,
}

/// A value bound to a statement, converted to its column's type.
#[derive(Debug, Clone, PartialEq)]
enum Param {
    Null,
    F64(f64),
    I64(i64),
    Text(String),
    Bool(bool),
    Time(SystemTime),
}

impl ToSql for Param {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Param::Null => Ok(IsNull::Yes),
            Param::F64(v) => v.to_sql(ty, out),
            Param::I64(v) => v.to_sql(ty, out),
            Param::Text(v) => v.to_sql(ty, out),
            Param::Bool(v) => v.to_sql(ty, out),
            Param::Time(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// A table name quoted for SQL: `"name"` or `"schema"."name"`.
pub fn quote_table(table: &str) -> String {
    table
        .split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(".")
}

/// An identifier quoted for SQL (a `"` doubled).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The SQL type a column of `ty` has.
pub fn sql_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Text => "text",
        ColumnType::BigInt => "bigint",
        ColumnType::Double => "double precision",
        ColumnType::Boolean => "boolean",
        ColumnType::Timestamp => "timestamp with time zone",
    }
}

/// `host:port/db` of a URL, for messages: never the user or the password.
pub fn describe_url(url: &str) -> String {
    match url.parse::<postgres::Config>() {
        Ok(c) => {
            let host = c
                .get_hosts()
                .first()
                .map(|h| match h {
                    postgres::config::Host::Tcp(s) => s.clone(),
                    postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .unwrap_or_else(|| "localhost".into());
            let port = c.get_ports().first().copied().unwrap_or(5432);
            format!("{host}:{port}/{}", c.get_dbname().unwrap_or("(default)"))
        }
        Err(_) => "(an unreadable URL)".into(),
    }
}

/// A database error as words, without anything of the URL.
fn db_error(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => {
            let text = e.to_string();
            // The client's own errors never carry the password; keep them short.
            text.lines().next().unwrap_or("").to_string()
        }
    }
}

/// Connects to `url` (never echoed in the error).
fn connect(url: &str, what: &str) -> Result<Client, String> {
    let config: postgres::Config = url.parse().map_err(|e: postgres::Error| {
        format!(
            "{what}: the URL cannot be read ({}); write it as postgresql://user:password@host:5432/database",
            db_error(&e)
        )
    })?;
    let mut config = config;
    config.connect_timeout(Duration::from_secs(10));
    config.application_name("weir");
    config.connect(NoTls).map_err(|e| {
        format!(
            "{what}: connecting to {}: {}",
            describe_url(url),
            db_error(&e)
        )
    })
}

/// A PostgreSQL table that result or side rows go to.
pub struct PostgresSink {
    name: String,
    target: Target,
    /// The table, quoted.
    table: String,
    columns: Vec<Column>,
    /// Result rows: the primary key is the first `keys` columns and `row`.
    keys: Option<usize>,
    /// Where a result row's `revision` column is, when its window can fire again.
    revisions: Option<usize>,
    client: Option<Client>,
    pending: Vec<Vec<Param>>,
    /// Per window (the key columns' values), how many rows the pending rows hold: the
    /// next row's `row`.
    rows_in_window: HashMap<Vec<ParamKey>, i64>,
    /// Positions go in `weir_positions` with the rows (a Kafka source).
    positions: bool,
    failed: Option<String>,
    /// Retries, as the console and the metrics read them while this sink blocks.
    health: Arc<Health>,
}

/// A hashable form of a key value, for counting rows per window.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ParamKey {
    Null,
    Bits(u64),
    I64(i64),
    Text(String),
    Bool(bool),
    Time(u128),
}

impl From<&Param> for ParamKey {
    fn from(p: &Param) -> Self {
        match p {
            Param::Null => ParamKey::Null,
            Param::F64(v) => ParamKey::Bits(v.to_bits()),
            Param::I64(v) => ParamKey::I64(*v),
            Param::Text(v) => ParamKey::Text(v.clone()),
            Param::Bool(v) => ParamKey::Bool(*v),
            Param::Time(t) => ParamKey::Time(
                t.duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0),
            ),
        }
    }
}

impl PostgresSink {
    /// Opens a sink for result rows of `columns` typed `types`: the first `keys` columns
    /// (key fields and window bounds) and `row` are the table's primary key. Creates the
    /// table (`create`) or checks it, and with `positions`, the positions table.
    pub fn open_results(
        target: Target,
        columns: &[String],
        types: &[ColumnType],
        keys: usize,
        positions: bool,
    ) -> Result<Self, Error> {
        let mut sink = PostgresSink::new(target, columns, types, Some(keys), positions);
        sink.connect_and_prepare()?;
        Ok(sink)
    }

    /// Opens a sink for side rows (late events, dead letters, errors) of `columns`, all
    /// text but for the times: plain inserts, at least once.
    pub fn open_side(target: Target, columns: &[String]) -> Result<Self, Error> {
        let types: Vec<ColumnType> = columns
            .iter()
            .map(|c| match c.as_str() {
                "offset" => ColumnType::BigInt,
                _ => ColumnType::Text,
            })
            .collect();
        let mut sink = PostgresSink::new(target, columns, &types, None, false);
        sink.connect_and_prepare()?;
        Ok(sink)
    }

    fn new(
        target: Target,
        columns: &[String],
        types: &[ColumnType],
        keys: Option<usize>,
        positions: bool,
    ) -> Self {
        let mut cols: Vec<Column> = columns
            .iter()
            .zip(types)
            .map(|(name, &ty)| Column {
                name: name.clone(),
                ty,
            })
            .collect();
        // Results: `row`, the row's place in its window. Side rows: `row_id`, a digest of
        // the row, so that a replay writing the same row again adds nothing.
        cols.push(match keys {
            Some(_) => Column {
                name: "row".into(),
                ty: ColumnType::BigInt,
            },
            None => Column {
                name: "row_id".into(),
                ty: ColumnType::Text,
            },
        });
        PostgresSink {
            name: format!("postgres table {}", target.table),
            table: quote_table(&target.table),
            revisions: columns.iter().position(|c| c == "revision"),
            target,
            columns: cols,
            keys,
            client: None,
            pending: Vec::new(),
            rows_in_window: HashMap::new(),
            positions,
            failed: None,
            health: Arc::default(),
        }
    }

    fn error(&self, why: String) -> Error {
        Error::Write {
            sink: self.name.clone(),
            source: std::io::Error::other(why),
        }
    }

    /// Connects, then creates or checks the table (and the positions table).
    fn connect_and_prepare(&mut self) -> Result<(), Error> {
        let client = connect(&self.target.url, &self.name).map_err(|e| self.error(e))?;
        self.client = Some(client);
        self.prepare_table()?;
        Ok(())
    }

    /// `CREATE TABLE` for this sink's rows.
    fn create_sql(&self) -> String {
        let mut defs: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("{} {}", quote_ident(&c.name), sql_type(c.ty)))
            .collect();
        if let Some(k) = self.keys {
            let mut pk: Vec<String> = self.columns[..k]
                .iter()
                .map(|c| quote_ident(&c.name))
                .collect();
            pk.push(quote_ident("row"));
            defs.push(format!("PRIMARY KEY ({})", pk.join(", ")));
        } else {
            defs.push(format!("PRIMARY KEY ({})", quote_ident("row_id")));
        }
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            self.table,
            defs.join(", ")
        )
    }

    fn prepare_table(&mut self) -> Result<(), Error> {
        let create = self.create_sql();
        let (schema, name) = match self.target.table.rsplit_once('.') {
            Some((s, n)) => (Some(s.to_string()), n.to_string()),
            None => (None, self.target.table.clone()),
        };
        let positions = self.positions;
        let want_create = self.target.create;
        let table_name = self.target.table.clone();
        let expected: Vec<(String, &'static str)> = self
            .columns
            .iter()
            .map(|c| (c.name.clone(), sql_type(c.ty)))
            .collect();
        let keys = self.keys;
        let client = self.client.as_mut().expect("connected");
        let result: Result<(), String> = (|| {
            if want_create {
                client.batch_execute(&create).map_err(|e| db_error(&e))?;
            }
            let rows = client
                .query(
                    "SELECT column_name, data_type FROM information_schema.columns \
                     WHERE table_name = $1 AND table_schema = coalesce($2, current_schema()) \
                     ORDER BY ordinal_position",
                    &[&name, &schema],
                )
                .map_err(|e| db_error(&e))?;
            if rows.is_empty() {
                return Err(format!(
                    "the table {table_name} does not exist; create it (see the README's PostgreSQL sink for its columns), or set create = true"
                ));
            }
            let have: HashMap<String, String> = rows
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
                .collect();
            for (col, ty) in &expected {
                match have.get(col) {
                    None => {
                        return Err(format!(
                            "the table {table_name} has no column `{col}`; add it: ALTER TABLE {table_name} ADD COLUMN {} {ty}",
                            quote_ident(col)
                        ));
                    }
                    Some(found) if found != ty => {
                        return Err(format!(
                            "the table {table_name}'s column `{col}` is {found}; it should be {ty}"
                        ));
                    }
                    Some(_) => {}
                }
            }
            {
                // The upsert needs the primary key the rows are replaced by.
                let pk: Vec<String> = client
                    .query(
                        "SELECT a.attname FROM pg_index i \
                         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                         WHERE i.indrelid = to_regclass($1) AND i.indisprimary",
                        &[&quote_table(&table_name)],
                    )
                    .map_err(|e| db_error(&e))?
                    .iter()
                    .map(|r| r.get::<_, String>(0))
                    .collect();
                let mut want: Vec<String> = expected[..keys.unwrap_or(0)]
                    .iter()
                    .map(|(c, _)| c.clone())
                    .collect();
                want.push(if keys.is_some() { "row" } else { "row_id" }.into());
                let mut got = pk.clone();
                got.sort();
                want.sort();
                if got != want {
                    return Err(format!(
                        "the table {table_name}'s primary key is ({}); it should be ({}), what a row is replaced by",
                        pk.join(", "),
                        want.join(", ")
                    ));
                }
            }
            if positions {
                client
                    .batch_execute(&format!(
                        "CREATE TABLE IF NOT EXISTS {POSITIONS_TABLE} (\
                         pipeline text NOT NULL, topic text NOT NULL, \"partition\" integer NOT NULL, \
                         \"offset\" bigint NOT NULL, record text NOT NULL, \
                         updated_at timestamp with time zone NOT NULL DEFAULT now(), \
                         PRIMARY KEY (pipeline, topic, \"partition\"))"
                    ))
                    .map_err(|e| db_error(&e))?;
            }
            Ok(())
        })();
        result.map_err(|e| self.error(e))
    }

    /// A cell as its column's value.
    fn param(cell: &Cell<'_>, ty: ColumnType) -> Param {
        let value = match cell {
            Cell::Absent => return Param::Null,
            Cell::Value(v) => *v,
            Cell::Str(s) => {
                return match ty {
                    ColumnType::Text => Param::Text((*s).to_string()),
                    _ => s.parse::<i64>().map(Param::I64).unwrap_or(Param::Null),
                };
            }
            Cell::I64(n) => {
                return match ty {
                    ColumnType::Double => Param::F64(*n as f64),
                    ColumnType::Text => Param::Text(n.to_string()),
                    ColumnType::Timestamp => Param::Time(time(*n)),
                    _ => Param::I64(*n),
                };
            }
            Cell::Time(ms) => {
                return match ty {
                    ColumnType::Timestamp => Param::Time(time(*ms)),
                    ColumnType::Text => Param::Text(crate::time::format_rfc3339_ms(*ms)),
                    _ => Param::I64(*ms),
                };
            }
        };
        match (value, ty) {
            (Value::Null, _) => Param::Null,
            (Value::F64(v), ColumnType::Double) => Param::F64(*v),
            (Value::I64(v), ColumnType::Double) => Param::F64(*v as f64),
            (Value::I64(v), ColumnType::BigInt) => Param::I64(*v),
            (Value::Bool(v), ColumnType::Boolean) => Param::Bool(*v),
            (Value::Str(s), ColumnType::Text) => Param::Text(s.to_string()),
            (other, ColumnType::Text) => Param::Text(other.to_string()),
            (Value::F64(v), ColumnType::BigInt) => Param::I64(*v as i64),
            _ => Param::Null,
        }
    }

    /// Writes the pending rows, and `consumed` into the positions table, in one
    /// transaction; retried with backoff while the database is down or refuses, for up to
    /// `give_up_after`. The rows stay pending until a commit succeeded.
    fn commit_pending(&mut self, consumed: Option<&TxnOffsets>) -> Result<(), Error> {
        if let Some(e) = &self.failed {
            return Err(self.error(e.clone()));
        }
        if self.pending.is_empty() && consumed.is_none_or(|c| c.positions.is_empty()) {
            return Ok(());
        }
        // Per window, its row count in this commit: an earlier revision's extra rows go.
        let trims: Vec<(Vec<Param>, i64)> = match self.keys {
            Some(k) if self.revisions.is_some() => {
                let mut counts: HashMap<Vec<ParamKey>, (Vec<Param>, i64)> = HashMap::new();
                for r in &self.pending {
                    let key: Vec<ParamKey> = r[..k].iter().map(ParamKey::from).collect();
                    let e = counts.entry(key).or_insert_with(|| (r[..k].to_vec(), 0));
                    e.1 = e.1.max(row_of(r) + 1);
                }
                counts.into_values().collect()
            }
            _ => Vec::new(),
        };
        let rows = dedupe(&self.pending, self.keys);
        let started = Instant::now();
        let mut wait = self.target.retry.backoff;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self.try_commit(&rows, &trims, consumed) {
                Ok(()) => {
                    if attempt > 1 {
                        self.health.settled();
                        tracing::info!(sink = %self.name, attempt, "postgres: the commit went through");
                    }
                    self.pending.clear();
                    self.rows_in_window.clear();
                    return Ok(());
                }
                Err(why) => {
                    // A broken connection is opened again at the next attempt.
                    self.client = None;
                    if started.elapsed() >= self.target.retry.give_up_after {
                        self.health.settled();
                        let e = format!(
                            "{why} (gave up after {attempt} attempts in {:.1} s; the rows were not committed, so a restart writes them again)",
                            started.elapsed().as_secs_f64()
                        );
                        self.failed = Some(e.clone());
                        return Err(self.error(e));
                    }
                    self.health.failed(&self.name, attempt, &why);
                    tracing::warn!(sink = %self.name, attempt, error = %why, wait_ms = wait.as_millis() as u64, "postgres: the commit failed; retrying (the rows stay pending)");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(self.target.retry.max_backoff);
                }
            }
        }
    }

    fn try_commit(
        &mut self,
        rows: &[Vec<Param>],
        trims: &[(Vec<Param>, i64)],
        consumed: Option<&TxnOffsets>,
    ) -> Result<(), String> {
        if self.client.is_none() {
            self.client = Some(connect(&self.target.url, &self.name)?);
        }
        let client = self.client.as_mut().expect("connected");
        let mut tx = client.transaction().map_err(|e| db_error(&e))?;
        if let Some(k) = self.keys
            && !trims.is_empty()
        {
            write::trim_windows(&mut tx, &self.table, &self.columns, k, trims)
                .map_err(|e| db_error(&e))?;
        }
        // Multi-row statements instead of COPY only to measure one against the other
        // (BENCHMARKS.md, "Results into PostgreSQL"): COPY measured faster.
        let write = if std::env::var_os("WEIR_PG_INSERT").is_some() {
            write::write_rows
        } else {
            write::copy_rows
        };
        write(&mut tx, &self.table, &self.columns, self.keys, rows).map_err(|e| db_error(&e))?;
        if let Some(c) = consumed
            && self.positions
        {
            let stmt = tx
                .prepare(&format!(
                    "INSERT INTO {POSITIONS_TABLE} (pipeline, topic, \"partition\", \"offset\", record, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, now()) ON CONFLICT (pipeline, topic, \"partition\") \
                     DO UPDATE SET \"offset\" = EXCLUDED.\"offset\", record = EXCLUDED.record, updated_at = now()"
                ))
                .map_err(|e| db_error(&e))?;
            for p in &c.positions {
                let record = p.record.as_deref().unwrap_or(&p.metadata);
                tx.execute(
                    &stmt,
                    &[
                        &self.target.pipeline,
                        &p.topic,
                        &p.partition,
                        &p.offset,
                        &record,
                    ],
                )
                .map_err(|e| db_error(&e))?;
            }
        }
        tx.commit().map_err(|e| db_error(&e))
    }

    /// The pipeline's positions, read from the positions table of this sink's database.
    pub fn position_store(&self) -> Option<Arc<dyn PositionStore>> {
        self.positions.then(|| {
            Arc::new(store::Positions {
                url: self.target.url.clone(),
                pipeline: self.target.pipeline.clone(),
                name: self.name.clone(),
                client: Mutex::new(None),
            }) as Arc<dyn PositionStore>
        })
    }
}

/// The `row` of a result row (its last column).
fn row_of(r: &[Param]) -> i64 {
    match r.last() {
        Some(Param::I64(n)) => *n,
        _ => 0,
    }
}

/// The rows to write: for results, the last of each (window, row) — an INSERT may not
/// touch one row twice.
fn dedupe(rows: &[Vec<Param>], keys: Option<usize>) -> Vec<Vec<Param>> {
    let Some(k) = keys else {
        return rows.to_vec();
    };
    let mut at: HashMap<Vec<ParamKey>, usize> = HashMap::new();
    let mut out: Vec<Vec<Param>> = Vec::with_capacity(rows.len());
    for r in rows {
        let mut key: Vec<ParamKey> = r[..k].iter().map(ParamKey::from).collect();
        key.push(ParamKey::I64(row_of(r)));
        match at.get(&key) {
            Some(&i) => out[i] = r.clone(),
            None => {
                at.insert(key, out.len());
                out.push(r.clone());
            }
        }
    }
    out
}

fn time(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

impl Sink for PostgresSink {
    fn write(&mut self, row: &[Cell<'_>]) -> Result<(), Error> {
        if let Some(e) = &self.failed {
            return Err(self.error(e.clone()));
        }
        let n = self.columns.len() - 1;
        let mut params: Vec<Param> = (0..n)
            .map(|i| {
                let cell = row.get(i).unwrap_or(&Cell::Absent);
                Self::param(cell, self.columns[i].ty)
            })
            .collect();
        if let Some(k) = self.keys {
            // The row's place among its window's rows in this firing: rows of one window
            // come together, in order.
            let window: Vec<ParamKey> = params[..k].iter().map(ParamKey::from).collect();
            let revision = self
                .revisions
                .map_or(ParamKey::Null, |at| ParamKey::from(&params[at]));
            let mut id = window;
            id.push(revision);
            let next = self.rows_in_window.entry(id).or_insert(0);
            params.push(Param::I64(*next));
            *next += 1;
        } else {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(format!("{params:?}").as_bytes());
            let id: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
            params.push(Param::Text(id));
        }
        self.pending.push(params);
        Ok(())
    }

    fn set_columns(&mut self, columns: Vec<String>) {
        // The table's columns are fixed: a version with other outputs is refused before it
        // goes live (as for a CSV file). Rows keep the table's layout.
        let _ = columns;
    }

    fn commit(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// Without positions, every flush is a database commit; with them, the rows wait for
    /// [`Sink::commit_transaction`], which commits them with the positions.
    fn flush(&mut self) -> Result<(), Error> {
        if self.positions {
            return match &self.failed {
                Some(e) => Err(self.error(e.clone())),
                None => Ok(()),
            };
        }
        self.commit_pending(None)
    }

    fn describe(&self) -> String {
        self.name.clone()
    }

    fn transactional(&self) -> bool {
        self.positions
    }

    fn commit_transaction(&mut self, consumed: Option<TxnOffsets>) -> Result<(), Error> {
        self.commit_pending(consumed.as_ref())
    }

    fn health(&self) -> Option<Arc<Health>> {
        Some(self.health.clone())
    }

    fn keeps_positions(&self) -> Option<Arc<dyn PositionStore>> {
        self.position_store()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_and_urls_described_without_credentials() {
        assert_eq!(quote_table("moving_averages"), "\"moving_averages\"");
        assert_eq!(quote_table("analytics.ma"), "\"analytics\".\"ma\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        let d = describe_url("postgresql://weir:s3cret@db.example:6543/analytics");
        assert_eq!(d, "db.example:6543/analytics");
        assert!(!describe_url("postgresql://weir:s3cret@db:5432/x").contains("s3cret"));
    }

    #[test]
    fn cells_become_values_of_their_columns_types() {
        let v = Value::I64(3);
        assert_eq!(
            PostgresSink::param(&Cell::Value(&v), ColumnType::Double),
            Param::F64(3.0)
        );
        assert_eq!(
            PostgresSink::param(&Cell::Time(1_000), ColumnType::Timestamp),
            Param::Time(UNIX_EPOCH + Duration::from_secs(1))
        );
        assert_eq!(
            PostgresSink::param(&Cell::Time(-1_000), ColumnType::Timestamp),
            Param::Time(UNIX_EPOCH - Duration::from_secs(1))
        );
        assert_eq!(
            PostgresSink::param(&Cell::Absent, ColumnType::Text),
            Param::Null
        );
        assert_eq!(
            PostgresSink::param(&Cell::I64(2), ColumnType::BigInt),
            Param::I64(2)
        );
    }

    #[test]
    fn a_commit_writes_the_last_row_of_each_window_row_once() {
        let row =
            |k: &str, v: f64, r: i64| vec![Param::Text(k.into()), Param::F64(v), Param::I64(r)];
        let rows = vec![
            row("a", 1.0, 0),
            row("b", 2.0, 0),
            row("a", 3.0, 0),
            row("a", 4.0, 1),
        ];
        assert_eq!(
            dedupe(&rows, Some(1)),
            vec![row("a", 3.0, 0), row("b", 2.0, 0), row("a", 4.0, 1)]
        );
        assert_eq!(dedupe(&rows, None), rows);
    }
}
