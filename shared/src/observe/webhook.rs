//! One webhook POST of a notice's JSON (rustls on aws-lc-rs). The error never includes
//! the URL, which may hold a token.

use std::time::Duration;

/// POSTs `body` to `url`; `Err` says why for the logs (without the URL).
pub async fn post(url: &str, body: &str, timeout: Duration) -> Result<(), String> {
    let (url, body) = (url.to_string(), body.as_bytes().to_vec());
    tokio::task::spawn_blocking(move || post_json(&url, &body, timeout))
        .await
        .map_err(|e| e.to_string())?
}

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
