//! `dispatcher run`: list the origin twice, enqueue complete new files, retry
//! yesterday's system failures (tier 4), wait for the queue to drain (bounded),
//! close the day and print its summary.
//!
//! Concurrency: the whole run holds the dispatcher's lock (`crate::lock`, shared with
//! `dispatcher close`); a second run started meanwhile says so and exits 0.
//! The unique listing key of `work_items` would stop a double enqueue anyway.

use crate::listing::{Rules, Verdict, Watch};
use crate::progress::{Look, Waited};
use crate::{close, summary};
use chrono::{NaiveDate, Utc};
use regex::Regex;
use shared::config::Config;
use shared::observe::alert::{self, Alert};
use shared::source::{RemoteFile, Source};
use shared::store::alerts::Which;
use shared::store::locks::Lease;
use shared::store::runs::{self, RunCounts};
use shared::store::{attempt, performers, queue, reports, set_aside};
use shared::types::{AlertKind, AuditStatus, ItemStand, ItemState, NewItem};
use sqlx::PgPool;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

/// How a run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Another run holds the lock.
    Busy,
    /// Every item reached a final state (or waiting was not asked for).
    Drained,
    /// The deadline passed with items still open, or what was left no live performer
    /// could claim.
    NotDrained,
    /// Drained, but a day's zip could not be written or verified (loose copies kept).
    CloseFailed,
}

/// Counts of one listing.
#[derive(Debug, Default)]
struct Listed {
    listed: i32,
    ignored: i32,
    incomplete: i32,
    /// Files left at the origin for an operator (`set_aside_files`), not enqueued.
    set_aside: i32,
    ready: Vec<NewItem>,
    /// Files under an item's in-flight name (see `shared::source::in_flight_name`).
    in_flight: Vec<(i64, NewItem)>,
    listed_at: chrono::DateTime<Utc>,
}

/// The nightly run; `wait = false` only enqueues.
pub async fn run(
    config: &Config,
    pool: &PgPool,
    wait: bool,
    today: NaiveDate,
) -> anyhow::Result<Outcome> {
    let Some(lease) = crate::lock::take(config, pool, "run").await? else {
        return Ok(Outcome::Busy);
    };
    let outcome = locked_run(config, pool, wait, today, &lease).await;
    lease.release().await?;
    // The feeds' checks, now that the night's files are listed (and loaded, if it waited).
    match crate::check::run(config, pool).await {
        Ok(checked) => println!("{checked}"),
        Err(e) => warn!(error = %e, "the alert check after the run failed; the next check does it"),
    }
    outcome
}

