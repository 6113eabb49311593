//! A file name from the origin that is safe to use as a local path component.

use std::fmt;

/// A remote file name with no `/`, `..`, NUL or other path trickery; only [`RemoteName::parse`] builds one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RemoteName(String);

/// Why a remote name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("remote name {name:?} refused: {reason}")]
pub struct RemoteNameError {
    /// The name as received.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl RemoteName {
    /// Accepts a bare file name; refuses separators, `..`, NUL, control characters and empty names.
    pub fn parse(name: &str) -> Result<Self, RemoteNameError> {
        let refuse = |reason| {
            Err(RemoteNameError {
                name: name.to_string(),
                reason,
            })
        };
        if name.is_empty() || name == "." {
            return refuse("empty");
        }
        if name.contains('/') || name.contains('\\') {
            return refuse("contains a path separator");
        }
        if name.contains("..") {
            return refuse("contains `..`");
        }
        if name.chars().any(char::is_control) {
            return refuse("contains NUL or a control character");
        }
        if name.len() > 255 {
            return refuse("longer than 255 bytes");
        }
        Ok(Self(name.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RemoteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass_and_path_tricks_are_refused() {
        assert_eq!(
            RemoteName::parse("report_7.txt").unwrap().as_str(),
            "report_7.txt"
        );
        for bad in [
            "",
            ".",
            "..",
            "../etc/passwd",
            "a/b",
            "report..txt",
            "a\0b",
            "a\\b",
            "x\ny",
        ] {
            assert!(RemoteName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
