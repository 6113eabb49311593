//! Database connections. Two pools, two roles:
//! - sqlx: migrations, LISTEN/NOTIFY, the dispatcher's and operators' queries;
//! - deadpool-postgres (tokio-postgres): the performer's claims and its load
//!   transaction, whose binary COPY is the fastest bulk path measured here.

use super::settings::DatabaseConfig;
use super::tls::{DbTarget, TlsRefusal, refusal};
use crate::types::InvalidSetting;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod};
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::time::Duration;
use tracing::warn;

/// Errors opening the database; never shows the URL (it may hold a password).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Configuration problem.
    #[error(transparent)]
    Config(#[from] InvalidSetting),
    /// The server was refused during the TLS handshake, before any credential was sent.
    #[error("database {server}: refused before logging in: {reason}")]
    Tls {
        /// `host:port`.
        server: String,
        /// Why.
        reason: TlsRefusal,
    },
    /// Connecting failed.
    #[error("database {server}: {source}")]
    Connect {
        /// `host:port`.
        server: String,
        /// What sqlx said.
        source: sqlx::Error,
    },
    /// Migration failed.
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Building the pool failed.
    #[error("database pool: {0}")]
    Pool(String),
}

/// The database and how to reach it, from `database.url` (or `url_file`) and `[database]`.
pub fn target(database: &DatabaseConfig) -> Result<DbTarget, DbError> {
    let target = DbTarget::new(&database.url()?, database)?;
    if let Some(weakness) = target.weakness() {
        warn!("{weakness}");
    }
    Ok(target)
}

/// The migrations in `sql/migrations`, embedded in the binaries.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../sql/migrations");

/// A sqlx pool for the dispatcher, operator commands and LISTEN.
pub async fn sqlx_pool(database: &DatabaseConfig) -> Result<PgPool, DbError> {
    let target = target(database)?;
    PgPoolOptions::new()
        .max_connections(database.pool_size)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(target.sqlx_options()?)
        .await
        .map_err(|source| match refusal(&source) {
            Some(reason) => DbError::Tls {
                server: target.server.clone(),
                reason,
            },
            None => DbError::Connect {
                server: target.server.clone(),
                source,
            },
        })
}

/// A sqlx pool of at most `database.pool_size` connections that connects on first use:
/// a performer's reads beside its items' path, which must not stop its start while the
/// database is down.
pub fn sqlx_pool_lazy(database: &DatabaseConfig) -> Result<PgPool, DbError> {
    let target = target(database)?;
    Ok(PgPoolOptions::new()
        .max_connections(database.pool_size)
        .acquire_timeout(Duration::from_secs(30))
        .connect_lazy_with(target.sqlx_options()?))
}

/// The database's clock: what listings are compared with (the items' `updated_at`).
pub async fn database_now(pool: &PgPool) -> sqlx::Result<chrono::DateTime<chrono::Utc>> {
    sqlx::query_scalar("SELECT now()").fetch_one(pool).await
}

/// Applies pending migrations; a second run changes nothing.
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// The performer's pool: at most `database.pool_size` connections, whatever the worker count.
/// One connection is made at once: a server refused by the TLS check stops the start; one
/// merely unreachable is only logged (the workers retry).
pub async fn performer_pool(database: &DatabaseConfig) -> Result<Pool, DbError> {
    let target = target(database)?;
    let (pg, tls) = target.tokio_postgres()?;
    let manager = Manager::from_config(
        pg,
        tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(database.pool_size as usize)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(60)))
        .create_timeout(Some(Duration::from_secs(30)))
        .build()
        .map_err(|e| DbError::Pool(e.to_string()))?;
    match pool.get().await {
        Ok(_) => {}
        Err(PoolError::Backend(e)) => match refusal(&e) {
            Some(reason) => {
                return Err(DbError::Tls {
                    server: target.server,
                    reason,
                });
            }
            None => {
                warn!(database = %target.server, error = %describe(&e), "database not reachable yet")
            }
        },
        Err(e) => warn!(database = %target.server, error = %e, "database not reachable yet"),
    }
    Ok(pool)
}

