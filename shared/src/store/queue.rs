//! `work_items`, the queue: every statement that writes it alone lives here; the
//! transactions that also write `bitacora_control` are `super::attempt`.
//!
//! A claim commits at once and leaves the item `running` under a lease (`locked_until`)
//! and a fencing token (`claim_token`, new for every claim). Every later write of that
//! attempt — heartbeat, retry, release, final state, and (through [`owner_lock!`]) its
//! audit rows and the load's COMMIT — names the token, so an attempt whose item was
//! taken back can change nothing.

use crate::types::state::{ItemState, open_states, sql_state};
use crate::types::{AuditStatus, Claimed, Final, ItemStand, NewItem};
use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::GenericClient;
use sqlx::PgPool;
use std::time::Duration;

/// The LISTEN/NOTIFY channel that wakes idle performers.
pub const CHANNEL: &str = "visitas_work_items";

/// The fencing predicate, the one place it is written: the attempt `($1, $2)` = (item id,
/// claim token) still holds the item.
macro_rules! held_by_attempt {
    () => {
        concat!(
            "id = $1 AND claim_token = $2 AND state = ",
            $crate::types::state::sql_state!(Running)
        )
    };
}
pub(crate) use held_by_attempt;

/// Locks the item's row if, and only if, the attempt `($1, $2)` = (item id, claim token)
/// still holds it. Inside a transaction, the item cannot be taken back until it ends:
/// a write joined to it is fenced up to its COMMIT.
macro_rules! owner_lock {
    () => {
        concat!(
            "SELECT id FROM work_items WHERE ",
            $crate::store::queue::held_by_attempt!(),
            " FOR NO KEY UPDATE"
        )
    };
}
pub(crate) use owner_lock;

/// Items not yet final (pending, whatever their `run_at`, or running): zero means drained.
macro_rules! open_items_sql {
    () => {
        concat!(
            "SELECT count(*) FROM work_items WHERE state IN ",
            open_states!()
        )
    };
}

/// Inserts one item; for a listed file (no `retry_of`), nothing when the listing
/// identity is to be skipped (see `super::attempt::enqueue`). An unknown mtime matches
/// only an unknown one: size alone then identifies the file.
pub(crate) async fn insert_item(
    tx: &mut sqlx::PgConnection,
    item: &NewItem,
    max_attempts: i32,
    dispatch_run: Option<i64>,
    retry_of: Option<i64>,
    listed_at: DateTime<Utc>,
    business_date: Option<NaiveDate>,
) -> sqlx::Result<Option<i64>> {
    let prefix = item.loaded_prefix.as_ref();
    sqlx::query_scalar(concat!(
        "INSERT INTO work_items (origin, origin_host, source_name, source_path, file_name, size_bytes, mtime,
                                 max_attempts, dispatch_run_id, retry_of, business_date, done_marker,
                                 loaded_prefix_bytes, loaded_prefix_sha256, loaded_prefix_of)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $12, $13, $14, $15, $16
         WHERE NOT EXISTS (
             SELECT 1 FROM work_items o JOIN bitacora_control b ON b.work_item_id = o.id
             WHERE o.source_path = $4
               AND (o.state IN ", open_states!(), "
                    OR ($10::bigint IS NULL AND o.retry_of IS NULL AND o.size_bytes = $6
                        AND o.mtime IS NOT DISTINCT FROM $7
                        -- Known at this origin: the same path on another server (a retired
                        -- one, a renamed host) is another file.
                        AND o.origin = $1 AND o.origin_host IS NOT DISTINCT FROM $2
                        AND (o.updated_at >= $11
                             -- The origin keeps a FALLO_SISTEMA file: tier 4's, or an operator's
                             -- (retried: that retry's; discarded: left alone).
                             OR (o.state = ", sql_state!(Failed), " AND b.estatus = ",
        crate::types::state::sql_status!(FalloSistema), "
                                 AND NOT EXISTS (SELECT 1 FROM work_items r WHERE r.retry_of = b.id))
                             -- The origin refused to delete a failed item's file: that file
                             -- was quarantined (retried from there, or discarded).
                             OR (o.state = ", sql_state!(Failed), "
                                 AND o.origin = $1
                                 AND EXISTS (SELECT 1 FROM set_aside_files s WHERE s.work_item_id = o.id))))))
         ON CONFLICT (source_path) WHERE state IN ", open_states!(), "
         DO NOTHING
         RETURNING id"
    ))
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
    .bind(&item.done_marker)
    .bind(prefix.map(|p| p.bytes))
    .bind(prefix.map(|p| p.sha256.as_str()))
    .bind(prefix.map(|p| p.loaded_by))
    .fetch_optional(tx)
    .await
}

