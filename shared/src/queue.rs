//! The work queue in PostgreSQL (`work_items`): enqueue, claim, lease, rescue, retry.
//!
//! Statements are prepared once per pooled connection (`prepare_cached`): a claim is
//! then one round trip. A claim commits at once and leaves the item `running` under a lease
//! (`locked_until`) that the worker extends by heartbeat; no transaction stays
//! open during the slow work. Each item has one `bitacora_control` row, created
//! with it and kept in step here.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use sqlx::PgPool;
use std::time::Duration;

/// The LISTEN/NOTIFY channel that wakes idle performers.
pub const CHANNEL: &str = "visitas_work_items";

/// A file to enqueue.
#[derive(Debug, Clone)]
pub struct NewItem {
    /// Full path at the origin.
    pub source_path: String,
    /// File name.
    pub file_name: String,
    /// Size at listing time.
    pub size: u64,
    /// Modification time at listing time.
    pub mtime: DateTime<Utc>,
}

/// Enqueues files in one transaction (idempotent on the listing identity),
/// creates their `PENDIENTE` audit rows and notifies performers. Returns the new ids.
pub async fn enqueue(
    pool: &PgPool,
    dispatch_run: Option<i64>,
    items: &[NewItem],
    max_attempts: u32,
) -> sqlx::Result<Vec<i64>> {
    let mut tx = pool.begin().await?;
    let mut ids = Vec::new();
    for item in items {
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO work_items (source_path, file_name, size_bytes, mtime, max_attempts, dispatch_run_id)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (source_path, size_bytes, mtime) WHERE retry_of IS NULL DO NOTHING
             RETURNING id",
        )
        .bind(&item.source_path)
        .bind(&item.file_name)
        .bind(item.size as i64)
        .bind(item.mtime)
        .bind(max_attempts as i32)
        .bind(dispatch_run)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = id {
            sqlx::query(
                "INSERT INTO bitacora_control (work_item_id, archivo, ruta_origen, tamano_bytes)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(&item.file_name)
            .bind(&item.source_path)
            .bind(item.size as i64)
            .execute(&mut *tx)
            .await?;
            ids.push(id);
        }
    }
    if !ids.is_empty() {
        // Delivered at COMMIT; performers also poll, so a lost notification only delays.
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANNEL)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(ids)
}

/// An item this worker now holds under lease.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// `work_items.id`.
    pub id: i64,
    /// Its `bitacora_control.id`.
    pub bitacora_id: i64,
    /// File name at the origin (unchecked).
    pub file_name: String,
    /// Full origin path.
    pub source_path: String,
    /// This attempt's number (1-based).
    pub attempts: i32,
    /// Attempts allowed before `FALLO_SISTEMA`.
    pub max_attempts: i32,
    /// The audit status before this claim: a final one means an earlier attempt
    /// committed and died before the backup or the delete.
    pub prior_status: String,
    /// SHA-256 recorded by an earlier attempt, if any.
    pub prior_sha256: Option<String>,
    /// For an operator's retry: the local copy to load instead of the origin's file.
    pub local_path: Option<String>,
}

/// Claims the next due item, or `None`. One statement: lock with SKIP LOCKED,
/// mark running under lease, count the attempt, mark the audit row `EN_PROCESO`.
pub async fn claim(
    client: &impl GenericClient,
    worker: &str,
    lease: Duration,
) -> Result<Option<Claimed>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &client.prepare_cached("WITH next AS (
                 SELECT id FROM work_items
                 WHERE state = 'pending' AND run_at <= now()
                 ORDER BY run_at, id
                 FOR UPDATE SKIP LOCKED
                 LIMIT 1
             ), claimed AS (
                 UPDATE work_items w
                 SET state = 'running', attempts = w.attempts + 1, locked_by = $1,
                     locked_until = now() + make_interval(secs => $2), updated_at = now()
                 FROM next WHERE w.id = next.id
                 RETURNING w.id, w.file_name, w.source_path, w.attempts, w.max_attempts, w.local_path
             ), prior AS (
                 SELECT b.id, b.estatus, b.sha256 FROM bitacora_control b
                 JOIN claimed c ON b.work_item_id = c.id
             ), audit AS (
                 UPDATE bitacora_control b
                 SET estatus = CASE WHEN b.estatus IN ('PENDIENTE', 'EN_PROCESO', 'FALLO_SISTEMA')
                                    THEN 'EN_PROCESO' ELSE b.estatus END,
                     intentos = c.attempts, worker = $1,
                     -- Each attempt is timed anew; a committed one keeps its times.
                     inicio = CASE WHEN b.estatus IN ('PENDIENTE', 'EN_PROCESO', 'FALLO_SISTEMA')
                                   THEN now() ELSE b.inicio END
                 FROM claimed c WHERE b.work_item_id = c.id
                 RETURNING b.id
             )
             SELECT c.id, p.id AS bitacora_id, c.file_name, c.source_path, c.attempts, c.max_attempts,
                    p.estatus, p.sha256, c.local_path
             FROM claimed c, prior p, audit a WHERE a.id = p.id").await?,
            &[&worker, &lease.as_secs_f64()],
        )
        .await?;
    Ok(row.map(|r| Claimed {
        id: r.get(0),
        bitacora_id: r.get(1),
        file_name: r.get(2),
        source_path: r.get(3),
        attempts: r.get(4),
        max_attempts: r.get(5),
        prior_status: r.get(6),
        prior_sha256: r.get(7),
        local_path: r.get(8),
    }))
}

