//! Alerts: a JSON POST to the configured webhook on `FALLO_LAYOUT`, `FALLO_SISTEMA`,
//! a night that did not drain, and a night that found the dispatcher's lock stuck.
//! Best effort: retried, then logged, never fatal.

use crate::config::AlertsConfig;
use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::Duration;
use tracing::{error, info, warn};

/// What an alert says.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    /// `FALLO_LAYOUT`, `FALLO_SISTEMA`, `ARCHIVO_MODIFICADO`, `RESPALDO_FALTANTE`,
    /// `NOCHE_SIN_DRENAR`, `NOCHE_BLOQUEADA`, `ORIGEN_SIN_PERFORMER` or `ARCHIVO_ZIP_FALLIDO`.
    pub event: String,
    /// The file, if the alert is about one.
    pub file: Option<String>,
    /// Its `bitacora_control.id`.
    pub bitacora_id: Option<i64>,
    /// Its `work_items.id`.
    pub work_item_id: Option<i64>,
    /// What happened, for people.
    pub message: String,
    /// Which host saw it.
    pub host: String,
    /// When.
    pub at: DateTime<Utc>,
}

impl Alert {
    /// An alert about the whole service (no file).
    pub fn new(event: &str, message: impl Into<String>) -> Self {
        Self {
            event: event.into(),
            file: None,
            bitacora_id: None,
            work_item_id: None,
            message: crate::types::storable::message(&message.into()).into_owned(),
            host: crate::local::host::name(),
            at: Utc::now(),
        }
    }

    /// The same alert about one file.
    pub fn about(mut self, file: &str, bitacora_id: i64, work_item_id: i64) -> Self {
        self.file = Some(file.into());
        self.bitacora_id = Some(bitacora_id);
        self.work_item_id = Some(work_item_id);
        self
    }
}

/// Posts the alert (if a webhook is configured), with retries; failures are logged.
pub async fn send(config: &AlertsConfig, alert: &Alert) {
    let Some(url) = config.webhook_url.clone() else {
        return;
    };
    let body = serde_json::to_vec(alert).expect("an alert serialises");
    let timeout = Duration::from_secs(config.timeout_secs);
    let post = || {
        let (url, body) = (url.clone(), body.clone());
        async move {
            tokio::task::spawn_blocking(move || post_json(url.expose(), &body, timeout))
                .await
                .map_err(|e| e.to_string())?
        }
    };
    let sent = post
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(500))
                .with_max_times(config.tries.saturating_sub(1))
                .with_jitter(),
        )
        .notify(|e, wait| warn!(event = %alert.event, error = %e, retry_in_ms = wait.as_millis() as u64, "alert not delivered; retrying"))
        .await;
    match sent {
        Ok(()) => info!(event = %alert.event, "alert sent"),
        Err(e) => error!(event = %alert.event, error = %e, "alert could not be delivered"),
    }
}

/// One POST; the error never includes the URL (it may hold a token).
fn post_json(url: &str, body: &[u8], timeout: Duration) -> Result<(), String> {
    // rustls on aws-lc-rs, the one crypto provider of the build.
    let tls = ureq::tls::TlsConfig::builder()
        .unversioned_rustls_crypto_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_global(Some(timeout))
        .http_status_as_error(true)
        .build()
        .into();
    agent
        .post(url)
        .header("content-type", "application/json")
        .send(body)
        .map(|_| ())
        .map_err(|e| match e {
            ureq::Error::StatusCode(code) => format!("webhook answered HTTP {code}"),
            ureq::Error::Timeout(_) => "webhook timed out".into(),
            other => format!(
                "webhook unreachable ({})",
                other.to_string().replace(url, "<webhook>")
            ),
        })
}