/// Wakes idle performers, at COMMIT; performers also poll, so a lost notification only delays.
pub(crate) async fn notify(tx: &mut sqlx::PgConnection) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(tx)
        .await?;
    Ok(())
}

/// The planner's statistics of `work_items`, taken again after a night's items arrive.
/// Planned from statistics that predate them (a new queue, or last night's: no pending
/// item), the claim reads every pending index entry and sorts them, for every claim: a
/// night of n items cost n² index reads (10,000 items: 10,000 per claim, 515 claims/s
/// instead of ~2,000). Fresh statistics (which also invalidate the performers' cached
/// plans) make it read the claimable index in order and stop at the first free item.
pub(crate) const REFRESH_STATISTICS: &str = "ANALYZE work_items";

/// Best effort, after items became pending: a failure is only logged (and a role that
/// does not own `work_items` gets a server warning, and no fresh statistics).
pub(crate) async fn refresh_statistics(pool: &PgPool) {
    if let Err(e) = sqlx::query(REFRESH_STATISTICS).execute(pool).await {
        tracing::warn!(error = %e, "could not refresh the queue's planner statistics");
    }
}

/// The claim: the first due item of this performer's reach (`$3` its origins, `$4` its
/// host), in `run_at, id` order, locked with SKIP LOCKED and leased to worker `$1` for
/// `$2` seconds under a new token; `$5` is the business date it gets on its first claim.
pub const CLAIM: &str = concat!(
    "WITH next AS (
         SELECT id FROM work_items
         WHERE state = ",
    sql_state!(Pending),
    " AND run_at <= now()
           AND ((origin_host IS NULL AND origin = ANY($3)) OR origin_host = $4)
         ORDER BY run_at, id
         FOR UPDATE SKIP LOCKED
         LIMIT 1)
     UPDATE work_items w
     SET state = ",
    sql_state!(Running),
    ", attempts = w.attempts + 1, locked_by = $1,
         locked_until = now() + make_interval(secs => $2),
         claim_token = nextval('work_items_claim_token_seq'),
         business_date = coalesce(w.business_date, $5), updated_at = now()
     FROM next WHERE w.id = next.id
     RETURNING w.id, w.claim_token, w.file_name, w.origin, w.origin_host, w.source_name,
               w.source_path, w.size_bytes, w.mtime, w.attempts, w.max_attempts, w.business_date,
               w.done_marker, w.read_in_place, w.loaded_prefix_bytes, w.loaded_prefix_sha256,
               w.loaded_prefix_of"
);

