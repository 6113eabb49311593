//! What can go wrong with one item.

use polars::prelude::PolarsError;
use shared::source::{RemoteNameError, SourceError};
use shared::store::load::LoadError;

/// A failure processing one item.
#[derive(Debug, thiserror::Error)]
pub enum ItemError {
    /// The origin failed or refused.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The load transaction rolled back.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A queue or audit statement failed.
    #[error("database: {}", shared::store::connect::describe(.0))]
    Db(#[from] tokio_postgres::Error),
    /// A read beside the item's path (the queue's state) failed.
    #[error("database: {0}")]
    Query(#[from] sqlx::Error),
    /// No connection could be had from the pool.
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// Local disk trouble (full, permissions).
    #[error("local disk, {context}: {source}")]
    Disk {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The name at the origin is not a safe file name.
    #[error(transparent)]
    Name(#[from] RemoteNameError),
    /// The rules engine failed (a defect, not bad data).
    #[error("rules engine: {0}")]
    Engine(#[from] PolarsError),
    /// Every attempt was used up by performers that stopped while holding the item.
    #[error("attempts exhausted: {attempts} attempt(s) ended with their performer stopping")]
    Exhausted {
        /// Attempts used.
        attempts: i32,
    },
    /// The file at the origin is not what was listed or changed while it was read.
    #[error("{0}")]
    Unsettled(String),
    /// The file is not what an operator had loaded: it no longer begins with the content
    /// an earlier item loaded (see `shared::types::LoadedPrefix`).
    #[error("{0}")]
    NotAsResolved(String),
    /// This attempt no longer holds the item: another attempt took it back.
    #[error("lease lost: the item was taken back by another attempt")]
    LeaseLost,
}

impl ItemError {
    /// Wraps a local I/O error with what was being done.
    pub fn disk(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ItemError {
        let context = context.into();
        move |source| ItemError::Disk { context, source }
    }
}
