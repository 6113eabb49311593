//! `GET /`: the last night (files by status, rows, duration, drained or not), the queue
//! (depth, oldest pending, items in hand with their performer and lease), open alerts and
//! the files set aside.

use crate::console::auth::Identity;
use crate::console::layout::{Frame, page, status};
use crate::console::pages::db_error;
use crate::console::{Console, alerts, set_aside};
use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::html;
use shared::store::{browse, queue, runs};
use std::sync::Arc;

/// Files set aside shown on the overview at the most (the quarantine page has them all).
const SET_ASIDE_SHOWN: i64 = 10;

/// `GET /`.
pub async fn show(
    State(console): State<Arc<Console>>,
    Extension(identity): Extension<Identity>,
) -> Response {
    match render(&console, &identity).await {
        Ok(page) => page,
        Err(e) => db_error(&identity, e),
    }
}

async fn render(console: &Console, identity: &Identity) -> sqlx::Result<Response> {
    let pool = &console.read;
    let last = runs::last(pool).await?;
    let night = match last.as_ref().and_then(|r| r.fecha_negocio) {
        Some(day) => Some((
            day,
            browse::days_by_status(pool, day, day, &console.tz_name()).await?,
        )),
        None => None,
    };
    let depth = queue::open_depth(pool).await?;
    let in_hand = queue::in_hand(pool).await?;
    let counts = set_aside::counts(pool).await?;
    let waiting = set_aside::page(pool, 0, SET_ASIDE_SHOWN).await?;
    let open = alerts::open(pool).await?;
    let body = html! {
        section #last-night {
            h2 { "Last night" }
            @match &last {
                None => p { "No dispatch run yet." },
                Some(run) => {
                    div.cards {
                        div.card {
                            "Dispatch run " (run.id) br;
                            "Business day " (run.fecha_negocio.map_or("—".into(), |d| d.to_string())) br;
                            "Started " (run.started) br;
                            "Finished " (run.finished.clone().unwrap_or_else(|| "still running".into())) br;
                            "Duration " (format!("{:.0} s", run.duration_secs)) br;
                            "Drained " strong #drained { (match run.drained.as_str() { "true" => "yes", "false" => "NO", _ => "—" }) }
                        }
                        div.card { "Listed " (run.listed) br; "Enqueued " (run.enqueued) br; "Retried (tier 4) " (run.retried) br; "Outcome " (run.outcome) }
                    }
                    @if let Some((day, lines)) = &night {
                        table {
                            thead { tr { th { "status" } th.num { "files" } th.num { "records" } th.num { "rejected" } } }
                            tbody {
                                @for l in lines {
                                    tr {
                                        td { a href=(format!("/files?status={}&from={day}&to={day}", l.estatus)) { (status(l.estatus)) } }
                                        td.num { (l.archivos) } td.num { (l.registros) } td.num { (l.rechazados) }
                                    }
                                }
                                tr { th { "all" } th.num { (lines.iter().map(|l| l.archivos).sum::<i64>()) }
                                     th.num { (lines.iter().map(|l| l.registros).sum::<i64>()) }
                                     th.num { (lines.iter().map(|l| l.rechazados).sum::<i64>()) } }
                            }
                        }
                    }
                }
            }
        }
        section #alerts {
            h2 { "Open alerts" }
            @if open.is_empty() { p { "None." } }
            @for a in &open {
                p.message.error { strong { (a.event) } ": " (a.what) " — " a href=(a.link.0) { (a.link.1) } }
            }
        }
        section #queue {
            h2 { "Queue" }
            p #depth {
                "pending " strong { (depth.pending) } " · running " strong { (depth.running) }
                " · oldest pending " (format!("{:.0} s", depth.oldest_pending_secs))
            }
            (in_hand_table(&in_hand))
        }
        section #set-aside {
            h2 { "Set-aside files (" (counts.total()) ")" }
            @if waiting.is_empty() { p { "None." } } @else {
                table {
                    thead { tr { th { "id" } th { "file" } th { "status" } th { "message" } } }
                    tbody { @for w in &waiting {
                        tr { td { a href=(format!("/files/{}", w.id)) { (w.id) } } td { (w.file) } td { (status(w.status)) } td.msg { (w.message) } }
                    } }
                }
                p { a href="/quarantine" { "All of them, with retry and discard" } }
            }
        }
    };
    Ok(page(
        console,
        identity,
        Frame {
            title: "Overview",
            section: "/",
            refresh: true,
        },
        body,
    )
    .into_response())
}

/// The items in hand: running ones, and loaded ones whose backup or delete is left.
pub fn in_hand_table(items: &[queue::InHand]) -> maud::Markup {
    html! {
        @if items.is_empty() { p { "No item in hand." } } @else {
            table #in-hand {
                thead { tr { th { "item" } th { "file" } th { "performer" } th { "lease until" } th.num { "attempt" } th { "note" } } }
                tbody { @for i in items {
                    tr {
                        td { (i.work_item) }
                        td { a href=(format!("/files/{}", i.bitacora_id)) { (i.file_name) } }
                        td { (i.worker.clone().unwrap_or_default()) }
                        td { (i.lease_until.clone().unwrap_or_default()) @if i.lease_expired { " " span.status.bad { "expired" } } }
                        td.num { (i.attempt) }
                        td.msg { @if i.status.is_final() { (i.status) " committed; left to do: backup and delete at the origin" } }
                    }
                } }
            }
        }
    }
}
