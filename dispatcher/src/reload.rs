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

mod copies;

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

/// Finds the copies, extracts and enqueues them, and (with `--wait`) waits for them.
/// A copy that cannot be extracted (a damaged zip entry) is named and the others go on;
/// the command then fails, after enqueueing (and waiting for) the rest.
pub async fn run(config: &Config, pool: &PgPool, args: &Args) -> anyhow::Result<Outcome> {
    let backup = Dirs::new(&config.paths.root).backup();
    let found = find(&backup, args)?;
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
    let (reloaded, failed) = extract_all(&backup, &run_dir, found, args.as_of);
    let ids = enqueue(config, pool, &reloaded).await?;
    print_enqueued(pool, &ids, &reloaded).await?;
    let outcome = if !args.wait {
        println!(
            "reloaded files wait for a performer on this host ({}); `dispatcher status` shows the queue",
            shared::local::host::name()
        );
        Outcome::Done
    } else if wait_for(config, pool, &ids).await? {
        print_outcomes(pool, &ids).await?;
        tidy(&reload_root, &run_dir);
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
    if !failed.is_empty() {
        anyhow::bail!(
            "{} backup copy(ies) not reloaded:\n{}",
            failed.len(),
            failed.join("\n")
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
                println!("{why}");
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

/// The copies asked for; names that are not `<bitacora_id>-<file name>` are reported.
fn find(backup: &Path, args: &Args) -> anyhow::Result<Vec<Copy>> {
    let days = match args.day {
        Some(day) => vec![day],
        None => copies::days(backup)
            .map_err(|e| anyhow::anyhow!("listing {}: {e}", backup.display()))?,
    };
    let mut found = Vec::new();
    for day in days {
        let (day_copies, refused) = copies::of_day(backup, day)?;
        for r in refused {
            if args.file.is_none() {
                warn!(place = %r.place, name = %r.name, rule = %r.rule, "backup entry not reloaded");
                println!("{}: {}: not reloaded: {}", r.place, r.name, r.rule);
            }
        }
        found.extend(
            day_copies
                .into_iter()
                .filter(|c| args.file.is_none_or(|id| c.bitacora_id == id)),
        );
    }
    if found.is_empty() {
        let what = match (args.file, args.day) {
            (Some(id), Some(day)) => format!("bitacora_control.id = {id} in the backup of {day}"),
            (Some(id), None) => format!("bitacora_control.id = {id} in any day's backup"),
            (None, Some(day)) => format!("no file of {day}"),
            (None, None) => unreachable!("clap requires --day or --file"),
        };
        anyhow::bail!(
            "nothing to reload: {what} (looked in {} for backup_YYYYMMDD.zip entries and \
             YYYYMMDD/ files named ID-name)",
            backup.display()
        );
    }
    Ok(found)
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

async fn print_enqueued(pool: &PgPool, ids: &[i64], reloaded: &[Reloaded]) -> anyhow::Result<()> {
    let copy_at: BTreeMap<String, &Copy> = reloaded
        .iter()
        .map(|r| (r.path.display().to_string(), &r.copy))
        .collect();
    for r in audit::items_report(pool, ids).await? {
        let path = &r.source_path;
        let from = copy_at
            .get(path)
            .map_or(String::new(), |c| format!("{} of {}, ", c.entry, c.place));
        println!(
            "{} ({from}extracted to {path}): enqueued as bitacora_control.id = {} (work item {}), \
             business date {}",
            r.file_name,
            r.bitacora_id,
            r.work_item,
            r.business_date.map_or(String::new(), |d| d.to_string()),
        );
    }
    println!("reload: {} file(s) enqueued", ids.len());
    Ok(())
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
