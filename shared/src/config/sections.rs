//! The sections of the configuration that only the binaries read: the origin's file
//! rules, the worker pool, the nightly run, the business calendar, local paths and
//! telemetry. (Alerts and expected feeds have modules of their own, `super::alerts` and
//! `super::expect`; the layers below define theirs: `[database]` in
//! `crate::store::settings`, `[sftp]` in `crate::source::settings`.)

use crate::source::{DoneMarker, SourceUrl};
use serde::Deserialize;
use std::path::PathBuf;

/// Metrics served by the performer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Address of the Prometheus endpoint (`/metrics`), e.g. `127.0.0.1:9464`; none: no endpoint.
    pub metrics_listen: Option<String>,
}

/// The operators' console (`dispatcher console`): where it listens, who may log in,
/// and how long a session lasts. `docs/configuration.md` lists every key.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Address and port to listen on; a loopback address unless TLS or a trusted proxy is set.
    pub listen: String,
    /// The credentials file (`dispatcher console user add` writes it): users, roles, argon2 hashes.
    pub users_file: Option<PathBuf>,
    /// A header that names the user, set by a reverse proxy that authenticated them.
    pub trusted_user_header: Option<String>,
    /// The addresses of the reverse proxies whose `trusted_user_header` is believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// TLS certificate chain (PEM); with `tls_key_file`, the console speaks HTTPS.
    pub tls_cert_file: Option<PathBuf>,
    /// The certificate's private key (PEM).
    pub tls_key_file: Option<PathBuf>,
    /// A session ends after this long without a request.
    pub session_idle_secs: u64,
    /// A session ends this long after its login, whatever its use.
    pub session_max_secs: u64,
    /// Failed logins of one user or address before it must wait.
    pub login_failures_allowed: u32,
    /// The database role pages read as (`SET ROLE`): SELECT only.
    pub read_role: String,
    /// Rows one bulk action may act on at the most.
    pub bulk_cap: usize,
    /// Seconds between automatic refreshes of the overview and the lists.
    pub refresh_secs: u64,
    /// No actions at all, for anyone (`dispatcher console --read-only` too).
    pub read_only: bool,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8480".into(),
            users_file: None,
            trusted_user_header: None,
            trusted_proxies: Vec::new(),
            tls_cert_file: None,
            tls_key_file: None,
            session_idle_secs: 1800,
            session_max_secs: 12 * 3600,
            login_failures_allowed: 5,
            read_role: "visitas_lectura".into(),
            bulk_cap: 100,
            refresh_secs: 5,
            read_only: false,
        }
    }
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
    /// A file is complete once our clock saw it unchanged (size, and mtime where the
    /// origin shows one) for at least this long; never compared with the server's clock.
    #[serde(default = "FileRules::min_file_age_secs")]
    pub min_file_age_secs: u64,
    /// Time between consecutive listings; at least two agree before a file is taken.
    #[serde(default = "FileRules::stability_window_secs")]
    pub stability_window_secs: u64,
    /// Consecutive agreeing listings a file needs when the origin shows no mtime.
    #[serde(default = "FileRules::listings_without_mtime")]
    pub listings_without_mtime: u32,
    /// The marker a sender writes once a file is complete (`"{name}.done"`,
    /// `"{stem}.ok"`): a file is taken only once its marker exists, and the marker is
    /// removed with it.
    #[serde(default)]
    pub done_marker: Option<DoneMarker>,
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
    fn listings_without_mtime() -> u32 {
        4
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
    /// This host's identity (worker ids, and the local items only its performers take);
    /// none: the kernel's host name.
    pub host_name: Option<String>,
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
            batch_rows: crate::local::staged::BATCH_ROWS,
            shutdown_grace_secs: 60,
            host_name: None,
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
