//! `dispatcher check` (a systemd timer every 15 minutes, and the end of every
//! `dispatcher run`): every feed's expected deliveries whose `due_by` has passed, the
//! history checks a stopped performer left undone, the file alerts to settle or to raise,
//! the reminders of open alerts; then it sends what the outbox holds.

use shared::config::Config;
use shared::feed::FEEDS;
use shared::observe::{alert, presence, volume};
use shared::store::audit;
use sqlx::PgPool;
use tracing::info;

/// Days back the check raises a file alert a stopped process left out, and judges the
/// files loaded without their history check.
const LOOKBACK_DAYS: i32 = presence::LOOKBACK_DAYS as i32;

/// What a check did.
#[derive(Debug, Default)]
pub struct Checked {
    /// Alerts opened.
    pub raised: usize,
    /// Alerts resolved.
    pub resolved: usize,
    /// Files judged against their feed's history here (their performer had stopped).
    pub files_judged: usize,
    /// Reminders queued.
    pub reminders: usize,
}

impl std::fmt::Display for Checked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "check: {} alert(s) raised, {} resolved, {} reminder(s) queued, {} file(s) judged late",
            self.raised, self.resolved, self.reminders, self.files_judged
        )
    }
}

/// Runs every check once, as of now.
pub async fn run(config: &Config, pool: &PgPool) -> anyhow::Result<Checked> {
    let now = shared::store::connect::database_now(pool).await?;
    let mut checked = Checked::default();
    for feed in FEEDS {
        let p = presence::check(pool, config, feed, now).await?;
        checked.raised += p.raised;
        checked.resolved += p.resolved;
        // Every loaded file is one of the visits feed until feeds are data (issue 22).
        for id in audit::unchecked_loads(pool, LOOKBACK_DAYS).await? {
            if volume::check_file(pool, config, feed, id).await?.is_some() {
                checked.files_judged += 1;
            }
        }
    }
    let (raised, resolved) = alert::settle_files(pool, config, LOOKBACK_DAYS).await?;
    checked.raised += raised;
    checked.resolved += resolved;
    checked.reminders = alert::repeat_due(pool, config).await?;
    info!(
        raised = checked.raised,
        resolved = checked.resolved,
        reminders = checked.reminders,
        files_judged = checked.files_judged,
        "alert check done"
    );
    Ok(checked)
}