async fn locked_run(
    config: &Config,
    pool: &PgPool,
    wait: bool,
    today: NaiveDate,
    lease: &Lease,
) -> anyhow::Result<Outcome> {
    let run_id = runs::start(
        pool,
        &shared::local::host::name(),
        config.source.url.as_str(),
        today,
    )
    .await?;
    let listed = match list_complete(config, pool).await {
        Ok(listed) => listed,
        Err(e) => {
            finish(pool, run_id, None, &format!("listing failed: {e}")).await?;
            return Err(e);
        }
    };
    let (mut ready, failed) = sort_in_flight(pool, &listed).await?;
    // Orphans too: an orphan's own item may have failed before taking it (tier 4 by identity).
    let at_origin: Vec<NewItem> = listed.ready.iter().chain(&ready).cloned().collect();
    let (retried, waiting) = attempt::retry_system_failures(
        pool,
        run_id,
        &at_origin,
        &failed,
        config.dispatcher.system_retry_runs,
    )
    .await?;
    ready.extend(listed.ready.iter().cloned());
    let enqueued = attempt::enqueue(
        pool,
        Some(run_id),
        &ready,
        config.performer.max_attempts,
        listed.listed_at,
    )
    .await?;
    let known = listed.ready.len() as i32 + listed.in_flight.len() as i32
        - enqueued.len() as i32
        - retried.len() as i32;
    let counts = RunCounts {
        listed: listed.listed,
        enqueued: enqueued.len() as i32,
        skipped: listed.ignored + listed.incomplete + known + listed.set_aside,
        ignored: listed.ignored,
        incomplete: listed.incomplete,
        known,
        retried: retried.len() as i32,
        waiting_operator: waiting as i32,
        set_aside: listed.set_aside,
    };
    runs::record_counts(pool, run_id, &counts).await?;
    info!(
        dispatch_run = run_id,
        listed = listed.listed,
        enqueued = enqueued.len(),
        retried = retried.len(),
        already_known = known,
        incomplete = listed.incomplete,
        ignored = listed.ignored,
        waiting_for_operator = waiting,
        set_aside = listed.set_aside,
        "dispatch finished"
    );
    println!(
        "dispatch run {run_id}: {} listed, {} enqueued, {} retried (tier 4), {} already known, \
         {} incomplete, {} ignored, {} waiting for an operator, {} set aside at the origin",
        listed.listed,
        enqueued.len(),
        retried.len(),
        known,
        listed.incomplete,
        listed.ignored,
        waiting,
        listed.set_aside
    );
    if !wait {
        finish(pool, run_id, None, "enqueued").await?;
        return Ok(Outcome::Drained);
    }

    let waited = wait_for_drain(config, pool).await?;
    let drained = waited == Waited::Drained;
    let closed = close::close_day(config, pool, today, lease).await?;
    let lines = reports::day(pool, today).await?;
    let table = summary::render(today, &lines);
    info!(summary = %table, zips = closed.zips, archived = closed.archived_files,
          staging_removed = closed.staging_removed, "day closed");
    print!("{table}");
    println!("{}", closed.describe());
    let message = match waited {
        Waited::Drained => "drained",
        Waited::Deadline => "NOT drained before the deadline",
        Waited::Stuck => "NOT drained: no live performer can claim what is left",
    };
    finish(pool, run_id, Some(drained), message).await?;
    if waited == Waited::Stuck {
        let message = format!(
            "dispatch run {run_id}: {}; rebind them to the origin performers serve now \
             (`dispatcher origins rebind OLD NEW`) or cancel them (`dispatcher origins cancel \
             OLD --reason \"…\"`)",
            describe_unclaimable(&performers::unclaimable(pool).await?)
        );
        error!(dispatch_run = run_id, "{message}");
        println!("{message}");
        let alert = Alert::new(AlertKind::OrigenSinPerformer, message).on(today);
        alert::raise(pool, config, alert).await;
        return Ok(Outcome::NotDrained);
    }
    if !drained {
        let message = format!(
            "dispatch run {run_id}: the queue did not drain within {} s; the next run picks up the rest",
            config.dispatcher.drain_timeout_secs
        );
        error!(dispatch_run = run_id, "{message}");
        println!("{message}");
        let alert = Alert::new(AlertKind::NocheSinDrenar, message).on(today);
        alert::raise(pool, config, alert).await;
        return Ok(Outcome::NotDrained);
    }
    let drained = format!("dispatch run {run_id} drained");
    for kind in [AlertKind::NocheSinDrenar, AlertKind::OrigenSinPerformer] {
        alert::resolve(pool, config, Which::Service(kind), &drained).await;
    }
    if !closed.failed_days.is_empty() {
        let message = format!("dispatch run {run_id}: {}", closed.failed_days.join("; "));
        alert::raise(
            pool,
            config,
            Alert::new(AlertKind::ArchivoZipFallido, message),
        )
        .await;
        return Ok(Outcome::CloseFailed);
    }
    Ok(Outcome::Drained)
}

async fn finish(
    pool: &PgPool,
    run_id: i64,
    drained: Option<bool>,
    outcome: &str,
) -> sqlx::Result<()> {
    runs::finish(pool, run_id, drained, outcome).await
}