/// Extends the lease; `false` when the attempt no longer holds the item (taken back).
pub async fn heartbeat(
    client: &impl GenericClient,
    item: &Claimed,
    lease: Duration,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            &client
                .prepare_cached(concat!(
                    "UPDATE work_items SET locked_until = now() + make_interval(secs => $3), updated_at = now()
                     WHERE ",
                    held_by_attempt!()
                ))
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
/// go back to pending with their attempt counted, and the old token is dead. Their audit
/// rows keep `EN_PROCESO` until the next claim (`docs/state-machine.md`).
pub struct Rescuer;

impl Rescuer {
    /// One pass over the expired leases.
    pub async fn run_once(
        client: &impl GenericClient,
    ) -> Result<RescueCounts, tokio_postgres::Error> {
        let rescued = client
            .execute(
                &client
                    .prepare_cached(concat!(
                        // SKIP LOCKED: an item whose row an attempt holds locked (its fenced
                        // final write, just before its COMMIT) is not waited for: a frozen
                        // holder must not stall every worker's claim loop.
                        "UPDATE work_items
                         SET state = ", sql_state!(Pending), ", locked_by = NULL, locked_until = NULL, run_at = now(),
                             last_error = 'lease expired: its performer stopped answering', updated_at = now()
                         WHERE id IN (SELECT id FROM work_items WHERE state = ", sql_state!(Running),
                        " AND locked_until < now() FOR NO KEY UPDATE SKIP LOCKED)",
                    ))
                    .await?,
                &[],
            )
            .await?;
        Ok(RescueCounts { rescued })
    }
}

/// Hands the attempt's item back to the queue, in `tx`: due again after `delay`, with
/// `why` as its last error, its attempt counted or not (`counted`, false at shutdown);
/// `false` (and nothing written) when the attempt no longer holds it.
pub(crate) async fn hand_back(
    tx: &impl GenericClient,
    item: &Claimed,
    why: &str,
    delay: Duration,
    counted: bool,
) -> Result<bool, tokio_postgres::Error> {
    let n = tx
        .execute(
            &tx.prepare_cached(concat!(
                "UPDATE work_items
                 SET state = ",
                sql_state!(Pending),
                ", locked_by = NULL, locked_until = NULL, last_error = $3,
                     run_at = now() + make_interval(secs => $4),
                     attempts = CASE WHEN $5 THEN attempts ELSE greatest(attempts - 1, 0) END,
                     updated_at = now()
                 WHERE ",
                held_by_attempt!()
            ))
            .await?,
            &[&item.id, &item.token, &why, &delay.as_secs_f64(), &counted],
        )
        .await?;
    Ok(n == 1)
}

/// Makes an item final and drops its lease; `false` when the attempt no longer holds it.
/// Repeated after its COMMIT acknowledgement was lost, it finds the item already made
/// `state` under this attempt's token (no other attempt can) and says `true`, writing
/// nothing more.
pub async fn finish(
    client: &impl GenericClient,
    item: &Claimed,
    state: Final,
    error: Option<&str>,
) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_one(
            &client
                .prepare_cached(concat!(
                    "WITH finished AS (
                         UPDATE work_items SET state = $3, locked_by = NULL, locked_until = NULL,
                             last_error = coalesce($4, last_error), updated_at = now()
                         WHERE ",
                    held_by_attempt!(),
                    " RETURNING id)
                     SELECT (SELECT count(*) FROM finished)
                          + (SELECT count(*) FROM work_items WHERE ",
                    finished_by_attempt!(),
                    ") AS n"
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
    Ok(row.get::<_, i64>("n") == 1)
}

/// The attempt `($1, $2)` itself made the item final as `$3` (no other can under its token).
macro_rules! finished_by_attempt {
    () => {
        "id = $1 AND claim_token = $2 AND state = $3"
    };
}
use finished_by_attempt;

/// Whether the attempt itself already made the item final as `state` (a write repeated
/// after its COMMIT acknowledgement was lost).
pub(crate) async fn finished_by(
    client: &impl GenericClient,
    item: &Claimed,
    state: Final,
) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_one(
            concat!(
                "SELECT count(*) AS n FROM work_items WHERE ",
                finished_by_attempt!()
            ),
            &[&item.id, &item.token, &ItemState::from(state).as_str()],
        )
        .await?;
    Ok(row.get::<_, i64>("n") == 1)
}

/// Hands back, without counting their attempt, the items running under worker `worker`'s
/// name that it does not know it holds: a claim whose COMMIT went through while its
/// acknowledgement was lost (the connection broke). Called by the worker between items
/// (it holds none then), in `tx`; returns their ids.
pub(crate) async fn release_unknown_claims(
    tx: &impl GenericClient,
    worker: &str,
) -> Result<Vec<i64>, tokio_postgres::Error> {
    Ok(tx
        .query(
            concat!(
                "UPDATE work_items
                 SET state = ", sql_state!(Pending), ", locked_by = NULL, locked_until = NULL, run_at = now(),
                     attempts = greatest(attempts - 1, 0), updated_at = now(),
                     last_error = 'handed back, no attempt used: the answer to its claim was lost with the connection'
                 WHERE id IN (SELECT id FROM work_items WHERE state = ", sql_state!(Running), " AND locked_by = $1
                              FOR NO KEY UPDATE SKIP LOCKED)
                 RETURNING id"
            ),
            &[&worker],
        )
        .await?
        .iter()
        .map(|r| r.get("id"))
        .collect())
}

/// Records that the file at the origin is not what was listed (it changed since):
/// the item's listing identity becomes what was found, so the next attempt reads it
/// once it has stopped changing. `false` when the attempt no longer holds the item.
pub async fn relist(
    client: &impl GenericClient,
    item: &Claimed,
    size: i64,
    mtime: Option<DateTime<Utc>>,
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

/// Records how the attempt took its file: under its listed name (`true`, the origin
/// refused the rename) or its in-flight name. After a crash past the commit, the next
/// attempt looks for the file where it was read. `false` when the attempt no longer
/// holds the item.
pub async fn record_read_in_place(
    client: &impl GenericClient,
    item: &Claimed,
    in_place: bool,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            &client
                .prepare_cached(concat!(
                    "UPDATE work_items SET read_in_place = $3, updated_at = now() WHERE ",
                    held_by_attempt!()
                ))
                .await?,
            &[&item.id, &item.token, &in_place],
        )
        .await?;
    Ok(n == 1)
}

/// Items not yet final (pending, whatever their `run_at`, or running): zero means the
/// queue is drained.
pub async fn open_items(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar(open_items_sql!()).fetch_one(pool).await
}

/// Items not yet final that a performer of `reach` could claim or holds: `performer
/// run --once` is done when none is left, whatever other origins' items wait.
pub async fn open_in_reach(pool: &PgPool, reach: &crate::types::Reach) -> sqlx::Result<i64> {
    sqlx::query_scalar(concat!(
        open_items_sql!(),
        " AND ((origin_host IS NULL AND origin = ANY($1)) OR origin_host = $2)"
    ))
    .bind(&reach.origins)
    .bind(&reach.host)
    .fetch_one(pool)
    .await
}

/// Items among `ids` not yet final (see [`open_items`]).
pub async fn open_among(pool: &PgPool, ids: &[i64]) -> sqlx::Result<i64> {
    sqlx::query_scalar(concat!(open_items_sql!(), " AND id = ANY($1)"))
        .bind(ids)
        .fetch_one(pool)
        .await
}

/// Where tier 4 found a `FALLO_SISTEMA` item's file, from the current listing: the
/// item goes back to the queue bound to this origin (the one configured now).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct FoundAgain {
    /// The failed item.
    pub id: i64,
    /// The origin that listed its file.
    pub origin: String,
    /// Its host, for a local origin.
    pub origin_host: Option<String>,
}

/// The `FALLO_SISTEMA` items whose file the current listing found, that tier 4 may take
/// up: listed again as they were (`listed`, by path, size and mtime) or under their
/// in-flight name (`in_flight`: item id and the entry that found it), neither discarded
/// nor retried by an operator.
pub(crate) async fn system_failures_at_origin(
    tx: &mut sqlx::PgConnection,
    listed: &[NewItem],
    in_flight: &[(i64, &NewItem)],
) -> sqlx::Result<Vec<FoundAgain>> {
    let entries: Vec<(Option<i64>, &NewItem)> = listed
        .iter()
        .map(|f| (None, f))
        .chain(in_flight.iter().map(|(id, f)| (Some(*id), *f)))
        .collect();
    let items: Vec<Option<i64>> = entries.iter().map(|(id, _)| *id).collect();
    let paths: Vec<&str> = entries
        .iter()
        .map(|(_, f)| f.source_path.as_str())
        .collect();
    let sizes: Vec<i64> = entries.iter().map(|(_, f)| f.size as i64).collect();
    let mtimes: Vec<Option<DateTime<Utc>>> = entries.iter().map(|(_, f)| f.mtime).collect();
    let origins: Vec<&str> = entries.iter().map(|(_, f)| f.origin.url.as_str()).collect();
    let hosts: Vec<Option<&str>> = entries
        .iter()
        .map(|(_, f)| f.origin.host.as_deref())
        .collect();
    sqlx::query_as(concat!(
        "SELECT DISTINCT ON (w.id) w.id, f.origin, f.origin_host
         FROM work_items w JOIN bitacora_control b ON b.work_item_id = w.id
         JOIN unnest($1::bigint[], $2::text[], $3::bigint[], $4::timestamptz[], $5::text[], $6::text[])
              AS f(item, path, size, mtime, origin, origin_host)
           ON f.item = w.id
              OR (f.item IS NULL AND w.source_path = f.path AND w.size_bytes = f.size
                  AND w.mtime IS NOT DISTINCT FROM f.mtime)
         WHERE w.state = ",
        sql_state!(Failed),
        " AND b.estatus = ",
        crate::types::state::sql_status!(FalloSistema),
        " AND b.descartado_en IS NULL
           AND NOT EXISTS (SELECT 1 FROM work_items r WHERE r.retry_of = b.id)
         ORDER BY w.id, f.item NULLS LAST"
    ))
    .bind(&items)
    .bind(&paths)
    .bind(&sizes)
    .bind(&mtimes)
    .bind(&origins)
    .bind(&hosts)
    .fetch_all(tx)
    .await
}

/// Tier 4's write: the `candidates` that have not used their `max_runs` nightly retries
/// go back to pending for dispatch run `dispatch_run`, bound to the origin that listed
/// their file, at most one per listed path and never beside an open item of the same
/// path; returns their ids.
pub(crate) async fn requeue_system_failures(
    tx: &mut sqlx::PgConnection,
    candidates: &[FoundAgain],
    max_runs: i32,
    dispatch_run: i64,
) -> sqlx::Result<Vec<i64>> {
    let ids: Vec<i64> = candidates.iter().map(|c| c.id).collect();
    let origins: Vec<&str> = candidates.iter().map(|c| c.origin.as_str()).collect();
    let hosts: Vec<Option<&str>> = candidates
        .iter()
        .map(|c| c.origin_host.as_deref())
        .collect();
    sqlx::query_scalar(concat!(
        "UPDATE work_items w
         SET state = ", sql_state!(Pending), ", attempts = 0, run_at = now(), system_retry_days = w.system_retry_days + 1,
             dispatch_run_id = $3, origin = c.origin, origin_host = c.origin_host,
             last_error = 'retried by the nightly run (tier 4) after: ' || coalesce(w.last_error, ''),
             updated_at = now()
         FROM unnest($1::bigint[], $4::text[], $5::text[]) AS c(id, origin, origin_host)
         -- At most one item per listed path goes back (one open item per path).
         WHERE w.id = c.id
           AND w.id IN (SELECT DISTINCT ON (i.source_path) i.id FROM work_items i
                        WHERE i.id = ANY($1) AND i.system_retry_days < $2 ORDER BY i.source_path, i.id)
           -- Never two open items for one listed path.
           AND NOT EXISTS (SELECT 1 FROM work_items o WHERE o.state IN ", open_states!(), "
                           AND o.source_path = w.source_path)
         RETURNING w.id"
    ))
    .bind(&ids)
    .bind(max_runs)
    .bind(dispatch_run)
    .bind(&origins)
    .bind(&hosts)
    .fetch_all(tx)
    .await
}

/// An item and its audit row, as [`states_of`] reads them.
#[derive(sqlx::FromRow)]
struct StandRow {
    id: i64,
    #[sqlx(try_from = "String")]
    state: ItemState,
    #[sqlx(try_from = "String")]
    estatus: AuditStatus,
    updated_at: DateTime<Utc>,
    retried: bool,
    discarded: bool,
}

/// Where the items whose ids are given stand (unknown ids are left out).
pub async fn states_of(pool: &PgPool, ids: &[i64]) -> sqlx::Result<Vec<(i64, ItemStand)>> {
    let rows: Vec<StandRow> = sqlx::query_as(
        "SELECT w.id, w.state, b.estatus, w.updated_at,
                EXISTS (SELECT 1 FROM work_items r WHERE r.retry_of = b.id) AS retried,
                b.descartado_en IS NOT NULL AS discarded
         FROM work_items w JOIN bitacora_control b ON b.work_item_id = w.id WHERE w.id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.id,
                ItemStand {
                    state: r.state,
                    status: r.estatus,
                    updated_at: r.updated_at,
                    retried: r.retried,
                    discarded: r.discarded,
                },
            )
        })
        .collect())
}

