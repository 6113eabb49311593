//! A configuration value that parsed but breaks a rule, named by its key: the layers
//! below `config` check their own sections and return this.

/// A setting that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration key `{key}`: {reason}")]
pub struct InvalidSetting {
    /// The dotted key, as in the TOML file.
    pub key: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl InvalidSetting {
    /// The key `key` breaks a rule: `reason`.
    pub fn new(key: &'static str, reason: impl Into<String>) -> Self {
        Self {
            key,
            reason: reason.into(),
        }
    }
}
