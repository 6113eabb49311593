//! Database connections. Two pools, two roles:
//! - sqlx: migrations, LISTEN/NOTIFY, the dispatcher's and operators' queries;
//! - deadpool-postgres (tokio-postgres): the performer's claims and its load
//!   transaction, whose binary COPY is the fastest bulk path measured here.
//!
//! Both are bounded against a server that stops answering (`[database]` timeouts):
//! tokio-postgres by a connect timeout, TCP keepalives and `TCP_USER_TIMEOUT`; sqlx,
//! which has none of the socket options, by its acquire timeout and [`bounded`] around
//! the queries that run in loops. Neither keeps a connection to a server that cannot
//! take writes (a standby after a failover or a switchover). What is an outage, waited
//! out rather than failed, is decided here too ([`is_outage`]).

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

/// sqlx's pool options: `size` connections, acquiring one bounded by the connect
/// timeout (sqlx connects inside the acquire), and never a connection to a server that
/// cannot take writes: checked when it is made and each time it is handed out (in place
/// of sqlx's own ping, so at the same cost).
fn sqlx_pool_options(target: &DbTarget, size: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(target.timeouts.connect)
        .after_connect(|conn, _| Box::pin(async move { refuse_read_only(conn).await }))
        .test_before_acquire(false)
        .before_acquire(|conn, _| Box::pin(async move { Ok(refuse_read_only(conn).await.is_ok()) }))
}

/// An error when the server behind `conn` cannot take writes (a standby).
async fn refuse_read_only(conn: &mut sqlx::PgConnection) -> sqlx::Result<()> {
    let read_only: String = sqlx::query_scalar("SHOW transaction_read_only")
        .fetch_one(conn)
        .await?;
    if read_only == "on" {
        return Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "the server is read-only (a standby, or a primary being demoted): not used",
        )));
    }
    Ok(())
}

/// A sqlx pool for the dispatcher and operator commands.
pub async fn sqlx_pool(database: &DatabaseConfig) -> Result<PgPool, DbError> {
    let target = target(database)?;
    sqlx_pool_options(&target, database.pool_size)
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
    Ok(sqlx_pool_options(&target, database.pool_size).connect_lazy_with(target.sqlx_options()?))
}

/// One connection for `LISTEN`, made like every other (the `[database]` TLS settings
/// and time limits), on first use.
pub fn listener_pool(database: &DatabaseConfig) -> Result<PgPool, DbError> {
    let target = target(database)?;
    Ok(sqlx_pool_options(&target, 1)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_lazy_with(target.sqlx_options()?))
}

/// `query`, or an I/O error (an outage, see [`is_outage_sqlx`]) when no answer came
/// within `limit`: for sqlx queries that run in loops, which a server gone without a
/// word (no keepalive in sqlx) would otherwise hold until the kernel gives up.
pub async fn bounded<T>(
    limit: Duration,
    query: impl Future<Output = sqlx::Result<T>>,
) -> sqlx::Result<T> {
    match tokio::time::timeout(limit, query).await {
        Ok(done) => done,
        Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer from the database within {} s", limit.as_secs()),
        ))),
    }
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
        .create_timeout(Some(target.timeouts.connect))
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
    // 25P03: the server ended a transaction left idle past its timeout; 25006: a write
    // reached a standby (a switchover, a multi-host URL): the primary is elsewhere now.
    code.is_none_or(|code| {
        is_outage_sqlstate(code)
            || ["08", "25P03", "40", "53", "57", "58"]
                .iter()
                .any(|class| code.starts_with(class))
    })
}

/// SQLSTATEs of a database that is not there for writes right now, and will be again:
/// class 08 (the connection), 57P01–57P03 (the server shutting down, crashed, or not
/// accepting connections yet) and 25006 (a read-only transaction: a standby).
pub(crate) fn is_outage_sqlstate(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "25006" | "57P01" | "57P02" | "57P03")
}

/// Whether `e` says the database is unreachable or cannot take writes for now — a
/// failover, a restart, a switchover — rather than anything about the work: such an
/// error is waited out (`database.outage_budget_secs`) and never spends an attempt.
pub fn is_outage(e: &tokio_postgres::Error) -> bool {
    if refusal(e).is_some() {
        return false;
    }
    match e.code() {
        Some(code) => is_outage_sqlstate(code.code()),
        // The kinds tokio-postgres gives a broken, unanswered or refused connection
        // (its kind is private; its text is stable): never a defect of the statement.
        None => {
            e.is_closed()
                || [
                    "error connecting to server",
                    "timeout waiting for server",
                    "error communicating with the server",
                    "error performing TLS handshake",
                ]
                .iter()
                .any(|kind| e.to_string().starts_with(kind))
        }
    }
}

/// [`is_outage`] for sqlx's errors. A protocol error is one too: what sqlx reports when
/// a connection is cut in its first exchange (a proxy with no primary behind it accepts
/// and closes: "unexpected response from SSLRequest").
pub fn is_outage_sqlx(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Tls(_) => refusal(e).is_none(),
        sqlx::Error::Database(db) => db.code().is_some_and(|c| is_outage_sqlstate(&c)),
        _ => false,
    }
}

/// [`is_outage`] for a pooled connection that could not be had.
pub fn is_outage_pool(e: &PoolError) -> bool {
    match e {
        PoolError::Timeout(_) => true,
        PoolError::Backend(e) => is_outage(e),
        _ => false,
    }
}

/// Whether `e` is a write refused by a standby (SQLSTATE 25006): the pool's idle
/// connections may all lead there, and are dropped.
pub fn is_read_only(e: &tokio_postgres::Error) -> bool {
    e.code()
        .is_some_and(|c| *c == tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION)
}

#[cfg(test)]
mod tests {
    use super::{is_outage_sqlstate, is_transient_sqlstate};

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
            (Some("25006"), true),  // read-only transaction: a standby
            (Some("25001"), false), // active SQL transaction
        ] {
            assert_eq!(is_transient_sqlstate(code), transient, "{code:?}");
        }
    }

    #[test]
    fn an_outage_is_a_database_not_there_for_writes_not_a_busy_one() {
        for (code, outage) in [
            ("08006", true),  // connection failure
            ("08001", true),  // cannot establish
            ("57P01", true),  // admin shutdown (a switchover, a restart)
            ("57P02", true),  // crash shutdown
            ("57P03", true),  // cannot connect now (starting, recovering)
            ("25006", true),  // read-only transaction: a standby
            ("57014", false), // query cancelled
            ("40P01", false), // deadlock: transient, not an outage
            ("53100", false), // disk full
            ("23505", false), // unique violation
        ] {
            assert_eq!(is_outage_sqlstate(code), outage, "{code}");
        }
    }
}
