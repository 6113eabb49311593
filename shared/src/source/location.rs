//! `source.url`, parsed once: a local directory or an SFTP one, and the origin it
//! stands for in `work_items.origin`.

use crate::types::Origin;
use crate::types::origin::normal_dir;
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
    pub fn location(&self) -> &SourceLocation {
        &self.location
    }

    /// The origin as recorded in `work_items.origin` (its normalised URL without
    /// credentials; a `file://` origin is bound to this host).
    pub fn origin(&self) -> Origin {
        let mut origin = self.origin_anywhere();
        if origin.host.is_some() {
            origin.host = Some(crate::local::host::name());
        }
        origin
    }

    /// The origin's normalised URL, bound to no host (what an operator's command compares).
    pub fn origin_anywhere(&self) -> Origin {
        match &self.location {
            SourceLocation::Local { dir } => Origin::local(dir, String::new()),
            SourceLocation::Sftp {
                host,
                port,
                user,
                dir,
            } => Origin::sftp(user, host, *port, dir),
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
pub enum SourceLocation {
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
        /// Absolute directory on the server, %-decoded, in its one spelling (no final slash).
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
                // The URL keeps a space or an `ñ` of the directory %-encoded; the server
                // knows the directory by its own bytes.
                Ok(Self::Sftp {
                    host: host.to_lowercase(),
                    port: url.port().unwrap_or(22),
                    user: decoded(url.username(), "the user")?,
                    dir: normal_dir(&decoded(url.path(), "the directory")?),
                })
            }
            other => Err(format!("unknown scheme `{other}` (use sftp:// or file://)")),
        }
    }
}

/// A URL part with its %-escapes decoded; it must then be UTF-8.
fn decoded(part: &str, what: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(part)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| format!("{what} is not UTF-8 once its %-escapes are decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(text: &str) -> String {
        SourceUrl::try_from(text.to_string())
            .unwrap()
            .origin_anywhere()
            .url
    }

    #[test]
    fn spellings_of_one_directory_are_one_origin() {
        let one = "sftp://etl@h:22/dir";
        for text in [
            "sftp://etl@h/dir",
            "sftp://etl@h/dir/",
            "sftp://etl@h:22/dir/",
            "sftp://etl@H:22//dir",
            "sftp://%65tl@h/%64ir",
        ] {
            assert_eq!(origin(text), one, "{text}");
        }
        assert_ne!(origin("sftp://etl@h:2222/dir"), one);
        assert_ne!(origin("sftp://other@h/dir"), one);
        assert_eq!(origin("file:///srv/in/"), "file:///srv/in");
    }

    #[test]
    fn a_directory_with_a_space_or_an_accent_is_listed_by_its_own_name() {
        for text in [
            "sftp://etl@h/in/entrada diaria/año",
            "sftp://etl@h/in/entrada%20diaria/a%C3%B1o/",
        ] {
            let url = SourceUrl::try_from(text.to_string()).unwrap();
            let SourceLocation::Sftp { dir, .. } = url.location() else {
                panic!("sftp")
            };
            assert_eq!(dir, "/in/entrada diaria/año", "{text}");
            assert_eq!(
                url.origin_anywhere().url,
                "sftp://etl@h:22/in/entrada diaria/año"
            );
        }
        let bad = SourceUrl::try_from("sftp://etl@h/in/%FF".to_string()).unwrap_err();
        assert!(bad.contains("not UTF-8"), "{bad}");
    }
}
