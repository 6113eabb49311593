//! `set_aside_files`: every file the service leaves at the origin for an operator — a
//! file written to after it was read that still begins with what was loaded (renamed
//! `.visitas-changed-<item>-<token>`, or left under its listed name when it was read in
//! place), or one the origin refuses to delete — until an operator resolves it or it is
//! gone. The night leaves an open record's name alone; `dispatcher quarantine list` and
//! `dispatcher status` show them with why and what to do.

use crate::types::state::{committed_statuses, open_states, sql_state};
use crate::types::{AuditStatus, Fence, ItemState, Resolution, SetAsideReason};
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use sqlx::PgPool;

/// A file an attempt leaves at the origin, as it records it.
#[derive(Debug, Clone)]
pub struct LeftAtOrigin<'a> {
    /// Its name at the origin now.
    pub name: &'a str,
    /// Its full path there.
    pub path: &'a str,
    /// Its done marker, left beside it (read in place).
    pub done_marker: Option<&'a str>,
    /// Why it stays.
    pub reason: SetAsideReason,
    /// Its size when set aside.
    pub size: u64,
    /// Its mtime when set aside, when the origin shows one.
    pub mtime: Option<DateTime<Utc>>,
}

/// Records (fenced) the file the attempt leaves at the origin, before it renames it
/// there: a crash in between leaves a record and a file the next attempt finds and
/// records again. `false` when the attempt no longer holds its item.
pub async fn record(
    client: &impl GenericClient,
    fence: Fence,
    left: &LeftAtOrigin<'_>,
) -> Result<bool, tokio_postgres::Error> {
    let size = left.size as i64;
    let n = client
        .execute(
            &client
                .prepare_cached(concat!(
                    "WITH owner AS (",
                    super::queue::owner_lock!(),
                    ")
                     INSERT INTO set_aside_files (work_item_id, origin, origin_host, name, path,
                                                  done_marker, reason, size_bytes, mtime)
                     SELECT w.id, w.origin, w.origin_host, $3, $4, $5, $6, $7, $8
                     FROM owner JOIN work_items w ON w.id = owner.id
                     ON CONFLICT (work_item_id) DO UPDATE
                     SET name = EXCLUDED.name, path = EXCLUDED.path, done_marker = EXCLUDED.done_marker,
                         reason = EXCLUDED.reason, size_bytes = EXCLUDED.size_bytes,
                         mtime = EXCLUDED.mtime, set_aside_at = now()"
                ))
                .await?,
            &[
                &fence.item,
                &fence.token,
                &left.name,
                &left.path,
                &left.done_marker,
                &left.reason.as_str(),
                &size,
                &left.mtime,
            ],
        )
        .await?;
    Ok(n == 1)
}

/// An open record, as the night compares it with a listing.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OpenName {
    /// `set_aside_files.id`.
    pub id: i64,
    /// The file's name at the origin.
    pub name: String,
    /// Its size when set aside.
    pub size_bytes: i64,
    /// Its mtime when set aside, when the origin showed one.
    pub mtime: Option<DateTime<Utc>>,
    /// The item that left it.
    pub work_item_id: i64,
    /// That item's audit row.
    pub bitacora_id: i64,
    /// The file's logical name.
    pub archivo: String,
    /// That item's business date.
    pub business_date: Option<chrono::NaiveDate>,
}

/// The open records of origin `origin` (its normalised URL).
pub async fn open_at(pool: &PgPool, origin: &str) -> sqlx::Result<Vec<OpenName>> {
    sqlx::query_as(
        "SELECT s.id, s.name, s.size_bytes, s.mtime, s.work_item_id, b.id AS bitacora_id,
                b.archivo, w.business_date
         FROM set_aside_files s JOIN work_items w ON w.id = s.work_item_id
         JOIN bitacora_control b ON b.work_item_id = w.id
         WHERE s.origin = $1 AND s.resolved_at IS NULL ORDER BY s.id",
    )
    .bind(origin)
    .fetch_all(pool)
    .await
}

/// Records `ids` as no longer at the origin (someone removed them); returns how many.
pub async fn mark_gone(pool: &PgPool, ids: &[i64]) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "UPDATE set_aside_files SET resolved_at = now(), resolution = $2,
                resolved_as = 'no longer at the origin'
         WHERE id = ANY($1) AND resolved_at IS NULL",
    )
    .bind(ids)
    .bind(Resolution::Gone.as_str())
    .execute(pool)
    .await?
    .rows_affected())
}

