//! One attempt's own things: its staging file, what it has proven so far, and the
//! names its copies take.

use crate::context::Context;
use shared::source::RemoteName;
use shared::types::{Claimed, FileFacts};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

/// One attempt's own things: its staging file, and what it has proven so far.
pub(super) struct Attempt {
    /// `staging/<item>-<token>-<name>`: created exclusively, used by this attempt alone.
    pub(super) staged: PathBuf,
    /// The staged copy is whole (its size checked against the origin): what pass 1 found.
    pub(super) verified: Mutex<Option<FileFacts>>,
    /// The item's load committed (in this attempt or an earlier one).
    pub(super) committed: AtomicBool,
    /// Where this attempt's tier 3 put the staged copy, once moved (a failure recorded
    /// again after an outage names the same copy).
    pub(super) quarantined: Mutex<Option<PathBuf>>,
}

impl Attempt {
    pub(super) fn new(ctx: &Context, item: &Claimed) -> Self {
        Self {
            staged: ctx.dirs.staging().join(format!(
                "{}-{}-{}",
                item.id,
                item.token,
                file_part(item)
            )),
            verified: Mutex::new(None),
            committed: AtomicBool::new(item.prior_status.is_final()),
            quarantined: Mutex::new(None),
        }
    }
}

pub(super) fn file_part(item: &Claimed) -> String {
    RemoteName::parse(&item.file_name).map_or_else(|_| "unsafe-name".into(), |n| n.to_string())
}

/// The local copy's name in backup or quarantine: `<bitacora_id>-<name>`.
pub(super) fn local_name(item: &Claimed) -> String {
    format!("{}-{}", item.bitacora_id, file_part(item))
}
