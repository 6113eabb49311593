//! The work queue in PostgreSQL (`work_items`): every statement that writes it lives here.
//!
//! A claim commits at once and leaves the item `running` under a lease (`locked_until`)
//! and a fencing token (`claim_token`, new for every claim). Every later write of that
//! attempt — heartbeat, retry, release, final state, and (through [`OWNER_LOCK`]) its
//! audit rows and the load's COMMIT — names the token, so an attempt whose item was
//! taken back can change nothing. Statements the two drivers share are one SQL text.

use crate::audit::{self, AuditStatus};
use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::{Client, GenericClient};
use sqlx::PgPool;
use std::time::Duration;

/// The LISTEN/NOTIFY channel that wakes idle performers.
pub const CHANNEL: &str = "visitas_work_items";

/// The fencing predicate, the one place it is written: the attempt `($1, $2)` = (item id,
/// claim token) still holds the item.
macro_rules! held_by_attempt {
    () => {
        "id = $1 AND claim_token = $2 AND state = 'running'"
    };
}

/// Locks the item's row if, and only if, the attempt `($1, $2)` = (item id, claim token)
/// still holds it. Inside a transaction, the item cannot be taken back until it ends:
/// a write joined to it is fenced up to its COMMIT.
pub(crate) const OWNER_LOCK: &str = concat!(
    "SELECT id FROM work_items WHERE ",
    held_by_attempt!(),
    " FOR NO KEY UPDATE"
);

/// Items not yet final (pending, whatever their `run_at`, or running): zero means drained.
pub const OPEN_ITEMS: &str =
    "SELECT count(*) FROM work_items WHERE state IN ('pending', 'running')";

/// The state of a work item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemState {
    /// Waiting to be claimed (at `run_at`).
    Pending,
    /// Claimed under a lease.
    Running,
    /// Loaded or duplicate: nothing more to do.
    Done,
    /// Layout or system failure: waits for an operator (or tier 4).
    Failed,
}

impl ItemState {
    /// Every state, in the order operators read them.
    pub const ALL: [ItemState; 4] = [Self::Pending, Self::Running, Self::Done, Self::Failed];

    /// The value stored in `work_items.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    /// Whether the item may still change without an operator.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Running)
    }
}

/// Where an item's file lives: the origin directory, and for a local one, its host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The directory as a URL without credentials (`sftp://user@host:port/dir`, `file:///dir`).
    pub url: String,
    /// For `file://`: the host that holds the directory (only its performers claim the item).
    pub host: Option<String>,
}

impl Origin {
    /// A directory on this host.
    pub fn local(dir: &std::path::Path) -> Self {
        Self {
            url: format!("file://{}", dir.display()),
            host: Some(crate::host::name()),
        }
    }
}

/// A file to enqueue.
#[derive(Debug, Clone)]
pub struct NewItem {
    /// Where it lives.
    pub origin: Origin,
    /// Its name in the origin directory now (the listed name).
    pub source_name: String,
    /// Its logical file name (`archivo`).
    pub file_name: String,
    /// Full path at the origin, for operators (`ruta_origen`).
    pub source_path: String,
    /// Size at listing time.
    pub size: u64,
    /// Modification time at listing time.
    pub mtime: DateTime<Utc>,
}

/// Enqueues listed files in one transaction, creates their `PENDIENTE` audit rows and
/// notifies performers; returns the new ids. A file is skipped while an item for the same
/// path is open, or an item with the same listing identity (path, size, mtime) finished
/// after `listed_at` (the listing saw the file that item took) or failed as
/// `FALLO_SISTEMA` and waits for tier 4 or an operator (the origin keeps such a file);
/// anything else under a listed name is new content: a finished item took its file off
/// the listed name before reading it (see migration 0005).
pub async fn enqueue(
    pool: &PgPool,
    dispatch_run: Option<i64>,
    items: &[NewItem],
    max_attempts: u32,
    listed_at: DateTime<Utc>,
) -> sqlx::Result<Vec<i64>> {
    enqueue_dated(pool, dispatch_run, items, max_attempts, listed_at, None).await
}

