//! One item, end to end: take the file at its origin, download it into this attempt's
//! own staging file, hash it (pass 1), check the layout, load it (pass 2, one
//! transaction), back it up durably, delete exactly what was taken, finish the item.
//!
//! Every write names the attempt's token (see `shared::store::queue`); a heartbeat that finds
//! the lease lost cancels the attempt at once: an open load rolls back and nothing is
//! backed up, deleted, alerted or recorded by it.

use crate::context::Context;
use crate::error::ItemError;
use crate::lease::{spawn_heartbeat, still_ours};
use crate::metrics;
use crate::origin::{self, Taken};
use crate::retry::{self, Decision};
use crate::step::{retried, retried_db};
use shared::feed::{LayoutError, VISITS};
use shared::local::paths::durable_move;
use shared::local::staged;
use shared::observe::alert::{self, Alert};
use shared::source::{RemoteName, Source, SourceError};
use shared::store::{attempt, audit, load, queue};
use shared::types::AlertKind;
use shared::types::storable;
use shared::types::{AuditStatus, Claimed, Encoding, FileFacts, Final, LoadOutcome, Unloaded};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::{Instrument, error, info, info_span, warn};

/// One attempt's own things: its staging file, and what it has proven so far.
struct Attempt {
    /// `staging/<item>-<token>-<name>`: created exclusively, used by this attempt alone.
    staged: PathBuf,
    /// The staged copy is whole (its size checked against the origin): what pass 1 found.
    verified: Mutex<Option<FileFacts>>,
    /// The item's load committed (in this attempt or an earlier one).
    committed: AtomicBool,
    /// Where this attempt's tier 3 put the staged copy, once moved (a failure recorded
    /// again after an outage names the same copy).
    quarantined: Mutex<Option<PathBuf>>,
}

impl Attempt {
    fn new(ctx: &Context, item: &Claimed) -> Self {
        Self {
            staged: ctx.dirs.staging().join(format!(
                "{}-{}-{}",
                item.id,
                item.token,
                file_part(item)
            )),
            verified: Mutex::new(None),
            committed: AtomicBool::new(item.prior_status.is_final()),
            quarantined: Mutex::new(None),
        }
    }
}

/// Processes one claimed item under its lease; never returns an error: every failure
/// ends in a retry or a `FALLO_SISTEMA`, recorded in the database, unless the attempt
/// lost its item, in which case it stops and changes nothing.
pub async fn process(ctx: &Context, worker: &str, item: Claimed) {
    let span = info_span!("item", work_item_id = item.id, file = %item.file_name,
                          attempt = item.attempts, token = item.token, %worker);
    async {
        let attempt = Attempt::new(ctx, &item);
        let ended = {
            let lost = CancellationToken::new();
            // Aborted on drop too: an abandoned item must stop extending its lease.
            let _heartbeat = AbortOnDropHandle::new(spawn_heartbeat(ctx, &item, lost.clone()));
            let result = tokio::select! {
                result = handle(ctx, &item, &attempt) => result,
                () = lost.cancelled() => Err(ItemError::LeaseLost),
            };
            match result {
                Ok(()) => Ok(()),
                Err(e) => Err(on_failure(ctx, &item, &attempt, e).await),
            }
        };
        // Whatever is left of this attempt's own copy is nobody's: a whole one was moved.
        let _ = std::fs::remove_file(&attempt.staged);
        // The item is final and its heartbeat stopped (it would take a final item for a
        // lost lease): its alert, or what the file changes for its feed's alerts.
        match ended {
            Ok(()) => crate::watch::after_file(ctx, &item).await,
            Err(Some(failed)) => alert::raise(&ctx.db, &ctx.config, failed).await,
            Err(None) => {}
        }
    }
    .instrument(span)
    .await
}

