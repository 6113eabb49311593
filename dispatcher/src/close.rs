//! Closing the day: zip the loose backups, set aside what staging still holds,
//! apply retention. Safe to run again: each step redoes only what is left.

use crate::archive::{self, ArchiveError};
use crate::retention::{self, Removed};
use chrono::NaiveDate;
use shared::config::Config;
use shared::paths::{Dirs, durable_move};
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
    /// Partitions of `estadisticas` / `errores` made ahead.
    pub partitions_created: Vec<String>,
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
    // Next months' partitions exist long before a load needs them.
    closed.partitions_created = shared::partitions::ensure_ahead(pool).await?;
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
        sqlx::query("UPDATE bitacora_control SET ruta_backup = $2 WHERE ruta_backup = $1")
            .bind(path.display().to_string())
            .bind(format!("{}#{entry}", archived.zip.display()))
            .execute(pool)
            .await?;
        std::fs::remove_file(path)?;
    }
    if std::fs::read_dir(loose)?.next().is_none() {
        std::fs::remove_dir(loose)?;
    }
    info!(day = %day, zip = %archived.zip.display(), files = archived.moved.len(), "day archived and verified");
    Ok(archived.moved.len())
}

/// Staged files of items no longer running: copies of `FALLO_SISTEMA` items go to
/// quarantine, anything else left by an interrupted attempt is removed.
async fn sweep_staging(pool: &PgPool, dirs: &Dirs) -> anyhow::Result<(usize, usize)> {
    let (mut quarantined, mut removed) = (0, 0);
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
        let row: Option<(String, String, i64)> = sqlx::query_as(
            "SELECT w.state, b.estatus, b.id FROM work_items w JOIN bitacora_control b ON b.work_item_id = w.id WHERE w.id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await?;
        match row {
            Some((state, _, _)) if state == "running" || state == "pending" => {}
            Some((_, estatus, bitacora_id)) if estatus == "FALLO_SISTEMA" => {
                let file = name.split_once('-').map_or(name.as_str(), |(_, f)| f);
                let to = dirs.quarantine().join(format!("{bitacora_id}-{file}"));
                durable_move(&path, &to)?;
                sqlx::query("UPDATE bitacora_control SET ruta_backup = $2 WHERE id = $1")
                    .bind(bitacora_id)
                    .bind(to.display().to_string())
                    .execute(pool)
                    .await?;
                quarantined += 1;
            }
            _ => {
                std::fs::remove_file(&path)?;
                removed += 1;
            }
        }
    }
    Ok((quarantined, removed))
}
