//! One item, start to finish: download → SHA-256 → decode → validate → one load
//! transaction → durable local copy → delete at the origin → item final.
//!
//! Order matters (SPEC §5, invariant 3): commit, then durable backup, then delete.
//! An item claimed again after a crash past the commit only finishes the last steps.

use crate::error::ItemError;
use crate::metrics;
use backon::{ExponentialBuilder, Retryable};
use chrono::NaiveDate;
use chrono_tz::Tz;
use deadpool_postgres::Pool;
use shared::alert::{self, Alert};
use shared::audit::{self, FileFacts, Unloaded};
use shared::business_date::business_date;
use shared::config::Config;
use shared::feed::{self, LayoutError, VISITS};
use shared::load::{self, LoadOutcome};
use shared::paths::{Dirs, durable_move};
use shared::queue::{self, Claimed, Final};
use shared::source::{RemoteName, Source, SourceError};
use shared::storable;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::task::AbortOnDropHandle;
use tracing::{Instrument, error, info, info_span, warn};

/// What every worker of a performer shares.
pub struct Context {
    /// The configuration.
    pub config: Config,
    /// Local directories.
    pub dirs: Dirs,
    /// The performer's database pool.
    pub pool: Pool,
    /// `--as-of`, if given.
    pub as_of: Option<NaiveDate>,
    /// Business time zone.
    pub tz: Tz,
}

impl Context {
    fn business_date(&self) -> NaiveDate {
        business_date(self.as_of, self.tz)
    }

    /// Tier 1: in-place retries of one network or database step, exponential with jitter.
    fn step_backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.config.performer.step_backoff_ms))
            .with_max_times(self.config.performer.step_tries.saturating_sub(1))
            .with_jitter()
    }
}

/// Processes one claimed item under its lease; never returns an error: every
/// failure ends in a retry or a `FALLO_SISTEMA`, recorded in the database.
pub async fn process(ctx: &Context, worker: &str, item: Claimed) {
    let span =
        info_span!("item", work_item_id = item.id, file = %item.file_name, attempt = item.attempts);
    async {
        // Aborted on drop too: an abandoned item must stop extending its lease.
        let _heartbeat = AbortOnDropHandle::new(spawn_heartbeat(ctx, worker, item.id));
        let result = handle(ctx, &item).await;
        if let Err(e) = result {
            on_failure(ctx, &item, e).await;
        }
    }
    .instrument(span)
    .await
}

fn spawn_heartbeat(ctx: &Context, worker: &str, id: i64) -> tokio::task::JoinHandle<()> {
    let (pool, worker, lease) = (ctx.pool.clone(), worker.to_string(), ctx.config.lease());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(lease / 3).await;
            let beat = async {
                queue::heartbeat(&pool.get().await?, id, &worker, lease)
                    .await
                    .map_err(ItemError::from)
            };
            match beat.await {
                Ok(true) => {}
                Ok(false) => warn!(
                    work_item_id = id,
                    "lease lost: another performer took the item back"
                ),
                Err(e) => warn!(work_item_id = id, error = %e, "heartbeat failed"),
            }
        }
    })
}

async fn on_failure(ctx: &Context, item: &Claimed, e: ItemError) {
    let message = storable::message(&e.to_string()).into_owned();
    let outcome = async {
        let mut client = ctx.pool.get().await?;
        if e.is_transient() && item.attempts < item.max_attempts {
            let delay = Duration::from_secs(ctx.config.performer.retry_delay_secs);
            warn!(error = %message, attempt = item.attempts, max_attempts = item.max_attempts,
                  retry_in_secs = delay.as_secs(), next_attempt_at = %(chrono::Utc::now() + delay),
                  "attempt failed; the item will be retried");
            metrics::retry("2");
            queue::retry_later(&client, item, &message, delay).await?;
        } else {
            error!(error = %message, attempt = item.attempts, transient = e.is_transient(),
                   "FALLO_SISTEMA: the item will not be retried automatically today");
            audit::record_system_failure(&mut client, item, &message).await?;
            metrics::file_finished("FALLO_SISTEMA");
            let alert = Alert::new("FALLO_SISTEMA", &message).about(
                &item.file_name,
                item.bitacora_id,
                item.id,
            );
            alert::send(&ctx.config.alerts, &alert).await;
            let staged = staged_path(ctx, item);
            if staged.exists() {
                let to =
                    ctx.dirs
                        .quarantine()
                        .join(format!("{}-{}", item.bitacora_id, file_part(item)));
                if let Err(e) = durable_move(&staged, &to) {
                    error!(error = %e, "could not move the local copy to quarantine");
                }
            }
        }
        Ok::<_, ItemError>(())
    };
    if let Err(e) = outcome.await {
        // The lease will expire and another attempt will pick the item up.
        error!(error = %e, "could not record the failure");
    }
}

