//! Browser sessions: a random token in an `HttpOnly`, `SameSite=Strict` cookie, kept in
//! memory (a restart logs everyone out), ended by logout, by `console.session_idle_secs`
//! without a request, or `console.session_max_secs` after the login.

use super::users::Role;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The session cookie's name.
pub const COOKIE: &str = "visitas_console";

/// A logged-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// The user.
    pub user: String,
    /// Their role at login.
    pub role: Role,
    started: Instant,
    last_seen: Instant,
}

/// Every open session, by token.
pub struct Sessions {
    idle: Duration,
    max: Duration,
    open: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// No sessions yet; `idle` and `max` end them.
    pub fn new(idle: Duration, max: Duration) -> Self {
        Self {
            idle,
            max,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Opens a session for `user`; returns its token (256 random bits, hex).
    pub fn open(&self, user: &str, role: Role) -> anyhow::Result<String> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        let mut open = self.open.lock().expect("not poisoned");
        // Expired sessions go whenever one is opened: the map stays small.
        open.retain(|_, s| self.alive(s, now));
        open.insert(
            token.clone(),
            Session {
                user: user.to_string(),
                role,
                started: now,
                last_seen: now,
            },
        );
        Ok(token)
    }

    /// The live session of `token`, its idle clock restarted; `None` once it ended.
    pub fn get(&self, token: &str) -> Option<Session> {
        let now = Instant::now();
        let mut open = self.open.lock().expect("not poisoned");
        match open.get_mut(token) {
            Some(s) if self.alive(s, now) => {
                s.last_seen = now;
                Some(s.clone())
            }
            Some(_) => {
                open.remove(token);
                None
            }
            None => None,
        }
    }

    /// Ends the session of `token` (logout).
    pub fn close(&self, token: &str) {
        self.open.lock().expect("not poisoned").remove(token);
    }

    fn alive(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.last_seen) < self.idle && now.duration_since(s.started) < self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_end_when_idle_or_closed() {
        let sessions = Sessions::new(Duration::from_millis(50), Duration::from_secs(60));
        let a = sessions.open("ana", Role::Operator).unwrap();
        let b = sessions.open("vic", Role::Viewer).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(sessions.get(&a).unwrap().user, "ana");
        sessions.close(&a);
        assert!(sessions.get(&a).is_none());
        std::thread::sleep(Duration::from_millis(60));
        assert!(sessions.get(&b).is_none(), "idle past its limit");
    }
}