/// As [`enqueue`], with the items' business date fixed now rather than at their first
/// claim (`dispatcher reload` counts a day's files as of that day).
pub async fn enqueue_dated(
    pool: &PgPool,
    dispatch_run: Option<i64>,
    items: &[NewItem],
    max_attempts: u32,
    listed_at: DateTime<Utc>,
    business_date: Option<NaiveDate>,
) -> sqlx::Result<Vec<i64>> {
    let mut tx = pool.begin().await?;
    let mut ids = Vec::new();
    for item in items {
        let id = insert_item(
            &mut tx,
            item,
            max_attempts as i32,
            dispatch_run,
            None,
            listed_at,
            business_date,
        )
        .await?;
        if let Some(id) = id {
            audit::create(
                &mut tx,
                id,
                &item.file_name,
                &item.source_path,
                item.size,
                None,
            )
            .await?;
            ids.push(id);
        }
    }
    if !ids.is_empty() {
        notify(&mut tx).await?;
    }
    tx.commit().await?;
    if !ids.is_empty() {
        refresh_statistics(pool).await;
    }
    Ok(ids)
}

/// The planner's statistics of `work_items`, taken again after a night's items arrive.
/// Planned from statistics that predate them (a new queue, or last night's: no pending
/// item), the claim reads every pending index entry and sorts them, for every claim: a
/// night of n items cost n² index reads (10,000 items: 10,000 per claim, 515 claims/s
/// instead of ~2,000). Fresh statistics (which also invalidate the performers' cached
/// plans) make it read the claimable index in order and stop at the first free item.
const REFRESH_STATISTICS: &str = "ANALYZE work_items";

/// Best effort, after items became pending: a failure is only logged (and a role that
/// does not own `work_items` gets a server warning, and no fresh statistics).
async fn refresh_statistics(pool: &PgPool) {
    if let Err(e) = sqlx::query(REFRESH_STATISTICS).execute(pool).await {
        tracing::warn!(error = %e, "could not refresh the queue's planner statistics");
    }
}

/// An operator's retry of the item behind audit row `retry_of`: a new item (and audit row)
/// for the same file, at `origin` under `source_name`. Returns the new audit row's id, or
/// `None` while an open item already holds that path.
pub async fn enqueue_retry(
    tx: &mut sqlx::PgConnection,
    retry_of: i64,
    item: &NewItem,
    max_attempts: i32,
) -> sqlx::Result<Option<i64>> {
    let inserted = insert_item(
        tx,
        item,
        max_attempts,
        None,
        Some(retry_of),
        Utc::now(),
        None,
    )
    .await?;
    let Some(id) = inserted else {
        return Ok(None);
    };
    let bitacora_id = audit::create(
        tx,
        id,
        &item.file_name,
        &item.source_path,
        item.size,
        Some(retry_of),
    )
    .await?;
    stop_nightly_retries(tx, retry_of).await?;
    notify(tx).await?;
    Ok(Some(bitacora_id))
}

