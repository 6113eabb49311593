//! `dispatch_runs`: what each nightly run listed, enqueued and skipped, and how it ended.

use chrono::NaiveDate;
use sqlx::PgPool;

/// Starts the record of a dispatch run from host `host` over origin `source` for
/// business day `day`; returns its id.
pub async fn start(pool: &PgPool, host: &str, source: &str, day: NaiveDate) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO dispatch_runs (host, source, fecha_negocio) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(host)
    .bind(source)
    .bind(day)
    .fetch_one(pool)
    .await
}

/// What a run's listing found and did with it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunCounts {
    /// Files in the directory.
    pub listed: i32,
    /// New items enqueued.
    pub enqueued: i32,
    /// Files not enqueued: ignored, incomplete, already known or set aside.
    pub skipped: i32,
    /// Names the pattern does not take, or refused names.
    pub ignored: i32,
    /// Files still being written.
    pub incomplete: i32,
    /// Files an item already holds.
    pub known: i32,
    /// `FALLO_SISTEMA` items retried (tier 4).
    pub retried: i32,
    /// `FALLO_SISTEMA` items past their nightly retries.
    pub waiting_operator: i32,
    /// Files left at the origin for an operator (`set_aside_files`), not enqueued.
    pub set_aside: i32,
}

/// Records run `id`'s counts.
pub async fn record_counts(pool: &PgPool, id: i64, c: &RunCounts) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE dispatch_runs SET files_listed = $2, files_enqueued = $3, files_skipped = $4, files_ignored = $5,
             files_incomplete = $6, files_known = $7, files_retried = $8, files_waiting_operator = $9,
             files_set_aside = $10
         WHERE id = $1",
    )
    .bind(id)
    .bind(c.listed)
    .bind(c.enqueued)
    .bind(c.skipped)
    .bind(c.ignored)
    .bind(c.incomplete)
    .bind(c.known)
    .bind(c.retried)
    .bind(c.waiting_operator)
    .bind(c.set_aside)
    .execute(pool)
    .await?;
    Ok(())
}

/// Ends run `id`: whether it drained (none when it did not wait) and how it ended.
pub async fn finish(
    pool: &PgPool,
    id: i64,
    drained: Option<bool>,
    outcome: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE dispatch_runs SET finished_at = now(), drained = $2, outcome = $3 WHERE id = $1",
    )
    .bind(id)
    .bind(drained)
    .bind(outcome)
    .execute(pool)
    .await?;
    Ok(())
}

/// The last dispatch run, as `dispatcher status` shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LastRun {
    /// Its id.
    pub id: i64,
    /// When it started (`YYYY-MM-DD HH24:MI:SS TZ`).
    pub started: String,
    /// When it finished; none while it runs.
    pub finished: Option<String>,
    /// Files listed.
    pub listed: i32,
    /// Items enqueued.
    pub enqueued: i32,
    /// Items retried (tier 4).
    pub retried: i32,
    /// `true`/`false`, empty when it did not wait.
    pub drained: String,
    /// How it ended, empty while running.
    pub outcome: String,
    /// The business day it ran for.
    pub fecha_negocio: Option<chrono::NaiveDate>,
    /// How long it took (or has taken so far), in seconds.
    pub duration_secs: f64,
}

/// The last dispatch run, if any.
pub async fn last(pool: &PgPool) -> sqlx::Result<Option<LastRun>> {
    sqlx::query_as(
        "SELECT id, to_char(started_at, 'YYYY-MM-DD HH24:MI:SS TZ') AS started,
                to_char(finished_at, 'YYYY-MM-DD HH24:MI:SS TZ') AS finished,
                files_listed AS listed, files_enqueued AS enqueued, files_retried AS retried,
                coalesce(drained::text, '') AS drained, coalesce(outcome, '') AS outcome,
                fecha_negocio,
                extract(epoch FROM coalesce(finished_at, now()) - started_at)::float8 AS duration_secs
         FROM dispatch_runs ORDER BY id DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await
}
