//! `etl_root`: the one ETL root every performer and the dispatcher share (migration 12;
//! docs/operations.md, "Several hosts"). Each process proves at start that its
//! `paths.root` is that root — the registered path, holding the registered id in its
//! mark (`crate::local::root_mark`) — and refuses to start otherwise: a root of its own
//! would strand every copy it writes. The first process of a new service registers its
//! root.

use crate::local::paths::create_dir_durable;
use crate::local::root_mark;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use std::fmt;
use std::path::{Path, PathBuf};

/// The service's root, as registered.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Registered {
    /// The id in its mark.
    pub root_id: String,
    /// Its absolute path, the same on every host.
    pub path: String,
    /// The host that registered it.
    pub registered_by: String,
    /// When.
    pub registered_at: DateTime<Utc>,
}

/// Why a process may not work with its root.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    /// `paths.root` is not the service's root.
    #[error(transparent)]
    Elsewhere(#[from] Box<Elsewhere>),
    /// The root's mark could not be read or written.
    #[error("the ETL root {root}: {source}")]
    Local {
        /// The root.
        root: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// A root that is not the service's, and what to change.
#[derive(Debug)]
pub struct Elsewhere {
    /// This process's `paths.root`, absolute.
    pub mine: PathBuf,
    /// This host.
    pub host: String,
    /// The id in its mark, if any.
    pub mark: Option<String>,
    /// The service's root.
    pub registered: Registered,
}

impl std::error::Error for Elsewhere {}

impl fmt::Display for Elsewhere {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.registered;
        write!(
            f,
            "paths.root = {} on host {} is not this service's ETL root, which is {} (root id {}, \
             registered by {} on {})",
            self.mine.display(),
            self.host,
            r.path,
            r.root_id,
            r.registered_by,
            r.registered_at.format("%Y-%m-%d %H:%M UTC")
        )?;
        let mark = root_mark::path(&self.mine);
        if Path::new(&r.path) == self.mine {
            match &self.mark {
                None => write!(
                    f,
                    "; {} has no {} file: if it is that root and the file was lost, write {} into {}",
                    self.mine.display(),
                    root_mark::MARK,
                    r.root_id,
                    mark.display()
                )?,
                Some(other) => write!(
                    f,
                    "; {} says {other}: another directory is mounted at that path on this host",
                    mark.display()
                )?,
            }
        }
        write!(
            f,
            ". Every performer and the dispatcher must share one ETL root, or the copies written \
             here are stranded where no close zips, verifies or prunes them and no reload or \
             quarantine retry finds them: mount the service's root at {path} on this host and set \
             paths.root = \"{path}\" (docs/operations.md, \"Several hosts\")",
            path = r.path
        )
    }
}

/// Proves that `root` is the service's ETL root, registering it (and marking it) when
/// the service has none yet; `host` is this process's host, for messages.
pub async fn check(pool: &PgPool, root: &Path, host: &str) -> Result<(), RootError> {
    let local = |source| RootError::Local {
        root: root.to_path_buf(),
        source,
    };
    let mine = std::path::absolute(root).map_err(local)?;
    let registered = match registered(pool).await? {
        Some(registered) => registered,
        None => {
            create_dir_durable(&mine).map_err(local)?;
            let id = root_mark::ensure(&mine).map_err(local)?;
            sqlx::query(
                "INSERT INTO etl_root (root_id, path, registered_by) VALUES ($1, $2, $3)
                 ON CONFLICT (only_one) DO NOTHING",
            )
            .bind(&id)
            .bind(mine.display().to_string())
            .bind(host)
            .execute(pool)
            .await?;
            registered(pool)
                .await?
                .ok_or_else(|| sqlx::Error::RowNotFound)?
        }
    };
    let mark = root_mark::read(&mine).map_err(local)?;
    if Path::new(&registered.path) == mine && mark.as_deref() == Some(registered.root_id.as_str()) {
        return Ok(());
    }
    Err(Box::new(Elsewhere {
        mine,
        host: host.to_string(),
        mark,
        registered,
    })
    .into())
}

/// The service's root, once registered.
pub async fn registered(pool: &PgPool) -> sqlx::Result<Option<Registered>> {
    sqlx::query_as("SELECT root_id, path, registered_by, registered_at FROM etl_root")
        .fetch_optional(pool)
        .await
}
