//! `dispatcher reload --day YYYY-MM-DD | --file ID`: load a day's files (or one file)
//! again from their backup, e.g. after the database was restored from an older backup.
//!
//! Each backup copy (`backup/backup_YYYYMMDD.zip` entries and loose `backup/YYYYMMDD/`
//! files, named `<bitacora_id>-<file name>`) is extracted durably into a directory of
//! its own under `<root>/reload/`, and enqueued as a local item bound to this host:
//! only performers on this host take it, from that directory and nowhere else (never the
//! configured origin, whatever files it holds). A performer consumes the extracted copy
//! like any origin file (renamed to its in-flight name, deleted after the backup); the
//! zip is never changed here. Content already loaded ends `DUPLICADO`, as always.

pub mod copies;

use chrono::{NaiveDate, Utc};
use copies::Copy;
use shared::config::Config;
use shared::local::paths::{Dirs, sync_dir};
use shared::store::{attempt, audit};
use shared::types::{NewItem, Origin};
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tracing::{error, info, warn};

/// Empty directories of earlier reloads older than this are removed by the next reload.
const OLD_RELOAD_DIRS: Duration = Duration::from_secs(3600);

/// What to reload.
#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("what").required(true).multiple(true))]
pub struct Args {
    /// Every file of this business day: its zip's entries and its loose backups.
    #[arg(long, value_name = "YYYY-MM-DD", group = "what")]
    day: Option<NaiveDate>,
    /// Only the file loaded as this bitacora_control.id (its backup copy `ID-name`);
    /// searched in every day's backup unless `--day` is given too.
    #[arg(long, value_name = "ID", group = "what")]
    file: Option<i64>,
    /// Business date the reloaded files are counted under: their `fecha_negocio`, the
    /// date the visitor counters (visits this year / this month) are computed as of, and
    /// the backup day of the new copies. Default: the day whose backup holds the file.
    #[arg(long, value_name = "YYYY-MM-DD")]
    as_of: Option<NaiveDate>,
    /// Wait (up to `dispatcher.drain_timeout_secs`) for the performers on this host to
    /// finish the reloaded files, then print how each ended. Exit 3 if they did not.
    #[arg(long)]
    wait: bool,
}

/// How a reload ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Enqueued (and, with `--wait`, every item reached a final state).
    Done,
    /// `--wait`: the deadline passed with items still open.
    NotDrained,
}

/// One extracted copy and its item.
struct Reloaded {
    copy: Copy,
    path: PathBuf,
    business_date: NaiveDate,
}

/// What to reload, as the CLI and the console ask for it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Selection {
    /// Every file of this business day.
    pub day: Option<NaiveDate>,
    /// Only the file loaded as this `bitacora_control.id`.
    pub file: Option<i64>,
    /// The business date the reloaded files count under (default: their backup's day).
    pub as_of: Option<NaiveDate>,
}

impl From<&Args> for Selection {
    fn from(args: &Args) -> Self {
        Self {
            day: args.day,
            file: args.file,
            as_of: args.as_of,
        }
    }
}

/// One copy enqueued again.
#[derive(Debug, Clone)]
pub struct EnqueuedFile {
    /// Where it came from (`<entry> of <zip or directory>`), when known.
    pub from: String,
    /// Its new item and audit row.
    pub item: audit::ItemReport,
}

/// What a reload did: the copies enqueued, and those it could not take.
#[derive(Debug, Clone, Default)]
pub struct Enqueued {
    /// Names in the backup that are not `<bitacora_id>-<file name>`, each with the rule.
    pub refused: Vec<String>,
    /// Copies that could not be extracted, each with why (naming the zip and the entry).
    pub failed: Vec<String>,
    /// The copies enqueued, by item id.
    pub files: Vec<EnqueuedFile>,
    /// The directory the copies were extracted into (removed once they are taken).
    pub run_dir: PathBuf,
}

impl Enqueued {
    /// The new items' ids.
    pub fn ids(&self) -> Vec<i64> {
        self.files.iter().map(|f| f.item.work_item).collect()
    }
}

impl std::fmt::Display for Enqueued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for line in self.refused.iter().chain(&self.failed) {
            writeln!(f, "{line}")?;
        }
        for e in &self.files {
            let r = &e.item;
            writeln!(
                f,
                "{} ({}extracted to {}): enqueued as bitacora_control.id = {} (work item {}), \
                 business date {}",
                r.file_name,
                e.from,
                r.source_path,
                r.bitacora_id,
                r.work_item,
                r.business_date.map_or(String::new(), |d| d.to_string()),
            )?;
        }
        write!(f, "reload: {} file(s) enqueued", self.files.len())
    }
}

