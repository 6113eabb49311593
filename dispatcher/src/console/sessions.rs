//! Browser sessions: a random token in an `HttpOnly`, `SameSite=Strict` cookie, kept in
//! memory (a restart logs everyone out), ended by logout, by `console.session_idle_secs`
//! without a request, or `console.session_max_secs` after the login. A session is good
//! only from the address that logged in: a cookie carried off elsewhere opens nothing.

use super::users::Role;
use std::collections::HashMap;
use std::net::IpAddr;
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
    /// Where they logged in from.
    addr: IpAddr,
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
    pub fn open(&self, user: &str, role: Role, addr: IpAddr) -> anyhow::Result<String> {
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
                addr,
                started: now,
                last_seen: now,
            },
        );
        Ok(token)
    }

    /// The live session of `token` used from `addr`, its idle clock restarted; `None`
    /// once it ended, or from another address.
    pub fn get(&self, token: &str, addr: IpAddr) -> Option<Session> {
        let now = Instant::now();
        let mut open = self.open.lock().expect("not poisoned");
        match open.get_mut(token) {
            Some(s) if s.addr != addr => {
                tracing::warn!(user = %s.user, from = %addr, "console: a session cookie used from another address");
                None
            }
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
        let (here, there): (IpAddr, IpAddr) =
            ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        let a = sessions.open("ana", Role::Operator, here).unwrap();
        let b = sessions.open("vic", Role::Viewer, here).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(sessions.get(&a, here).unwrap().user, "ana");
        assert!(sessions.get(&a, there).is_none(), "from another address");
        sessions.close(&a);
        assert!(sessions.get(&a, here).is_none());
        std::thread::sleep(Duration::from_millis(60));
        assert!(sessions.get(&b, here).is_none(), "idle past its limit");
    }
}
