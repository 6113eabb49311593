//! Expected feeds: a feed with `days` and `due_by` in `[expect.<feed>]` must deliver at
//! least `files.min` (and at most `files.max`) files for each expected day that is not a
//! holiday, by `due_by` in `business.time_zone`.
//!
//! **The files delivered for a day** are the work items a dispatch run listed (every
//! `dispatcher run`, the night's or an operator's; not an operator's retry, not a
//! reload), whatever became of them and whichever performer loaded them, counted under
//! their business day: the day of their first claim (`fecha_negocio`), or, before any
//! claim, the local day they were listed. Counted when the check runs, any time after
//! `due_by`.
//!
//! `dispatcher check` raises `ARCHIVO_AUSENTE` (fewer than `min`) or `ARCHIVOS_DE_MAS`
//! (more than `max`) once per day, for the last [`LOOKBACK_DAYS`] days whose `due_by`
//! has passed: a check missed for a while (the host was down) still raises. An earlier
//! day counts only once the feed has delivered before it, so a feed just configured (a
//! new install) is not alerted for the days before it was watched. An absent day closes when its
//! late file is delivered (`RECUPERADO`), or when the feed delivers a file for a later
//! day (one `RECUPERADO` naming the days without their files), or when an operator
//! acknowledges it. A day of too many files closes when a later expected day is in band.

use super::alert::{self, Alert};
use crate::config::Config;
use crate::store::alerts::{self, Which};
use crate::store::queue;
use crate::types::AlertKind;
use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use sqlx::PgPool;

/// Days back the check looks at (today included).
pub const LOOKBACK_DAYS: u64 = 3;

/// The instant `day`'s files are due: `due_by` on `day` in `tz` (the earlier of two
/// instants in a repeated hour; an hour later when a clock change skips it).
pub fn due_at(day: NaiveDate, due_by: NaiveTime, tz: Tz) -> DateTime<Utc> {
    let local = day.and_time(due_by);
    tz.from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(local + chrono::Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| local.and_utc())
}

/// What a check raised and resolved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// Alerts opened.
    pub raised: usize,
    /// Alerts resolved.
    pub resolved: usize,
}

/// Checks `feed`'s expected deliveries as of `now`, then settles its open absent days.
pub async fn check(
    db: &PgPool,
    config: &Config,
    feed: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<Checked> {
    let expect = config.expect_for(feed);
    let mut checked = Checked::default();
    if let Some((_, due_by)) = expect.presence() {
        let tz = config.business.time_zone;
        let today = now.with_timezone(&tz).date_naive();
        let (first, latest) = queue::delivery_span(db, feed, tz.name()).await?;
        for back in (0..LOOKBACK_DAYS).rev() {
            let Some(day) = today.checked_sub_days(Days::new(back)) else {
                continue;
            };
            if !expect.expected_on(day) || now < due_at(day, due_by, tz) {
                continue;
            }
            if back > 0 && first.is_none_or(|f| f >= day) {
                continue;
            }
            let n = queue::delivered(db, feed, day, tz.name()).await?;
            let (min, max) = (i64::from(expect.files.min), expect.files.max.map(i64::from));
            let figures = serde_json::json!({
                "files": n, "min": min, "max": max,
                "due_by": due_by.format("%H:%M").to_string(), "time_zone": tz.name(),
            });
            let alert = if n < min {
                // The feed delivered for a later day since: nothing is awaited for this one.
                if latest.is_some_and(|l| l > day) {
                    continue;
                }
                Alert::new(
                    AlertKind::ArchivoAusente,
                    format!(
                        "{n} file(s) of the feed {feed} delivered for {day} by {} ({}); at least {min} expected",
                        due_by.format("%H:%M"),
                        tz.name()
                    ),
                )
            } else if max.is_some_and(|max| n > max) {
                Alert::new(
                    AlertKind::ArchivosDeMas,
                    format!(
                        "{n} files of the feed {feed} delivered for {day}; at most {} expected",
                        max.unwrap_or_default()
                    ),
                )
            } else {
                let mut tx = db.begin().await?;
                let which = Which::Days {
                    kind: AlertKind::ArchivosDeMas,
                    feed,
                    before: day,
                    and_day: None,
                };
                let resolution = format!("{day} is back in band: {n} file(s) delivered");
                checked.resolved += alert::resolve_in(&mut tx, config, &which, &resolution)
                    .await?
                    .len();
                tx.commit().await?;
                continue;
            };
            let alert = alert.of_feed(feed).on(day).with_figures(figures);
            let mut tx = db.begin().await?;
            let opened = alert::raise_in(&mut tx, config, &alert, true).await?;
            tx.commit().await?;
            checked.raised += usize::from(opened.is_some());
        }
    }
    checked.resolved += settle(db, config, feed).await?;
    if checked.raised + checked.resolved > 0 {
        super::deliver::wake();
    }
    Ok(checked)
}

/// Resolves `feed`'s open absent days that are over: the day's late files arrived, or the
/// feed delivered a file for a later day. Returns how many were resolved.
pub async fn settle(db: &PgPool, config: &Config, feed: &str) -> sqlx::Result<usize> {
    let mut tx = db.begin().await?;
    let open = alerts::open_days(&mut tx, AlertKind::ArchivoAusente, feed).await?;
    if open.is_empty() {
        return Ok(0);
    }
    let tz = config.business.time_zone.name();
    let min = i64::from(config.expect_for(feed).files.min);
    let (_, latest) = queue::delivery_span(db, feed, tz).await?;
    let mut resolved = 0;
    let mut passed_over = Vec::new();
    for a in &open {
        let Some(day) = a.alert.business_day else {
            continue;
        };
        let n = queue::delivered(db, feed, day, tz).await?;
        if n >= min {
            let why = format!("the file(s) of {day} arrived late: {n} delivered");
            resolved += alert::resolve_in(&mut tx, config, &Which::Ids(&[a.id]), &why)
                .await?
                .len();
        } else if let Some(latest) = latest.filter(|l| *l > day) {
            passed_over.push((a.id, day, n, latest));
        }
    }
    if let Some((_, _, _, latest)) = passed_over.last() {
        let days: Vec<String> = passed_over
            .iter()
            .map(|(_, day, n, _)| format!("{day} ({n} file(s))"))
            .collect();
        let why = format!(
            "the feed {feed} delivered a file for {latest}; days without their files: {}",
            days.join(", ")
        );
        let ids: Vec<i64> = passed_over.iter().map(|(id, ..)| *id).collect();
        resolved += alert::resolve_in(&mut tx, config, &Which::Ids(&ids), &why)
            .await?
            .len();
    }
    tx.commit().await?;
    Ok(resolved)
}
