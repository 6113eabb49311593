//! Open alerts, as the overview shows them: the rows of `alerts` not yet resolved
//! (`shared::store::alerts`, the same list `dispatcher alerts --open` prints).

use shared::store::alerts;
use shared::types::AlertKind;
use sqlx::PgPool;

/// Open alerts shown at the most on the overview.
const SHOWN: i64 = 50;

/// One open alert.
#[derive(Debug, Clone)]
pub struct OpenAlert {
    /// Its kind, as notices name it.
    pub event: String,
    /// What is wrong (feed, day and message).
    pub what: String,
    /// Where to look: (path, label).
    pub link: (String, String),
}

/// The alerts open now, newest first.
pub async fn open(pool: &PgPool) -> sqlx::Result<Vec<OpenAlert>> {
    Ok(alerts::list(pool, true, SHOWN)
        .await?
        .into_iter()
        .map(|row| {
            let a = row.alert;
            let link = match (a.bitacora_id, a.kind) {
                (Some(id), _) => (format!("/files/{id}"), "the file".to_string()),
                (None, AlertKind::ArchivoAusente | AlertKind::ArchivosDeMas) => {
                    ("/files".into(), "the files".into())
                }
                (None, _) => ("/queue".into(), "the queue".into()),
            };
            let about = [a.feed.clone(), a.business_day.map(|d| d.to_string())]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            OpenAlert {
                event: a.kind.to_string(),
                what: format!(
                    "{}{} (alert {}, open since {})",
                    if about.is_empty() {
                        String::new()
                    } else {
                        format!("{about}: ")
                    },
                    a.message,
                    row.id,
                    row.opened_at.format("%Y-%m-%d %H:%M UTC")
                ),
                link,
            }
        })
        .collect())
}