/// An operator's take-back, in `tx`: the running item `item`, unless an attempt holds
/// its row at this instant, is pending again at once, its attempt counted and its token
/// dead; returns the ids taken back (none when it is not running).
pub(crate) async fn take_back(tx: &mut sqlx::PgConnection, item: i64) -> sqlx::Result<Vec<i64>> {
    // NOWAIT: an attempt holding the row (its last write before COMMIT) is not waited for.
    sqlx::query_scalar(concat!(
        "UPDATE work_items
         SET state = ",
        sql_state!(Pending),
        ", locked_by = NULL, locked_until = NULL, run_at = now(),
             last_error = 'taken back by an operator (dispatcher take-back)', updated_at = now()
         WHERE id = (SELECT id FROM work_items WHERE id = $1 AND state = ",
        sql_state!(Running),
        " FOR NO KEY UPDATE NOWAIT)
         RETURNING id"
    ))
    .bind(item)
    .fetch_all(tx)
    .await
}

/// What an operator's rebind moved (see [`rebind_origin`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rebound {
    /// Pending items now bound to the new origin.
    pub pending: Vec<i64>,
    /// `FALLO_SISTEMA` items still waiting (tier 4 or an operator), now bound to it.
    pub failed: Vec<i64>,
    /// Pending items left where they were: an open item holds their new path.
    pub blocked: Vec<i64>,
    /// Running items left alone: a performer holds them (it finishes or loses them).
    pub running: Vec<i64>,
}

