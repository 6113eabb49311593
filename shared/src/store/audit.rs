//! `bitacora_control`, the audit log: every statement that writes it alone lives here
//! (the transactions that also write `work_items` are `super::attempt`), with the reads
//! operators make of it.
//!
//! Writes made by an attempt are fenced: they join [`owner_lock!`], so they happen only
//! while the attempt still holds its item, and the item cannot be taken back before
//! their transaction ends. Each returns whether it was written.
//!
//! [`owner_lock!`]: super::queue::owner_lock

use crate::types::state::{
    committed_statuses, failure_statuses, loaded_statuses, sql_state, sql_status,
    uncommitted_statuses,
};
use crate::types::{AuditStatus, Fence, FileFacts, ItemState, LoadCounts, LoadOutcome, Unloaded};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

/// A fenced UPDATE of the attempt's audit row, `$1`/`$2` the fence: the `SET` clauses
/// given, then any further condition on `b`.
macro_rules! fenced {
    ($set:expr $(, $and:expr)?) => {
        concat!(
            "WITH owner AS (", $crate::store::queue::owner_lock!(), ")
             UPDATE bitacora_control b SET ", $set, "
             FROM owner WHERE b.work_item_id = owner.id", $(" AND ", $and)?
        )
    };
}

/// `fin` and `duracion_ms` at the moment of the write (not the transaction's start).
macro_rules! timed {
    () => {
        "fin = clock_timestamp(),
         duracion_ms = greatest(0, (extract(epoch FROM clock_timestamp() - b.inicio) * 1000)::bigint)"
    };
}

/// Creates the `PENDIENTE` audit row of a new item; returns its id.
pub(crate) async fn create(
    tx: &mut sqlx::PgConnection,
    work_item_id: i64,
    archivo: &str,
    ruta_origen: &str,
    size: u64,
    reprocesa_de: Option<i64>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO bitacora_control (work_item_id, archivo, ruta_origen, tamano_bytes, reprocesa_de)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(work_item_id)
    .bind(archivo)
    .bind(ruta_origen)
    .bind(size as i64)
    .bind(reprocesa_de)
    .fetch_one(tx)
    .await
}

/// Audit rows of the queue benchmark's empty items.
pub(crate) async fn create_bench(
    tx: &impl GenericClient,
    ids: &[i64],
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "INSERT INTO bitacora_control (work_item_id, archivo, ruta_origen)
         SELECT w.id, w.file_name, w.source_path FROM work_items w WHERE w.id = ANY($1)",
        &[&ids],
    )
    .await?;
    Ok(())
}

/// The audit row as a new attempt finds it.
#[derive(Debug, Clone)]
pub(crate) struct Prior {
    /// Its id.
    pub bitacora_id: i64,
    /// Its status before this attempt.
    pub status: AuditStatus,
    /// SHA-256 recorded by an earlier attempt.
    pub sha256: Option<String>,
    /// Size recorded by an earlier attempt (what a committed load read).
    pub size: Option<i64>,
    /// Where an earlier attempt put the local copy, if it recorded one.
    pub backup: Option<String>,
}

/// Marks the audit row of a just-claimed item in progress (in the claim's transaction);
/// a committed attempt's row keeps its status and times.
pub(crate) async fn begin_attempt(
    tx: &impl GenericClient,
    work_item_id: i64,
    attempt: i32,
    worker: &str,
) -> Result<Prior, tokio_postgres::Error> {
    let row = tx
        .query_one(
            &tx.prepare_cached(concat!(
                "WITH prior AS (SELECT id, estatus, sha256, tamano_bytes, ruta_backup, inicio, estatus IN ",
                uncommitted_statuses!(),
                " AS open FROM bitacora_control WHERE work_item_id = $1 FOR UPDATE)
                 UPDATE bitacora_control b
                 SET estatus = CASE WHEN p.open THEN ",
                sql_status!(EnProceso),
                " ELSE p.estatus END,
                     intentos = $2, worker = $3,
                     -- Each attempt is timed anew; a committed one keeps its times.
                     inicio = CASE WHEN p.open THEN clock_timestamp() ELSE p.inicio END
                 FROM prior p WHERE b.id = p.id
                 RETURNING p.id, p.estatus, p.sha256, p.tamano_bytes, p.ruta_backup",
            ))
            .await?,
            &[&work_item_id, &attempt, &worker],
        )
        .await?;
    Ok(Prior {
        bitacora_id: row.get("id"),
        status: status_of(&row, "estatus").unwrap_or(AuditStatus::EnProceso),
        sha256: row.get("sha256"),
        size: row.get("tamano_bytes"),
        backup: row.get("ruta_backup"),
    })
}

