//! The `file://` source: a directory on this host.

use super::{RemoteFile, RemoteName, SourceError, staging_error};
use chrono::{DateTime, Utc};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// A local origin directory.
pub struct LocalSource {
    dir: PathBuf,
}

impl LocalSource {
    pub(super) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(super) async fn list(&self) -> Result<Vec<RemoteFile>, SourceError> {
        let context = || format!("listing {}", self.dir.display());
        let mut entries = tokio::fs::read_dir(&self.dir)
            .await
            .map_err(|e| SourceError::io(context(), e))?;
        let mut files = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| SourceError::io(context(), e))?
        {
            let Ok(meta) = entry.metadata().await else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let mtime: DateTime<Utc> = meta
                .modified()
                .map_err(|e| SourceError::io(context(), e))?
                .into();
            files.push(RemoteFile {
                name: entry.file_name().to_string_lossy().into_owned(),
                size: meta.len(),
                mtime: DateTime::from_timestamp(mtime.timestamp(), 0).unwrap_or(mtime),
            });
        }
        Ok(files)
    }

    pub(super) async fn download(
        &self,
        name: &RemoteName,
        dest: &Path,
    ) -> Result<u64, SourceError> {
        let path = self.dir.join(name.as_str());
        crate::fault::pause("download").await;
        match tokio::fs::copy(&path, dest).await {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == ErrorKind::NotFound && !path.exists() => {
                Err(SourceError::NotFound {
                    path: path.display().to_string(),
                })
            }
            Err(e) => Err(staging_error(dest, e)),
        }
    }

    pub(super) async fn delete(&self, name: &RemoteName) -> Result<(), SourceError> {
        let path = self.dir.join(name.as_str());
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SourceError::io(format!("deleting {}", path.display()), e)),
        }
    }
}
