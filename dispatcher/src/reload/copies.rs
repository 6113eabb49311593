//! The backup copies of a day, as `dispatcher reload` finds them: entries of
//! `backup/backup_YYYYMMDD.zip` and loose files of `backup/YYYYMMDD/` not zipped yet,
//! each named `<bitacora_id>-<file name>`; and their extraction, each into a directory
//! of its own so two copies of one file name never collapse into one.

use crate::archive::{loose_days, zip_path};
use chrono::NaiveDate;
use shared::local::paths::{create_dir_durable, is_temporary, sync_dir, temporary_name};
use shared::source::RemoteName;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;
use zip::ZipArchive;

/// One backup copy of a loaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// The business day whose backup holds it.
    pub day: NaiveDate,
    /// Its name in the backup: `<bitacora_id>-<file name>`.
    pub entry: RemoteName,
    /// The `bitacora_control.id` it was loaded under.
    pub bitacora_id: i64,
    /// The original file name (`archivo`).
    pub file_name: RemoteName,
    /// Where it is read from.
    pub place: Place,
}

/// Where a copy lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// An entry of the day's zip.
    Zip(PathBuf),
    /// A loose file of the day's directory.
    Loose(PathBuf),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Zip(zip) => write!(f, "{}", zip.display()),
            Place::Loose(dir) => write!(f, "{}", dir.display()),
        }
    }
}

/// A name in a backup that is not `<bitacora_id>-<file name>`: reported, never extracted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The zip or directory.
    pub place: String,
    /// The name found.
    pub name: String,
    /// Which rule it breaks.
    pub rule: String,
}

/// `<bitacora_id>-<file name>` → (id, entry, file name).
fn parse_entry(name: &str) -> Result<(i64, RemoteName, RemoteName), String> {
    let entry = RemoteName::parse(name).map_err(|e| e.to_string())?;
    let (id, file_name) = name
        .split_once('-')
        .ok_or("not `<bitacora_id>-<file name>`: no `-`")?;
    let id = id
        .parse::<i64>()
        .map_err(|_| format!("not `<bitacora_id>-<file name>`: `{id}` is not an id"))?;
    let file_name = RemoteName::parse(file_name).map_err(|e| e.to_string())?;
    Ok((id, entry, file_name))
}

/// The days that have a zip or a loose directory under `backup`, oldest first.
pub fn days(backup: &Path) -> io::Result<Vec<NaiveDate>> {
    let mut days: Vec<NaiveDate> = loose_days(backup)?.into_iter().map(|(d, _)| d).collect();
    for entry in std::fs::read_dir(backup)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(day) = name
            .strip_prefix("backup_")
            .and_then(|n| n.strip_suffix(".zip"))
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y%m%d").ok())
        {
            days.push(day);
        }
    }
    days.sort();
    days.dedup();
    Ok(days)
}

