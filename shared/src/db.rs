//! Database connections. Two pools, two roles:
//! - sqlx: migrations, LISTEN/NOTIFY, the dispatcher's and operators' queries;
//! - deadpool-postgres (tokio-postgres): the performer's claims and its load
//!   transaction, whose binary COPY is the fastest bulk path measured here.

use crate::config::{Config, ConfigError};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

/// Errors opening the database; never shows the URL (it may hold a password).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Configuration problem.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The URL does not parse.
    #[error("database.url is not a valid PostgreSQL URL")]
    BadUrl,
    /// Connecting or migrating failed.
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// Migration failed.
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Building the pool failed.
    #[error("database pool: {0}")]
    Pool(String),
}

/// The migrations in `sql/migrations`, embedded in the binaries.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../sql/migrations");

/// A sqlx pool for the dispatcher, operator commands and LISTEN.
pub async fn sqlx_pool(config: &Config) -> Result<PgPool, DbError> {
    let url = config.database_url()?;
    let options = PgConnectOptions::from_str(url.expose()).map_err(|_| DbError::BadUrl)?;
    Ok(PgPoolOptions::new()
        .max_connections(config.database.pool_size)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await?)
}

/// Applies pending migrations; a second run changes nothing.
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// The performer's pool: at most `database.pool_size` connections, whatever the worker count.
pub fn performer_pool(config: &Config) -> Result<Pool, DbError> {
    let url = config.database_url()?;
    let pg = tokio_postgres::Config::from_str(url.expose()).map_err(|_| DbError::BadUrl)?;
    let manager = Manager::from_config(
        pg,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(config.database.pool_size as usize)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(60)))
        .create_timeout(Some(Duration::from_secs(30)))
        .build()
        .map_err(|e| DbError::Pool(e.to_string()))
}

/// A tokio-postgres error with the server's message and SQLSTATE (its `Display` shows only "db error").
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}
