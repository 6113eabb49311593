//! `dispatcher run`: list the origin twice, enqueue complete new files, retry
//! yesterday's system failures (tier 4), wait for the queue to drain (bounded),
//! close the day and print its summary.
//!
//! Concurrency: the whole run holds the dispatcher's lock (`crate::lock`, shared with
//! `dispatcher close`); a second run started meanwhile says so and exits 0.
//! The unique listing key of `work_items` would stop a double enqueue anyway.

use crate::listing::{Verdict, classify};
use crate::{close, summary};
use chrono::{NaiveDate, Utc};
use regex::Regex;
use shared::config::Config;
use shared::observe::alert::{self, Alert};
use shared::source::{RemoteFile, Source};
use shared::store::alerts::Which;
use shared::store::locks::Lease;
use shared::store::runs::{self, RunCounts};
use shared::store::{attempt, queue, reports};
use shared::types::{AlertKind, AuditStatus, ItemStand, ItemState, NewItem};
use sqlx::PgPool;
use std::time::Duration;
use tracing::{error, info, warn};

/// How a run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Another run holds the lock.
    Busy,
    /// Every item reached a final state (or waiting was not asked for).
    Drained,
    /// The deadline passed with items still open.
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
    let (mut ready, failed_ids) = sort_in_flight(pool, &listed).await?;
    // Orphans too: an orphan's own item may have failed before taking it (tier 4 by identity).
    let at_origin: Vec<NewItem> = listed.ready.iter().chain(&ready).cloned().collect();
    let (retried, waiting) = attempt::retry_system_failures(
        pool,
        run_id,
        &at_origin,
        &failed_ids,
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
        skipped: listed.ignored + listed.incomplete + known,
        ignored: listed.ignored,
        incomplete: listed.incomplete,
        known,
        retried: retried.len() as i32,
        waiting_operator: waiting as i32,
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
        "dispatch finished"
    );
    println!(
        "dispatch run {run_id}: {} listed, {} enqueued, {} retried (tier 4), {} already known, \
         {} incomplete, {} ignored, {} waiting for an operator",
        listed.listed,
        enqueued.len(),
        retried.len(),
        known,
        listed.incomplete,
        listed.ignored,
        waiting
    );
    if !wait {
        finish(pool, run_id, None, "enqueued").await?;
        return Ok(Outcome::Drained);
    }

    let drained = wait_for_drain(config, pool).await?;
    let closed = close::close_day(config, pool, today, lease).await?;
    let lines = reports::day(pool, today).await?;
    let table = summary::render(today, &lines);
    info!(summary = %table, zips = closed.zips, archived = closed.archived_files,
          staging_removed = closed.staging_removed, "day closed");
    print!("{table}");
    println!("{}", closed.describe());
    let message = if drained {
        "drained"
    } else {
        "NOT drained before the deadline"
    };
    finish(pool, run_id, Some(drained), message).await?;
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
    alert::resolve(
        pool,
        config,
        Which::Service(AlertKind::NocheSinDrenar),
        &drained,
    )
    .await;
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

/// Two listings `stability_window` apart; only files unchanged and old enough are ready.
async fn list_complete(config: &Config, pool: &PgPool) -> anyhow::Result<Listed> {
    let pattern = Regex::new(&format!("^(?:{})$", config.source.pattern))?;
    let origin = config.source.url.origin();
    let source = Source::connect(&config.access()).await?;
    // The database's clock: it is compared with the items' `updated_at`.
    let listed_at: chrono::DateTime<Utc> = shared::store::connect::database_now(pool).await?;
    let first = source.list().await?;
    tokio::time::sleep(Duration::from_secs(config.source.stability_window_secs)).await;
    let second = source.list().await?;
    let min_age = Duration::from_secs(config.source.min_file_age_secs);
    let mut listed = Listed {
        listed: first.len() as i32,
        listed_at,
        ..Listed::default()
    };
    let item = |file: &RemoteFile, file_name: &str| NewItem {
        origin: origin.clone(),
        source_name: file.name.clone(),
        file_name: file_name.to_string(),
        source_path: source.path_of(&file.name),
        size: file.size,
        mtime: file.mtime,
    };
    for (file, verdict) in classify(&first, &second, &pattern, Utc::now(), min_age) {
        match verdict {
            Verdict::Ready => listed.ready.push(item(&file, &file.name)),
            Verdict::InFlight { item_id, name } => {
                listed.in_flight.push((item_id, item(&file, &name)));
            }
            Verdict::Ignored => listed.ignored += 1,
            Verdict::Unsafe(reason) => {
                warn!(%reason, "file name refused");
                listed.ignored += 1;
            }
            Verdict::TooRecent | Verdict::Changing => {
                info!(file = %file.name, ?verdict, "not complete yet; a later run will take it");
                listed.incomplete += 1;
            }
        }
    }
    source.close().await;
    Ok(listed)
}

/// Waits until no item is pending or running, or the deadline passes; on a terminal
/// a progress bar shows the open items (scripts and journald see nothing of it).
async fn wait_for_drain(config: &Config, pool: &PgPool) -> sqlx::Result<bool> {
    let open = async || queue::open_items(pool).await;
    crate::progress::drain("waiting for the performers", config, open).await
}

/// Files found under an item's in-flight name: left alone while the item is open (or
/// changed since the listing began: it may have just finished with that file); the
/// item's own tier 4 when it failed as `FALLO_SISTEMA` (returned as ids); left to the
/// operator when discarded; anything else is an orphan (an attempt stopped after taking
/// it, a stale one took it, or an operator retried the item from a quarantined copy)
/// and is enqueued as a new file: loaded, or `DUPLICADO` if its content already was.
async fn sort_in_flight(pool: &PgPool, listed: &Listed) -> sqlx::Result<(Vec<NewItem>, Vec<i64>)> {
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
                failed.push(*id)
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
