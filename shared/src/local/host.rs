//! This machine's name, for worker ids and dispatch runs.

/// The kernel's host name, or `unknown`.
pub fn name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "unknown".into(), |h| h.trim().to_string())
}
