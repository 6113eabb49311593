//! What every worker of a performer shares.

use backon::ExponentialBuilder;
use chrono::NaiveDate;
use chrono_tz::Tz;
use deadpool_postgres::Pool;
use shared::config::Config;
use shared::local::business_date::business_date;
use shared::local::paths::Dirs;
use shared::types::Reach;
use std::time::Duration;

/// The performer's shared state.
pub struct Context {
    /// The configuration.
    pub config: Config,
    /// Local directories.
    pub dirs: Dirs,
    /// The performer's database pool (claims, loads, final states).
    pub pool: Pool,
    /// A one-connection pool for heartbeats alone: long loads holding every pooled
    /// connection must never starve the leases they run under.
    pub leases: Pool,
    /// The sqlx pool, for what the performer reads beside its items' path (whether the
    /// queue is drained, its depth, the partitions ahead), as the dispatcher does.
    pub db: sqlx::PgPool,
    /// `--as-of`, if given.
    pub as_of: Option<NaiveDate>,
    /// Business time zone.
    pub tz: Tz,
    /// The origins this performer can reach.
    pub reach: Reach,
}

impl Context {
    /// Today's business date (fixed on an item at its first claim).
    pub fn business_date(&self) -> NaiveDate {
        business_date(self.as_of, self.tz)
    }

    /// Tier 1: in-place retries of one network or database step, exponential with jitter.
    pub fn step_backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.config.performer.step_backoff_ms))
            .with_max_times(self.config.performer.step_tries.saturating_sub(1))
            .with_jitter()
    }

    /// How long one step waits out a database outage: `database.outage_budget_secs`, but
    /// at most half the lease, so an attempt that waited can still prove its lease after
    /// (the heartbeats fail meanwhile, and the lease runs from the last one that passed).
    pub fn outage_budget(&self) -> Duration {
        self.config
            .database
            .timeouts()
            .outage_budget
            .min(self.config.lease() / 2)
    }

    /// Drops the pools' idle connections (after a write reached a standby: they may all
    /// lead there); new ones go to the primary (`target_session_attrs=read-write`).
    pub fn forget_idle_connections(&self) {
        self.pool.retain(|_, _| false);
        self.leases.retain(|_, _| false);
    }

    /// The waits between looks at a database that is away: from a quarter of a second,
    /// doubling, at most five seconds apart, with jitter; as many as the budget allows.
    pub fn outage_backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(250))
            .with_max_delay(Duration::from_secs(5))
            .without_max_times()
            .with_jitter()
    }
}