/// Records what a failed attempt leads to (`retry::decide`); returns the alert of a
/// `FALLO_SISTEMA`, raised once the item's heartbeat has stopped. When the database is
/// away even that cannot be written: it is tried again as soon as the database answers,
/// for as long as the lease could still be this attempt's (then a rescue hands the item
/// back), so the item never waits out its lease for nothing.
async fn on_failure(
    ctx: &Context,
    item: &Claimed,
    attempt: &Attempt,
    e: ItemError,
) -> Option<Alert> {
    let message = storable::message(&e.to_string()).into_owned();
    let deadline = Instant::now() + ctx.config.lease();
    let mut waits = backon::BackoffBuilder::build(ctx.outage_backoff());
    loop {
        match record_failure(ctx, item, attempt, &e, &message).await {
            Ok(alert) => return alert,
            Err(lost) if retry::is_outage(&lost) && Instant::now() < deadline => {
                let wait = waits.next().unwrap_or(Duration::from_secs(5));
                warn!(error = %lost, retry_in_ms = wait.as_millis() as u64,
                      "could not record the failure: the database is away; trying again as soon as it answers");
                tokio::time::sleep(wait).await;
            }
            Err(lost) => {
                // The lease will expire and another attempt will pick the item up.
                error!(error = %lost, "could not record the failure");
                return None;
            }
        }
    }
}

async fn record_failure(
    ctx: &Context,
    item: &Claimed,
    attempt: &Attempt,
    e: &ItemError,
    message: &str,
) -> Result<Option<Alert>, ItemError> {
    let mut committed = attempt.committed.load(Ordering::SeqCst);
    let mut decision = retry::decide(e, item.attempts, item.max_attempts, committed);
    if decision == Decision::GiveUp {
        // A load whose COMMIT acknowledgement was lost on its last try did commit:
        // such an item is never made a failure.
        let outcome = retried_db(ctx, "check for a commit", || async {
            Ok(audit::committed_outcome(&ctx.pool.get().await?, item.into()).await?)
        })
        .await?;
        if outcome.is_some() {
            committed = true;
            decision = retry::decide(e, item.attempts, item.max_attempts, committed);
        }
    }
    match decision {
        Decision::Abandon => {
            warn!(error = %message, "this attempt lost its item: it changes nothing more");
        }
        Decision::HandBack => {
            warn!(error = %message, "the database was away too long for this attempt: the item goes \
                  back to the queue now, without using an attempt");
            let why = format!("handed back, no attempt used: the database was away ({message})");
            let ours = retried_db(ctx, "hand back", || async {
                Ok(attempt::give_back(&mut ctx.pool.get().await?, item, &why).await?)
            })
            .await?;
            if !ours {
                warn!(
                    "lease lost: the item is no longer this attempt's (taken back, or this very write went \
                      through before its answer was lost); nothing more recorded"
                );
            }
        }
        Decision::RetryLater => {
            let delay = Duration::from_secs(ctx.config.performer.retry_delay_secs);
            let what = if committed {
                "loaded; the backup and the delete at the origin will be retried"
            } else {
                "attempt failed; the item will be retried"
            };
            warn!(error = %message, attempt = item.attempts, max_attempts = item.max_attempts,
                  retry_in_secs = delay.as_secs(), next_attempt_at = %(chrono::Utc::now() + delay), "{what}");
            metrics::retry("2");
            let message = if committed {
                format!("loaded; left to do: backup and delete at the origin ({message})")
            } else {
                message.to_string()
            };
            let ours = retried_db(ctx, "retry later", || async {
                Ok(attempt::retry_later(&mut ctx.pool.get().await?, item, &message, delay).await?)
            })
            .await?;
            if !ours {
                warn!(
                    "lease lost: the item is no longer this attempt's (taken back, or this very write went \
                      through before its answer was lost); nothing more recorded"
                );
            }
        }
        Decision::GiveUp => {
            return give_up(ctx, item, attempt, message, retry::is_transient(e)).await;
        }
    }
    Ok(None)
}

