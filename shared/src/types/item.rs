//! A work item as the code holds it: where its file lives, what was listed, and the
//! attempt that holds it now (its fence).

use super::origin::Origin;
use super::state::{AuditStatus, ItemState};
use chrono::{DateTime, NaiveDate, Utc};

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
    /// Modification time at listing time, when the origin shows one.
    pub mtime: Option<DateTime<Utc>>,
    /// Its done marker's name at the origin (`source.done_marker`), removed with it.
    pub done_marker: Option<String>,
    /// Content an earlier item loaded from this file's beginning: only the rest is loaded.
    pub loaded_prefix: Option<LoadedPrefix>,
}

/// The beginning of a file that an earlier item loaded (a file set aside at the origin
/// because it was appended to after its load, then loaded by an operator as new
/// content): the lines it holds are never loaded again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedPrefix {
    /// Its length in bytes (it ends at a line end).
    pub bytes: i64,
    /// Its SHA-256: the file must still begin with exactly this.
    pub sha256: String,
    /// The `bitacora_control.id` that loaded it.
    pub loaded_by: i64,
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
    /// Modification time at listing, when the origin shows one.
    pub mtime: Option<DateTime<Utc>>,
    /// Its done marker's name at the origin, if the listing required one.
    pub done_marker: Option<String>,
    /// An earlier attempt read the file under its listed name (the origin refused the
    /// rename to the in-flight name).
    pub read_in_place: bool,
    /// Content loaded before from this file's beginning (only the rest is loaded).
    pub loaded_prefix: Option<LoadedPrefix>,
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
    /// Where an earlier attempt recorded the file's local copy (backup or quarantine).
    pub prior_backup: Option<String>,
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
