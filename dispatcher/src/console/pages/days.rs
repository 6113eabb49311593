//! `GET /days`: the business days, newest first, each with its files by status and its
//! backup (the zip, to download at `/days/{YYYY-MM-DD}/zip`, and loose copies not zipped
//! yet); `POST /days/{YYYY-MM-DD}/reload` loads a day again from its backup (as
//! `dispatcher reload --day`), confirmed by typing the date in the field `confirm`.

use crate::console::Console;
use crate::console::act;
use crate::console::auth::Identity;
use crate::console::layout::{Frame, message, page, problem, status};
use crate::console::pages::db_error;
use crate::console::params::Params;
use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{Days, NaiveDate};
use maud::html;
use shared::local::paths::Dirs;
use shared::store::browse;
use shared::store::console_actions::Outcome;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::io::AsyncReadExt;

/// Days of files listed (back from today), besides every day that has a backup.
const DAYS_SHOWN: u64 = 31;

fn parse_day(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// `GET /days`.
pub async fn list(
    State(console): State<Arc<Console>>,
    Extension(identity): Extension<Identity>,
) -> Response {
    let backup = Dirs::new(&console.config.paths.root).backup();
    let today =
        shared::local::business_date::business_date(None, console.config.business.time_zone);
    let from = today - Days::new(DAYS_SHOWN);
    let counts = match browse::days_by_status(&console.read, from, today, &console.tz_name()).await
    {
        Ok(counts) => counts,
        Err(e) => return db_error(&identity, e),
    };
    let mut days: BTreeMap<NaiveDate, Vec<browse::DayStatus>> = BTreeMap::new();
    for c in counts {
        days.entry(c.dia).or_default().push(c);
    }
    // Days with a backup on this host, however old.
    for day in crate::reload::copies::days(&backup).unwrap_or_default() {
        days.entry(day).or_default();
    }
    let acts = identity.may_act(&console);
    let body = html! {
        p { "Backups are on this host, under " code { (backup.display()) } "." }
        table #days {
            thead { tr { th { "day" } th { "files" } th { "backup" } @if acts { th { "reload from the backup" } } } }
            tbody { @for (day, lines) in days.iter().rev() {
                @let zip = crate::archive::zip_path(&backup, *day);
                @let loose = crate::archive::loose_days(&backup).unwrap_or_default().into_iter()
                    .find(|(d, _)| d == day).map(|(_, dir)| std::fs::read_dir(dir).map(|e| e.count()).unwrap_or(0));
                tr {
                    td { a href=(format!("/files?from={day}&to={day}")) { (day) } }
                    td { @for l in lines { (status(l.estatus)) " " (l.archivos) " " } }
                    td {
                        @if let Ok(meta) = std::fs::metadata(&zip) {
                            a href=(format!("/days/{day}/zip")) { (zip.file_name().unwrap_or_default().to_string_lossy()) }
                            " (" (size(meta.len())) ")"
                        }
                        @if let Some(n) = loose { " " (n) " loose cop(ies)" }
                    }
                    @if acts { td {
                        form.inline method="post" action=(format!("/days/{day}/reload")) {
                            input type="text" name="confirm" placeholder=(format!("type {day}")) size="12" required
                                  aria-label=(format!("type {day} to confirm"));
                            " " button type="submit" { "Reload" }
                        }
                    } }
                }
            } }
        }
    };
    page(
        &console,
        &identity,
        Frame {
            title: "Days",
            section: "/days",
            refresh: false,
        },
        body,
    )
    .into_response()
}

/// A file size for people: bytes, KiB or MiB.
fn size(bytes: u64) -> String {
    match bytes {
        0..10_240 => format!("{bytes} bytes"),
        10_240..10_485_760 => format!("{} KiB", bytes / 1024),
        _ => format!("{} MiB", bytes / 1_048_576),
    }
}

/// `GET /days/{YYYY-MM-DD}/zip`: the day's backup zip, streamed.
pub async fn zip(
    State(console): State<Arc<Console>>,
    Extension(identity): Extension<Identity>,
    Path(day): Path<String>,
) -> Response {
    let Some(day) = parse_day(&day) else {
        return problem(
            StatusCode::NOT_FOUND,
            Some(&identity),
            "not a day (YYYY-MM-DD)",
        );
    };
    let path = crate::archive::zip_path(&Dirs::new(&console.config.paths.root).backup(), day);
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(e) => {
            return problem(
                StatusCode::NOT_FOUND,
                Some(&identity),
                &format!("{}: {e}", path.display()),
            );
        }
    };
    let chunks = futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0; 256 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(buf), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    let name = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    (
        [
            (header::CONTENT_TYPE, "application/zip".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(chunks),
    )
        .into_response()
}

/// `POST /days/{YYYY-MM-DD}/reload` with `confirm` = the same date.
pub async fn reload(
    State(console): State<Arc<Console>>,
    Extension(identity): Extension<Identity>,
    Path(day_text): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(refusal) = act::gate(&console, &identity, "days.reload", &day_text).await {
        return refusal;
    }
    let Some(day) = parse_day(&day_text) else {
        return problem(
            StatusCode::NOT_FOUND,
            Some(&identity),
            "not a day (YYYY-MM-DD)",
        );
    };
    let confirm = Params::parse(&body).get("confirm").map(str::to_string);
    let (done, enqueued) = if confirm.as_deref() != Some(day_text.as_str()) {
        let done = act::Done {
            outcome: Outcome::Refused,
            message: format!("not reloaded: type the date {day} in the confirmation field"),
            next: Some(("/days".into(), "Days".into())),
        };
        (done, None)
    } else {
        act::reload_day(&console, day).await
    };
    act::record(&console, &identity, "days.reload", &day.to_string(), &done).await;
    let body = html! {
        (message(done.outcome == Outcome::Done, done.message.lines().last().unwrap_or("")))
        @if let Some(e) = &enqueued {
            @if !e.refused.is_empty() || !e.failed.is_empty() {
                pre { @for l in e.refused.iter().chain(&e.failed) { (l) "\n" } }
            }
            table #reloaded {
                thead { tr { th.num { "new id" } th { "file" } th { "from" } th { "business day" } } }
                tbody { @for f in &e.files { tr {
                    td.num { a href=(format!("/files/{}", f.item.bitacora_id)) { (f.item.bitacora_id) } }
                    td { (f.item.file_name) } td { (f.from) } td { (f.item.business_date.map_or(String::new(), |d| d.to_string())) }
                } } }
            }
            p { "The performers on this host (" (shared::local::host::name()) ") take them." }
        } @else if done.outcome != Outcome::Done {
            pre { (done.message) }
        }
        @if let Some((path, label)) = &done.next { p { a href=(path) { (label) } } }
    };
    page(
        &console,
        &identity,
        Frame {
            title: "Reload",
            section: "/days",
            refresh: false,
        },
        body,
    )
    .into_response()
}
