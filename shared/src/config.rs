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
    pub sftp: SftpConfig,
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
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Webhook URL (may hold a token: a secret). No URL, no alerts.
    pub webhook_url: Option<Secret>,
    /// Timeout of one POST.
    #[serde(default = "default_alert_timeout")]
    pub timeout_secs: u64,
    /// Tries of one alert.
    #[serde(default = "default_alert_tries")]
    pub tries: usize,
}

/// Metrics served by the performer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Address of the Prometheus endpoint (`/metrics`), e.g. `127.0.0.1:9464`; none: no endpoint.
    pub metrics_listen: Option<String>,
}

/// The nightly run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatcherConfig {
    /// How long `dispatcher run` waits for its items to reach a final state.
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout_secs: u64,
    /// How often it looks while waiting.
    #[serde(default = "default_wait_poll")]
    pub wait_poll_secs: u64,
    /// Nightly runs that retry a `FALLO_SISTEMA` file still at the origin (tier 4).
    #[serde(default = "default_system_retry_runs")]
    pub system_retry_runs: u32,
    /// Days a `backup_YYYYMMDD.zip` is kept.
    #[serde(default = "default_backup_retention")]
    pub backup_retention_days: u32,
    /// Days a `logs/YYYYMMDD/` directory is kept.
    #[serde(default = "default_log_retention")]
    pub log_retention_days: u32,
}

/// The origin directory and which files in it are visit files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `sftp://user@host:port/dir` or `file:///dir`.
    pub url: String,
    /// Regular expression a file name must match in full.
    #[serde(default = "default_pattern")]
    pub pattern: String,
    /// A file younger than this is still being written.
    #[serde(default = "default_min_file_age")]
    pub min_file_age_secs: u64,
    /// Two listings this far apart must agree on size and mtime.
    #[serde(default = "default_stability_window")]
    pub stability_window_secs: u64,
}

/// SFTP authentication and host-key verification.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftpConfig {
    /// known_hosts file the server's key must be listed in.
    pub known_hosts: Option<PathBuf>,
    /// Private key for public-key authentication.
    pub private_key_file: Option<PathBuf>,
    /// Password fallback, read from this file (never from argv).
    pub password_file: Option<PathBuf>,
    /// Password fallback from the environment (`VISITAS_SFTP__PASSWORD`).
    pub password: Option<Secret>,
    /// Per-request timeout.
    #[serde(default = "default_sftp_timeout")]
    pub timeout_secs: u64,
}

/// The database connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Connection URL (may hold a password: set it by environment or file).
    pub url: Option<Secret>,
    /// File holding the connection URL.
    pub url_file: Option<PathBuf>,
    /// Connections per process, independent of the number of workers.
    #[serde(default = "default_pool_size")]
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

/// Local directories under one root.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathsConfig {
    /// Root of `staging/`, `backup/`, `quarantine/`, `logs/`.
    #[serde(default = "default_root")]
    pub root: PathBuf,
}

/// Worker pool, leases and retries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerformerConfig {
    /// Items processed at once by one performer.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// How long a claimed item stays ours without a heartbeat.
    #[serde(default = "default_lease")]
    pub lease_secs: u64,
    /// Poll interval when no notification arrives.
    #[serde(default = "default_poll")]
    pub poll_secs: u64,
    /// Whole-item attempts before `FALLO_SISTEMA` (tier 2).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Delay before a failed item is tried again (tier 2).
    #[serde(default = "default_retry_delay")]
    pub retry_delay_secs: u64,
    /// In-place tries of one network or database step (tier 1).
    #[serde(default = "default_step_tries")]
    pub step_tries: usize,
    /// First backoff delay of tier 1, doubled each try, with jitter.
    #[serde(default = "default_step_backoff_ms")]
    pub step_backoff_ms: u64,
    /// Records validated and copied together: memory is bounded by this, not by the file size.
    #[serde(default = "default_batch_rows")]
    pub batch_rows: usize,
    /// After SIGTERM, how long items in hand may take before they are abandoned (rolled back, handed back).
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_secs: u64,
}

/// The business calendar that dates a load.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessConfig {
    /// IANA time zone whose "today" is the business date.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
}

fn default_pattern() -> String {
    r"report_[0-9]+\.txt".into()
}
fn default_min_file_age() -> u64 {
    60
}
fn default_stability_window() -> u64 {
    5
}
fn default_sftp_timeout() -> u64 {
    30
}
fn default_pool_size() -> u32 {
    8
}
fn default_root() -> PathBuf {
    PathBuf::from("/home/etl")
}
fn default_workers() -> usize {
    2
}
fn default_lease() -> u64 {
    300
}
fn default_poll() -> u64 {
    5
}
fn default_max_attempts() -> u32 {
    3
}
fn default_retry_delay() -> u64 {
    60
}
fn default_step_tries() -> usize {
    3
}
fn default_step_backoff_ms() -> u64 {
    1000
}
fn default_alert_timeout() -> u64 {
    5
}
fn default_alert_tries() -> usize {
    3
}
fn default_batch_rows() -> usize {
    crate::feed::BATCH_ROWS
}
fn default_shutdown_grace() -> u64 {
    60
}
fn default_drain_timeout() -> u64 {
    4 * 3600
}
fn default_wait_poll() -> u64 {
    5
}
fn default_system_retry_runs() -> u32 {
    2
}
fn default_backup_retention() -> u32 {
    90
}
fn default_log_retention() -> u32 {
    30
}
fn default_time_zone() -> String {
    "America/Mexico_City".into()
}