fn file_part(item: &Claimed) -> String {
    RemoteName::parse(&item.file_name).map_or_else(|_| "unsafe-name".into(), |n| n.to_string())
}

fn staged_path(ctx: &Context, item: &Claimed) -> PathBuf {
    ctx.dirs
        .staging()
        .join(format!("{}-{}", item.id, file_part(item)))
}

async fn handle(ctx: &Context, item: &Claimed) -> Result<(), ItemError> {
    if item.attempts > item.max_attempts && !is_final(&item.prior_status) {
        // Taken back after its performers vanished once too often.
        return Err(ItemError::Exhausted {
            attempts: item.attempts - 1,
        });
    }
    if let Some(local) = &item.local_path {
        // An operator's retry: the local copy (e.g. a fixed quarantined file) is the origin.
        let path = Path::new(local);
        let name = RemoteName::parse(&path.file_name().unwrap_or_default().to_string_lossy())?;
        let source = Source::local(path.parent().unwrap_or(Path::new("/")));
        return handle_connected(ctx, item, &name, &source).await;
    }
    let name = RemoteName::parse(&item.file_name)?;
    let source = (|| Source::connect(&ctx.config))
        .retry(ctx.step_backoff())
        .when(SourceError::is_transient)
        .notify(on_step_retry("connect"))
        .await?;
    let result = handle_connected(ctx, item, &name, &source).await;
    source.close().await;
    result
}

async fn handle_connected(
    ctx: &Context,
    item: &Claimed,
    name: &RemoteName,
    source: &Source,
) -> Result<(), ItemError> {
    let staged = staged_path(ctx, item);
    if is_final(&item.prior_status) {
        return finish_committed(ctx, item, name, source, &staged).await;
    }
    download(ctx, source, name, &staged).await?;
    let facts = file_facts(ctx, &staged).await?;
    match check_layout(&staged, facts.encoding).await? {
        Err(layout) => {
            let message = storable::message(&format!("{}: {layout}", item.file_name)).into_owned();
            warn!(error = %message, "FALLO_LAYOUT: nothing loaded; the file goes to quarantine");
            let client = ctx.pool.get().await?;
            audit::record_unloaded(&client, item, &facts, Unloaded::Layout, &message).await?;
            metrics::file_finished("FALLO_LAYOUT");
            let alert = Alert::new("FALLO_LAYOUT", &message).about(
                &item.file_name,
                item.bitacora_id,
                item.id,
            );
            alert::send(&ctx.config.alerts, &alert).await;
            set_aside(ctx, item, name, source, &staged, Final::Failed).await
        }
        Ok(()) => {
            let loading = std::time::Instant::now();
            let outcome = (|| async {
                let mut client = ctx.pool.get().await?;
                // Batches are read and validated on a blocking thread while the previous
                // one is copied: the channel holds one batch, so memory stays bounded.
                let (sender, batches) = tokio::sync::mpsc::channel(1);
                let (path, encoding) = (staged.clone(), facts.encoding);
                let rows = ctx.config.performer.batch_rows;
                let as_of = facts.business_date;
                let producer = tokio::task::spawn_blocking(move || {
                    feed::validate_file(&path, encoding, &VISITS, rows, as_of, |part| {
                        sender.blocking_send(part).is_ok()
                    })
                });
                let loaded = load::load(&mut client, item, &facts, batches).await;
                let _ = producer.await;
                Ok::<_, ItemError>(loaded?)
            })
            .retry(ctx.step_backoff())
            .when(ItemError::is_transient)
            .notify(on_step_retry("load (rolled back)"))
            .await?;
            metrics::stage("load", loading.elapsed());
            shared::fault::pause("after_commit").await;
            match &outcome {
                LoadOutcome::Loaded {
                    status,
                    valid,
                    rejected,
                    new_visitors,
                    updated_visitors,
                } => {
                    metrics::file_finished(status);
                    metrics::rows(*valid, *rejected);
                    info!(
                        status,
                        valid,
                        rejected,
                        new_visitors,
                        updated_visitors,
                        encoding = facts.encoding.label(),
                        "load committed"
                    )
                }
                LoadOutcome::Duplicate { of } => {
                    metrics::file_finished("DUPLICADO");
                    info!(
                        status = "DUPLICADO",
                        duplicate_of = of,
                        "content already loaded; nothing loaded"
                    )
                }
            }
            set_aside(ctx, item, name, source, &staged, Final::Done).await
        }
    }
}

