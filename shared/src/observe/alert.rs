//! Alerts and their life: raised (opened once), repeated while open, resolved by the check
//! that passes (which sends one `RECUPERADO`), or acknowledged by an operator. Every
//! notice is queued in the database in the transaction that changes the alert, and sent
//! by `super::deliver`: raising never waits for a webhook or a mail server, and nothing
//! a process queued is lost when it stops or the server is down.
//!
//! Raising is best effort where a load runs: a failure to record an alert is logged and
//! never fails the load; `dispatcher check` raises what such a failure left out.

use super::{deliver, notice};
use crate::config::Config;
use crate::store::alerts::{self, AlertRow, Opened, Which};
use crate::store::notices::{self, Channel, NewNotice};
use crate::store::reports;
use crate::types::{AlertKind, NoticeKind};
use chrono::NaiveDate;
use sqlx::{PgConnection, PgPool};
use std::time::Duration;
use tracing::{error, info, warn};

/// How long recording an alert may take where it runs beside a load.
const RECORD_TIMEOUT: Duration = Duration::from_secs(15);

/// Rejected records an e-mail quotes.
const EXAMPLES: i64 = 5;

/// An alert to raise (built with [`Alert::new`] and the methods below).
pub use crate::store::alerts::Alert;

impl Alert {
    /// An alert about the whole service (no feed, no file).
    pub fn new(kind: AlertKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            feed: None,
            business_day: None,
            subject: String::new(),
            file: None,
            bitacora_id: None,
            work_item_id: None,
            message: crate::types::storable::message(&message.into()).into_owned(),
            figures: "{}".into(),
            host: crate::local::host::name(),
        }
    }

    /// The same alert about one file of the visits feed (its own alert: one per file).
    pub fn about(mut self, file: &str, bitacora_id: i64, work_item_id: i64) -> Self {
        self.feed = Some(crate::feed::VISITS_FEED.into());
        self.subject = format!("bitacora:{bitacora_id}");
        self.file = Some(file.into());
        self.bitacora_id = Some(bitacora_id);
        self.work_item_id = Some(work_item_id);
        self
    }

    /// The same alert about `feed`.
    pub fn of_feed(mut self, feed: &str) -> Self {
        self.feed = Some(feed.into());
        self
    }

    /// The same alert dated to a business day.
    pub fn on(mut self, day: NaiveDate) -> Self {
        self.business_day = Some(day);
        self
    }

    /// The same alert with its figures.
    pub fn with_figures(mut self, figures: serde_json::Value) -> Self {
        self.figures = figures.to_string();
        self
    }
}

/// Raises `alert` (opens it, or finds it open) and queues its first notice; never fails:
/// a failure to record it is logged (and `dispatcher check` raises a missed file alert).
pub async fn raise(db: &PgPool, config: &Config, alert: Alert) {
    let kind = alert.kind;
    let recorded = tokio::time::timeout(RECORD_TIMEOUT, async {
        let mut tx = db.begin().await?;
        let opened = raise_in(&mut tx, config, &alert, false).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(opened)
    })
    .await;
    match recorded {
        Ok(Ok(_)) => deliver::wake(),
        Ok(Err(e)) => {
            error!(event = %kind, error = %e, message = %alert.message, "the alert could not be recorded")
        }
        Err(_) => {
            error!(event = %kind, message = %alert.message, "the alert could not be recorded in time")
        }
    }
}

/// Raises `alert` in `tx`: opens it and queues its notices, or, when the same alert is
/// open, updates its message and figures (its next notice is the reminder). With `once`,
/// a day that already had this alert (resolved or acknowledged since) raises nothing.
/// Returns the new alert.
pub async fn raise_in(
    tx: &mut PgConnection,
    config: &Config,
    alert: &Alert,
    once: bool,
) -> sqlx::Result<Option<AlertRow>> {
    match alerts::open(tx, alert, once).await? {
        Opened::New(row) => {
            warn!(event = %row.alert.kind, alert_id = row.id, feed = row.alert.feed.as_deref().unwrap_or(""),
                  business_day = ?row.alert.business_day, file = row.alert.file.as_deref().unwrap_or(""),
                  "alert opened: {}", row.alert.message);
            queue(tx, config, NoticeKind::Alerta, std::slice::from_ref(&row)).await?;
            Ok(Some(row))
        }
        Opened::AlreadyOpen(row) => {
            info!(event = %row.alert.kind, alert_id = row.id, "alert still open: {}", row.alert.message);
            Ok(None)
        }
        Opened::AlreadyRaised => Ok(None),
    }
}

/// Resolves the open alerts `which` names with `resolution` and queues their `RECUPERADO`
/// (one for the alerts of a kind closed together, e.g. several days without files).
pub async fn resolve_in(
    tx: &mut PgConnection,
    config: &Config,
    which: &Which<'_>,
    resolution: &str,
) -> sqlx::Result<Vec<AlertRow>> {
    let resolved = alerts::resolve(tx, which, resolution).await?;
    for kind in AlertKind::ALL {
        let group: Vec<AlertRow> = resolved
            .iter()
            .filter(|a| a.alert.kind == *kind)
            .cloned()
            .collect();
        if group.is_empty() {
            continue;
        }
        for a in &group {
            info!(event = %a.alert.kind, alert_id = a.id, "alert resolved: {resolution}");
        }
        queue(tx, config, NoticeKind::Recuperado, &group).await?;
    }
    Ok(resolved)
}

