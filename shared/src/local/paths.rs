//! Local directories under the ETL root, and moves that survive a power cut.

use chrono::NaiveDate;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

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

    /// Creates every directory that must exist before work starts (durably).
    pub fn create(&self) -> io::Result<()> {
        for dir in [
            self.staging(),
            self.backup(),
            self.quarantine(),
            self.logs(),
        ] {
            create_dir_durable(&dir)?;
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
/// return the file exists at `to` even if the machine loses power. The name `to` only
/// ever holds the whole file: across filesystems the copy is written under a
/// [temporary name](is_temporary) in the target directory and renamed when complete.
pub fn durable_move(from: &Path, to: &Path) -> io::Result<()> {
    let parent = to.parent().expect("a file path has a parent");
    create_dir_durable(parent)?;
    File::open(from)?.sync_all()?;
    match std::fs::rename(from, to) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
            let tmp = parent.join(temporary_name(to));
            let copied = copy_dated(from, &tmp)
                .and_then(|()| File::open(&tmp)?.sync_all())
                .and_then(|()| std::fs::rename(&tmp, to));
            if let Err(e) = copied {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
            // The copy is durable under its final name before the original goes.
            sync_dir(parent)?;
            match std::fs::remove_file(from) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Err(e) => return Err(e),
    }
    sync_dir(parent)?;
    if let Some(source_dir) = from.parent() {
        sync_dir(source_dir)?;
    }
    Ok(())
}

/// Sets the mtime of the file at `path` to `at`.
pub fn set_mtime(path: &Path, at: std::time::SystemTime) -> io::Result<()> {
    File::options().write(true).open(path)?.set_modified(at)
}

/// Copies `from` to `to` with its mtime: a copy is dated as its file (zip entries are).
pub fn copy_dated(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::copy(from, to)?;
    set_mtime(to, std::fs::metadata(from)?.modified()?)
}

/// Whether a directory entry is a file still being written (a cross-filesystem move or
/// a zip in progress): those names start with a dot and are never a finished file.
pub fn is_temporary(name: &str) -> bool {
    name.starts_with('.')
}

/// A temporary name for `to`, unique to this process and call (see [`is_temporary`]).
pub fn temporary_name(to: &Path) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        ".{}.{}-{}.tmp",
        to.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates `dir` and its missing parents, each fsynced into its parent, so a new
/// directory (a new backup day) survives a power cut with what is put in it.
pub fn create_dir_durable(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        create_dir_durable(parent)?;
    }
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        // Created here or by a concurrent caller: either way make the entry durable.
        _ => {}
    }
    match parent {
        Some(parent) => sync_dir(parent),
        None => sync_dir(Path::new(".")),
    }
}

/// Fsyncs a directory, making the names created, renamed or removed in it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
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

    #[test]
    fn a_move_across_filesystems_never_shows_a_partial_file_and_leaves_no_temporary() {
        // /dev/shm is a tmpfs on Linux; the scratch directory is on the disk.
        let shm = Path::new("/dev/shm");
        if !shm.is_dir() {
            return;
        }
        let from_dir = shm.join(format!("visitas-paths-from-{}", std::process::id()));
        let to_dir = std::env::temp_dir().join(format!("visitas-paths-to-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&to_dir);
        std::fs::create_dir_all(&from_dir).unwrap();
        let from = from_dir.join("7-report_1.txt");
        std::fs::write(&from, vec![b'x'; 300_000]).unwrap();
        let to = to_dir.join("20261124/7-report_1.txt");
        durable_move(&from, &to).unwrap();
        assert!(!from.exists());
        assert_eq!(std::fs::read(&to).unwrap().len(), 300_000);
        let names: Vec<String> = std::fs::read_dir(to.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["7-report_1.txt"]);
        assert!(is_temporary(&temporary_name(&to)));
        std::fs::remove_dir_all(&from_dir).unwrap();
        std::fs::remove_dir_all(&to_dir).unwrap();
    }
}
