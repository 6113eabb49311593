//! Test-only fault hooks, so the fault-injection suite can stop a real process at a
//! precise point. Compiled in only with the `fault-hooks` cargo feature (the test
//! command builds the binaries with it); without it every hook is a no-op and the
//! variables below are never read, so release binaries cannot be made to stall.
//!
//! `VISITAS_FAULT_PAUSE_AT=load` (comma-separated points) makes the process log
//! "fault hook: pausing" and sleep `VISITAS_FAULT_PAUSE_SECS` (default 30) there,
//! the first time it gets there.
//! Points: `download` (remote file open, local file created), `downloaded` (the whole
//! file staged and checked unchanged at the origin), `load` (rows copied, transaction
//! not committed), `after_commit` (committed, not yet backed up or deleted),
//! `before_delete` (backed up, not yet deleted at the origin), `close` (`dispatcher
//! close` holding the dispatcher's lock, nothing archived yet), `zipped` (a close's new
//! zip written and verified under its temporary name, not yet installed).
//!
//! `VISITAS_FAULT_PANIC_AT=validate` panics the validator's thread at its first batch;
//! `VISITAS_FAULT_LOSE_COMMIT_ACK=load` cuts the loading connection right after its
//! COMMIT, so the attempt sees a connection error for a load that committed (each once);
//! `VISITAS_FAULT_DEAF_HEARTBEAT=1` makes a performer's heartbeat ignore a lost lease, so
//! a stale attempt reaches its writes and the database's fencing alone must refuse them.

/// The version the binaries print, marked when built with the hooks (the tests check it).
pub const VERSION: &str = if cfg!(feature = "fault-hooks") {
    concat!(env!("CARGO_PKG_VERSION"), " (fault-hooks)")
} else {
    env!("CARGO_PKG_VERSION")
};

/// Whether the comma-separated list in `variable` names `point`, and this is the first
/// time this process gets there: each hook fires once, so retries run through.
pub(crate) fn fires(variable: &str, point: &str) -> bool {
    #[cfg(feature = "fault-hooks")]
    {
        use std::collections::HashSet;
        use std::sync::Mutex;
        static FIRED: Mutex<Option<HashSet<String>>> = Mutex::new(None);
        std::env::var(variable).is_ok_and(|points| points.split(',').any(|p| p.trim() == point))
            && FIRED
                .lock()
                .expect("not poisoned")
                .get_or_insert_with(HashSet::new)
                .insert(format!("{variable}={point}"))
    }
    #[cfg(not(feature = "fault-hooks"))]
    {
        let _ = (variable, point);
        false
    }
}

/// Pauses at `point` (once per process) if the environment asks for it.
#[cfg(feature = "fault-hooks")]
pub async fn pause(point: &str) {
    if !fires("VISITAS_FAULT_PAUSE_AT", point) {
        return;
    }
    let secs = std::env::var("VISITAS_FAULT_PAUSE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    tracing::warn!(point, secs, "fault hook: pausing");
    tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
}

/// Panics at `point` if `VISITAS_FAULT_PANIC_AT` names it: a defect in a worker thread,
/// on demand (the validator's thread, to prove a load never commits without its end).
pub(crate) fn panic_at(point: &str) {
    if fires("VISITAS_FAULT_PANIC_AT", point) {
        panic!("fault hook: panic at {point}");
    }
}

/// Pauses at `point` (once per process) if the environment asks for it.
#[cfg(not(feature = "fault-hooks"))]
pub async fn pause(_point: &str) {}

/// Whether the test-only switch `variable` is set (always false without `fault-hooks`).
pub fn armed(variable: &str) -> bool {
    cfg!(feature = "fault-hooks") && std::env::var_os(variable).is_some()
}

#[cfg(all(test, not(feature = "fault-hooks")))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn without_the_feature_the_hooks_ignore_the_environment() {
        // SAFETY: no other test reads these variables (configuration reads only
        // `VISITAS_SECTION__KEY` names).
        unsafe {
            std::env::set_var("VISITAS_FAULT_PAUSE_AT", "load");
            std::env::set_var("VISITAS_FAULT_PAUSE_SECS", "3600");
            std::env::set_var("VISITAS_FAULT_CORRUPT_ARCHIVE", "1");
            std::env::set_var("VISITAS_FAULT_PANIC_AT", "validate");
        }
        let paused = tokio::time::timeout(std::time::Duration::from_secs(5), pause("load")).await;
        assert!(paused.is_ok(), "a build without fault-hooks never pauses");
        assert!(!armed("VISITAS_FAULT_CORRUPT_ARCHIVE"));
        panic_at("validate");
    }
}
