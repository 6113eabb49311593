//! Bulk retry and discard, on the selected rows or on every row the filter matches:
//!
//! 1. `GET /files/bulk?do=…` shows which files and how many, and refuses past
//!    `console.bulk_cap`; its form carries the count the operator saw.
//! 2. `POST /files/bulk` finds the rows again; if the filter now matches another number
//!    of rows than the one confirmed, it asks again instead of acting. Then it calls the
//!    same per-row action as a single retry or discard, row by row, each recorded, and
//!    lists how each ended.

use crate::console::Console;
use crate::console::act;
use crate::console::auth::{Identity, forbidden};
use crate::console::layout::{Frame, message, page, status};
use crate::console::pages::files::hidden_filter;
use crate::console::pages::{bad_request, db_error};
use crate::console::params::{Params, filter_query};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use shared::store::browse::{self, FileFilter};
use shared::store::console_actions::Outcome;
use std::collections::BTreeSet;
use std::sync::Arc;

/// What a bulk form asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Retry,
    Discard,
}

/// Which rows.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    /// These ids, as ticked.
    Selected(Vec<i64>),
    /// Whatever the filter matches when the action runs.
    Matching(FileFilter),
}

/// `do=retry-selected|discard-selected|retry-matching|discard-matching` and its rows.
fn request(params: &Params) -> Result<(Kind, Scope), String> {
    let (kind, scope) = params.get("do").and_then(|d| d.split_once('-')).ok_or(
        "do: expected retry-selected, discard-selected, retry-matching or discard-matching",
    )?;
    let kind = match kind {
        "retry" => Kind::Retry,
        "discard" => Kind::Discard,
        other => return Err(format!("do: `{other}` is neither retry nor discard")),
    };
    let scope = match scope {
        "selected" => {
            let ids: BTreeSet<i64> = params
                .all("id")
                .map(|v| {
                    v.trim()
                        .parse()
                        .map_err(|_| format!("id: `{v}` is not a number"))
                })
                .collect::<Result<_, _>>()?;
            Scope::Selected(ids.into_iter().rev().collect())
        }
        "matching" => Scope::Matching(params.filter()?),
        other => return Err(format!("do: `{other}` is neither selected nor matching")),
    };
    Ok((kind, scope))
}

/// The rows now, at most cap + 1 of them.
async fn rows_now(console: &Console, scope: &Scope) -> sqlx::Result<Vec<i64>> {
    let cap = console.config.console.bulk_cap as i64;
    match scope {
        Scope::Selected(ids) => Ok(ids.iter().copied().take(cap as usize + 1).collect()),
        Scope::Matching(filter) => {
            browse::matching_ids(&console.read, filter, cap, &console.tz_name()).await
        }
    }
}

fn verb(kind: Kind) -> &'static str {
    match kind {
        Kind::Retry => "Retry",
        Kind::Discard => "Discard",
    }
}

fn frame() -> Frame<'static> {
    Frame {
        title: "Bulk action",
        section: "/files",
        refresh: false,
    }
}

/// `GET /files/bulk`: the rows and their count, and the confirmation form.
pub async fn preview(
    State(console): State<Arc<Console>>,
    Extension(identity): Extension<Identity>,
    RawQuery(query): RawQuery,
) -> Response {
    if !identity.may_act(&console) {
        return forbidden(&console, &identity);
    }
    let params = Params::of_query(query);
    let (kind, scope) = match request(&params) {
        Ok(r) => r,
        Err(why) => return bad_request(&identity, &why),
    };
    match confirmation(&console, kind, &scope, None).await {
        Ok(body) => page(&console, &identity, frame(), body).into_response(),
        Err(e) => db_error(&identity, e),
    }
}