/// A file set aside at the origin, with the item that left it and what it loaded.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SetAside {
    /// `set_aside_files.id`.
    pub id: i64,
    /// The audit row of the item that left it (the id operators use).
    pub bitacora_id: i64,
    /// That item.
    pub work_item: i64,
    /// The item's state.
    #[sqlx(try_from = "String")]
    pub item_state: ItemState,
    /// The file's logical name.
    pub archivo: String,
    /// What the item recorded.
    #[sqlx(try_from = "String")]
    pub estatus: AuditStatus,
    /// SHA-256 of what the item loaded.
    pub loaded_sha256: Option<String>,
    /// Bytes the item loaded.
    pub loaded_size: Option<i64>,
    /// Where that loaded content is backed up.
    pub ruta_backup: Option<String>,
    /// The item itself loaded only what followed this many bytes (an earlier item loaded
    /// them): a resolution of an operator's own resolution.
    pub item_prefix_bytes: Option<i64>,
    /// That beginning's SHA-256.
    pub item_prefix_sha256: Option<String>,
    /// The origin (normalised URL).
    pub origin: String,
    /// Its host, for a local origin.
    pub origin_host: Option<String>,
    /// The file's name at the origin.
    pub name: String,
    /// Its full path there.
    pub path: String,
    /// Its done marker, left beside it.
    pub done_marker: Option<String>,
    /// Why it stays.
    #[sqlx(try_from = "String")]
    pub reason: SetAsideReason,
    /// Its size when set aside.
    pub size_bytes: Option<i64>,
    /// When (`YYYY-MM-DD HH24:MI`).
    pub set_aside_at: String,
}

impl SetAside {
    /// Why it waits and what to do, as operators read it.
    pub fn explain(&self) -> String {
        let size = self
            .size_bytes
            .map_or(String::new(), |n| format!(", {n} bytes"));
        let what = match self.reason {
            SetAsideReason::Changed => format!(
                "written to at the origin after it was read; it begins with the {} bytes \
                 loaded (backed up). Load the rest: `dispatcher quarantine retry {id}`; or \
                 `dispatcher quarantine discard {id} --reason \"…\"` (to quarantine/discarded/)",
                self.loaded_size.unwrap_or_default(),
                id = self.bitacora_id
            ),
            SetAsideReason::DeleteRefused if self.item_state == ItemState::Failed => format!(
                "{} (nothing loaded; its copy in quarantine); the origin refuses to delete \
                 it, and the night leaves it alone. Retry its quarantined copy (fixed): \
                 `dispatcher quarantine retry {id}`; or `dispatcher quarantine discard {id} \
                 --reason \"…\"`; then new content under its name is loaded",
                self.estatus,
                id = self.bitacora_id
            ),
            SetAsideReason::DeleteRefused => format!(
                "loaded and backed up; the origin refuses to delete it. Ask for delete \
                 rights for the service's SFTP user, then `dispatcher quarantine retry {id}` \
                 (ends DUPLICADO and is deleted) or `dispatcher quarantine discard {id} \
                 --reason \"…\"`",
                id = self.bitacora_id
            ),
        };
        format!("left at the origin as {}{size}: {what}", self.path)
    }
}

/// The columns of [`SetAside`], from `set_aside_files s`, its item `w` and audit row `b`.
macro_rules! set_aside_columns {
    () => {
        "s.id, b.id AS bitacora_id, w.id AS work_item, w.state AS item_state, b.archivo, b.estatus,
         b.sha256 AS loaded_sha256, b.tamano_bytes AS loaded_size, b.ruta_backup,
         w.loaded_prefix_bytes AS item_prefix_bytes, w.loaded_prefix_sha256 AS item_prefix_sha256,
         s.origin, s.origin_host, s.name, s.path, s.done_marker, s.reason, s.size_bytes,
         to_char(s.set_aside_at, 'YYYY-MM-DD HH24:MI') AS set_aside_at
         FROM set_aside_files s JOIN work_items w ON w.id = s.work_item_id
         JOIN bitacora_control b ON b.work_item_id = w.id"
    };
}

