//! `alerts`: every alert is a row, opened once, notified again at most every
//! `alerts.repeat_every`, resolved by the check that passes or acknowledged by an
//! operator. The unique index `alerts_open_once` keeps one open alert per (kind, feed,
//! day, subject); a day's alert (`ARCHIVO_AUSENTE`, `ARCHIVOS_DE_MAS`) is raised at most
//! once, open or not. The outbox of their notices is `super::notices`.

use crate::types::AlertKind;
use crate::types::alert::{sql_alert_kind, sql_alert_kinds};
use crate::types::state::{failure_statuses, sql_state, sql_statuses};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, PgPool};
use std::time::Duration;

/// What an alert says: what, about which feed, day and file, and the evidence.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Alert {
    /// What went wrong.
    #[sqlx(try_from = "String")]
    pub kind: AlertKind,
    /// The feed; none for the service as a whole.
    pub feed: Option<String>,
    /// The business day it is about.
    pub business_day: Option<NaiveDate>,
    /// What it is about within (kind, feed, day): `''`, or `bitacora:<id>` for a file's alert.
    pub subject: String,
    /// The file, if about one.
    pub file: Option<String>,
    /// The file's `bitacora_control.id`.
    pub bitacora_id: Option<i64>,
    /// The file's `work_items.id`.
    pub work_item_id: Option<i64>,
    /// What happened, for people.
    pub message: String,
    /// The evidence, as JSON text.
    pub figures: String,
    /// The host that raised it.
    pub host: String,
}

/// An alert as stored, with its life.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AlertRow {
    /// Its id (`dispatcher alerts ack ID`).
    pub id: i64,
    /// What it says.
    #[sqlx(flatten)]
    pub alert: Alert,
    /// When it opened.
    pub opened_at: DateTime<Utc>,
    /// When its last notice was queued.
    pub last_notified_at: DateTime<Utc>,
    /// When it was resolved; none while open.
    pub resolved_at: Option<DateTime<Utc>>,
    /// What resolved it.
    pub resolution: Option<String>,
    /// Who acknowledged it, if an operator did.
    pub acknowledged_by: Option<String>,
    /// The operator's note.
    pub ack_note: Option<String>,
}

/// Every column of [`AlertRow`], as `RETURNING` and `SELECT` list them.
macro_rules! columns {
    () => {
        "id, kind, feed, business_day, subject, file, bitacora_id, work_item_id, message, figures::text AS figures,
         host, opened_at, last_notified_at, resolved_at, resolution, acknowledged_by, ack_note"
    };
}

/// What [`open`] found.
#[derive(Debug, Clone)]
pub enum Opened {
    /// A new alert: its first notice is due.
    New(AlertRow),
    /// The same alert was open: its message and figures now say the latest.
    AlreadyOpen(AlertRow),
    /// The day already had this alert, since resolved or acknowledged: not raised again.
    AlreadyRaised,
}

