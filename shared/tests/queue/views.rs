//! What the queue reports: open items, states, depth.

use crate::factory::Item;
use crate::testdb::TestDb;
use shared::store::{attempt, queue};
use shared::types::AuditStatus;
use shared::types::ItemState;

#[tokio::test]
async fn the_queue_reports_its_open_items_states_and_depth() {
    let t = TestDb::new().await;
    let pending = Item::new("pending").run_at(-120.0).insert(&t).await;
    let later = Item::new("later").run_at(3600.0).insert(&t).await;
    let running = Item::new("running")
        .state(ItemState::Running, AuditStatus::EnProceso)
        .insert(&t)
        .await;
    let done = Item::new("done")
        .state(ItemState::Done, AuditStatus::Completado)
        .insert(&t)
        .await;
    let failed = Item::new("failed")
        .state(ItemState::Failed, AuditStatus::FalloLayout)
        .insert(&t)
        .await;

    assert_eq!(queue::open_items(&t.db).await.unwrap(), 3);
    let some = [pending.id, done.id, failed.id];
    assert_eq!(queue::open_among(&t.db, &some).await.unwrap(), 1);

    let mut stands = queue::states_of(
        &t.db,
        &[pending.id, later.id, running.id, done.id, failed.id, -1],
    )
    .await
    .unwrap();
    stands.sort_by_key(|(id, _)| *id);
    let seen: Vec<_> = stands
        .iter()
        .map(|(id, s)| (*id, s.state, s.status))
        .collect();
    assert_eq!(
        seen,
        [
            (pending.id, ItemState::Pending, AuditStatus::Pendiente),
            (later.id, ItemState::Pending, AuditStatus::Pendiente),
            (running.id, ItemState::Running, AuditStatus::EnProceso),
            (done.id, ItemState::Done, AuditStatus::Completado),
            (failed.id, ItemState::Failed, AuditStatus::FalloLayout),
        ]
    );

    let depth = queue::depth(&t.db).await.unwrap();
    assert_eq!(
        depth.by_state,
        [
            (ItemState::Pending, 2),
            (ItemState::Running, 1),
            (ItemState::Done, 1),
            (ItemState::Failed, 1),
        ]
    );
    // The oldest due pending item became due two minutes ago; the later one is not due.
    assert!(
        (119.0..600.0).contains(&depth.oldest_pending_secs),
        "{depth:?}"
    );
}

#[tokio::test]
async fn bench_items_are_claimable_with_their_audit_rows() {
    let t = TestDb::new().await;
    let mut client = t.client().await;
    attempt::insert_bench_items(&mut client, 3).await.unwrap();
    assert_eq!(queue::open_items(&t.db).await.unwrap(), 3);
    let rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM work_items w JOIN bitacora_control b ON b.work_item_id = w.id
         WHERE w.state = 'pending' AND b.estatus = 'PENDIENTE'",
    )
    .fetch_one(&t.db)
    .await
    .unwrap();
    assert_eq!(rows, 3);
}