/// An operator's rebind, in `tx`: the pending items of origin `from` (and its failed
/// `FALLO_SISTEMA` items that still wait, so a retry finds their file) are bound to
/// origin `to`, whose directory is `dir`; their paths become `dir/<listed name>`. Items
/// bound to a host (a local origin) are bound to `host` when given (a renamed host).
pub(crate) async fn rebind_origin(
    tx: &mut sqlx::PgConnection,
    from: &str,
    to: &str,
    dir: &str,
    host: Option<&str>,
) -> sqlx::Result<Rebound> {
    #[derive(sqlx::FromRow)]
    struct Moved {
        id: i64,
        #[sqlx(try_from = "String")]
        state: ItemState,
    }
    let moved: Vec<Moved> = sqlx::query_as(concat!(
        "UPDATE work_items w
         SET origin = $2, source_path = rtrim($3, '/') || '/' || w.source_name, updated_at = now(),
             origin_host = CASE WHEN w.origin_host IS NULL THEN NULL ELSE coalesce($4, w.origin_host) END
         FROM bitacora_control b
         WHERE b.work_item_id = w.id AND w.origin = $1
           AND (w.state = ",
        sql_state!(Pending),
        "
                OR (w.state = ",
        sql_state!(Failed),
        " AND b.estatus = ",
        crate::types::state::sql_status!(FalloSistema),
        " AND b.descartado_en IS NULL
                    AND NOT EXISTS (SELECT 1 FROM work_items r WHERE r.retry_of = b.id)))
           -- One open item per path: never beside an open item already at the new path.
           AND NOT (w.state = ",
        sql_state!(Pending),
        " AND EXISTS (
                    SELECT 1 FROM work_items o WHERE o.id <> w.id AND o.state IN ",
        open_states!(),
        "
                    AND o.source_path = rtrim($3, '/') || '/' || w.source_name))
         RETURNING w.id, w.state"
    ))
    .bind(from)
    .bind(to)
    .bind(dir)
    .bind(host)
    .fetch_all(&mut *tx)
    .await?;
    let mut rebound = Rebound::default();
    for m in moved {
        match m.state {
            ItemState::Pending => rebound.pending.push(m.id),
            _ => rebound.failed.push(m.id),
        }
    }
    let left: Vec<(i64, String)> = sqlx::query_as(concat!(
        "SELECT id, state FROM work_items WHERE origin = $1 AND state IN ",
        open_states!(),
        " ORDER BY id"
    ))
    .bind(from)
    .fetch_all(&mut *tx)
    .await?;
    for (id, state) in left {
        match ItemState::parse(&state) {
            Some(ItemState::Running) => rebound.running.push(id),
            _ => rebound.blocked.push(id),
        }
    }
    rebound.pending.sort_unstable();
    rebound.failed.sort_unstable();
    Ok(rebound)
}

