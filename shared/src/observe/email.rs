//! One e-mail of a notice, through the SMTP server of `[alerts.email]` (lettre, rustls on
//! aws-lc-rs): implicit TLS or required STARTTLS, the server's certificate checked against
//! `ca_file` (or the public roots) and its name; AUTH when a user is set. Plain text.

use crate::config::{EmailConfig, SmtpTls};
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// Why a message was not sent, and whether trying again may help.
#[derive(Debug)]
pub struct NotSent {
    /// For the logs.
    pub reason: String,
    /// The server refused it for good (5xx): no retry.
    pub permanent: bool,
}

impl NotSent {
    fn permanent(reason: String) -> Self {
        Self {
            reason,
            permanent: true,
        }
    }
}

/// Sends one plain-text message to `to`.
pub async fn send(
    config: &EmailConfig,
    timeout: Duration,
    to: &[String],
    subject: &str,
    body: &str,
) -> Result<(), NotSent> {
    let mut message = Message::builder()
        .from(config.from.0.clone())
        .subject(subject)
        .header(ContentType::TEXT_PLAIN);
    for r in to {
        let mailbox = r
            .parse()
            .map_err(|e| NotSent::permanent(format!("recipient `{r}`: {e}")))?;
        message = message.to(mailbox);
    }
    let message = message
        .body(body.to_string())
        .map_err(|e| NotSent::permanent(format!("building the message: {e}")))?;
    let transport = transport(config, timeout).map_err(NotSent::permanent)?;
    // The whole conversation is bounded, whatever the server does.
    match tokio::time::timeout(timeout * 3, transport.send(message)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(NotSent {
            permanent: e.is_permanent(),
            reason: format!("SMTP {}:{}: {}", config.host, config.port(), describe(&e)),
        }),
        Err(_) => Err(NotSent {
            permanent: false,
            reason: format!("SMTP {}:{}: timed out", config.host, config.port()),
        }),
    }
}

/// The error and its causes on one line.
fn describe(e: &lettre::transport::smtp::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn transport(
    config: &EmailConfig,
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
        .port(config.port())
        .timeout(Some(timeout))
        .hello_name(ClientId::Domain(crate::local::host::name()));
    if config.tls != SmtpTls::None {
        let mut tls = TlsParameters::builder(config.host.clone());
        tls = match &config.ca_file {
            // A private CA: the server's certificate must chain to it, and only to it.
            Some(ca) => {
                let pem = std::fs::read(ca)
                    .map_err(|e| format!("alerts.email.ca_file {}: {e}", ca.display()))?;
                tls.certificate_store(CertificateStore::None)
                    .add_root_certificate(
                        Certificate::from_pem(&pem)
                            .map_err(|e| format!("alerts.email.ca_file {}: {e}", ca.display()))?,
                    )
            }
            None => tls.certificate_store(CertificateStore::WebpkiRoots),
        };
        let tls = tls.build_rustls().map_err(|e| format!("TLS: {e}"))?;
        builder = builder.tls(match config.tls {
            SmtpTls::Implicit => Tls::Wrapper(tls),
            _ => Tls::Required(tls),
        });
    }
    if let Some(user) = &config.user {
        let password = config
            .password()
            .map_err(|e| e.to_string())?
            .map(|p| p.expose().to_string())
            .unwrap_or_default();
        builder = builder.credentials(Credentials::new(user.clone(), password));
    }
    Ok(builder.build())
}
