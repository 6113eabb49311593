//! `Rescuer::run_once`: running items whose lease expired go back to the queue.

use crate::factory::Item;
use crate::testdb::TestDb;
use shared::store::queue::{RescueCounts, Rescuer};
use shared::types::AuditStatus;
use shared::types::ItemState;

/// Far enough from now that the statements between seeding and rescuing cannot cross it.
const JUST: f64 = 5.0;

#[tokio::test]
async fn expired_leases_are_rescued_and_live_ones_are_not() {
    let t = TestDb::new().await;
    // (case, state, lease ends this many seconds from now, rescued?)
    let cases = [
        ("expired_long_ago", ItemState::Running, -3600.0, true),
        ("expired_just_now", ItemState::Running, -JUST, true),
        ("ends_just_after_now", ItemState::Running, JUST, false),
        ("ends_later", ItemState::Running, 3600.0, false),
        ("pending", ItemState::Pending, -3600.0, false),
        ("done", ItemState::Done, -3600.0, false),
        ("failed", ItemState::Failed, -3600.0, false),
    ];
    let mut seeded = Vec::new();
    for (case, state, lease, rescued) in cases {
        let audit = match state {
            ItemState::Pending => AuditStatus::Pendiente,
            ItemState::Running => AuditStatus::EnProceso,
            ItemState::Done => AuditStatus::Completado,
            ItemState::Failed => AuditStatus::FalloLayout,
        };
        let item = Item::new(case)
            .state(state, audit)
            .lease(lease)
            .insert(&t)
            .await;
        seeded.push((case, item.id, rescued, t.snapshot(item.id).await));
    }
    let client = t.client().await;
    assert_eq!(
        Rescuer::run_once(&client).await.unwrap(),
        RescueCounts { rescued: 2 }
    );
    for (case, id, rescued, before) in seeded {
        if rescued {
            // Back in the queue, due now, the attempt still counted, the lease gone.
            assert!(
                t.holds(
                    id,
                    "w.state = 'pending' AND w.locked_by IS NULL AND w.locked_until IS NULL
                             AND w.run_at <= now() AND w.attempts = 1
                             AND w.last_error LIKE 'lease expired%'"
                )
                .await,
                "{case}"
            );
        } else {
            assert_eq!(t.snapshot(id).await, before, "{case}");
        }
    }
    // A second pass finds nothing more.
    assert_eq!(Rescuer::run_once(&client).await.unwrap().rescued, 0);
}

/// A row an attempt holds locked (its fenced final write, before its COMMIT) is skipped,
/// not waited for, and rescued at a later pass if its lease is still expired then.
#[tokio::test]
async fn a_locked_row_is_skipped_not_waited_for() {
    let t = TestDb::new().await;
    let item = Item::new("held")
        .state(ItemState::Running, AuditStatus::EnProceso)
        .lease(-JUST)
        .insert(&t)
        .await;
    let mut holder = t.db.begin().await.unwrap();
    sqlx::query("SELECT id FROM work_items WHERE id = $1 FOR NO KEY UPDATE")
        .bind(item.id)
        .execute(&mut *holder)
        .await
        .unwrap();
    let client = t.client().await;
    let pass = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        Rescuer::run_once(&client),
    )
    .await
    .expect("the rescuer does not wait for a held row")
    .unwrap();
    assert_eq!(pass.rescued, 0);
    holder.rollback().await.unwrap();
    assert_eq!(Rescuer::run_once(&client).await.unwrap().rescued, 1);
}
