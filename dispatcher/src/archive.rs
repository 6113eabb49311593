//! The nightly close: each day's loose backups become `backup/backup_YYYYMMDD.zip`.
//!
//! Written to a temporary name unique to the process, read back (every entry's CRC and
//! size checked), renamed over the old zip, and only then may the caller remove the
//! loose copies. A second close of the same day copies the old entries into the new zip
//! first. Only finished files are zipped: a file still being moved in has a temporary
//! name (`shared::local::paths::is_temporary`) until it is complete.

use chrono::NaiveDate;
use shared::local::paths::{is_temporary, sync_dir, temporary_name};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::time::Duration;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

/// Test-only fault hook (`fault-hooks` builds only): when set, the temporary zip is
/// damaged before it is verified.
pub const CORRUPT_HOOK: &str = "VISITAS_FAULT_CORRUPT_ARCHIVE";

/// Why a day could not be archived; the loose copies and the old zip are untouched.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// File system trouble.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: io::Error,
    },
    /// Reading or writing the zip failed, or the read-back found a bad CRC.
    #[error("{context}: {source}")]
    Zip {
        /// What was being done.
        context: String,
        /// The cause.
        source: zip::result::ZipError,
    },
    /// The read-back disagrees with what was written.
    #[error("verifying {zip}: {reason}")]
    Verify {
        /// The temporary zip.
        zip: String,
        /// What disagreed.
        reason: String,
    },
}

/// A day consolidated into its zip.
#[derive(Debug)]
pub struct Archived {
    /// The zip.
    pub zip: PathBuf,
    /// Loose file → entry name, for every loose file now safely in the zip.
    pub moved: Vec<(PathBuf, String)>,
}

/// The loose backup directories (`backup/YYYYMMDD/`), oldest first.
pub fn loose_days(backup: &Path) -> io::Result<Vec<(NaiveDate, PathBuf)>> {
    let mut days = Vec::new();
    for entry in std::fs::read_dir(backup)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let (true, Ok(day)) = (
            entry.file_type()?.is_dir(),
            NaiveDate::parse_from_str(&name, "%Y%m%d"),
        ) {
            days.push((day, entry.path()));
        }
    }
    days.sort();
    Ok(days)
}

/// The zip of a day.
pub fn zip_path(backup: &Path, day: NaiveDate) -> PathBuf {
    backup.join(format!("backup_{}.zip", day.format("%Y%m%d")))
}

/// Writes, verifies and installs the zip of `day` holding its old entries and the loose
/// files; writes nothing when no loose file is finished.
pub fn archive_day(
    backup: &Path,
    day: NaiveDate,
    loose_dir: &Path,
) -> Result<Archived, ArchiveError> {
    let zip = zip_path(backup, day);
    let finished =
        finished_files(loose_dir).map_err(io_err(format!("listing {}", loose_dir.display())))?;
    if finished.is_empty() {
        // Only moves in progress (or nothing): no zip to write yet.
        return Ok(Archived {
            zip,
            moved: Vec::new(),
        });
    }
    let tmp = backup.join(temporary_name(&zip));
    let result = write_and_verify(&zip, &tmp, loose_dir);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp).and_then(|()| sync_dir(backup));
        return result;
    }
    std::fs::rename(&tmp, &zip).map_err(io_err(format!(
        "renaming {} to {}",
        tmp.display(),
        zip.display()
    )))?;
    sync_dir(backup).map_err(io_err(format!("syncing {}", backup.display())))?;
    result
}

/// Removes temporary zips (`.backup_*.tmp`) left by a close that died; returns how many.
/// Only the holder of the dispatcher's lock writes zips, so under it they are all stale.
pub fn remove_stale_zips(backup: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(backup)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if is_temporary(&name) && name.starts_with(".backup_") && name.ends_with(".tmp") {
            std::fs::remove_file(backup.join(&name))?;
            removed += 1;
        }
    }
    if removed > 0 {
        sync_dir(backup)?;
    }
    Ok(removed)
}

