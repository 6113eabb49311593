//! Local directories under the ETL root, and moves that survive a power cut.

use chrono::NaiveDate;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// `staging/`, `backup/`, `quarantine/`, `logs/` under one root.
#[derive(Debug, Clone)]
pub struct Dirs {
    root: PathBuf,
}

impl Dirs {
    /// The directories under `root` (not created yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Creates every directory that must exist before work starts.
    pub fn create(&self) -> io::Result<()> {
        for dir in [
            self.staging(),
            self.backup(),
            self.quarantine(),
            self.logs(),
        ] {
            std::fs::create_dir_all(dir)?;
        }
        Ok(())
    }

    /// Downloads in progress.
    pub fn staging(&self) -> PathBuf {
        self.root.join("staging")
    }

    /// Loaded files, loose per day then zipped.
    pub fn backup(&self) -> PathBuf {
        self.root.join("backup")
    }

    /// The loose backups of one business day.
    pub fn backup_day(&self, day: NaiveDate) -> PathBuf {
        self.backup().join(day.format("%Y%m%d").to_string())
    }

    /// Files that wait for an operator.
    pub fn quarantine(&self) -> PathBuf {
        self.root.join("quarantine")
    }

    /// Logs, one directory per day.
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
}

/// Moves `from` to `to` durably: the file and both directories are fsynced, so after
/// return the file exists at `to` even if the machine loses power.
pub fn durable_move(from: &Path, to: &Path) -> io::Result<()> {
    let parent = to.parent().expect("a file path has a parent");
    std::fs::create_dir_all(parent)?;
    File::open(from)?.sync_all()?;
    match std::fs::rename(from, to) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(18) => {
            // EXDEV: another filesystem; copy, sync, then remove.
            std::fs::copy(from, to)?;
            File::open(to)?.sync_all()?;
            std::fs::remove_file(from)?;
        }
        Err(e) => return Err(e),
    }
    File::open(parent)?.sync_all()?;
    if let Some(source_dir) = from.parent() {
        File::open(source_dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durable_move_creates_the_target_directory() {
        let dir = std::env::temp_dir().join(format!("visitas-paths-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let from = dir.join("a.txt");
        std::fs::write(&from, b"x").unwrap();
        let to = dir.join("sub/b.txt");
        durable_move(&from, &to).unwrap();
        assert!(!from.exists());
        assert_eq!(std::fs::read(&to).unwrap(), b"x");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
