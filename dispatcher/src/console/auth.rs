//! Who is asking, and whether they may: one middleware in front of every route.
//!
//! - **Where a POST comes from.** A browser's POST carries `Sec-Fetch-Site` or `Origin`:
//!   it is refused unless same-origin. A POST with neither is a script's: accepted only
//!   with HTTP Basic credentials, never with a session cookie alone (a cookie is what a
//!   forged request would ride on).
//! - **Who.** In order: a trusted reverse proxy's user header (only from an address of
//!   `console.trusted_proxies`), HTTP Basic (scripts), the session cookie (browsers).
//!   Roles come from the credentials file.
//! - **Login throttling** for Basic and the login form alike ([`super::throttle`]).
//!
//! Without credentials a page answers 401: a browser gets the login form in it, a script
//! gets `WWW-Authenticate: Basic`.

use super::Console;
pub use super::identity::{Identity, Via};
use super::sessions::COOKIE;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use std::net::SocketAddr;
use std::sync::Arc;

/// Where a request comes from, as its headers tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// A browser, from one of the console's own pages.
    SameOrigin,
    /// A browser, from another site (or an opaque origin).
    CrossSite,
    /// Neither header: a script.
    Script,
}

/// `Sec-Fetch-Site` first (every current browser sends it), else `Origin` compared with
/// the `Host` the request was sent to.
pub fn caller(headers: &HeaderMap) -> Caller {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        return if site == "same-origin" {
            Caller::SameOrigin
        } else {
            Caller::CrossSite
        };
    }
    if let Some(origin) = text("origin") {
        let authority = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        return match (authority, text("host")) {
            (Some(a), Some(host)) if a.eq_ignore_ascii_case(host) => Caller::SameOrigin,
            _ => Caller::CrossSite,
        };
    }
    Caller::Script
}

/// Whether the request wants a page (a browser) rather than data.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

/// The value of cookie `name`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// User and password of an `Authorization: Basic` header.
fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The keys a login try is throttled by.
pub fn throttle_keys(user: &str, peer: &SocketAddr) -> Vec<String> {
    vec![format!("user:{user}"), format!("addr:{}", peer.ip())]
}

/// What proving who one is ended in.
enum Proof {
    /// Nobody claimed to be anyone.
    None,
    /// Someone is.
    Known(Identity),
    /// A claim failed (wrong password, unknown proxy user), or must wait.
    Refused(Response),
}

/// Checks Basic credentials, throttled.
async fn prove_basic(console: &Console, peer: &SocketAddr, user: &str, password: &str) -> Proof {
    let keys = throttle_keys(user, peer);
    if let Some(wait) = console.throttle.wait(&keys) {
        return Proof::Refused(too_many(wait));
    }
    match console.users.check(user, password).await {
        Some(role) => {
            console.throttle.succeeded(&keys[0]);
            Proof::Known(Identity {
                user: user.to_string(),
                role,
                via: Via::Basic,
            })
        }
        None => {
            console.throttle.failed(&keys);
            let user = console.users.loggable(user);
            tracing::warn!(user, peer = %peer.ip(), "console: wrong credentials (Basic)");
            Proof::Refused(unauthorized(false, "wrong user name or password"))
        }
    }
}

/// Who the request is from, by the rules of the module's doc.
async fn prove(console: &Console, peer: &SocketAddr, headers: &HeaderMap, script: bool) -> Proof {
    if script {
        // A script's POST proves who it is on the request itself: HTTP Basic, nothing else.
        return match basic(headers) {
            Some((user, password)) => prove_basic(console, peer, &user, &password).await,
            None => Proof::None,
        };
    }
    if let Some(header_name) = &console.config.console.trusted_user_header
        && console.config.console.trusted_proxies.contains(&peer.ip())
        && let Some(user) = headers
            .get(header_name.as_str())
            .and_then(|v| v.to_str().ok())
    {
        return match console.users.role_of(user) {
            Some(role) => Proof::Known(Identity {
                user: user.to_string(),
                role,
                via: Via::Proxy,
            }),
            None => Proof::Refused(super::layout::problem(
                StatusCode::FORBIDDEN,
                None,
                &format!("`{user}` is not in the console's users file"),
            )),
        };
    }
    if let Some((user, password)) = basic(headers) {
        return prove_basic(console, peer, &user, &password).await;
    }
    match cookie(headers, COOKIE).and_then(|t| console.sessions.get(t, peer.ip()).map(|s| (t, s))) {
        Some((token, s)) => Proof::Known(Identity {
            user: s.user,
            role: s.role,
            via: Via::Session(token.to_string()),
        }),
        None => Proof::None,
    }
}

