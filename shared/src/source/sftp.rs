//! The SFTP source: russh + russh-sftp, host key checked against known_hosts.

use super::error::SourceError;
use super::remote_file::RemoteFile;
use super::remote_name::RemoteName;
use super::settings::SftpConfig;
use super::staging::staging_error;
use chrono::DateTime;
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
        let check = HostKeyCheck {
            host: host.to_string(),
            port,
            known_hosts,
            refusal: refusal.clone(),
        };
        let ssh_config = Arc::new(client::Config {
            inactivity_timeout: Some(timeout * 4),
            nodelay: true,
            ..Default::default()
        });
        let connecting = client::connect(ssh_config, (host, port), check);
        let mut handle = match tokio::time::timeout(timeout, connecting).await {
            Err(_) => {
                return Err(SourceError::io(
                    format!("connecting to {host}:{port}"),
                    "timed out",
                ));
            }
            Ok(Ok(handle)) => handle,
            Ok(Err(e)) => {
                if let Some(reason) = refusal.lock().expect("not poisoned").take() {
                    return Err(SourceError::HostKey {
                        host: host.into(),
                        port,
                        reason,
                    });
                }
                return Err(SourceError::io(format!("connecting to {host}:{port}"), e));
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
        Ok(Self { handle, sftp, dir })
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
            .map_err(|e| sftp_error(&self.dir, "listing", e))?;
        Ok(entries
            .filter(|e| e.file_type().is_file())
            .map(|e| {
                let meta = e.metadata();
                RemoteFile {
                    name: e.file_name(),
                    size: meta.size.unwrap_or(0),
                    mtime: DateTime::from_timestamp(i64::from(meta.mtime.unwrap_or(0)), 0)
                        .unwrap_or_default(),
                }
            })
            .collect())
    }

    pub(super) async fn download(
        &self,
        name: &RemoteName,
        dest: &Path,
    ) -> Result<u64, SourceError> {
        let path = self.path(name.as_str());
        let mut remote = self
            .sftp
            .open(path.clone())
            .await
            .map_err(|e| sftp_error(&path, "opening", e))?;
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
                mtime: DateTime::from_timestamp(i64::from(meta.mtime.unwrap_or(0)), 0)
                    .unwrap_or_default(),
            })),
            Err(e) => match sftp_error(&path, "reading the attributes of", e) {
                SourceError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    /// SSH_FXP_RENAME, which OpenSSH refuses when the target exists (it never replaces).
    pub(super) async fn rename(
        &self,
        from: &RemoteName,
        to: &RemoteName,
    ) -> Result<(), SourceError> {
        let (old, new) = (self.path(from.as_str()), self.path(to.as_str()));
        match self.sftp.rename(old.clone(), new.clone()).await {
            Ok(()) => Ok(()),
            Err(e) => match sftp_error(&old, "renaming", e) {
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
            Err(e) => match sftp_error(&path, "deleting", e) {
                SourceError::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    pub(super) async fn close(self) {
        let _ = self.sftp.close().await;
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
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

fn sftp_error(path: &str, doing: &str, e: russh_sftp::client::error::Error) -> SourceError {
    use russh_sftp::client::error::Error;
    match e {
        Error::Status(s) if s.status_code == StatusCode::NoSuchFile => {
            SourceError::NotFound { path: path.into() }
        }
        Error::Status(s) if s.status_code == StatusCode::PermissionDenied => SourceError::Denied {
            path: path.into(),
            doing: doing.into(),
        },
        other => SourceError::io(format!("{doing} {path}"), other),
    }
}
