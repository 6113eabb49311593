//! One module per page (or group of routes); each handler reads through the console's
//! read-only pool and renders with [`super::layout`]. Actions are POST handlers that
//! check the role first and go through [`super::act`].

pub mod actions;
pub mod bulk;
pub mod days;
pub mod file;
pub mod files;
pub mod login;
pub mod overview;
pub mod quarantine;
pub mod queue;

use super::auth::Identity;
use super::layout::problem;
use axum::http::StatusCode;
use axum::response::Response;

/// A page that could not be read from the database.
pub fn db_error(identity: &Identity, e: sqlx::Error) -> Response {
    tracing::error!(error = %e, "console: database read failed");
    problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        Some(identity),
        &format!("the database could not be read: {e}"),
    )
}

/// A request with a bad parameter, named.
pub fn bad_request(identity: &Identity, why: &str) -> Response {
    problem(StatusCode::BAD_REQUEST, Some(identity), why)
}