/// A file left at the origin for an operator that is no longer as it was left (its size
/// or mtime differ: new content under its name, or more of it) is not loaded by the
/// night, which cannot tell what of it was loaded: an `ARCHIVO_MODIFICADO` says so, until
/// the operator resolves it (`quarantine retry` loads only what is new).
async fn changed_since_set_aside(
    config: &Config,
    pool: &PgPool,
    aside: &[set_aside::OpenName],
    verdicts: &[(RemoteFile, Verdict)],
) {
    for a in aside {
        let Some((now, _)) = verdicts.iter().find(|(f, _)| f.name == a.name) else {
            continue;
        };
        let mtime_differs = a.mtime.is_some() && now.mtime.is_some() && a.mtime != now.mtime;
        if now.size == a.size_bytes.max(0) as u64 && !mtime_differs {
            continue;
        }
        let message = format!(
            "{}: the file left at the origin as {} changed since it was set aside ({} bytes,              now {}): not loaded; `dispatcher quarantine retry {}` loads what is new,              `dispatcher quarantine discard {} --reason \"…\"` leaves it",
            a.archivo, a.name, a.size_bytes, now.size, a.bitacora_id, a.bitacora_id
        );
        warn!(file = %a.name, "{message}");
        let mut alert = Alert::new(AlertKind::ArchivoModificado, message).about(
            &a.archivo,
            a.bitacora_id,
            a.work_item_id,
        );
        if let Some(day) = a.business_date {
            alert = alert.on(day);
        }
        alert::raise(pool, config, alert).await;
    }
}

/// Listings `source.stability_window_secs` apart until every file is complete or cannot
/// be within `crate::listing::Rules::span`; only complete files are ready. Names left at
/// the origin for an operator are never enqueued (those no longer there are recorded
/// gone).
async fn list_complete(config: &Config, pool: &PgPool) -> anyhow::Result<Listed> {
    let source_config = &config.source;
    let window = Duration::from_secs(source_config.stability_window_secs);
    let pattern = Regex::new(&format!("^(?:{})$", source_config.pattern))?;
    let rules = Rules {
        pattern: pattern.clone(),
        min_age: Duration::from_secs(source_config.min_file_age_secs),
        window,
        listings_without_mtime: source_config.listings_without_mtime,
        done_marker: source_config.done_marker.clone(),
    };
    let origin = config.source.url.origin();
    let source = Source::connect(&config.access()).await?;
    // The database's clock: it is compared with the items' `updated_at`.
    let listed_at: chrono::DateTime<Utc> = shared::store::connect::database_now(pool).await?;
    let first = source.list().await?;
    // Our own monotonic clock measures how long a file stayed unchanged.
    let started = Instant::now();
    let mut watch = Watch::new(rules);
    watch.observe(Duration::ZERO, &first);
    // With no window but a minimum age, still not a busy loop over the network.
    let pause = if window.is_zero() && source_config.min_file_age_secs > 0 {
        Duration::from_millis(250)
    } else {
        window
    };
    while watch.wants_more() {
        tokio::time::sleep(pause).await;
        let files = source.list().await?;
        watch.observe(started.elapsed(), &files);
        info!(
            listing = watch.listings(),
            files = files.len(),
            "origin listed"
        );
    }
    let aside = set_aside::open_at(pool, &origin.url).await?;
    let verdicts = watch.verdicts(&aside.iter().map(|a| a.name.clone()).collect());
    let present: HashSet<&str> = verdicts.iter().map(|(f, _)| f.name.as_str()).collect();
    let gone: Vec<i64> = aside
        .iter()
        .filter(|a| !present.contains(a.name.as_str()))
        .map(|a| a.id)
        .collect();
    if !gone.is_empty() {
        let n = set_aside::mark_gone(pool, &gone).await?;
        info!(
            files = n,
            "files set aside at the origin are no longer there"
        );
    }
    changed_since_set_aside(config, pool, &aside, &verdicts).await;
    let mut listed = Listed {
        listed: first.len() as i32,
        listed_at,
        ..Listed::default()
    };
    let item = |file: &RemoteFile, file_name: &str, marker: Option<String>| NewItem {
        origin: origin.clone(),
        source_name: file.name.clone(),
        file_name: file_name.to_string(),
        source_path: source.path_of(&file.name),
        size: file.size,
        mtime: file.mtime,
        done_marker: marker,
        loaded_prefix: None,
    };
    for (file, verdict) in verdicts {
        match verdict {
            Verdict::Ready => {
                let marker = watch.marker_of(&file.name);
                // A marker is deleted with its file: it must never be a file itself.
                if let Some(m) = marker
                    .as_ref()
                    .filter(|m| **m == file.name || pattern.is_match(m))
                {
                    anyhow::bail!(
                        "source.done_marker makes `{m}` the marker of `{}`, but `{m}` is a file \
                         source.pattern takes: choose a marker name the pattern never matches",
                        file.name
                    );
                }
                listed.ready.push(item(&file, &file.name, marker));
            }
            Verdict::InFlight { item_id, name } => {
                listed.in_flight.push((item_id, item(&file, &name, None)));
            }
            Verdict::SetAside => listed.set_aside += 1,
            Verdict::Ignored => listed.ignored += 1,
            Verdict::Unsafe(reason) => {
                warn!(%reason, "file name refused");
                listed.ignored += 1;
            }
            Verdict::NotSettled | Verdict::Changing | Verdict::NoMarker => {
                info!(file = %file.name, ?verdict, "not complete yet; a later run will take it");
                listed.incomplete += 1;
            }
        }
    }
    source.close().await;
    Ok(listed)
}

