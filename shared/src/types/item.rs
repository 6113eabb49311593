//! A work item as the code holds it: where its file lives, what was listed, and the
//! attempt that holds it now (its fence).

use super::state::{AuditStatus, ItemState};
use chrono::{DateTime, NaiveDate, Utc};

/// Where an item's file lives: the origin directory, and for a local one, its host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The directory as a URL without credentials (`sftp://user@host:port/dir`, `file:///dir`).
    pub url: String,
    /// For `file://`: the host that holds the directory (only its performers claim the item).
    pub host: Option<String>,
}

impl Origin {
    /// A directory on host `host`.
    pub fn local(dir: &std::path::Path, host: String) -> Self {
        Self {
            url: format!("file://{}", dir.display()),
            host: Some(host),
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

/// An attempt's fencing: the item id and the claim token, `$1` and `$2` of every
/// statement the attempt writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence {
    /// `work_items.id`.
    pub item: i64,
    /// The attempt's claim token.
    pub token: i64,
}

impl From<&Claimed> for Fence {
    fn from(c: &Claimed) -> Self {
        Self {
            item: c.id,
            token: c.token,
        }
    }
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
