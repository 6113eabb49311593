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
mod committed;

use crate::origin::{self, Check, Loaded, Settled, Taken};
use crate::retry::{self, Decision};
use crate::step::retried;
use shared::feed::{LayoutError, VISITS};
use shared::local::paths::durable_move;
use shared::local::staged;
use shared::observe::alert::{self, Alert};
use shared::source::{RemoteName, Source, SourceError};
use shared::store::{attempt, audit, load, queue};
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
        let lost = CancellationToken::new();
        // Aborted on drop too: an abandoned item must stop extending its lease.
        let _heartbeat = AbortOnDropHandle::new(spawn_heartbeat(ctx, &item, lost.clone()));
        let attempt = Attempt::new(ctx, &item);
        let result = tokio::select! {
            result = handle(ctx, &item, &attempt) => result,
            () = lost.cancelled() => Err(ItemError::LeaseLost),
        };
        if let Err(e) = result {
            on_failure(ctx, &item, &attempt, e).await;
        }
        // Whatever is left of this attempt's own copy is nobody's: a whole one was moved.
        let _ = std::fs::remove_file(&attempt.staged);
    }
    .instrument(span)
    .await
}

async fn on_failure(ctx: &Context, item: &Claimed, attempt: &Attempt, e: ItemError) {
    let message = storable::message(&e.to_string()).into_owned();
    let outcome = async {
        let mut committed = attempt.committed.load(Ordering::SeqCst);
        let mut decision = retry::decide(&e, item.attempts, item.max_attempts, committed);
        if decision == Decision::GiveUp {
            // A load whose COMMIT acknowledgement was lost on its last try did commit:
            // such an item is never made a failure.
            let client = ctx.pool.get().await?;
            if audit::committed_outcome(&client, item.into())
                .await?
                .is_some()
            {
                committed = true;
                decision = retry::decide(&e, item.attempts, item.max_attempts, committed);
            }
        }
        match decision {
            Decision::Abandon => {
                warn!(error = %message, "this attempt lost its item: it changes nothing more");
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
                    message.clone()
                };
                let mut client = ctx.pool.get().await?;
                if !attempt::retry_later(&mut client, item, &message, delay).await? {
                    warn!("lease lost: the item was taken back; nothing recorded");
                }
            }
            Decision::GiveUp => {
                give_up(ctx, item, attempt, &message, retry::is_transient(&e)).await?
            }
        }
        Ok::<_, ItemError>(())
    };
    if let Err(e) = outcome.await {
        // The lease will expire and another attempt will pick the item up.
        error!(error = %e, "could not record the failure");
    }
}

