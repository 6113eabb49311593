//! Reading the file: the download into the attempt's own staging file, and the first
//! pass over it (its facts, the header check).

use crate::context::Context;
use crate::error::ItemError;
use crate::step::retried;
use chrono::{DateTime, Utc};
use shared::feed::{LayoutError, VISITS};
use shared::local::paths::set_mtime;
use shared::local::staged;
use shared::source::{RemoteName, Source, SourceError};
use shared::types::{Claimed, Encoding, FileFacts};
use std::path::Path;
use std::time::Instant;
use tracing::{info, warn};

/// Pass 1 over the staged file: SHA-256, size and encoding, without holding it in memory.
pub(super) async fn file_facts(item: &Claimed, staged: &Path) -> Result<FileFacts, ItemError> {
    let (path, started) = (staged.to_path_buf(), Instant::now());
    let print = tokio::task::spawn_blocking(move || staged::fingerprint(&path))
        .await
        .expect("hashing does not panic")
        .map_err(ItemError::disk("reading the staged file"))?;
    info!(
        ms = started.elapsed().as_millis() as u64,
        encoding = print.encoding.label(),
        "hashed"
    );
    Ok(FileFacts {
        sha256: print.sha256,
        size: print.size as i64,
        encoding: print.encoding,
        business_date: item.business_date,
    })
}

/// Starts writing the staged file to disk while it loads, so the fsync of its durable
/// move to backup, after the commit, has little left to write. Only a head start, and
/// it neither waits nor checks: `sync_file_range(SYNC_FILE_RANGE_WRITE)` consumes no
/// write error, so that move's own fsync still sees any (an `fsync` here would report a
/// failed writeback to this handle only, and the backup's would then pass).
pub(super) fn write_back_early(staged: &Path) {
    use std::os::fd::AsRawFd;
    let staged = staged.to_path_buf();
    // Off the async threads: starting write-out can wait for the device's queue.
    tokio::task::spawn_blocking(move || {
        if let Ok(file) = std::fs::File::open(staged) {
            // SAFETY: a valid descriptor, owned by `file` for the duration of the call.
            unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
        }
    });
}

/// The header check (docs/data-contract.md §3), reading only the first line(s).
pub(super) async fn check_layout(
    staged: &Path,
    encoding: Encoding,
) -> Result<Result<(), LayoutError>, ItemError> {
    let path = staged.to_path_buf();
    tokio::task::spawn_blocking(move || staged::check_layout(&path, encoding, &VISITS))
        .await
        .expect("reading a line does not panic")
        .map_err(ItemError::disk("reading the staged file"))
}

/// Downloads `name` into this attempt's staging file; returns the bytes written.
pub(super) async fn download(
    ctx: &Context,
    source: &Source,
    name: &RemoteName,
    staged: &Path,
    mtime: Option<DateTime<Utc>>,
) -> Result<u64, ItemError> {
    let started = Instant::now();
    let downloaded = retried(ctx, "download", SourceError::is_transient, || async {
        // Each try starts from nothing: a partial download is not a copy of anything.
        let _ = tokio::fs::remove_file(staged).await;
        source.download(name, staged).await
    })
    .await;
    let bytes = match downloaded {
        Ok(bytes) => bytes,
        Err(e) => {
            let _ = tokio::fs::remove_file(staged).await;
            return Err(e.into());
        }
    };
    // The copy carries the file's mtime at the origin (its backup's zip entry is dated by
    // it); an origin that shows none leaves the download time, about the load time.
    if let Some(at) = mtime
        && let Err(e) = set_mtime(staged, at.into())
    {
        warn!(error = %e, "could not date the staged copy by the file's mtime");
    }
    let secs = started.elapsed().as_secs_f64();
    info!(
        bytes,
        ms = (secs * 1000.0) as u64,
        mb_per_s = bytes as f64 / 1e6 / secs.max(1e-9),
        "downloaded"
    );
    Ok(bytes)
}
