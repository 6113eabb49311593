//! Files set aside for an operator, as the console shows them (the overview's count, the
//! quarantine page). What exists today is the quarantine: `FALLO_LAYOUT` and
//! `FALLO_SISTEMA` files neither retried nor discarded, and loaded files whose backup or
//! delete is still being retried (`audit::quarantined`, as `dispatcher quarantine list`).
//! Files set aside at the origin get their rows here too, from the same list, once the
//! store reads them.

use shared::store::audit;
use shared::types::AuditStatus;
use sqlx::PgPool;

/// One file waiting for an operator.
#[derive(Debug, Clone)]
pub struct SetAside {
    /// Its `bitacora_control.id`.
    pub id: i64,
    /// The file.
    pub file: String,
    /// Its status.
    pub status: AuditStatus,
    /// Since when (`YYYY-MM-DD HH24:MI`), empty if not known.
    pub since: String,
    /// Where its copy is (on this host), empty if none.
    pub copy: String,
    /// Why it waits, or what is left to do.
    pub message: String,
    /// Whether retry and discard apply (a failure), or it is only shown (work left to do).
    pub actionable: bool,
}

/// Every file waiting for an operator, by id.
pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<SetAside>> {
    Ok(audit::quarantined(pool)
        .await?
        .into_iter()
        .map(|q| SetAside {
            id: q.id,
            actionable: q.estatus.is_failure(),
            file: q.archivo,
            status: q.estatus,
            since: q.failed_at,
            copy: q.local_copy,
            message: q.message,
        })
        .collect())
}