/// The finished files of a loose day directory, sorted. Temporary names are files still
/// being moved in; one untouched for [`STALE_MOVE`] belongs to a mover that died (a
/// stalled one finds it gone, its rename fails, and its item is retried) and is removed.
fn finished_files(loose_dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut removed = false;
    for entry in std::fs::read_dir(loose_dir)? {
        let entry = entry?;
        let (path, meta) = (entry.path(), entry.metadata()?);
        if !meta.is_file() {
            continue;
        }
        if !is_temporary(&entry.file_name().to_string_lossy()) {
            files.push(path);
        } else if meta.modified()?.elapsed().unwrap_or_default() > STALE_MOVE {
            std::fs::remove_file(&path)?;
            removed = true;
        }
    }
    if removed {
        sync_dir(loose_dir)?;
    }
    files.sort();
    Ok(files)
}

/// How long a temporary file may stay untouched before it counts as abandoned.
const STALE_MOVE: Duration = Duration::from_secs(3600);

fn write_and_verify(zip: &Path, tmp: &Path, loose_dir: &Path) -> Result<Archived, ArchiveError> {
    let loose =
        finished_files(loose_dir).map_err(io_err(format!("listing {}", loose_dir.display())))?;
    let out = File::create(tmp).map_err(io_err(format!("creating {}", tmp.display())))?;
    let mut writer = ZipWriter::new(BufWriter::new(out));
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    if zip.exists() {
        let file = File::open(zip).map_err(io_err(format!("opening {}", zip.display())))?;
        let mut old =
            ZipArchive::new(file).map_err(zip_err(format!("reading {}", zip.display())))?;
        for i in 0..old.len() {
            let entry = old
                .by_index_raw(i)
                .map_err(zip_err(format!("reading {}", zip.display())))?;
            let name = entry.name().map_err(zip_err("entry name"))?.to_string();
            expected.insert(name, entry.size());
            writer
                .raw_copy_file(entry)
                .map_err(zip_err(format!("copying into {}", tmp.display())))?;
        }
    }
    let mut moved = Vec::new();
    for path in loose {
        let name = path
            .file_name()
            .expect("a file")
            .to_string_lossy()
            .into_owned();
        let size = std::fs::metadata(&path)
            .map_err(io_err(format!("reading {}", path.display())))?
            .len();
        match expected.get(&name) {
            // Already archived by a close that stopped before removing the loose copy.
            Some(&archived) if archived == size => {}
            Some(_) => {
                return Err(ArchiveError::Verify {
                    zip: zip.display().to_string(),
                    reason: format!("{name} is already archived with another size"),
                });
            }
            None => {
                let options = SimpleFileOptions::default()
                    .compression_method(CompressionMethod::Deflated)
                    .large_file(size >= u64::from(u32::MAX));
                writer
                    .start_file(name.as_str(), options)
                    .map_err(zip_err(format!("adding {name}")))?;
                let mut input =
                    File::open(&path).map_err(io_err(format!("reading {}", path.display())))?;
                io::copy(&mut input, &mut writer)
                    .map_err(io_err(format!("compressing {}", path.display())))?;
                expected.insert(name.clone(), size);
            }
        }
        moved.push((path, name));
    }
    let buffered = writer
        .finish()
        .map_err(zip_err(format!("finishing {}", tmp.display())))?;
    let file = buffered
        .into_inner()
        .map_err(|e| io_err(format!("writing {}", tmp.display()))(e.into_error()))?;
    file.sync_all()
        .map_err(io_err(format!("syncing {}", tmp.display())))?;
    drop(file);
    if shared::local::fault::armed(CORRUPT_HOOK) {
        corrupt(tmp);
    }
    verify(tmp, &expected)?;
    Ok(Archived {
        zip: zip.to_path_buf(),
        moved,
    })
}

