//! `Rescuer::run_once`: running items whose lease expired go back to the queue.

use crate::factory::Item;
use crate::testdb::TestDb;
use shared::audit::AuditStatus;
use shared::queue::{ItemState, RescueCounts, Rescuer};

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
