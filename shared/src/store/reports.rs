//! The operators' reports: a day's summary (view `resumen_diario`) and the files and
//! error types of a range of business days, read from `bitacora_control` and `errores`.

use crate::types::AuditStatus;
use chrono::NaiveDate;
use sqlx::PgPool;

/// One status line of a day.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StatusLine {
    /// Status.
    #[sqlx(try_from = "String")]
    pub estatus: AuditStatus,
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

/// The files of the business days in `[from, to)` by status.
pub async fn statuses(
    pool: &PgPool,
    from: NaiveDate,
    to: NaiveDate,
) -> sqlx::Result<Vec<StatusLine>> {
    sqlx::query_as(
        "SELECT estatus, count(*) AS archivos, coalesce(sum(registros_totales), 0) AS registros_totales,
                coalesce(sum(registros_validos), 0) AS registros_validos,
                coalesce(sum(registros_error), 0) AS registros_error
         FROM bitacora_control
         WHERE coalesce(fecha_negocio, creado_en::date) >= $1 AND coalesce(fecha_negocio, creado_en::date) < $2
         GROUP BY estatus ORDER BY estatus",
    )
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
}

/// An error type and how many rejected records it holds.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ErrorTypeCount {
    /// `errores.tipo_error`.
    pub tipo_error: String,
    /// Rejected records of that type.
    pub registros: i64,
}

/// The `top` most frequent error types of the business days in `[from, to)`.
pub async fn top_errors(
    pool: &PgPool,
    from: NaiveDate,
    to: NaiveDate,
    top: i64,
) -> sqlx::Result<Vec<ErrorTypeCount>> {
    sqlx::query_as(
        "SELECT e.tipo_error, count(*) AS registros FROM errores e JOIN bitacora_control b ON b.id = e.bitacora_id
         WHERE b.fecha_negocio >= $1 AND b.fecha_negocio < $2
         GROUP BY e.tipo_error ORDER BY count(*) DESC, e.tipo_error LIMIT $3",
    )
    .bind(from)
    .bind(to)
    .bind(top)
    .fetch_all(pool)
    .await
}

/// A rejected record, as an alert quotes it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RejectedLine {
    /// Its line.
    pub linea: i32,
    /// The first rule it broke.
    pub tipo_error: String,
    /// Every rule it broke.
    pub detalle: String,
}

/// The first `n` rejected records of file `bitacora_id`, by line.
pub async fn first_rejected(
    tx: &mut sqlx::PgConnection,
    bitacora_id: i64,
    n: i64,
) -> sqlx::Result<Vec<RejectedLine>> {
    // A file's rows are never older than its audit row: naming that bound as a value
    // lets the plan read (and lock) only the partitions since then.
    let since: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT creado_en FROM bitacora_control WHERE id = $1")
            .bind(bitacora_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(since) = since else {
        return Ok(Vec::new());
    };
    sqlx::query_as(
        "SELECT linea, tipo_error, detalle FROM errores WHERE bitacora_id = $1 AND creado_en >= $2
         ORDER BY linea LIMIT $3",
    )
    .bind(bitacora_id)
    .bind(since)
    .bind(n)
    .fetch_all(tx)
    .await
}
