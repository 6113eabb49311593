//! Why a TLS connection to PostgreSQL was refused, read from either client's error.

use rustls::CertificateError;
use std::fmt;

/// Why a server was refused; each names what an operator must look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsRefusal {
    /// TLS is required and the server does not offer it.
    ServerWithoutTls,
    /// The certificate does not chain to a CA in `sslrootcert`.
    UnknownCa,
    /// The certificate does not name the host connected to.
    HostNameMismatch,
    /// The certificate has expired or is not valid yet.
    NotValidNow,
    /// Anything else rustls or the server said.
    Other(String),
}

impl fmt::Display for TlsRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ServerWithoutTls => f.write_str("the server does not support TLS, and sslmode requires it"),
            Self::UnknownCa => f.write_str(
                "unknown CA: the server's certificate is not signed by a CA in sslrootcert",
            ),
            Self::HostNameMismatch => f.write_str(
                "host name mismatch: the server's certificate does not name this host (sslmode=verify-full)",
            ),
            Self::NotValidNow => {
                f.write_str("the server's certificate has expired or is not valid yet")
            }
            Self::Other(reason) => write!(f, "TLS failed: {reason}"),
        }
    }
}

/// The TLS refusal behind an error from either client, if that is what it is.
pub fn refusal(error: &(dyn std::error::Error + 'static)) -> Option<TlsRefusal> {
    let mut next = Some(error);
    while let Some(e) = next {
        // `io::Error::source` skips the error it wraps: look inside it.
        let inner = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        for candidate in [Some(e), inner].into_iter().flatten() {
            if let Some(tls) = candidate.downcast_ref::<rustls::Error>() {
                return Some(classify(tls));
            }
            // The same words in sqlx and tokio-postgres.
            if candidate.to_string() == "server does not support TLS" {
                return Some(TlsRefusal::ServerWithoutTls);
            }
        }
        next = e.source();
    }
    None
}

fn classify(error: &rustls::Error) -> TlsRefusal {
    match error {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => TlsRefusal::UnknownCa,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsRefusal::HostNameMismatch
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => TlsRefusal::NotValidNow,
            other => TlsRefusal::Other(format!("invalid server certificate: {other:?}")),
        },
        other => TlsRefusal::Other(other.to_string()),
    }
}
