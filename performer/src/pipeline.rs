//! One item, end to end: take the file at its origin, download it into this attempt's
//! own staging file, hash it (pass 1), check the layout, load it (pass 2, one
//! transaction), back it up durably, delete exactly what was taken, finish the item.
//!
//! Every write names the attempt's token (see `shared::store::queue`); a heartbeat that finds
//! the lease lost cancels the attempt at once: an open load rolls back and nothing is
//! backed up, deleted, alerted or recorded by it.

mod committed;
mod fetch;
mod settle;
mod this_attempt;

use crate::context::Context;
use crate::error::ItemError;
use crate::lease::spawn_heartbeat;
use crate::metrics;
use fetch::{check_layout, download, file_facts, write_back_early};
use settle::back_up_and_finish;
use this_attempt::{Attempt, local_name};

use crate::kept::{KeptSource, Reuse};
use crate::origin::{self};
use crate::retry::{self, Decision};
use crate::step::{retried, retried_db};
use shared::local::paths::durable_move;
use shared::observe::alert::{self, Alert};
use shared::source::{Source, SourceError};
use shared::store::{attempt, audit, load};
use shared::types::AlertKind;
use shared::types::storable;
use shared::types::{AuditStatus, Claimed, Final, LoadOutcome, Unloaded};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::{Instrument, error, info, info_span, warn};

/// Processes one claimed item under its lease; never returns an error: every failure
/// ends in a retry or a `FALLO_SISTEMA`, recorded in the database, unless the attempt
/// lost its item, in which case it stops and changes nothing.
///
/// `kept` is the worker's connection to its origin, used again when it still answers;
/// `claim` is how long the claim took (the first step of the item's time).
pub async fn process(
    ctx: &Context,
    worker: &str,
    item: Claimed,
    kept: &mut KeptSource,
    claim: Duration,
) {
    let span = info_span!("item", work_item_id = item.id, file = %item.file_name,
                          attempt = item.attempts, token = item.token, %worker);
    async {
        let attempt = Attempt::new(ctx, &item, claim);
        let ended = {
            let lost = CancellationToken::new();
            // Aborted on drop too: an abandoned item must stop extending its lease.
            let _heartbeat = AbortOnDropHandle::new(spawn_heartbeat(ctx, &item, lost.clone()));
            let result = tokio::select! {
                result = handle(ctx, &item, &attempt, kept) => result,
                () = lost.cancelled() => Err(ItemError::LeaseLost),
            };
            // A failed item may have failed on its connection: the next one opens its own.
            match (&result, ctx.config.access().sftp.keep_idle().is_zero()) {
                (Ok(()), false) => kept.release(),
                _ => kept.discard().await,
            }
            match result {
                Ok(()) => Ok(()),
                Err(e) => Err(on_failure(ctx, &item, &attempt, e).await),
            }
        };
        // Whatever is left of this attempt's own copy is nobody's: a whole one was moved.
        // Except after a commit this attempt could not finish: then it is the verified copy
        // of what was loaded, which the next attempt backs up (`committed::earlier_copy`)
        // even if the file at the origin changed meanwhile; the close sweeps it once the
        // item is final.
        if !(ended.is_err() && attempt.committed.load(Ordering::SeqCst)) {
            let _ = std::fs::remove_file(&attempt.staged);
        }
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
            warn_if_lost(ours);
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
            warn_if_lost(ours);
        }
        Decision::GiveUp => {
            return give_up(ctx, item, attempt, message, retry::is_transient(e)).await;
        }
    }
    Ok(None)
}

/// Says so when a state change found the item no longer this attempt's.
fn warn_if_lost(ours: bool) {
    if !ours {
        warn!(
            "lease lost: the item is no longer this attempt's (taken back, or this very write went \
              through before its answer was lost); nothing more recorded"
        );
    }
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

async fn handle(
    ctx: &Context,
    item: &Claimed,
    attempt: &Attempt,
    kept: &mut KeptSource,
) -> Result<(), ItemError> {
    if item.attempts > item.max_attempts && !item.prior_status.is_final() {
        // Taken back after its performers vanished once too often.
        return Err(ItemError::Exhausted {
            attempts: item.attempts - 1,
        });
    }
    let access = ctx.config.access();
    let connecting = Instant::now();
    // Checked before the item uses it: a connection that died while idle costs a
    // reconnect here, never a step's tries or the item's attempt.
    let reuse = kept.reuse(&item.origin.url, access.sftp.keep_idle()).await;
    attempt.clock.connection(match reuse {
        Reuse::Reused => "kept",
        Reuse::Broken => "replaced",
        Reuse::None | Reuse::Expired => "new",
    });
    if reuse != Reuse::Reused {
        let source = retried(ctx, "connect", SourceError::is_transient, || {
            Source::for_origin(&access, &item.origin)
        })
        .await?;
        kept.keep(&item.origin.url, source);
    }
    attempt.clock.add("connect", connecting.elapsed());
    let source = kept.source().expect("kept just above");
    if item.prior_status.is_final() {
        committed::finish(ctx, item, attempt, source).await
    } else {
        handle_connected(ctx, item, attempt, source).await
    }
}

async fn handle_connected(
    ctx: &Context,
    item: &Claimed,
    attempt: &Attempt,
    source: &Source,
) -> Result<(), ItemError> {
    let clock = &attempt.clock;
    let taken = clock.time("take", origin::take(ctx, source, item)).await?;
    let bytes = clock
        .time("download", async {
            let bytes =
                download(ctx, source, &taken.name, &attempt.staged, taken.seen.mtime).await?;
            origin::check_unchanged(ctx, source, item, &taken, bytes).await?;
            Ok::<_, ItemError>(bytes)
        })
        .await?;
    shared::local::fault::pause("downloaded").await;
    let hashing = Instant::now();
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
    let layout = check_layout(&attempt.staged, facts.encoding).await?;
    clock.add("hash", hashing.elapsed());
    match layout {
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
            back_up_and_finish(ctx, item, attempt, source, &taken, &facts, Final::Failed).await
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
            clock.add("load", loading.elapsed());
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
