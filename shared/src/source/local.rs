//! The `file://` source: a directory on this host.

use super::digest::{Digest, digest_of};
use super::error::SourceError;
use super::remote_file::RemoteFile;
use super::remote_name::RemoteName;
use super::staging::staging_error;
use chrono::{DateTime, Utc};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

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
            files.push(
                remote_file(&entry.file_name().to_string_lossy(), &meta)
                    .map_err(|e| SourceError::io(context(), e))?,
            );
        }
        Ok(files)
    }

    pub(super) async fn stat(&self, name: &RemoteName) -> Result<Option<RemoteFile>, SourceError> {
        let path = self.dir.join(name.as_str());
        match tokio::fs::metadata(&path).await {
            Ok(meta) => Ok(Some(remote_file(name.as_str(), &meta).map_err(|e| {
                SourceError::io(format!("reading {}", path.display()), e)
            })?)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SourceError::io(format!("reading {}", path.display()), e)),
        }
    }

    pub(super) async fn rename(
        &self,
        from: &RemoteName,
        to: &RemoteName,
    ) -> Result<(), SourceError> {
        let (from, to) = (self.dir.join(from.as_str()), self.dir.join(to.as_str()));
        let renamed = tokio::task::spawn_blocking({
            let (from, to) = (from.clone(), to.clone());
            move || rename_noreplace(&from, &to)
        })
        .await
        .map_err(|e| SourceError::io("renaming", e))?;
        match renamed {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(SourceError::NotFound {
                path: from.display().to_string(),
            }),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Err(SourceError::Exists {
                path: to.display().to_string(),
            }),
            Err(e) if e.kind() == ErrorKind::PermissionDenied => Err(SourceError::Denied {
                path: from.display().to_string(),
                doing: "renaming".into(),
                why: "permission denied".into(),
            }),
            Err(e) => Err(SourceError::io(format!("renaming {}", from.display()), e)),
        }
    }

    pub(super) async fn download(
        &self,
        name: &RemoteName,
        dest: &Path,
    ) -> Result<u64, SourceError> {
        let path = self.dir.join(name.as_str());
        let mut remote = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(SourceError::NotFound {
                    path: path.display().to_string(),
                });
            }
            Err(e) => return Err(SourceError::io(format!("opening {}", path.display()), e)),
        };
        let mut local = super::staging::create_staged(dest).await?;
        crate::local::fault::pause("download").await;
        let bytes = tokio::io::copy(&mut remote, &mut local)
            .await
            .map_err(|e| SourceError::io(format!("copying {}", path.display()), e))?;
        local.flush().await.map_err(|e| staging_error(dest, e))?;
        Ok(bytes)
    }

    pub(super) async fn delete(&self, name: &RemoteName) -> Result<(), SourceError> {
        let path = self.dir.join(name.as_str());
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) if e.kind() == ErrorKind::PermissionDenied => Err(SourceError::Denied {
                path: path.display().to_string(),
                doing: "deleting".into(),
                why: "permission denied".into(),
            }),
            Err(e) => Err(SourceError::io(format!("deleting {}", path.display()), e)),
        }
    }

    pub(super) async fn digest(
        &self,
        name: &RemoteName,
        limit: u64,
    ) -> Result<Digest, SourceError> {
        let path = self.dir.join(name.as_str());
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(SourceError::NotFound {
                    path: path.display().to_string(),
                });
            }
            Err(e) => return Err(SourceError::io(format!("opening {}", path.display()), e)),
        };
        digest_of(file, limit, &path.display().to_string()).await
    }
}

/// A listed file, its mtime in whole seconds as SFTP gives it.
fn remote_file(name: &str, meta: &std::fs::Metadata) -> std::io::Result<RemoteFile> {
    let mtime: DateTime<Utc> = meta.modified()?.into();
    Ok(RemoteFile {
        name: name.to_string(),
        size: meta.len(),
        mtime: super::remote_file::mtime_of(Some(mtime.timestamp())),
    })
}

/// rename(2) that fails with `AlreadyExists` instead of replacing the target.
fn rename_noreplace(from_path: &Path, to_path: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|e| std::io::Error::new(ErrorKind::InvalidInput, e))
    };
    let (from, to) = (c(from_path)?, c(to_path)?);
    // SAFETY: both are valid NUL-terminated paths; AT_FDCWD with absolute or relative paths.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::EINVAL) {
        return Err(e);
    }
    // A filesystem without RENAME_NOREPLACE: a hard link also refuses an existing target.
    std::fs::hard_link(from_path, to_path)?;
    std::fs::remove_file(from_path)
}