/// Tier 3: `FALLO_SISTEMA`, the item failed, the alert; a verified whole copy waits in
/// quarantine (a partial one never does: the origin keeps the file).
async fn give_up(
    ctx: &Context,
    item: &Claimed,
    attempt: &Attempt,
    message: &str,
    transient: bool,
) -> Result<(), ItemError> {
    let copy = attempt.verified.lock().expect("not poisoned").clone();
    let quarantined = if copy.is_some() && attempt.staged.exists() {
        let to = ctx.dirs.quarantine().join(local_name(item));
        match durable_move(&attempt.staged, &to) {
            Ok(()) => Some(to),
            Err(e) => {
                error!(error = %e, "could not move the local copy to quarantine");
                None
            }
        }
    } else {
        None
    };
    let mut client = ctx.pool.get().await?;
    let at = quarantined.as_ref().map(|to| to.display().to_string());
    if !attempt::fail(&mut client, item, message, copy.as_ref(), at.as_deref()).await? {
        if let Some(to) = quarantined {
            let _ = std::fs::remove_file(to);
        }
        warn!("lease lost: the item was taken back; no failure recorded");
        return Ok(());
    }
    error!(error = %message, attempt = item.attempts, transient,
           "FALLO_SISTEMA: the item will not be retried automatically today");
    metrics::file_finished(AuditStatus::FalloSistema);
    let alert = Alert::new(AuditStatus::FalloSistema.as_str(), message).about(
        &item.file_name,
        item.bitacora_id,
        item.id,
    );
    alert::send(&ctx.config.alerts, &alert).await;
    Ok(())
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
        committed::finish(ctx, item, attempt, &source).await
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
    if let Some(prefix) = &item.loaded_prefix {
        committed::begins_with(&attempt.staged, item, prefix).await?;
    }
    write_back_early(&attempt.staged);
    match check_layout(&attempt.staged, facts.encoding).await? {
        Err(layout) => {
            let message = storable::message(&format!("{}: {layout}", item.file_name)).into_owned();
            let client = ctx.pool.get().await?;
            if !audit::record_unloaded(&client, item.into(), &facts, Unloaded::Layout, &message)
                .await?
            {
                return Err(ItemError::LeaseLost);
            }
            attempt.committed.store(true, Ordering::SeqCst);
            warn!(error = %message, "FALLO_LAYOUT: nothing loaded; the file goes to quarantine");
            metrics::file_finished(AuditStatus::FalloLayout);
            let alert = Alert::new(AuditStatus::FalloLayout.as_str(), &message).about(
                &item.file_name,
                item.bitacora_id,
                item.id,
            );
            alert::send(&ctx.config.alerts, &alert).await;
            back_up_and_finish(ctx, item, attempt, source, &taken, &facts, Final::Failed).await
        }
        Ok(()) => {
            let loading = Instant::now();
            let outcome = retried(ctx, "load (rolled back)", retry::is_transient, || async {
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
                          encoding = facts.encoding.label(), "load committed");
                    if let Some(prefix) = &item.loaded_prefix {
                        let message = format!(
                            "{}: its first {} bytes were loaded by bitacora_control.id = {}; only \
                             the lines after them were loaded here",
                            item.file_name, prefix.bytes, prefix.loaded_by
                        );
                        let client = ctx.pool.get().await?;
                        if !audit::record_note(&client, item.into(), &message).await? {
                            return Err(ItemError::LeaseLost);
                        }
                    }
                }
                LoadOutcome::Duplicate { of } => {
                    metrics::file_finished(AuditStatus::Duplicado);
                    info!(status = %AuditStatus::Duplicado, duplicate_of = of,
                          "content already loaded; nothing loaded")
                }
            }
            back_up_and_finish(ctx, item, attempt, source, &taken, &facts, Final::Done).await
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

/// Where the item's local copy goes: `backup/YYYYMMDD/` of its business day (loaded),
/// or `quarantine/` (layout failure), as `<bitacora_id>-<name>`.
fn local_copy_path(ctx: &Context, item: &Claimed, state: Final) -> PathBuf {
    let dir = match state {
        Final::Done => ctx.dirs.backup_day(item.business_date),
        Final::Failed => ctx.dirs.quarantine(),
    };
    dir.join(local_name(item))
}

/// Moves the staged copy (what was loaded) to backup or quarantine, durably, and records
/// where (fenced); returns the place.
async fn back_up(
    ctx: &Context,
    item: &Claimed,
    attempt: &Attempt,
    state: Final,
) -> Result<PathBuf, ItemError> {
    let to = local_copy_path(ctx, item, state);
    let backing_up = Instant::now();
    still_ours(ctx, item).await?;
    durable_move(&attempt.staged, &to).map_err(ItemError::disk(format!(
        "moving the file to {}",
        to.display()
    )))?;
    metrics::stage("backup", backing_up.elapsed());
    let client = ctx.pool.get().await?;
    if !audit::record_local_copy(&client, item.into(), &to.display().to_string()).await? {
        return Err(ItemError::LeaseLost);
    }
    Ok(to)
}

/// What was read (loaded, or quarantined after a layout failure) goes to the backup (or
/// quarantine), then the file at the origin is settled and the item made final.
async fn back_up_and_finish(
    ctx: &Context,
    item: &Claimed,
    attempt: &Attempt,
    source: &Source,
    taken: &Taken,
    facts: &FileFacts,
    state: Final,
) -> Result<(), ItemError> {
    let loaded = Loaded {
        sha256: facts.sha256.clone(),
        size: facts.size as u64,
    };
    let local = back_up(ctx, item, attempt, state).await?;
    finish_at_origin(
        ctx,
        item,
        source,
        taken,
        &loaded,
        state,
        Check::ByMode,
        &local,
    )
    .await
}

/// After the backup (at `local`): the file at the origin is settled (deleted only if it
/// is still what was loaded; see `origin::settle`) and the item made final.
#[allow(clippy::too_many_arguments)]
async fn finish_at_origin(
    ctx: &Context,
    item: &Claimed,
    source: &Source,
    taken: &Taken,
    loaded: &Loaded,
    state: Final,
    check: Check,
    local: &Path,
) -> Result<(), ItemError> {
    shared::local::fault::pause("before_delete").await;
    let settled = origin::settle(ctx, source, item, taken, loaded, state, check).await?;
    let client = ctx.pool.get().await?;
    if !queue::finish(&client, item, state, None).await? {
        return Err(ItemError::LeaseLost);
    }
    let what = match settled {
        Settled::Deleted => "deleted at the origin; item finished",
        Settled::SetAside(_) => "left at the origin for an operator; item finished",
        Settled::LeftAsNew => "replaced at the origin since it was read, left there; item finished",
    };
    info!(local_copy = %local.display(), "{what}");
    Ok(())
}
