//! `[sftp]` (credentials and host-key checking) and what opening an origin takes.

use super::location::{SourceLocation, SourceUrl};
use crate::local::secret_file::read_secret_file;
use crate::types::{InvalidSetting, Secret};
use serde::Deserialize;
use std::path::PathBuf;

/// SFTP authentication and host-key verification.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SftpConfig {
    /// known_hosts file the server's key must be listed in.
    pub(crate) known_hosts: Option<PathBuf>,
    /// Private key for public-key authentication.
    pub(crate) private_key_file: Option<PathBuf>,
    /// Password fallback, read from this file (never from argv).
    pub(crate) password_file: Option<PathBuf>,
    /// Password fallback from the environment (`VISITAS_SFTP__PASSWORD`).
    pub(crate) password: Option<Secret>,
    /// Per-request timeout.
    pub(crate) timeout_secs: u64,
    /// How long a performer's worker keeps its connection open with no item to use it
    /// (0: closed after every item).
    pub(crate) keep_idle_secs: u64,
}

impl Default for SftpConfig {
    fn default() -> Self {
        Self {
            known_hosts: None,
            private_key_file: None,
            password_file: None,
            password: None,
            timeout_secs: 30,
            keep_idle_secs: 60,
        }
    }
}

impl SftpConfig {
    /// The rules for an origin at `url`: an SFTP one needs known_hosts and a credential.
    pub(crate) fn check_for(&self, url: &SourceUrl) -> Result<(), InvalidSetting> {
        if let SourceLocation::Sftp { .. } = url.location() {
            if self.known_hosts.is_none() {
                return Err(InvalidSetting::new(
                    "sftp.known_hosts",
                    "required for sftp:// sources: the server's key is always verified",
                ));
            }
            if self.private_key_file.is_none()
                && self.password_file.is_none()
                && self.password.is_none()
            {
                return Err(InvalidSetting::new(
                    "sftp.private_key_file",
                    "set a private key (or sftp.password_file)",
                ));
            }
        }
        Ok(())
    }

    /// How long a worker keeps an idle connection to its origin (`sftp.keep_idle_secs`).
    pub fn keep_idle(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.keep_idle_secs)
    }

    /// The SFTP password fallback, if one is configured.
    pub(crate) fn password(&self) -> Result<Option<Secret>, InvalidSetting> {
        match (&self.password, &self.password_file) {
            (Some(p), _) => Ok(Some(p.clone())),
            (None, Some(path)) => read_secret_file(path, "sftp.password_file").map(Some),
            (None, None) => Ok(None),
        }
    }
}

/// What opening an origin takes: the configured origin and the SFTP credentials.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    /// The configured origin (`source.url`).
    pub url: &'a SourceUrl,
    /// SFTP credentials and host-key checking.
    pub sftp: &'a SftpConfig,
}