/// Reads every entry back to its end (the zip reader checks the CRC there) and compares sizes.
fn verify(tmp: &Path, expected: &BTreeMap<String, u64>) -> Result<(), ArchiveError> {
    let fail = |reason: String| ArchiveError::Verify {
        zip: tmp.display().to_string(),
        reason,
    };
    let file = File::open(tmp).map_err(io_err(format!("opening {}", tmp.display())))?;
    let mut archive = ZipArchive::new(file).map_err(|e| fail(e.to_string()))?;
    if archive.len() != expected.len() {
        return Err(fail(format!(
            "{} entries, expected {}",
            archive.len(),
            expected.len()
        )));
    }
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| fail(e.to_string()))?;
        let name = entry.name().map_err(|e| fail(e.to_string()))?.to_string();
        let read =
            io::copy(&mut entry, &mut io::sink()).map_err(|e| fail(format!("{name}: {e}")))?;
        if expected.get(&name) != Some(&read) {
            return Err(fail(format!(
                "{name}: {read} bytes read back, expected {:?}",
                expected.get(&name)
            )));
        }
    }
    Ok(())
}

/// Flips bytes in the middle of the file (test-only hook).
fn corrupt(path: &Path) {
    let mut bytes = std::fs::read(path).expect("the temporary zip exists");
    let middle = bytes.len() / 3;
    for b in &mut bytes[middle..middle + 16] {
        *b ^= 0xFF;
    }
    std::fs::write(path, bytes).expect("rewrite the temporary zip");
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> ArchiveError {
    let context = context.into();
    move |source| ArchiveError::Io { context, source }
}

fn zip_err(context: impl Into<String>) -> impl FnOnce(zip::result::ZipError) -> ArchiveError {
    let context = context.into();
    move |source| ArchiveError::Zip { context, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("visitas-archive-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn entries(zip: &Path) -> BTreeMap<String, Vec<u8>> {
        let mut archive = ZipArchive::new(File::open(zip).unwrap()).unwrap();
        (0..archive.len())
            .map(|i| {
                let mut e = archive.by_index(i).unwrap();
                let mut bytes = Vec::new();
                io::Read::read_to_end(&mut e, &mut bytes).unwrap();
                (e.name().unwrap().to_string(), bytes)
            })
            .collect()
    }

    #[test]
    fn a_second_close_adds_to_the_zip_without_losing_entries() {
        let backup = scratch("second");
        let day = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
        let loose = backup.join("20261124");
        std::fs::create_dir_all(&loose).unwrap();
        std::fs::write(loose.join("1-report_1.txt"), b"one").unwrap();
        let first = archive_day(&backup, day, &loose).unwrap();
        assert_eq!(first.moved.len(), 1);
        std::fs::remove_file(loose.join("1-report_1.txt")).unwrap();
        std::fs::write(loose.join("2-report_2.txt"), b"two").unwrap();
        archive_day(&backup, day, &loose).unwrap();
        let found = entries(&zip_path(&backup, day));
        assert_eq!(
            found.get("1-report_1.txt").map(Vec::as_slice),
            Some(b"one".as_slice())
        );
        assert_eq!(
            found.get("2-report_2.txt").map(Vec::as_slice),
            Some(b"two".as_slice())
        );
        assert_eq!(loose_days(&backup).unwrap(), vec![(day, loose)]);
        std::fs::remove_dir_all(&backup).unwrap();
    }

    #[test]
    fn files_still_being_moved_in_are_not_zipped() {
        let backup = scratch("moving");
        let day = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
        let loose = backup.join("20261124");
        std::fs::create_dir_all(&loose).unwrap();
        let moving = loose.join(temporary_name(&loose.join("2-report_2.txt")));
        std::fs::write(&moving, b"half").unwrap();
        let nothing = archive_day(&backup, day, &loose).unwrap();
        assert!(nothing.moved.is_empty() && !zip_path(&backup, day).exists());
        std::fs::write(loose.join("1-report_1.txt"), b"one").unwrap();
        let archived = archive_day(&backup, day, &loose).unwrap();
        assert_eq!(
            archived.moved,
            vec![(loose.join("1-report_1.txt"), "1-report_1.txt".into())]
        );
        let found = entries(&zip_path(&backup, day));
        assert_eq!(found.keys().collect::<Vec<_>>(), ["1-report_1.txt"]);
        assert!(moving.exists(), "a live move is left alone");
        let names: Vec<String> = std::fs::read_dir(&backup)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !is_temporary(n)), "{names:?}");
        std::fs::remove_dir_all(&backup).unwrap();
    }
}