impl Default for PathsConfig {
    fn default() -> Self {
        Self {
            root: default_root(),
        }
    }
}

impl Default for PerformerConfig {
    fn default() -> Self {
        Self {
            workers: default_workers(),
            lease_secs: default_lease(),
            poll_secs: default_poll(),
            max_attempts: default_max_attempts(),
            retry_delay_secs: default_retry_delay(),
            step_tries: default_step_tries(),
            step_backoff_ms: default_step_backoff_ms(),
            batch_rows: default_batch_rows(),
            shutdown_grace_secs: default_shutdown_grace(),
        }
    }
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            webhook_url: None,
            timeout_secs: default_alert_timeout(),
            tries: default_alert_tries(),
        }
    }
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            drain_timeout_secs: default_drain_timeout(),
            wait_poll_secs: default_wait_poll(),
            system_retry_runs: default_system_retry_runs(),
            backup_retention_days: default_backup_retention(),
            log_retention_days: default_log_retention(),
        }
    }
}

impl Default for BusinessConfig {
    fn default() -> Self {
        Self {
            time_zone: default_time_zone(),
        }
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
        /// Absolute directory on the server.
        dir: String,
    },
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

    fn check(&self) -> Result<(), ConfigError> {
        self.source_location()?;
        regex::Regex::new(&self.source.pattern).map_err(|e| ConfigError::Invalid {
            key: "source.pattern",
            reason: e.to_string(),
        })?;
        self.time_zone()?;
        if self.database.url.is_none() && self.database.url_file.is_none() {
            return Err(invalid(
                "database.url",
                "set database.url (or VISITAS_DATABASE__URL) or database.url_file",
            ));
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
        if let SourceLocation::Sftp { .. } = self.source_location()? {
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

    /// The origin, parsed from `source.url`.
    pub fn source_location(&self) -> Result<SourceLocation, ConfigError> {
        let url =
            Url::parse(&self.source.url).map_err(|e| invalid("source.url", &e.to_string()))?;
        match url.scheme() {
            "file" => Ok(SourceLocation::Local {
                dir: url.to_file_path().map_err(|()| {
                    invalid("source.url", "file:// URL must hold an absolute path")
                })?,
            }),
            "sftp" => {
                let host = url
                    .host_str()
                    .ok_or_else(|| invalid("source.url", "sftp:// URL needs a host"))?;
                if url.username().is_empty() {
                    return Err(invalid(
                        "source.url",
                        "sftp:// URL needs a user (sftp://user@host/dir)",
                    ));
                }
                if url.password().is_some() {
                    return Err(invalid(
                        "source.url",
                        "no password in the URL: use sftp.password_file",
                    ));
                }
                Ok(SourceLocation::Sftp {
                    host: host.to_string(),
                    port: url.port().unwrap_or(22),
                    user: url.username().to_string(),
                    dir: url.path().to_string(),
                })
            }
            other => Err(invalid(
                "source.url",
                &format!("unknown scheme `{other}` (use sftp:// or file://)"),
            )),
        }
    }

    /// The database URL, from `database.url` or the file `database.url_file`.
    pub fn database_url(&self) -> Result<Secret, ConfigError> {
        if let Some(url) = &self.database.url {
            return Ok(url.clone());
        }
        let path = self.database.url_file.as_ref().expect("checked at load");
        read_secret_file(path, "database.url_file")
    }

    /// The SFTP password fallback, if one is configured.
    pub fn sftp_password(&self) -> Result<Option<Secret>, ConfigError> {
        match (&self.sftp.password, &self.sftp.password_file) {
            (Some(p), _) => Ok(Some(p.clone())),
            (None, Some(path)) => read_secret_file(path, "sftp.password_file").map(Some),
            (None, None) => Ok(None),
        }
    }

    /// The business time zone.
    pub fn time_zone(&self) -> Result<chrono_tz::Tz, ConfigError> {
        self.business
            .time_zone
            .parse()
            .map_err(|_| invalid("business.time_zone", "not an IANA time zone name"))
    }

    /// Lease length.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.performer.lease_secs)
    }
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
            c.source_location().unwrap(),
            SourceLocation::Local {
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
            c.source_location().unwrap(),
            SourceLocation::Sftp {
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