/// The confirmation: the files, their count, and a form that carries it.
async fn confirmation(
    console: &Console,
    kind: Kind,
    scope: &Scope,
    warning: Option<&str>,
) -> sqlx::Result<Markup> {
    let cap = console.config.console.bulk_cap;
    let ids = rows_now(console, scope).await?;
    let lines = browse::lines_of(&console.read, &ids[..ids.len().min(cap)]).await?;
    let (what, back) = match scope {
        Scope::Selected(_) => ("selected", "/files".to_string()),
        Scope::Matching(filter) => (
            "matching the filter",
            format!("/files?{}", filter_query(filter)),
        ),
    };
    Ok(html! {
        @if let Some(w) = warning { (message(false, w)) }
        @if ids.is_empty() {
            (message(false, &format!("no file {what}: nothing to do")))
        } @else if ids.len() > cap {
            (message(false, &format!(
                "more than {cap} files {what}: a bulk action takes {cap} at the most (console.bulk_cap); narrow the filter")))
        } @else {
            p #bulk-count { strong { (ids.len()) } " file(s) " (what) " will be acted on, one by one:" }
            table {
                thead { tr { th.num { "id" } th { "file" } th { "status" } th { "message" } } }
                tbody { @for l in &lines { tr {
                    td.num { a href=(format!("/files/{}", l.id)) { (l.id) } } td { (l.archivo) }
                    td { (status(l.estatus)) } td.msg { (l.mensaje) }
                } } }
            }
            form #bulk-confirm method="post" action="/files/bulk" {
                input type="hidden" name="do" value=(format!("{}-{}", verb(kind).to_lowercase(),
                    if matches!(scope, Scope::Selected(_)) { "selected" } else { "matching" }));
                input type="hidden" name="expected" value=(ids.len());
                // The very rows shown: a matching set that changed meanwhile is confirmed again.
                input type="hidden" name="shown" value=(ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(","));
                @match scope {
                    Scope::Selected(ids) => { @for id in ids { input type="hidden" name="id" value=(id); } }
                    Scope::Matching(filter) => { (hidden_filter(filter)) }
                }
                @if kind == Kind::Discard {
                    p { label { "Reason (required) " input #bulk-reason type="text" name="reason" required size="60"; } }
                }
                button #bulk-submit type="submit" { (verb(kind)) " these " (ids.len()) " file(s)" }
            }
        }
        p { a href=(back) { "Back to the list" } }
    })
}

/// `POST /files/bulk`: acts, row by row, if the rows are still the ones confirmed.
pub async fn act(
    State(console): State<Arc<Console>>,
    Extension(identity): Extension<Identity>,
    body: Bytes,
) -> Response {
    let params = Params::parse(&body);
    let what = params.get("do").unwrap_or("").to_string();
    if let Some(refusal) = act::gate(&console, &identity, "files.bulk", &what).await {
        return refusal;
    }
    let (kind, scope) = match request(&params) {
        Ok(r) => r,
        Err(why) => return bad_request(&identity, &why),
    };
    let cap = console.config.console.bulk_cap;
    let ids = match rows_now(&console, &scope).await {
        Ok(ids) => ids,
        Err(e) => return db_error(&identity, e),
    };
    let expected = params.int("expected").ok().flatten();
    let shown: BTreeSet<i64> = params
        .get("shown")
        .unwrap_or("")
        .split(',')
        .filter_map(|id| id.trim().parse().ok())
        .collect();
    let changed = if ids.len() > cap {
        Some(format!("more than {cap} files now: nothing was done"))
    } else if expected != Some(ids.len() as i64) || shown != ids.iter().copied().collect() {
        Some(format!(
            "the files changed since you confirmed {} of them: {} now; nothing was done yet, confirm again",
            expected.map_or("none".into(), |n| n.to_string()),
            ids.len()
        ))
    } else {
        None
    };
    if let Some(why) = changed {
        return match confirmation(&console, kind, &scope, Some(&why)).await {
            Ok(body) => page(&console, &identity, frame(), body).into_response(),
            Err(e) => db_error(&identity, e),
        };
    }
    let reason = params.get("reason").unwrap_or("").to_string();
    if kind == Kind::Discard && reason.is_empty() {
        return match confirmation(
            &console,
            kind,
            &scope,
            Some("a discard needs a reason: say why"),
        )
        .await
        {
            Ok(body) => page(&console, &identity, frame(), body).into_response(),
            Err(e) => db_error(&identity, e),
        };
    }
    let mut results = Vec::new();
    for id in ids {
        let done = match kind {
            Kind::Retry => act::retry(&console, id).await,
            Kind::Discard => act::discard(&console, id, &reason).await,
        };
        let name = match kind {
            Kind::Retry => "quarantine.retry (bulk)",
            Kind::Discard => "quarantine.discard (bulk)",
        };
        act::record(&console, &identity, name, &id.to_string(), &done).await;
        results.push((id, done));
    }
    let ok = results
        .iter()
        .filter(|(_, d)| d.outcome == Outcome::Done)
        .count();
    let body = html! {
        (message(ok == results.len(), &format!("{}: {ok} of {} file(s) done", verb(kind), results.len())))
        table #bulk-results {
            thead { tr { th.num { "id" } th { "outcome" } th { "message" } } }
            tbody { @for (id, d) in &results { tr {
                td.num { a href=(format!("/files/{id}")) { (id) } }
                td { (d.outcome.as_str()) }
                td.msg { (d.message) @if let Some((path, label)) = &d.next { " — " a href=(path) { (label) } } }
            } } }
        }
        p { a href="/files" { "Files" } " · " a href="/actions" { "Recorded actions" } }
    };
    page(&console, &identity, frame(), body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bulk_request_names_its_action_and_rows() {
        let p = Params::parse(b"do=retry-selected&id=3&id=1&id=3");
        assert_eq!(
            request(&p).unwrap(),
            (Kind::Retry, Scope::Selected(vec![3, 1]))
        );
        let p = Params::parse(b"do=discard-matching&status=FALLO_LAYOUT");
        assert!(
            matches!(request(&p).unwrap(), (Kind::Discard, Scope::Matching(f)) if f.statuses.len() == 1)
        );
        assert!(request(&Params::parse(b"do=delete-matching")).is_err());
        assert!(request(&Params::parse(b"do=retry-selected&id=x")).is_err());
    }
}