/// An operator's cancel, in `tx`: the pending items of origin `origin` become final —
/// `failed` when nothing of theirs committed, else what their committed status makes
/// them (a load is never made a failure) — recorded with `why`; returns their ids and
/// whether each had committed. Running items are left alone.
pub(crate) async fn cancel_origin(
    tx: &mut sqlx::PgConnection,
    origin: &str,
    why: &str,
) -> sqlx::Result<Vec<(i64, bool)>> {
    sqlx::query_as(concat!(
        "UPDATE work_items w
         SET state = CASE WHEN b.estatus IN ",
        crate::types::state::loaded_statuses!(),
        " OR b.estatus = ",
        crate::types::state::sql_status!(Duplicado),
        " THEN ",
        sql_state!(Done),
        " ELSE ",
        sql_state!(Failed),
        " END,
             claim_token = coalesce(w.claim_token, nextval('work_items_claim_token_seq')),
             system_retry_days = 999, last_error = $2, updated_at = now()
         FROM bitacora_control b
         WHERE b.work_item_id = w.id AND w.origin = $1 AND w.state = ",
        sql_state!(Pending),
        "
         RETURNING w.id, b.estatus IN ",
        crate::types::state::committed_statuses!(),
        " AS committed"
    ))
    .bind(origin)
    .bind(why)
    .fetch_all(tx)
    .await
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
pub(crate) async fn stop_nightly_retries(
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
    /// Every state with its count (zero included), in [`ItemState::ALL`] order.
    pub by_state: Vec<(ItemState, i64)>,
    /// Seconds since the oldest pending item became due (0 when none).
    pub oldest_pending_secs: f64,
    /// Every state with the seconds since its oldest due item's `run_at` (0 when none).
    pub oldest_due_secs: Vec<(ItemState, f64)>,
}

/// One state's line of [`depth`].
#[derive(sqlx::FromRow)]
struct DepthRow {
    #[sqlx(try_from = "String")]
    state: ItemState,
    items: i64,
    oldest_due_secs: f64,
}

/// The queue's depth, for metrics and `dispatcher status`: per state, the count and the
/// seconds since the oldest due item of that state became due.
pub async fn depth(pool: &PgPool) -> sqlx::Result<Depth> {
    let states: Vec<&str> = ItemState::ALL.iter().map(|s| s.as_str()).collect();
    let rows: Vec<DepthRow> = sqlx::query_as(
        "SELECT s.state, count(w.id) AS items,
                coalesce(extract(epoch FROM now() - min(w.run_at) FILTER (WHERE w.run_at <= now())), 0)::float8
                    AS oldest_due_secs
         FROM unnest($1::text[]) WITH ORDINALITY AS s(state, n)
         LEFT JOIN work_items w ON w.state = s.state
         GROUP BY s.state, s.n ORDER BY s.n",
    )
    .bind(&states)
    .fetch_all(pool)
    .await?;
    let mut depth = Depth::default();
    for row in rows {
        if row.state == ItemState::Pending {
            depth.oldest_pending_secs = row.oldest_due_secs;
        }
        depth.by_state.push((row.state, row.items));
        depth.oldest_due_secs.push((row.state, row.oldest_due_secs));
    }
    Ok(depth)
}

/// The open part of the queue: what is waiting and in hand now.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct OpenDepth {
    /// Items pending (due or not).
    pub pending: i64,
    /// Items running.
    pub running: i64,
    /// Seconds since the oldest pending item became due (0 when none).
    pub oldest_pending_secs: f64,
}

