//! `GET /login`, `POST /login` (the form: user, password) and `POST /logout`.

use crate::console::Console;
use crate::console::auth::{Identity, Via, throttle_keys, too_many};
use crate::console::layout::login_form;
use crate::console::params::Params;
use crate::console::sessions::COOKIE;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;

/// Where to go after logging in: a path of this console, never another site.
/// (Browsers drop tabs and line breaks from an address, and read `\\` as `/`: a path
/// with either could become `//another.site`.)
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

/// `GET /login`.
pub async fn show(RawQuery(query): RawQuery) -> Response {
    let params = Params::of_query(query);
    login_form(StatusCode::OK, &safe_next(params.get("next")), None)
}

/// `POST /login`: a session for the right password (throttled), the form again otherwise.
pub async fn submit(
    State(console): State<Arc<Console>>,
    Extension(peer): Extension<SocketAddr>,
    body: Bytes,
) -> Response {
    let form = Params::parse(&body);
    let next = safe_next(form.get("next"));
    let (Some(user), Some(password)) = (form.get("user"), form.raw("password")) else {
        return login_form(
            StatusCode::BAD_REQUEST,
            &next,
            Some("user and password, please"),
        );
    };
    let keys = throttle_keys(user, &peer);
    if let Some(wait) = console.throttle.wait(&keys) {
        return too_many(wait);
    }
    let Some(role) = console.users.check(user, password).await else {
        console.throttle.failed(&keys);
        let user = console.users.loggable(user);
        tracing::warn!(user, peer = %peer.ip(), "console: wrong credentials (login form)");
        return login_form(
            StatusCode::UNAUTHORIZED,
            &next,
            Some("wrong user name or password"),
        );
    };
    console.throttle.succeeded(&keys[0]);
    let token = match console.sessions.open(user, role, peer.ip()) {
        Ok(token) => token,
        Err(e) => {
            return crate::console::layout::problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                &e.to_string(),
            );
        }
    };
    tracing::info!(user, role = role.as_str(), "console: logged in");
    let secure = if console.tls { "; Secure" } else { "" };
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/{secure}"),
            ),
            (header::LOCATION, next),
        ],
    )
        .into_response()
}

/// `POST /logout`: the session ends, the cookie is cleared.
pub async fn logout(
    State(console): State<Arc<Console>>,
    identity: Option<Extension<Identity>>,
) -> Response {
    if let Some(Extension(Identity {
        via: Via::Session(token),
        user,
        ..
    })) = identity
    {
        console.sessions.close(&token);
        tracing::info!(user, "console: logged out");
    }
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
            ),
            (header::LOCATION, "/login".to_string()),
        ],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn after_login_only_paths_of_this_console() {
        assert_eq!(
            safe_next(Some("/files?status=FALLO_LAYOUT")),
            "/files?status=FALLO_LAYOUT"
        );
        for bad in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil",
            "files",
            "/\t/evil.example",
            "/ x",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
    }
}
