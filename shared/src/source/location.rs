//! `source.url`, parsed once: a local directory or an SFTP one, and the origin it
//! stands for in `work_items.origin`.

use crate::types::Origin;
use serde::Deserialize;
use std::path::PathBuf;
use url::Url;

/// `source.url`, parsed at load: its text and where it points.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct SourceUrl {
    text: String,
    location: SourceLocation,
}

impl SourceUrl {
    /// The URL as configured (what a dispatch run records as its source).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Where it points.
    pub(crate) fn location(&self) -> &SourceLocation {
        &self.location
    }

    /// The origin as recorded in `work_items.origin` (its URL without credentials; a
    /// `file://` origin is bound to this host).
    pub fn origin(&self) -> Origin {
        match &self.location {
            SourceLocation::Local { dir } => Origin::local(dir, crate::local::host::name()),
            SourceLocation::Sftp {
                host,
                port,
                user,
                dir,
            } => Origin {
                url: format!("sftp://{user}@{host}:{port}{dir}"),
                host: None,
            },
        }
    }
}

impl TryFrom<String> for SourceUrl {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let location = SourceLocation::parse(&text)?;
        Ok(Self { text, location })
    }
}

/// A parsed `source.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SourceLocation {
    /// A directory on this host.
    Local {
        /// The directory.
        dir: PathBuf,
    },
    /// A directory on an SFTP server.
    Sftp {
        /// Host name or address.
        host: String,
        /// TCP port.
        port: u16,
        /// Login name.
        user: String,
        /// Absolute directory on the server.
        dir: String,
    },
}

impl SourceLocation {
    fn parse(text: &str) -> Result<Self, String> {
        let url = Url::parse(text).map_err(|e| e.to_string())?;
        match url.scheme() {
            "file" => Ok(Self::Local {
                dir: url
                    .to_file_path()
                    .map_err(|()| "file:// URL must hold an absolute path".to_string())?,
            }),
            "sftp" => {
                let host = url.host_str().ok_or("sftp:// URL needs a host")?;
                if url.username().is_empty() {
                    return Err("sftp:// URL needs a user (sftp://user@host/dir)".into());
                }
                if url.password().is_some() {
                    return Err("no password in the URL: use sftp.password_file".into());
                }
                Ok(Self::Sftp {
                    host: host.to_string(),
                    port: url.port().unwrap_or(22),
                    user: url.username().to_string(),
                    dir: url.path().to_string(),
                })
            }
            other => Err(format!("unknown scheme `{other}` (use sftp:// or file://)")),
        }
    }
}
