//! How connections to PostgreSQL are secured, decided in one place for both clients
//! (sqlx and tokio-postgres): libpq's `sslmode`, `sslrootcert`, `sslcert` and `sslkey`,
//! from the database URL's query or the `[database]` keys, with libpq's rules:
//! - `disable`: no TLS; `prefer`: TLS when the server offers it, certificate not checked;
//! - `require`: TLS or no connection; with a CA file (`sslrootcert`, or libpq's default
//!   `~/.postgresql/root.crt` when it exists) the chain is checked as under `verify-ca`;
//! - `verify-ca`: the certificate must chain to the CA file; `verify-full`: and match the host;
//! - TLS is never used over a Unix socket.
//!
//! The TLS handshake, and so the certificate check, happens before the startup message:
//! a refused server never sees the user name, let alone a password. All TLS is rustls on
//! aws-lc-rs (the provider russh uses too).

mod refused;
mod verifiers;

pub use refused::{TlsRefusal, refusal};

use super::settings::{DatabaseConfig, SslMode, Timeouts};
use crate::types::{InvalidSetting, Secret};
use rustls::ClientConfig;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use url::Url;
use verifiers::{Relaxed, read_certs, webpki};

/// What a connection does about TLS once libpq's rules are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsCheck {
    /// No TLS: `disable`, or a Unix socket.
    Off,
    /// TLS if offered, certificate not checked: `prefer`.
    IfOffered,
    /// TLS required, certificate not checked: `require` without a CA file.
    Unverified,
    /// TLS required, chain checked against the CA file, any host name.
    Chain(PathBuf),
    /// TLS required, chain and host name checked.
    ChainAndHost(PathBuf),
}

/// A client certificate and its key (libpq's `sslcert`, `sslkey`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// The database to connect to and how: the URL without its TLS parameters, the
/// server (for messages: never the URL, which may hold a password) and the TLS check.
#[derive(Debug, Clone)]
pub struct DbTarget {
    url: Secret,
    /// `host:port`, or the socket directory.
    pub server: String,
    /// The TLS check every connection makes.
    pub check: TlsCheck,
    /// The client certificate presented, if any.
    pub client_cert: Option<ClientCert>,
    /// What was asked for.
    pub mode: SslMode,
    /// How long a silent server may hold a connection.
    pub timeouts: Timeouts,
    loopback: bool,
}

/// The TLS parameters libpq reads from a connection URL.
const URL_TLS_KEYS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

impl DbTarget {
    /// Reads the TLS parameters from `url` and `[database]` and applies libpq's rules;
    /// checks that the certificate and key files can be read.
    pub fn new(url: &Secret, db: &DatabaseConfig) -> Result<Self, InvalidSetting> {
        let mut parsed = Url::parse(url.expose())
            .map_err(|_| invalid("database.url", "not a valid postgres:// URL".into()))?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(invalid(
                "database.url",
                "must start with postgres:// or postgresql://".into(),
            ));
        }
        let from_url = take_tls_parameters(&mut parsed);
        let (host, port) = host_and_port(&parsed);

