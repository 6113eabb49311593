//! `dispatcher console`: the operators' console — the night, its files and its
//! quarantine in a browser, with the actions the runbook needs. Server-rendered HTML
//! (maud) on axum; one small script for the auto-refresh, every page works without it.
//!
//! - [`auth`]: who is asking (session, HTTP Basic, trusted proxy) and where a POST comes
//!   from; [`users`] (the credentials file), [`sessions`], [`throttle`];
//! - [`pages`]: one module per page; [`act`]: the actions, each the CLI's own function,
//!   recorded in `console_actions`;
//! - [`alerts`] and [`set_aside`]: what the overview shows as open alerts and files set
//!   aside, today derived from what exists (one place each to extend);
//! - [`http`]: listening, plain or TLS, and the address rule.
//!
//! Pages read through a pool whose connections `SET ROLE` to `console.read_role`
//! (`visitas_lectura`: SELECT only); only actions use the service's own pool.

mod act;
mod alerts;
mod auth;
mod http;
mod identity;
mod layout;
mod pages;
mod params;
mod sessions;
mod set_aside;
mod state;
mod throttle;
pub mod users;

pub use state::Console;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use shared::config::Config;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `dispatcher console …`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Address to listen on (instead of `console.listen`); port 0 picks a free one.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<String>,
    /// Nobody may act: every page, no action (as `console.read_only = true`).
    #[arg(long)]
    read_only: bool,
}

#[derive(clap::Subcommand)]
enum Command {
    /// The console's users (the credentials file `console.users_file`).
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(clap::Subcommand)]
enum UserCommand {
    /// Adds a user (or replaces their password and role); the password is read from
    /// standard input (its first line).
    Add {
        /// The user name (A-Z a-z 0-9 . _ @ -).
        name: String,
        /// What they may do.
        #[arg(long, value_enum)]
        role: users::Role,
    },
}

/// Whether the command needs the database (serving does; managing users does not).
pub fn needs_database(args: &Args) -> bool {
    args.command.is_none()
}

/// Whether this console serves with actions (not `--read-only`, nor `console.read_only`).
pub fn may_act(args: &Args, config: &Config) -> bool {
    args.command.is_none() && !args.read_only && !config.console.read_only
}

/// Runs `dispatcher console`: serves until SIGTERM or SIGINT, or manages users.
pub async fn run(config: &Config, pool: Option<PgPool>, args: &Args) -> anyhow::Result<()> {
    match &args.command {
        Some(Command::User(UserCommand::Add { name, role })) => {
            let path = users_file(config)?;
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\n', '\r']);
            users::add(&path, name, *role, password)?;
            println!(
                "console user {name} ({}) written to {}",
                role.as_str(),
                path.display()
            );
            Ok(())
        }
        None => {
            let pool = pool.ok_or_else(|| anyhow::anyhow!("the console needs the database"))?;
            serve(config, pool, args).await
        }
    }
}

fn users_file(config: &Config) -> anyhow::Result<PathBuf> {
    config.console.users_file.clone().ok_or_else(|| {
        anyhow::anyhow!("console.users_file is not set: where should the users be written?")
    })
}

/// The read-only pool: every connection `SET ROLE`s to `role` and is read-only, so a
/// page can read but never write, lock a row, or take the service's locks.
async fn read_pool(config: &Config, role: &str) -> anyhow::Result<PgPool> {
    if role.is_empty()
        || !role
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        anyhow::bail!("console.read_role `{role}`: a role name of a-z, 0-9 and _");
    }
    let target = shared::store::connect::target(&config.database)?;
    let set_role = format!("SET ROLE \"{role}\"; SET default_transaction_read_only = on");
    let pool = PgPoolOptions::new()
        .max_connections(config.database.pool_size)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(move |conn, _| {
            let set_role = set_role.clone();
            Box::pin(async move {
                sqlx::raw_sql(sqlx::AssertSqlSafe(set_role))
                    .execute(conn)
                    .await
                    .map(|_| ())
            })
        })
        .connect_with(target.sqlx_options()?)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "console.read_role `{role}`: cannot read as it ({e}); the service's login must be \
                 a member: GRANT {role} TO <the service's role>"
            )
        })?;
    Ok(pool)
}

/// The routes, behind the authentication middleware and the security headers.
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(pages::overview::show))
        .route("/files", get(pages::files::list))
        .route(
            "/files/bulk",
            get(pages::bulk::preview).post(pages::bulk::act),
        )
        .route("/files/{id}", get(pages::file::show))
        .route("/files/{id}/rejected.csv", get(pages::file::rejected_csv))
        .route("/quarantine", get(pages::quarantine::list))
        .route("/quarantine/{id}/retry", post(pages::quarantine::retry))
        .route("/quarantine/{id}/discard", post(pages::quarantine::discard))
        .route("/queue", get(pages::queue::show))
        .route("/queue/{item}/take-back", post(pages::queue::take_back))
        .route("/days", get(pages::days::list))
        .route("/days/{day}/zip", get(pages::days::zip))
        .route("/days/{day}/reload", post(pages::days::reload))
        .route("/actions", get(pages::actions::list))
        .route("/login", get(pages::login::show).post(pages::login::submit))
        .route("/logout", post(pages::login::logout))
        .route("/healthz", get(healthz))
        .route("/static/console.css", get(css))
        .route("/static/console.js", get(js))
        .layer(axum::middleware::from_fn_with_state(
            console.clone(),
            auth::authenticate,
        ))
        .layer(axum::middleware::from_fn(auth::security_headers))
        .with_state(console)
}

/// `GET /healthz`: 200 `ok` when the database answers the read role, 503 otherwise.
async fn healthz(
    axum::extract::State(console): axum::extract::State<Arc<Console>>,
) -> axum::response::Response {
    match sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(&console.read)
        .await
    {
        Ok(_) => "ok\n".into_response(),
        Err(e) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("database: {e}\n"),
        )
            .into_response(),
    }
}

async fn css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/console.css"),
    )
}

async fn js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/console.js"),
    )
}

/// Checks the configuration, opens both pools, listens, serves.
async fn serve(config: &Config, write: PgPool, args: &Args) -> anyhow::Result<()> {
    let settings = &config.console;
    let listen = args
        .listen
        .clone()
        .unwrap_or_else(|| settings.listen.clone());
    let tls = http::tls_config(settings)?;
    let addr = http::check_listen(&listen, tls.is_some(), !settings.trusted_proxies.is_empty())?;
    if settings.users_file.is_none() && settings.trusted_user_header.is_none() {
        anyhow::bail!(
            "console.users_file is not set (and no console.trusted_user_header): nobody could log in"
        );
    }
    if settings.trusted_user_header.is_some() && settings.trusted_proxies.is_empty() {
        anyhow::bail!(
            "console.trusted_user_header needs console.trusted_proxies: the addresses of the proxies whose header is believed"
        );
    }
    let console = Arc::new(Console {
        read: read_pool(config, &settings.read_role).await?,
        write,
        users: users::Users::open(settings.users_file.clone())?,
        sessions: sessions::Sessions::new(
            Duration::from_secs(settings.session_idle_secs),
            Duration::from_secs(settings.session_max_secs),
        ),
        throttle: throttle::Throttle::new(settings.login_failures_allowed),
        read_only: args.read_only || settings.read_only,
        tls: tls.is_some(),
        config: config.clone(),
    });
    http::serve(addr, router(console.clone()), tls, console.read_only).await
}
