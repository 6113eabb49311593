//! The nightly close: each day's loose backups become `backup/backup_YYYYMMDD.zip`.
//!
//! Written to a temporary name unique to the process and read back (every entry's CRC
//! and size checked) by [`prepare`]; installed by [`Prepared::install`], which never
//! replaces a zip holding an entry the new one lacks (a newer close's). The caller holds
//! the backup directory's lock ([`DirLock`]) and proves its lease around the install,
//! the removal of the loose copies and retention, so a stale close changes nothing. A
//! second close of the same day copies the old entries into the new zip first. Only
//! finished files are zipped: a file still being moved in has a temporary name
//! (`shared::local::paths::is_temporary`) until it is complete. Each entry is dated by
//! its file's mtime ([`Dating`]).

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use shared::local::paths::{is_temporary, sync_dir, temporary_name};
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, TryLockError};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};
use zip::write::FullFileOptions;
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
    /// The zip in place holds an entry the new one lacks: another close installed it
    /// since this one read it. Nothing is replaced.
    #[error(
        "{zip} now holds {entry}, which this close's zip lacks (another close installed it meanwhile): not replaced"
    )]
    Newer {
        /// The day's zip.
        zip: String,
        /// The entry the new zip lacks (or holds otherwise).
        entry: String,
    },
    /// Another process holds the backup directory's lock.
    #[error(
        "{lock} is held by another process (a close still running, or stalled) for over {} s: \
         nothing installed or removed",
        waited.as_secs()
    )]
    Busy {
        /// The lock file.
        lock: String,
        /// How long this close waited.
        waited: Duration,
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

/// A zip entry as its central directory records it: size and CRC-32.
type EntryFacts = (u64, u32);

/// A day's zip written and verified under its temporary name, not installed yet.
#[derive(Debug)]
pub struct Prepared {
    /// The zip and the loose files it takes.
    pub archived: Archived,
    tmp: PathBuf,
    entries: BTreeMap<String, EntryFacts>,
}

/// How the entries of a zip are dated: by their file's mtime, written in the business
/// time zone (the zip's own date fields have none; operators read them there) and as
/// UTC in an extended timestamp field. An mtime the zip format cannot hold (before
/// 1980, after 2106) or cannot be read takes the entry's load time instead.
#[derive(Debug, Clone)]
pub struct Dating {
    /// The business time zone.
    pub tz: Tz,
    /// Load time (the audit row's `fin`) by entry name, where known.
    pub loaded_at: HashMap<String, DateTime<Utc>>,
    /// The close's clock, for an entry whose load time is unknown too.
    pub now: DateTime<Utc>,
}

impl Dating {
    /// The options of entry `name`, whose file's mtime is `mtime`.
    fn options(
        &self,
        name: &str,
        mtime: Option<SystemTime>,
        size: u64,
    ) -> zip::result::ZipResult<FullFileOptions<'static, 'static>> {
        let at = mtime
            .map(DateTime::<Utc>::from)
            .filter(|at| self.fits(at))
            .or_else(|| self.loaded_at.get(name).copied())
            .unwrap_or(self.now);
        let local = at.with_timezone(&self.tz).naive_local();
        let options = FullFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .large_file(size >= u64::from(u32::MAX));
        let Some(dos) = dos_time(&local) else {
            return Ok(options);
        };
        options.last_modified_time(dos).with_extended_timestamp(
            u32::try_from(at.timestamp()).ok(),
            None,
            None,
        )
    }

    /// Whether both of the zip's date fields can hold `at`.
    fn fits(&self, at: &DateTime<Utc>) -> bool {
        u32::try_from(at.timestamp()).is_ok()
            && dos_time(&at.with_timezone(&self.tz).naive_local()).is_some()
    }
}

/// The zip format's local date and time (1980 to 2107, two-second steps).
fn dos_time(local: &chrono::NaiveDateTime) -> Option<zip::DateTime> {
    use chrono::{Datelike, Timelike};
    zip::DateTime::from_date_and_time(
        u16::try_from(local.year()).ok()?,
        local.month() as u8,
        local.day() as u8,
        local.hour() as u8,
        local.minute() as u8,
        local.second() as u8,
    )
    .ok()
}

/// The backup directory's lock (`backup/close.lock`, an `flock`): a zip is installed,
/// its loose copies removed and old zips retired by one process at a time, whatever the
/// dispatcher's lease says (a close stalled past its lease may still be running).
/// Released when dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// The lock file's name in `backup/` (neither a zip's nor a day's: never a backup).
const LOCK_FILE: &str = "close.lock";

impl DirLock {
    /// Takes the lock, waiting up to `patience` for another holder.
    pub async fn take(backup: &Path, patience: Duration) -> Result<DirLock, ArchiveError> {
        let path = backup.join(LOCK_FILE);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(format!("opening {}", path.display())))?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(DirLock { _file: file }),
                Err(TryLockError::WouldBlock) if started.elapsed() < patience => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(ArchiveError::Busy {
                        lock: path.display().to_string(),
                        waited: started.elapsed(),
                    });
                }
                Err(TryLockError::Error(e)) => {
                    return Err(io_err(format!("locking {}", path.display()))(e));
                }
            }
        }
    }
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

