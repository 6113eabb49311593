//! What is known of a file once read, and what its load did.

use super::encoding::Encoding;
use super::state::AuditStatus;
use chrono::NaiveDate;

/// What is known of a downloaded file.
#[derive(Debug, Clone)]
pub struct FileFacts {
    /// SHA-256, lower-case hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: i64,
    /// How it was decoded.
    pub encoding: Encoding,
    /// The business date of this load.
    pub business_date: NaiveDate,
}

/// What a load put in the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadCounts {
    /// Valid records.
    pub valid: i32,
    /// Rejected records.
    pub rejected: i32,
    /// Visitors created by this file.
    pub new_visitors: i32,
    /// Visitors updated by this file.
    pub updated_visitors: i32,
}

impl LoadCounts {
    /// `COMPLETADO` or `COMPLETADO_CON_ERRORES`.
    pub fn status(&self) -> AuditStatus {
        if self.rejected == 0 {
            AuditStatus::Completado
        } else {
            AuditStatus::CompletadoConErrores
        }
    }
}

/// What a committed load did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadOutcome {
    /// Rows loaded.
    Loaded(LoadCounts),
    /// The same content was already loaded under this `bitacora_control.id`.
    Duplicate {
        /// The earlier load.
        of: i64,
    },
}
