//! `service_locks` and `content_locks`: the service's locks, which only the service
//! role can take (migration 0008 says why advisory locks were not enough).
//!
//! - The dispatcher's lock is a **lease**: a row naming its holder, renewed by a
//!   heartbeat and free once it expires. Why not a row lock held by a transaction open
//!   for the whole night: a run lasts up to the drain timeout (hours), and a transaction
//!   open that long holds back vacuum on every table (the queue's rows are rewritten by
//!   each heartbeat of each item), is cut by `idle_in_transaction_session_timeout` or a
//!   pooler, loses the lock silently with its connection, and tells nobody since when it
//!   is held. The lease is visible (holder, since), survives a reconnect and frees itself
//!   [`LEASE`] after its holder died. Its cost: a holder stalled past the lease loses it;
//!   the heartbeat notices and the holder stops before its next critical step
//!   ([`Lease::ensure_held`]).
//! - The visitors and content locks are row locks taken inside the load transaction:
//!   they end with it, so they never outlive their holder.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio_util::task::AbortOnDropHandle;
use tracing::{error, warn};

/// The lease of `dispatcher run` and `dispatcher close`.
pub const DISPATCH: &str = "dispatch";

/// How long a lease lasts without a heartbeat; renewed every third of it.
pub const LEASE: Duration = Duration::from_secs(60);

/// Who holds a lease, as the database says.
#[derive(Debug, Clone)]
pub struct Holder {
    /// `host:pid what`.
    pub holder: String,
    /// Since when.
    pub acquired_at: DateTime<Utc>,
    /// When it frees itself unless renewed.
    pub expires_at: DateTime<Utc>,
}

impl Holder {
    /// How long it has been held.
    pub fn held_for(&self) -> Duration {
        (Utc::now() - self.acquired_at).to_std().unwrap_or_default()
    }
}

/// A lease row as stored (all `NULL` when free).
#[derive(sqlx::FromRow)]
struct LeaseRow {
    holder: Option<String>,
    acquired_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
}

/// The lease was lost (its holder stalled past [`LEASE`], or the database was out of
/// reach that long): another process may hold it now.
#[derive(Debug, thiserror::Error)]
#[error("lost the `{name}` lock (not renewed within {} s); stopping before doing more", LEASE.as_secs())]
pub struct LeaseLost {
    name: &'static str,
}