        let mode = match one_place(&from_url, "sslmode", db.sslmode.map(|m| m.to_string()))? {
            None => SslMode::Prefer,
            Some(text) => SslMode::parse(&text).ok_or_else(|| {
                invalid(
                    "database.sslmode",
                    format!(
                        "`{text}` is not one of disable, prefer, require, verify-ca, verify-full"
                    ),
                )
            })?,
        };
        let path_of = |key: &'static str, configured: &Option<PathBuf>| {
            one_place(
                &from_url,
                key,
                configured.as_ref().map(|p| p.display().to_string()),
            )
            .map(|v| v.map(PathBuf::from))
        };
        let root = path_of("sslrootcert", &db.sslrootcert)?;
        let cert = path_of("sslcert", &db.sslcert)?;
        let key = path_of("sslkey", &db.sslkey)?;
        if root.as_deref() == Some(Path::new("system")) {
            return Err(invalid(
                "database.sslrootcert",
                "`system` is not supported: name the CA file that signed the server's certificate"
                    .into(),
            ));
        }
        let root = root.or_else(|| libpq_default_file("root.crt"));
        let client_cert = client_cert(cert, key)?;

        let socket = host.starts_with('/');
        let check = match (mode, root) {
            _ if socket => TlsCheck::Off,
            (SslMode::Disable, _) => TlsCheck::Off,
            (SslMode::Prefer, _) => TlsCheck::IfOffered,
            (SslMode::Require, None) => TlsCheck::Unverified,
            (SslMode::Require | SslMode::VerifyCa, Some(root)) => TlsCheck::Chain(root),
            (SslMode::VerifyFull, Some(root)) => TlsCheck::ChainAndHost(root),
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
                return Err(invalid(
                    "database.sslrootcert",
                    format!(
                        "sslmode={mode} checks the server's certificate: name the CA file \
                         (sslrootcert in the URL or database.sslrootcert)"
                    ),
                ));
            }
        };
        let target = Self {
            url: Secret::new(String::from(parsed)),
            server: if socket {
                host.clone()
            } else {
                format!("{host}:{port}")
            },
            loopback: socket || is_loopback(&host),
            check,
            client_cert,
            mode,
            timeouts: db.timeouts(),
        };
        // Fail at start-up, naming the key, rather than at the first connection.
        target.client_config()?;
        Ok(target)
    }

    /// The URL without its TLS parameters (which the clients get from [`DbTarget::check`]).
    pub fn url(&self) -> &Secret {
        &self.url
    }

    /// A warning when the server is on another host and its identity is not fully checked.
    pub fn weakness(&self) -> Option<String> {
        if self.loopback || matches!(self.check, TlsCheck::ChainAndHost(_)) {
            return None;
        }
        Some(format!(
            "database {} is not on this host and sslmode={} does not check its identity: \
             use sslmode=verify-full with sslrootcert",
            self.server, self.mode
        ))
    }

    /// The rustls configuration for tokio-postgres: only the CA file is trusted.
    pub fn client_config(&self) -> Result<ClientConfig, InvalidSetting> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("database.sslmode", e.to_string()))?;
        let builder = match &self.check {
            TlsCheck::ChainAndHost(root) => builder.with_webpki_verifier(webpki(root, provider)?),
            relaxed => {
                let chain = match relaxed {
                    TlsCheck::Chain(root) => Some(webpki(root, provider.clone())?),
                    _ => None,
                };
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(Relaxed { chain, provider }))
            }
        };
        match &self.client_cert {
            None => Ok(builder.with_no_client_auth()),
            Some(c) => {
                let chain = read_certs(&c.cert, "database.sslcert")?;
                let key = PrivateKeyDer::from_pem_file(&c.key).map_err(|e| {
                    invalid(
                        "database.sslkey",
                        format!("cannot read a key from {}: {e}", c.key.display()),
                    )
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| invalid("database.sslkey", e.to_string()))
            }
        }
    }

    /// sqlx's options: the same mode and files (sqlx reads them itself).
    pub fn sqlx_options(&self) -> Result<sqlx::postgres::PgConnectOptions, InvalidSetting> {
        use sqlx::postgres::{PgConnectOptions, PgSslMode};
        use std::str::FromStr;
        let options = PgConnectOptions::from_str(self.url.expose())
            .map_err(|_| invalid("database.url", "not a valid PostgreSQL URL".into()))?;
        let options = match &self.check {
            TlsCheck::Off => options.ssl_mode(PgSslMode::Disable),
            TlsCheck::IfOffered => options.ssl_mode(PgSslMode::Prefer),
            TlsCheck::Unverified => options.ssl_mode(PgSslMode::Require),
            TlsCheck::Chain(root) => options.ssl_mode(PgSslMode::VerifyCa).ssl_root_cert(root),
            TlsCheck::ChainAndHost(root) => {
                options.ssl_mode(PgSslMode::VerifyFull).ssl_root_cert(root)
            }
        };
        Ok(match &self.client_cert {
            Some(c) => options.ssl_client_cert(&c.cert).ssl_client_key(&c.key),
            None => options,
        })
    }

    /// tokio-postgres's configuration (with the time limits and, unless the URL says
    /// otherwise, `target_session_attrs=read-write`: a standby is never connected to)
    /// and TLS connector.
    pub fn tokio_postgres(
        &self,
    ) -> Result<
        (
            tokio_postgres::Config,
            tokio_postgres_rustls::MakeRustlsConnect,
        ),
        InvalidSetting,
    > {
        use std::str::FromStr;
        use tokio_postgres::config::SslMode as PgSslMode;
        let mut pg = tokio_postgres::Config::from_str(self.url.expose())
            .map_err(|_| invalid("database.url", "not a valid PostgreSQL URL".into()))?;
        pg.ssl_mode(match self.check {
            TlsCheck::Off => PgSslMode::Disable,
            TlsCheck::IfOffered => PgSslMode::Prefer,
            _ => PgSslMode::Require,
        });
        let t = &self.timeouts;
        pg.connect_timeout(t.connect)
            .keepalives(true)
            .keepalives_idle(t.keepalive_idle)
            .keepalives_interval(t.keepalive_interval)
            .keepalives_retries(Timeouts::KEEPALIVE_PROBES)
            .tcp_user_timeout(t.tcp_user);
        if pg.get_target_session_attrs() == tokio_postgres::config::TargetSessionAttrs::Any {
            pg.target_session_attrs(tokio_postgres::config::TargetSessionAttrs::ReadWrite);
        }
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(self.client_config()?);
        Ok((pg, tls))
    }
}

