//! `GET /quarantine`: the files set aside for an operator, with retry and discard (one,
//! or the ticked ones through the bulk confirmation); and the actions
//! `POST /quarantine/{id}/retry` and `POST /quarantine/{id}/discard` (field `reason`).

use crate::console::Console;
use crate::console::act::{self, Done};
use crate::console::auth::Identity;
use crate::console::layout::{Frame, message, page, status};
use crate::console::pages::db_error;
use crate::console::params::Params;
use crate::console::set_aside;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use shared::store::console_actions::Outcome;
use std::sync::Arc;

/// Files per page.
const PAGE_ROWS: i64 = 100;

/// `GET /quarantine`.
pub async fn list(
    State(console): State<Arc<Console>>,
    Extension(identity): Extension<Identity>,
    RawQuery(query): RawQuery,
) -> Response {
    let after = match Params::of_query(query).int("after") {
        Ok(after) => after.unwrap_or(0),
        Err(why) => return crate::console::pages::bad_request(&identity, &why),
    };
    let (mut waiting, counts) = match tokio::try_join!(
        set_aside::page(&console.read, after, PAGE_ROWS + 1),
        set_aside::counts(&console.read)
    ) {
        Ok(both) => both,
        Err(e) => return db_error(&identity, e),
    };
    let more = waiting.len() as i64 > PAGE_ROWS;
    waiting.truncate(PAGE_ROWS as usize);
    let acts = identity.may_act(&console);
    let body = html! {
        p { "Files that wait for an operator: layout and system failures neither retried nor discarded, "
            "and loaded files whose backup or delete at the origin is still being retried." }
        p #quarantine-counts {
            @for (s, n) in &counts.waiting { (status(*s)) " " (n) " waiting · " }
            (counts.unfinished) " loaded, being finished · " (counts.at_origin) " left at the origin"
        }
        @if acts {
            form #bulk method="get" action="/files/bulk" {
                div.actions {
                    button name="do" value="retry-selected" { "Retry selected" }
                    button name="do" value="discard-selected" { "Discard selected" }
                }
            }
        }
        @if waiting.is_empty() { p #quarantine-empty { "Nothing waits." } } @else {
            table #quarantine {
                thead { tr {
                    @if acts { th { "" } }
                    th.num { "id" } th { "file" } th { "status" } th { "since" } th { "copy" } th { "message" }
                    @if acts { th { "" } }
                } }
                tbody { @for w in &waiting { tr {
                    @if acts { td { @if w.actionable { input type="checkbox" form="bulk" name="id" value=(w.id); } } }
                    td.num { a href=(format!("/files/{}", w.id)) { (w.id) } }
                    td { (w.file) } td { (status(w.status)) } td { (w.since) } td.msg { (w.copy) } td.msg { (w.message) }
                    @if acts { td { @if w.actionable {
                        form.inline method="post" action=(format!("/quarantine/{}/retry", w.id)) { button type="submit" { "Retry" } }
                        " "
                        form.inline method="post" action=(format!("/quarantine/{}/discard", w.id)) {
                            input type="text" name="reason" placeholder="why" required size="16"; " "
                            button type="submit" { "Discard" }
                        }
                    } } }
                } } }
            }
            nav.pager {
                @if after > 0 { a href="/quarantine" { "← first" } }
                @if more { @if let Some(last) = waiting.last() { a rel="next" href=(format!("/quarantine?after={}", last.id)) { "next →" } } }
            }
        }
    };
    page(
        &console,
        &identity,
        Frame {
            title: "Quarantine",
            section: "/quarantine",
            refresh: true,
        },
        body,
    )
    .into_response()
}

/// The page that says how an action ended.
pub fn result_page(
    console: &Console,
    identity: &Identity,
    title: &str,
    section: &str,
    done: &Done,
) -> Response {
    let body = html! {
        (message(done.outcome == Outcome::Done, &done.message))
        @if let Some((path, label)) = &done.next { p { a #next href=(path) { (label) } } }
    };
    page(
        console,
        identity,
        Frame {
            title,
            section,
            refresh: false,
        },
        body,
    )
    .into_response()
}

/// `POST /quarantine/{id}/retry`.
pub async fn retry(
    State(console): State<Arc<Console>>,
    Extension(identity): Extension<Identity>,
    Path(id): Path<i64>,
) -> Response {
    let target = id.to_string();
    if let Some(refusal) = act::gate(&console, &identity, "quarantine.retry", &target).await {
        return refusal;
    }
    let done = act::retry(&console, id).await;
    act::record(&console, &identity, "quarantine.retry", &target, &done).await;
    result_page(&console, &identity, "Retry", "/quarantine", &done)
}

/// `POST /quarantine/{id}/discard` with `reason`.
pub async fn discard(
    State(console): State<Arc<Console>>,
    Extension(identity): Extension<Identity>,
    Path(id): Path<i64>,
    body: Bytes,
) -> Response {
    let target = id.to_string();
    if let Some(refusal) = act::gate(&console, &identity, "quarantine.discard", &target).await {
        return refusal;
    }
    let reason = Params::parse(&body).get("reason").unwrap_or("").to_string();
    let done = act::discard(&console, id, &reason).await;
    act::record(&console, &identity, "quarantine.discard", &target, &done).await;
    result_page(&console, &identity, "Discard", "/quarantine", &done)
}
