//! Where visit files come from: an SFTP directory or a local one, behind one interface.

mod digest;
mod error;
mod in_flight;
mod local;
pub mod location;
pub mod marker;
mod remote_file;
mod remote_name;
pub mod settings;
mod sftp;
mod staging;

pub use digest::Digest;
pub use error::SourceError;
pub use in_flight::{in_flight_name, parse_in_flight};
pub use location::{SourceLocation, SourceUrl};
pub use marker::DoneMarker;
pub use remote_file::{Deletion, RemoteFile};
pub use remote_name::{RemoteName, RemoteNameError};
pub use settings::{Access, SftpConfig};

use crate::types::Origin;
use chrono::{DateTime, Utc};
use std::path::Path;

/// The origin directory.
pub enum Source {
    /// A local directory.
    Local(local::LocalSource),
    /// An SFTP server (one SSH connection, one SFTP session).
    Sftp(Box<sftp::SftpSource>),
}

impl Source {
    /// Opens the configured origin (for SFTP: connects, verifies the host key, authenticates).
    pub async fn connect(access: &Access<'_>) -> Result<Self, SourceError> {
        match access.url.location().clone() {
            SourceLocation::Local { dir } => Ok(Source::Local(local::LocalSource::new(dir))),
            SourceLocation::Sftp {
                host,
                port,
                user,
                dir,
            } => Ok(Source::Sftp(Box::new(
                sftp::SftpSource::connect(access.sftp, &host, port, &user, dir).await?,
            ))),
        }
    }

    /// A local directory as the origin (an operator's retry of a quarantined copy).
    pub fn local(dir: impl Into<std::path::PathBuf>) -> Self {
        Source::Local(local::LocalSource::new(dir.into()))
    }

    /// Opens an item's own origin: the configured one, or a directory on this host (the
    /// claim only hands out items this host can reach; anything else is refused).
    pub async fn for_origin(access: &Access<'_>, origin: &Origin) -> Result<Self, SourceError> {
        if access.url.origin().url == origin.url {
            return Self::connect(access).await;
        }
        let on_this_host = origin.host.as_deref() == Some(crate::local::host::name().as_str());
        url::Url::parse(&origin.url)
            .ok()
            .filter(|u| u.scheme() == "file" && on_this_host)
            .and_then(|u| u.to_file_path().ok())
            .map(Self::local)
            .ok_or_else(|| SourceError::Setup {
                what: format!("origin {}", origin.url),
                reason: "not reachable from this performer (another origin or another host)".into(),
            })
    }

    /// Every regular file in the directory.
    pub async fn list(&self) -> Result<Vec<RemoteFile>, SourceError> {
        match self {
            Source::Local(s) => s.list().await,
            Source::Sftp(s) => s.list().await,
        }
    }

    /// Size and modification time of `name`, or `None` when it is not there.
    pub async fn stat(&self, name: &RemoteName) -> Result<Option<RemoteFile>, SourceError> {
        match self {
            Source::Local(s) => s.stat(name).await,
            Source::Sftp(s) => s.stat(name).await,
        }
    }

    /// Renames `from` to `to` atomically, never replacing a file: [`SourceError::Exists`]
    /// when `to` is taken, [`SourceError::NotFound`] when `from` is gone.
    pub async fn rename(&self, from: &RemoteName, to: &RemoteName) -> Result<(), SourceError> {
        match self {
            Source::Local(s) => s.rename(from, to).await,
            Source::Sftp(s) => s.rename(from, to).await,
        }
    }

    /// Streams `name` into `dest`, which must not exist yet; returns the bytes written.
    pub async fn download(&self, name: &RemoteName, dest: &Path) -> Result<u64, SourceError> {
        match self {
            Source::Local(s) => s.download(name, dest).await,
            Source::Sftp(s) => s.download(name, dest).await,
        }
    }

    /// Removes `name` from the origin; a file already gone is not an error.
    pub async fn delete(&self, name: &RemoteName) -> Result<(), SourceError> {
        match self {
            Source::Local(s) => s.delete(name).await,
            Source::Sftp(s) => s.delete(name).await,
        }
    }

    /// Deletes `name` only if it is still what the caller holds a copy of: by its size
    /// and mtime `seen`, or, when `content` is given, by that content: its SHA-256 and
    /// length read again just before, its size and mtime the same before and after that
    /// read. What no origin lets a client close is the instant between that last look
    /// and the delete itself.
    pub async fn delete_verified(
        &self,
        name: &RemoteName,
        seen: (u64, Option<DateTime<Utc>>),
        content: Option<(&str, u64)>,
    ) -> Result<Deletion, SourceError> {
        let Some(now) = self.stat(name).await? else {
            return Ok(Deletion::Gone);
        };
        match content {
            None if now.seen() != seen => return Ok(Deletion::Changed(now)),
            None => {}
            Some((sha256, size)) => {
                let read = self.digest(name, None).await?;
                if (read.sha256.as_str(), read.bytes) != (sha256, size) {
                    return Ok(Deletion::Changed(now));
                }
                match self.stat(name).await? {
                    None => return Ok(Deletion::Gone),
                    Some(again) if again.seen() != now.seen() => {
                        return Ok(Deletion::Changed(again));
                    }
                    Some(_) => {}
                }
            }
        }
        self.delete(name).await?;
        Ok(Deletion::Deleted)
    }

    /// Reads `name` (its first `limit` bytes, or all of it) through SHA-256 without
    /// keeping it: what the origin holds now, compared with what was loaded.
    pub async fn digest(
        &self,
        name: &RemoteName,
        limit: Option<u64>,
    ) -> Result<Digest, SourceError> {
        let limit = limit.unwrap_or(u64::MAX);
        match self {
            Source::Local(s) => s.digest(name, limit).await,
            Source::Sftp(s) => s.digest(name, limit).await,
        }
    }

    /// The full origin path of `name`, as recorded in `ruta_origen`.
    pub fn path_of(&self, name: &str) -> String {
        match self {
            Source::Local(s) => s.dir().join(name).display().to_string(),
            Source::Sftp(s) => format!("{}/{}", s.dir().trim_end_matches('/'), name),
        }
    }

    /// Whether the origin still answers a cheap request (SFTP: one round trip on the
    /// session; a local directory always does).
    pub async fn alive(&self) -> bool {
        match self {
            Source::Local(_) => true,
            Source::Sftp(s) => s.alive().await,
        }
    }

    /// Closes the connection cleanly.
    pub async fn close(self) {
        if let Source::Sftp(s) = self {
            (*s).close().await;
        }
    }
}
