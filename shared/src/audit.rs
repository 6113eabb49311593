//! `bitacora_control`: the terminal states that are not a load, and where a file ended up.
//! Each write updates the audit row and the queue item in one transaction.

use crate::feed::Encoding;
use crate::queue::{Claimed, Final, finish};
use chrono::NaiveDate;
use deadpool_postgres::{Client, GenericClient};

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

/// A final status that loads nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unloaded {
    /// The layout is wrong (never retried automatically).
    Layout,
    /// The content was loaded before: counts are zero, so invariant 1 holds for it too.
    Duplicate,
}

/// Records a file that loads nothing, with what is known of it. The queue item stays
/// running until the file is set aside and gone from the origin.
pub async fn record_unloaded(
    client: &impl GenericClient,
    item: &Claimed,
    facts: &FileFacts,
    status: Unloaded,
    message: &str,
) -> Result<(), tokio_postgres::Error> {
    let status = match status {
        Unloaded::Layout => "FALLO_LAYOUT",
        Unloaded::Duplicate => "DUPLICADO",
    };
    client
        .execute(
            "UPDATE bitacora_control
             SET estatus = $2, sha256 = $3, tamano_bytes = $4, encoding = $5, fecha_negocio = $6,
                 mensaje_error = $7, fin = now(), duracion_ms = (extract(epoch FROM now() - inicio) * 1000)::bigint,
                 registros_totales = CASE WHEN $2 = 'DUPLICADO' THEN 0 END,
                 registros_validos = CASE WHEN $2 = 'DUPLICADO' THEN 0 END,
                 registros_error = CASE WHEN $2 = 'DUPLICADO' THEN 0 END,
                 visitantes_nuevos = CASE WHEN $2 = 'DUPLICADO' THEN 0 END,
                 visitantes_actualizados = CASE WHEN $2 = 'DUPLICADO' THEN 0 END
             WHERE id = $1",
            &[
                &item.bitacora_id,
                &status,
                &facts.sha256,
                &facts.size,
                &facts.encoding.label(),
                &facts.business_date,
                &crate::storable::message(message),
            ],
        )
        .await?;
    Ok(())
}

/// Records `FALLO_SISTEMA` and fails the queue item: retries are exhausted or pointless.
pub async fn record_system_failure(
    client: &mut Client,
    item: &Claimed,
    message: &str,
) -> Result<(), tokio_postgres::Error> {
    let message: &str = &crate::storable::message(message);
    let tx = client.transaction().await?;
    tx.execute(
        "UPDATE bitacora_control
         SET estatus = 'FALLO_SISTEMA', mensaje_error = $2, fin = now(),
             duracion_ms = (extract(epoch FROM now() - inicio) * 1000)::bigint
         WHERE id = $1 AND estatus IN ('PENDIENTE', 'EN_PROCESO', 'FALLO_SISTEMA')",
        &[&item.bitacora_id, &message],
    )
    .await?;
    finish(&tx, item.id, Final::Failed, Some(message)).await?;
    tx.commit().await
}

/// Records where the local copy of a file now lives (backup or quarantine). When an
/// operator's retry loaded a quarantined copy, the retried row follows the file too.
pub async fn record_local_copy(
    client: &impl GenericClient,
    bitacora_id: i64,
    path: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "UPDATE bitacora_control SET ruta_backup = $2
             WHERE id = $1 OR id = (SELECT w.retry_of FROM work_items w JOIN bitacora_control b ON b.work_item_id = w.id
                                    WHERE b.id = $1 AND w.local_path IS NOT NULL)",
            &[&bitacora_id, &path],
        )
        .await?;
    Ok(())
}