/// The audit status in column `column` of `row`, if it names one.
fn status_of(row: &Row, column: &str) -> Option<AuditStatus> {
    AuditStatus::parse(row.get::<_, &str>(column))
}

const RECORD_LOADED: &str = fenced!(concat!(
    "estatus = $3, sha256 = $4, tamano_bytes = $5, encoding = $6, fecha_negocio = $7,
     registros_totales = $8::int + $9::int, registros_validos = $8, registros_error = $9,
     visitantes_nuevos = $10, visitantes_actualizados = $11, mensaje_error = NULL, ",
    timed!()
));

/// Records a committed load (in the load's transaction, as its last write).
pub(crate) async fn record_loaded(
    tx: &impl GenericClient,
    fence: Fence,
    facts: &FileFacts,
    counts: &LoadCounts,
) -> Result<bool, tokio_postgres::Error> {
    let n = tx
        .execute(
            &tx.prepare_cached(RECORD_LOADED).await?,
            &[
                &fence.item,
                &fence.token,
                &counts.status().as_str(),
                &facts.sha256,
                &facts.size,
                &facts.encoding.label(),
                &facts.business_date,
                &counts.valid,
                &counts.rejected,
                &counts.new_visitors,
                &counts.updated_visitors,
            ],
        )
        .await?;
    Ok(n == 1)
}

/// The id of another audit row that loaded content `sha256`, if any.
pub(crate) async fn loaded_elsewhere(
    client: &impl GenericClient,
    sha256: &str,
    bitacora_id: i64,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &client
                .prepare_cached(concat!(
                    "SELECT id FROM bitacora_control WHERE sha256 = $1 AND estatus IN ",
                    loaded_statuses!(),
                    " AND id <> $2 LIMIT 1",
                ))
                .await?,
            &[&sha256, &bitacora_id],
        )
        .await?;
    Ok(row.map(|r| r.get("id")))
}

/// What an earlier try of this attempt committed, if its row is already final (a COMMIT
/// whose acknowledgement was lost): the load is not repeated.
pub async fn committed_outcome(
    client: &impl GenericClient,
    fence: Fence,
) -> Result<Option<LoadOutcome>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &client
                .prepare_cached(concat!(
                    "SELECT b.estatus, coalesce(b.registros_validos, 0) AS valid,
                            coalesce(b.registros_error, 0) AS rejected,
                            coalesce(b.visitantes_nuevos, 0) AS new_visitors,
                            coalesce(b.visitantes_actualizados, 0) AS updated_visitors,
                            (SELECT d.id FROM bitacora_control d
                             WHERE d.sha256 = b.sha256 AND d.estatus IN ",
                    loaded_statuses!(),
                    "
                               AND d.id <> b.id LIMIT 1) AS duplicate_of
                     FROM bitacora_control b JOIN work_items w ON w.id = b.work_item_id
                     -- Only while this attempt holds the item: a stale one committed nothing.
                     WHERE w.id = $1 AND w.claim_token = $2 AND w.state = ",
                    sql_state!(Running),
                ))
                .await?,
            &[&fence.item, &fence.token],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(match status_of(&row, "estatus") {
        Some(AuditStatus::Duplicado) => Some(LoadOutcome::Duplicate {
            of: row
                .get::<_, Option<i64>>("duplicate_of")
                .unwrap_or_default(),
        }),
        Some(s) if s.is_loaded() => Some(LoadOutcome::Loaded(LoadCounts {
            valid: row.get("valid"),
            rejected: row.get("rejected"),
            new_visitors: row.get("new_visitors"),
            updated_visitors: row.get("updated_visitors"),
        })),
        _ => None,
    })
}

