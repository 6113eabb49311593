//! Every write of an attempt is fenced by its claim token: once the item was taken back
//! (rescued and claimed again), the old attempt changes nothing.

use crate::factory::Item;
use crate::testdb::TestDb;
use chrono::NaiveDate;
use shared::store::attempt;
use shared::store::queue::{self, Rescuer};
use shared::types::{Claimed, Final, Reach};
use std::time::Duration;

/// The write under test, applied to one attempt; returns whether it was written.
#[derive(Debug, Clone, Copy)]
enum Write {
    Heartbeat,
    RetryLater,
    Release,
    FinishDone,
    FinishFailed,
    Relist,
}

impl Write {
    async fn apply(self, t: &TestDb, item: &Claimed) -> bool {
        let mut client = t.client().await;
        match self {
            Self::Heartbeat => queue::heartbeat(&client, item, Duration::from_secs(900)).await,
            Self::RetryLater => {
                attempt::retry_later(
                    &mut client,
                    item,
                    "origin unreachable",
                    Duration::from_secs(600),
                )
                .await
            }
            Self::Release => attempt::release(&mut client, item).await,
            Self::FinishDone => queue::finish(&client, item, Final::Done, None).await,
            Self::FinishFailed => {
                queue::finish(&client, item, Final::Failed, Some("layout: bad header")).await
            }
            Self::Relist => queue::relist(&client, item, 4242, Some(crate::factory::mtime())).await,
        }
        .unwrap()
    }

    /// What the current attempt's write shows in the tables.
    async fn check_written(self, t: &TestDb, id: i64) {
        let holds = |c: &'static str| async move { assert!(t.holds(id, c).await, "{self:?}: {c}") };
        match self {
            Self::Heartbeat => {
                holds("w.state = 'running' AND w.locked_until > now() + interval '800 seconds'").await
            }
            Self::RetryLater => {
                holds("w.state = 'pending' AND w.locked_by IS NULL AND w.run_at > now() + interval '500 seconds'
                       AND w.last_error = 'origin unreachable' AND w.attempts = 2").await;
                assert_eq!(t.audit(id, "estatus").await.as_deref(), Some("PENDIENTE"));
                assert_eq!(t.audit(id, "mensaje_error").await.as_deref(), Some("origin unreachable"));
            }
            Self::Release => {
                // Handed back at shutdown: the attempt does not count.
                holds("w.state = 'pending' AND w.locked_by IS NULL AND w.run_at <= now() AND w.attempts = 1").await;
                assert_eq!(t.audit(id, "estatus").await.as_deref(), Some("PENDIENTE"));
            }
            Self::FinishDone => holds("w.state = 'done' AND w.locked_until IS NULL").await,
            Self::FinishFailed => {
                holds("w.state = 'failed' AND w.locked_until IS NULL AND w.last_error = 'layout: bad header'").await
            }
            Self::Relist => holds("w.size_bytes = 4242 AND w.state = 'running'").await,
        }
    }
}

/// An item claimed, rescued after its lease expired, and claimed again: (stale, current).
async fn taken_back(t: &TestDb, name: &str) -> (Claimed, Claimed) {
    // Each case at its own origin, so claims see only its item.
    let origin = format!("sftp://etl@sftp.test:22/{name}");
    Item::new(name).origin(&origin, None).insert(t).await;
    let reach = Reach {
        origins: vec![origin],
        host: "h1".into(),
    };
    let date = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
    let mut client = t.client().await;
    let lease = Duration::from_secs(300);
    let stale = attempt::claim(&mut client, "w1", lease, &reach, date)
        .await
        .unwrap()
        .unwrap();
    sqlx::query("UPDATE work_items SET locked_until = now() - interval '1 second' WHERE id = $1")
        .bind(stale.id)
        .execute(&t.db)
        .await
        .unwrap();
    assert_eq!(Rescuer::run_once(&client).await.unwrap().rescued, 1);
    let current = attempt::claim(&mut client, "w2", lease, &reach, date)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.id, stale.id);
    assert_ne!(current.token, stale.token);
    (stale, current)
}

#[tokio::test]
async fn a_stale_attempt_changes_nothing_and_the_current_one_writes() {
    let t = TestDb::new().await;
    for write in [
        Write::Heartbeat,
        Write::RetryLater,
        Write::Release,
        Write::FinishDone,
        Write::FinishFailed,
        Write::Relist,
    ] {
        let (stale, current) = taken_back(&t, &format!("{write:?}")).await;
        let before = t.snapshot(current.id).await;
        assert!(!write.apply(&t, &stale).await, "{write:?} by a stale token");
        assert_eq!(
            t.snapshot(current.id).await,
            before,
            "{write:?} by a stale token"
        );
        assert!(
            write.apply(&t, &current).await,
            "{write:?} by the current token"
        );
        write.check_written(&t, current.id).await;
        // Once written, the old token stays dead.
        assert!(
            !write.apply(&t, &stale).await,
            "{write:?} by a stale token, after"
        );
    }
}
