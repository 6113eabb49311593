//! `claim`: which item a performer takes, and what the claim writes.

use crate::factory::{Item, ORIGIN};
use crate::testdb::TestDb;
use chrono::NaiveDate;
use shared::store::{attempt, queue};
use shared::types::AuditStatus;
use shared::types::{ItemState, Reach};
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(300);

fn reach(origin: &str, host: &str) -> Reach {
    Reach {
        origins: vec![origin.to_string()],
        host: host.to_string(),
    }
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
}

/// Claims until nothing is left for `reach`; returns the claimed file names.
async fn drain(t: &TestDb, reach: &Reach) -> Vec<String> {
    let mut client = t.client().await;
    let mut names = Vec::new();
    while let Some(c) = attempt::claim(&mut client, "w1", LEASE, reach, day(1))
        .await
        .unwrap()
    {
        names.push(c.file_name);
    }
    names.sort();
    names
}

#[tokio::test]
async fn a_performer_claims_only_due_items_it_can_reach() {
    let t = TestDb::new().await;
    let local = "file:///srv/in";
    Item::new("due").insert(&t).await;
    Item::new("due_later").run_at(60.0).insert(&t).await;
    Item::new("other_origin")
        .origin("sftp://etl@elsewhere:22/in", None)
        .insert(&t)
        .await;
    Item::new("local_here")
        .origin(local, Some("h1"))
        .insert(&t)
        .await;
    Item::new("local_elsewhere")
        .origin(local, Some("h2"))
        .insert(&t)
        .await;
    Item::new("running")
        .state(ItemState::Running, AuditStatus::EnProceso)
        .insert(&t)
        .await;
    Item::new("done")
        .state(ItemState::Done, AuditStatus::Completado)
        .insert(&t)
        .await;

    assert_eq!(drain(&t, &reach(ORIGIN, "h1")).await, ["due", "local_here"]);
    // A performer of another origin on another host: its origin's items and its host's files.
    assert_eq!(
        drain(&t, &reach("sftp://etl@elsewhere:22/in", "h2")).await,
        ["local_elsewhere", "other_origin"]
    );
    assert!(drain(&t, &reach(ORIGIN, "h1")).await.is_empty());
}

