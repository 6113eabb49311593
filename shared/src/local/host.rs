//! This host's identity, for worker ids, dispatch runs, and the local items only its
//! performers may take: `performer.host_name`, or else the kernel's host name.

use std::sync::OnceLock;

static NAME: OnceLock<String> = OnceLock::new();

/// Fixes this process's host identity at start (the configuration does, as it loads):
/// `configured`, or else the kernel's host name. Later calls change nothing.
pub fn adopt(configured: Option<&str>) {
    let _ = NAME.set(configured.map_or_else(kernel_name, str::to_string));
}

/// This host's identity (see [`adopt`]); the kernel's host name until one is adopted.
pub fn name() -> String {
    NAME.get().cloned().unwrap_or_else(kernel_name)
}

/// The kernel's host name, or `unknown`.
fn kernel_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "unknown".into(), |h| h.trim().to_string())
}
