//! The transactions that move an item and its audit row together: every write that
//! touches both `work_items` and `bitacora_control` lives here, each a transition of
//! `docs/state-machine.md`. Within one, the work item is locked first, then its audit
//! row, as everywhere else, so they never deadlock.

use super::{audit, queue};
use crate::types::{Claimed, Fence, FileFacts, Final, NewItem, Reach};
use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::{Client, GenericClient};
use sqlx::PgPool;
use std::time::Duration;

/// Enqueues listed files in one transaction, creates their `PENDIENTE` audit rows and
/// notifies performers; returns the new ids. A file is skipped while an item for the same
/// path is open, or an item with the same listing identity (origin and its host, path,
/// size, mtime) finished
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
        let id = queue::insert_item(
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
        queue::notify(&mut tx).await?;
    }
    tx.commit().await?;
    if !ids.is_empty() {
        queue::refresh_statistics(pool).await;
    }
    Ok(ids)
}

/// An operator's retry of the item behind audit row `retry_of`, in the operator's
/// transaction: a new item (and audit row) for the same file, at `item.origin` under
/// `item.source_name`; the old item leaves tier 4. Returns the new audit row's id, or
/// `None` while an open item already holds that path.
pub async fn enqueue_retry(
    tx: &mut sqlx::PgConnection,
    retry_of: i64,
    item: &NewItem,
    max_attempts: i32,
) -> sqlx::Result<Option<i64>> {
    let inserted = queue::insert_item(
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
    queue::stop_nightly_retries(tx, retry_of).await?;
    queue::notify(tx).await?;
    Ok(Some(bitacora_id))
}

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
            &tx.prepare_cached(queue::CLAIM).await?,
            &[
                &worker,
                &lease.as_secs_f64(),
                &reach.origins,
                &reach.host,
                &business_date,
            ],
        )
        .await?;
    let Some(r) = row else {
        return Ok(None);
    };
    let (id, attempts): (i64, i32) = (r.get("id"), r.get("attempts"));
    let prior = audit::begin_attempt(&tx, id, attempts, worker).await?;
    tx.commit().await?;
    Ok(Some(Claimed {
        id,
        token: r.get("claim_token"),
        bitacora_id: prior.bitacora_id,
        file_name: r.get("file_name"),
        origin: crate::types::Origin {
            url: r.get("origin"),
            host: r.get("origin_host"),
        },
        source_name: r.get("source_name"),
        source_path: r.get("source_path"),
        size: r.get("size_bytes"),
        mtime: r.get("mtime"),
        attempts,
        max_attempts: r.get("max_attempts"),
        business_date: r.get("business_date"),
        prior_status: prior.status,
        prior_sha256: prior.sha256,
        prior_size: prior.size,
        prior_backup: prior.backup,
        done_marker: r.get("done_marker"),
        read_in_place: r.get("read_in_place"),
        loaded_prefix: r.get::<_, Option<i64>>("loaded_prefix_bytes").map(|bytes| {
            crate::types::LoadedPrefix {
                bytes,
                sha256: r.get("loaded_prefix_sha256"),
                loaded_by: r.get("loaded_prefix_of"),
            }
        }),
    }))
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
    let ours = queue::hand_back(&tx, item, error, delay, true).await?;
    if ours {
        audit::back_to_pending(&tx, item.id, Some(error)).await?;
    }
    tx.commit().await?;
    Ok(ours)
}

/// Hands an item back at once without counting the attempt (graceful shutdown);
/// `false` when the attempt no longer holds it.
pub async fn release(client: &mut Client, item: &Claimed) -> Result<bool, tokio_postgres::Error> {
    give_back(client, item, "handed back at shutdown").await
}

/// Hands an item back at once without counting the attempt, saying `why` (a shutdown, a
/// database outage); `false` when the attempt no longer holds it.
pub async fn give_back(
    client: &mut Client,
    item: &Claimed,
    why: &str,
) -> Result<bool, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let ours = queue::hand_back(&tx, item, why, Duration::ZERO, false).await?;
    if ours {
        audit::back_to_pending(&tx, item.id, None).await?;
    }
    tx.commit().await?;
    Ok(ours)
}

/// Hands back, uncounted, the items that worker `worker` holds without knowing it (see
/// `queue::release_unknown_claims`); their audit rows show `PENDIENTE` again unless
/// committed. Returns their ids.
pub async fn release_unknown_claims(
    client: &mut Client,
    worker: &str,
) -> Result<Vec<i64>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let ids = queue::release_unknown_claims(&tx, worker).await?;
    for id in &ids {
        audit::back_to_pending(&tx, *id, None).await?;
    }
    tx.commit().await?;
    Ok(ids)
}