/// Takes libpq's TLS parameters out of the URL's query; the others stay exactly as written.
fn take_tls_parameters(url: &mut Url) -> HashMap<String, String> {
    let mut tls = HashMap::new();
    let mut kept = Vec::new();
    for raw in url
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match url::form_urlencoded::parse(raw.as_bytes()).next() {
            Some((k, v)) if URL_TLS_KEYS.contains(&k.as_ref()) => {
                tls.insert(k.into_owned(), v.into_owned());
            }
            _ => kept.push(raw.to_string()),
        }
    }
    let query = kept.join("&");
    url.set_query(Some(query.as_str()).filter(|q| !q.is_empty()));
    tls
}

/// A file of libpq's defaults (`~/.postgresql/NAME`), when it exists.
fn libpq_default_file(name: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("HOME")?).join(".postgresql");
    Some(dir.join(name)).filter(|p| p.exists())
}

/// Certificate and key come together; libpq's default pair is used when both exist.
fn client_cert(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> Result<Option<ClientCert>, InvalidSetting> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(ClientCert { cert, key })),
        (None, None) => Ok(libpq_default_file("postgresql.crt")
            .zip(libpq_default_file("postgresql.key"))
            .map(|(cert, key)| ClientCert { cert, key })),
        (Some(_), None) => Err(invalid(
            "database.sslkey",
            "sslcert is set: set its key too".into(),
        )),
        (None, Some(_)) => Err(invalid(
            "database.sslcert",
            "sslkey is set: set its certificate too".into(),
        )),
    }
}

/// A parameter may be set in the URL or in `[database]`, not differently in both.
fn one_place(
    from_url: &HashMap<String, String>,
    key: &'static str,
    configured: Option<String>,
) -> Result<Option<String>, InvalidSetting> {
    match (from_url.get(key), configured) {
        (Some(u), Some(c)) if *u != c => Err(InvalidSetting {
            key: config_key(key),
            reason: format!("is `{c}` but the database URL says {key}={u}: set it in one place"),
        }),
        (Some(u), _) => Ok(Some(u.clone())),
        (None, c) => Ok(c),
    }
}

fn config_key(key: &str) -> &'static str {
    match key {
        "sslmode" => "database.sslmode",
        "sslrootcert" => "database.sslrootcert",
        "sslcert" => "database.sslcert",
        _ => "database.sslkey",
    }
}

