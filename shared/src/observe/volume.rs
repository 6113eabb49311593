//! A loaded file against its feed's own history: its valid rows (`VOLUMEN_ANOMALO`) and
//! its error rate (`TASA_ERROR_ANOMALA`), judged by [`super::anomaly`] over the last
//! `history` completed files of the feed (on the same weekday when at least
//! `min_history` of them exist). One open alert per feed and kind, its figures those of
//! the latest anomalous file; the next file back in band closes it. Each file is judged
//! exactly once: its `file_checks` row is written in the transaction that raises or
//! resolves, and `dispatcher check` judges the files a stopped performer left unjudged.

use super::alert::{self, Alert};
use super::anomaly::{self, Figures, Rule};
use crate::config::Config;
use crate::store::alerts::Which;
use crate::store::audit::{self, LoadedFile};
use crate::store::file_checks;
use crate::types::AlertKind;
use sqlx::PgPool;

/// What judging a file found.
#[derive(Debug, Clone)]
pub struct Judged {
    /// Its valid rows.
    pub rows: Figures,
    /// Its error rate (none for a file without records).
    pub rate: Option<Figures>,
}

/// Judges loaded file `bitacora_id` of `feed` once; `None` when it is not a loaded file
/// or was judged already.
pub async fn check_file(
    db: &PgPool,
    config: &Config,
    feed: &str,
    bitacora_id: i64,
) -> sqlx::Result<Option<Judged>> {
    let mut tx = db.begin().await?;
    let Some(file) = audit::loaded_file(&mut tx, bitacora_id).await? else {
        return Ok(None);
    };
    if !file_checks::take(&mut tx, bitacora_id, feed).await? {
        return Ok(None);
    }
    let expect = config.expect_for(feed);
    let n = i64::from(expect.history);
    let same = audit::loaded_before(&mut tx, &file, true, n).await?;
    let all = audit::loaded_before(&mut tx, &file, false, n).await?;
    let valid = |files: &[LoadedFile]| files.iter().map(|f| f64::from(f.valid)).collect::<Vec<_>>();
    let rates = |files: &[LoadedFile]| {
        files
            .iter()
            .filter_map(LoadedFile::error_rate)
            .collect::<Vec<_>>()
    };
    let min_history = expect.min_history as usize;
    let rows = anomaly::judge(
        f64::from(file.valid),
        &valid(&same),
        &valid(&all),
        &Rule {
            robust_z: expect.robust_z,
            floor: expect.min_rows_change,
            min_history,
            low: expect.rows.and_then(|r| r.min),
            high: expect.rows.and_then(|r| r.max),
        },
    );
    let rate = file.error_rate().map(|x| {
        anomaly::judge(
            x,
            &rates(&same),
            &rates(&all),
            &Rule {
                robust_z: expect.robust_z,
                floor: expect.min_error_rate_change,
                min_history,
                low: None,
                high: expect.max_error_rate,
            },
        )
    });
    let figures = |metric: &str, f: &Figures| {
        serde_json::json!({
            "business_day": file.business_day, "file": file.archivo, "records": file.total,
            metric: f,
        })
    };
    file_checks::record(
        &mut tx,
        bitacora_id,
        &serde_json::json!({"valid_rows": rows, "error_rate_pct": rate}).to_string(),
    )
    .await?;
    let day = file.business_day;
    let checks = [
        (
            AlertKind::VolumenAnomalo,
            "valid_rows",
            Some(&rows),
            "valid rows",
        ),
        (
            AlertKind::TasaErrorAnomala,
            "error_rate_pct",
            rate.as_ref(),
            "% error rate",
        ),
    ];
    for (kind, metric, judged, unit) in checks {
        let Some(f) = judged else { continue };
        let said = describe(f, unit);
        if f.anomalous {
            let alert = Alert::new(
                kind,
                format!("{} (business day {day}): {said}", file.archivo),
            )
            .about(&file.archivo, file.bitacora_id, file.work_item_id)
            .of_feed(feed)
            .with_figures(figures(metric, f));
            // One alert per feed and kind, whichever file: not one per file.
            let alert = Alert {
                subject: String::new(),
                ..alert
            };
            alert::raise_in(&mut tx, config, &alert, false).await?;
        } else {
            let why = format!(
                "{} (business day {day}) is back in band: {said}",
                file.archivo
            );
            alert::resolve_in(&mut tx, config, &Which::Feed { kind, feed }, &why).await?;
        }
    }
    tx.commit().await?;
    super::deliver::wake();
    Ok(Some(Judged { rows, rate }))
}

/// `1000 valid rows against a median of 10025 (MAD 200, robust z -30.4) over 10 files (all_days)`.
fn describe(f: &Figures, unit: &str) -> String {
    let mut s = format!("{:.1} {unit}", f.value);
    match (f.median, f.mad) {
        (Some(median), Some(mad)) => {
            s.push_str(&format!(" against a median of {median:.1} (MAD {mad:.1}"));
            if let Some(z) = f.z {
                s.push_str(&format!(", robust z {z:.1}"));
            }
            s.push_str(&format!(
                ") over {} files ({})",
                f.history,
                match f.basis {
                    anomaly::Basis::SameWeekday => "same weekday",
                    _ => "all weekdays",
                }
            ));
        }
        _ => s.push_str(&format!(" ({})", f.reason)),
    }
    if f.anomalous && f.median.is_some() {
        s.push_str(&format!(": {}", f.reason));
    }
    s
}
