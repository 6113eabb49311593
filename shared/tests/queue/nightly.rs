//! `retry_system_failures` (tier 4): which `FALLO_SISTEMA` items the nightly run retries.

use crate::factory::Item;
use crate::testdb::TestDb;
use shared::store::attempt;
use shared::types::AuditStatus;
use shared::types::ItemState;

fn failed(name: &str) -> Item {
    Item::new(name).state(ItemState::Failed, AuditStatus::FalloSistema)
}

#[tokio::test]
async fn system_failures_still_at_the_origin_are_retried_up_to_max_runs() {
    let t = TestDb::new().await;
    let run = t.dispatch_run().await;
    let max_runs = 2;

    let listed = failed("listed").insert(&t).await;
    let in_flight = failed("in_flight").insert(&t).await;
    let last_run = failed("last_run")
        .system_retry_days(max_runs - 1)
        .insert(&t)
        .await;
    let used_up = failed("used_up")
        .system_retry_days(max_runs)
        .insert(&t)
        .await;
    let gone = failed("gone").insert(&t).await;
    let discarded = failed("discarded").discarded().insert(&t).await;
    let operator = failed("operator").insert(&t).await;
    Item::new("operator_retry")
        .size(7)
        .retry_of(operator.bitacora_id)
        .insert(&t)
        .await;
    let layout = Item::new("layout")
        .state(ItemState::Failed, AuditStatus::FalloLayout)
        .insert(&t)
        .await;
    // Another item is open for the same listing identity: never two open at once.
    let shadowed = failed("shadowed").insert(&t).await;
    let open_twin = Item::new("shadowed_twin").insert(&t).await;
    sqlx::query("UPDATE work_items SET source_path = '/in/shadowed' WHERE id = $1")
        .bind(open_twin.id)
        .execute(&t.db)
        .await
        .unwrap();

    let names = [
        "listed",
        "last_run",
        "used_up",
        "discarded",
        "operator",
        "layout",
        "shadowed",
    ];
    let at_origin: Vec<_> = names.iter().map(|n| Item::new(n).listed()).collect();
    let before_gone = t.snapshot(gone.id).await;
    let untouched = [used_up, discarded, operator, layout, shadowed];
    let mut snapshots = Vec::new();
    for s in untouched {
        snapshots.push(t.snapshot(s.id).await);
    }

    let found = Item::new("in_flight").listed();
    let (mut retried, waiting) = attempt::retry_system_failures(
        &t.db,
        run,
        &at_origin,
        &[(in_flight.id, &found)],
        max_runs as u32,
    )
    .await
    .unwrap();
    retried.sort();
    assert_eq!(retried, [listed.id, in_flight.id, last_run.id]);
    // Waiting for an operator: out of runs, or shadowed by an open item.
    assert_eq!(waiting, 2);
    for s in [listed, in_flight, last_run] {
        assert!(
            t.holds(s.id, &format!(
                "w.state = 'pending' AND w.attempts = 0 AND w.run_at <= now() AND w.dispatch_run_id = {run}
                 AND w.last_error LIKE 'retried by the nightly run%'"
            ))
            .await
        );
        assert_eq!(t.audit(s.id, "estatus").await.as_deref(), Some("PENDIENTE"));
    }
    assert_eq!(
        t.item(last_run.id, "system_retry_days").await,
        Some(max_runs.to_string())
    );
    assert_eq!(t.snapshot(gone.id).await, before_gone);
    for (s, before) in untouched.iter().zip(snapshots) {
        assert_eq!(t.snapshot(s.id).await, before);
    }
}

#[tokio::test]
async fn an_operator_retry_stops_the_nightly_retries_of_its_original() {
    let t = TestDb::new().await;
    let original = failed("a").insert(&t).await;
    let mut tx = t.db.begin().await.unwrap();
    let retry = Item::new("a").size(9).listed();
    let bitacora = attempt::enqueue_retry(&mut tx, original.bitacora_id, &retry, 3)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let (id,): (i64,) = sqlx::query_as(
        "SELECT work_item_id FROM bitacora_control WHERE id = $1 AND reprocesa_de = $2 AND estatus = 'PENDIENTE'",
    )
    .bind(bitacora)
    .bind(original.bitacora_id)
    .fetch_one(&t.db)
    .await
    .unwrap();
    assert_eq!(
        t.item(id, "retry_of").await,
        Some(original.bitacora_id.to_string())
    );
    assert_eq!(t.item(id, "state").await.as_deref(), Some("pending"));
    let run = t.dispatch_run().await;
    let (retried, waiting) =
        attempt::retry_system_failures(&t.db, run, &[Item::new("a").listed()], &[], 2)
            .await
            .unwrap();
    assert_eq!((retried.len(), waiting), (0, 0));
    assert_eq!(
        t.item(original.id, "state").await.as_deref(),
        Some("failed")
    );
}