const RECORD_UNLOADED: &str = fenced!(concat!(
    "estatus = $3, sha256 = $4, tamano_bytes = $5, encoding = $6, fecha_negocio = $7,
     mensaje_error = $8, ",
    timed!(),
    ",
     registros_totales = CASE WHEN $3 = ",
    sql_status!(Duplicado),
    " THEN 0 END,
     registros_validos = CASE WHEN $3 = ",
    sql_status!(Duplicado),
    " THEN 0 END,
     registros_error = CASE WHEN $3 = ",
    sql_status!(Duplicado),
    " THEN 0 END,
     visitantes_nuevos = CASE WHEN $3 = ",
    sql_status!(Duplicado),
    " THEN 0 END,
     visitantes_actualizados = CASE WHEN $3 = ",
    sql_status!(Duplicado),
    " THEN 0 END"
));

/// Records a file that loads nothing, with what is known of it. The queue item stays
/// running until the file is set aside and gone from the origin.
pub async fn record_unloaded(
    client: &impl GenericClient,
    fence: Fence,
    facts: &FileFacts,
    status: Unloaded,
    message: &str,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            &client.prepare_cached(RECORD_UNLOADED).await?,
            &[
                &fence.item,
                &fence.token,
                &AuditStatus::from(status).as_str(),
                &facts.sha256,
                &facts.size,
                &facts.encoding.label(),
                &facts.business_date,
                &crate::types::storable::message(message),
            ],
        )
        .await?;
    Ok(n == 1)
}

// A committed load's row is never made a failure by a later step. What is known of a
// whole staged copy (if any) is kept: `quarantine retry` trusts the quarantined copy
// only if its SHA-256 is this one.
const RECORD_SYSTEM_FAILURE: &str = fenced!(
    concat!(
        "estatus = ",
        sql_status!(FalloSistema),
        ", mensaje_error = $3, sha256 = coalesce($4, b.sha256),
         tamano_bytes = coalesce($5, b.tamano_bytes), encoding = coalesce($6, b.encoding), ",
        timed!()
    ),
    concat!("b.estatus IN ", uncommitted_statuses!())
);

/// Records `FALLO_SISTEMA` (in the transaction that fails the item).
pub(crate) async fn record_system_failure(
    tx: &impl GenericClient,
    fence: Fence,
    message: &str,
    copy: Option<&FileFacts>,
) -> Result<bool, tokio_postgres::Error> {
    let message: &str = &crate::types::storable::message(message);
    let n = tx
        .execute(
            &tx.prepare_cached(RECORD_SYSTEM_FAILURE).await?,
            &[
                &fence.item,
                &fence.token,
                &message,
                &copy.map(|f| f.sha256.as_str()),
                &copy.map(|f| f.size),
                &copy.map(|f| f.encoding.label()),
            ],
        )
        .await?;
    Ok(n == 1)
}

const RECORD_NOTE: &str = fenced!("mensaje_error = $3");

/// Records a note for operators on the attempt's audit row (e.g. a file set aside).
pub async fn record_note(
    client: &impl GenericClient,
    fence: Fence,
    note: &str,
) -> Result<bool, tokio_postgres::Error> {
    write_note(client, RECORD_NOTE, fence, note).await
}

const APPEND_NOTE: &str = fenced!("mensaje_error = coalesce(b.mensaje_error || '; ', '') || $3");

/// Adds a note for operators after what the attempt's audit row says already (a layout
/// failure's reason stays).
pub async fn append_note(
    client: &impl GenericClient,
    fence: Fence,
    note: &str,
) -> Result<bool, tokio_postgres::Error> {
    write_note(client, APPEND_NOTE, fence, note).await
}

/// Runs one of the note statements under the attempt's fence; false when it lost the item.
async fn write_note(
    client: &impl GenericClient,
    sql: &str,
    fence: Fence,
    note: &str,
) -> Result<bool, tokio_postgres::Error> {
    let note: &str = &crate::types::storable::message(note);
    let n = client
        .execute(
            &client.prepare_cached(sql).await?,
            &[&fence.item, &fence.token, &note],
        )
        .await?;
    Ok(n == 1)
}

