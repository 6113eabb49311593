//! The worker pool: N workers claim items (woken by NOTIFY, polling as a fallback)
//! and process them; shutdown is checked between items, never inside one.

use crate::context::Context;
use crate::kept::KeptSource;
use crate::pipeline::process;
use shared::store::attempt;
use shared::store::performers;
use shared::store::queue::{self, Rescuer};
use shared::types::Claimed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How the pool runs.
pub struct PoolOptions {
    /// Concurrent workers.
    pub workers: usize,
    /// Exit once the queue holds no pending or running item this performer could claim.
    pub once: bool,
    /// Prefix of the worker names (`host:pid`).
    pub name: String,
}

/// Runs the pool until shutdown (or, with `once`, until the queue is drained).
pub async fn run(
    ctx: Arc<Context>,
    options: PoolOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let wake = Arc::new(Notify::new());
    let listener = tokio::spawn(listen(ctx.clone(), wake.clone(), shutdown.clone()));
    let alive = tokio::spawn(keep_alive(ctx.clone(), options.name.clone()));
    let mut workers = tokio::task::JoinSet::new();
    for n in 1..=options.workers {
        let worker = format!("{}:{n}", options.name);
        workers.spawn(work(
            ctx.clone(),
            worker,
            options.once,
            wake.clone(),
            shutdown.clone(),
        ));
    }
    while let Some(done) = workers.join_next().await {
        done??;
    }
    listener.abort();
    alive.abort();
    if let Err(e) = performers::gone(&ctx.db, &options.name).await {
        warn!(error = %e, "could not remove this performer's row; it expires by itself");
    }
    Ok(())
}

