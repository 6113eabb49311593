//! Closing the day: zip the loose backups, set aside what staging still holds,
//! apply retention. Safe to run again: each step redoes only what is left.
//!
//! Runs under the dispatcher's lock (the one `dispatcher run` holds), so two closes
//! never overlap; performers may run meanwhile (an undrained night), so a loose copy is
//! removed only once its audit row points into the verified zip, and files still being
//! moved (temporary names) are left alone. Every directory changed is fsynced.

use crate::archive::{self, ArchiveError};
use crate::retention::{self, Removed};
use chrono::NaiveDate;
use shared::config::Config;
use shared::local::paths::{Dirs, sync_dir};
use shared::observe::alert;
use shared::store::alerts::Which;
use shared::store::locks::Lease;
use shared::store::queue;
use shared::types::AlertKind;
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
    /// Stale staged downloads removed.
    pub staging_removed: usize,
    /// Retention.
    pub removed: Removed,
    /// Partitions of `estadisticas` / `errores` made ahead.
    pub partitions_created: Vec<String>,
}

impl Closed {
    /// One paragraph for people.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "close: {} zip(s) written, {} file(s) archived, {} stale staged file(s) removed, \
             retention removed {} zip(s) and {} log day(s)",
            self.zips,
            self.archived_files,
            self.staging_removed,
            self.removed.backups,
            self.removed.log_days
        );
        if !self.partitions_created.is_empty() {
            s.push_str(&format!(
                ", partitions created: {}",
                self.partitions_created.join(", ")
            ));
        }
        for failed in &self.failed_days {
            s.push_str(&format!("\narchive FAILED for {failed}"));
        }
        s
    }
}

/// `dispatcher close`: takes the dispatcher's lock and closes; `None` (said on stdout)
/// when a run or another close holds the lock.
pub async fn close_locked(
    config: &Config,
    pool: &PgPool,
    today: NaiveDate,
) -> anyhow::Result<Option<Closed>> {
    let Some(lease) = crate::lock::take(config, pool, "close").await? else {
        return Ok(None);
    };
    let closed = close_day(config, pool, today, &lease).await;
    lease.release().await?;
    let closed = closed?;
    println!("{}", closed.describe());
    Ok(Some(closed))
}

/// Runs every step of the close under `lease`; a failing day does not stop the others.
pub async fn close_day(
    config: &Config,
    pool: &PgPool,
    today: NaiveDate,
    lease: &Lease,
) -> anyhow::Result<Closed> {
    let dirs = Dirs::new(&config.paths.root);
    dirs.create()?;
    let mut closed = Closed::default();
    shared::local::fault::pause("close").await;
    // Only a lock holder writes zips: any temporary zip left is from a close that died.
    archive::remove_stale_zips(&dirs.backup())?;
    for (day, loose) in archive::loose_days(&dirs.backup())? {
        lease.ensure_held()?;
        match archive_one(pool, &dirs, day, &loose).await {
            Ok(None) => {}
            Ok(Some(n)) => {
                closed.zips += 1;
                closed.archived_files += n;
            }
            Err(e) => {
                error!(day = %day, error = %e, "the day's zip could not be written or verified; loose copies kept");
                closed.failed_days.push(format!("{day}: {e}"));
            }
        }
    }
    lease.ensure_held()?;
    // Next months' partitions exist long before a load needs them.
    closed.partitions_created = shared::store::partitions::ensure_ahead(pool).await?;
    let removed = sweep_staging(pool, &dirs).await?;
    closed.staging_removed = removed;
    if closed.failed_days.is_empty() {
        let which = Which::Service(AlertKind::ArchivoZipFallido);
        alert::resolve(
            pool,
            config,
            which,
            "every day's zip was written and verified",
        )
        .await;
    }
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
) -> anyhow::Result<Option<usize>> {
    let archived = tokio::task::spawn_blocking({
        let (backup, loose) = (dirs.backup(), loose.to_path_buf());
        move || archive::archive_day(&backup, day, &loose)
    })
    .await?
    .map_err(|e: ArchiveError| anyhow::anyhow!(e))?;
    if archived.moved.is_empty() {
        remove_if_empty(dirs, loose)?;
        return Ok(None);
    }
    let mut removed = 0;
    for (path, entry) in &archived.moved {
        // The audit row follows the file into the zip before the loose copy goes; a copy
        // no row names yet (its performer is between the move and the record) stays.
        let zip_entry = format!("{}#{entry}", archived.zip.display());
        if shared::store::audit::record_archived(pool, &path.display().to_string(), &zip_entry)
            .await?
            == 0
        {
            warn!(file = %path.display(), "loose copy kept: no audit row names it yet; a later close retires it");
            continue;
        }
        std::fs::remove_file(path)?;
        removed += 1;
    }
    if removed > 0 {
        sync_dir(loose)?;
    }
    remove_if_empty(dirs, loose)?;
    info!(day = %day, zip = %archived.zip.display(), files = removed, "day archived and verified");
    Ok(Some(removed))
}

/// Removes a day directory left empty (durably).
fn remove_if_empty(dirs: &Dirs, loose: &std::path::Path) -> std::io::Result<()> {
    if std::fs::read_dir(loose)?.next().is_none() {
        std::fs::remove_dir(loose)?;
        sync_dir(&dirs.backup())?;
    }
    Ok(())
}

/// Staged files of items no longer running are removed: a staged file is one attempt's
/// own download, whole or not; a whole one that had to wait (a system failure) was moved
/// to quarantine by its attempt, and the origin keeps the file anyway.
async fn sweep_staging(pool: &PgPool, dirs: &Dirs) -> anyhow::Result<usize> {
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
            .is_some_and(|(_, item)| item.state.is_open());
        if !open {
            std::fs::remove_file(&path)?;
            removed += 1;
        }
    }
    if removed > 0 {
        sync_dir(&dirs.staging())?;
    }
    Ok(removed)
}
