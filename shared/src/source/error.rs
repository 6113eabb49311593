//! What can go wrong at the origin, sorted by whether retrying can help.

use super::remote_name::RemoteNameError;

/// Errors of the origin; [`SourceError::is_transient`] decides whether retrying can help.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The server's host key is unknown or changed: a refusal, never retried in place.
    #[error("SFTP host key of {host}:{port} refused: {reason}")]
    HostKey {
        /// Server host.
        host: String,
        /// Server port.
        port: u16,
        /// Unknown host, or changed key.
        reason: String,
    },
    /// Authentication failed.
    #[error("SFTP authentication as `{user}` refused")]
    Auth {
        /// Login name.
        user: String,
    },
    /// The file is not (any more) at the origin.
    #[error("{path}: not found at the origin")]
    NotFound {
        /// Remote path.
        path: String,
    },
    /// The origin refused the operation (no rights, or it does not support it): not
    /// retried in place. A refused rename makes the file read in place; a refused
    /// delete leaves it at the origin, shown to operators.
    #[error("{path}: {doing} refused by the origin ({why})")]
    Denied {
        /// Remote path.
        path: String,
        /// What was refused.
        doing: String,
        /// How the origin answered.
        why: String,
    },
    /// A rename's target name is taken (renames never replace a file).
    #[error("{path}: already exists at the origin")]
    Exists {
        /// Remote path.
        path: String,
    },
    /// A refused remote name.
    #[error(transparent)]
    Name(#[from] RemoteNameError),
    /// Reading the local key or known_hosts failed.
    #[error("{what}: {reason}")]
    Setup {
        /// What was being read.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// Network, protocol or disk trouble that may pass.
    #[error("{context}: {reason}")]
    Io {
        /// The step that failed.
        context: String,
        /// The cause.
        reason: String,
    },
}

impl SourceError {
    /// Whether retrying the same step later can succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, SourceError::Io { .. })
    }

    pub(crate) fn io(context: impl Into<String>, reason: impl ToString) -> Self {
        SourceError::Io {
            context: context.into(),
            reason: reason.to_string(),
        }
    }
}