/// Inserts one item; for a listed file (no `retry_of`), `None` when the listing identity
/// is to be skipped (see [`enqueue`]).
async fn insert_item(
    tx: &mut sqlx::PgConnection,
    item: &NewItem,
    max_attempts: i32,
    dispatch_run: Option<i64>,
    retry_of: Option<i64>,
    listed_at: DateTime<Utc>,
    business_date: Option<NaiveDate>,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "INSERT INTO work_items (origin, origin_host, source_name, source_path, file_name, size_bytes, mtime,
                                 max_attempts, dispatch_run_id, retry_of, business_date)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $12
         WHERE NOT EXISTS (
             SELECT 1 FROM work_items o JOIN bitacora_control b ON b.work_item_id = o.id
             WHERE o.source_path = $4
               AND (o.state IN ('pending', 'running')
                    OR ($10::bigint IS NULL AND o.retry_of IS NULL AND (o.size_bytes, o.mtime) = ($6, $7)
                        AND (o.updated_at >= $11
                             -- The origin keeps a FALLO_SISTEMA file: tier 4's, or an operator's
                             -- (retried: that retry's; discarded: left alone).
                             OR (o.state = 'failed' AND b.estatus = 'FALLO_SISTEMA'
                                 AND NOT EXISTS (SELECT 1 FROM work_items r WHERE r.retry_of = b.id))))))
         ON CONFLICT (source_path) WHERE state IN ('pending', 'running')
         DO NOTHING
         RETURNING id",
    )
    .bind(&item.origin.url)
    .bind(&item.origin.host)
    .bind(&item.source_name)
    .bind(&item.source_path)
    .bind(&item.file_name)
    .bind(item.size as i64)
    .bind(item.mtime)
    .bind(max_attempts)
    .bind(dispatch_run)
    .bind(retry_of)
    .bind(listed_at)
    .bind(business_date)
    .fetch_optional(tx)
    .await
}

async fn notify(tx: &mut sqlx::PgConnection) -> sqlx::Result<()> {
    // Delivered at COMMIT; performers also poll, so a lost notification only delays.
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(tx)
        .await?;
    Ok(())
}

/// What a performer can reach: its configured origin, and local files on its own host.
#[derive(Debug, Clone)]
pub struct Reach {
    /// The configured origin's URL (as [`Origin::url`]).
    pub origin: String,
    /// This host's name.
    pub host: String,
}

/// An item this worker now holds under lease: one attempt, fenced by `token`.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// `work_items.id`.
    pub id: i64,
    /// This attempt's fencing token (`work_items.claim_token`).
    pub token: i64,
    /// Its `bitacora_control.id`.
    pub bitacora_id: i64,
    /// Logical file name (unchecked).
    pub file_name: String,
    /// Where the file lives.
    pub origin: Origin,
    /// The file's name at the origin when listed (unchecked).
    pub source_name: String,
    /// Full origin path, for messages.
    pub source_path: String,
    /// Size at listing.
    pub size: i64,
    /// Modification time at listing.
    pub mtime: DateTime<Utc>,
    /// This attempt's number (1-based).
    pub attempts: i32,
    /// Attempts allowed before `FALLO_SISTEMA`.
    pub max_attempts: i32,
    /// The item's business date, fixed at its first claim.
    pub business_date: NaiveDate,
    /// The audit status before this claim: a final one means an earlier attempt
    /// committed and stopped before the backup or the delete.
    pub prior_status: AuditStatus,
    /// SHA-256 recorded by an earlier attempt, if any.
    pub prior_sha256: Option<String>,
    /// Size recorded by an earlier attempt, if any.
    pub prior_size: Option<i64>,
}

/// The claim: the first due item of this performer's reach (`$3` origin, `$4` host), in
/// `run_at, id` order, locked with SKIP LOCKED and leased to worker `$1` for `$2`
/// seconds under a new token; `$5` is the business date it gets on its first claim.
pub const CLAIM: &str = "WITH next AS (
         SELECT id FROM work_items
         WHERE state = 'pending' AND run_at <= now()
           AND ((origin_host IS NULL AND origin = $3) OR origin_host = $4)
         ORDER BY run_at, id
         FOR UPDATE SKIP LOCKED
         LIMIT 1)
     UPDATE work_items w
     SET state = 'running', attempts = w.attempts + 1, locked_by = $1,
         locked_until = now() + make_interval(secs => $2),
         claim_token = nextval('work_items_claim_token_seq'),
         business_date = coalesce(w.business_date, $5), updated_at = now()
     FROM next WHERE w.id = next.id
     RETURNING w.id, w.claim_token, w.file_name, w.origin, w.origin_host, w.source_name,
               w.source_path, w.size_bytes, w.mtime, w.attempts, w.max_attempts, w.business_date";