/// The open part of the queue, read from the partial indexes of pending and running
/// items only: its cost does not grow with the finished history (unlike [`depth`]).
pub async fn open_depth(pool: &PgPool) -> sqlx::Result<OpenDepth> {
    sqlx::query_as(concat!(
        "SELECT (SELECT count(*) FROM work_items WHERE state = ",
        sql_state!(Pending),
        ") AS pending,
                (SELECT count(*) FROM work_items WHERE state = ",
        sql_state!(Running),
        ") AS running,
                coalesce(extract(epoch FROM now() - (SELECT min(run_at) FROM work_items
                                                     WHERE state = ",
        sql_state!(Pending),
        " AND run_at <= now())), 0)::float8
                    AS oldest_pending_secs"
    ))
    .fetch_one(pool)
    .await
}

/// An item in hand (running), or a loaded one whose backup or delete is still to be
/// done (waiting between attempts as pending): `dispatcher status` shows both.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InHand {
    /// `work_items.id`.
    pub work_item: i64,
    /// The file.
    pub file_name: String,
    /// The worker that holds it.
    pub worker: Option<String>,
    /// Its lease's end, as the database writes it (`YYYY-MM-DD HH24:MI:SS TZ`).
    pub lease_until: Option<String>,
    /// This attempt's number.
    pub attempt: i32,
    /// Its audit row.
    pub bitacora_id: i64,
    /// The audit status.
    #[sqlx(try_from = "String")]
    pub status: AuditStatus,
    /// The last error recorded.
    pub last_error: Option<String>,
    /// Its lease has run out: its performer stopped answering (it is taken back soon).
    pub lease_expired: bool,
}

/// Items in hand and committed ones not yet finished (see [`InHand`]), by item id.
pub async fn in_hand(pool: &PgPool) -> sqlx::Result<Vec<InHand>> {
    sqlx::query_as(concat!(
        "SELECT w.id AS work_item, w.file_name, w.locked_by AS worker, to_char(w.locked_until, 'YYYY-MM-DD HH24:MI:SS TZ') AS lease_until,
                w.attempts AS attempt, b.id AS bitacora_id, b.estatus AS status, w.last_error,
                coalesce(w.locked_until < now(), false) AS lease_expired
         FROM work_items w JOIN bitacora_control b ON b.work_item_id = w.id
         WHERE w.state = ", sql_state!(Running), "
            OR (w.state = ", sql_state!(Pending), " AND b.estatus IN ",
        crate::types::state::committed_statuses!(), ")
         ORDER BY w.id"
    ))
    .fetch_all(pool)
    .await
}

/// Inserts `n` empty items for the queue benchmark; returns their ids.
pub(crate) async fn insert_bench_items(
    tx: &impl GenericClient,
    n: i64,
) -> Result<Vec<i64>, tokio_postgres::Error> {
    Ok(tx
        .query(
            "INSERT INTO work_items (origin, source_name, source_path, file_name, size_bytes, mtime)
             SELECT 'bench:', 'bench_' || g || '.txt', 'bench/' || g, 'bench_' || g || '.txt', 0, now()
             FROM generate_series(1, $1::bigint) g
             RETURNING id",
            &[&n],
        )
        .await?
        .iter()
        .map(|r| r.get("id"))
        .collect())
}

/// Benchmark items not claimed exactly once and finished `done`: zero after a clean run.
pub async fn bench_items_not_done_once(
    client: &impl GenericClient,
) -> Result<i64, tokio_postgres::Error> {
    let row = client
        .query_one(
            concat!(
                "SELECT count(*) AS n FROM work_items WHERE file_name LIKE 'bench_%'
                 AND (attempts <> 1 OR state <> ",
                sql_state!(Done),
                ")"
            ),
            &[],
        )
        .await?;
    Ok(row.get("n"))
}

/// A work item's business day: the day of its first claim, or, before any claim, the
/// local day (in the time zone `$tz`) it was listed.
macro_rules! item_day {
    () => {
        "coalesce(business_date, (created_at AT TIME ZONE $tz)::date)"
    };
}

/// Files the feed delivered: items a dispatch run listed (an operator's retry or a reload
/// is not a delivery, and tier 4 retries the same item), whatever became of them.
/// Every item is a file of the visits feed until feeds are data (issue 22).
const DELIVERIES: &str = "FROM work_items WHERE dispatch_run_id IS NOT NULL AND retry_of IS NULL";

/// How many files `feed` delivered for business day `day` (business days in time zone `tz`).
pub async fn delivered(pool: &PgPool, feed: &str, day: NaiveDate, tz: &str) -> sqlx::Result<i64> {
    debug_assert!(crate::feed::FEEDS.contains(&feed));
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) {DELIVERIES} AND {} = $1",
        item_day!().replace("$tz", "$2")
    )))
    .bind(day)
    .bind(tz)
    .fetch_one(pool)
    .await
}

/// The first and the latest business days `feed` delivered a file for, if any.
pub async fn delivery_span(
    pool: &PgPool,
    feed: &str,
    tz: &str,
) -> sqlx::Result<(Option<NaiveDate>, Option<NaiveDate>)> {
    debug_assert!(crate::feed::FEEDS.contains(&feed));
    let day = item_day!().replace("$tz", "$1");
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT min({day}), max({day}) {DELIVERIES}"
    )))
    .bind(tz)
    .fetch_one(pool)
    .await
}
