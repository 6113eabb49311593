//! Test-only fault hooks, so the fault-injection suite can stop a real process at a
//! precise point. Inert unless `VISITAS_FAULT_PAUSE_AT` names the point.
//!
//! `VISITAS_FAULT_PAUSE_AT=load` (comma-separated points) makes the process log
//! "fault hook: pausing" and sleep `VISITAS_FAULT_PAUSE_SECS` (default 30) there,
//! the first time it gets there.
//! Points: `download` (remote file open, local file created), `load` (rows copied,
//! transaction not committed), `after_commit` (committed, not yet backed up or deleted).

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

/// Points already paused at: each pauses once per process, so retries run through.
static PAUSED: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Pauses at `point` (once per process) if the environment asks for it.
pub async fn pause(point: &str) {
    let Ok(points) = std::env::var("VISITAS_FAULT_PAUSE_AT") else {
        return;
    };
    if !points.split(',').any(|p| p.trim() == point) {
        return;
    }
    if !PAUSED
        .lock()
        .expect("not poisoned")
        .get_or_insert_with(HashSet::new)
        .insert(point.to_string())
    {
        return;
    }
    let secs = std::env::var("VISITAS_FAULT_PAUSE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    tracing::warn!(point, secs, "fault hook: pausing");
    tokio::time::sleep(Duration::from_secs(secs)).await;
}

/// Panics at `point` if `VISITAS_FAULT_PANIC_AT` names it: a defect in a worker thread,
/// on demand (the validator's thread, to prove a load never commits without its end).
pub fn panic_at(point: &str) {
    if std::env::var("VISITAS_FAULT_PANIC_AT")
        .is_ok_and(|p| p.split(',').any(|p| p.trim() == point))
    {
        panic!("fault hook: panic at {point}");
    }
}
