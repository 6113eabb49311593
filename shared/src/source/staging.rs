//! The local side of a download: each attempt writes into a staging file of its own.

use super::error::SourceError;
use std::path::Path;

/// Creates a staging file that must not exist yet: each attempt downloads into its own.
pub(crate) async fn create_staged(
    dest: &Path,
) -> Result<tokio::io::BufWriter<tokio::fs::File>, SourceError> {
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dest)
        .await
        .map_err(|e| staging_error(dest, e))?;
    Ok(tokio::io::BufWriter::with_capacity(1 << 20, file))
}

pub(crate) fn staging_error(dest: &Path, e: std::io::Error) -> SourceError {
    SourceError::io(format!("writing {}", dest.display()), e)
}
