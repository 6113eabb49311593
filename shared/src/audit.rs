//! `bitacora_control`: every write of the audit log lives here.
//!
//! Writes made by an attempt are fenced: they join [`OWNER_LOCK`], so they happen only
//! while the attempt still holds its item, and the item cannot be taken back before
//! their transaction ends. Each returns whether it was written.

use crate::feed::Encoding;
use crate::queue::OWNER_LOCK;
use chrono::NaiveDate;
use deadpool_postgres::GenericClient;
use std::sync::LazyLock;

/// The statuses no attempt committed, as an SQL list: [`AuditStatus::is_final`] is false.
macro_rules! uncommitted {
    () => {
        "('PENDIENTE', 'EN_PROCESO', 'FALLO_SISTEMA')"
    };
}

/// The statuses whose rows are in the tables, as an SQL list: [`AuditStatus::is_loaded`].
macro_rules! loaded {
    () => {
        "('COMPLETADO', 'COMPLETADO_CON_ERRORES')"
    };
}

/// `bitacora_control.estatus` (SPEC §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditStatus {
    /// Enqueued, not yet claimed (or handed back).
    Pendiente,
    /// An attempt is working on it.
    EnProceso,
    /// Loaded, every record valid.
    Completado,
    /// Loaded, some records rejected.
    CompletadoConErrores,
    /// Same content as a file already loaded: nothing loaded.
    Duplicado,
    /// Wrong layout: nothing loaded, waits for an operator.
    FalloLayout,
    /// Retries exhausted or pointless: waits for tier 4 or an operator.
    FalloSistema,
}

impl AuditStatus {
    /// Every status.
    pub const ALL: [AuditStatus; 7] = [
        Self::Pendiente,
        Self::EnProceso,
        Self::Completado,
        Self::CompletadoConErrores,
        Self::Duplicado,
        Self::FalloLayout,
        Self::FalloSistema,
    ];

    /// The value stored in `bitacora_control.estatus`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pendiente => "PENDIENTE",
            Self::EnProceso => "EN_PROCESO",
            Self::Completado => "COMPLETADO",
            Self::CompletadoConErrores => "COMPLETADO_CON_ERRORES",
            Self::Duplicado => "DUPLICADO",
            Self::FalloLayout => "FALLO_LAYOUT",
            Self::FalloSistema => "FALLO_SISTEMA",
        }
    }

    /// Parses a stored value.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// Decided by a committed attempt: what is left is the backup and the delete.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Completado | Self::CompletadoConErrores | Self::Duplicado | Self::FalloLayout
        )
    }

    /// The file's rows are in the tables (content counts as "already loaded").
    pub fn is_loaded(self) -> bool {
        matches!(self, Self::Completado | Self::CompletadoConErrores)
    }
}

impl std::fmt::Display for AuditStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is known of a downloaded file.
#[derive(Debug, Clone)]
pub struct FileFacts {
    /// SHA-256, lower-case hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: i64,
    /// How it was decoded.
    pub encoding: Encoding,
    /// The business date of this load.
    pub business_date: NaiveDate,
}

/// What a load put in the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadCounts {
    /// Valid records.
    pub valid: i32,
    /// Rejected records.
    pub rejected: i32,
    /// Visitors created by this file.
    pub new_visitors: i32,
    /// Visitors updated by this file.
    pub updated_visitors: i32,
}

impl LoadCounts {
    /// `COMPLETADO` or `COMPLETADO_CON_ERRORES`.
    pub fn status(&self) -> AuditStatus {
        if self.rejected == 0 {
            AuditStatus::Completado
        } else {
            AuditStatus::CompletadoConErrores
        }
    }
}

