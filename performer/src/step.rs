//! Tier 1: one network or database step retried in place, with exponential backoff and
//! jitter (`performer.step_tries`, `performer.step_backoff_ms`); every retry is logged
//! with its cause and delay, and counted.

use crate::context::Context;
use crate::metrics;
use backon::Retryable;
use std::fmt::Display;
use std::time::Duration;
use tracing::warn;

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
