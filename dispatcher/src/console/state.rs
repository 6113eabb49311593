//! What every handler of the console shares.

use super::{sessions, throttle, users};
use shared::config::Config;
use sqlx::PgPool;

/// What every handler shares.
pub struct Console {
    /// The whole configuration (actions need it, as the CLI's do).
    pub config: Config,
    /// Pages read through this pool: its connections act as `console.read_role`.
    pub read: PgPool,
    /// Actions (and their record) use the service's pool.
    pub write: PgPool,
    /// The credentials file.
    pub users: users::Users,
    /// Browser sessions.
    pub sessions: sessions::Sessions,
    /// Failed logins.
    pub throttle: throttle::Throttle,
    /// No actions for anyone.
    pub read_only: bool,
    /// The console speaks HTTPS itself (cookies are `Secure`).
    pub tls: bool,
}

impl Console {
    /// The business time zone's name, as PostgreSQL takes it.
    pub fn tz_name(&self) -> String {
        self.config.business.time_zone.name().to_string()
    }
}
