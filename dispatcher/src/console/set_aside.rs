//! Files set aside for an operator, as the console shows them (the overview's count and
//! first lines, the quarantine page): the quarantine — `FALLO_LAYOUT` and `FALLO_SISTEMA`
//! files neither retried nor discarded, loaded files whose backup or delete is still
//! being retried, loaded files whose backup is missing (`audit::quarantined_page`) — and
//! the files left at the origin under a name of their own (`set_aside::waiting_page`):
//! the lines of `dispatcher quarantine list`, merged by id. The pages only render
//! [`SetAside`].

use shared::store::{audit, set_aside};
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
    /// Files left at the origin under a name of their own, for an operator.
    pub at_origin: i64,
}

impl Counts {
    /// Every file counted.
    pub fn total(&self) -> i64 {
        self.waiting.iter().map(|(_, n)| n).sum::<i64>() + self.unfinished + self.at_origin
    }
}

/// At most `limit` files after id `after`, by id (both kinds, merged).
pub async fn page(pool: &PgPool, after: i64, limit: i64) -> sqlx::Result<Vec<SetAside>> {
    let quarantined = audit::quarantined_page(pool, after, limit)
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
        });
    let at_origin = set_aside::waiting_page(pool, after, limit)
        .await?
        .into_iter()
        .map(|a| SetAside {
            id: a.bitacora_id,
            // Resolved only once the item that left it is final.
            actionable: !a.item_state.is_open(),
            message: a.explain(),
            file: a.archivo,
            status: a.estatus,
            since: a.set_aside_at,
            copy: a.ruta_backup.unwrap_or_default(),
        });
    let mut lines: Vec<SetAside> = quarantined.chain(at_origin).collect();
    lines.sort_by_key(|l| l.id);
    lines.truncate(limit.max(0) as usize);
    Ok(lines)
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
    counts.at_origin = set_aside::waiting_count(pool).await?;
    Ok(counts)
}
