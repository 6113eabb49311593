//! Retention: a backup zip goes only once everything in it was written more than
//! `dispatcher.backup_retention_days` ago, and a `logs/YYYYMMDD/` directory only once it
//! was last written more than `dispatcher.log_retention_days` ago — never counted from
//! the business day a zip holds (a backfill of any date keeps its zip for the full
//! retention) nor from a date an operator typed.
//!
//! When a copy was written is asked of two clocks, and both must say "old": the audit
//! row of each entry (`bitacora_control.fin`, the load's commit, just before its backup
//! copy was written; the database's clock) and the zip file's own mtime (its last
//! rewrite, never earlier than any entry's). An entry no audit row names (a database
//! restored from an older backup, a file put there by hand) may be the only copy of what
//! it holds: its zip is kept, and each close says so. A log directory is old when its
//! name's day and its newest file both are. Each removal runs under the backup
//! directory's lock (the caller's) and right after the lease was proven.

use crate::archive::{self, entry_id, loose_days, zip_day};
use chrono::{DateTime, NaiveDate, Utc};
use shared::config::Config;
use shared::local::paths::{Dirs, sync_dir};
use shared::store::locks::Lease;
use sqlx::PgPool;
use std::path::Path;
use std::time::{Duration, SystemTime};
use tracing::{info, warn};

/// What retention removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// `backup_YYYYMMDD.zip` files.
    pub backups: usize,
    /// `logs/YYYYMMDD/` directories.
    pub log_days: usize,
    /// Zips kept past their time because they hold something no audit row names.
    pub kept_unknown: usize,
}

/// The two clocks retention reads.
#[derive(Debug, Clone, Copy)]
struct Clocks {
    /// The database's: what `fin` was written by.
    db: DateTime<Utc>,
    /// This host's: what file mtimes were written by.
    host: SystemTime,
}

impl Clocks {
    fn db_older(&self, at: DateTime<Utc>, days: u32) -> bool {
        (self.db - at).num_seconds() > i64::from(days) * 86_400
    }

    fn host_older(&self, at: SystemTime, days: u32) -> bool {
        self.host
            .duration_since(at)
            .is_ok_and(|age| age > Duration::from_secs(u64::from(days) * 86_400))
    }
}

/// What retention decides for one zip.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// Everything in it was written long enough ago.
    Remove,
    /// Something in it is younger than the retention.
    Young,
    /// An entry (named) no audit row knows: kept.
    Unknown(String),
}

/// The verdict for a zip whose entries are `entries` (name, and its audit row's `fin`
/// where one names it) and whose file was last written at `written`.
fn zip_verdict(
    entries: &[(String, Option<DateTime<Utc>>)],
    written: Option<SystemTime>,
    clocks: &Clocks,
    days: u32,
) -> Verdict {
    for (name, fin) in entries {
        match fin {
            None => return Verdict::Unknown(name.clone()),
            Some(fin) if !clocks.db_older(*fin, days) => return Verdict::Young,
            Some(_) => {}
        }
    }
    match written {
        Some(at) if clocks.host_older(at, days) => Verdict::Remove,
        _ => Verdict::Young,
    }
}

/// Whether a log directory named for `day`, last written at `newest`, is old.
fn log_day_old(
    day: NaiveDate,
    newest: Option<SystemTime>,
    today: NaiveDate,
    clocks: &Clocks,
    days: u32,
) -> bool {
    (today - day).num_days() > i64::from(days)
        && newest.is_some_and(|at| clocks.host_older(at, days))
}

/// Applies retention under `lease` (the caller holds the backup directory's lock).
pub async fn apply(
    pool: &PgPool,
    dirs: &Dirs,
    lease: &Lease,
    config: &Config,
) -> anyhow::Result<Removed> {
    let clocks = Clocks {
        db: shared::store::connect::database_now(pool).await?,
        host: SystemTime::now(),
    };
    let mut removed = Removed::default();
    let days = config.dispatcher.backup_retention_days;
    if dirs.backup().exists() {
        for entry in std::fs::read_dir(dirs.backup())? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if zip_day(&name).is_none() || !entry.file_type()?.is_file() {
                continue;
            }
            let zip = entry.path();
            let written = entry.metadata()?.modified().ok();
            match verdict_of(pool, &zip, written, &clocks, days).await? {
                Verdict::Young => {}
                Verdict::Unknown(why) => {
                    warn!(zip = %zip.display(), %why, "backup kept past its retention: it may be the only copy of \
                          what it holds; reload it or remove it by hand once that is safe");
                    removed.kept_unknown += 1;
                }
                Verdict::Remove => {
                    lease.prove().await?;
                    std::fs::remove_file(&zip)?;
                    info!(zip = %zip.display(), retention_days = days, "retention removed a backup: everything in it was written longer ago");
                    removed.backups += 1;
                }
            }
        }
        if removed.backups > 0 {
            sync_dir(&dirs.backup())?;
        }
    }
    let days = config.dispatcher.log_retention_days;
    let today = clocks
        .db
        .with_timezone(&config.business.time_zone)
        .date_naive();
    if dirs.logs().exists() {
        for (day, path) in loose_days(&dirs.logs())? {
            if log_day_old(day, newest_write(&path)?, today, &clocks, days) {
                lease.prove().await?;
                std::fs::remove_dir_all(path)?;
                removed.log_days += 1;
            }
        }
        if removed.log_days > 0 {
            sync_dir(&dirs.logs())?;
        }
    }
    Ok(removed)
}

