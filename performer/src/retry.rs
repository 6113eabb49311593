//! The retry tiers, decided in one place from the error's type (docs/architecture.md, "When things fail").

use crate::error::ItemError;
use shared::store::load::LoadError;

/// What becomes of an item after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The database was away longer than a step may wait: back to the queue at once,
    /// the attempt not counted (an outage is never the file's fault).
    HandBack,
    /// Tier 2: back to the queue for a later attempt.
    RetryLater,
    /// Tier 3: `FALLO_SISTEMA`, quarantine, alert.
    GiveUp,
    /// The attempt lost its item to another: it changes nothing more.
    Abandon,
}

/// Whether the same step may succeed if tried again (tier 1, and the input to tier 2).
pub fn is_transient(e: &ItemError) -> bool {
    match e {
        ItemError::Source(e) => e.is_transient(),
        ItemError::Load(e) => match e {
            LoadError::Db(e) => shared::store::connect::is_transient(e),
            // A send fails when the connection does; an encoding error cannot pass.
            LoadError::Copy(e) => e
                .downcast_ref::<tokio_postgres::Error>()
                .is_some_and(shared::store::connect::is_transient),
            LoadError::Input(shared::local::staged::StreamError::Io(_))
            | LoadError::InputEnded
            | LoadError::InputChanged { .. } => true,
            LoadError::Input(shared::local::staged::StreamError::Engine(_))
            | LoadError::Frame(_)
            | LoadError::LeaseLost => false,
        },
        ItemError::Db(e) => shared::store::connect::is_transient(e),
        ItemError::Query(e) => shared::store::connect::is_transient(e),
        ItemError::Pool(_) | ItemError::Disk { .. } | ItemError::Unsettled(_) => true,
        ItemError::Name(_)
        | ItemError::NotAsResolved(_)
        | ItemError::Engine(_)
        | ItemError::Exhausted { .. }
        | ItemError::LeaseLost => false,
    }
}

/// Whether the database is away (unreachable, restarting, or read-only: a failover or a
/// switchover) rather than anything about the item: waited out, never an attempt spent.
pub fn is_outage(e: &ItemError) -> bool {
    use shared::store::connect::{is_outage as db, is_outage_pool, is_outage_sqlx};
    match e {
        ItemError::Db(e) | ItemError::Load(LoadError::Db(e)) => db(e),
        ItemError::Load(LoadError::Copy(e)) => {
            e.downcast_ref::<tokio_postgres::Error>().is_some_and(db)
        }
        ItemError::Query(e) => is_outage_sqlx(e),
        ItemError::Pool(e) => is_outage_pool(e),
        _ => false,
    }
}

/// Whether a write reached a standby (SQLSTATE 25006).
pub fn is_read_only(e: &ItemError) -> bool {
    use shared::store::connect::is_read_only as read_only;
    match e {
        ItemError::Db(e) | ItemError::Load(LoadError::Db(e)) => read_only(e),
        ItemError::Load(LoadError::Copy(e)) => e
            .downcast_ref::<tokio_postgres::Error>()
            .is_some_and(read_only),
        ItemError::Pool(deadpool_postgres::PoolError::Backend(e)) => read_only(e),
        _ => false,
    }
}

/// Whether the error says the attempt no longer holds its item.
fn lost_lease(e: &ItemError) -> bool {
    matches!(
        e,
        ItemError::LeaseLost | ItemError::Load(LoadError::LeaseLost)
    )
}