/// Claims the next due item this performer can reach, or `None`: locks it with SKIP
/// LOCKED, marks it running under a new lease and token, counts the attempt, fixes its
/// business date (`business_date` on its first claim) and marks the audit row in progress.
pub async fn claim(
    client: &mut Client,
    worker: &str,
    lease: Duration,
    reach: &Reach,
    business_date: NaiveDate,
) -> Result<Option<Claimed>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            &tx.prepare_cached(CLAIM).await?,
            &[
                &worker,
                &lease.as_secs_f64(),
                &reach.origin,
                &reach.host,
                &business_date,
            ],
        )
        .await?;
    let Some(r) = row else {
        return Ok(None);
    };
    let (id, attempts): (i64, i32) = (r.get(0), r.get(9));
    let prior = audit::begin_attempt(&tx, id, attempts, worker).await?;
    tx.commit().await?;
    Ok(Some(Claimed {
        id,
        token: r.get(1),
        bitacora_id: prior.bitacora_id,
        file_name: r.get(2),
        origin: Origin {
            url: r.get(3),
            host: r.get(4),
        },
        source_name: r.get(5),
        source_path: r.get(6),
        size: r.get(7),
        mtime: r.get(8),
        attempts,
        max_attempts: r.get(10),
        business_date: r.get(11),
        prior_status: prior.status,
        prior_sha256: prior.sha256,
        prior_size: prior.size,
    }))
}

/// Extends the lease; `false` when the attempt no longer holds the item (taken back).
pub async fn heartbeat(
    client: &impl GenericClient,
    item: &Claimed,
    lease: Duration,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            &client
                .prepare_cached(
                    concat!(
                        "UPDATE work_items SET locked_until = now() + make_interval(secs => $3), updated_at = now()
                         WHERE ",
                        held_by_attempt!()
                    ),
                )
                .await?,
            &[&item.id, &item.token, &lease.as_secs_f64()],
        )
        .await?;
    Ok(n == 1)
}

/// What one rescue pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RescueCounts {
    /// Running items whose lease had expired, handed back to the queue.
    pub rescued: u64,
}

/// Takes back running items whose lease expired (their performer died or froze): they
/// go back to pending with their attempt counted, and the old token is dead.
pub struct Rescuer;

impl Rescuer {
    /// One pass over the expired leases.
    pub async fn run_once(
        client: &impl GenericClient,
    ) -> Result<RescueCounts, tokio_postgres::Error> {
        let rescued = client
            .execute(
                &client
                    .prepare_cached(
                        // SKIP LOCKED: an item whose row an attempt holds locked (its fenced
                        // final write, just before its COMMIT) is not waited for: a frozen
                        // holder must not stall every worker's claim loop.
                        "UPDATE work_items
                         SET state = 'pending', locked_by = NULL, locked_until = NULL, run_at = now(),
                             last_error = 'lease expired: its performer stopped answering', updated_at = now()
                         WHERE id IN (SELECT id FROM work_items WHERE state = 'running' AND locked_until < now()
                                      FOR NO KEY UPDATE SKIP LOCKED)",
                    )
                    .await?,
                &[],
            )
            .await?;
        Ok(RescueCounts { rescued })
    }
}

/// Gives an item back for a later attempt (tier 2), recording why; `false` (and nothing
/// written) when the attempt no longer holds it.
pub async fn retry_later(
    client: &mut Client,
    item: &Claimed,
    error: &str,
    delay: Duration,
) -> Result<bool, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let n = tx
        .execute(
            &tx.prepare_cached(concat!(
                "UPDATE work_items
                 SET state = 'pending', locked_by = NULL, locked_until = NULL, last_error = $3,
                     run_at = now() + make_interval(secs => $4), updated_at = now()
                 WHERE ",
                held_by_attempt!()
            ))
            .await?,
            &[&item.id, &item.token, &error, &delay.as_secs_f64()],
        )
        .await?;
    if n == 1 {
        audit::back_to_pending(&tx, item.id, Some(error)).await?;
    }
    tx.commit().await?;
    Ok(n == 1)
}