/// Why [`Lease::prove`] failed: either way, the step it guards must not run.
#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    /// Another process holds the lease now.
    #[error(transparent)]
    Lost(#[from] LeaseLost),
    /// The database did not answer: the lease cannot be proven.
    #[error("could not prove the dispatcher's lock: {0}")]
    Db(#[from] sqlx::Error),
}

/// A held lease; renewed in the background until released or dropped.
pub struct Lease {
    pool: PgPool,
    name: &'static str,
    token: i64,
    lost: Arc<AtomicBool>,
    _heartbeat: AbortOnDropHandle<()>,
}

impl Lease {
    /// Takes the lease `name` for `holder`, or says who holds it.
    pub async fn acquire(
        pool: &PgPool,
        name: &'static str,
        holder: &str,
    ) -> sqlx::Result<Result<Lease, Holder>> {
        loop {
            let token: Option<i64> = sqlx::query_scalar(
                "UPDATE service_locks
                 SET holder = $2, token = token + 1, acquired_at = now(),
                     expires_at = now() + make_interval(secs => $3)
                 WHERE name = $1 AND (holder IS NULL OR expires_at < now())
                 RETURNING token",
            )
            .bind(name)
            .bind(holder)
            .bind(LEASE.as_secs_f64())
            .fetch_optional(pool)
            .await?;
            if let Some(token) = token {
                let lost = Arc::new(AtomicBool::new(false));
                let heartbeat = tokio::spawn(heartbeat(pool.clone(), name, token, lost.clone()));
                return Ok(Ok(Lease {
                    pool: pool.clone(),
                    name,
                    token,
                    lost,
                    _heartbeat: AbortOnDropHandle::new(heartbeat),
                }));
            }
            let held: Option<LeaseRow> = sqlx::query_as(
                "SELECT holder, acquired_at, expires_at FROM service_locks WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(pool)
            .await?;
            match held {
                Some(LeaseRow {
                    holder: Some(holder),
                    acquired_at: Some(acquired_at),
                    expires_at: Some(expires_at),
                }) => {
                    return Ok(Err(Holder {
                        holder,
                        acquired_at,
                        expires_at,
                    }));
                }
                // Released between the two statements: try again.
                Some(_) => continue,
                None => {
                    return Err(sqlx::Error::Protocol(format!(
                        "service_locks has no `{name}` row (migrations not applied?)"
                    )));
                }
            }
        }
    }

    /// Fails once the lease was lost; call it before each step that must not overlap.
    pub fn ensure_held(&self) -> Result<(), LeaseLost> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(LeaseLost { name: self.name });
        }
        Ok(())
    }

    /// Proves, by a write only the holder's token can make, that the lease is still this
    /// one's, and extends it by a whole [`LEASE`]: call it right before a step that cannot
    /// be undone. A holder that was frozen (or cut off from the database) past its lease
    /// may not have heard from its heartbeat yet; this asks the database itself.
    pub async fn prove(&self) -> Result<(), ProveError> {
        self.ensure_held()?;
        let renewed = super::connect::bounded(
            LEASE / 3,
            sqlx::query(
                "UPDATE service_locks SET expires_at = now() + make_interval(secs => $3)
                 WHERE name = $1 AND token = $2 AND holder IS NOT NULL",
            )
            .bind(self.name)
            .bind(self.token)
            .bind(LEASE.as_secs_f64())
            .execute(&self.pool),
        )
        .await?;
        if renewed.rows_affected() == 1 {
            Ok(())
        } else {
            self.lost.store(true, Ordering::SeqCst);
            Err(LeaseLost { name: self.name }.into())
        }
    }

    /// Frees the lease now (a lost lease is left to its new holder).
    pub async fn release(self) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE service_locks SET holder = NULL, acquired_at = NULL, expires_at = NULL
             WHERE name = $1 AND token = $2",
        )
        .bind(self.name)
        .bind(self.token)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Renews the lease every third of [`LEASE`]; marks it lost when another holder has
/// it or when no renewal succeeded for a whole lease.
async fn heartbeat(pool: PgPool, name: &'static str, token: i64, lost: Arc<AtomicBool>) {
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(LEASE / 3).await;
        // Bounded: sqlx has no TCP keepalive, and a server gone without a word must not
        // hold the heartbeat past the lease it is there to keep.
        let beat = super::connect::bounded(
            LEASE / 3,
            sqlx::query(
                "UPDATE service_locks SET expires_at = now() + make_interval(secs => $3)
                 WHERE name = $1 AND token = $2 AND holder IS NOT NULL",
            )
            .bind(name)
            .bind(token)
            .bind(LEASE.as_secs_f64())
            .execute(&pool),
        )
        .await;
        match beat {
            Ok(done) if done.rows_affected() == 1 => renewed = Instant::now(),
            Ok(_) => {
                error!(lock = name, "lock lost: another process holds it now");
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => {
                warn!(lock = name, error = %e, "lock heartbeat failed");
                if renewed.elapsed() >= LEASE {
                    error!(lock = name, "lock lost: not renewed within its lease");
                    lost.store(true, Ordering::SeqCst);
                    return;
                }
            }
        }
    }
}

/// Locks the `visitors` row until the end of `tx`: visitor upserts run one at a time.
pub(crate) async fn lock_visitors(
    tx: &tokio_postgres::Transaction<'_>,
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "SELECT FROM service_locks WHERE name = 'visitors' FOR UPDATE",
        &[],
    )
    .await?;
    Ok(())
}

/// Locks the content `sha256` until the end of `tx`: loads of the same content run one
/// at a time (the row is created on first use; an existing one is locked by the update).
pub(crate) async fn lock_content(
    tx: &tokio_postgres::Transaction<'_>,
    sha256: &str,
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "INSERT INTO content_locks (sha256) VALUES ($1)
         ON CONFLICT (sha256) DO UPDATE SET locked_at = now()",
        &[&sha256],
    )
    .await?;
    Ok(())
}