/// Finds the copies, extracts and enqueues them (the CLI's and the console's one way to
/// reload); returns what it did. A copy that cannot be extracted is named in
/// [`Enqueued::failed`] and the others go on.
pub async fn enqueue_copies(
    config: &Config,
    pool: &PgPool,
    what: Selection,
) -> anyhow::Result<Enqueued> {
    let backup = Dirs::new(&config.paths.root).backup();
    let (found, refused) = find(&backup, what)?;
    // Absolute: the items record it as a `file://` URL.
    let reload_root = std::path::absolute(config.paths.root.join("reload"))?;
    if let Err(e) = copies::remove_empty_dirs(&reload_root, OLD_RELOAD_DIRS) {
        warn!(dir = %reload_root.display(), error = %e, "earlier reload directories not tidied");
    }
    let run_dir = reload_root.join(format!(
        "{}-{}",
        Utc::now().format("%Y%m%dT%H%M%S"),
        std::process::id()
    ));
    let (reloaded, failed) = extract_all(&backup, &run_dir, found, what.as_of);
    let ids = enqueue(config, pool, &reloaded).await?;
    let copy_at: BTreeMap<String, &Copy> = reloaded
        .iter()
        .map(|r| (r.path.display().to_string(), &r.copy))
        .collect();
    let files = audit::items_report(pool, &ids)
        .await?
        .into_iter()
        .map(|item| EnqueuedFile {
            from: copy_at
                .get(&item.source_path)
                .map_or(String::new(), |c| format!("{} of {}, ", c.entry, c.place)),
            item,
        })
        .collect();
    Ok(Enqueued {
        refused,
        failed,
        files,
        run_dir,
    })
}

/// `dispatcher reload`: enqueues the copies, prints what it did, and (with `--wait`)
/// waits for them. A copy that cannot be extracted (a damaged zip entry) is named and
/// the others go on; the command then fails, after enqueueing (and waiting for) the rest.
pub async fn run(config: &Config, pool: &PgPool, args: &Args) -> anyhow::Result<Outcome> {
    let done = enqueue_copies(config, pool, Selection::from(args)).await?;
    println!("{done}");
    let ids = done.ids();
    let reload_root = std::path::absolute(config.paths.root.join("reload"))?;
    let outcome = if !args.wait {
        println!(
            "reloaded files wait for a performer on this host ({}); `dispatcher status` shows the queue",
            shared::local::host::name()
        );
        Outcome::Done
    } else if wait_for(config, pool, &ids).await? {
        print_outcomes(pool, &ids).await?;
        tidy(&reload_root, &done.run_dir);
        Outcome::Done
    } else {
        print_outcomes(pool, &ids).await?;
        println!(
            "not every reloaded file finished within {} s: is a performer running on {}? \
             `dispatcher status` shows the queue",
            config.dispatcher.drain_timeout_secs,
            shared::local::host::name()
        );
        Outcome::NotDrained
    };
    if !done.failed.is_empty() {
        anyhow::bail!(
            "{} backup copy(ies) not reloaded:\n{}",
            done.failed.len(),
            done.failed.join("\n")
        );
    }
    Ok(outcome)
}