/// Creates the `PENDIENTE` audit row of a new item; returns its id.
pub async fn create(
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
pub async fn create_bench(
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
pub struct Prior {
    /// Its id.
    pub bitacora_id: i64,
    /// Its status before this attempt.
    pub status: AuditStatus,
    /// SHA-256 recorded by an earlier attempt.
    pub sha256: Option<String>,
    /// Size recorded by an earlier attempt (what a committed load read).
    pub size: Option<i64>,
}

/// Marks the audit row of a just-claimed item in progress (in the claim's transaction);
/// a committed attempt's row keeps its status and times.
pub async fn begin_attempt(
    tx: &impl GenericClient,
    work_item_id: i64,
    attempt: i32,
    worker: &str,
) -> Result<Prior, tokio_postgres::Error> {
    let row = tx
        .query_one(
            &tx.prepare_cached(concat!(
                "WITH prior AS (SELECT id, estatus, sha256, tamano_bytes, inicio, estatus IN ",
                uncommitted!(),
                " AS open
                                FROM bitacora_control WHERE work_item_id = $1 FOR UPDATE)
                 UPDATE bitacora_control b
                 SET estatus = CASE WHEN p.open THEN 'EN_PROCESO' ELSE p.estatus END,
                     intentos = $2, worker = $3,
                     -- Each attempt is timed anew; a committed one keeps its times.
                     inicio = CASE WHEN p.open THEN clock_timestamp() ELSE p.inicio END
                 FROM prior p WHERE b.id = p.id
                 RETURNING p.id, p.estatus, p.sha256, p.tamano_bytes",
            ))
            .await?,
            &[&work_item_id, &attempt, &worker],
        )
        .await?;
    let status: String = row.get(1);
    Ok(Prior {
        bitacora_id: row.get(0),
        status: AuditStatus::parse(&status).unwrap_or(AuditStatus::EnProceso),
        sha256: row.get(2),
        size: row.get(3),
    })
}

/// An attempt's fencing: the item id and the claim token, `$1` and `$2` of every statement.
#[derive(Debug, Clone, Copy)]
pub struct Fence {
    /// `work_items.id`.
    pub item: i64,
    /// The attempt's claim token.
    pub token: i64,
}

impl From<&crate::queue::Claimed> for Fence {
    fn from(c: &crate::queue::Claimed) -> Self {
        Self {
            item: c.id,
            token: c.token,
        }
    }
}

/// `fin` and `duracion_ms` at the moment of the write (not the transaction's start).
const TIMED: &str = "fin = clock_timestamp(),
     duracion_ms = greatest(0, (extract(epoch FROM clock_timestamp() - b.inicio) * 1000)::bigint)";

/// A fenced UPDATE of the attempt's audit row: `SET` clauses given, `$1`/`$2` the fence.
fn fenced(set: &str) -> String {
    format!(
        "WITH owner AS ({OWNER_LOCK})
         UPDATE bitacora_control b SET {set} FROM owner WHERE b.work_item_id = owner.id"
    )
}

static RECORD_LOADED: LazyLock<String> = LazyLock::new(|| {
    fenced(&format!(
        "estatus = $3, sha256 = $4, tamano_bytes = $5, encoding = $6, fecha_negocio = $7,
         registros_totales = $8::int + $9::int, registros_validos = $8, registros_error = $9,
         visitantes_nuevos = $10, visitantes_actualizados = $11, mensaje_error = NULL, {TIMED}"
    ))
});

/// Records a committed load (in the load's transaction, as its last write).
pub async fn record_loaded(
    tx: &impl GenericClient,
    fence: Fence,
    facts: &FileFacts,
    counts: &LoadCounts,
) -> Result<bool, tokio_postgres::Error> {
    let n = tx
        .execute(
            &tx.prepare_cached(&RECORD_LOADED).await?,
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
pub async fn loaded_elsewhere(
    client: &impl GenericClient,
    sha256: &str,
    bitacora_id: i64,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &client
                .prepare_cached(concat!(
                    "SELECT id FROM bitacora_control
                     WHERE sha256 = $1 AND estatus IN ",
                    loaded!(),
                    " AND id <> $2
                     LIMIT 1",
                ))
                .await?,
            &[&sha256, &bitacora_id],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// What an earlier try of this attempt committed, if its row is already final (a COMMIT
/// whose acknowledgement was lost): the load is not repeated.
pub async fn committed_outcome(
    client: &impl GenericClient,
    fence: Fence,
) -> Result<Option<crate::load::LoadOutcome>, tokio_postgres::Error> {
    use crate::load::LoadOutcome;
    let row = client
        .query_opt(
            &client
                .prepare_cached(concat!(
                    "SELECT b.estatus, coalesce(b.registros_validos, 0), coalesce(b.registros_error, 0),
                            coalesce(b.visitantes_nuevos, 0), coalesce(b.visitantes_actualizados, 0),
                            (SELECT d.id FROM bitacora_control d
                             WHERE d.sha256 = b.sha256 AND d.estatus IN ", loaded!(), "
                               AND d.id <> b.id LIMIT 1)
                     FROM bitacora_control b JOIN work_items w ON w.id = b.work_item_id
                     -- Only while this attempt holds the item: a stale one committed nothing.
                     WHERE w.id = $1 AND w.claim_token = $2 AND w.state = 'running'",
                ))
                .await?,
            &[&fence.item, &fence.token],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let status: String = row.get(0);
    Ok(match AuditStatus::parse(&status) {
        Some(AuditStatus::Duplicado) => Some(LoadOutcome::Duplicate {
            of: row.get::<_, Option<i64>>(5).unwrap_or_default(),
        }),
        Some(s) if s.is_loaded() => Some(LoadOutcome::Loaded(LoadCounts {
            valid: row.get(1),
            rejected: row.get(2),
            new_visitors: row.get(3),
            updated_visitors: row.get(4),
        })),
        _ => None,
    })
}

/// A final status that loads nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unloaded {
    /// The layout is wrong (never retried automatically).
    Layout,
    /// The content was loaded before: counts are zero, so invariant 1 holds for it too.
    Duplicate,
}

impl From<Unloaded> for AuditStatus {
    fn from(u: Unloaded) -> Self {
        match u {
            Unloaded::Layout => AuditStatus::FalloLayout,
            Unloaded::Duplicate => AuditStatus::Duplicado,
        }
    }
}

static RECORD_UNLOADED: LazyLock<String> = LazyLock::new(|| {
    fenced(&format!(
        "estatus = $3, sha256 = $4, tamano_bytes = $5, encoding = $6, fecha_negocio = $7,
         mensaje_error = $8, {TIMED},
         registros_totales = CASE WHEN $3 = 'DUPLICADO' THEN 0 END,
         registros_validos = CASE WHEN $3 = 'DUPLICADO' THEN 0 END,
         registros_error = CASE WHEN $3 = 'DUPLICADO' THEN 0 END,
         visitantes_nuevos = CASE WHEN $3 = 'DUPLICADO' THEN 0 END,
         visitantes_actualizados = CASE WHEN $3 = 'DUPLICADO' THEN 0 END"
    ))
});

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
            &client.prepare_cached(&RECORD_UNLOADED).await?,
            &[
                &fence.item,
                &fence.token,
                &AuditStatus::from(status).as_str(),
                &facts.sha256,
                &facts.size,
                &facts.encoding.label(),
                &facts.business_date,
                &crate::storable::message(message),
            ],
        )
        .await?;
    Ok(n == 1)
}

static RECORD_SYSTEM_FAILURE: LazyLock<String> = LazyLock::new(|| {
    // A committed load's row is never made a failure by a later step.
    // What is known of a whole staged copy (if any) is kept: `quarantine retry` trusts
    // the quarantined copy only if its SHA-256 is this one.
    fenced(&format!(
        "estatus = 'FALLO_SISTEMA', mensaje_error = $3, sha256 = coalesce($4, b.sha256),
         tamano_bytes = coalesce($5, b.tamano_bytes), encoding = coalesce($6, b.encoding), {TIMED}"
    )) + concat!(" AND b.estatus IN ", uncommitted!())
});

/// Records `FALLO_SISTEMA` (in the transaction that fails the item).
pub async fn record_system_failure(
    tx: &impl GenericClient,
    fence: Fence,
    message: &str,
    copy: Option<&FileFacts>,
) -> Result<bool, tokio_postgres::Error> {
    let message: &str = &crate::storable::message(message);
    let n = tx
        .execute(
            &tx.prepare_cached(&RECORD_SYSTEM_FAILURE).await?,
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

static RECORD_NOTE: LazyLock<String> = LazyLock::new(|| fenced("mensaje_error = $3"));

/// Records a note for operators on the attempt's audit row (e.g. a file set aside).
pub async fn record_note(
    client: &impl GenericClient,
    fence: Fence,
    note: &str,
) -> Result<bool, tokio_postgres::Error> {
    let note: &str = &crate::storable::message(note);
    let n = client
        .execute(
            &client.prepare_cached(&RECORD_NOTE).await?,
            &[&fence.item, &fence.token, &note],
        )
        .await?;
    Ok(n == 1)
}

static RECORD_LOCAL_COPY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH owner AS ({OWNER_LOCK})
         UPDATE bitacora_control b SET ruta_backup = $3
         FROM owner JOIN work_items w ON w.id = owner.id
         WHERE b.work_item_id = owner.id
            OR (b.id = w.retry_of AND w.origin LIKE 'file://%')"
    )
});

/// Records where the attempt put the file's local copy (backup or quarantine). An
/// operator's retry of a local (quarantined) copy took that copy: the retried row follows it.
pub async fn record_local_copy(
    client: &impl GenericClient,
    fence: Fence,
    path: &str,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            &client.prepare_cached(&RECORD_LOCAL_COPY).await?,
            &[&fence.item, &fence.token, &path],
        )
        .await?;
    Ok(n >= 1)
}

