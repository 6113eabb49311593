//! Login throttling: after `console.login_failures_allowed` failed logins of one user
//! name, or from one address, the next try must wait — 30 s, doubling with each further
//! failure, at most 15 minutes. A success clears the user's count (not the address's).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest wait.
const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// Counts older than this are forgotten.
const FORGET: Duration = Duration::from_secs(3600);

/// Failed logins by key (`user:NAME`, `addr:IP`).
pub struct Throttle {
    allowed: u32,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Throttle {
    /// `allowed` failures before a wait.
    pub fn new(allowed: u32) -> Self {
        Self {
            allowed,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// How long the keys must still wait before a try, if they must.
    pub fn wait(&self, keys: &[String]) -> Option<Duration> {
        let now = Instant::now();
        let failures = self.failures.lock().expect("not poisoned");
        keys.iter()
            .filter_map(|k| failures.get(k))
            .filter(|(n, _)| *n >= self.allowed)
            .filter_map(|(n, last)| {
                let wait = Duration::from_secs(30)
                    .saturating_mul(1 << (n - self.allowed).min(10))
                    .min(MAX_WAIT);
                wait.checked_sub(now.duration_since(*last))
            })
            .max()
    }

    /// Counts a failed try against every key.
    pub fn failed(&self, keys: &[String]) {
        let now = Instant::now();
        let mut failures = self.failures.lock().expect("not poisoned");
        failures.retain(|_, (_, last)| now.duration_since(*last) < FORGET);
        for k in keys {
            let entry = failures.entry(k.clone()).or_insert((0, now));
            *entry = (entry.0 + 1, now);
        }
    }

    /// Clears a key's count (the user logged in).
    pub fn succeeded(&self, key: &str) {
        self.failures.lock().expect("not poisoned").remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_comes_after_the_allowed_failures() {
        let t = Throttle::new(2);
        let keys = vec!["user:ana".to_string(), "addr:127.0.0.1".to_string()];
        t.failed(&keys);
        assert!(t.wait(&keys).is_none());
        t.failed(&keys);
        let wait = t.wait(&keys).unwrap();
        assert!(wait > Duration::from_secs(29) && wait <= Duration::from_secs(30));
        t.succeeded("user:ana");
        // The address still waits.
        assert!(t.wait(&keys).is_some());
        assert!(t.wait(&["user:ana".to_string()]).is_none());
    }
}
