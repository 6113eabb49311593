//! Secrets read from files (a database URL, an SFTP password): never from argv.

use crate::types::{InvalidSetting, Secret};
use std::path::Path;

/// The secret in the file at `path`, its final line end dropped; `key` names the
/// setting that pointed there.
pub fn read_secret_file(path: &Path, key: &'static str) -> Result<Secret, InvalidSetting> {
    std::fs::read_to_string(path)
        .map(|s| Secret::new(s.trim_end()))
        .map_err(|e| InvalidSetting::new(key, format!("cannot read {}: {e}", path.display())))
}