/// At most `limit` open records after audit row `after`, by the audit row of the item
/// that left them (the console's pages).
pub async fn waiting_page(pool: &PgPool, after: i64, limit: i64) -> sqlx::Result<Vec<SetAside>> {
    sqlx::query_as(concat!(
        "SELECT ",
        set_aside_columns!(),
        " WHERE s.resolved_at IS NULL AND b.id > $1 ORDER BY b.id LIMIT $2"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// How many records are open.
pub async fn waiting_count(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM set_aside_files WHERE resolved_at IS NULL")
        .fetch_one(pool)
        .await
}

/// The open records, by the audit row of the item that left them.
pub async fn waiting(pool: &PgPool) -> sqlx::Result<Vec<SetAside>> {
    sqlx::query_as(concat!(
        "SELECT ",
        set_aside_columns!(),
        " WHERE s.resolved_at IS NULL ORDER BY b.id"
    ))
    .fetch_all(pool)
    .await
}

/// The open record of the item behind audit row `bitacora_id`, locked for an operator's
/// command (after `super::queue::lock_item_of`); only once that item is final, so its
/// attempt can no longer record it again.
pub async fn for_operator(
    tx: &mut sqlx::PgConnection,
    bitacora_id: i64,
) -> sqlx::Result<Option<SetAside>> {
    sqlx::query_as(concat!(
        "SELECT ",
        set_aside_columns!(),
        " WHERE b.id = $1 AND s.resolved_at IS NULL AND w.state = ",
        sql_state!(Done),
        " AND b.estatus IN ",
        committed_statuses!(),
        " FOR UPDATE OF s"
    ))
    .bind(bitacora_id)
    .fetch_optional(tx)
    .await
}

/// Whether the item behind audit row `bitacora_id` has a record still being made (its
/// item is open: an attempt is finishing it). A failed item's record is final: a layout
/// failure's file the origin refused to delete, settled by the operator's retry or discard
/// ([`resolve_failed`]).
pub async fn still_finishing(tx: &mut sqlx::PgConnection, bitacora_id: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar(concat!(
        "SELECT EXISTS (SELECT 1 FROM set_aside_files s JOIN work_items w ON w.id = s.work_item_id
                        JOIN bitacora_control b ON b.work_item_id = w.id
                        WHERE b.id = $1 AND s.resolved_at IS NULL AND w.state IN ",
        open_states!(),
        ")"
    ))
    .bind(bitacora_id)
    .fetch_one(tx)
    .await
}

/// Resolves, in the operator's transaction, the open record of the failed item behind
/// audit row `bitacora_id` (a quarantined file the origin refused to delete): the
/// operator's retry (from the quarantined copy) or discard settles it, and the name is
/// listed again: the same file stays known ([`super::queue`]), a new one under the name
/// is loaded. Returns how many records it resolved.
pub async fn resolve_failed(
    tx: &mut sqlx::PgConnection,
    bitacora_id: i64,
    how: Resolution,
    resolved_as: &str,
) -> sqlx::Result<u64> {
    Ok(sqlx::query(concat!(
        "UPDATE set_aside_files s SET resolved_at = now(), resolution = $2, resolved_as = $3
         FROM work_items w JOIN bitacora_control b ON b.work_item_id = w.id
         WHERE s.work_item_id = w.id AND b.id = $1 AND s.resolved_at IS NULL AND w.state = ",
        sql_state!(Failed)
    ))
    .bind(bitacora_id)
    .bind(how.as_str())
    .bind(resolved_as)
    .execute(tx)
    .await?
    .rows_affected())
}

/// Resolves record `id` in the operator's transaction.
pub async fn resolve(
    tx: &mut sqlx::PgConnection,
    id: i64,
    how: Resolution,
    resolved_as: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE set_aside_files SET resolved_at = now(), resolution = $2, resolved_as = $3
         WHERE id = $1 AND resolved_at IS NULL",
    )
    .bind(id)
    .bind(how.as_str())
    .bind(resolved_as)
    .execute(tx)
    .await?;
    Ok(())
}

/// An operator's rebind, in `tx`: the open records of origin `from` now name origin `to`,
/// whose directory is `dir` (the files kept their names), bound to `host` when given and
/// bound to one; returns how many.
pub async fn rebind_origin(
    tx: &mut sqlx::PgConnection,
    from: &str,
    to: &str,
    dir: &str,
    host: Option<&str>,
) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "UPDATE set_aside_files SET origin = $2, path = rtrim($3, '/') || '/' || name,
                origin_host = CASE WHEN origin_host IS NULL THEN NULL ELSE coalesce($4, origin_host) END
         WHERE origin = $1 AND resolved_at IS NULL",
    )
    .bind(from)
    .bind(to)
    .bind(dir)
    .bind(host)
    .execute(tx)
    .await?
    .rows_affected())
}