/// The day of a `backup_YYYYMMDD.zip` name.
pub fn zip_day(name: &str) -> Option<NaiveDate> {
    name.strip_prefix("backup_")
        .and_then(|s| s.strip_suffix(".zip"))
        .and_then(|s| NaiveDate::parse_from_str(s, "%Y%m%d").ok())
}

/// The `bitacora_control.id` a backup copy is named after (`<id>-<file name>`).
pub fn entry_id(name: &str) -> Option<i64> {
    name.split_once('-').and_then(|(id, _)| id.parse().ok())
}

/// The names of the finished loose files of a day directory (what [`prepare`] takes).
pub fn loose_names(loose_dir: &Path) -> io::Result<Vec<String>> {
    Ok(finished_files(loose_dir)?
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect())
}

/// The zip at `zip`, open for reading; `None` when there is none.
fn open_existing(zip: &Path) -> Result<Option<ZipArchive<File>>, ArchiveError> {
    match File::open(zip) {
        Ok(file) => ZipArchive::new(file)
            .map(Some)
            .map_err(zip_err(format!("reading {}", zip.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(format!("opening {}", zip.display()))(e)),
    }
}

/// Entry `i` of `archive` (the zip at `zip`), undecompressed, and its name.
fn raw_entry<'a>(
    archive: &'a mut ZipArchive<File>,
    i: usize,
    zip: &Path,
) -> Result<(zip::read::ZipFile<'a, File>, String), ArchiveError> {
    let entry = archive
        .by_index_raw(i)
        .map_err(zip_err(format!("reading {}", zip.display())))?;
    let name = entry.name().map_err(zip_err("entry name"))?.to_string();
    Ok((entry, name))
}

/// The entry names of a zip.
pub fn entry_names(zip: &Path) -> Result<Vec<String>, ArchiveError> {
    let archive = open_existing(zip)?.ok_or_else(|| {
        io_err(format!("opening {}", zip.display()))(io::ErrorKind::NotFound.into())
    })?;
    archive
        .file_names()
        .map(|n| n.map(std::borrow::Cow::into_owned))
        .collect::<Result<_, _>>()
        .map_err(zip_err(format!("reading {}", zip.display())))
}

/// Writes and verifies the zip of `day` holding its old entries and the loose files,
/// under a temporary name; `None` when no loose file is finished.
pub fn prepare(
    backup: &Path,
    day: NaiveDate,
    loose_dir: &Path,
    dating: &Dating,
) -> Result<Option<Prepared>, ArchiveError> {
    let zip = zip_path(backup, day);
    let finished =
        finished_files(loose_dir).map_err(io_err(format!("listing {}", loose_dir.display())))?;
    if finished.is_empty() {
        // Only moves in progress (or nothing): no zip to write yet.
        return Ok(None);
    }
    let tmp = backup.join(temporary_name(&zip));
    match write_and_verify(&zip, &tmp, loose_dir, dating) {
        Ok((archived, entries)) => Ok(Some(Prepared {
            archived,
            tmp,
            entries,
        })),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp).and_then(|()| sync_dir(backup));
            Err(e)
        }
    }
}