/// The host as libpq sees it: a `host` query parameter wins over the URL's; none, or a
/// path, is a Unix socket directory.
fn host_and_port(url: &Url) -> (String, u16) {
    let param = |k: &str| {
        url.query_pairs()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.into_owned())
    };
    let host = param("host")
        .or_else(|| {
            url.host_str().map(|h| {
                h.trim_matches(['[', ']'])
                    .replace("%2F", "/")
                    .replace("%2f", "/")
            })
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/var/run/postgresql".into());
    let port = param("port")
        .and_then(|p| p.parse().ok())
        .or(url.port())
        .unwrap_or(5432);
    (host, port)
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn invalid(key: &'static str, reason: String) -> InvalidSetting {
    InvalidSetting::new(key, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed CA certificate (its key was thrown away).
    const CA: &str = "-----BEGIN CERTIFICATE-----
MIIBljCCATugAwIBAgIUSi+lRZ+pC4+DvZ7y2rqoOjWABDYwCgYIKoZIzj0EAwIw
HzEdMBsGA1UEAwwUdmlzaXRhcyB1bml0LXRlc3QgQ0EwIBcNMjYxMTI1MDkzNTA0
WhgPMjEyNjExMDEwOTM1MDRaMB8xHTAbBgNVBAMMFHZpc2l0YXMgdW5pdC10ZXN0
IENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEm71S/ZF+AyA4RKOE3+Rs4D+h
ruIrYGnJV78VMabhlho/bKf+mXJJQ+5bS+9dmJRVjz3w2wspcFWsHiu2+UHTIaNT
MFEwHQYDVR0OBBYEFFIq3wZdlxy5OOHoA2vEyX9r4P3rMB8GA1UdIwQYMBaAFFIq
3wZdlxy5OOHoA2vEyX9r4P3rMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwID
SQAwRgIhAOhYXOCGov1+tgoCoqL9SBg/G2qcX8i0e+msGt7MRr8cAiEA916jJs4a
yUzBJrIDgElLjqNz5d8N4Wj7jj2mLdqbn9Q=
-----END CERTIFICATE-----
";

    /// A CA file of its own for each caller: tests run in parallel threads.
    fn ca_file() -> PathBuf {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path =
            std::env::temp_dir().join(format!("visitas-db-tls-{}-{n}.crt", std::process::id()));
        std::fs::write(&path, CA).unwrap();
        path
    }

    fn config() -> DatabaseConfig {
        DatabaseConfig {
            pool_size: 1,
            ..DatabaseConfig::default()
        }
    }

    fn target(url: &str, db: &DatabaseConfig) -> Result<DbTarget, InvalidSetting> {
        DbTarget::new(&Secret::new(url), db)
    }

    #[test]
    fn tls_parameters_leave_the_url_and_the_others_stay_as_written() {
        let t = target(
            "postgres://u:pw@db.example:5433/v?application_name=a%20b&sslmode=require&connect_timeout=5",
            &config(),
        )
        .unwrap();
        assert_eq!(
            t.url().expose(),
            "postgres://u:pw@db.example:5433/v?application_name=a%20b&connect_timeout=5"
        );
        assert_eq!(t.check, TlsCheck::Unverified);
        assert_eq!(t.server, "db.example:5433");
        let plain = target("postgres://u@h/v?sslmode=disable", &config()).unwrap();
        assert_eq!(plain.url().expose(), "postgres://u@h/v");
        assert_eq!(plain.check, TlsCheck::Off);
    }

    #[test]
    fn libpq_rules_decide_the_check() {
        let ca = ca_file();
        let with = |mode: &str| {
            target(
                &format!("postgres://h/v?sslmode={mode}&sslrootcert={}", ca.display()),
                &config(),
            )
            .unwrap()
            .check
        };
        assert_eq!(with("disable"), TlsCheck::Off);
        assert_eq!(with("prefer"), TlsCheck::IfOffered);
        // require with a CA file checks the chain, as verify-ca does.
        assert_eq!(with("require"), TlsCheck::Chain(ca.clone()));
        assert_eq!(with("verify-ca"), TlsCheck::Chain(ca.clone()));
        assert_eq!(with("verify-full"), TlsCheck::ChainAndHost(ca.clone()));
        // libpq's default is prefer; a Unix socket never uses TLS.
        assert_eq!(
            target("postgres://h/v", &config()).unwrap().check,
            TlsCheck::IfOffered
        );
        let socket = format!(
            "postgres:///v?host=/var/run/postgresql&sslmode=verify-full&sslrootcert={}",
            ca.display()
        );
        assert_eq!(target(&socket, &config()).unwrap().check, TlsCheck::Off);
    }

    #[test]
    fn configuration_keys_work_and_may_not_contradict_the_url() {
        let ca = ca_file();
        let mut db = config();
        db.sslmode = Some(SslMode::VerifyFull);
        db.sslrootcert = Some(ca.clone());
        assert_eq!(
            target("postgres://h/v", &db).unwrap().check,
            TlsCheck::ChainAndHost(ca.clone())
        );
        assert!(target("postgres://h/v?sslmode=verify-full", &db).is_ok());
        let err = target("postgres://h/v?sslmode=require", &db)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("database.sslmode") && err.contains("one place"),
            "{err}"
        );
    }

    #[test]
    fn bad_settings_name_the_key_and_never_the_password() {
        for (url, key) in [
            (
                "postgres://u:hunter2@h/v?sslmode=verify-full",
                "database.sslrootcert",
            ),
            ("postgres://u:hunter2@h/v?sslmode=allow", "database.sslmode"),
            (
                "postgres://u:hunter2@h/v?sslmode=verify-ca&sslrootcert=/nonexistent.crt",
                "database.sslrootcert",
            ),
            ("postgres://u:hunter2@h/v?sslcert=/c.crt", "database.sslkey"),
            ("mysql://u:hunter2@h/v", "database.url"),
        ] {
            let err = target(url, &config()).unwrap_err().to_string();
            assert!(err.contains(key), "{url}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn a_server_off_this_host_without_verify_full_gets_a_warning() {
        let ca = ca_file();
        let weak = target(
            "postgres://u:hunter2@db.example/v?sslmode=require",
            &config(),
        )
        .unwrap();
        let warning = weak.weakness().unwrap();
        assert!(
            warning.contains("db.example:5432") && warning.contains("verify-full"),
            "{warning}"
        );
        assert!(!warning.contains("hunter2"));
        let full = format!(
            "postgres://db.example/v?sslmode=verify-full&sslrootcert={}",
            ca.display()
        );
        assert_eq!(target(&full, &config()).unwrap().weakness(), None);
        for local in [
            "postgres://127.0.0.1/v",
            "postgres://localhost/v",
            "postgres://[::1]/v",
        ] {
            assert_eq!(
                target(local, &config()).unwrap().weakness(),
                None,
                "{local}"
            );
        }
    }
}