/// Tier 3: `FALLO_SISTEMA` and the item failed (returning its alert); a verified whole
/// copy waits in quarantine (a partial one never does: the origin keeps the file).
async fn give_up(
    ctx: &Context,
    item: &Claimed,
    attempt: &Attempt,
    message: &str,
    transient: bool,
) -> Result<Option<Alert>, ItemError> {
    let copy = attempt.verified.lock().expect("not poisoned").clone();
    let moved = attempt.quarantined.lock().expect("not poisoned").clone();
    let quarantined = match moved {
        Some(to) => Some(to),
        None if copy.is_some() && attempt.staged.exists() => {
            let to = ctx.dirs.quarantine().join(local_name(item));
            match durable_move(&attempt.staged, &to) {
                Ok(()) => {
                    *attempt.quarantined.lock().expect("not poisoned") = Some(to.clone());
                    Some(to)
                }
                Err(e) => {
                    error!(error = %e, "could not move the local copy to quarantine");
                    None
                }
            }
        }
        None => None,
    };
    let at = quarantined.as_ref().map(|to| to.display().to_string());
    let ours = retried_db(ctx, "record the failure", || async {
        let mut client = ctx.pool.get().await?;
        Ok(attempt::fail(&mut client, item, message, copy.as_ref(), at.as_deref()).await?)
    })
    .await?;
    if !ours {
        if let Some(to) = quarantined {
            let _ = std::fs::remove_file(to);
        }
        warn!("lease lost: the item was taken back; no failure recorded");
        return Ok(None);
    }
    error!(error = %message, attempt = item.attempts, transient,
           "FALLO_SISTEMA: the item will not be retried automatically today");
    metrics::file_finished(AuditStatus::FalloSistema);
    Ok(Some(
        Alert::new(AlertKind::FalloSistema, message)
            .about(&item.file_name, item.bitacora_id, item.id)
            .on(item.business_date),
    ))
}

fn file_part(item: &Claimed) -> String {
    RemoteName::parse(&item.file_name).map_or_else(|_| "unsafe-name".into(), |n| n.to_string())
}

/// The local copy's name in backup or quarantine: `<bitacora_id>-<name>`.
fn local_name(item: &Claimed) -> String {
    format!("{}-{}", item.bitacora_id, file_part(item))
}

async fn handle(ctx: &Context, item: &Claimed, attempt: &Attempt) -> Result<(), ItemError> {
    if item.attempts > item.max_attempts && !item.prior_status.is_final() {
        // Taken back after its performers vanished once too often.
        return Err(ItemError::Exhausted {
            attempts: item.attempts - 1,
        });
    }
    let access = ctx.config.access();
    let source = retried(ctx, "connect", SourceError::is_transient, || {
        Source::for_origin(&access, &item.origin)
    })
    .await?;
    let result = if item.prior_status.is_final() {
        finish_committed(ctx, item, attempt, &source).await
    } else {
        handle_connected(ctx, item, attempt, &source).await
    };
    source.close().await;
    result
}

async fn handle_connected(
    ctx: &Context,
    item: &Claimed,
    attempt: &Attempt,
    source: &Source,
) -> Result<(), ItemError> {
    let taken = origin::take(ctx, source, item).await?;
    let bytes = download(ctx, source, &taken.name, &attempt.staged).await?;
    origin::check_unchanged(ctx, source, item, &taken, bytes).await?;
    shared::local::fault::pause("downloaded").await;
    let facts = file_facts(item, &attempt.staged).await?;
    if facts.size as u64 != bytes {
        return Err(ItemError::Unsettled(format!(
            "{}: the staged copy holds {} bytes, {bytes} were downloaded",
            item.file_name, facts.size
        )));
    }
    *attempt.verified.lock().expect("not poisoned") = Some(facts.clone());
    write_back_early(&attempt.staged);
    match check_layout(&attempt.staged, facts.encoding).await? {
        Err(layout) => {
            let message = storable::message(&format!("{}: {layout}", item.file_name)).into_owned();
            let recorded =
                retried_db(ctx, "record the layout failure", || async {
                    let client = ctx.pool.get().await?;
                    Ok(audit::record_unloaded(
                        &client,
                        item.into(),
                        &facts,
                        Unloaded::Layout,
                        &message,
                    )
                    .await?)
                })
                .await?;
            if !recorded {
                return Err(ItemError::LeaseLost);
            }
            attempt.committed.store(true, Ordering::SeqCst);
            warn!(error = %message, "FALLO_LAYOUT: nothing loaded; the file goes to quarantine");
            metrics::file_finished(AuditStatus::FalloLayout);
            let alert = Alert::new(AlertKind::FalloLayout, &message)
                .about(&item.file_name, item.bitacora_id, item.id)
                .on(item.business_date);
            alert::raise(&ctx.db, &ctx.config, alert).await;
            set_aside(ctx, item, attempt, source, &taken, Final::Failed).await
        }
        Ok(()) => {
            let loading = Instant::now();
            let outcome = retried_db(ctx, "load (rolled back)", || async {
                let mut client = ctx.pool.get().await?;
                let batch_rows = ctx.config.performer.batch_rows;
                Ok::<_, ItemError>(
                    load::load_file(
                        &mut client,
                        item,
                        &facts,
                        &attempt.staged,
                        batch_rows,
                        ctx.config.lease(),
                    )
                    .await?,
                )
            })
            .await?;
            attempt.committed.store(true, Ordering::SeqCst);
            metrics::stage("load", loading.elapsed());
            shared::local::fault::pause("after_commit").await;
            match &outcome {
                LoadOutcome::Loaded(counts) => {
                    metrics::file_finished(counts.status());
                    metrics::rows(counts.valid, counts.rejected);
                    info!(status = %counts.status(), valid = counts.valid, rejected = counts.rejected,
                          new_visitors = counts.new_visitors, updated_visitors = counts.updated_visitors,
                          encoding = facts.encoding.label(), "load committed")
                }
                LoadOutcome::Duplicate { of } => {
                    metrics::file_finished(AuditStatus::Duplicado);
                    info!(status = %AuditStatus::Duplicado, duplicate_of = of,
                          "content already loaded; nothing loaded")
                }
            }
            set_aside(ctx, item, attempt, source, &taken, Final::Done).await
        }
    }
}

