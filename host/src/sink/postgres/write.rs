//! Writing a commit's rows: binary `COPY` into a staging table and one upsert (results) or
//! insert (side rows), multi-row statements to compare with, and the extra rows of a
//! window's earlier revision deleted.

use postgres::types::{ToSql, Type};

use super::{Column, Param, ROWS_PER_STATEMENT, quote_ident};
use crate::sink::ColumnType;

/// Side rows: one written again (a replay) adds nothing.
const SIDE_CONFLICT: &str = " ON CONFLICT (\"row_id\") DO NOTHING";

/// The `ON CONFLICT` clause of a commit's statement: results replace the rows of their
/// window (`keys` columns and `row`), side rows are written once.
fn conflict(columns: &[Column], keys: Option<usize>) -> String {
    match keys {
        Some(k) => on_conflict(columns, k),
        None => SIDE_CONFLICT.to_string(),
    }
}

/// The `ON CONFLICT` clause of an upsert into a table of `columns` whose first `keys`
/// and `row` are its primary key.
fn on_conflict(columns: &[Column], keys: usize) -> String {
    let names: Vec<String> = columns.iter().map(|c| quote_ident(&c.name)).collect();
    let mut pk: Vec<String> = names[..keys].to_vec();
    pk.push(quote_ident("row"));
    let set: Vec<String> = names[keys..]
        .iter()
        .filter(|n| **n != quote_ident("row"))
        .map(|n| format!("{n} = EXCLUDED.{n}"))
        .collect();
    if set.is_empty() {
        format!(" ON CONFLICT ({}) DO NOTHING", pk.join(", "))
    } else {
        format!(
            " ON CONFLICT ({}) DO UPDATE SET {}",
            pk.join(", "),
            set.join(", ")
        )
    }
}

/// Writes `rows` in `tx` through a staging table: binary `COPY` into a temporary
/// table like the target (emptied at each commit), then one `INSERT … SELECT`, an
/// upsert for results.
pub(super) fn copy_rows(
    tx: &mut postgres::Transaction<'_>,
    table: &str,
    columns: &[Column],
    keys: Option<usize>,
    rows: &[Vec<Param>],
) -> Result<(), postgres::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = columns.iter().map(|c| quote_ident(&c.name)).collect();
    let list = names.join(", ");
    tx.batch_execute(&format!(
        "CREATE TEMPORARY TABLE IF NOT EXISTS weir_stage (LIKE {table}) ON COMMIT DELETE ROWS"
    ))?;
    let types: Vec<Type> = columns
        .iter()
        .map(|c| match c.ty {
            ColumnType::Text => Type::TEXT,
            ColumnType::BigInt => Type::INT8,
            ColumnType::Double => Type::FLOAT8,
            ColumnType::Boolean => Type::BOOL,
            ColumnType::Timestamp => Type::TIMESTAMPTZ,
        })
        .collect();
    let sink = tx.copy_in(&format!(
        "COPY weir_stage ({list}) FROM STDIN (FORMAT binary)"
    ))?;
    let mut writer = postgres::binary_copy::BinaryCopyInWriter::new(sink, &types);
    let mut values: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(columns.len());
    for r in rows {
        values.clear();
        values.extend(r.iter().map(|p| p as &(dyn ToSql + Sync)));
        writer.write(&values)?;
    }
    writer.finish()?;
    let conflict = conflict(columns, keys);
    tx.execute(
        &format!("INSERT INTO {table} ({list}) SELECT {list} FROM weir_stage{conflict}"),
        &[],
    )?;
    Ok(())
}

/// Writes `rows` in `tx`: upserts (results) or inserts (side rows), in statements of
/// [`ROWS_PER_STATEMENT`] rows.
pub(super) fn write_rows(
    tx: &mut postgres::Transaction<'_>,
    table: &str,
    columns: &[Column],
    keys: Option<usize>,
    rows: &[Vec<Param>],
) -> Result<(), postgres::Error> {
    let names: Vec<String> = columns.iter().map(|c| quote_ident(&c.name)).collect();
    let conflict = conflict(columns, keys);
    let n = columns.len();
    let statement = |rows: usize| {
        let values: Vec<String> = (0..rows)
            .map(|r| {
                let ps: Vec<String> = (0..n).map(|c| format!("${}", r * n + c + 1)).collect();
                format!("({})", ps.join(", "))
            })
            .collect();
        format!(
            "INSERT INTO {table} ({}) VALUES {}{}",
            names.join(", "),
            values.join(", "),
            conflict
        )
    };
    let mut full: Option<postgres::Statement> = None;
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let stmt = if chunk.len() == ROWS_PER_STATEMENT {
            if full.is_none() {
                full = Some(tx.prepare(&statement(ROWS_PER_STATEMENT))?);
            }
            full.clone().expect("prepared")
        } else {
            tx.prepare(&statement(chunk.len()))?
        };
        let params: Vec<&(dyn ToSql + Sync)> = chunk
            .iter()
            .flat_map(|r| r.iter().map(|p| p as &(dyn ToSql + Sync)))
            .collect();
        tx.execute(&stmt, &params)?;
    }
    Ok(())
}

/// Rows of a window that fired again with fewer rows than before: the extra rows of
/// the earlier revision go.
pub(super) fn trim_windows(
    tx: &mut postgres::Transaction<'_>,
    table: &str,
    columns: &[Column],
    keys: usize,
    windows: &[(Vec<Param>, i64)],
) -> Result<(), postgres::Error> {
    let names: Vec<String> = columns[..keys]
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect();
    let cond: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{n} = ${}", i + 1))
        .collect();
    let stmt = tx.prepare(&format!(
        "DELETE FROM {table} WHERE {} AND \"row\" >= ${}",
        cond.join(" AND "),
        keys + 1
    ))?;
    for (key, rows) in windows {
        let mut params: Vec<&(dyn ToSql + Sync)> =
            key.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        params.push(rows);
        tx.execute(&stmt, &params)?;
    }
    Ok(())
}
