//! The SFTP source: russh + russh-sftp, host key checked against known_hosts.

use super::digest::{Digest, digest_of};
use super::error::SourceError;
use super::remote_file::{RemoteFile, mtime_of};
use super::remote_name::RemoteName;
use super::settings::SftpConfig;
use super::staging::staging_error;
use backon::{BackoffBuilder, ExponentialBuilder};
use russh::client::{self, AuthResult, Handle};
use russh::keys::{
    PrivateKeyWithHashAlg, PublicKeyOrCertificate, check_known_hosts_path, load_secret_key,
};
use russh_sftp::client::SftpSession;
use russh_sftp::protocol::StatusCode;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Reads in flight per download: with one, throughput drops to a fifth on loopback.
const CONCURRENT_READS: usize = 16;

/// Verifies the server key against known_hosts; records why it refused.
struct HostKeyCheck {
    host: String,
    port: u16,
    known_hosts: PathBuf,
    refusal: Arc<Mutex<Option<String>>>,
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            *self.refusal.lock().expect("not poisoned") =
                Some("certificates are not accepted".into());
            return Ok(false);
        };
        let verdict = match check_known_hosts_path(&self.host, self.port, key, &self.known_hosts) {
            Ok(true) => None,
            Ok(false) => Some(format!("host not listed in {}", self.known_hosts.display())),
            Err(e) => Some(format!(
                "key differs from the one in {} ({e})",
                self.known_hosts.display()
            )),
        };
        let accepted = verdict.is_none();
        *self.refusal.lock().expect("not poisoned") = verdict;
        Ok(accepted)
    }
}

/// One SSH connection with one SFTP session on it.
pub struct SftpSource {
    handle: Handle<HostKeyCheck>,
    sftp: SftpSession,
    dir: String,
    /// How long the liveness check waits for its answer: `sftp.timeout_secs`, at most 5 s
    /// (a connection a firewall dropped silently never answers; the item should not wait).
    alive_within: Duration,
}

