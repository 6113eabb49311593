//! Where visit files come from: an SFTP directory or a local one, behind one interface.

mod in_flight;
mod local;
pub mod location;
pub mod marker;
mod remote_name;
pub mod settings;
mod sftp;

pub use in_flight::{in_flight_name, parse_in_flight};
pub use location::{SourceLocation, SourceUrl};
pub use marker::DoneMarker;
pub use remote_name::{RemoteName, RemoteNameError};
pub use settings::{Access, SftpConfig};

use crate::types::Origin;
use chrono::{DateTime, Utc};
use std::path::Path;

/// A regular file in the origin directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// Its name (possibly unsafe: checked into a [`RemoteName`] before any local use).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time (whole seconds); `None` when the origin shows none.
    pub mtime: Option<DateTime<Utc>>,
}

impl RemoteFile {
    /// Its size and mtime as a listing compares them.
    pub fn seen(&self) -> (u64, Option<DateTime<Utc>>) {
        (self.size, self.mtime)
    }
}

/// A modification time as an origin reports it, in whole seconds since the epoch. None,
/// or 0 (what servers that keep no times send), is unknown: never 1970.
pub(crate) fn mtime_of(secs: Option<i64>) -> Option<DateTime<Utc>> {
    secs.filter(|s| *s != 0)
        .and_then(|s| DateTime::from_timestamp(s, 0))
}

/// What [`Source::delete_verified`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deletion {
    /// Deleted.
    Deleted,
    /// Not there any more: nothing to delete.
    Gone,
    /// Not what the caller holds (as found): left alone.
    Changed(RemoteFile),
}

/// What [`Source::digest`] read of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// SHA-256 (lower-case hex) of the bytes read.
    pub sha256: String,
    /// How many bytes were read.
    pub bytes: u64,
    /// The last byte read, if any (whether the part read ends at a line end).
    pub last: Option<u8>,
}

/// Errors of the origin; [`SourceError::is_transient`] decides whether retrying can help.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The server's host key is unknown or changed: a refusal, never retried in place.
    #[error("SFTP host key of {host}:{port} refused: {reason}")]
    HostKey {
        /// Server host.
        host: String,
        /// Server port.
        port: u16,
        /// Unknown host, or changed key.
        reason: String,
    },
    /// Authentication failed.
    #[error("SFTP authentication as `{user}` refused")]
    Auth {
        /// Login name.
        user: String,
    },
    /// The file is not (any more) at the origin.
    #[error("{path}: not found at the origin")]
    NotFound {
        /// Remote path.
        path: String,
    },
    /// The origin refused the operation (no rights, or it does not support it): not
    /// retried in place. A refused rename makes the file read in place; a refused
    /// delete leaves it at the origin, shown to operators.
    #[error("{path}: {doing} refused by the origin ({why})")]
    Denied {
        /// Remote path.
        path: String,
        /// What was refused.
        doing: String,
        /// How the origin answered.
        why: String,
    },
    /// A rename's target name is taken (renames never replace a file).
    #[error("{path}: already exists at the origin")]
    Exists {
        /// Remote path.
        path: String,
    },
    /// A refused remote name.
    #[error(transparent)]
    Name(#[from] RemoteNameError),
    /// Reading the local key or known_hosts failed.
    #[error("{what}: {reason}")]
    Setup {
        /// What was being read.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// Network, protocol or disk trouble that may pass.
    #[error("{context}: {reason}")]
    Io {
        /// The step that failed.
        context: String,
        /// The cause.
        reason: String,
    },
}

impl SourceError {
    /// Whether retrying the same step later can succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, SourceError::Io { .. })
    }

    pub(crate) fn io(context: impl Into<String>, reason: impl ToString) -> Self {
        SourceError::Io {
            context: context.into(),
            reason: reason.to_string(),
        }
    }
}

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

    /// Closes the connection cleanly.
    pub async fn close(self) {
        if let Source::Sftp(s) = self {
            (*s).close().await;
        }
    }
}

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

/// Hashes up to `limit` bytes of `reader` (see [`Source::digest`]).
pub(crate) async fn digest_of(
    mut reader: impl tokio::io::AsyncRead + Unpin,
    limit: u64,
    path: &str,
) -> Result<Digest, SourceError> {
    use sha2::Digest as _;
    use tokio::io::AsyncReadExt;
    let (mut hasher, mut buf) = (sha2::Sha256::new(), vec![0u8; 1 << 20]);
    let (mut bytes, mut last) = (0u64, None);
    while bytes < limit {
        let want = buf
            .len()
            .min((limit - bytes).min(usize::MAX as u64) as usize);
        let n = reader
            .read(&mut buf[..want])
            .await
            .map_err(|e| SourceError::io(format!("reading {path}"), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
        last = Some(buf[n - 1]);
    }
    Ok(Digest {
        sha256: crate::local::hash::to_hex(&hasher.finalize()),
        bytes,
        last,
    })
}
