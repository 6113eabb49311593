//! Closing the day: zip the loose backups, set aside what staging still holds,
//! apply retention. Safe to run again: each step redoes only what is left.

use crate::archive::{self, ArchiveError};
use crate::retention::{self, Removed};
use chrono::NaiveDate;
use shared::audit;
use shared::config::Config;
use shared::paths::Dirs;
use shared::queue;
use sqlx::PgPool;
use tracing::{error, info, warn};

/// What a close did.
#[derive(Debug, Default)]
pub struct Closed {
    /// Zips written (one per day with loose copies).
    pub zips: usize,
    /// Loose copies now in a zip and removed.
    pub archived_files: usize,
    /// Days whose zip could not be written or verified (their loose copies are kept).
    pub failed_days: Vec<String>,
    /// Staged copies of `FALLO_SISTEMA` items moved to quarantine.
    pub quarantined: usize,
    /// Stale staged downloads removed.
    pub staging_removed: usize,
    /// Retention.
    pub removed: Removed,
}

impl Closed {
    /// One paragraph for people.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "close: {} zip(s) written, {} file(s) archived, {} quarantined, {} stale staged file(s) removed, \
             retention removed {} zip(s) and {} log day(s)",
            self.zips,
            self.archived_files,
            self.quarantined,
            self.staging_removed,
            self.removed.backups,
            self.removed.log_days
        );
        for failed in &self.failed_days {
            s.push_str(&format!("\narchive FAILED for {failed}"));
        }
        s
    }
}

/// Runs every step of the close; a failing day does not stop the others.
pub async fn close_day(config: &Config, pool: &PgPool, today: NaiveDate) -> anyhow::Result<Closed> {
    let dirs = Dirs::new(&config.paths.root);
    dirs.create()?;
    let mut closed = Closed::default();
    for (day, loose) in archive::loose_days(&dirs.backup())? {
        match archive_one(pool, &dirs, day, &loose).await {
            Ok(n) => {
                closed.zips += 1;
                closed.archived_files += n;
            }
            Err(e) => {
                error!(day = %day, error = %e, "the day's zip could not be written or verified; loose copies kept");
                closed.failed_days.push(format!("{day}: {e}"));
            }
        }
    }
    let (quarantined, removed) = sweep_staging(pool, &dirs).await?;
    closed.quarantined = quarantined;
    closed.staging_removed = removed;
    closed.removed = retention::apply(
        &dirs,
        today,
        config.dispatcher.backup_retention_days,
        config.dispatcher.log_retention_days,
    )?;
    if closed.removed.backups + closed.removed.log_days > 0 {
        info!(
            backups = closed.removed.backups,
            log_days = closed.removed.log_days,
            "retention removed old files"
        );
    }
    Ok(closed)
}

async fn archive_one(
    pool: &PgPool,
    dirs: &Dirs,
    day: NaiveDate,
    loose: &std::path::Path,
) -> anyhow::Result<usize> {
    let archived = tokio::task::spawn_blocking({
        let (backup, loose) = (dirs.backup(), loose.to_path_buf());
        move || archive::archive_day(&backup, day, &loose)
    })
    .await?
    .map_err(|e: ArchiveError| anyhow::anyhow!(e))?;
    for (path, entry) in &archived.moved {
        // The audit row follows the file into the zip before the loose copy goes.
        audit::copy_moved(
            pool,
            &path.display().to_string(),
            &format!("{}#{entry}", archived.zip.display()),
        )
        .await?;
        std::fs::remove_file(path)?;
    }
    if std::fs::read_dir(loose)?.next().is_none() {
        std::fs::remove_dir(loose)?;
    }
    info!(day = %day, zip = %archived.zip.display(), files = archived.moved.len(), "day archived and verified");
    Ok(archived.moved.len())
}

/// Staged files of items no longer running are removed: a staged file is one attempt's
/// own download, whole or not; a whole one that had to wait (a system failure) was moved
/// to quarantine by its attempt, and the origin keeps the file anyway.
async fn sweep_staging(pool: &PgPool, dirs: &Dirs) -> anyhow::Result<(usize, usize)> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dirs.staging())? {
        let path = entry?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let Some(id) = name
            .split_once('-')
            .and_then(|(id, _)| id.parse::<i64>().ok())
        else {
            warn!(file = %path.display(), "unknown file in staging left alone");
            continue;
        };
        let open = queue::states_of(pool, &[id])
            .await?
            .first()
            .is_some_and(|(_, state)| state.is_open());
        if !open {
            std::fs::remove_file(&path)?;
            removed += 1;
        }
    }
    Ok((0, removed))
}