#[tokio::test]
async fn a_claim_leases_the_item_counts_the_attempt_and_marks_the_audit_row() {
    let t = TestDb::new().await;
    let seeded = Item::new("a").insert(&t).await;
    let mut client = t.client().await;
    let c = attempt::claim(&mut client, "w1", LEASE, &reach(ORIGIN, "h1"), day(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (c.id, c.bitacora_id, c.attempts),
        (seeded.id, seeded.bitacora_id, 1)
    );
    assert_eq!(c.prior_status, AuditStatus::Pendiente);
    assert_eq!(t.item(c.id, "state").await.as_deref(), Some("running"));
    assert_eq!(t.item(c.id, "locked_by").await.as_deref(), Some("w1"));
    assert_eq!(t.item(c.id, "claim_token").await, Some(c.token.to_string()));
    assert!(
        t.holds(c.id, "w.locked_until > now() + interval '290 seconds'")
            .await
    );
    assert_eq!(
        t.audit(c.id, "estatus").await.as_deref(),
        Some("EN_PROCESO")
    );
    assert_eq!(t.audit(c.id, "intentos").await.as_deref(), Some("1"));
    assert_eq!(t.audit(c.id, "worker").await.as_deref(), Some("w1"));
}

#[tokio::test]
async fn the_business_date_is_fixed_at_the_first_claim() {
    let t = TestDb::new().await;
    Item::new("a").insert(&t).await;
    let mut client = t.client().await;
    let here = reach(ORIGIN, "h1");
    let first = attempt::claim(&mut client, "w1", LEASE, &here, day(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.business_date, day(1));
    assert!(
        attempt::retry_later(&mut client, &first, "try again", Duration::ZERO)
            .await
            .unwrap()
    );
    // The next attempt runs on another day: the item keeps the day it was first claimed.
    let second = attempt::claim(&mut client, "w2", LEASE, &here, day(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((second.id, second.attempts), (first.id, 2));
    assert_eq!(second.business_date, day(1));
    assert_eq!(
        t.item(first.id, "business_date").await.as_deref(),
        Some("2026-03-01")
    );
    // Seeded with a date (claimed before): kept too.
    let seeded = Item::new("b").business_date(day(5)).insert(&t).await;
    let third = attempt::claim(&mut client, "w1", LEASE, &here, day(9))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((third.id, third.business_date), (seeded.id, day(5)));
}

/// A claim after an attempt that committed (then stopped before the backup or the delete):
/// the audit row keeps its final status and times; an uncommitted one is in progress again.
#[tokio::test]
async fn a_committed_audit_row_keeps_its_status_at_the_next_claim() {
    let t = TestDb::new().await;
    let mut client = t.client().await;
    let here = reach(ORIGIN, "h1");
    for (status, after) in [
        (AuditStatus::Completado, "COMPLETADO"),
        (AuditStatus::CompletadoConErrores, "COMPLETADO_CON_ERRORES"),
        (AuditStatus::Duplicado, "DUPLICADO"),
        (AuditStatus::FalloLayout, "FALLO_LAYOUT"),
        (AuditStatus::FalloSistema, "EN_PROCESO"),
        (AuditStatus::EnProceso, "EN_PROCESO"),
    ] {
        // Pending again (rescued or tier 4) with the audit row as that attempt left it.
        let seeded = Item::new(status.as_str())
            .state(ItemState::Pending, status)
            .insert(&t)
            .await;
        let inicio = t.audit(seeded.id, "inicio").await;
        let c = attempt::claim(&mut client, "w1", LEASE, &here, day(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((c.id, c.prior_status), (seeded.id, status));
        assert_eq!(c.prior_sha256, t.audit(c.id, "sha256").await, "{status}");
        assert_eq!(
            t.audit(c.id, "estatus").await.as_deref(),
            Some(after),
            "{status}"
        );
        assert_eq!(
            t.audit(c.id, "inicio").await == inicio,
            status.is_final(),
            "{status}"
        );
        assert!(
            queue::finish(&client, &c, shared::types::Final::Done, None)
                .await
                .unwrap()
        );
    }
}

/// `dispatcher reload` fixes the day at enqueue: the claim keeps it.
#[tokio::test]
async fn a_date_fixed_at_enqueue_is_kept_by_the_claim() {
    let t = TestDb::new().await;
    let file = Item::new("reloaded").listed();
    let ids = attempt::enqueue_dated(&t.db, None, &[file], 3, chrono::Utc::now(), Some(day(7)))
        .await
        .unwrap();
    let mut client = t.client().await;
    let c = attempt::claim(&mut client, "w1", LEASE, &reach(ORIGIN, "h1"), day(9))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((vec![c.id], c.business_date), (ids, day(7)));
}

/// The claim, as a performer would plan it now, reads the claimable index in order and
/// stops at its first free item: no Sort of every pending entry.
async fn assert_claim_reads_in_order(t: &TestDb, after: &str) {
    let plan: Vec<String> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {}", queue::CLAIM)))
            .bind("bench:0")
            .bind(LEASE.as_secs_f64())
            .bind(vec![ORIGIN])
            .bind("this-host")
            .bind(day(1))
            .fetch_all(&t.db)
            .await
            .unwrap();
    let plan = plan.join("\n");
    assert!(
        plan.contains("Index Scan using work_items_claimable") && !plan.contains("Sort"),
        "{after}: {plan}"
    );
}

/// A night's items become pending in a queue whose statistics do not know them (a new
/// queue, or last night's, with no item pending), by the listing or by the nightly retry
/// of system failures: the claim still reads the claimable index in order and stops at
/// the first free item. Planned on those statistics it read and sorted every pending
/// entry at every claim (n² reads a night: 515 claims/s for 10,000 items).
#[tokio::test]
async fn a_claim_reads_the_queue_in_order_after_a_night_of_items_arrives() {
    let t = TestDb::new().await;
    let night: Vec<_> = (0..2000)
        .map(|n| Item::new(&format!("night_{n}")).listed())
        .collect();
    attempt::enqueue(&t.db, None, &night, 3, chrono::Utc::now())
        .await
        .unwrap();
    assert_claim_reads_in_order(&t, "listed").await;

    let t = TestDb::new().await;
    let mut at_origin = Vec::new();
    for n in 0..1000 {
        let item =
            Item::new(&format!("failed_{n}")).state(ItemState::Failed, AuditStatus::FalloSistema);
        at_origin.push(item.listed());
        item.insert(&t).await;
    }
    sqlx::query("ANALYZE work_items")
        .execute(&t.db)
        .await
        .unwrap();
    let run = t.dispatch_run().await;
    let (retried, _) = attempt::retry_system_failures(&t.db, run, &at_origin, &[], 2)
        .await
        .unwrap();
    assert_eq!(retried.len(), 1000);
    assert_claim_reads_in_order(&t, "retried").await;
}
