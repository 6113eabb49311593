//! Tier 1: one network or database step retried in place, with exponential backoff and
//! jitter (`performer.step_tries`, `performer.step_backoff_ms`); every retry is logged
//! with its cause and delay, and counted. A database that is away (a failover, a
//! restart, a switchover: `retry::is_outage`) is waited out instead, for up to the
//! outage budget, without using the step's tries.

use crate::context::Context;
use crate::error::ItemError;
use crate::metrics;
use crate::retry;
use backon::{BackoffBuilder, Retryable};
use std::fmt::Display;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Runs `step` (named `name` in logs) until it succeeds, fails with an error
/// `transient` says will not pass, or uses up the tries.
pub async fn retried<T, E, Fut>(
    ctx: &Context,
    name: &'static str,
    transient: impl FnMut(&E) -> bool,
    step: impl FnMut() -> Fut,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
    E: Display,
{
    step.retry(ctx.step_backoff())
        .when(transient)
        .notify(move |e: &E, wait: Duration| {
            metrics::retry("1");
            warn!(error = %e, step = name, retry_in_ms = wait.as_millis() as u64,
                  "step failed; retrying in place");
        })
        .await
}

/// A database step of an item's path, run until it succeeds: an outage is waited out
/// for up to [`Context::outage_budget`] (a write is tried again once the database is
/// back, so every step passed here must be safe to repeat, as the fenced writes are);
/// another transient error uses the step's tries (tier 1); anything else, or an outage
/// longer than the budget, is returned.
pub async fn retried_db<T, Fut>(
    ctx: &Context,
    name: &'static str,
    mut step: impl FnMut() -> Fut,
) -> Result<T, ItemError>
where
    Fut: Future<Output = Result<T, ItemError>>,
{
    let mut tries = ctx.step_backoff().build();
    let mut outage = Outage::new(ctx);
    loop {
        let error = match step().await {
            Ok(done) => {
                outage.over(name);
                return Ok(done);
            }
            Err(e) => e,
        };
        let wait = if retry::is_outage(&error) {
            outage.wait(ctx, name, &error)
        } else if retry::is_transient(&error) {
            tries.next().inspect(|wait| {
                metrics::retry("1");
                warn!(error = %error, step = name, retry_in_ms = wait.as_millis() as u64,
                      "step failed; retrying in place");
            })
        } else {
            None
        };
        match wait {
            Some(wait) => tokio::time::sleep(wait).await,
            None => return Err(error),
        }
    }
}

/// One step's wait for a database that is away.
struct Outage {
    budget: Duration,
    since: Option<Instant>,
    waits: backon::ExponentialBackoff,
}

impl Outage {
    fn new(ctx: &Context) -> Self {
        Self {
            budget: ctx.outage_budget(),
            since: None,
            waits: ctx.outage_backoff().build(),
        }
    }

    /// How long to wait before looking again, or `None` once the budget is spent.
    fn wait(&mut self, ctx: &Context, step: &'static str, error: &ItemError) -> Option<Duration> {
        let since = *self.since.get_or_insert_with(Instant::now);
        let waited = since.elapsed();
        if waited >= self.budget {
            warn!(error = %error, step, waited_secs = waited.as_secs(), budget_secs = self.budget.as_secs(),
                  "the database is still unavailable after the outage budget: this attempt gives the item back");
            return None;
        }
        if retry::is_read_only(error) {
            // The pooled connections may all lead to a server that is a standby now.
            ctx.forget_idle_connections();
        }
        let wait = self
            .waits
            .next()
            .unwrap_or(Duration::from_secs(5))
            .min(self.budget - waited);
        warn!(error = %error, step, waited_secs = waited.as_secs(), budget_secs = self.budget.as_secs(),
              retry_in_ms = wait.as_millis() as u64,
              "the database is unavailable (a failover or a restart?): waiting for it, no attempt used");
        Some(wait)
    }

    /// Says how long the database was away, if it was.
    fn over(&self, step: &'static str) {
        if let Some(since) = self.since {
            info!(
                step,
                waited_ms = since.elapsed().as_millis() as u64,
                "the database is back"
            );
        }
    }
}
