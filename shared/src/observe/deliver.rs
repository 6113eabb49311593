//! The outbox's sender: claims the notices that are due (under a short lease, so two
//! processes never try one at once and one that dies frees them), sends each by its
//! channel, records the outcome. A failed try is logged, counted
//! (`visitas_alert_notices_failed_total`) and tried again after a delay that doubles,
//! by whichever process runs then, up to `alerts.tries`; then the notice is given up
//! (logged as an error, counted, and visible in `alert_notices`). Nothing here runs
//! inside a load: the performer sends from a task of its own.

use super::{email, webhook};
use crate::config::Config;
use crate::store::notices::{self, Channel, Claimed};
use metrics::counter;
use sqlx::PgPool;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Wakes the background sender: a notice was queued.
static WAKE: Notify = Notify::const_new();

/// How long a process about to exit keeps trying what it could not send yet.
pub const FLUSH: Duration = Duration::from_secs(10);

/// What one round of sending did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Sent.
    pub sent: usize,
    /// Tried and failed (to be tried again).
    pub failed: usize,
    /// Failed for the last time (or for good).
    pub given_up: usize,
}

/// Tells the background sender that a notice was queued.
pub fn wake() {
    WAKE.notify_one();
}

/// Sends the notices that are due now, one at a time, starting none after `until`. A
/// channel whose try failed is left for the next round: with its server down, a backlog
/// costs one timeout per round, not one per notice.
pub async fn deliver_due(
    db: &PgPool,
    config: &Config,
    until: Option<tokio::time::Instant>,
) -> sqlx::Result<Round> {
    let mut round = Round::default();
    // A try takes at most three timeouts (the SMTP conversation's bound): the lease
    // outlives it, so no other sender takes the notice meanwhile.
    let lease = config.alerts.timeout() * 4 + Duration::from_secs(10);
    let mut failing: Vec<&str> = Vec::new();
    while until.is_none_or(|until| tokio::time::Instant::now() < until) {
        let Some(n) = notices::claim_due(db, lease, 1, &failing).await?.pop() else {
            break;
        };
        if !try_one(db, config, &n, &mut round).await? {
            failing.push(n.channel.as_str());
        }
    }
    Ok(round)
}

/// One try of `n`; `false` when it failed.
async fn try_one(
    db: &PgPool,
    config: &Config,
    n: &Claimed,
    round: &mut Round,
) -> sqlx::Result<bool> {
    let timeout = config.alerts.timeout();
    let result = match n.channel {
        Channel::Webhook => match &config.alerts.webhook_url {
            Some(url) => webhook::post(url.expose(), &n.body, timeout)
                .await
                .map_err(|reason| (reason, false)),
            None => Err(("alerts.webhook_url is no longer configured".into(), true)),
        },
        Channel::Email => match &config.alerts.email {
            Some(e) => email::send(e, timeout, &n.recipients, &n.subject, &n.body)
                .await
                .map_err(|e| (e.reason, e.permanent)),
            None => Err(("[alerts.email] is no longer configured".into(), true)),
        },
    };
    let channel = n.channel.as_str();
    match result {
        Ok(()) => {
            notices::sent(db, n).await?;
            counter!("visitas_alert_notices_sent_total", "channel" => channel).increment(1);
            info!(channel, notice = n.id, alert_id = n.alert_id, tries = n.tries, subject = %n.subject, "alert notice sent");
            round.sent += 1;
            Ok(true)
        }
        Err((reason, permanent)) => {
            counter!("visitas_alert_notices_failed_total", "channel" => channel).increment(1);
            let tries = n.tries.max(0) as u32;
            if permanent || tries >= config.alerts.tries {
                notices::failed(db, n, &reason, None).await?;
                counter!("visitas_alert_notices_given_up_total", "channel" => channel).increment(1);
                error!(channel, notice = n.id, alert_id = n.alert_id, tries, error = %reason, subject = %n.subject,
                       "alert notice given up: not delivered");
                round.given_up += 1;
            } else {
                let delay = config.alerts.retry_delay(tries);
                notices::failed(db, n, &reason, Some(delay)).await?;
                warn!(channel, notice = n.id, alert_id = n.alert_id, tries, max_tries = config.alerts.tries,
                      retry_in_secs = delay.as_secs(), error = %reason, subject = %n.subject,
                      "alert notice not delivered; it will be tried again");
                round.failed += 1;
            }
            Ok(false)
        }
    }
}

/// Before a process exits: sends what is due, and keeps trying what fails while its next
/// try comes within [`FLUSH`]. What is left is sent by the next process.
pub async fn flush(db: &PgPool, config: &Config) {
    let deadline = tokio::time::Instant::now() + FLUSH;
    loop {
        if let Err(e) = deliver_due(db, config, Some(deadline)).await {
            warn!(error = %e, "could not send the alert notices; the next process will");
            return;
        }
        let wait = match notices::next_due(db).await {
            Ok(Some(secs)) => Duration::from_secs_f64(secs.max(0.05)),
            _ => return,
        };
        if tokio::time::Instant::now() + wait > deadline {
            return;
        }
        tokio::time::sleep(wait).await;
    }
}

/// The background sender of a long-running process: sends what is due, then sleeps until
/// the next notice is due (at most 30 s) or one is queued. Once `stop` is cancelled it
/// ends after the try in hand (never in the middle of one, which would send it twice).
pub fn spawn(db: PgPool, config: Config, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.is_cancelled() {
            if let Err(e) = deliver_due(&db, &config, None).await {
                warn!(error = %e, "could not send the alert notices; trying again");
            }
            let wait = match notices::next_due(&db).await {
                Ok(Some(secs)) => Duration::from_secs_f64(secs.clamp(0.05, 30.0)),
                _ => Duration::from_secs(30),
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = WAKE.notified() => {}
                () = stop.cancelled() => {}
            }
        }
    })
}