const RECORD_LOCAL_COPY: &str = concat!(
    "WITH owner AS (",
    super::queue::owner_lock!(),
    ")
     UPDATE bitacora_control b SET ruta_backup = $3
     FROM owner JOIN work_items w ON w.id = owner.id
     WHERE b.work_item_id = owner.id
        OR (b.id = w.retry_of AND w.origin LIKE 'file://%' AND b.estatus IN ",
    failure_statuses!(),
    ")"
);

/// Records where the attempt put the file's local copy (backup or quarantine). An
/// operator's retry of a local (quarantined) copy took that copy: the retried row follows
/// it. (A retried loaded row, whose file was set aside at the origin, keeps its backup.)
pub async fn record_local_copy(
    client: &impl GenericClient,
    fence: Fence,
    path: &str,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            &client.prepare_cached(RECORD_LOCAL_COPY).await?,
            &[&fence.item, &fence.token, &path],
        )
        .await?;
    Ok(n >= 1)
}

/// An item handed back to the queue (in the queue's transaction, after its fenced write):
/// the row shows `PENDIENTE`, with why when given.
pub(crate) async fn back_to_pending(
    tx: &impl GenericClient,
    work_item_id: i64,
    why: Option<&str>,
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        &tx.prepare_cached(concat!(
            "UPDATE bitacora_control SET estatus = ",
            sql_status!(Pendiente),
            ", mensaje_error = coalesce($2, mensaje_error)
             WHERE work_item_id = $1 AND estatus = ",
            sql_status!(EnProceso)
        ))
        .await?,
        &[&work_item_id, &why.map(crate::types::storable::message)],
    )
    .await?;
    Ok(())
}

/// Items put back in the queue (tier 4, an operator's take-back): their rows show `PENDIENTE`.
pub(crate) async fn back_to_pending_all(
    tx: &mut sqlx::PgConnection,
    work_item_ids: &[i64],
) -> sqlx::Result<()> {
    sqlx::query(concat!(
        "UPDATE bitacora_control SET estatus = ",
        sql_status!(Pendiente),
        " WHERE work_item_id = ANY($1) AND estatus IN ",
        crate::types::state::sql_statuses!(FalloSistema, EnProceso)
    ))
    .bind(work_item_ids)
    .execute(tx)
    .await?;
    Ok(())
}