/// Tier 3: `FALLO_SISTEMA` on the audit row (with what is known of a whole staged copy,
/// and where it was quarantined) and the item failed, in one transaction; `false` (and
/// nothing written) when the attempt no longer holds the item. Repeated after its COMMIT
/// acknowledgement was lost, it finds the item failed by this attempt and says `true`.
pub async fn fail(
    client: &mut Client,
    item: &Claimed,
    message: &str,
    copy: Option<&FileFacts>,
    quarantined: Option<&str>,
) -> Result<bool, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let fence = Fence::from(item);
    let mut ours = audit::record_system_failure(&tx, fence, message, copy).await?;
    if let Some(to) = quarantined {
        ours &= audit::record_local_copy(&tx, fence, to).await?;
    }
    ours &= queue::finish(&tx, item, Final::Failed, Some(message)).await?;
    if ours {
        tx.commit().await?;
        return Ok(true);
    }
    tx.rollback().await?;
    queue::finished_by(&*client, item, Final::Failed).await
}

/// Tier 4: `FALLO_SISTEMA` items whose file is still at the origin — still as listed
/// (`at_origin`, by listing identity) or under the item's in-flight name (`in_flight`:
/// item id and the listing entry) — go back to the queue, bound to the origin that
/// listed them, at most `max_runs` times. Returns (items re-enqueued, items that used up
/// their runs and wait for an operator).
pub async fn retry_system_failures(
    pool: &PgPool,
    dispatch_run: i64,
    at_origin: &[NewItem],
    in_flight: &[(i64, &NewItem)],
    max_runs: u32,
) -> sqlx::Result<(Vec<i64>, i64)> {
    let mut tx = pool.begin().await?;
    let candidates = queue::system_failures_at_origin(&mut tx, at_origin, in_flight).await?;
    let retried =
        queue::requeue_system_failures(&mut tx, &candidates, max_runs as i32, dispatch_run).await?;
    audit::back_to_pending_all(&mut tx, &retried).await?;
    if !retried.is_empty() {
        queue::notify(&mut tx).await?;
    }
    tx.commit().await?;
    if !retried.is_empty() {
        queue::refresh_statistics(pool).await;
    }
    let waiting = (candidates.len() - retried.len()) as i64;
    Ok((retried, waiting))
}

/// An operator takes back a running item whose performer is gone: it is pending again at
/// once, its attempt counted, and the old attempt's token is dead (a new claim gives a new
/// one). `false` when it is not running.
pub async fn take_back(pool: &PgPool, item: i64) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let taken = queue::take_back(&mut tx, item).await?;
    audit::back_to_pending_all(&mut tx, &taken).await?;
    tx.commit().await?;
    Ok(!taken.is_empty())
}

/// An operator discards the quarantined file of audit row `bitacora_id`, in the
/// operator's transaction: recorded with its reason and its copy's new place, and its
/// item leaves tier 4.
pub async fn discard(
    tx: &mut sqlx::PgConnection,
    bitacora_id: i64,
    reason: &str,
    moved_to: Option<&str>,
) -> sqlx::Result<()> {
    audit::record_discard(tx, bitacora_id, reason, moved_to).await?;
    queue::stop_nightly_retries(tx, bitacora_id).await
}

/// An operator rebinds origin `from`'s items (and its open set-aside records) to origin
/// `to`, whose directory is `dir`, in one transaction; with `dry_run`, only says what
/// would move. Returns what moved and how many records.
pub async fn rebind_origin(
    pool: &PgPool,
    from: &str,
    to: &str,
    dir: &str,
    host: Option<&str>,
    dry_run: bool,
) -> sqlx::Result<(queue::Rebound, u64)> {
    let mut tx = pool.begin().await?;
    let rebound = queue::rebind_origin(&mut tx, from, to, dir, host).await?;
    let records = super::set_aside::rebind_origin(&mut tx, from, to, dir, host).await?;
    if dry_run {
        tx.rollback().await?;
    } else {
        if !rebound.pending.is_empty() {
            queue::notify(&mut tx).await?;
        }
        tx.commit().await?;
    }
    Ok((rebound, records))
}

/// An operator cancels origin `origin`'s pending items, with `why`, in one transaction
/// (see `queue::cancel_origin` and `audit::record_cancelled`); returns their ids and
/// whether each had committed.
pub async fn cancel_origin(
    pool: &PgPool,
    origin: &str,
    why: &str,
) -> sqlx::Result<Vec<(i64, bool)>> {
    let mut tx = pool.begin().await?;
    let cancelled = queue::cancel_origin(&mut tx, origin, why).await?;
    let ids: Vec<i64> = cancelled.iter().map(|(id, _)| *id).collect();
    audit::record_cancelled(&mut tx, &ids, why).await?;
    tx.commit().await?;
    Ok(cancelled)
}

/// Inserts `n` empty items (and their audit rows) for the queue benchmark.
pub async fn insert_bench_items(client: &mut Client, n: i64) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let ids = queue::insert_bench_items(&tx, n).await?;
    audit::create_bench(&tx, &ids).await?;
    tx.commit().await?;
    client.batch_execute(queue::REFRESH_STATISTICS).await
}