/// Proves, before a worker's first claim, that `paths.root` is the service's ETL root
/// (`shared::store::root`): a root of this host's own would strand every copy made
/// there, so it stops the performer, saying what to change. A database that does not
/// answer yet is waited for, as claims are.
async fn prove_root(
    ctx: &Context,
    worker: &str,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    use shared::store::root::{RootError, check};
    let poll = Duration::from_secs(ctx.config.performer.poll_secs.max(1));
    while !shutdown.is_cancelled() {
        match check(
            &ctx.db,
            &ctx.config.paths.root,
            &shared::local::host::name(),
        )
        .await
        {
            Ok(()) => return Ok(()),
            Err(RootError::Db(e)) => {
                warn!(%worker, error = %e, "could not claim; trying again");
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Keeps this performer's row in `performers` alive (every third of a lease), so the
/// dispatcher knows which origins live performers serve.
async fn keep_alive(ctx: Arc<Context>, name: String) {
    let lease = ctx.config.lease();
    loop {
        if let Err(e) = performers::keep_alive(&ctx.db, &name, &ctx.reach, lease).await {
            warn!(error = %e, "could not renew this performer's row");
        }
        tokio::time::sleep(lease / 3).await;
    }
}

async fn work(
    ctx: Arc<Context>,
    worker: String,
    once: bool,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    prove_root(&ctx, &worker, &shutdown).await?;
    let poll = Duration::from_secs(ctx.config.performer.poll_secs.max(1));
    let lease = ctx.config.lease();
    let unanswered = ctx.config.database.timeouts().unanswered();
    // A claim that failed may have committed all the same (its acknowledgement lost with
    // the connection): such an item is this worker's, and is handed back before the next.
    let mut claim_unknown = false;
    // This worker's connection to its origin, kept between items (at most one per
    // worker), closed once idle for `sftp.keep_idle_secs` and when the worker stops.
    let mut kept = KeptSource::new();
    let keep_idle = ctx.config.access().sftp.keep_idle();
    while !shutdown.is_cancelled() {
        kept.close_if_idle(keep_idle).await;
        let claiming = Instant::now();
        let next = async {
            let mut client = ctx.pool.get().await?;
            if claim_unknown {
                let released = attempt::release_unknown_claims(&mut client, &worker).await?;
                if !released.is_empty() {
                    warn!(%worker, items = ?released, "handed back, no attempt used: items whose \
                          claim went through while its answer was lost with the connection");
                }
                claim_unknown = false;
            }
            let rescued = Rescuer::run_once(&client).await?.rescued;
            if rescued > 0 {
                crate::metrics::rescued(rescued);
                warn!(rescued, "took back items whose performer stopped answering");
            }
            let claimed =
                attempt::claim(&mut client, &worker, lease, &ctx.reach, ctx.business_date())
                    .await?;
            // Only what this performer could claim keeps `--once` waiting: items of an
            // origin it does not serve are not its to wait for.
            let open = match claimed {
                Some(_) => 1,
                None => {
                    shared::store::connect::bounded(
                        unanswered,
                        queue::open_in_reach(&ctx.db, &ctx.reach),
                    )
                    .await?
                }
            };
            Ok::<_, crate::error::ItemError>((claimed, open))
        };
        match next.await {
            Ok((Some(item), _)) => {
                let claim = claiming.elapsed();
                process_or_abandon(&ctx, &worker, item, &mut kept, claim, &shutdown).await
            }
            Ok((None, 0)) if once => break,
            Ok((None, _)) => {
                // Woken in time to close a kept connection that reaches its idle limit.
                let nap = if keep_idle.is_zero() || kept.source().is_none() {
                    poll
                } else {
                    poll.min(keep_idle)
                };
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(nap) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
            Err(e) => {
                claim_unknown = true;
                warn!(%worker, error = %e, "could not claim; trying again");
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
        }
    }
    kept.close().await;
    info!(%worker, "worker stopped");
    Ok(())
}

/// Processes an item; after a shutdown request waits at most `shutdown_grace_secs`,
/// then abandons it: dropping the work rolls back an open load transaction, and the
/// item is handed back to the queue without counting the attempt.
async fn process_or_abandon(
    ctx: &Context,
    worker: &str,
    item: Claimed,
    kept: &mut KeptSource,
    claim: Duration,
    shutdown: &CancellationToken,
) {
    let grace = Duration::from_secs(ctx.config.performer.shutdown_grace_secs);
    let grace_over = async {
        shutdown.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        () = process(ctx, worker, item.clone(), kept, claim) => return,
        () = grace_over => {}
    }
    warn!(work_item_id = item.id, file = %item.file_name, "shutdown grace period over: item abandoned, handed back");
    let handed_back = async {
        let mut client = ctx.pool.get().await?;
        if !attempt::release(&mut client, &item).await? {
            warn!(
                work_item_id = item.id,
                "already taken back by another attempt"
            );
        }
        Ok::<_, crate::error::ItemError>(())
    };
    // If the rollback still holds a lock, the lease expiry hands the item back instead.
    match tokio::time::timeout(Duration::from_secs(5), handed_back).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(error = %e, "could not hand the item back; its lease will expire"),
        Err(_) => warn!("handing the item back timed out; its lease will expire"),
    }
}

/// Wakes idle workers on NOTIFY; reconnects after a lost connection. Its connection is
/// made like every other (the `[database]` TLS settings and time limits).
async fn listen(ctx: Arc<Context>, wake: Arc<Notify>, shutdown: CancellationToken) {
    let pool = match shared::store::connect::listener_pool(&ctx.config.database) {
        Ok(pool) => pool,
        Err(e) => return warn!(error = %e, "LISTEN disabled; polling only"),
    };
    while !shutdown.is_cancelled() {
        let listening = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
            listener.listen(queue::CHANNEL).await?;
            loop {
                listener.recv().await?;
                wake.notify_waiters();
            }
            #[allow(unreachable_code)]
            Ok::<(), sqlx::Error>(())
        };
        if let Err(e) = listening.await {
            warn!(error = %e, "LISTEN connection lost; polling until it is back");
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }
}
