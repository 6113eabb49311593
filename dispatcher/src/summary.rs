//! The day's summary from `bitacora_control`, for the log and for stdout.

use chrono::NaiveDate;
use sqlx::PgPool;
use std::fmt::Write as _;

/// One status line of a day.
#[derive(Debug, sqlx::FromRow)]
pub struct StatusLine {
    /// Status.
    pub estatus: String,
    /// Files.
    pub archivos: i64,
    /// Records in them.
    pub registros_totales: i64,
    /// Valid records.
    pub registros_validos: i64,
    /// Rejected records.
    pub registros_error: i64,
}

/// The business day's files by status.
pub async fn day(pool: &PgPool, day: NaiveDate) -> sqlx::Result<Vec<StatusLine>> {
    sqlx::query_as(
        "SELECT estatus, archivos, registros_totales, registros_validos, registros_error
         FROM resumen_diario WHERE dia = $1 ORDER BY estatus",
    )
    .bind(day)
    .fetch_all(pool)
    .await
}

/// A fixed-width table for people.
pub fn render(day: NaiveDate, lines: &[StatusLine]) -> String {
    let mut out = format!("Summary of {day}\n");
    let _ = writeln!(
        out,
        "{:<24} {:>8} {:>12} {:>12} {:>12}",
        "status", "files", "records", "valid", "errors"
    );
    for l in lines {
        let _ = writeln!(
            out,
            "{:<24} {:>8} {:>12} {:>12} {:>12}",
            l.estatus, l.archivos, l.registros_totales, l.registros_validos, l.registros_error
        );
    }
    let total = |f: fn(&StatusLine) -> i64| lines.iter().map(f).sum::<i64>();
    let _ = writeln!(
        out,
        "{:<24} {:>8} {:>12} {:>12} {:>12}",
        "total",
        total(|l| l.archivos),
        total(|l| l.registros_totales),
        total(|l| l.registros_validos),
        total(|l| l.registros_error)
    );
    out
}
