//! `[database]`: where the database is and how to reach it.

use crate::local::secret_file::read_secret_file;
use crate::types::{InvalidSetting, Secret};
use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The database connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Connection URL (may hold a password: set it by environment or file).
    pub url: Option<Secret>,
    /// File holding the connection URL.
    pub url_file: Option<PathBuf>,
    /// Connections per process, independent of the number of workers.
    pub pool_size: u32,
    /// libpq's `sslmode` (`sslmode=` in the URL works too); `verify-full` off this host.
    pub sslmode: Option<SslMode>,
    /// The CA file the server's certificate must chain to (libpq's `sslrootcert`).
    pub sslrootcert: Option<PathBuf>,
    /// A client certificate to log in with (libpq's `sslcert`), with `sslkey`.
    pub sslcert: Option<PathBuf>,
    /// The client certificate's private key (libpq's `sslkey`).
    pub sslkey: Option<PathBuf>,
    /// How long opening a connection may take.
    pub connect_timeout_secs: u64,
    /// Idle seconds before TCP keepalive probes start on a connection (then every third
    /// of it, three probes): a server gone without a word is noticed.
    pub keepalive_secs: u64,
    /// How long data sent may stay unacknowledged before the connection is dropped
    /// (`TCP_USER_TIMEOUT`): a query to a dead server fails instead of hanging.
    pub tcp_user_timeout_secs: u64,
    /// How long a database that is unreachable or read-only (a failover, a restart, a
    /// switchover) is waited out, step by step, before the step fails.
    pub outage_budget_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            url_file: None,
            pool_size: 8,
            sslmode: None,
            sslrootcert: None,
            sslcert: None,
            sslkey: None,
            connect_timeout_secs: 10,
            keepalive_secs: 10,
            tcp_user_timeout_secs: 20,
            outage_budget_secs: 60,
        }
    }
}

impl DatabaseConfig {
    /// The rules of the section's own keys.
    pub(crate) fn check(&self) -> Result<(), InvalidSetting> {
        if self.url.is_none() && self.url_file.is_none() {
            return Err(no_database_url());
        }
        if self.pool_size == 0 {
            return Err(InvalidSetting::new(
                "database.pool_size",
                "must be at least 1",
            ));
        }
        for (key, value) in [
            ("database.connect_timeout_secs", self.connect_timeout_secs),
            ("database.keepalive_secs", self.keepalive_secs),
            ("database.tcp_user_timeout_secs", self.tcp_user_timeout_secs),
        ] {
            if value == 0 {
                return Err(InvalidSetting::new(key, "must be at least 1"));
            }
        }
        Ok(())
    }

    /// The time limits of every connection (see [`Timeouts`]).
    pub fn timeouts(&self) -> Timeouts {
        let secs = Duration::from_secs;
        Timeouts {
            connect: secs(self.connect_timeout_secs),
            keepalive_idle: secs(self.keepalive_secs),
            keepalive_interval: secs(self.keepalive_secs.div_ceil(3)),
            tcp_user: secs(self.tcp_user_timeout_secs),
            outage_budget: secs(self.outage_budget_secs),
        }
    }

    /// The database URL, from `database.url` or the file `database.url_file`.
    pub fn url(&self) -> Result<Secret, InvalidSetting> {
        match (&self.url, &self.url_file) {
            (Some(url), _) => Ok(url.clone()),
            (None, Some(path)) => read_secret_file(path, "database.url_file"),
            (None, None) => Err(no_database_url()),
        }
    }
}

/// How long a database that does not answer may hold a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening a connection.
    pub connect: Duration,
    /// Idle time before keepalive probes.
    pub keepalive_idle: Duration,
    /// Between keepalive probes (three are sent).
    pub keepalive_interval: Duration,
    /// Unacknowledged data before the connection is dropped.
    pub tcp_user: Duration,
    /// How long an outage is waited out by one step.
    pub outage_budget: Duration,
}

impl Timeouts {
    /// Keepalive probes sent before a silent connection is dropped.
    pub const KEEPALIVE_PROBES: u32 = 3;

    /// The longest a query that runs in a loop (a heartbeat, a wait's poll) may go
    /// unanswered through sqlx, which has no keepalive: what tokio-postgres' socket
    /// options allow for a connection and its silence, and no more.
    pub fn unanswered(&self) -> Duration {
        self.connect + self.tcp_user
    }
}

fn no_database_url() -> InvalidSetting {
    InvalidSetting::new(
        "database.url",
        "set database.url (or VISITAS_DATABASE__URL) or database.url_file",
    )
}

/// libpq's `sslmode` (`allow` is not offered: it tries without TLS first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it; the certificate is not checked (libpq's default).
    Prefer,
    /// TLS or no connection; the certificate is checked only if a CA file is given.
    Require,
    /// TLS; the certificate must chain to the CA file.
    VerifyCa,
    /// TLS; the certificate must chain to the CA file and name the host connected to.
    VerifyFull,
}

impl SslMode {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        })
    }
}
