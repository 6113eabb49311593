//! A file as a listing of the origin shows it, and what a verified delete found.

use chrono::{DateTime, Utc};

/// A regular file in the origin directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// Its name (possibly unsafe: checked into a [`RemoteName`] before any local use).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time (whole seconds); `None` when the origin shows none.
    pub mtime: Option<DateTime<Utc>>,
}

impl RemoteFile {
    /// Its size and mtime as a listing compares them.
    pub fn seen(&self) -> (u64, Option<DateTime<Utc>>) {
        (self.size, self.mtime)
    }
}

/// A modification time as an origin reports it, in whole seconds since the epoch. None,
/// or 0 (what servers that keep no times send), is unknown: never 1970.
pub(crate) fn mtime_of(secs: Option<i64>) -> Option<DateTime<Utc>> {
    secs.filter(|s| *s != 0)
        .and_then(|s| DateTime::from_timestamp(s, 0))
}

/// What [`Source::delete_verified`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deletion {
    /// Deleted.
    Deleted,
    /// Not there any more: nothing to delete.
    Gone,
    /// Not what the caller holds (as found): left alone.
    Changed(RemoteFile),
}
