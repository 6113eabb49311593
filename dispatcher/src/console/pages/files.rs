//! `GET /files`: `bitacora_control` filtered by `status`, `from`, `to`, `feed`, `q` and
//! `unresolved=1`, all in the query string (a list bookmarks), paged by keyset
//! (`before=ID`, `after=ID`). Operators select rows, or take every row the filter
//! matches, for a bulk retry or discard ([`super::bulk`]).

use crate::console::Console;
use crate::console::auth::Identity;
use crate::console::layout::{Frame, or_dash, page, pager, status};
use crate::console::pages::{bad_request, db_error};
use crate::console::params::{Params, filter_query};
use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use shared::store::browse::{self, FEED, FileFilter};
use shared::types::AuditStatus;
use std::sync::Arc;

/// Rows per page.
pub const PAGE_ROWS: i64 = 50;

/// `GET /files`.
pub async fn list(
    State(console): State<Arc<Console>>,
    Extension(identity): Extension<Identity>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::of_query(query);
    let (filter, at) = match params.filter().and_then(|f| Ok((f, params.page()?))) {
        Ok(read) => read,
        Err(why) => return bad_request(&identity, &why),
    };
    let found = browse::files(&console.read, &filter, at, PAGE_ROWS, &console.tz_name()).await;
    let found = match found {
        Ok(found) => found,
        Err(e) => return db_error(&identity, e),
    };
    let query = filter_query(&filter);
    let acts = identity.may_act(&console);
    let body = html! {
        (filter_form(&filter))
        @if acts {
            // Bulk actions go through a confirmation page that shows the count first.
            form #bulk method="get" action="/files/bulk" {
                (hidden_filter(&filter))
                div.actions {
                    button name="do" value="retry-selected" { "Retry selected" }
                    button name="do" value="discard-selected" { "Discard selected" }
                    button name="do" value="retry-matching" { "Retry all matching…" }
                    button name="do" value="discard-matching" { "Discard all matching…" }
                }
            }
        }
        table #files {
            thead { tr {
                @if acts { th { "" } }
                th.num { "id" } th { "file" } th { "status" } th { "day" } th { "made" }
                th.num { "records" } th.num { "rejected" } th.num { "ms" } th { "message" }
            } }
            tbody {
                @for f in &found.rows {
                    tr {
                        @if acts { td { input type="checkbox" form="bulk" name="id" value=(f.id) aria-label={"select " (f.id)}; } }
                        td.num { a href=(format!("/files/{}", f.id)) { (f.id) } }
                        td { a href=(format!("/files/{}", f.id)) { (f.archivo) } }
                        td { (status(f.estatus)) @if f.discarded { " discarded" } }
                        td { (or_dash(&f.fecha_negocio)) }
                        td { (f.creado) }
                        td.num { (or_dash(&f.registros_totales)) }
                        td.num { (or_dash(&f.registros_error)) }
                        td.num { (or_dash(&f.duracion_ms)) }
                        td.msg { (f.mensaje) @if let Some(r) = f.reprocesa_de { " (retries " a href=(format!("/files/{r}")) { (r) } ")" } }
                    }
                }
            }
        }
        @if found.rows.is_empty() { p { "No file matches." } }
        (pager(found.newer, found.older, |at| format!("/files?{}", join(&query, at))))
    };
    page(
        &console,
        &identity,
        Frame {
            title: "Files",
            section: "/files",
            refresh: true,
        },
        body,
    )
    .into_response()
}

/// `a&b`, either part possibly empty.
pub fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}&{b}"),
    }
}

/// The filter as a GET form: submitting it is the bookmarkable URL.
fn filter_form(filter: &FileFilter) -> Markup {
    let chosen = |s: AuditStatus| filter.statuses.len() == 1 && filter.statuses[0] == s;
    html! {
        form.filters #filters method="get" action="/files" {
            label { "status"
                select #f-status name="status" {
                    option value="" { "any" }
                    @for s in AuditStatus::ALL { option value=(s.as_str()) selected[chosen(*s)] { (s.as_str()) } }
                    @if filter.statuses.len() > 1 {
                        option value=(filter.statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")) selected { "several" }
                    }
                }
            }
            label { "from" input #f-from type="date" name="from" value=[filter.from.map(|d| d.to_string())]; }
            label { "to" input #f-to type="date" name="to" value=[filter.to.map(|d| d.to_string())]; }
            label { "feed"
                select name="feed" {
                    option value="" { "any" }
                    option value=(FEED) selected[filter.feed.as_deref() == Some(FEED)] { (FEED) }
                }
            }
            label { "name or message" input #f-q type="search" name="q" value=[filter.text.as_deref()]; }
            label { "unresolved only" input #f-unresolved type="checkbox" name="unresolved" value="1" checked[filter.unresolved]; }
            button #f-apply type="submit" { "Filter" }
            a href="/files" { "clear" }
        }
    }
}

/// The filter as hidden fields of another form.
pub fn hidden_filter(filter: &FileFilter) -> Markup {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(filter_query(filter).as_bytes())
        .into_owned()
        .collect();
    html! { @for (k, v) in &pairs { input type="hidden" name=(k) value=(v); } }
}
