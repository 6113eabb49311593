//! The dispatcher's lock, shared by `run` and `close` so no two of them overlap: a lease
//! in `service_locks` (see `shared::store::locks` for why a lease), which the read-only
//! role cannot take. Finding it held says who holds it; held longer than the drain
//! timeout, a run is stuck somewhere, so the finder alerts.

use shared::config::Config;
use shared::observe::alert::{self, Alert};
use shared::store::alerts::Which;
use shared::store::locks::{DISPATCH, Holder, Lease};
use shared::types::AlertKind;
use sqlx::PgPool;
use tracing::{error, warn};

/// Takes the dispatcher's lock for `what` (`run`, `close`), or reports who holds it
/// (stdout, log, and an alert when held too long) and returns `None`.
pub async fn take(config: &Config, pool: &PgPool, what: &str) -> anyhow::Result<Option<Lease>> {
    let me = format!(
        "{}:{} dispatcher {what}",
        shared::local::host::name(),
        std::process::id()
    );
    match Lease::acquire(pool, DISPATCH, &me).await? {
        Ok(lease) => {
            let freed = format!("the dispatcher lock is free again: {me} took it");
            alert::resolve(
                pool,
                config,
                Which::Service(AlertKind::NocheBloqueada),
                &freed,
            )
            .await;
            Ok(Some(lease))
        }
        Err(holder) => {
            report_busy(config, pool, &holder, what).await;
            Ok(None)
        }
    }
}

async fn report_busy(config: &Config, pool: &PgPool, holder: &Holder, what: &str) {
    let held_for = holder.held_for();
    let busy = format!(
        "another dispatcher run is in progress ({} has held the dispatcher lock since {}, {} s); nothing to do",
        holder.holder,
        holder.acquired_at.format("%Y-%m-%d %H:%M:%S UTC"),
        held_for.as_secs()
    );
    warn!(holder = %holder.holder, held_secs = held_for.as_secs(), "{busy}");
    println!("{busy}");
    let limit = config.dispatcher.drain_timeout_secs;
    if held_for.as_secs() > limit {
        let message = format!(
            "dispatcher {what}: the dispatcher lock has been held by {} for {} s, longer than the \
             drain timeout ({limit} s): that process looks stuck, and nights cannot run until it ends \
             (its lease frees itself {} s after it dies)",
            holder.holder,
            held_for.as_secs(),
            shared::store::locks::LEASE.as_secs()
        );
        error!(holder = %holder.holder, held_secs = held_for.as_secs(), "{message}");
        println!("{message}");
        alert::raise(pool, config, Alert::new(AlertKind::NocheBloqueada, message)).await;
    }
}