/// Extends the lease; `false` when the item is no longer ours (rescued by another performer).
pub async fn heartbeat(
    client: &impl GenericClient,
    id: i64,
    worker: &str,
    lease: Duration,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            &client.prepare_cached("UPDATE work_items SET locked_until = now() + make_interval(secs => $3), updated_at = now()
             WHERE id = $1 AND locked_by = $2 AND state = 'running'").await?,
            &[&id, &worker, &lease.as_secs_f64()],
        )
        .await?;
    Ok(n == 1)
}

/// Hands back running items whose lease expired (their performer died); returns how many.
/// The attempt they used stays counted.
pub async fn rescue_expired(client: &impl GenericClient) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            &client
                .prepare_cached(
                    "UPDATE work_items
             SET state = 'pending', locked_by = NULL, locked_until = NULL, run_at = now(),
                 last_error = 'lease expired: its performer stopped answering', updated_at = now()
             WHERE state = 'running' AND locked_until < now()",
                )
                .await?,
            &[],
        )
        .await
}

/// Gives an item back for a later attempt (tier 2), recording why.
pub async fn retry_later(
    client: &impl GenericClient,
    item: &Claimed,
    error: &str,
    delay: Duration,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            &client
                .prepare_cached(
                    "WITH w AS (
                 UPDATE work_items
                 SET state = 'pending', locked_by = NULL, locked_until = NULL, last_error = $2,
                     run_at = now() + make_interval(secs => $3), updated_at = now()
                 WHERE id = $1 RETURNING id
             )
             UPDATE bitacora_control SET estatus = 'PENDIENTE', mensaje_error = $2
             WHERE work_item_id = $1 AND estatus = 'EN_PROCESO'",
                )
                .await?,
            &[&item.id, &error, &delay.as_secs_f64()],
        )
        .await?;
    Ok(())
}

/// Hands an item back at once without counting the attempt (graceful shutdown).
pub async fn release(
    client: &impl GenericClient,
    item: &Claimed,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            &client
                .prepare_cached(
                    "WITH w AS (
                 UPDATE work_items
                 SET state = 'pending', locked_by = NULL, locked_until = NULL, run_at = now(),
                     attempts = greatest(attempts - 1, 0), last_error = 'handed back at shutdown',
                     updated_at = now()
                 WHERE id = $1 AND state = 'running' RETURNING id
             )
             UPDATE bitacora_control SET estatus = 'PENDIENTE'
             WHERE work_item_id = $1 AND estatus = 'EN_PROCESO'",
                )
                .await?,
            &[&item.id],
        )
        .await?;
    Ok(())
}

/// Final queue state of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Final {
    /// Loaded or duplicate: nothing more to do.
    Done,
    /// Layout or system failure: waits for an operator (or tier 4).
    Failed,
}

/// Marks an item finished and drops its lease.
pub async fn finish(
    client: &impl GenericClient,
    id: i64,
    state: Final,
    error: Option<&str>,
) -> Result<(), tokio_postgres::Error> {
    let state = match state {
        Final::Done => "done",
        Final::Failed => "failed",
    };
    client
        .execute(
            &client
                .prepare_cached(
                    "UPDATE work_items SET state = $2, locked_by = NULL, locked_until = NULL,
                 last_error = coalesce($3, last_error), updated_at = now()
             WHERE id = $1",
                )
                .await?,
            &[&id, &state, &error],
        )
        .await?;
    Ok(())
}

