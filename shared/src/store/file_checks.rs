//! `file_checks`: each loaded file's valid rows and error rate as compared with its
//! feed's history, once per file (the row is written in the transaction that raises or
//! resolves the history alerts, so a file is judged exactly once).

use sqlx::PgConnection;

/// Takes file `bitacora_id` for its check, in the caller's transaction; `false` when it
/// was already checked (or another transaction is checking it and then commits).
pub async fn take(tx: &mut PgConnection, bitacora_id: i64, feed: &str) -> sqlx::Result<bool> {
    let taken = sqlx::query(
        "INSERT INTO file_checks (bitacora_id, feed, figures) VALUES ($1, $2, '{}')
         ON CONFLICT (bitacora_id) DO NOTHING",
    )
    .bind(bitacora_id)
    .bind(feed)
    .execute(tx)
    .await?;
    Ok(taken.rows_affected() == 1)
}

/// Records the figures the check found.
pub async fn record(tx: &mut PgConnection, bitacora_id: i64, figures: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE file_checks SET figures = $2::jsonb WHERE bitacora_id = $1")
        .bind(bitacora_id)
        .bind(figures)
        .execute(tx)
        .await?;
    Ok(())
}