/// Pass 1 over the staged file: SHA-256, size and encoding, without holding it in memory.
async fn file_facts(item: &Claimed, staged: &Path) -> Result<FileFacts, ItemError> {
    let (path, started) = (staged.to_path_buf(), Instant::now());
    let print = tokio::task::spawn_blocking(move || staged::fingerprint(&path))
        .await
        .expect("hashing does not panic")
        .map_err(ItemError::disk("reading the staged file"))?;
    info!(
        ms = started.elapsed().as_millis() as u64,
        encoding = print.encoding.label(),
        "hashed"
    );
    Ok(FileFacts {
        sha256: print.sha256,
        size: print.size as i64,
        encoding: print.encoding,
        business_date: item.business_date,
    })
}

/// Starts writing the staged file to disk while it loads, so the fsync of its durable
/// move to backup, after the commit, has little left to write. Only a head start, and
/// it neither waits nor checks: `sync_file_range(SYNC_FILE_RANGE_WRITE)` consumes no
/// write error, so that move's own fsync still sees any (an `fsync` here would report a
/// failed writeback to this handle only, and the backup's would then pass).
fn write_back_early(staged: &Path) {
    use std::os::fd::AsRawFd;
    let staged = staged.to_path_buf();
    // Off the async threads: starting write-out can wait for the device's queue.
    tokio::task::spawn_blocking(move || {
        if let Ok(file) = std::fs::File::open(staged) {
            // SAFETY: a valid descriptor, owned by `file` for the duration of the call.
            unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
        }
    });
}

/// The header check (docs/data-contract.md §3), reading only the first line(s).
async fn check_layout(
    staged: &Path,
    encoding: Encoding,
) -> Result<Result<(), LayoutError>, ItemError> {
    let path = staged.to_path_buf();
    tokio::task::spawn_blocking(move || staged::check_layout(&path, encoding, &VISITS))
        .await
        .expect("reading a line does not panic")
        .map_err(ItemError::disk("reading the staged file"))
}

/// Downloads `name` into this attempt's staging file; returns the bytes written.
async fn download(
    ctx: &Context,
    source: &Source,
    name: &RemoteName,
    staged: &Path,
) -> Result<u64, ItemError> {
    let started = Instant::now();
    let downloaded = retried(ctx, "download", SourceError::is_transient, || async {
        // Each try starts from nothing: a partial download is not a copy of anything.
        let _ = tokio::fs::remove_file(staged).await;
        source.download(name, staged).await
    })
    .await;
    let bytes = match downloaded {
        Ok(bytes) => bytes,
        Err(e) => {
            let _ = tokio::fs::remove_file(staged).await;
            return Err(e.into());
        }
    };
    metrics::stage("download", started.elapsed());
    let secs = started.elapsed().as_secs_f64();
    info!(
        bytes,
        ms = (secs * 1000.0) as u64,
        mb_per_s = bytes as f64 / 1e6 / secs.max(1e-9),
        "downloaded"
    );
    Ok(bytes)
}