/// Hands an item back at once without counting the attempt (graceful shutdown);
/// `false` when the attempt no longer holds it.
pub async fn release(client: &mut Client, item: &Claimed) -> Result<bool, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let n = tx
        .execute(
            &tx.prepare_cached(concat!(
                "UPDATE work_items
                 SET state = 'pending', locked_by = NULL, locked_until = NULL, run_at = now(),
                     attempts = greatest(attempts - 1, 0), last_error = 'handed back at shutdown',
                     updated_at = now()
                 WHERE ",
                held_by_attempt!()
            ))
            .await?,
            &[&item.id, &item.token],
        )
        .await?;
    if n == 1 {
        audit::back_to_pending(&tx, item.id, None).await?;
    }
    tx.commit().await?;
    Ok(n == 1)
}

/// Final queue state of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Final {
    /// Loaded or duplicate: nothing more to do.
    Done,
    /// Layout or system failure: waits for an operator (or tier 4).
    Failed,
}

impl From<Final> for ItemState {
    fn from(f: Final) -> Self {
        match f {
            Final::Done => ItemState::Done,
            Final::Failed => ItemState::Failed,
        }
    }
}

/// Makes an item final and drops its lease; `false` when the attempt no longer holds it.
pub async fn finish(
    client: &impl GenericClient,
    item: &Claimed,
    state: Final,
    error: Option<&str>,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            &client
                .prepare_cached(concat!(
                    "UPDATE work_items SET state = $3, locked_by = NULL, locked_until = NULL,
                         last_error = coalesce($4, last_error), updated_at = now()
                     WHERE ",
                    held_by_attempt!()
                ))
                .await?,
            &[
                &item.id,
                &item.token,
                &ItemState::from(state).as_str(),
                &error,
            ],
        )
        .await?;
    Ok(n == 1)
}

/// Records that the file at the origin is not what was listed (it changed since):
/// the item's listing identity becomes what was found, so the next attempt reads it
/// once it has stopped changing. `false` when the attempt no longer holds the item.
pub async fn relist(
    client: &impl GenericClient,
    item: &Claimed,
    size: i64,
    mtime: DateTime<Utc>,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            &client
                .prepare_cached(concat!(
                    "UPDATE work_items SET size_bytes = $3, mtime = $4, updated_at = now()
                     WHERE ",
                    held_by_attempt!()
                ))
                .await?,
            &[&item.id, &item.token, &size, &mtime],
        )
        .await?;
    Ok(n == 1)
}

/// Items not yet final (see [`OPEN_ITEMS`]).
pub async fn open_items(client: &impl GenericClient) -> Result<i64, tokio_postgres::Error> {
    let row = client
        .query_one(&client.prepare_cached(OPEN_ITEMS).await?, &[])
        .await?;
    Ok(row.get(0))
}

/// Items not yet final (see [`OPEN_ITEMS`]), for the sqlx side.
pub async fn open_items_sqlx(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar(OPEN_ITEMS).fetch_one(pool).await
}

/// Items among `ids` not yet final (see [`OPEN_ITEMS`]).
pub async fn open_among(pool: &PgPool, ids: &[i64]) -> sqlx::Result<i64> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "{OPEN_ITEMS} AND id = ANY($1)"
    )))
    .bind(ids)
    .fetch_one(pool)
    .await
}