/// Waits until no item is pending or running, or the deadline passes, or what is left
/// no live performer can claim (two looks in a row, while some performer is alive); on
/// a terminal a progress bar shows the open items (scripts and journald see nothing).
async fn wait_for_drain(config: &Config, pool: &PgPool) -> sqlx::Result<Waited> {
    let look = async || {
        let open = queue::open_items(pool).await?;
        if open == 0 || performers::live(pool).await?.is_empty() {
            return Ok(Look::Open(open));
        }
        let unclaimable: i64 = performers::unclaimable(pool)
            .await?
            .iter()
            .map(|u| u.items)
            .sum();
        Ok(if unclaimable == open {
            Look::Stuck(open)
        } else {
            Look::Open(open)
        })
    };
    crate::progress::wait("waiting for the performers", config, look).await
}

/// The items no live performer can claim, by origin, for people.
pub fn describe_unclaimable(unclaimable: &[performers::Unclaimable]) -> String {
    let each: Vec<String> = unclaimable
        .iter()
        .map(|u| {
            let host = u
                .origin_host
                .as_ref()
                .map_or(String::new(), |h| format!(" on host {h}"));
            format!(
                "{} item(s) of {}{host} (oldest enqueued {})",
                u.items, u.origin, u.oldest
            )
        })
        .collect();
    format!("no live performer can claim {}", each.join("; "))
}

/// Files found under an item's in-flight name: left alone while the item is open (or
/// changed since the listing began: it may have just finished with that file); the
/// item's own tier 4 when it failed as `FALLO_SISTEMA` (returned with the listing entry
/// that found it); left to the operator when discarded; anything else is an orphan (an
/// attempt stopped after taking it, a stale one took it, an operator retried the item
/// from a quarantined copy, or it was replaced after its load) and is enqueued as a new
/// file: loaded, or `DUPLICADO` if its content already was. (A name left there for an
/// operator never gets here: `set_aside_files`.)
async fn sort_in_flight<'a>(
    pool: &PgPool,
    listed: &'a Listed,
) -> sqlx::Result<(Vec<NewItem>, Vec<(i64, &'a NewItem)>)> {
    let ids: Vec<i64> = listed.in_flight.iter().map(|(id, _)| *id).collect();
    let stands: std::collections::HashMap<i64, ItemStand> =
        queue::states_of(pool, &ids).await?.into_iter().collect();
    let (mut orphans, mut failed) = (Vec::new(), Vec::new());
    for (id, file) in &listed.in_flight {
        match stands.get(id) {
            Some(item) if item.state.is_open() || item.updated_at >= listed.listed_at => {}
            // Discarded by an operator: the origin copy is theirs to remove.
            Some(item) if item.discarded => {}
            Some(item)
                if item.state == ItemState::Failed
                    && item.status == AuditStatus::FalloSistema
                    && !item.retried =>
            {
                failed.push((*id, file))
            }
            _ => {
                warn!(file = %file.source_name, item = id, "a file left under a finished item's \
                      in-flight name: enqueued as a new file");
                orphans.push(file.clone());
            }
        }
    }
    Ok((orphans, failed))
}