/// The middleware: refuses cross-site POSTs, finds the user, answers 401 without one
/// (except on the public routes), and hands the [`Identity`] to the handlers.
pub async fn authenticate(
    State(console): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    let public = path == "/login" || path == "/healthz" || path.starts_with("/static/");
    let unsafe_method = !matches!(*request.method(), Method::GET | Method::HEAD);
    let who = caller(request.headers());
    if unsafe_method && who == Caller::CrossSite {
        tracing::warn!(%path, peer = %peer.ip(), "console: cross-site POST refused");
        return super::layout::problem(
            StatusCode::FORBIDDEN,
            None,
            "refused: this form was not sent from the console's own pages",
        );
    }
    let script = unsafe_method && who == Caller::Script;
    match prove(&console, &peer, request.headers(), script).await {
        Proof::Known(identity) => {
            request.extensions_mut().insert(identity);
        }
        Proof::Refused(response) => return response,
        // Before the public routes: a script does not log in by the form either.
        Proof::None if script => {
            return unauthorized(false, "a script's POST must carry HTTP Basic credentials");
        }
        Proof::None if public => {}
        Proof::None => {
            let page = wants_html(request.headers());
            return if page && request.method() == Method::GET {
                super::layout::login_form(StatusCode::UNAUTHORIZED, &path_and_query(&request), None)
            } else {
                unauthorized(page, "log in first")
            };
        }
    }
    request.extensions_mut().insert(peer);
    next.run(request).await
}

fn path_and_query(request: &Request) -> String {
    request
        .uri()
        .path_and_query()
        .map_or("/".to_string(), |p| p.to_string())
}

/// 401: for a script with `WWW-Authenticate: Basic`.
fn unauthorized(page: bool, why: &str) -> Response {
    let mut response = super::layout::problem(StatusCode::UNAUTHORIZED, None, why);
    if !page {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"visitas console\", charset=\"UTF-8\""),
        );
    }
    response
}

/// 429 with how long to wait.
pub fn too_many(wait: std::time::Duration) -> Response {
    let secs = wait.as_secs().max(1);
    let mut response = super::layout::problem(
        StatusCode::TOO_MANY_REQUESTS,
        None,
        &format!("too many failed logins: try again in {secs} s"),
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        header::HeaderValue::from_str(&secs.to_string()).expect("digits"),
    );
    response
}

/// Security headers on every response: no framing, no foreign scripts or styles, no
/// caching of pages that show the night's data, no referrer beyond the console.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
        ("cache-control", "no-store"),
    ] {
        headers.insert(name, header::HeaderValue::from_static(value));
    }
    response
}

/// The refusal of an action to someone who may not act.
pub fn forbidden(console: &Console, identity: &Identity) -> Response {
    let why = if console.read_only {
        "the console runs read-only: no actions"
    } else {
        "viewers cannot act: ask an operator"
    };
    super::layout::problem(StatusCode::FORBIDDEN, Some(identity), why).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_caller_is_told_by_fetch_metadata_then_origin() {
        assert_eq!(
            caller(&headers(&[("sec-fetch-site", "same-origin")])),
            Caller::SameOrigin
        );
        for site in ["cross-site", "same-site", "none"] {
            let h = headers(&[
                ("sec-fetch-site", site),
                ("origin", "http://h:1"),
                ("host", "h:1"),
            ]);
            assert_eq!(caller(&h), Caller::CrossSite, "{site}");
        }
        assert_eq!(
            caller(&headers(&[("origin", "http://h:1"), ("host", "h:1")])),
            Caller::SameOrigin
        );
        assert_eq!(
            caller(&headers(&[("origin", "http://evil:1"), ("host", "h:1")])),
            Caller::CrossSite
        );
        assert_eq!(
            caller(&headers(&[("origin", "null"), ("host", "h:1")])),
            Caller::CrossSite
        );
        assert_eq!(caller(&headers(&[("host", "h:1")])), Caller::Script);
    }

    #[test]
    fn basic_credentials_and_cookies_are_read() {
        let h = headers(&[
            ("authorization", "Basic YW5hOnNlY3JldDpwYXJ0"),
            ("cookie", "a=1; visitas_console=abc; b=2"),
        ]);
        assert_eq!(basic(&h), Some(("ana".into(), "secret:part".into())));
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(basic(&headers(&[("authorization", "Bearer x")])), None);
    }
}