/// Tier 4: `FALLO_SISTEMA` items whose file is still at the origin — still as listed
/// (`at_origin`, by listing identity) or under the item's in-flight name (`in_flight`
/// item ids) — go back to the queue, at most `max_runs` times. Returns (items
/// re-enqueued, items that used up their runs and wait for an operator).
pub async fn retry_system_failures(
    pool: &PgPool,
    dispatch_run: i64,
    at_origin: &[NewItem],
    in_flight: &[i64],
    max_runs: u32,
) -> sqlx::Result<(Vec<i64>, i64)> {
    let paths: Vec<&str> = at_origin.iter().map(|i| i.source_path.as_str()).collect();
    let sizes: Vec<i64> = at_origin.iter().map(|i| i.size as i64).collect();
    let mtimes: Vec<DateTime<Utc>> = at_origin.iter().map(|i| i.mtime).collect();
    let mut tx = pool.begin().await?;
    let candidates: Vec<i64> = sqlx::query_scalar(
        "SELECT w.id FROM work_items w JOIN bitacora_control b ON b.work_item_id = w.id
         WHERE (w.id = ANY($4)
                OR (w.source_path, w.size_bytes, w.mtime) IN
                   (SELECT * FROM unnest($1::text[], $2::bigint[], $3::timestamptz[])))
           AND w.state = 'failed' AND b.estatus = 'FALLO_SISTEMA' AND b.descartado_en IS NULL
           AND NOT EXISTS (SELECT 1 FROM work_items r WHERE r.retry_of = b.id)",
    )
    .bind(&paths)
    .bind(&sizes)
    .bind(&mtimes)
    .bind(in_flight)
    .fetch_all(&mut *tx)
    .await?;
    let retried: Vec<i64> = sqlx::query_scalar(
        "UPDATE work_items w
         SET state = 'pending', attempts = 0, run_at = now(), system_retry_days = w.system_retry_days + 1,
             dispatch_run_id = $3,
             last_error = 'retried by the nightly run (tier 4) after: ' || coalesce(w.last_error, ''),
             updated_at = now()
         -- At most one item per listed path goes back (one open item per path).
         WHERE w.id IN (SELECT DISTINCT ON (c.source_path) c.id FROM work_items c
                        WHERE c.id = ANY($1) AND c.system_retry_days < $2 ORDER BY c.source_path, c.id)
           -- Never two open items for one listed path.
           AND NOT EXISTS (SELECT 1 FROM work_items o WHERE o.state IN ('pending', 'running')
                           AND o.source_path = w.source_path)
         RETURNING w.id",
    )
    .bind(&candidates)
    .bind(max_runs as i32)
    .bind(dispatch_run)
    .fetch_all(&mut *tx)
    .await?;
    audit::back_to_pending_all(&mut tx, &retried).await?;
    if !retried.is_empty() {
        notify(&mut tx).await?;
    }
    tx.commit().await?;
    if !retried.is_empty() {
        refresh_statistics(pool).await;
    }
    let waiting = (candidates.len() - retried.len()) as i64;
    Ok((retried, waiting))
}

/// Where an item stands, as the dispatcher and the close see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemStand {
    /// Queue state.
    pub state: ItemState,
    /// Audit status.
    pub status: AuditStatus,
    /// Its last change.
    pub updated_at: DateTime<Utc>,
    /// An operator re-enqueued it (`quarantine retry`).
    pub retried: bool,
    /// An operator discarded it.
    pub discarded: bool,
}

/// Where the items whose ids are given stand (unknown ids are left out).
pub async fn states_of(pool: &PgPool, ids: &[i64]) -> sqlx::Result<Vec<(i64, ItemStand)>> {
    type Row = (i64, String, String, DateTime<Utc>, bool, bool);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT w.id, w.state, b.estatus, w.updated_at,
                EXISTS (SELECT 1 FROM work_items r WHERE r.retry_of = b.id), b.descartado_en IS NOT NULL
         FROM work_items w JOIN bitacora_control b ON b.work_item_id = w.id WHERE w.id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, state, status, updated_at, retried, discarded)| {
            let state = ItemState::ALL.into_iter().find(|s| s.as_str() == state)?;
            let status = AuditStatus::parse(&status)?;
            Some((
                id,
                ItemStand {
                    state,
                    status,
                    updated_at,
                    retried,
                    discarded,
                },
            ))
        })
        .collect())
}