/// [`resolve_in`] in a transaction of its own; never fails (logged).
pub async fn resolve(db: &PgPool, config: &Config, which: Which<'_>, resolution: &str) {
    let done = tokio::time::timeout(RECORD_TIMEOUT, async {
        let mut tx = db.begin().await?;
        let resolved = resolve_in(&mut tx, config, &which, resolution).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(resolved)
    })
    .await;
    match done {
        Ok(Ok(resolved)) if !resolved.is_empty() => deliver::wake(),
        Ok(Ok(_)) => {}
        Ok(Err(e)) => error!(error = %e, ?which, "could not resolve alerts"),
        Err(_) => error!(?which, "could not resolve alerts in time"),
    }
}

/// Resolves the file alerts whose file no longer waits (discarded, or loaded by a retry
/// or by tier 4), and raises those that a process stopped before raising (failures of
/// the last `days` days). Returns (raised, resolved).
pub async fn settle_files(db: &PgPool, config: &Config, days: i32) -> sqlx::Result<(usize, usize)> {
    let mut tx = db.begin().await?;
    let mut resolved = 0;
    for (id, how) in alerts::settled_file_alerts(&mut tx).await? {
        resolved += resolve_in(&mut tx, config, &Which::Ids(&[id]), &how)
            .await?
            .len();
    }
    let mut raised = 0;
    for f in alerts::unalerted_failures(&mut tx, days).await? {
        let Some(kind) = AlertKind::parse(&f.estatus) else {
            continue;
        };
        let mut alert =
            Alert::new(kind, f.mensaje).about(&f.archivo, f.bitacora_id, f.work_item_id);
        alert.business_day = f.fecha_negocio;
        raised += usize::from(raise_in(&mut tx, config, &alert, false).await?.is_some());
    }
    tx.commit().await?;
    if raised + resolved > 0 {
        deliver::wake();
    }
    Ok((raised, resolved))
}

/// Queues a reminder of every open alert last notified `alerts.repeat_every` ago or
/// more; returns how many.
pub async fn repeat_due(db: &PgPool, config: &Config) -> sqlx::Result<usize> {
    let mut tx = db.begin().await?;
    let due = alerts::due_for_repeat(&mut tx, config.alerts.repeat_every.0).await?;
    for row in &due {
        info!(event = %row.alert.kind, alert_id = row.id, "alert still open: reminder queued");
        queue(
            &mut tx,
            config,
            NoticeKind::Recordatorio,
            std::slice::from_ref(row),
        )
        .await?;
    }
    tx.commit().await?;
    if !due.is_empty() {
        deliver::wake();
    }
    Ok(due.len())
}

/// An operator acknowledges open alert `id` with a note: it is resolved, repeats no
/// more and sends no `RECUPERADO`.
pub async fn acknowledge(db: &PgPool, id: i64, by: &str, note: &str) -> anyhow::Result<AlertRow> {
    if note.trim().is_empty() {
        anyhow::bail!("--note must say what was done (or why nothing is to be done)");
    }
    let mut tx = db.begin().await?;
    let row = alerts::acknowledge(&mut tx, id, by, note.trim()).await?;
    tx.commit().await?;
    match row {
        Some(row) => Ok(row),
        None => match alerts::get(db, id).await? {
            Some(a) => anyhow::bail!(
                "alert {id} is already closed: {}",
                a.resolution.unwrap_or_default()
            ),
            None => anyhow::bail!("there is no alert {id} (see `dispatcher alerts`)"),
        },
    }
}

/// Queues notice `what` of `rows` on every configured channel.
async fn queue(
    tx: &mut PgConnection,
    config: &Config,
    what: NoticeKind,
    rows: &[AlertRow],
) -> sqlx::Result<()> {
    let email = config.alerts.email.as_ref();
    if config.alerts.webhook_url.is_none() && email.is_none() {
        return Ok(());
    }
    let a = rows.last().expect("a notice is about an alert");
    let examples = match (what, a.alert.kind, a.alert.bitacora_id) {
        (
            NoticeKind::Alerta | NoticeKind::Recordatorio,
            AlertKind::TasaErrorAnomala | AlertKind::VolumenAnomalo,
            Some(id),
        ) => reports::first_rejected(tx, id, EXAMPLES).await?,
        _ => Vec::new(),
    };
    let host = crate::local::host::name();
    let rendered = notice::render(what, rows, &examples, &host, chrono::Utc::now());
    if config.alerts.webhook_url.is_some() {
        notices::queue(
            tx,
            &NewNotice {
                alert_id: a.id,
                what,
                channel: Channel::Webhook,
                recipients: Vec::new(),
                subject: rendered.subject.clone(),
                body: rendered.json,
            },
        )
        .await?;
    }
    if let Some(email) = email {
        let to = a
            .alert
            .feed
            .as_deref()
            .and_then(|f| config.expect.get(f))
            .and_then(|e| e.email_to.clone())
            .unwrap_or_else(|| email.to.clone());
        notices::queue(
            tx,
            &NewNotice {
                alert_id: a.id,
                what,
                channel: Channel::Email,
                recipients: to.iter().map(|a| a.to_string()).collect(),
                subject: rendered.subject,
                body: rendered.body,
            },
        )
        .await?;
    }
    Ok(())
}