impl Prepared {
    /// Puts the verified zip in place of the day's zip, durably, unless the zip now in
    /// place holds an entry (by name, size and CRC) the new one lacks: the caller holds
    /// the [`DirLock`], and this is the last look before the rename.
    pub fn install(&self) -> Result<(), ArchiveError> {
        let zip = &self.archived.zip;
        if let Some(entry) = self.lacks_an_entry_of(zip)? {
            return Err(ArchiveError::Newer {
                zip: zip.display().to_string(),
                entry,
            });
        }
        std::fs::rename(&self.tmp, zip).map_err(io_err(format!(
            "renaming {} to {}",
            self.tmp.display(),
            zip.display()
        )))?;
        let backup = zip.parent().expect("a zip lives in backup/");
        sync_dir(backup).map_err(io_err(format!("syncing {}", backup.display())))
    }

    /// An entry of the zip at `zip` that the new one lacks or holds otherwise.
    fn lacks_an_entry_of(&self, zip: &Path) -> Result<Option<String>, ArchiveError> {
        let Some(mut current) = open_existing(zip)? else {
            return Ok(None);
        };
        for i in 0..current.len() {
            let (entry, name) = raw_entry(&mut current, i, zip)?;
            if self.entries.get(&name) != Some(&(entry.size(), entry.crc32())) {
                return Ok(Some(name));
            }
        }
        Ok(None)
    }

    /// Removes the temporary zip (not installed).
    pub fn discard(self) {
        if std::fs::remove_file(&self.tmp).is_ok()
            && let Some(backup) = self.tmp.parent()
        {
            let _ = sync_dir(backup);
        }
    }
}