/// Opens `alert`, unless the same one is open (then its message, file and figures are
/// updated) or, with `once`, the day already had it.
pub async fn open(tx: &mut PgConnection, alert: &Alert, once: bool) -> sqlx::Result<Opened> {
    // Twice at most: an open alert resolved between the two statements is opened anew.
    for _ in 0..2 {
        let inserted: Option<AlertRow> = bound(
            sqlx::query_as(concat!(
                "INSERT INTO alerts (kind, feed, business_day, subject, file, bitacora_id, work_item_id, message, figures, host)
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10
                 WHERE NOT ($11 AND EXISTS (SELECT 1 FROM alerts a WHERE a.kind = $1 AND a.feed IS NOT DISTINCT FROM $2
                                              AND a.business_day IS NOT DISTINCT FROM $3 AND a.subject = $4))
                 ON CONFLICT (kind, coalesce(feed, ''), coalesce(business_day, 'infinity'::date), subject)
                     WHERE resolved_at IS NULL DO NOTHING
                 RETURNING ",
                columns!()
            )),
            alert,
        )
        .bind(once)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = inserted {
            return Ok(Opened::New(row));
        }
        // The latest raise's words and evidence (and file: a feed's history alert moves on).
        let updated: Option<AlertRow> = bound(
            sqlx::query_as(concat!(
                "UPDATE alerts SET file = coalesce($5, file), bitacora_id = coalesce($6, bitacora_id),
                     work_item_id = coalesce($7, work_item_id), message = $8, figures = $9::jsonb, host = $10
                 WHERE kind = $1 AND feed IS NOT DISTINCT FROM $2 AND business_day IS NOT DISTINCT FROM $3
                   AND subject = $4 AND resolved_at IS NULL
                 RETURNING ",
                columns!()
            )),
            alert,
        )
        .fetch_optional(&mut *tx)
        .await?;
        match updated {
            Some(row) => return Ok(Opened::AlreadyOpen(row)),
            None if once => return Ok(Opened::AlreadyRaised),
            None => {}
        }
    }
    Ok(Opened::AlreadyRaised)
}

/// `query` with `alert` bound as `$1`…`$10`: kind, feed, day, subject, file, bitacora id,
/// work item id, message, figures, host.
fn bound<'q>(
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, AlertRow, sqlx::postgres::PgArguments>,
    alert: &'q Alert,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, AlertRow, sqlx::postgres::PgArguments> {
    query
        .bind(alert.kind.as_str())
        .bind(&alert.feed)
        .bind(alert.business_day)
        .bind(&alert.subject)
        .bind(&alert.file)
        .bind(alert.bitacora_id)
        .bind(alert.work_item_id)
        .bind(&alert.message)
        .bind(&alert.figures)
        .bind(&alert.host)
}

/// Which open alerts to resolve.
#[derive(Debug, Clone)]
pub enum Which<'a> {
    /// The open alert of `kind` about the feed (no day), e.g. the history checks'.
    Feed {
        /// The kind.
        kind: AlertKind,
        /// The feed.
        feed: &'a str,
    },
    /// The open alerts of `kind` about the feed's days before `before` (and `and_day`, if given).
    Days {
        /// The kind.
        kind: AlertKind,
        /// The feed.
        feed: &'a str,
        /// Days strictly before this one.
        before: NaiveDate,
        /// And this day too.
        and_day: Option<NaiveDate>,
    },
    /// The open alert of `kind` about the whole service.
    Service(AlertKind),
    /// These alerts.
    Ids(&'a [i64]),
}

/// Resolves the open alerts `which` names, saying what closed them; returns them.
pub async fn resolve(
    tx: &mut PgConnection,
    which: &Which<'_>,
    resolution: &str,
) -> sqlx::Result<Vec<AlertRow>> {
    let set =
        "UPDATE alerts SET resolved_at = now(), resolution = $1 WHERE resolved_at IS NULL AND ";
    let returning = concat!(" RETURNING ", columns!());
    let q = match which {
        Which::Feed { kind, feed } => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{set}kind = $2 AND feed = $3 AND business_day IS NULL{returning}"
        )))
        .bind(resolution)
        .bind(kind.as_str())
        .bind(*feed),
        Which::Days {
            kind,
            feed,
            before,
            and_day,
        } => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{set}kind = $2 AND feed = $3 AND (business_day < $4 OR business_day = $5){returning}"
        )))
        .bind(resolution)
        .bind(kind.as_str())
        .bind(*feed)
        .bind(*before)
        .bind(*and_day),
        Which::Service(kind) => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{set}kind = $2 AND feed IS NULL{returning}"
        )))
        .bind(resolution)
        .bind(kind.as_str()),
        Which::Ids(ids) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{set}id = ANY($2){returning}")))
                .bind(resolution)
                .bind(*ids)
        }
    };
    let mut rows: Vec<AlertRow> = q.fetch_all(&mut *tx).await?;
    rows.sort_by_key(|r| (r.alert.business_day, r.id));
    Ok(rows)
}