/// An earlier attempt committed and stopped before the end: finish the backup and the delete.
async fn finish_committed(
    ctx: &Context,
    item: &Claimed,
    attempt: &Attempt,
    source: &Source,
) -> Result<(), ItemError> {
    let state = if item.prior_status == AuditStatus::FalloLayout {
        Final::Failed
    } else {
        Final::Done
    };
    info!(status = %item.prior_status, "already committed by an earlier attempt; finishing backup and delete");
    let Some(taken) = origin::find_committed(ctx, source, item).await? else {
        // Gone from the origin, which happens only after the local copy was durable.
        finish(ctx, item, state).await?;
        info!("already gone from the origin; item finished");
        return Ok(());
    };
    let mut taken = taken;
    let mut bytes = download(ctx, source, &taken.name, &attempt.staged).await?;
    let found = file_facts(item, &attempt.staged).await?.sha256;
    if let Some(loaded) = item.prior_sha256.as_ref().filter(|l| **l != found) {
        // Written to after the load (a sender still holding it open). If what was loaded
        // is its beginning, that is backed up, and the whole file is set aside at the
        // origin for an operator; otherwise it is set aside untouched. Never retried forever.
        let loaded_size = item.prior_size.unwrap_or_default().max(0) as u64;
        let prefix = truncated_copy_matches(&attempt.staged, loaded_size, loaded).await?;
        taken.seen.size = loaded_size; // what was loaded: the rest is not to be deleted
        if !prefix {
            warn!(
                found,
                loaded, "the file at the origin is not what was loaded; set aside"
            );
            origin::delete(ctx, source, item, &taken).await?;
            return finish(ctx, item, state).await;
        }
        bytes = loaded_size;
    }
    if bytes != taken.seen.size {
        return Err(ItemError::Unsettled(format!(
            "{}: {bytes} bytes read of {}",
            taken.name, taken.seen.size
        )));
    }
    set_aside(ctx, item, attempt, source, &taken, state).await
}

/// Cuts the staged copy to its first `size` bytes if their SHA-256 is `sha256` (a file
/// appended to after its load): then the copy is what was loaded.
async fn truncated_copy_matches(staged: &Path, size: u64, sha256: &str) -> Result<bool, ItemError> {
    let (path, want) = (staged.to_path_buf(), sha256.to_string());
    tokio::task::spawn_blocking(move || -> std::io::Result<bool> {
        let same = shared::local::hash::file_prefix_sha256(&path, size)? == want;
        if same {
            let file = std::fs::OpenOptions::new().write(true).open(&path)?;
            file.set_len(size)?;
            file.sync_all()?;
        }
        Ok(same)
    })
    .await
    .expect("hashing does not panic")
    .map_err(ItemError::disk(
        "checking the staged copy against what was loaded",
    ))
}

/// Moves the staged file to backup (loaded) or quarantine (layout failure), durably,
/// then deletes exactly what was taken at the origin and makes the item final.
async fn set_aside(
    ctx: &Context,
    item: &Claimed,
    attempt: &Attempt,
    source: &Source,
    taken: &Taken,
    state: Final,
) -> Result<(), ItemError> {
    let dir = match state {
        Final::Done => ctx.dirs.backup_day(item.business_date),
        Final::Failed => ctx.dirs.quarantine(),
    };
    let to = dir.join(local_name(item));
    let backing_up = Instant::now();
    still_ours(ctx, item).await?;
    durable_move(&attempt.staged, &to).map_err(ItemError::disk(format!(
        "moving the file to {}",
        to.display()
    )))?;
    metrics::stage("backup", backing_up.elapsed());
    let at = to.display().to_string();
    let recorded = retried_db(ctx, "record the local copy", || async {
        Ok(audit::record_local_copy(&ctx.pool.get().await?, item.into(), &at).await?)
    })
    .await?;
    if !recorded {
        return Err(ItemError::LeaseLost);
    }
    shared::local::fault::pause("before_delete").await;
    still_ours(ctx, item).await?;
    origin::delete(ctx, source, item, taken).await?;
    finish(ctx, item, state).await?;
    info!(local_copy = %to.display(), "deleted at the origin; item finished");
    Ok(())
}

/// Makes the item final (fenced; waited through an outage, and a repeat after a lost
/// COMMIT acknowledgement finds it made so by this attempt).
async fn finish(ctx: &Context, item: &Claimed, state: Final) -> Result<(), ItemError> {
    let finished = retried_db(ctx, "finish the item", || async {
        Ok(queue::finish(&ctx.pool.get().await?, item, state, None).await?)
    })
    .await?;
    if finished {
        Ok(())
    } else {
        Err(ItemError::LeaseLost)
    }
}
