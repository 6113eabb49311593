//! Closing the day: zip the loose backups, set aside what staging still holds,
//! apply retention. Safe to run again: each step redoes only what is left.
//!
//! Runs under the dispatcher's lock (the one `dispatcher run` holds), so two closes
//! never overlap; performers may run meanwhile (an undrained night), so a loose copy is
//! removed only once its audit row points into the verified zip, and files still being
//! moved (temporary names) are left alone. Every directory changed is fsynced.
//!
//! A close can outlive its lease and not know it yet (frozen, cut off from the
//! database): every destructive step — installing a zip, removing loose copies, retention
//! — runs under the backup directory's lock ([`archive::DirLock`]) and right after the
//! lease was proven by the database itself ([`Lease::prove`]). A close that cannot prove
//! it stops, changing nothing more.

use crate::archive::{self, ArchiveError, Dating};
use crate::retention::{self, Removed};
use chrono::{NaiveDate, Utc};
use shared::config::Config;
use shared::local::paths::{Dirs, sync_dir};
use shared::observe::alert;
use shared::store::alerts::Which;
use shared::store::locks::{LEASE, Lease, ProveError};
use shared::store::{audit, queue};
use shared::types::AlertKind;
use sqlx::PgPool;
use std::path::Path;
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
        if self.removed.kept_unknown > 0 {
            s.push_str(&format!(
                ", kept {} zip(s) past their retention: they hold copies no audit row names (see the log)",
                self.removed.kept_unknown
            ));
        }
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
    // Only a lock holder writes zips: any temporary zip left is from a close that died.
    lease.prove().await?;
    archive::remove_stale_zips(&dirs.backup())?;
    shared::local::fault::pause("close").await;
    for (day, loose) in archive::loose_days(&dirs.backup())? {
        lease.ensure_held()?;
        match archive_one(config, pool, lease, &dirs, day, &loose).await {
            Ok(None) => {}
            Ok(Some(n)) => {
                closed.zips += 1;
                closed.archived_files += n;
            }
            // Not this close's to do any more: it stops here.
            Err(e) if e.is::<ProveError>() => return Err(e),
            Err(e) => {
                error!(day = %day, error = %e, "the day's zip could not be written or verified; loose copies kept");
                closed.failed_days.push(format!("{day}: {e}"));
                if matches!(e.downcast_ref(), Some(ArchiveError::Busy { .. })) {
                    // Another process holds the backup directory: the other days would
                    // wait for it as long; they wait for the next close instead.
                    break;
                }
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
    info!(day = %today, "day closed; retention counts from when each copy was written");
    match archive::DirLock::take(&dirs.backup(), LEASE).await {
        Ok(_locked) => closed.removed = retention::apply(pool, &dirs, lease, config).await?,
        Err(e) => warn!(error = %e, "retention left for the next close"),
    }
    if closed.removed.backups + closed.removed.log_days > 0 {
        info!(
            backups = closed.removed.backups,
            log_days = closed.removed.log_days,
            "retention removed old files"
        );
    }
    Ok(closed)
}

/// Zips one day: written and verified without the backup directory's lock, installed
/// and its loose copies retired under it, right after the lease was proven.
async fn archive_one(
    config: &Config,
    pool: &PgPool,
    lease: &Lease,
    dirs: &Dirs,
    day: NaiveDate,
    loose: &Path,
) -> anyhow::Result<Option<usize>> {
    let dating = dating(config, pool, loose).await?;
    let prepared = tokio::task::spawn_blocking({
        let (backup, loose) = (dirs.backup(), loose.to_path_buf());
        move || archive::prepare(&backup, day, &loose, &dating)
    })
    .await?
    .map_err(|e: ArchiveError| anyhow::anyhow!(e))?;
    let Some(prepared) = prepared else {
        remove_if_empty(dirs, loose)?;
        return Ok(None);
    };
    shared::local::fault::pause("zipped").await;
    let locked = match archive::DirLock::take(&dirs.backup(), LEASE).await {
        Ok(locked) => locked,
        Err(e) => {
            prepared.discard();
            return Err(e.into());
        }
    };
    if let Err(e) = lease.prove().await {
        prepared.discard();
        return Err(e.into());
    }
    if let Err(e) = prepared.install() {
        prepared.discard();
        return Err(e.into());
    }
    let archived = prepared.archived;
    let mut removed = 0;
    for (path, entry) in &archived.moved {
        // The audit row follows the file into the zip before the loose copy goes; a copy
        // no row names yet (its performer is between the move and the record) stays.
        let zip_entry = format!("{}#{entry}", archived.zip.display());
        if audit::record_archived(pool, &path.display().to_string(), &zip_entry).await? == 0 {
            warn!(file = %path.display(), "loose copy kept: no audit row names it yet; a later close retires it");
            continue;
        }
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => removed += 1,
        }
    }
    if removed > 0 {
        sync_dir(loose)?;
    }
    remove_if_empty(dirs, loose)?;
    drop(locked);
    info!(day = %day, zip = %archived.zip.display(), files = removed, "day archived and verified");
    Ok(Some(removed))
}

/// How the day's new entries are dated: their load times, from their audit rows.
async fn dating(config: &Config, pool: &PgPool, loose: &Path) -> anyhow::Result<Dating> {
    let names = archive::loose_names(loose)?;
    let ids: Vec<i64> = names.iter().filter_map(|n| archive::entry_id(n)).collect();
    let finished = audit::finished_at(pool, &ids).await?;
    let loaded_at = names
        .into_iter()
        .filter_map(|name| {
            let at = archive::entry_id(&name).and_then(|id| finished.get(&id).copied().flatten());
            at.map(|at| (name, at))
        })
        .collect();
    Ok(Dating {
        tz: config.business.time_zone,
        loaded_at,
        now: Utc::now(),
    })
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
        // A loaded item finished without its backup: its staged copy may be all there is.
        if !open && !audit::lacks_backup(pool, id).await? {
            std::fs::remove_file(&path)?;
            removed += 1;
        }
    }
    if removed > 0 {
        sync_dir(&dirs.staging())?;
    }
    Ok(removed)
}