/// Open alerts of `kind` about `feed`'s days, oldest day first.
pub async fn open_days(
    tx: &mut PgConnection,
    kind: AlertKind,
    feed: &str,
) -> sqlx::Result<Vec<AlertRow>> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM alerts WHERE resolved_at IS NULL AND kind = $1 AND feed = $2 AND business_day IS NOT NULL
         ORDER BY business_day"
    ))
    .bind(kind.as_str())
    .bind(feed)
    .fetch_all(tx)
    .await
}

/// The open file alerts whose file no longer waits for anyone, with what settled it: a
/// `FALLO_LAYOUT` or `FALLO_SISTEMA` discarded, loaded by a later attempt (tier 4), or
/// retried by an operator and the retry (or a retry of it) loaded; an
/// `ARCHIVO_MODIFICADO` whose set-aside file an operator resolved; a `RESPALDO_FALTANTE`
/// an operator acknowledged (`quarantine discard`).
pub async fn settled_file_alerts(tx: &mut PgConnection) -> sqlx::Result<Vec<(i64, String)>> {
    sqlx::query_as(concat!(
        "WITH RECURSIVE chain AS (
             SELECT a.id AS alert_id, b.id AS bitacora_id, 0 AS depth
             FROM alerts a JOIN bitacora_control b ON b.id = a.bitacora_id
             WHERE a.resolved_at IS NULL AND a.kind IN ",
        sql_alert_kinds!(FalloLayout, FalloSistema),
        "
             UNION ALL
             SELECT c.alert_id, rb.id, c.depth + 1
             FROM chain c JOIN work_items r ON r.retry_of = c.bitacora_id
             JOIN bitacora_control rb ON rb.work_item_id = r.id
             WHERE c.depth < 20
         )
         (SELECT DISTINCT ON (c.alert_id) c.alert_id,
                CASE WHEN b.descartado_en IS NOT NULL
                     THEN 'discarded: ' || coalesce(b.motivo_descarte, '')
                     WHEN c.depth = 0 THEN 'loaded: ' || b.estatus
                     ELSE 'retried as bitacora_control.id = ' || b.id || ': ' || b.estatus END AS how
         FROM chain c JOIN bitacora_control b ON b.id = c.bitacora_id
         JOIN work_items w ON w.id = b.work_item_id
         WHERE b.descartado_en IS NOT NULL
            OR (w.state = ",
        sql_state!(Done),
        " AND b.estatus IN ",
        sql_statuses!(Completado, CompletadoConErrores, Duplicado),
        ")
         ORDER BY c.alert_id, c.depth)
         UNION ALL
         -- A file set aside at the origin that an operator resolved (loaded or discarded).
         (SELECT a.id, 'its file set aside at the origin was ' || s.resolution
                      || coalesce(' (' || s.resolved_as || ')', '')
         FROM alerts a JOIN bitacora_control b ON b.id = a.bitacora_id
         JOIN set_aside_files s ON s.work_item_id = b.work_item_id
         WHERE a.resolved_at IS NULL AND a.kind = ",
        sql_alert_kind!(ArchivoModificado),
        " AND s.resolved_at IS NOT NULL)
         UNION ALL
         -- A loaded file whose backup is missing, acknowledged by an operator's discard.
         (SELECT a.id, 'its missing backup acknowledged: ' || coalesce(b.motivo_descarte, '')
         FROM alerts a JOIN bitacora_control b ON b.id = a.bitacora_id
         WHERE a.resolved_at IS NULL AND a.kind = ",
        sql_alert_kind!(RespaldoFaltante),
        " AND b.descartado_en IS NOT NULL)"
    ))
    .fetch_all(tx)
    .await
}

/// A quarantined file (a layout or system failure waiting for an operator, failed in the
/// last `days` days) that has no alert: the process that failed it died before raising it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Unalerted {
    /// `bitacora_control.id`.
    pub bitacora_id: i64,
    /// Its item.
    pub work_item_id: i64,
    /// The file.
    pub archivo: String,
    /// `FALLO_LAYOUT` or `FALLO_SISTEMA`.
    pub estatus: String,
    /// Why.
    pub mensaje: String,
    /// Its business day.
    pub fecha_negocio: Option<NaiveDate>,
}

/// Quarantined files of the last `days` days without an alert of their status.
pub async fn unalerted_failures(tx: &mut PgConnection, days: i32) -> sqlx::Result<Vec<Unalerted>> {
    sqlx::query_as(concat!(
        "SELECT b.id AS bitacora_id, w.id AS work_item_id, b.archivo, b.estatus,
                coalesce(b.mensaje_error, '') AS mensaje, b.fecha_negocio
         FROM bitacora_control b JOIN work_items w ON w.id = b.work_item_id
         WHERE b.estatus IN ",
        failure_statuses!(),
        " AND w.state = ",
        sql_state!(Failed),
        " AND b.descartado_en IS NULL
           AND b.fin > now() - make_interval(days => $1)
           AND NOT EXISTS (SELECT 1 FROM work_items r WHERE r.retry_of = b.id)
           AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.bitacora_id = b.id AND a.kind = b.estatus)
         ORDER BY b.id"
    ))
    .bind(days)
    .fetch_all(tx)
    .await
}

