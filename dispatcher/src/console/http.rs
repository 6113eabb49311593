//! Listening: the address rule (loopback unless TLS or a trusted proxy), HTTP/1 plain or
//! over TLS (rustls on aws-lc-rs, the certificate and key from PEM files), until SIGTERM
//! or SIGINT.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use shared::config::ConsoleConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// How long a client may take to send a request's headers, or to finish a TLS handshake.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The address to listen on: a loopback one, or any when the console speaks TLS or sits
/// behind a declared proxy.
pub fn check_listen(listen: &str, tls: bool, proxied: bool) -> anyhow::Result<SocketAddr> {
    let addr: SocketAddr = listen
        .parse()
        .map_err(|_| anyhow::anyhow!("console.listen `{listen}` is not an address:port"))?;
    if !addr.ip().is_loopback() && !tls && !proxied {
        anyhow::bail!(
            "console.listen {addr} is not a loopback address: passwords and sessions would cross \
             the network in clear. Set console.tls_cert_file and console.tls_key_file, or declare \
             the reverse proxy in front of it (console.trusted_proxies)"
        );
    }
    Ok(addr)
}

/// The TLS configuration, when `console.tls_cert_file` and `tls_key_file` are set.
pub fn tls_config(settings: &ConsoleConfig) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    let (cert, key) = match (&settings.tls_cert_file, &settings.tls_key_file) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        _ => anyhow::bail!("console.tls_cert_file and console.tls_key_file go together"),
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("console.tls_cert_file {}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("console.tls_key_file {}: {e}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| anyhow::anyhow!("console TLS certificate and key: {e}"))?;
    Ok(Some(Arc::new(config)))
}

/// Serves `app` on `addr` until SIGTERM or SIGINT; says where it listens on stdout.
pub async fn serve(
    addr: SocketAddr,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    read_only: bool,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("console.listen {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!(
        "console: listening on {scheme}://{bound}{}",
        if read_only { " (read-only)" } else { "" }
    );
    tracing::info!(address = %bound, scheme, read_only, "console listening");
    let Some(tls) = tls else {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stopped())
        .await?;
        return Ok(());
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let stop = stopped();
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "console: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => return Ok(()),
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    return tracing::debug!(%peer, error = %e, "console: TLS handshake failed");
                }
                Err(_) => return tracing::debug!(%peer, "console: TLS handshake timed out"),
            };
            let service = app.map_request(move |mut request: axum::extract::Request<_>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "console: connection ended");
            }
        });
    }
}

/// Resolves at SIGTERM or SIGINT.
async fn stopped() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::check_listen;

    #[test]
    fn a_non_loopback_address_needs_tls_or_a_proxy() {
        assert!(check_listen("127.0.0.1:0", false, false).is_ok());
        assert!(check_listen("[::1]:8480", false, false).is_ok());
        let err = check_listen("0.0.0.0:8480", false, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("console.tls_cert_file"), "{err}");
        assert!(check_listen("0.0.0.0:8480", true, false).is_ok());
        assert!(check_listen("0.0.0.0:8480", false, true).is_ok());
        assert!(check_listen("localhost:80", false, false).is_err());
    }
}
