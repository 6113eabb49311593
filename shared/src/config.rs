//! Configuration: one TOML file, every key overridable by `VISITAS_<SECTION>__<KEY>`
//! variables (`VISITAS_DATABASE__URL` sets `database.url`); secrets from files or the environment.

use crate::secret::Secret;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// Where the configuration file is looked for when no `--config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/visitas/visitas.toml";

/// Errors reading or checking the configuration; each names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or a variable could not be read or does not fit the schema.
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    /// A value parsed but breaks a rule.
    #[error("configuration key `{key}`: {reason}")]
    Invalid {
        /// The dotted key, as in the TOML file.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// The whole configuration of dispatcher and performer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the visit files come from.
    pub source: SourceConfig,
    /// SFTP credentials and host-key checking (required for `sftp://` sources).
    #[serde(default)]
    pub(crate) sftp: SftpConfig,
    /// The PostgreSQL database.
    pub database: DatabaseConfig,
    /// Local directories.
    #[serde(default)]
    pub paths: PathsConfig,
    /// The worker pool.
    #[serde(default)]
    pub performer: PerformerConfig,
    /// Business calendar.
    #[serde(default)]
    pub business: BusinessConfig,
    /// The nightly run: waiting, closing the day, retention.
    #[serde(default)]
    pub dispatcher: DispatcherConfig,
    /// Alerts by webhook.
    #[serde(default)]
    pub alerts: AlertsConfig,
    /// Metrics.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
}

/// Alerts: a JSON POST on `FALLO_LAYOUT`, `FALLO_SISTEMA` and a night that did not drain.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Webhook URL (may hold a token: a secret). No URL, no alerts.
    pub webhook_url: Option<Secret>,
    /// Timeout of one POST.
    pub timeout_secs: u64,
    /// Tries of one alert.
    pub tries: usize,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            webhook_url: None,
            timeout_secs: 5,
            tries: 3,
        }
    }
}

/// Metrics served by the performer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Address of the Prometheus endpoint (`/metrics`), e.g. `127.0.0.1:9464`; none: no endpoint.
    pub metrics_listen: Option<String>,
}

/// The nightly run.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DispatcherConfig {
    /// How long `dispatcher run` waits for its items to reach a final state.
    pub drain_timeout_secs: u64,
    /// How often it looks while waiting.
    pub wait_poll_secs: u64,
    /// Nightly runs that retry a `FALLO_SISTEMA` file still at the origin (tier 4).
    pub system_retry_runs: u32,
    /// Days a `backup_YYYYMMDD.zip` is kept.
    pub backup_retention_days: u32,
    /// Days a `logs/YYYYMMDD/` directory is kept.
    pub log_retention_days: u32,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            drain_timeout_secs: 4 * 3600,
            wait_poll_secs: 5,
            system_retry_runs: 2,
            backup_retention_days: 90,
            log_retention_days: 30,
        }
    }
}

/// The origin directory and which files in it are visit files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `sftp://user@host:port/dir` or `file:///dir`, parsed at load.
    pub url: SourceUrl,
    /// Regular expression a file name must match in full.
    #[serde(default = "FileRules::pattern")]
    pub pattern: String,
    /// A file younger than this is still being written.
    #[serde(default = "FileRules::min_file_age_secs")]
    pub min_file_age_secs: u64,
    /// Two listings this far apart must agree on size and mtime.
    #[serde(default = "FileRules::stability_window_secs")]
    pub stability_window_secs: u64,
}

/// The `[source]` keys' defaults: the section has one required key (`url`), so it has no
/// `Default` of its own and serde takes these one by one.
struct FileRules;

impl FileRules {
    fn pattern() -> String {
        r"report_[0-9]+\.txt".into()
    }
    fn min_file_age_secs() -> u64 {
        60
    }
    fn stability_window_secs() -> u64 {
        5
    }
}

/// SFTP authentication and host-key verification.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct SftpConfig {
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
}

