//! What operators see without asking: alerts (webhook), logs (stdout and the per-day,
//! per-file logs) and metrics.

pub mod alert;
pub mod telemetry;
