//! A file as a listing of the origin shows it.

use chrono::{DateTime, Utc};

/// A regular file in the origin directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// Its name (possibly unsafe: checked into a [`RemoteName`] before any local use).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time (whole seconds).
    pub mtime: DateTime<Utc>,
}