/// An operator takes back a running item whose performer is gone: it is pending again at
/// once, its attempt counted, and the old attempt's token is dead (a new claim gives a new
/// one). `false` when it is not running.
pub async fn end_lease(pool: &PgPool, item: i64) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    // NOWAIT: an attempt holding the row (its last write before COMMIT) is not waited for.
    let taken: Vec<i64> = sqlx::query_scalar(
        "UPDATE work_items
         SET state = 'pending', locked_by = NULL, locked_until = NULL, run_at = now(),
             last_error = 'taken back by an operator (dispatcher take-back)', updated_at = now()
         WHERE id = (SELECT id FROM work_items WHERE id = $1 AND state = 'running' FOR NO KEY UPDATE NOWAIT)
         RETURNING id",
    )
    .bind(item)
    .fetch_all(&mut *tx)
    .await?;
    audit::back_to_pending_all(&mut tx, &taken).await?;
    tx.commit().await?;
    Ok(!taken.is_empty())
}

/// Locks the item of audit row `bitacora_id` first, as tier 4 does (work item, then
/// audit row): an operator's command beside a nightly run never deadlocks with it.
pub async fn lock_item_of(tx: &mut sqlx::PgConnection, bitacora_id: i64) -> sqlx::Result<()> {
    sqlx::query(
        "SELECT 1 FROM work_items WHERE id = (SELECT work_item_id FROM bitacora_control WHERE id = $1)
         FOR UPDATE",
    )
    .bind(bitacora_id)
    .execute(tx)
    .await?;
    Ok(())
}

/// The nightly tier 4 leaves the item of audit row `bitacora_id` alone from now on:
/// an operator took it over.
pub async fn stop_nightly_retries(
    tx: &mut sqlx::PgConnection,
    bitacora_id: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE work_items SET system_retry_days = 999
         FROM bitacora_control b WHERE b.id = $1 AND work_items.id = b.work_item_id",
    )
    .bind(bitacora_id)
    .execute(tx)
    .await?;
    Ok(())
}

/// Items by state, and how long the oldest due pending item has waited.
#[derive(Debug, Clone, Default)]
pub struct Depth {
    /// Every state with its count (zero included).
    pub by_state: Vec<(ItemState, i64)>,
    /// Seconds since the oldest pending item became due (0 when none).
    pub oldest_pending_secs: f64,
}

/// The queue's depth, for metrics and `dispatcher status`: per state, the count and the
/// seconds since the oldest due item of that state became due.
pub const DEPTH: &str = "SELECT s.state, count(w.id),
        coalesce(extract(epoch FROM now() - min(w.run_at) FILTER (WHERE w.run_at <= now())), 0)::float8
     FROM unnest(ARRAY['pending', 'running', 'done', 'failed']) WITH ORDINALITY AS s(state, n)
     LEFT JOIN work_items w ON w.state = s.state
     GROUP BY s.state, s.n ORDER BY s.n";

/// The queue's depth, for metrics.
pub async fn depth(client: &impl GenericClient) -> Result<Depth, tokio_postgres::Error> {
    let rows = client
        .query(&client.prepare_cached(DEPTH).await?, &[])
        .await?;
    let mut depth = Depth::default();
    for (state, row) in ItemState::ALL.into_iter().zip(rows) {
        depth.by_state.push((state, row.get(1)));
        if state == ItemState::Pending {
            depth.oldest_pending_secs = row.get(2);
        }
    }
    Ok(depth)
}

/// Inserts `n` empty items (and their audit rows) for the queue benchmark.
pub async fn insert_bench_items(client: &mut Client, n: i64) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let ids: Vec<i64> = tx
        .query(
            "INSERT INTO work_items (origin, source_name, source_path, file_name, size_bytes, mtime)
             SELECT 'bench:', 'bench_' || g || '.txt', 'bench/' || g, 'bench_' || g || '.txt', 0, now()
             FROM generate_series(1, $1::bigint) g
             RETURNING id",
            &[&n],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    audit::create_bench(&tx, &ids).await?;
    tx.commit().await?;
    client.batch_execute(REFRESH_STATISTICS).await
}
