//! Files set aside for an operator, as the console shows them (the overview's count and
//! first lines, the quarantine page). What exists today is the quarantine: `FALLO_LAYOUT`
//! and `FALLO_SISTEMA` files neither retried nor discarded, and loaded files whose backup
//! or delete is still being retried (`audit::quarantined_page`, the lines of
//! `dispatcher quarantine list`). Files set aside at the origin join these lines here,
//! from the store, once it keeps them: the pages only render [`SetAside`].

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
    /// Whether retry and discard apply (it waits), or it is only shown (work left to do).
    pub actionable: bool,
}

/// How many files wait, by status.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// (status, files waiting for an operator).
    pub waiting: Vec<(AuditStatus, i64)>,
    /// Loaded files whose backup or delete is still being retried.
    pub unfinished: i64,
}

impl Counts {
    /// Every file counted.
    pub fn total(&self) -> i64 {
        self.waiting.iter().map(|(_, n)| n).sum::<i64>() + self.unfinished
    }
}

/// At most `limit` files after id `after`, by id.
pub async fn page(pool: &PgPool, after: i64, limit: i64) -> sqlx::Result<Vec<SetAside>> {
    Ok(audit::quarantined_page(pool, after, limit)
        .await?
        .into_iter()
        .map(|q| SetAside {
            id: q.id,
            actionable: q.waiting,
            file: q.archivo,
            status: q.estatus,
            since: q.failed_at,
            copy: q.local_copy,
            message: q.message,
        })
        .collect())
}

/// The files counted.
pub async fn counts(pool: &PgPool) -> sqlx::Result<Counts> {
    let mut counts = Counts::default();
    for c in audit::quarantined_counts(pool).await? {
        if c.waiting {
            counts.waiting.push((c.estatus, c.files));
        } else {
            counts.unfinished += c.files;
        }
    }
    Ok(counts)
}
