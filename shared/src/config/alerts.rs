//! `[alerts]` and `[alerts.email]`: where alerts go (a webhook, e-mail), how often an
//! open alert is repeated, and how a notice is retried. Checked at start-up: an e-mail
//! address that does not parse, or `tls = "none"` towards another host, stops the program.

use crate::local::secret_file::read_secret_file;
use crate::types::{InvalidSetting, Secret};
use serde::Deserialize;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Alerts: their channels, their repetition, their retries.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Webhook URL (may hold a token: a secret). None: no webhook notices.
    pub webhook_url: Option<Secret>,
    /// Timeout of one POST, or of one SMTP conversation.
    pub timeout_secs: u64,
    /// Tries of one notice, by whichever processes run, before it is given up.
    pub tries: u32,
    /// Wait after a notice's first failed try; doubled after each (at most an hour).
    pub retry_delay_secs: u64,
    /// An open alert is notified again this long after its last notice.
    pub repeat_every: Every,
    /// E-mail notices; none: no e-mail.
    pub email: Option<EmailConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            webhook_url: None,
            timeout_secs: 5,
            tries: 12,
            retry_delay_secs: 2,
            repeat_every: Every(Duration::from_secs(4 * 3600)),
            email: None,
        }
    }
}

impl AlertsConfig {
    /// The rules across keys.
    pub(crate) fn check(&self) -> Result<(), InvalidSetting> {
        if self.tries == 0 {
            return Err(InvalidSetting::new("alerts.tries", "must be at least 1"));
        }
        if self.repeat_every.0.is_zero() {
            return Err(InvalidSetting::new(
                "alerts.repeat_every",
                "must be longer than 0 s",
            ));
        }
        match &self.email {
            Some(email) => email.check(),
            None => Ok(()),
        }
    }

    /// The wait after try `tries` failed (1 for the first): doubled each time, at most an hour.
    pub fn retry_delay(&self, tries: u32) -> Duration {
        let first = Duration::from_secs(self.retry_delay_secs.max(1));
        first
            .saturating_mul(1u32 << tries.saturating_sub(1).min(20))
            .min(Duration::from_secs(3600))
    }

    /// The timeout of one try.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.max(1))
    }
}

/// A duration written `90s`, `30m`, `4h` or `1d` (or a number of seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "DurationText")]
pub struct Every(pub Duration);

/// How a duration may be written in the file or the environment.
#[derive(Deserialize)]
#[serde(untagged)]
enum DurationText {
    Seconds(u64),
    Text(String),
}

impl TryFrom<DurationText> for Every {
    type Error = String;

    fn try_from(text: DurationText) -> Result<Self, String> {
        let text = match text {
            DurationText::Seconds(s) => return Ok(Every(Duration::from_secs(s))),
            DurationText::Text(t) => t,
        };
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (n, unit) = t.split_at(split);
        let n: u64 = n
            .parse()
            .map_err(|_| format!("`{text}` is not a duration (e.g. 90s, 30m, 4h, 1d)"))?;
        let secs = match unit.trim() {
            "" | "s" => 1,
            "m" | "min" => 60,
            "h" => 3600,
            "d" => 86400,
            _ => return Err(format!("`{text}`: the unit is one of s, m, h, d")),
        };
        Ok(Every(Duration::from_secs(n * secs)))
    }
}

impl std::fmt::Display for Every {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0.as_secs();
        match s {
            _ if s > 0 && s.is_multiple_of(86400) => write!(f, "{}d", s / 86400),
            _ if s > 0 && s.is_multiple_of(3600) => write!(f, "{}h", s / 3600),
            _ if s > 0 && s.is_multiple_of(60) => write!(f, "{}m", s / 60),
            _ => write!(f, "{s}s"),
        }
    }
}

/// How the SMTP conversation is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// TLS from the first byte (SMTPS, usually port 465).
    Implicit,
    /// STARTTLS, required: a server that does not offer it is refused (usually 587).
    Starttls,
    /// No TLS: refused for any host but the loopback.
    None,
}

/// An e-mail address (`ops@example.com` or `Ops <ops@example.com>`), parsed once.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Address(pub lettre::message::Mailbox);

