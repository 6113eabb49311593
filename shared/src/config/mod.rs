//! Configuration: one TOML file, every key overridable by `VISITAS_<SECTION>__<KEY>`
//! variables (`VISITAS_DATABASE__URL` sets `database.url`); secrets from files or the
//! environment. Each layer below defines its own sections; this module composes them and
//! checks the rules that span keys.

mod alerts;
mod expect;
mod sections;

pub use alerts::{Address, AlertsConfig, EmailConfig, Every, SmtpTls};
pub use expect::{ExpectConfig, FileCount, RowBounds};
pub use sections::{
    BusinessConfig, ConsoleConfig, DispatcherConfig, PathsConfig, PerformerConfig, SourceConfig,
    TelemetryConfig,
};

use crate::source::{Access, SftpConfig};
use crate::store::settings::DatabaseConfig;
use crate::types::{InvalidSetting, Secret};
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Where the configuration file is looked for when no `--config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/visitas/visitas.toml";

/// Errors reading or checking the configuration; each names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or a variable could not be read or does not fit the schema.
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    /// A value parsed but breaks a rule.
    #[error(transparent)]
    Invalid(#[from] InvalidSetting),
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
    /// Alerts: webhook, e-mail, repetition, retries.
    #[serde(default)]
    pub alerts: AlertsConfig,
    /// What each feed is expected to deliver (`[expect.<feed>]`), by feed name.
    #[serde(default)]
    pub expect: BTreeMap<String, ExpectConfig>,
    /// Metrics.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// The operators' console.
    #[serde(default)]
    pub console: ConsoleConfig,
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
        crate::local::host::adopt(config.performer.host_name.as_deref());
        Ok(config)
    }

    /// The rules that span keys (each key's own type was checked as it was read).
    fn check(&self) -> Result<(), InvalidSetting> {
        regex::Regex::new(&self.source.pattern)
            .map_err(|e| InvalidSetting::new("source.pattern", e.to_string()))?;
        self.database.check()?;
        if self.performer.batch_rows == 0 {
            return Err(InvalidSetting::new(
                "performer.batch_rows",
                "must be at least 1",
            ));
        }
        if self.source.listings_without_mtime < 2 {
            return Err(InvalidSetting::new(
                "source.listings_without_mtime",
                "must be at least 2 (two listings that agree)",
            ));
        }
        if self.performer.workers == 0 {
            return Err(InvalidSetting::new(
                "performer.workers",
                "must be at least 1",
            ));
        }
        self.alerts.check()?;
        for (feed, expect) in &self.expect {
            if !crate::feed::FEEDS.contains(&feed.as_str()) {
                return Err(InvalidSetting::new(
                    "expect.<feed>",
                    format!(
                        "`[expect.{feed}]`: no feed is named `{feed}` (feeds: {})",
                        crate::feed::FEEDS.join(", ")
                    ),
                ));
            }
            expect.check().map_err(|e| InvalidSetting {
                reason: format!("[expect.{feed}]: {}", e.reason),
                ..e
            })?;
        }
        if let Some(name) = &self.performer.host_name
            && (name.trim().is_empty() || name.trim() != name || name.chars().any(char::is_control))
        {
            return Err(InvalidSetting::new(
                "performer.host_name",
                "must be a name: not empty, no spaces around it, no control characters",
            ));
        }
        self.sftp.check_for(&self.source.url)
    }

    /// What feed `feed` is expected to deliver: its `[expect.<feed>]`, or the defaults.
    pub fn expect_for(&self, feed: &str) -> ExpectConfig {
        self.expect.get(feed).cloned().unwrap_or_default()
    }

    /// The database URL, from `database.url` or the file `database.url_file`.
    pub fn database_url(&self) -> Result<Secret, InvalidSetting> {
        self.database.url()
    }

    /// What opening the configured origin (or an item's) takes.
    pub fn access(&self) -> Access<'_> {
        Access {
            url: &self.source.url,
            sftp: &self.sftp,
        }
    }

    /// Lease length.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.performer.lease_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceLocation;
    use std::path::PathBuf;

    fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = Figment::from(Toml::string(text))
            .extract()
            .map_err(Box::new)?;
        config.check()?;
        crate::local::host::adopt(config.performer.host_name.as_deref());
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
    fn expected_feeds_and_email_are_read_and_checked() {
        let c = from_toml(&format!(
            "{MINIMAL}\n[alerts]\nrepeat_every = \"30m\"\n[alerts.email]\nhost = \"localhost\"\ntls = \"none\"\n\
             from = \"visitas@localhost\"\nto = [\"Ops <ops@example.com>\"]\n\
             [expect.visitas]\ndays = \"mon-sat\"\ndue_by = \"06:30\"\nfiles = {{ min = 1, max = 3 }}\n\
             holidays = [2026-12-25]\n"
        ))
        .unwrap();
        let e = c.expect_for("visitas");
        assert_eq!(e.files.max, Some(3));
        assert!(!e.expected_on(chrono::NaiveDate::from_ymd_opt(2026, 12, 25).unwrap()));
        assert!(!e.expected_on(chrono::NaiveDate::from_ymd_opt(2026, 12, 6).unwrap()));
        assert!(e.expected_on(chrono::NaiveDate::from_ymd_opt(2026, 12, 5).unwrap()));
        assert_eq!(c.alerts.repeat_every.0.as_secs(), 1800);
        assert_eq!(c.alerts.email.as_ref().unwrap().port(), 25);
        assert!(c.expect_for("visitas").history == 28);
    }

    #[test]
    fn email_rules_name_the_key() {
        let email = |extra: &str| {
            from_toml(&format!(
                "{MINIMAL}\n[alerts.email]\nfrom = \"v@example.com\"\nto = [\"o@example.com\"]\n{extra}\n"
            ))
            .unwrap_err()
            .to_string()
        };
        let clear = email("host = \"smtp.example.com\"\ntls = \"none\"");
        assert!(clear.contains("alerts.email.tls"), "{clear}");
        let bad = from_toml(&format!(
            "{MINIMAL}\n[alerts.email]\nhost = \"h\"\ntls = \"starttls\"\nfrom = \"nobody\"\nto = []\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(bad.contains("nobody"), "{bad}");
        let user = email("host = \"h\"\ntls = \"implicit\"\nuser = \"u\"");
        assert!(user.contains("alerts.email.password_file"), "{user}");
        let feed = from_toml(&format!("{MINIMAL}\n[expect.ventas]\nhistory = 10\n"))
            .unwrap_err()
            .to_string();
        assert!(
            feed.contains("ventas") && feed.contains("visitas"),
            "{feed}"
        );
        let half = from_toml(&format!("{MINIMAL}\n[expect.visitas]\ndays = \"*\"\n"))
            .unwrap_err()
            .to_string();
        assert!(half.contains("due_by"), "{half}");
    }

    #[test]
    fn the_example_configuration_reads() {
        let c = from_toml(include_str!("../../../ops/visitas.example.toml")).unwrap();
        assert!(c.expect_for("visitas").presence().is_some());
        assert_eq!(c.alerts.tries, AlertsConfig::default().tries);
    }

    #[test]
    fn a_done_marker_is_checked_at_start_up() {
        let with = |marker: &str| {
            MINIMAL.replace(
                "url = \"file:///srv/in\"",
                &format!("url = \"file:///srv/in\"\ndone_marker = \"{marker}\""),
            )
        };
        let c = from_toml(&with("{stem}.ok")).unwrap();
        assert_eq!(
            c.source.done_marker.unwrap().marker_of("report_1.txt"),
            "report_1.ok"
        );
        let err = from_toml(&with("done")).unwrap_err();
        assert!(err.to_string().contains("done_marker"), "{err}");
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