/// Removes temporary zips (`.backup_*.tmp`) left by a close that died; returns how many.
/// Only the holder of the dispatcher's lock writes zips, so under it they are all stale
/// (a stale close still writing one finds it gone, or is refused at its install).
pub fn remove_stale_zips(backup: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(backup)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if is_temporary(&name) && name.starts_with(".backup_") && name.ends_with(".tmp") {
            match std::fs::remove_file(backup.join(&name)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => removed += 1,
            }
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

fn write_and_verify(
    zip: &Path,
    tmp: &Path,
    loose_dir: &Path,
    dating: &Dating,
) -> Result<(Archived, BTreeMap<String, EntryFacts>), ArchiveError> {
    let loose =
        finished_files(loose_dir).map_err(io_err(format!("listing {}", loose_dir.display())))?;
    let out = File::create(tmp).map_err(io_err(format!("creating {}", tmp.display())))?;
    let mut writer = ZipWriter::new(BufWriter::new(out));
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    let mut old_crc: HashMap<String, u32> = HashMap::new();
    if let Some(mut old) = open_existing(zip)? {
        for i in 0..old.len() {
            let (entry, name) = raw_entry(&mut old, i, zip)?;
            expected.insert(name.clone(), entry.size());
            old_crc.insert(name, entry.crc32());
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
        let meta =
            std::fs::metadata(&path).map_err(io_err(format!("reading {}", path.display())))?;
        let size = meta.len();
        match expected.get(&name) {
            // Already archived by a close that stopped before removing the loose copy:
            // the same bytes (size and CRC-32), or the loose copy is not the zip's to retire.
            Some(&archived)
                if archived == size && Some(&crc32_of(&path)?) == old_crc.get(&name) => {}
            Some(_) => {
                return Err(ArchiveError::Verify {
                    zip: zip.display().to_string(),
                    reason: format!("{name} is already archived with other content"),
                });
            }
            None => {
                let options = dating
                    .options(&name, meta.modified().ok(), size)
                    .map_err(zip_err(format!("dating {name}")))?;
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
    let entries = verify(tmp, &expected)?;
    Ok((
        Archived {
            zip: zip.to_path_buf(),
            moved,
        },
        entries,
    ))
}

/// The CRC-32 of a file's bytes, as a zip entry records it.
fn crc32_of(path: &Path) -> Result<u32, ArchiveError> {
    let mut file = File::open(path).map_err(io_err(format!("reading {}", path.display())))?;
    let mut crc = crc32fast::Hasher::new();
    let mut buffer = vec![0; 1 << 16];
    loop {
        match io::Read::read(&mut file, &mut buffer) {
            Ok(0) => return Ok(crc.finalize()),
            Ok(n) => crc.update(&buffer[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(format!("reading {}", path.display()))(e)),
        }
    }
}

/// Reads every entry back to its end (the zip reader checks the CRC there) and compares
/// sizes; returns each entry's size and CRC.
fn verify(
    tmp: &Path,
    expected: &BTreeMap<String, u64>,
) -> Result<BTreeMap<String, EntryFacts>, ArchiveError> {
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
    let mut entries = BTreeMap::new();
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
        entries.insert(name, (read, entry.crc32()));
    }
    Ok(entries)
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

/// Writes, verifies and installs the zip of `day` holding its old entries and the loose
/// files; writes nothing when no loose file is finished.
#[cfg(test)]
fn archive_day(backup: &Path, day: NaiveDate, loose_dir: &Path) -> Result<Archived, ArchiveError> {
    let dating = Dating {
        tz: chrono_tz::UTC,
        loaded_at: HashMap::new(),
        now: Utc::now(),
    };
    match prepare(backup, day, loose_dir, &dating)? {
        None => Ok(Archived {
            zip: zip_path(backup, day),
            moved: Vec::new(),
        }),
        Some(prepared) => {
            prepared.install()?;
            Ok(prepared.archived)
        }
    }
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

    #[test]
    fn an_install_never_replaces_a_zip_holding_an_entry_it_lacks() {
        let backup = scratch("newer");
        let day = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
        let loose = backup.join("20261124");
        std::fs::create_dir_all(&loose).unwrap();
        std::fs::write(loose.join("1-report_1.txt"), b"one").unwrap();
        archive_day(&backup, day, &loose).unwrap();
        std::fs::write(loose.join("2-report_2.txt"), b"two").unwrap();
        let dating = Dating {
            tz: chrono_tz::UTC,
            loaded_at: HashMap::new(),
            now: Utc::now(),
        };
        let stale = prepare(&backup, day, &loose, &dating).unwrap().unwrap();
        // Meanwhile another close installs {1, 2, 3}.
        std::fs::write(loose.join("3-report_3.txt"), b"three").unwrap();
        let newer = archive_day(&backup, day, &loose).unwrap();
        assert_eq!(newer.moved.len(), 3);
        let installed = std::fs::read(zip_path(&backup, day)).unwrap();
        let refused = stale.install().unwrap_err();
        assert!(
            matches!(&refused, ArchiveError::Newer { entry, .. } if entry == "3-report_3.txt"),
            "{refused}"
        );
        assert_eq!(std::fs::read(zip_path(&backup, day)).unwrap(), installed);
        stale.discard();
        let names: Vec<String> = std::fs::read_dir(&backup)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
        std::fs::remove_dir_all(&backup).unwrap();
    }

    #[test]
    fn a_loose_copy_unlike_its_archived_entry_is_never_retired() {
        let backup = scratch("unlike");
        let day = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
        let loose = backup.join("20261124");
        std::fs::create_dir_all(&loose).unwrap();
        std::fs::write(loose.join("1-report_1.txt"), b"one").unwrap();
        archive_day(&backup, day, &loose).unwrap();
        // Same name, same size, other bytes: not the zip's copy.
        std::fs::write(loose.join("1-report_1.txt"), b"uno").unwrap();
        let refused = archive_day(&backup, day, &loose).unwrap_err();
        assert!(refused.to_string().contains("other content"), "{refused}");
        assert_eq!(std::fs::read(loose.join("1-report_1.txt")).unwrap(), b"uno");
        std::fs::remove_dir_all(&backup).unwrap();
    }
}