impl Default for SftpConfig {
    fn default() -> Self {
        Self {
            known_hosts: None,
            private_key_file: None,
            password_file: None,
            password: None,
            timeout_secs: 30,
        }
    }
}

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
    pub sslmode: Option<crate::db_tls::SslMode>,
    /// The CA file the server's certificate must chain to (libpq's `sslrootcert`).
    pub sslrootcert: Option<PathBuf>,
    /// A client certificate to log in with (libpq's `sslcert`), with `sslkey`.
    pub sslcert: Option<PathBuf>,
    /// The client certificate's private key (libpq's `sslkey`).
    pub sslkey: Option<PathBuf>,
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
        }
    }
}

/// Local directories under one root.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PathsConfig {
    /// Root of `staging/`, `backup/`, `quarantine/`, `logs/`.
    pub root: PathBuf,
}

impl Default for PathsConfig {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/home/etl"),
        }
    }
}

/// Worker pool, leases and retries.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PerformerConfig {
    /// Items processed at once by one performer.
    pub workers: usize,
    /// How long a claimed item stays ours without a heartbeat.
    pub lease_secs: u64,
    /// Poll interval when no notification arrives.
    pub poll_secs: u64,
    /// Whole-item attempts before `FALLO_SISTEMA` (tier 2).
    pub max_attempts: u32,
    /// Delay before a failed item is tried again (tier 2).
    pub retry_delay_secs: u64,
    /// In-place tries of one network or database step (tier 1).
    pub step_tries: usize,
    /// First backoff delay of tier 1, doubled each try, with jitter.
    pub step_backoff_ms: u64,
    /// Records validated and copied together: memory is bounded by this, not by the file size.
    pub batch_rows: usize,
    /// After SIGTERM, how long items in hand may take before they are abandoned (rolled back, handed back).
    pub shutdown_grace_secs: u64,
}

impl Default for PerformerConfig {
    fn default() -> Self {
        Self {
            workers: 2,
            lease_secs: 300,
            poll_secs: 5,
            max_attempts: 3,
            retry_delay_secs: 60,
            step_tries: 3,
            step_backoff_ms: 1000,
            batch_rows: crate::feed::BATCH_ROWS,
            shutdown_grace_secs: 60,
        }
    }
}

/// The business calendar that dates a load.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusinessConfig {
    /// IANA time zone whose "today" is the business date (parsed at load).
    #[serde(deserialize_with = "time_zone")]
    pub time_zone: chrono_tz::Tz,
}

impl Default for BusinessConfig {
    fn default() -> Self {
        Self {
            time_zone: chrono_tz::America::Mexico_City,
        }
    }
}

/// `business.time_zone` from its IANA name.
fn time_zone<'de, D: serde::Deserializer<'de>>(d: D) -> Result<chrono_tz::Tz, D::Error> {
    let name = String::deserialize(d)?;
    name.parse()
        .map_err(|_| serde::de::Error::custom(format!("`{name}` is not an IANA time zone name")))
}

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