/// Points the audit rows naming the loose backup copy `loose` at its entry in the day's
/// zip (`zip#entry`); returns how many rows now do. Zero means no row names that copy
/// yet (its performer moved it but has not recorded it): the caller keeps the copy.
pub async fn record_archived(
    pool: &sqlx::PgPool,
    loose: &str,
    zip_entry: &str,
) -> sqlx::Result<u64> {
    let done = sqlx::query("UPDATE bitacora_control SET ruta_backup = $2 WHERE ruta_backup = $1")
        .bind(loose)
        .bind(zip_entry)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// When each of the audit rows `ids` reached its final status (`fin`: the load's commit,
/// before its backup copy was written); ids without a row are left out. What retention
/// and the zip's dates count from.
pub async fn finished_at(
    pool: &sqlx::PgPool,
    ids: &[i64],
) -> sqlx::Result<std::collections::HashMap<i64, Option<chrono::DateTime<chrono::Utc>>>> {
    #[derive(sqlx::FromRow)]
    struct Finished {
        id: i64,
        fin: Option<chrono::DateTime<chrono::Utc>>,
    }
    let rows: Vec<Finished> =
        sqlx::query_as("SELECT id, fin FROM bitacora_control WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.fin)).collect())
}

/// An operator discarded a quarantined file, with a reason; `moved_to` is its copy's new place.
pub(crate) async fn record_discard(
    tx: &mut sqlx::PgConnection,
    bitacora_id: i64,
    reason: &str,
    moved_to: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE bitacora_control SET descartado_en = now(), motivo_descarte = $2, ruta_backup = coalesce($3, ruta_backup)
         WHERE id = $1",
    )
    .bind(bitacora_id)
    .bind(reason)
    .bind(moved_to)
    .execute(tx)
    .await?;
    Ok(())
}

/// An operator cancelled the items `work_item_ids` (pending, of a retired origin): a row
/// nothing of which committed becomes `FALLO_SISTEMA`, discarded with `why`; a committed
/// one keeps its status, with `why` as its message (its backup or delete was not done).
pub(crate) async fn record_cancelled(
    tx: &mut sqlx::PgConnection,
    work_item_ids: &[i64],
    why: &str,
) -> sqlx::Result<()> {
    sqlx::query(concat!(
        "UPDATE bitacora_control
         SET estatus = CASE WHEN estatus IN ",
        uncommitted_statuses!(),
        " THEN ",
        sql_status!(FalloSistema),
        " ELSE estatus END,
             descartado_en = CASE WHEN estatus IN ",
        uncommitted_statuses!(),
        " THEN now() END,
             motivo_descarte = CASE WHEN estatus IN ",
        uncommitted_statuses!(),
        " THEN $2 END,
             mensaje_error = $2, fin = coalesce(fin, now())
         WHERE work_item_id = ANY($1)"
    ))
    .bind(work_item_ids)
    .bind(crate::types::storable::message(why))
    .execute(tx)
    .await?;
    Ok(())
}

/// Files waiting for an operator: layout or system failures neither retried nor discarded.
macro_rules! waiting {
    () => {
        concat!(
            "b.estatus IN ",
            failure_statuses!(),
            " AND b.descartado_en IS NULL
             AND NOT EXISTS (SELECT 1 FROM work_items r WHERE r.retry_of = b.id)
             AND w.state = ",
            sql_state!(Failed)
        )
    };
}

/// Files loaded whose backup or delete at the origin failed past every attempt: they keep
/// being retried (never made failures), and are shown with what is left to do.
macro_rules! unfinished {
    () => {
        concat!(
            "b.estatus IN ",
            committed_statuses!(),
            "
             AND w.state IN ",
            crate::types::state::open_states!(),
            " AND w.attempts >= w.max_attempts"
        )
    };
}

/// Loaded files finished without a backup: no copy whose SHA-256 is what was loaded could
/// be had (a crash between the commit and the backup, and the file at the origin changed
/// since). Nothing was deleted at the origin; shown until an operator acknowledges it
/// with a discard.
macro_rules! backup_missing {
    () => {
        concat!(
            "b.estatus IN ",
            committed_statuses!(),
            " AND w.state = ",
            sql_state!(Done),
            " AND b.ruta_backup IS NULL AND b.descartado_en IS NULL"
        )
    };
}

/// A loaded item an operator's command finished without its backup (`origins cancel`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Unbacked {
    /// `work_items.id`.
    pub work_item_id: i64,
    /// `bitacora_control.id`.
    pub bitacora_id: i64,
    /// The file.
    pub archivo: String,
    /// What was loaded.
    pub sha256: Option<String>,
    /// Its item's business date.
    pub business_date: Option<chrono::NaiveDate>,
}

/// Of items `ids`, the loaded ones finished without a backup.
pub async fn without_backup(pool: &sqlx::PgPool, ids: &[i64]) -> sqlx::Result<Vec<Unbacked>> {
    sqlx::query_as(concat!(
        "SELECT w.id AS work_item_id, b.id AS bitacora_id, b.archivo, b.sha256, w.business_date
         FROM work_items w JOIN bitacora_control b ON b.work_item_id = w.id
         WHERE w.id = ANY($1) AND ",
        backup_missing!(),
        " ORDER BY w.id"
    ))
    .bind(ids)
    .fetch_all(pool)
    .await
}

/// Whether item `work_item_id` is loaded and finished without its backup (its staged
/// copy, if any, may be all there is).
pub async fn lacks_backup(pool: &sqlx::PgPool, work_item_id: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar(concat!(
        "SELECT EXISTS (SELECT 1 FROM work_items w JOIN bitacora_control b ON b.work_item_id = w.id
                        WHERE w.id = $1 AND ",
        backup_missing!(),
        ")"
    ))
    .bind(work_item_id)
    .fetch_one(pool)
    .await
}