/// Pass 1 over the staged file: SHA-256, size and encoding, without holding it in memory.
async fn file_facts(ctx: &Context, staged: &Path) -> Result<FileFacts, ItemError> {
    let (path, started) = (staged.to_path_buf(), std::time::Instant::now());
    let print = tokio::task::spawn_blocking(move || feed::fingerprint(&path))
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
        business_date: ctx.business_date(),
    })
}

/// The header check (SPEC §3), reading only the first line(s).
async fn check_layout(
    staged: &Path,
    encoding: feed::Encoding,
) -> Result<Result<(), LayoutError>, ItemError> {
    let path = staged.to_path_buf();
    tokio::task::spawn_blocking(move || feed::check_layout(&path, encoding, &VISITS))
        .await
        .expect("reading a line does not panic")
        .map_err(ItemError::disk("reading the staged file"))
}

/// Tier 1: logs (cause and delay) and counts an in-place retry of one step.
fn on_step_retry<E: std::fmt::Display>(step: &'static str) -> impl Fn(&E, Duration) {
    move |e, wait| {
        metrics::retry("1");
        warn!(error = %e, step, retry_in_ms = wait.as_millis() as u64, "step failed; retrying in place");
    }
}

fn is_final(status: &str) -> bool {
    matches!(
        status,
        "COMPLETADO" | "COMPLETADO_CON_ERRORES" | "DUPLICADO" | "FALLO_LAYOUT"
    )
}

async fn download(
    ctx: &Context,
    source: &Source,
    name: &RemoteName,
    staged: &Path,
) -> Result<(), ItemError> {
    let started = std::time::Instant::now();
    let downloaded = (|| source.download(name, staged))
        .retry(ctx.step_backoff())
        .when(SourceError::is_transient)
        .notify(on_step_retry("download"))
        .await;
    let bytes = match downloaded {
        Ok(bytes) => bytes,
        Err(e) => {
            // A partial download is not a copy of anything: never quarantine it.
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
    Ok(())
}

/// An earlier attempt committed and stopped before the end: finish the backup and the delete.
async fn finish_committed(
    ctx: &Context,
    item: &Claimed,
    name: &RemoteName,
    source: &Source,
    staged: &Path,
) -> Result<(), ItemError> {
    let state = if item.prior_status == "FALLO_LAYOUT" {
        Final::Failed
    } else {
        Final::Done
    };
    info!(status = %item.prior_status, "already committed by an earlier attempt; finishing backup and delete");
    if !staged.exists() {
        match source.download(name, staged).await {
            Err(SourceError::NotFound { .. }) => {
                // Deleted at the origin, which happens only after the local copy was durable.
                let client = ctx.pool.get().await?;
                queue::finish(&client, item.id, state, None).await?;
                return Ok(());
            }
            other => other?,
        };
        let found = file_facts(ctx, staged).await?.sha256;
        if let Some(loaded) = item.prior_sha256.as_ref().filter(|l| **l != found) {
            return Err(ItemError::ContentChanged {
                found,
                loaded: loaded.clone(),
            });
        }
    }
    set_aside(ctx, item, name, source, staged, state).await
}

/// Moves the staged file to backup (loaded) or quarantine (layout failure), durably,
/// then deletes it at the origin and makes the item final.
async fn set_aside(
    ctx: &Context,
    item: &Claimed,
    name: &RemoteName,
    source: &Source,
    staged: &Path,
    state: Final,
) -> Result<(), ItemError> {
    let dir = match state {
        Final::Done => ctx.dirs.backup_day(ctx.business_date()),
        Final::Failed => ctx.dirs.quarantine(),
    };
    let to = dir.join(format!("{}-{}", item.bitacora_id, file_part(item)));
    let backing_up = std::time::Instant::now();
    durable_move(staged, &to).map_err(ItemError::disk(format!(
        "moving the file to {}",
        to.display()
    )))?;
    metrics::stage("backup", backing_up.elapsed());
    let client = ctx.pool.get().await?;
    audit::record_local_copy(&client, item.bitacora_id, &to.display().to_string()).await?;
    (|| source.delete(name))
        .retry(ctx.step_backoff())
        .when(SourceError::is_transient)
        .notify(on_step_retry("delete at the origin"))
        .await?;
    queue::finish(&client, item.id, state, None).await?;
    info!(local_copy = %to.display(), "deleted at the origin; item finished");
    Ok(())
}