/// The verdict for the zip at `zip`: its entries, each dated by its audit row.
async fn verdict_of(
    pool: &PgPool,
    zip: &Path,
    written: Option<SystemTime>,
    clocks: &Clocks,
    days: u32,
) -> anyhow::Result<Verdict> {
    let names = match archive::entry_names(zip) {
        Ok(names) => names,
        Err(e) => return Ok(Verdict::Unknown(format!("its entries cannot be read: {e}"))),
    };
    let ids: Vec<i64> = names.iter().filter_map(|n| entry_id(n)).collect();
    let finished = shared::store::audit::finished_at(pool, &ids).await?;
    let entries: Vec<(String, Option<DateTime<Utc>>)> = names
        .into_iter()
        .map(|name| {
            let fin = entry_id(&name).and_then(|id| finished.get(&id).copied().flatten());
            (name, fin)
        })
        .collect();
    Ok(zip_verdict(&entries, written, clocks, days))
}

/// The latest mtime of a directory and the files in it.
fn newest_write(dir: &Path) -> std::io::Result<Option<SystemTime>> {
    let mut newest = std::fs::metadata(dir)?.modified().ok();
    for entry in std::fs::read_dir(dir)? {
        let at = entry?.metadata()?.modified().ok();
        newest = newest.max(at);
    }
    Ok(newest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    fn clocks() -> Clocks {
        Clocks {
            db: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            host: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        }
    }

    fn ago(days: i64) -> DateTime<Utc> {
        clocks().db - chrono::Duration::seconds(days * DAY)
    }

    fn host_ago(days: u64) -> SystemTime {
        clocks().host - Duration::from_secs(days * DAY as u64)
    }

    fn entry(name: &str, fin: Option<DateTime<Utc>>) -> (String, Option<DateTime<Utc>>) {
        (name.to_string(), fin)
    }

    #[test]
    fn a_zip_goes_only_when_every_entry_and_the_file_are_older_than_the_retention() {
        let c = clocks();
        let old = [
            entry("1-a.txt", Some(ago(91))),
            entry("2-b.txt", Some(ago(100))),
        ];
        assert_eq!(
            zip_verdict(&old, Some(host_ago(91)), &c, 90),
            Verdict::Remove
        );
        // One entry loaded 89 days ago (a file of that day that came late, a backfill, a
        // reload): the zip waits for it.
        let late = [
            entry("1-a.txt", Some(ago(400))),
            entry("3-c.txt", Some(ago(89))),
        ];
        assert_eq!(
            zip_verdict(&late, Some(host_ago(400)), &c, 90),
            Verdict::Young
        );
        // Exactly 90 days is not older than 90.
        assert_eq!(
            zip_verdict(
                &[entry("1-a.txt", Some(ago(90)))],
                Some(host_ago(91)),
                &c,
                90
            ),
            Verdict::Young
        );
        // The file rewritten recently (a later close of the same day): kept.
        assert_eq!(
            zip_verdict(&old, Some(host_ago(10)), &c, 90),
            Verdict::Young
        );
        assert_eq!(zip_verdict(&old, None, &c, 90), Verdict::Young);
    }

    #[test]
    fn an_entry_no_audit_row_names_keeps_its_zip() {
        let c = clocks();
        let unknown = [entry("1-a.txt", Some(ago(400))), entry("77-x.txt", None)];
        assert_eq!(
            zip_verdict(&unknown, Some(host_ago(400)), &c, 90),
            Verdict::Unknown("77-x.txt".into())
        );
    }

    #[test]
    fn a_log_day_goes_when_its_name_and_its_files_are_both_old() {
        let c = clocks();
        let today = c.db.date_naive();
        let day = |n: i64| today - chrono::Duration::days(n);
        assert!(log_day_old(day(31), Some(host_ago(31)), today, &c, 30));
        assert!(!log_day_old(day(30), Some(host_ago(31)), today, &c, 30));
        // Written to recently whatever its name says (a clock set back, a file copied in).
        assert!(!log_day_old(day(400), Some(host_ago(2)), today, &c, 30));
        assert!(!log_day_old(day(400), None, today, &c, 30));
    }
}