/// Every copy of `day`, by entry name. Loose files are listed before the zip is read:
/// a close running meanwhile zips a loose file before it removes it, so each copy is
/// seen at least once; one seen in both places is the same file (the close verified it).
pub fn of_day(backup: &Path, day: NaiveDate) -> anyhow::Result<(Vec<Copy>, Vec<Refused>)> {
    let mut found = BTreeMap::new();
    let mut refused = Vec::new();
    let mut add = |name: String, place: Place| match parse_entry(&name) {
        Ok((bitacora_id, entry, file_name)) => {
            found.entry(name).or_insert(Copy {
                day,
                entry,
                bitacora_id,
                file_name,
                place,
            });
        }
        Err(rule) => refused.push(Refused {
            place: place.to_string(),
            name,
            rule,
        }),
    };
    let loose = backup.join(day.format("%Y%m%d").to_string());
    match std::fs::read_dir(&loose) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                // A file still being moved in is not a copy yet (the close skips it too).
                if entry.file_type()?.is_file() && !is_temporary(&name) {
                    add(name, Place::Loose(loose.clone()));
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => anyhow::bail!("listing {}: {e}", loose.display()),
    }
    let zip = zip_path(backup, day);
    match File::open(&zip) {
        Ok(file) => {
            let archive = ZipArchive::new(file)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", zip.display()))?;
            for name in archive.file_names() {
                let name = name.map_err(|e| anyhow::anyhow!("reading {}: {e}", zip.display()))?;
                if !name.ends_with('/') {
                    add(name.to_string(), Place::Zip(zip.clone()));
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => anyhow::bail!("opening {}: {e}", zip.display()),
    }
    Ok((found.into_values().collect(), refused))
}

/// Writes `copy` into `dir` (created) under its entry name, durably: written under a
/// temporary name, fsynced, renamed, the directory fsynced. Returns the extracted path.
/// A zip entry's CRC is checked as it is read: a damaged entry is an error, never a file.
pub fn extract(copy: &Copy, backup: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    create_dir_durable(dir)?;
    let to = dir.join(copy.entry.as_str());
    let tmp = dir.join(temporary_name(&to));
    let written = (|| -> anyhow::Result<()> {
        let mut out = File::create_new(&tmp)?;
        copy_into(copy, backup, &mut out)?;
        out.sync_all()?;
        std::fs::rename(&tmp, &to)?;
        sync_dir(dir)?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.context(format!(
            "extracting {} from {} into {}",
            copy.entry,
            copy.place,
            dir.display()
        )));
    }
    Ok(to)
}

fn copy_into(copy: &Copy, backup: &Path, out: &mut File) -> anyhow::Result<()> {
    let from_zip = |zip: &Path, out: &mut File| -> anyhow::Result<()> {
        let mut archive = ZipArchive::new(File::open(zip)?)?;
        let mut entry = archive.by_name(copy.entry.as_str())?;
        io::copy(&mut entry, out)?;
        // Read to the end: the CRC is checked there.
        entry.read_to_end(&mut Vec::new())?;
        Ok(())
    };
    match &copy.place {
        Place::Zip(zip) => from_zip(zip, out),
        Place::Loose(dir) => match File::open(dir.join(copy.entry.as_str())) {
            Ok(mut file) => {
                io::copy(&mut file, out)?;
                Ok(())
            }
            // Zipped by a close since it was listed: the zip holds it now.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                from_zip(&zip_path(backup, copy.day), out)
            }
            Err(e) => Err(e.into()),
        },
    }
}

/// Removes the empty directories under `dir` (and `dir` itself if it ends empty) that
/// were last changed at least `min_age` ago, fsyncing each parent changed: what reloads
/// leave once the performers took their files. Returns whether `dir` was removed.
pub fn remove_empty_dirs(dir: &Path, min_age: Duration) -> io::Result<bool> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(e),
    };
    let (mut empty, mut removed) = (true, false);
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() && remove_empty_dirs(&entry.path(), min_age)? {
            removed = true;
        } else {
            empty = false;
        }
    }
    if removed {
        sync_dir(dir)?;
    }
    // A young empty directory may be one a reload running now is about to fill.
    let old_enough = min_age.is_zero()
        || std::fs::metadata(dir)?
            .modified()?
            .elapsed()
            .is_ok_and(|age| age >= min_age);
    if empty && old_enough {
        std::fs::remove_dir(dir)?;
        return Ok(true);
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_are_id_dash_file_name_and_nothing_else() {
        let (id, entry, name) = parse_entry("12-report_1.txt").unwrap();
        assert_eq!(
            (id, entry.as_str(), name.as_str()),
            (12, "12-report_1.txt", "report_1.txt")
        );
        // The file name may hold dashes of its own.
        assert_eq!(parse_entry("7-a-b.txt").unwrap().2.as_str(), "a-b.txt");
        for bad in [
            "report_1.txt",
            "x-report_1.txt",
            "12-",
            "12-..",
            "sub/12-a.txt",
        ] {
            assert!(parse_entry(bad).is_err(), "{bad}");
        }
    }
}
