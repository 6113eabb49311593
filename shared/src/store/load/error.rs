//! Why a load did not commit: one error for the load transaction and what it calls.

use super::copy_writer::CopyError;
use crate::local::staged::StreamError;
use polars::prelude::PolarsError;

/// Why a load did not commit.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The database failed (connection, timeout, constraint): the transaction rolled back.
    #[error("load transaction: {}", crate::store::connect::describe(.0))]
    Db(#[from] tokio_postgres::Error),
    /// Reading the validated frame failed (a defect).
    #[error("reading validated rows: {0}")]
    Frame(#[from] PolarsError),
    /// Encoding or sending COPY data failed.
    #[error("COPY: {0}")]
    Copy(CopyError),
    /// Reading or validating the staged file failed.
    #[error(transparent)]
    Input(#[from] StreamError),
    /// The validator stopped (or panicked) before the end of the file: nothing committed.
    #[error("the validator stopped before the end of the file; nothing committed")]
    InputEnded,
    /// What pass 2 read is not what pass 1 hashed: nothing committed.
    #[error(
        "the staged file changed while it was read (hashed {hashed_bytes} bytes, SHA-256 {hashed_sha256}; \
         read {read_bytes} bytes, SHA-256 {read_sha256}); nothing committed"
    )]
    InputChanged {
        /// Bytes hashed by pass 1.
        hashed_bytes: i64,
        /// SHA-256 of pass 1.
        hashed_sha256: String,
        /// Bytes read by pass 2.
        read_bytes: u64,
        /// SHA-256 of pass 2.
        read_sha256: String,
    },
    /// The attempt no longer holds its item (taken back): the load rolled back.
    #[error("lease lost: the item was taken back by another attempt; the load rolled back")]
    LeaseLost,
}