/// Records the backup an operator's command made for a finished item that had none.
pub async fn record_operator_backup(
    pool: &sqlx::PgPool,
    bitacora_id: i64,
    path: &str,
) -> sqlx::Result<bool> {
    Ok(sqlx::query(
        "UPDATE bitacora_control SET ruta_backup = $2 WHERE id = $1 AND ruta_backup IS NULL",
    )
    .bind(bitacora_id)
    .bind(path)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

/// A line of the quarantine, as `quarantine list` shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Quarantined {
    /// `bitacora_control.id`.
    pub id: i64,
    /// The file.
    pub archivo: String,
    /// Its status.
    #[sqlx(try_from = "String")]
    pub estatus: AuditStatus,
    /// When it failed (`YYYY-MM-DD HH24:MI`), empty if it has not.
    pub failed_at: String,
    /// Its local copy (quarantine or backup), empty if none.
    pub local_copy: String,
    /// Why it waits, or what is left to do.
    pub message: String,
    /// It waits for an operator (retry or discard); else it is loaded and being finished.
    pub waiting: bool,
}

/// The quarantine's lines: the files waiting for an operator (found by their status),
/// the loaded files not yet finished (found by their open item) and the loaded files
/// whose backup is missing (by a partial index of migration 0015), never a scan of the
/// whole history.
macro_rules! quarantine_lines {
    () => {
        concat!(
            "SELECT b.id, b.archivo, b.estatus, coalesce(to_char(b.fin, 'YYYY-MM-DD HH24:MI'), '') AS failed_at,
                    coalesce(b.ruta_backup, '') AS local_copy, coalesce(b.mensaje_error, '') AS message,
                    true AS waiting
             FROM bitacora_control b JOIN work_items w ON w.id = b.work_item_id
             WHERE ", waiting!(), "
             UNION ALL
             SELECT b.id, b.archivo, b.estatus, coalesce(to_char(b.fin, 'YYYY-MM-DD HH24:MI'), '') AS failed_at,
                    coalesce(b.ruta_backup, '') AS local_copy,
                    coalesce(w.last_error, 'loaded; left to do: backup and delete at the origin') AS message,
                    false AS waiting
             FROM work_items w JOIN bitacora_control b ON b.work_item_id = w.id
             WHERE ", unfinished!(), "
             UNION ALL
             SELECT b.id, b.archivo, b.estatus, coalesce(to_char(b.fin, 'YYYY-MM-DD HH24:MI'), '') AS failed_at,
                    '' AS local_copy,
                    'BACKUP MISSING: ' || coalesce(b.mensaje_error,
                        'loaded, but no copy of what was loaded could be had for the backup')
                        || ' (acknowledge with `dispatcher quarantine discard ' || b.id || ' --reason \"…\"`)'
                        AS message,
                    true AS waiting
             FROM bitacora_control b JOIN work_items w ON w.id = b.work_item_id
             WHERE ", backup_missing!()
        )
    };
}

/// What waits for an operator, loaded files not yet finished, and loaded files whose
/// backup is missing, by id. (Files set aside at the origin: `super::set_aside::waiting`.)
pub async fn quarantined(pool: &sqlx::PgPool) -> sqlx::Result<Vec<Quarantined>> {
    sqlx::query_as(concat!(
        "SELECT * FROM (",
        quarantine_lines!(),
        ") q ORDER BY id"
    ))
    .fetch_all(pool)
    .await
}

/// At most `limit` lines of the quarantine after id `after`, by id.
pub async fn quarantined_page(
    pool: &sqlx::PgPool,
    after: i64,
    limit: i64,
) -> sqlx::Result<Vec<Quarantined>> {
    sqlx::query_as(concat!(
        "SELECT * FROM (",
        quarantine_lines!(),
        ") q WHERE id > $1 ORDER BY id LIMIT $2"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// A count of the quarantine's lines.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QuarantineCount {
    /// Their status.
    #[sqlx(try_from = "String")]
    pub estatus: AuditStatus,
    /// They wait for an operator (else they are loaded and being finished).
    pub waiting: bool,
    /// How many.
    pub files: i64,
}

/// The quarantine's lines counted by status and whether they wait for an operator.
pub async fn quarantined_counts(pool: &sqlx::PgPool) -> sqlx::Result<Vec<QuarantineCount>> {
    sqlx::query_as(concat!(
        "SELECT estatus, waiting, count(*) AS files FROM (",
        quarantine_lines!(),
        ") q GROUP BY estatus, waiting ORDER BY estatus, waiting"
    ))
    .fetch_all(pool)
    .await
}

/// A quarantined file and its item, as an operator's retry reads them (locked).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RetryCandidate {
    /// The file.
    pub archivo: String,
    /// Its status.
    #[sqlx(try_from = "String")]
    pub estatus: AuditStatus,
    /// Its local copy, if one was recorded.
    pub ruta_backup: Option<String>,
    /// An operator discarded it.
    pub discarded: bool,
    /// The SHA-256 recorded for it, if any.
    pub sha256: Option<String>,
    /// Its work item.
    pub work_item: i64,
    /// The item's origin URL.
    pub origin: String,
    /// The item's origin host (local origins).
    pub origin_host: Option<String>,
    /// Its listed name at the origin.
    pub source_name: String,
    /// Its full origin path.
    pub source_path: String,
    /// Attempts allowed per item.
    pub max_attempts: i32,
    /// The item's state.
    #[sqlx(try_from = "String")]
    pub state: ItemState,
    /// The audit row an operator's retry of it made, if any.
    pub retried_as: Option<i64>,
    /// The beginning of its file an earlier item loaded (only the rest is to be loaded).
    pub loaded_prefix_bytes: Option<i64>,
    /// That beginning's SHA-256.
    pub loaded_prefix_sha256: Option<String>,
    /// The audit row that loaded it.
    pub loaded_prefix_of: Option<i64>,
}

impl RetryCandidate {
    /// What a retry must not load again: the beginning an earlier item loaded.
    pub fn loaded_prefix(&self) -> Option<crate::types::LoadedPrefix> {
        Some(crate::types::LoadedPrefix {
            bytes: self.loaded_prefix_bytes?,
            sha256: self.loaded_prefix_sha256.clone()?,
            loaded_by: self.loaded_prefix_of?,
        })
    }
}

/// The audit row `id` and its item, locked for an operator's retry (after
/// `super::queue::lock_item_of`); `None` when there is no such row.
pub async fn retry_candidate(
    tx: &mut sqlx::PgConnection,
    id: i64,
) -> sqlx::Result<Option<RetryCandidate>> {
    sqlx::query_as(
        "SELECT b.archivo, b.estatus, b.ruta_backup, b.descartado_en IS NOT NULL AS discarded, b.sha256,
                w.id AS work_item, w.origin, w.origin_host, w.source_name, w.source_path, w.max_attempts,
                w.state, w.loaded_prefix_bytes, w.loaded_prefix_sha256, w.loaded_prefix_of,
                (SELECT rb.id FROM work_items r JOIN bitacora_control rb ON rb.work_item_id = r.id
                 WHERE r.retry_of = b.id ORDER BY rb.id LIMIT 1) AS retried_as
         FROM bitacora_control b JOIN work_items w ON w.id = b.work_item_id
         WHERE b.id = $1 FOR UPDATE OF b",
    )
    .bind(id)
    .fetch_optional(tx)
    .await
}

/// A quarantined file an operator may discard: its name and local copy.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DiscardCandidate {
    /// The file.
    pub archivo: String,
    /// Its local copy, if one was recorded.
    pub ruta_backup: Option<String>,
    /// A loaded file whose backup is missing (the discard acknowledges it).
    pub loaded: bool,
}

/// The audit row `id`, locked, if it waits in quarantine or is a loaded file whose
/// backup is missing (a discard acknowledges it) (after `super::queue::lock_item_of`).
pub async fn discard_candidate(
    tx: &mut sqlx::PgConnection,
    id: i64,
) -> sqlx::Result<Option<DiscardCandidate>> {
    sqlx::query_as(concat!(
        "SELECT b.archivo, b.ruta_backup, (",
        backup_missing!(),
        ") AS loaded
         FROM bitacora_control b JOIN work_items w ON w.id = b.work_item_id
         WHERE b.id = $1 AND ((",
        waiting!(),
        ") OR (",
        backup_missing!(),
        ")) FOR UPDATE OF b"
    ))
    .bind(id)
    .fetch_optional(tx)
    .await
}

/// A work item and its audit row, as `dispatcher reload` reports them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ItemReport {
    /// `work_items.id`.
    pub work_item: i64,
    /// `bitacora_control.id`.
    pub bitacora_id: i64,
    /// The file.
    pub file_name: String,
    /// Where it was read from.
    pub source_path: String,
    /// Its business date, once fixed.
    pub business_date: Option<chrono::NaiveDate>,
    /// Queue state.
    #[sqlx(try_from = "String")]
    pub state: ItemState,
    /// Audit status.
    #[sqlx(try_from = "String")]
    pub estatus: AuditStatus,
    /// The message recorded, empty if none.
    pub message: String,
}

/// The items `ids` with their audit rows, by item id.
pub async fn items_report(pool: &sqlx::PgPool, ids: &[i64]) -> sqlx::Result<Vec<ItemReport>> {
    sqlx::query_as(
        "SELECT w.id AS work_item, b.id AS bitacora_id, w.file_name, w.source_path, w.business_date,
                w.state, b.estatus, coalesce(b.mensaje_error, '') AS message
         FROM work_items w JOIN bitacora_control b ON b.work_item_id = w.id
         WHERE w.id = ANY($1) ORDER BY w.id",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
}

/// A loaded file, as its feed's history checks read it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LoadedFile {
    /// `bitacora_control.id`.
    pub bitacora_id: i64,
    /// Its item.
    pub work_item_id: i64,
    /// The file.
    pub archivo: String,
    /// Records.
    pub total: i32,
    /// Valid records.
    pub valid: i32,
    /// Rejected records.
    pub rejected: i32,
    /// Its business day.
    pub business_day: chrono::NaiveDate,
    /// When its load ended.
    pub fin: chrono::DateTime<chrono::Utc>,
}

impl LoadedFile {
    /// Its error rate, in percent of its records; none for a file without records.
    pub fn error_rate(&self) -> Option<f64> {
        (self.total > 0).then(|| 100.0 * f64::from(self.rejected) / f64::from(self.total))
    }
}

/// The columns of [`LoadedFile`].
macro_rules! loaded_file {
    () => {
        "b.id AS bitacora_id, b.work_item_id, b.archivo, b.registros_totales AS total,
         b.registros_validos AS valid, b.registros_error AS rejected, b.fecha_negocio AS business_day, b.fin"
    };
}

/// File `bitacora_id` if it was loaded (`COMPLETADO`, `COMPLETADO_CON_ERRORES`).
pub async fn loaded_file(
    tx: &mut sqlx::PgConnection,
    bitacora_id: i64,
) -> sqlx::Result<Option<LoadedFile>> {
    sqlx::query_as(concat!(
        "SELECT ",
        loaded_file!(),
        " FROM bitacora_control b WHERE b.id = $1 AND b.estatus IN ",
        loaded_statuses!(),
        " AND b.fin IS NOT NULL"
    ))
    .bind(bitacora_id)
    .fetch_optional(tx)
    .await
}

/// The last `n` files loaded before `file` (by the end of their loads), only those of
/// its weekday with `same_weekday`, newest first. Every loaded file is one of the visits
/// feed until feeds are data (issue 22).
pub async fn loaded_before(
    tx: &mut sqlx::PgConnection,
    file: &LoadedFile,
    same_weekday: bool,
    n: i64,
) -> sqlx::Result<Vec<LoadedFile>> {
    sqlx::query_as(concat!(
        "SELECT ",
        loaded_file!(),
        " FROM bitacora_control b WHERE b.estatus IN ",
        loaded_statuses!(),
        " AND b.id <> $1 AND b.fin <= $2
           AND (NOT $3 OR extract(isodow FROM b.fecha_negocio) = extract(isodow FROM $4::date))
         ORDER BY b.fin DESC, b.id DESC LIMIT $5"
    ))
    .bind(file.bitacora_id)
    .bind(file.fin)
    .bind(same_weekday)
    .bind(file.business_day)
    .bind(n)
    .fetch_all(tx)
    .await
}

/// Files loaded in the last `days` days whose history check has not run (its performer
/// stopped first), oldest first.
pub async fn unchecked_loads(pool: &sqlx::PgPool, days: i32) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar(concat!(
        "SELECT b.id FROM bitacora_control b WHERE b.estatus IN ",
        loaded_statuses!(),
        " AND b.fin > now() - make_interval(days => $1)
           AND NOT EXISTS (SELECT 1 FROM file_checks c WHERE c.bitacora_id = b.id)
         ORDER BY b.fin, b.id"
    ))
    .bind(days)
    .fetch_all(pool)
    .await
}
