//! `GET /actions`: every action taken in the console, newest first (`user=NAME` narrows
//! it), paged by keyset.

use crate::console::Console;
use crate::console::auth::Identity;
use crate::console::layout::{Frame, page, pager};
use crate::console::pages::files::PAGE_ROWS;
use crate::console::pages::{bad_request, db_error};
use crate::console::params::Params;
use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use shared::store::console_actions;
use std::sync::Arc;

/// `GET /actions`.
pub async fn list(
    State(console): State<Arc<Console>>,
    Extension(identity): Extension<Identity>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::of_query(query);
    let at = match params.page() {
        Ok(at) => at,
        Err(why) => return bad_request(&identity, &why),
    };
    let user = params.get("user");
    let found = match console_actions::page(&console.read, user, at, PAGE_ROWS).await {
        Ok(found) => found,
        Err(e) => return db_error(&identity, e),
    };
    let user_query = user
        .map(|u| {
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("user", u)
                .finish()
        })
        .unwrap_or_default();
    let body = html! {
        table #actions {
            thead { tr { th.num { "#" } th { "when" } th { "who" } th { "via" } th { "action" } th { "on" } th { "outcome" } th { "message" } } }
            tbody { @for a in &found.rows { tr {
                td.num { (a.id) } td { (a.at) }
                td { a href=(format!("/actions?{}", url::form_urlencoded::Serializer::new(String::new()).append_pair("user", &a.actor).finish())) { (a.actor) } }
                td { (a.via) } td { (a.action) } td { (a.target) } td { (a.outcome) } td.msg { (a.message) }
            } } }
        }
        @if found.rows.is_empty() { p { "No action yet." } }
        (pager(found.newer, found.older, |at| format!("/actions?{}", crate::console::pages::files::join(&user_query, at))))
    };
    page(
        &console,
        &identity,
        Frame {
            title: "Actions",
            section: "/actions",
            refresh: true,
        },
        body,
    )
    .into_response()
}
