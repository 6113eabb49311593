//! Who is behind a request, once [`super::auth`] has found out: the user, their role,
//! and how they proved it.

use super::Console;
use super::users::Role;

/// How a user proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A browser session (its token).
    Session(String),
    /// HTTP Basic credentials on the request itself.
    Basic,
    /// A trusted reverse proxy's header.
    Proxy,
}

impl Via {
    /// As recorded in `console_actions.via`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Via::Session(_) => "session",
            Via::Basic => "basic",
            Via::Proxy => "proxy",
        }
    }
}

/// The user behind a request.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Their name.
    pub user: String,
    /// Their role.
    pub role: Role,
    /// How they proved it.
    pub via: Via,
}

impl Identity {
    /// Whether this user may act, in this console.
    pub fn may_act(&self, console: &Console) -> bool {
        self.role == Role::Operator && !console.read_only
    }
}