/// An item handed back to the queue (in the queue's transaction, after its fenced write):
/// the row shows `PENDIENTE`, with why when given.
pub async fn back_to_pending(
    tx: &impl GenericClient,
    work_item_id: i64,
    why: Option<&str>,
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        &tx.prepare_cached(
            "UPDATE bitacora_control SET estatus = 'PENDIENTE', mensaje_error = coalesce($2, mensaje_error)
             WHERE work_item_id = $1 AND estatus = 'EN_PROCESO'",
        )
        .await?,
        &[&work_item_id, &why.map(crate::storable::message)],
    )
    .await?;
    Ok(())
}

/// Items put back in the queue (tier 4, an operator's take-back): their rows show `PENDIENTE`.
pub async fn back_to_pending_all(
    tx: &mut sqlx::PgConnection,
    work_item_ids: &[i64],
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE bitacora_control SET estatus = 'PENDIENTE'
         WHERE work_item_id = ANY($1) AND estatus IN ('FALLO_SISTEMA', 'EN_PROCESO')",
    )
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

/// An operator discarded a quarantined file, with a reason; `moved_to` is its copy's new place.
pub async fn record_discard(
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

#[cfg(test)]
mod tests {
    use super::AuditStatus;

    /// The SQL status lists are the enum's predicates, written as SQL.
    #[test]
    fn sql_status_lists_match_the_enum() {
        let list = |keep: fn(&AuditStatus) -> bool| {
            let quoted: Vec<String> = AuditStatus::ALL
                .iter()
                .filter(|s| keep(s))
                .map(|s| format!("'{s}'"))
                .collect();
            format!("({})", quoted.join(", "))
        };
        assert_eq!(uncommitted!(), list(|s| !s.is_final()));
        assert_eq!(loaded!(), list(|s| s.is_loaded()));
    }
}