/// Open alerts last notified `every` ago or more, locked and marked notified now: their
/// reminder is due. Another process doing the same skips them.
pub async fn due_for_repeat(tx: &mut PgConnection, every: Duration) -> sqlx::Result<Vec<AlertRow>> {
    sqlx::query_as(concat!(
        "UPDATE alerts SET last_notified_at = now()
         WHERE id IN (SELECT id FROM alerts WHERE resolved_at IS NULL
                        AND last_notified_at <= now() - make_interval(secs => $1)
                      FOR UPDATE SKIP LOCKED)
         RETURNING ",
        columns!()
    ))
    .bind(every.as_secs_f64())
    .fetch_all(tx)
    .await
}

/// An operator acknowledges open alert `id`: it is resolved (no more reminders, no
/// `RECUPERADO`), with who and why. `None` when there is no such open alert.
pub async fn acknowledge(
    tx: &mut PgConnection,
    id: i64,
    by: &str,
    note: &str,
) -> sqlx::Result<Option<AlertRow>> {
    sqlx::query_as(concat!(
        "UPDATE alerts SET resolved_at = now(), resolution = 'acknowledged by ' || $2 || ': ' || $3,
             acknowledged_by = $2, ack_note = $3
         WHERE id = $1 AND resolved_at IS NULL RETURNING ",
        columns!()
    ))
    .bind(id)
    .bind(by)
    .bind(note)
    .fetch_optional(tx)
    .await
}

/// Alert `id`, open or not.
pub async fn get(pool: &PgPool, id: i64) -> sqlx::Result<Option<AlertRow>> {
    sqlx::query_as(concat!("SELECT ", columns!(), " FROM alerts WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Alerts, newest first: only the open ones with `open_only`, else the last `limit`.
pub async fn list(pool: &PgPool, open_only: bool, limit: i64) -> sqlx::Result<Vec<AlertRow>> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM alerts WHERE (NOT $1 OR resolved_at IS NULL) ORDER BY id DESC LIMIT $2"
    ))
    .bind(open_only)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Open alerts by kind (every kind, zero included), for the metrics.
pub async fn open_by_kind(pool: &PgPool) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as(
        "SELECT k.kind, count(a.id) AS open
         FROM unnest($1::text[]) AS k(kind) LEFT JOIN alerts a ON a.kind = k.kind AND a.resolved_at IS NULL
         GROUP BY k.kind ORDER BY k.kind",
    )
    .bind(AlertKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>())
    .fetch_all(pool)
    .await
}