/// Items not yet final (pending, whatever their `run_at`, or running): zero means drained.
pub async fn open_items(client: &impl GenericClient) -> Result<i64, tokio_postgres::Error> {
    let row = client
        .query_one(
            &client
                .prepare_cached(
                    "SELECT count(*) FROM work_items WHERE state IN ('pending', 'running')",
                )
                .await?,
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// Tier 4: `FALLO_SISTEMA` items whose file is still at the origin (same listing
/// identity) go back to the queue, at most `max_runs` times. Returns
/// (items re-enqueued, items that used up their runs and wait for an operator).
pub async fn retry_system_failures(
    pool: &PgPool,
    dispatch_run: i64,
    at_origin: &[NewItem],
    max_runs: u32,
) -> sqlx::Result<(Vec<i64>, i64)> {
    let paths: Vec<&str> = at_origin.iter().map(|i| i.source_path.as_str()).collect();
    let sizes: Vec<i64> = at_origin.iter().map(|i| i.size as i64).collect();
    let mtimes: Vec<DateTime<Utc>> = at_origin.iter().map(|i| i.mtime).collect();
    let mut tx = pool.begin().await?;
    let retried: Vec<i64> = sqlx::query_scalar(
        "WITH listed AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::timestamptz[]) AS l(p, s, m)),
         due AS (
             SELECT w.id FROM work_items w
             JOIN listed l ON (w.source_path, w.size_bytes, w.mtime) = (l.p, l.s, l.m)
             JOIN bitacora_control b ON b.work_item_id = w.id
             WHERE w.state = 'failed' AND b.estatus = 'FALLO_SISTEMA' AND w.system_retry_days < $4
             FOR UPDATE OF w
         ), retried AS (
             UPDATE work_items w
             SET state = 'pending', attempts = 0, run_at = now(), system_retry_days = w.system_retry_days + 1,
                 dispatch_run_id = $5, last_error = 'retried by the nightly run (tier 4) after: ' || coalesce(w.last_error, ''),
                 updated_at = now()
             FROM due WHERE w.id = due.id
             RETURNING w.id
         )
         UPDATE bitacora_control b SET estatus = 'PENDIENTE'
         FROM retried r WHERE b.work_item_id = r.id
         RETURNING r.id",
    )
    .bind(&paths)
    .bind(&sizes)
    .bind(&mtimes)
    .bind(max_runs as i32)
    .bind(dispatch_run)
    .fetch_all(&mut *tx)
    .await?;
    let waiting: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM work_items w
         JOIN unnest($1::text[], $2::bigint[], $3::timestamptz[]) AS l(p, s, m)
           ON (w.source_path, w.size_bytes, w.mtime) = (l.p, l.s, l.m)
         JOIN bitacora_control b ON b.work_item_id = w.id
         WHERE w.state = 'failed' AND b.estatus = 'FALLO_SISTEMA' AND w.system_retry_days >= $4",
    )
    .bind(&paths)
    .bind(&sizes)
    .bind(&mtimes)
    .bind(max_runs as i32)
    .fetch_one(&mut *tx)
    .await?;
    if !retried.is_empty() {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANNEL)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok((retried, waiting))
}

/// Items by state, and how long the oldest due pending item has waited.
#[derive(Debug, Clone, Default)]
pub struct Depth {
    /// Every state with its count (zero included).
    pub by_state: Vec<(&'static str, i64)>,
    /// Seconds since the oldest pending item became due (0 when none).
    pub oldest_pending_secs: f64,
}

/// The queue's depth, for metrics and `dispatcher status`.
pub async fn depth(client: &impl GenericClient) -> Result<Depth, tokio_postgres::Error> {
    let row = client
        .query_one(
            &client.prepare_cached("SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'running'),
                    count(*) FILTER (WHERE state = 'done'), count(*) FILTER (WHERE state = 'failed'),
                    coalesce(extract(epoch FROM now() - min(run_at) FILTER (WHERE state = 'pending' AND run_at <= now())), 0)::float8
             FROM work_items").await?,
            &[],
        )
        .await?;
    Ok(Depth {
        by_state: vec![
            ("pending", row.get(0)),
            ("running", row.get(1)),
            ("done", row.get(2)),
            ("failed", row.get(3)),
        ],
        oldest_pending_secs: row.get(4),
    })
}

/// The queue state, audit status and audit id of item `id`, for the close's sweep of
/// staged files (`None` when no such item).
pub async fn staged_item(pool: &PgPool, id: i64) -> sqlx::Result<Option<(String, String, i64)>> {
    sqlx::query_as(
        "SELECT w.state, b.estatus, b.id FROM work_items w JOIN bitacora_control b ON b.work_item_id = w.id WHERE w.id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}