impl Config {
    /// Reads `path` (if it exists) and the `VISITAS_…` environment, then checks every rule.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if path.exists() {
            figment = figment.merge(Toml::file_exact(path));
        }
        let config: Config = figment
            // Only `VISITAS_SECTION__KEY` is configuration: every key lives in a section,
            // so other `VISITAS_…` variables (VISITAS_CONFIG, the test bed's) are not keys.
            .merge(
                Env::prefixed("VISITAS_")
                    .filter(|k| k.as_str().contains("__"))
                    .split("__"),
            )
            .extract()
            .map_err(Box::new)?;
        config.check()?;
        Ok(config)
    }

    /// The rules that span keys (each key's own type was checked as it was read).
    fn check(&self) -> Result<(), ConfigError> {
        regex::Regex::new(&self.source.pattern).map_err(|e| ConfigError::Invalid {
            key: "source.pattern",
            reason: e.to_string(),
        })?;
        if self.database.url.is_none() && self.database.url_file.is_none() {
            return Err(no_database_url());
        }
        if self.performer.batch_rows == 0 {
            return Err(invalid("performer.batch_rows", "must be at least 1"));
        }
        if self.performer.workers == 0 {
            return Err(invalid("performer.workers", "must be at least 1"));
        }
        if self.database.pool_size == 0 {
            return Err(invalid("database.pool_size", "must be at least 1"));
        }
        if let SourceLocation::Sftp { .. } = self.source.url.location() {
            if self.sftp.known_hosts.is_none() {
                return Err(invalid(
                    "sftp.known_hosts",
                    "required for sftp:// sources: the server's key is always verified",
                ));
            }
            if self.sftp.private_key_file.is_none()
                && self.sftp.password_file.is_none()
                && self.sftp.password.is_none()
            {
                return Err(invalid(
                    "sftp.private_key_file",
                    "set a private key (or sftp.password_file)",
                ));
            }
        }
        Ok(())
    }

    /// The database URL, from `database.url` or the file `database.url_file`.
    pub fn database_url(&self) -> Result<Secret, ConfigError> {
        match (&self.database.url, &self.database.url_file) {
            (Some(url), _) => Ok(url.clone()),
            (None, Some(path)) => read_secret_file(path, "database.url_file"),
            (None, None) => Err(no_database_url()),
        }
    }

    /// The SFTP password fallback, if one is configured.
    pub(crate) fn sftp_password(&self) -> Result<Option<Secret>, ConfigError> {
        match (&self.sftp.password, &self.sftp.password_file) {
            (Some(p), _) => Ok(Some(p.clone())),
            (None, Some(path)) => read_secret_file(path, "sftp.password_file").map(Some),
            (None, None) => Ok(None),
        }
    }

    /// Lease length.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.performer.lease_secs)
    }
}

fn no_database_url() -> ConfigError {
    invalid(
        "database.url",
        "set database.url (or VISITAS_DATABASE__URL) or database.url_file",
    )
}

fn invalid(key: &'static str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.to_string(),
    }
}

fn read_secret_file(path: &Path, key: &'static str) -> Result<Secret, ConfigError> {
    std::fs::read_to_string(path)
        .map(|s| Secret::new(s.trim_end()))
        .map_err(|e| invalid(key, &format!("cannot read {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = Figment::from(Toml::string(text))
            .extract()
            .map_err(Box::new)?;
        config.check()?;
        Ok(config)
    }

    const MINIMAL: &str = r#"
        [source]
        url = "file:///srv/in"
        [database]
        url = "postgres://localhost/visitas"
    "#;

    #[test]
    fn minimal_file_gets_documented_defaults() {
        let c = from_toml(MINIMAL).unwrap();
        assert_eq!(c.performer.max_attempts, 3);
        assert_eq!(c.database.pool_size, 8);
        assert_eq!(c.paths.root, PathBuf::from("/home/etl"));
        assert_eq!(
            c.source.url.location(),
            &SourceLocation::Local {
                dir: "/srv/in".into()
            }
        );
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let err = from_toml(&format!("{MINIMAL}\n[performer]\nworkerz = 3\n")).unwrap_err();
        assert!(err.to_string().contains("workerz"), "{err}");
    }

    #[test]
    fn sftp_source_requires_known_hosts() {
        let text = MINIMAL.replace("file:///srv/in", "sftp://etl@h:2222/in");
        let err = from_toml(&text).unwrap_err();
        assert!(err.to_string().contains("sftp.known_hosts"), "{err}");
    }

    #[test]
    fn sftp_url_is_parsed() {
        let text = format!(
            "{}\n[sftp]\nknown_hosts = \"/k\"\nprivate_key_file = \"/id\"\n",
            MINIMAL.replace(
                "file:///srv/in",
                "sftp://etl@h:2222/home/vinkOS/archivosVisitas"
            )
        );
        let c = from_toml(&text).unwrap();
        assert_eq!(
            c.source.url.location(),
            &SourceLocation::Sftp {
                host: "h".into(),
                port: 2222,
                user: "etl".into(),
                dir: "/home/vinkOS/archivosVisitas".into()
            }
        );
    }

    #[test]
    fn bad_time_zone_is_an_error() {
        let err = from_toml(&format!(
            "{MINIMAL}\n[business]\ntime_zone = \"Mars/Base\"\n"
        ))
        .unwrap_err();
        assert!(err.to_string().contains("business.time_zone"), "{err}");
    }
}
