//! Retention: backup zips and log directories older than their limit are removed
//! (the directories they leave are fsynced).

use crate::archive::loose_days;
use chrono::NaiveDate;
use shared::local::paths::{Dirs, sync_dir};
use std::io;

/// What retention removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// `backup_YYYYMMDD.zip` files.
    pub backups: usize,
    /// `logs/YYYYMMDD/` directories.
    pub log_days: usize,
}

/// Removes what is strictly older than its limit, counted in days before `today`.
pub fn apply(
    dirs: &Dirs,
    today: NaiveDate,
    backup_days: u32,
    log_days: u32,
) -> io::Result<Removed> {
    let mut removed = Removed::default();
    let too_old = |day: NaiveDate, limit: u32| (today - day).num_days() > i64::from(limit);
    if dirs.backup().exists() {
        for entry in std::fs::read_dir(dirs.backup())? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let day = name
                .strip_prefix("backup_")
                .and_then(|s| s.strip_suffix(".zip"))
                .and_then(|s| NaiveDate::parse_from_str(s, "%Y%m%d").ok());
            if day.is_some_and(|d| too_old(d, backup_days)) {
                std::fs::remove_file(entry.path())?;
                removed.backups += 1;
            }
        }
        if removed.backups > 0 {
            sync_dir(&dirs.backup())?;
        }
    }
    if dirs.logs().exists() {
        for (day, path) in loose_days(&dirs.logs())? {
            if too_old(day, log_days) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_is_older_than_the_limit_goes() {
        let root = std::env::temp_dir().join(format!("visitas-retention-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dirs = Dirs::new(&root);
        dirs.create().unwrap();
        let today = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
        let ago = |n: i64| today - chrono::Duration::days(n);
        for n in [89, 90, 91, 400] {
            std::fs::write(
                dirs.backup()
                    .join(format!("backup_{}.zip", ago(n).format("%Y%m%d"))),
                b"z",
            )
            .unwrap();
        }
        std::fs::write(dirs.backup().join("notes.txt"), b"keep").unwrap();
        for n in [29, 30, 31] {
            std::fs::create_dir_all(dirs.logs().join(ago(n).format("%Y%m%d").to_string())).unwrap();
        }
        let removed = apply(&dirs, today, 90, 30).unwrap();
        assert_eq!(
            removed,
            Removed {
                backups: 2,
                log_days: 1
            }
        );
        let mut left: Vec<String> = std::fs::read_dir(dirs.backup())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let name = |n| format!("backup_{}.zip", ago(n).format("%Y%m%d"));
        assert_eq!(left, vec![name(90), name(89), "notes.txt".to_string()]);
        assert!(
            dirs.logs()
                .join(ago(30).format("%Y%m%d").to_string())
                .exists()
        );
        assert!(
            !dirs
                .logs()
                .join(ago(31).format("%Y%m%d").to_string())
                .exists()
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
