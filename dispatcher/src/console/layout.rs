//! The page around every page: the navigation, who is logged in, the refresh switch, and
//! the small pieces pages share (status badges, messages, pagers). Markup is maud's:
//! every value is escaped unless a page says otherwise (none does).

use super::Console;
use super::identity::{Identity, Via};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use shared::types::AuditStatus;

/// The sections of the console, in the navigation's order: (path, label).
const NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/files", "Files"),
    ("/quarantine", "Quarantine"),
    ("/queue", "Queue"),
    ("/days", "Days"),
    ("/actions", "Actions"),
];

/// How a page is framed.
pub struct Frame<'a> {
    /// The title (and heading).
    pub title: &'a str,
    /// The navigation entry to mark.
    pub section: &'a str,
    /// Refreshes itself every `console.refresh_secs` (pausable).
    pub refresh: bool,
}

/// A whole page for `identity`.
pub fn page(console: &Console, identity: &Identity, frame: Frame<'_>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (frame.title) " · visitas console" }
                link rel="stylesheet" href="/static/console.css";
                script src="/static/console.js" defer {}
            }
            body {
                header {
                    span.brand { "visitas" }
                    nav {
                        @for (path, label) in NAV {
                            a href=(path) class=[(*path == frame.section).then_some("here")] { (label) }
                        }
                    }
                    span.who {
                        @if console.read_only { span.badge.readonly { "read-only" } " " }
                        span #user { (identity.user) } " (" span #role { (identity.role.as_str()) } ") "
                        @if let Via::Session(_) = identity.via {
                            form.inline method="post" action="/logout" { button type="submit" { "Log out" } }
                        }
                    }
                }
                @if frame.refresh {
                    div.refresh { button #refresh-toggle type="button" hidden { "Pause auto-refresh" } }
                }
                main data-refresh=[frame.refresh.then_some(console.config.console.refresh_secs)] {
                    h1 { (frame.title) }
                    (body)
                }
            }
        }
    }
}

/// The login form, with `code` (200, or 401 for a page asked for without credentials).
pub fn login_form(code: StatusCode, next: &str, error: Option<&str>) -> Response {
    let body = html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { "Log in · visitas console" }
                   link rel="stylesheet" href="/static/console.css"; }
            body { main.login {
                h1 { "visitas console" }
                @if let Some(e) = error { (message(false, e)) }
                form method="post" action="/login" {
                    input type="hidden" name="next" value=(next);
                    p { label { "User " input #login-user type="text" name="user" autocomplete="username" required autofocus; } }
                    p { label { "Password " input #login-password type="password" name="password" autocomplete="current-password" required; } }
                    p { button #login-submit type="submit" { "Log in" } }
                }
            } }
        }
    };
    (code, body).into_response()
}

/// A status as a coloured badge.
pub fn status(s: AuditStatus) -> Markup {
    let class = if s.is_failure() {
        "bad"
    } else if s.resolves_failure() {
        "good"
    } else {
        "busy"
    };
    html! { span class={"status " (class)} { (s.as_str()) } }
}

/// A message box: `ok` green, else red.
pub fn message(ok: bool, text: &str) -> Markup {
    html! { p class={"message " (if ok { "ok" } else { "error" })} role="status" { (text) } }
}

/// A bare page (no navigation) for refusals and errors, with its status code.
pub fn problem(code: StatusCode, identity: Option<&Identity>, text: &str) -> Response {
    let body = html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { (code.as_u16()) " · visitas console" }
                   link rel="stylesheet" href="/static/console.css"; }
            body { main {
                h1 { (code.canonical_reason().unwrap_or("Error")) }
                (message(false, text))
                p { a href="/" { "Overview" } @if identity.is_none() { " · " a href="/login" { "Log in" } } }
            } }
        }
    };
    (code, body).into_response()
}

/// Links to the newer and older pages of a keyset list; `link` makes a page's URL from
/// its query (`before=ID` or `after=ID`).
pub fn pager(newer: Option<i64>, older: Option<i64>, link: impl Fn(&str) -> String) -> Markup {
    html! {
        nav.pager {
            @if let Some(id) = newer { a rel="prev" href=(link(&format!("after={id}"))) { "← newer" } }
            @if let Some(id) = older { a rel="next" href=(link(&format!("before={id}"))) { "older →" } }
        }
    }
}

/// Optional text, or a dash.
pub fn or_dash<T: std::fmt::Display>(value: &Option<T>) -> String {
    value
        .as_ref()
        .map_or_else(|| "—".to_string(), |v| v.to_string())
}