impl SftpSource {
    pub(super) async fn connect(
        config: &SftpConfig,
        host: &str,
        port: u16,
        user: &str,
        dir: String,
    ) -> Result<Self, SourceError> {
        let timeout = Duration::from_secs(config.timeout_secs);
        let Some(known_hosts) = config.known_hosts.clone() else {
            return Err(SourceError::Setup {
                what: "sftp.known_hosts".into(),
                reason: "required for sftp:// sources".into(),
            });
        };
        if !known_hosts.exists() {
            return Err(SourceError::Setup {
                what: "sftp.known_hosts".into(),
                reason: format!("{} does not exist", known_hosts.display()),
            });
        }
        let refusal = Arc::new(Mutex::new(None));
        let ssh_config = Arc::new(client::Config {
            // Long enough for a worker's idle keep (`keep_idle_secs`): its liveness check,
            // not the client, decides when an idle connection is gone.
            inactivity_timeout: Some((timeout * 4).max(config.keep_idle() + timeout)),
            nodelay: true,
            ..Default::default()
        });
        // A server at its limit of connections still being authenticated (OpenSSH
        // `MaxStartups`) closes new ones before it says who it is: that is load, not a
        // fault, so it is waited out here (jittered, so workers turned away together do
        // not come back together) for up to the timeout, without using a step's tries.
        let deadline = tokio::time::Instant::now() + timeout;
        let mut waits = BackoffBuilder::build(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(50))
                .with_max_delay(Duration::from_secs(1))
                .without_max_times()
                .with_jitter(),
        );
        let mut handle = loop {
            let check = HostKeyCheck {
                host: host.to_string(),
                port,
                known_hosts: known_hosts.clone(),
                refusal: refusal.clone(),
            };
            let connecting = client::connect(ssh_config.clone(), (host, port), check);
            match tokio::time::timeout_at(deadline, connecting).await {
                Err(_) => {
                    return Err(SourceError::io(
                        format!("connecting to {host}:{port}"),
                        "timed out",
                    ));
                }
                Ok(Ok(handle)) => break handle,
                Ok(Err(e)) => {
                    if let Some(reason) = refusal.lock().expect("not poisoned").take() {
                        return Err(SourceError::HostKey {
                            host: host.into(),
                            port,
                            reason,
                        });
                    }
                    let wait = waits.next().unwrap_or(Duration::from_secs(1));
                    if !turned_away(&e) || tokio::time::Instant::now() + wait >= deadline {
                        return Err(SourceError::io(format!("connecting to {host}:{port}"), e));
                    }
                    tracing::warn!(%host, port, retry_in_ms = wait.as_millis() as u64,
                        "the SSH server closed the connection before its greeting (at its \
                         MaxStartups limit?); trying again");
                    tokio::time::sleep(wait).await;
                }
            }
        };
        authenticate(&mut handle, config, user).await?;
        let channel = handle
            .channel_open_session()
            .await
            .map_err(|e| SourceError::io("opening an SSH channel", e))?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(|e| SourceError::io("starting the sftp subsystem", e))?;
        let sftp_config = russh_sftp::client::Config {
            max_concurrent_reads: CONCURRENT_READS,
            request_timeout_secs: config.timeout_secs,
            ..Default::default()
        };
        let sftp = SftpSession::new_with_config(channel.into_stream(), sftp_config)
            .await
            .map_err(|e| SourceError::io("starting the SFTP session", e))?;
        Ok(Self {
            handle,
            sftp,
            dir,
            alive_within: timeout.min(Duration::from_secs(5)),
        })
    }

    /// Whether the connection and its SFTP session still answer: one round trip
    /// (SSH_FXP_REALPATH of "."), bounded by `alive_within`, so a kept connection that
    /// died while idle is replaced before an item spends a step on it.
    pub(super) async fn alive(&self) -> bool {
        if self.handle.is_closed() {
            return false;
        }
        let answered = self.sftp.canonicalize(".");
        matches!(
            tokio::time::timeout(self.alive_within, answered).await,
            Ok(Ok(_))
        )
    }

    pub(super) fn dir(&self) -> &str {
        &self.dir
    }

    fn path(&self, name: &str) -> String {
        format!("{}/{}", self.dir.trim_end_matches('/'), name)
    }

    pub(super) async fn list(&self) -> Result<Vec<RemoteFile>, SourceError> {
        let entries = self
            .sftp
            .read_dir(self.dir.clone())
            .await
            .map_err(|e| sftp_error(&self.dir, "listing", Request::Other, e))?;
        Ok(entries
            .filter(|e| e.file_type().is_file())
            .map(|e| {
                let meta = e.metadata();
                RemoteFile {
                    name: e.file_name(),
                    size: meta.size.unwrap_or(0),
                    mtime: mtime_of(meta.mtime.map(i64::from)),
                }
            })
            .collect())
    }

    /// Opens `name` for reading; returns its path too (for messages).
    async fn open(
        &self,
        name: &RemoteName,
    ) -> Result<(String, russh_sftp::client::fs::File), SourceError> {
        let path = self.path(name.as_str());
        let remote = self
            .sftp
            .open(path.clone())
            .await
            .map_err(|e| sftp_error(&path, "opening", Request::Other, e))?;
        Ok((path, remote))
    }

    pub(super) async fn download(
        &self,
        name: &RemoteName,
        dest: &Path,
    ) -> Result<u64, SourceError> {
        let (path, mut remote) = self.open(name).await?;
        let mut local = super::staging::create_staged(dest).await?;
        crate::local::fault::pause("download").await;
        let copied = tokio::io::copy(&mut remote, &mut local).await;
        // Close the remote handle whatever happened: drop does not wait for the server.
        let _ = remote.shutdown().await;
        let bytes = copied.map_err(|e| SourceError::io(format!("downloading {path}"), e))?;
        local.flush().await.map_err(|e| staging_error(dest, e))?;
        Ok(bytes)
    }

    pub(super) async fn stat(&self, name: &RemoteName) -> Result<Option<RemoteFile>, SourceError> {
        let path = self.path(name.as_str());
        match self.sftp.metadata(path.clone()).await {
            Ok(meta) => Ok(Some(RemoteFile {
                name: name.to_string(),
                size: meta.size.unwrap_or(0),
                mtime: mtime_of(meta.mtime.map(i64::from)),
            })),
            Err(e) => match sftp_error(&path, "reading the attributes of", Request::Other, e) {
                SourceError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    /// SSH_FXP_RENAME, which OpenSSH refuses when the target exists (it never replaces).
    /// A server without rename rights (or support) answers with a refusal:
    /// [`SourceError::Denied`].
    pub(super) async fn rename(
        &self,
        from: &RemoteName,
        to: &RemoteName,
    ) -> Result<(), SourceError> {
        let (old, new) = (self.path(from.as_str()), self.path(to.as_str()));
        match self.sftp.rename(old.clone(), new.clone()).await {
            Ok(()) => Ok(()),
            Err(e) => match sftp_error(&old, "renaming", Request::Rename, e) {
                SourceError::NotFound { path } => Err(SourceError::NotFound { path }),
                other if self.stat(to).await.is_ok_and(|t| t.is_some()) => {
                    tracing::debug!(error = %other, "rename refused: the target exists");
                    Err(SourceError::Exists { path: new })
                }
                other => Err(other),
            },
        }
    }

    pub(super) async fn delete(&self, name: &RemoteName) -> Result<(), SourceError> {
        let path = self.path(name.as_str());
        match self.sftp.remove_file(path.clone()).await {
            Ok(()) => Ok(()),
            Err(e) => match sftp_error(&path, "deleting", Request::Remove, e) {
                SourceError::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    pub(super) async fn digest(
        &self,
        name: &RemoteName,
        limit: u64,
    ) -> Result<Digest, SourceError> {
        let (path, mut remote) = self.open(name).await?;
        let digest = digest_of(&mut remote, limit, &path).await;
        let _ = remote.shutdown().await;
        digest
    }

    pub(super) async fn close(self) {
        let _ = self.sftp.close().await;
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

/// Whether a failed connect is the server turning the connection away before its
/// greeting (closed or reset before the SSH identification line), as OpenSSH does past
/// `MaxStartups`.
fn turned_away(e: &russh::Error) -> bool {
    use std::io::ErrorKind;
    match e {
        russh::Error::Disconnect => true,
        russh::Error::IO(io) => matches!(
            io.kind(),
            ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof | ErrorKind::BrokenPipe
        ),
        _ => false,
    }
}

async fn authenticate(
    handle: &mut Handle<HostKeyCheck>,
    config: &SftpConfig,
    user: &str,
) -> Result<(), SourceError> {
    if let Some(path) = &config.private_key_file {
        let key = load_secret_key(path, None).map_err(|e| SourceError::Setup {
            what: format!("private key {}", path.display()),
            reason: e.to_string(),
        })?;
        let hash = handle
            .best_supported_rsa_hash()
            .await
            .map_err(|e| SourceError::io("negotiating the key signature", e))?
            .flatten();
        let result = handle
            .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
            .await
            .map_err(|e| SourceError::io("authenticating", e))?;
        if matches!(result, AuthResult::Success) {
            return Ok(());
        }
    }
    let password = config.password().map_err(|e| SourceError::Setup {
        what: "sftp password".into(),
        reason: e.to_string(),
    })?;
    if let Some(password) = password {
        let result = handle
            .authenticate_password(user, password.expose())
            .await
            .map_err(|e| SourceError::io("authenticating", e))?;
        if matches!(result, AuthResult::Success) {
            return Ok(());
        }
    }
    Err(SourceError::Auth { user: user.into() })
}

/// The request an SFTP status answers: a refusal means something else for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    /// SSH_FXP_RENAME: refused, the file is read in place.
    Rename,
    /// SSH_FXP_REMOVE: refused, the file stays at the origin for operators.
    Remove,
    /// Anything else (open, read, stat, list).
    Other,
}

fn sftp_error(
    path: &str,
    doing: &str,
    request: Request,
    e: russh_sftp::client::error::Error,
) -> SourceError {
    use russh_sftp::client::error::Error;
    match e {
        Error::Status(s) => classify_status(path, doing, request, s.status_code, &s.error_message),
        other => SourceError::io(format!("{doing} {path}"), other),
    }
}

/// What an SFTP status code means, where it is read. A server that will not rename or
/// remove says so in one of three ways: permission denied (OpenSSH's `-P` list),
/// operation unsupported, or a generic failure (after a rename, only once the target
/// was found absent: OpenSSH answers "failure" when it exists). Each is a refusal, not
/// a network error to retry. A failure of any other request may pass: transient.
fn classify_status(
    path: &str,
    doing: &str,
    request: Request,
    code: StatusCode,
    message: &str,
) -> SourceError {
    let denied = |why: String| SourceError::Denied {
        path: path.into(),
        doing: doing.into(),
        why,
    };
    let said = |what: &str| {
        if message.trim().is_empty() {
            what.to_string()
        } else {
            format!("{what}: {}", message.trim())
        }
    };
    match code {
        StatusCode::NoSuchFile => SourceError::NotFound { path: path.into() },
        StatusCode::PermissionDenied => denied("permission denied".into()),
        StatusCode::OpUnsupported => denied(said("operation unsupported")),
        StatusCode::Failure if request != Request::Other => denied(said("failure")),
        other => SourceError::io(format!("{doing} {path}"), said(&other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_closed_before_the_greeting_is_load_anything_else_is_not() {
        use std::io::{Error, ErrorKind};
        assert!(turned_away(&russh::Error::Disconnect));
        assert!(turned_away(&russh::Error::IO(Error::from(
            ErrorKind::ConnectionReset
        ))));
        assert!(!turned_away(&russh::Error::IO(Error::from(
            ErrorKind::ConnectionRefused
        ))));
        assert!(!turned_away(&russh::Error::UnknownKey));
    }

    /// No stock server answers a rename or a remove with "operation unsupported" or a
    /// generic failure (OpenSSH's `-P` says "permission denied"), so the statuses are
    /// classified here, where the code is read.
    #[test]
    fn a_rename_or_remove_refused_in_any_of_three_ways_is_a_refusal() {
        for request in [Request::Rename, Request::Remove] {
            for (code, message, why) in [
                (StatusCode::PermissionDenied, "", "permission denied"),
                (
                    StatusCode::OpUnsupported,
                    "rename not supported",
                    "operation unsupported: rename not supported",
                ),
                (StatusCode::OpUnsupported, "", "operation unsupported"),
                (
                    StatusCode::Failure,
                    "SSH_FXP_RENAME refused by policy",
                    "failure: SSH_FXP_RENAME refused by policy",
                ),
                (StatusCode::Failure, " ", "failure"),
            ] {
                let e = classify_status("/in/report_1.txt", "renaming", request, code, message);
                assert!(
                    matches!(&e, SourceError::Denied { why: w, .. } if w == why),
                    "{request:?} {code:?}: {e:?}"
                );
                assert!(!e.is_transient(), "{e}");
            }
        }
    }

    #[test]
    fn other_statuses_keep_their_meaning() {
        let gone = classify_status(
            "/p",
            "renaming",
            Request::Rename,
            StatusCode::NoSuchFile,
            "",
        );
        assert!(matches!(gone, SourceError::NotFound { .. }));
        let failed_read =
            classify_status("/p", "opening", Request::Other, StatusCode::Failure, "x");
        assert!(failed_read.is_transient(), "{failed_read}");
        for code in [
            StatusCode::ConnectionLost,
            StatusCode::NoConnection,
            StatusCode::BadMessage,
        ] {
            let e = classify_status("/p", "renaming", Request::Rename, code, "");
            assert!(e.is_transient(), "{code:?}: {e}");
        }
        let denied_read = classify_status(
            "/p",
            "opening",
            Request::Other,
            StatusCode::PermissionDenied,
            "",
        );
        assert!(matches!(denied_read, SourceError::Denied { .. }));
    }
}