/// The tier after attempt `attempt` of `max` failed with `e`. An item whose load
/// `committed` is never given up: what is left (backup, delete) is retried until done.
/// A database outage spends no attempt.
pub fn decide(e: &ItemError, attempt: i32, max: i32, committed: bool) -> Decision {
    if lost_lease(e) {
        Decision::Abandon
    } else if is_outage(e) {
        Decision::HandBack
    } else if committed || (is_transient(e) && attempt < max) {
        Decision::RetryLater
    } else {
        Decision::GiveUp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::source::{RemoteName, SourceError};

    fn io() -> std::io::Error {
        std::io::Error::other("disk full")
    }

    fn every_kind() -> Vec<(&'static str, ItemError, bool)> {
        vec![
            (
                "source io",
                ItemError::Source(SourceError::Io {
                    context: "downloading".into(),
                    reason: "reset".into(),
                }),
                true,
            ),
            (
                "source not found",
                ItemError::Source(SourceError::NotFound { path: "/x".into() }),
                false,
            ),
            (
                "source auth",
                ItemError::Source(SourceError::Auth { user: "u".into() }),
                false,
            ),
            (
                "source host key",
                ItemError::Source(SourceError::HostKey {
                    host: "h".into(),
                    port: 22,
                    reason: "changed".into(),
                }),
                false,
            ),
            (
                "source setup",
                ItemError::Source(SourceError::Setup {
                    what: "key".into(),
                    reason: "missing".into(),
                }),
                false,
            ),
            (
                "load input io",
                ItemError::Load(LoadError::Input(io().into())),
                true,
            ),
            (
                "load input ended",
                ItemError::Load(LoadError::InputEnded),
                true,
            ),
            (
                "load input changed",
                ItemError::Load(LoadError::InputChanged {
                    hashed_bytes: 1,
                    hashed_sha256: "a".into(),
                    read_bytes: 2,
                    read_sha256: "b".into(),
                }),
                true,
            ),
            (
                "load lease lost",
                ItemError::Load(LoadError::LeaseLost),
                false,
            ),
            (
                "load frame",
                ItemError::Load(LoadError::Frame(polars::prelude::PolarsError::NoData(
                    "x".into(),
                ))),
                false,
            ),
            (
                "pool",
                ItemError::Pool(deadpool_postgres::PoolError::Closed),
                true,
            ),
            (
                "disk",
                ItemError::Disk {
                    context: "moving".into(),
                    source: io(),
                },
                true,
            ),
            ("unsettled", ItemError::Unsettled("grew".into()), true),
            (
                "name",
                ItemError::Name(RemoteName::parse("../x").unwrap_err()),
                false,
            ),
            (
                "engine",
                ItemError::Engine(polars::prelude::PolarsError::NoData("x".into())),
                false,
            ),
            ("exhausted", ItemError::Exhausted { attempts: 3 }, false),
            (
                "not as resolved",
                ItemError::NotAsResolved("changed".into()),
                false,
            ),
            ("lease lost", ItemError::LeaseLost, false),
            (
                "side read, database unreachable",
                ItemError::Query(sqlx::Error::Io(std::io::Error::from(
                    std::io::ErrorKind::ConnectionRefused,
                ))),
                true,
            ),
            (
                "side read, bad column (a defect of the client)",
                ItemError::Query(sqlx::Error::ColumnNotFound("x".into())),
                false,
            ),
            (
                "pool, no connection made in time",
                ItemError::Pool(deadpool_postgres::PoolError::Timeout(
                    deadpool_postgres::TimeoutType::Create,
                )),
                true,
            ),
        ]
    }

    #[test]
    fn every_error_kind_and_attempt_edge_has_its_tier() {
        for (name, e, transient) in every_kind() {
            assert_eq!(is_transient(&e), transient, "{name}");
            let lost = lost_lease(&e);
            let outage = name.contains("unreachable") || name.contains("no connection");
            assert_eq!(is_outage(&e), outage, "{name}");
            for (attempt, max) in [(1, 3), (2, 3), (3, 3), (4, 3), (1, 1)] {
                let expected = if lost {
                    Decision::Abandon
                } else if outage {
                    Decision::HandBack
                } else if transient && attempt < max {
                    Decision::RetryLater
                } else {
                    Decision::GiveUp
                };
                assert_eq!(
                    decide(&e, attempt, max, false),
                    expected,
                    "{name} at {attempt}/{max}"
                );
                let after_commit = if lost {
                    Decision::Abandon
                } else if outage {
                    Decision::HandBack
                } else {
                    Decision::RetryLater
                };
                assert_eq!(
                    decide(&e, attempt, max, true),
                    after_commit,
                    "{name} after commit, {attempt}/{max}"
                );
            }
        }
    }
}