/// Extracts every copy into a directory of its own under `run_dir`; returns the
/// extracted copies and, for each that failed, why (naming the zip and the entry).
fn extract_all(
    backup: &Path,
    run_dir: &Path,
    found: Vec<Copy>,
    as_of: Option<NaiveDate>,
) -> (Vec<Reloaded>, Vec<String>) {
    let progress = crate::progress::bar("extracting");
    progress.set_length(found.len() as u64);
    let (mut reloaded, mut failed) = (Vec::new(), Vec::new());
    for copy in found {
        // A directory per copy: `12-report_1.txt` and `15-report_1.txt` stay two files.
        let dir = run_dir
            .join(copy.day.format("%Y%m%d").to_string())
            .join(copy.bitacora_id.to_string());
        match copies::extract(&copy, backup, &dir) {
            Ok(path) => reloaded.push(Reloaded {
                business_date: as_of.unwrap_or(copy.day),
                copy,
                path,
            }),
            Err(e) => {
                let why = format!("{e:#}");
                error!(entry = %copy.entry, from = %copy.place, error = %why, "backup copy not reloaded");
                failed.push(why);
            }
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    (reloaded, failed)
}

/// Removes this reload's directories once the performers took every copy.
fn tidy(reload_root: &Path, run_dir: &Path) {
    let tidied =
        copies::remove_empty_dirs(run_dir, Duration::ZERO).and_then(|_| sync_dir(reload_root));
    if let Err(e) = tidied {
        warn!(dir = %run_dir.display(), error = %e, "reload directory not tidied");
    }
}

/// The copies asked for, and the names that are not `<bitacora_id>-<file name>` (each
/// with the rule it breaks; only when a whole day is asked for).
fn find(backup: &Path, what: Selection) -> anyhow::Result<(Vec<Copy>, Vec<String>)> {
    let days = match what.day {
        Some(day) => vec![day],
        None => copies::days(backup)
            .map_err(|e| anyhow::anyhow!("listing {}: {e}", backup.display()))?,
    };
    let (mut found, mut refused_names) = (Vec::new(), Vec::new());
    for day in days {
        let (day_copies, refused) = copies::of_day(backup, day)?;
        for r in refused {
            if what.file.is_none() {
                warn!(place = %r.place, name = %r.name, rule = %r.rule, "backup entry not reloaded");
                refused_names.push(format!("{}: {}: not reloaded: {}", r.place, r.name, r.rule));
            }
        }
        found.extend(
            day_copies
                .into_iter()
                .filter(|c| what.file.is_none_or(|id| c.bitacora_id == id)),
        );
    }
    if found.is_empty() {
        let what = match (what.file, what.day) {
            (Some(id), Some(day)) => format!("bitacora_control.id = {id} in the backup of {day}"),
            (Some(id), None) => format!("bitacora_control.id = {id} in any day's backup"),
            (None, Some(day)) => format!("no file of {day}"),
            (None, None) => anyhow::bail!("nothing to reload: name a day or a file"),
        };
        anyhow::bail!(
            "nothing to reload: {what} (looked in {} for backup_YYYYMMDD.zip entries and \
             YYYYMMDD/ files named ID-name)",
            backup.display()
        );
    }
    Ok((found, refused_names))
}

/// Enqueues the extracted copies as local items of this host, their business date fixed
/// now; returns the new items' ids.
async fn enqueue(
    config: &Config,
    pool: &PgPool,
    reloaded: &[Reloaded],
) -> anyhow::Result<Vec<i64>> {
    let mut by_date: BTreeMap<NaiveDate, Vec<NewItem>> = BTreeMap::new();
    for r in reloaded {
        let meta = std::fs::metadata(&r.path)?;
        let mtime: chrono::DateTime<Utc> = meta.modified()?.into();
        let dir = r.path.parent().expect("extracted into a directory");
        by_date.entry(r.business_date).or_default().push(NewItem {
            origin: Origin::local(dir, shared::local::host::name()),
            source_name: r.copy.entry.to_string(),
            file_name: r.copy.file_name.to_string(),
            source_path: r.path.display().to_string(),
            size: meta.len(),
            // Whole seconds, as a listing sees it (the performer checks it at the take).
            mtime: chrono::DateTime::from_timestamp(mtime.timestamp(), 0),
            done_marker: None,
            loaded_prefix: None,
        });
    }
    let mut ids = Vec::new();
    for (date, items) in by_date {
        let new = attempt::enqueue_dated(
            pool,
            None,
            &items,
            config.performer.max_attempts,
            Utc::now(),
            Some(date),
        )
        .await?;
        info!(business_date = %date, files = items.len(), enqueued = new.len(), "reload enqueued");
        ids.extend(new);
    }
    Ok(ids)
}

async fn print_outcomes(pool: &PgPool, ids: &[i64]) -> anyhow::Result<()> {
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for r in audit::items_report(pool, ids).await? {
        let (status, message) = (r.estatus.to_string(), r.message);
        println!(
            "{} (bitacora_control.id = {}): {status}{}",
            r.file_name,
            r.bitacora_id,
            if message.is_empty() {
                String::new()
            } else {
                format!(": {message}")
            }
        );
        *by_status.entry(status).or_default() += 1;
    }
    let counts: Vec<String> = by_status
        .iter()
        .map(|(status, n)| format!("{n} {status}"))
        .collect();
    println!("reload finished: {}", counts.join(", "));
    Ok(())
}

/// Waits until every reloaded item is final, or the drain deadline passes.
async fn wait_for(config: &Config, pool: &PgPool, ids: &[i64]) -> sqlx::Result<bool> {
    let open = async || shared::store::queue::open_among(pool, ids).await;
    crate::progress::drain("reloading", config, open).await
}