impl TryFrom<String> for Address {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
            .map(Address)
            .map_err(|e| format!("`{text}` is not an e-mail address: {e}"))
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// `[alerts.email]`: the SMTP server and the message's addresses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The SMTP server's name (checked against its certificate) or address.
    pub host: String,
    /// Its port (default: 465 for implicit TLS, 587 for STARTTLS, 25 without TLS).
    pub port: Option<u16>,
    /// `implicit`, `starttls` or `none`.
    pub tls: SmtpTls,
    /// A private CA the server's certificate must chain to (instead of the public roots).
    pub ca_file: Option<PathBuf>,
    /// SMTP AUTH user; none: no AUTH.
    pub user: Option<String>,
    /// A file holding the SMTP password.
    pub password_file: Option<PathBuf>,
    /// The SMTP password, from the environment only (`VISITAS_ALERTS__EMAIL__PASSWORD`).
    pub password: Option<Secret>,
    /// The sender.
    pub from: Address,
    /// The recipients (per feed, `expect.<feed>.email_to` replaces them).
    pub to: Vec<Address>,
}

impl EmailConfig {
    fn check(&self) -> Result<(), InvalidSetting> {
        if self.tls == SmtpTls::None && !is_loopback(&self.host) {
            return Err(InvalidSetting::new(
                "alerts.email.tls",
                format!(
                    "`none` sends the password and the alerts in clear: refused for {}, which is not \
                     the loopback (use `starttls` or `implicit`)",
                    self.host
                ),
            ));
        }
        if self.to.is_empty() {
            return Err(InvalidSetting::new(
                "alerts.email.to",
                "name at least one recipient",
            ));
        }
        if self.user.is_some() {
            self.password()?;
        } else if self.password_file.is_some() || self.password.is_some() {
            return Err(InvalidSetting::new(
                "alerts.email.user",
                "a password is set: set the user too",
            ));
        }
        if let Some(ca) = &self.ca_file {
            std::fs::read(ca).map_err(|e| {
                InvalidSetting::new(
                    "alerts.email.ca_file",
                    format!("cannot read {}: {e}", ca.display()),
                )
            })?;
        }
        Ok(())
    }

    /// The port, or the usual one for the TLS mode.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            SmtpTls::Implicit => 465,
            SmtpTls::Starttls => 587,
            SmtpTls::None => 25,
        })
    }

    /// The SMTP password (from `password` or `password_file`), if AUTH is configured.
    pub fn password(&self) -> Result<Option<Secret>, InvalidSetting> {
        match (&self.password, &self.password_file) {
            (Some(p), _) => Ok(Some(p.clone())),
            (None, Some(path)) => read_secret_file(path, "alerts.email.password_file").map(Some),
            (None, None) if self.user.is_some() => Err(InvalidSetting::new(
                "alerts.email.password_file",
                "a user is set: set its password file too",
            )),
            (None, None) => Ok(None),
        }
    }
}

/// `localhost`, or an address of the loopback.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every(text: &str) -> Result<Every, String> {
        Every::try_from(DurationText::Text(text.into()))
    }

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(every("90s").unwrap().0, Duration::from_secs(90));
        assert_eq!(every("30m").unwrap().0, Duration::from_secs(1800));
        assert_eq!(every("4h").unwrap().0, Duration::from_secs(4 * 3600));
        assert_eq!(every("1d").unwrap().to_string(), "1d");
        assert_eq!(every("15").unwrap().0, Duration::from_secs(15));
        assert!(every("4 hours").is_err() && every("h").is_err());
    }

    #[test]
    fn retry_delays_double_up_to_an_hour() {
        let c = AlertsConfig::default();
        let delays: Vec<u64> = (1..=4).map(|t| c.retry_delay(t).as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 16]);
        assert_eq!(c.retry_delay(30), Duration::from_secs(3600));
    }

    #[test]
    fn the_loopback_is_what_it_says() {
        for host in ["localhost", "127.0.0.1", "127.0.0.2", "::1", "[::1]"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["smtp.example.com", "10.0.0.1", "localhost.example.com"] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
