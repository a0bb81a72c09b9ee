//! Row decoding and the two query shapes every table uses, shared by `queries.rs`, `fleet.rs` and
//! `audit.rs`.

use crate::{Result, StoreError};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use std::str::FromStr;

/// A text column parsed into an id or enum; a value that does not parse is corruption, not a panic.
pub(crate) fn parsed<T: FromStr>(row: &AnyRow, col: &str) -> Result<T> {
    let s: String = row.try_get(col)?;
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("column {col} holds {s:?}")))
}

/// A nullable text column parsed like [`parsed`].
pub(crate) fn parsed_opt<T: FromStr>(row: &AnyRow, col: &str) -> Result<Option<T>> {
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| {
        s.parse()
            .map_err(|_| StoreError::Corrupt(format!("column {col} holds {s:?}")))
    })
    .transpose()
}

/// A text column holding JSON.
pub(crate) fn json<T: serde::de::DeserializeOwned>(row: &AnyRow, col: &str) -> Result<T> {
    let s: String = row.try_get(col)?;
    serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("column {col}: {e}")))
}

/// A nullable text column holding JSON.
pub(crate) fn json_opt<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    col: &str,
) -> Result<Option<T>> {
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| {
        serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("column {col}: {e}")))
    })
    .transpose()
}

/// Every row of `sql` (one text parameter), mapped.
pub(crate) async fn all_by(pool: &AnyPool, sql: &str, key: String) -> Result<Vec<AnyRow>> {
    Ok(sqlx::query(sql).bind(key).fetch_all(pool).await?)
}

/// The row of `sql` (one text parameter) mapped by `map`, or `NotFound(what)`.
pub(crate) async fn one_by<T>(
    pool: &AnyPool,
    sql: &str,
    key: String,
    map: fn(&AnyRow) -> Result<T>,
    what: impl FnOnce() -> String,
) -> Result<T> {
    let row = sqlx::query(sql).bind(key).fetch_optional(pool).await?;
    row.as_ref()
        .map(map)
        .transpose()?
        .ok_or_else(|| StoreError::NotFound(what()))
}

/// Map every row, stopping at the first that does not decode.
pub(crate) fn map_all<T>(rows: &[AnyRow], map: fn(&AnyRow) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(map).collect()
}