/// A tokio-postgres error with the server's message and SQLSTATE (its `Display` shows only "db error").
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(refusal) = refusal(e) {
        return format!("TLS refused: {refusal}");
    }
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

/// A database error from either client, as the one classifier ([`is_transient`]) reads it.
pub trait DatabaseFailure: std::error::Error + 'static {
    /// The server's SQLSTATE, when the server answered.
    fn sqlstate(&self) -> Option<&str>;
    /// The client itself refused (a column that does not decode, a bad argument): a
    /// defect, never transient.
    fn client_defect(&self) -> bool;
}

impl DatabaseFailure for tokio_postgres::Error {
    fn sqlstate(&self) -> Option<&str> {
        self.as_db_error().map(|db| db.code().code())
    }

    fn client_defect(&self) -> bool {
        // tokio-postgres does not say which of its errors are its own refusals; the
        // statements it runs are fixed, so every non-server error is taken as the
        // connection's.
        false
    }
}

impl DatabaseFailure for sqlx::Error {
    fn sqlstate(&self) -> Option<&str> {
        self.as_database_error()
            .and_then(|db| db.code())
            .map(|code| match code {
                std::borrow::Cow::Borrowed(code) => code,
                // sqlx's Postgres error always borrows its code; an owned one is no answer.
                std::borrow::Cow::Owned(_) => "",
            })
    }

    fn client_defect(&self) -> bool {
        matches!(
            self,
            sqlx::Error::Configuration(_)
                | sqlx::Error::ColumnDecode { .. }
                | sqlx::Error::ColumnNotFound(_)
                | sqlx::Error::ColumnIndexOutOfBounds { .. }
                | sqlx::Error::Decode(_)
                | sqlx::Error::Encode(_)
                | sqlx::Error::TypeNotFound { .. }
                | sqlx::Error::RowNotFound
        )
    }
}

/// The one classifier of database errors, for both clients: a broken connection or a
/// transient server condition may pass; anything the server refused on its merits (a
/// constraint, bad data, a missing table), a refused TLS handshake or a defect of the
/// client will not.
pub fn is_transient(e: &impl DatabaseFailure) -> bool {
    // A refused TLS handshake (unknown CA, wrong host name) will be refused again.
    refusal(e).is_none() && !e.client_defect() && is_transient_sqlstate(e.sqlstate())
}

/// [`is_transient`] by SQLSTATE; `None`: no server error (the connection broke or timed out).
pub(crate) fn is_transient_sqlstate(code: Option<&str>) -> bool {
    // Class 08 connection, 40 serialization/deadlock, 53 resources,
    // 57 operator intervention (admin shutdown, terminated backend), 58 system I/O;
    // 25P03: the server ended a transaction left idle past its timeout.
    code.is_none_or(|code| {
        ["08", "25P03", "40", "53", "57", "58"]
            .iter()
            .any(|class| code.starts_with(class))
    })
}

#[cfg(test)]
mod tests {
    use super::is_transient_sqlstate;

    #[test]
    fn database_errors_are_transient_only_when_they_may_pass() {
        for (code, transient) in [
            (None, true),
            (Some("08006"), true),  // connection failure
            (Some("25P03"), true),  // idle in transaction past its timeout
            (Some("40001"), true),  // serialization failure
            (Some("40P01"), true),  // deadlock
            (Some("53100"), true),  // disk full
            (Some("57P01"), true),  // admin shutdown
            (Some("57014"), true),  // query cancelled
            (Some("58030"), true),  // I/O error
            (Some("23505"), false), // unique violation
            (Some("23514"), false), // check violation
            (Some("22021"), false), // bad encoding (e.g. a NUL)
            (Some("42P01"), false), // undefined table
            (Some("P0001"), false), // raised by a trigger
        ] {
            assert_eq!(is_transient_sqlstate(code), transient, "{code:?}");
        }
    }
}
