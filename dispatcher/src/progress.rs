//! Progress bars for long operator commands: drawn on a terminal, silent in scripts.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use shared::config::Config;
use std::io::IsTerminal;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// A bar on stderr when it is a terminal; hidden otherwise (cron, systemd, pipes).
pub fn bar(what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}",
        )
        .expect("a valid template"),
    );
    bar.set_prefix(what.to_string());
    bar
}

/// What one look at the queue found, for [`wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// This many items are still open and may yet finish.
    Open(i64),
    /// This many are open and none can finish (no live performer can claim them).
    Stuck(i64),
}

/// How [`wait`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// Nothing is open any more.
    Drained,
    /// `dispatcher.drain_timeout_secs` passed first.
    Deadline,
    /// Two looks in a row found only items that cannot finish.
    Stuck,
}

/// Waits until `open()` counts no open item, or `dispatcher.drain_timeout_secs` passes
/// (polling every `dispatcher.wait_poll_secs`); returns whether everything finished. On a
/// terminal a bar labelled `what` shows the open items (scripts and journald see nothing).
pub async fn drain(
    what: &str,
    config: &Config,
    mut open: impl AsyncFnMut() -> sqlx::Result<i64>,
) -> sqlx::Result<bool> {
    let look = async || open().await.map(Look::Open);
    Ok(wait(what, config, look).await? == Waited::Drained)
}

/// As [`drain`], and stops early when two looks in a row (a poll apart) find that what
/// is left cannot finish. A database that is away (a failover, a restart) is waited for
/// like the performers: the wait goes on, saying so, until it answers or the deadline
/// passes.
pub async fn wait(
    what: &str,
    config: &Config,
    mut look: impl AsyncFnMut() -> sqlx::Result<Look>,
) -> sqlx::Result<Waited> {
    let deadline = Instant::now() + Duration::from_secs(config.dispatcher.drain_timeout_secs);
    let poll = Duration::from_secs(config.dispatcher.wait_poll_secs.max(1));
    let unanswered = config.database.timeouts().unanswered();
    let progress = bar(what);
    let (mut first_open, mut stuck_before, mut away_since) = (None, false, None);
    loop {
        let found = match shared::store::connect::bounded(unanswered, look()).await {
            Ok(found) => {
                if let Some(since) = away_since.take() {
                    info!(
                        waited_secs = Instant::elapsed(&since).as_secs(),
                        "the database is back; still waiting for the performers"
                    );
                }
                found
            }
            Err(e) if shared::store::connect::is_outage_sqlx(&e) && Instant::now() < deadline => {
                let since = *away_since.get_or_insert_with(Instant::now);
                warn!(error = %e, away_secs = since.elapsed().as_secs(),
                      "the database is unavailable (a failover or a restart?): still waiting");
                progress.set_message("the database is unavailable; waiting");
                tokio::time::sleep(poll).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let (Look::Open(open) | Look::Stuck(open)) = found;
        let total = *first_open.get_or_insert(open.max(1) as u64);
        progress.set_length(total.max(open as u64));
        progress.set_position(total.saturating_sub(open as u64));
        progress.set_message(format!("{open} file(s) still open"));
        if open == 0 {
            progress.finish_and_clear();
            return Ok(Waited::Drained);
        }
        let stuck = matches!(found, Look::Stuck(_));
        if stuck && stuck_before {
            progress.abandon_with_message(format!("{open} file(s) no performer can claim"));
            return Ok(Waited::Stuck);
        }
        stuck_before = stuck;
        if Instant::now() >= deadline {
            progress.abandon_with_message(format!("{open} file(s) still open at the deadline"));
            return Ok(Waited::Deadline);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(poll.min(left.max(Duration::from_millis(100)))).await;
    }
}
