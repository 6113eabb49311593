//! `alert_notices`, the outbox of alerts: one row per notice and channel, rendered when
//! queued (so every try sends the same bytes), sent by whichever process of the service
//! runs next. A sender claims due notices under a short lease (a sender that dies frees
//! them), records each try, and gives a notice up after `alerts.tries` tries.

use crate::types::NoticeKind;
use sqlx::{PgConnection, PgPool};
use std::time::Duration;

/// A channel a notice goes out by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// A JSON POST to `alerts.webhook_url`.
    Webhook,
    /// An e-mail through `[alerts.email]`.
    Email,
}

impl Channel {
    /// As stored (and as the metrics label it).
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Webhook => "webhook",
            Channel::Email => "email",
        }
    }
}

impl TryFrom<String> for Channel {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        match text.as_str() {
            "webhook" => Ok(Channel::Webhook),
            "email" => Ok(Channel::Email),
            other => Err(format!("alert_notices.channel: unknown value `{other}`")),
        }
    }
}

/// A notice to queue.
#[derive(Debug, Clone)]
pub struct NewNotice {
    /// The alert it is about (for a grouped `RECUPERADO`, the newest of them).
    pub alert_id: i64,
    /// Which notice of the alert's life.
    pub what: NoticeKind,
    /// How it goes out.
    pub channel: Channel,
    /// E-mail recipients.
    pub recipients: Vec<String>,
    /// E-mail subject (for the webhook, the same line, for the logs).
    pub subject: String,
    /// The webhook's JSON, or the e-mail's body.
    pub body: String,
}

/// Queues `notice` (in the transaction that opened, repeated or resolved its alert).
pub async fn queue(tx: &mut PgConnection, notice: &NewNotice) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO alert_notices (alert_id, what, channel, recipients, subject, body)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(notice.alert_id)
    .bind(notice.what.as_str())
    .bind(notice.channel.as_str())
    .bind(&notice.recipients)
    .bind(&notice.subject)
    .bind(&notice.body)
    .execute(tx)
    .await?;
    Ok(())
}

/// A notice claimed for a try.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    /// Its id.
    pub id: i64,
    /// The alert.
    pub alert_id: i64,
    /// How it goes out.
    #[sqlx(try_from = "String")]
    pub channel: Channel,
    /// E-mail recipients.
    pub recipients: Vec<String>,
    /// Subject.
    pub subject: String,
    /// Body.
    pub body: String,
    /// Tries so far, this one included.
    pub tries: i32,
    /// This sender's claim: its record of the try must name it.
    pub claim: i64,
}

/// Claims up to `limit` due notices for `lease` (unsent, not given up, not held by
/// another sender), counting the try; none of the channels in `skip`.
pub async fn claim_due(
    pool: &PgPool,
    lease: Duration,
    limit: i64,
    skip: &[&str],
) -> sqlx::Result<Vec<Claimed>> {
    sqlx::query_as(
        "UPDATE alert_notices n SET claim = nextval('alert_notices_claim_seq'), tries = n.tries + 1,
             locked_until = now() + make_interval(secs => $1)
         WHERE n.id IN (SELECT id FROM alert_notices
                        WHERE sent_at IS NULL AND given_up_at IS NULL AND next_try_at <= now()
                          AND (locked_until IS NULL OR locked_until < now())
                          AND channel <> ALL($3)
                        ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
         RETURNING n.id, n.alert_id, n.channel, n.recipients, n.subject, n.body, n.tries, n.claim",
    )
    .bind(lease.as_secs_f64())
    .bind(limit)
    .bind(skip)
    .fetch_all(pool)
    .await
}

/// Records that claimed notice `n` was sent.
pub async fn sent(pool: &PgPool, n: &Claimed) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE alert_notices SET sent_at = now(), locked_until = NULL, last_error = NULL
         WHERE id = $1 AND claim = $2",
    )
    .bind(n.id)
    .bind(n.claim)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records a failed try of `n`: tried again after `retry_in`, or given up (`None`).
pub async fn failed(
    pool: &PgPool,
    n: &Claimed,
    error: &str,
    retry_in: Option<Duration>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE alert_notices SET locked_until = NULL, last_error = $3,
             next_try_at = now() + make_interval(secs => coalesce($4, 0)),
             given_up_at = CASE WHEN $4 IS NULL THEN now() END
         WHERE id = $1 AND claim = $2",
    )
    .bind(n.id)
    .bind(n.claim)
    .bind(crate::types::storable::message(error).as_ref())
    .bind(retry_in.map(|d| d.as_secs_f64()))
    .execute(pool)
    .await?;
    Ok(())
}

/// In how many seconds (by the database's clock) the next unsent notice is due — 0 or
/// less: now — if any is waiting.
pub async fn next_due(pool: &PgPool) -> sqlx::Result<Option<f64>> {
    sqlx::query_scalar(
        "SELECT extract(epoch FROM min(greatest(next_try_at, coalesce(locked_until, next_try_at))) - now())::float8
         FROM alert_notices WHERE sent_at IS NULL AND given_up_at IS NULL",
    )
    .fetch_one(pool)
    .await
}

/// Notices waiting to be sent and given up, by channel, for the metrics.
pub async fn backlog(pool: &PgPool) -> sqlx::Result<Vec<(String, i64, i64)>> {
    sqlx::query_as(
        "SELECT c.channel,
                count(n.id) FILTER (WHERE n.sent_at IS NULL AND n.given_up_at IS NULL) AS pending,
                count(n.id) FILTER (WHERE n.given_up_at IS NOT NULL) AS given_up
         FROM unnest(ARRAY['webhook', 'email']) AS c(channel)
         LEFT JOIN alert_notices n ON n.channel = c.channel
         GROUP BY c.channel ORDER BY c.channel",
    )
    .fetch_all(pool)
    .await
}

/// How an alert's notices stand: sent, waiting for a try, given up, and the last error.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct Delivery {
    /// The alert.
    pub alert_id: i64,
    /// Notices sent.
    pub sent: i64,
    /// Notices still to be sent (tried and failed, or not yet tried).
    pub waiting: i64,
    /// Notices given up.
    pub given_up: i64,
    /// The last error of a notice not sent, if any.
    pub last_error: Option<String>,
}

/// How the notices of alerts `ids` stand, by alert.
pub async fn delivery(pool: &PgPool, ids: &[i64]) -> sqlx::Result<Vec<Delivery>> {
    sqlx::query_as(
        "SELECT alert_id, count(*) FILTER (WHERE sent_at IS NOT NULL) AS sent,
                count(*) FILTER (WHERE sent_at IS NULL AND given_up_at IS NULL) AS waiting,
                count(*) FILTER (WHERE given_up_at IS NOT NULL) AS given_up,
                (array_agg(last_error ORDER BY id DESC) FILTER (WHERE sent_at IS NULL AND last_error IS NOT NULL))[1]
                    AS last_error
         FROM alert_notices WHERE alert_id = ANY($1) GROUP BY alert_id",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
}

impl std::fmt::Display for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        for (n, what) in [
            (self.sent, "sent"),
            (self.waiting, "waiting"),
            (self.given_up, "given up"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        if parts.is_empty() {
            parts.push("none".into());
        }
        f.write_str(&parts.join(", "))?;
        match &self.last_error {
            Some(e) => write!(f, " ({e})"),
            None => Ok(()),
        }
    }
}
