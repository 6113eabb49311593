//! Items follow their origin: compared in one spelling, claimed by any performer whose
//! configuration names the same directory, and taken up by tier 4 at the origin that
//! lists their file now.

use crate::factory::{Item, ORIGIN};
use crate::testdb::TestDb;
use chrono::NaiveDate;
use shared::source::SourceUrl;
use shared::store::attempt;
use shared::types::{AuditStatus, ItemState, Reach};
use std::time::Duration;

fn origin(configured: &str) -> String {
    SourceUrl::try_from(configured.to_string())
        .unwrap()
        .origin_anywhere()
        .url
}

#[tokio::test]
async fn items_enqueued_under_sftp_h_dir_are_claimed_by_a_performer_configured_with_sftp_h_22_dir_slash()
 {
    let t = TestDb::new().await;
    let mut file = Item::new("report_1.txt").listed();
    file.origin.url = origin("sftp://etl@h/dir");
    let ids = attempt::enqueue(&t.db, None, &[file], 3, chrono::Utc::now())
        .await
        .unwrap();
    let reach = Reach {
        origins: vec![origin("sftp://etl@h:22/dir/")],
        host: "h1".into(),
    };
    let claimed = attempt::claim(
        &mut t.client().await,
        "w1",
        Duration::from_secs(300),
        &reach,
        NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
    )
    .await
    .unwrap()
    .expect("claimed");
    assert_eq!(vec![claimed.id], ids);
}

/// Migration 0011 rewrites the origins stored before it (by the code, which always wrote
/// the port, and by migration 5, from the configured text) as the code now writes them.
#[tokio::test]
async fn stored_origins_are_normalised_by_the_database_as_by_the_code() {
    let t = TestDb::new().await;
    for (stored, configured) in [
        ("sftp://etl@h:22/dir/", "sftp://etl@h/dir"),
        ("sftp://etl@h:22/dir", "sftp://etl@h:22/dir/"),
        ("sftp://etl@H:22//dir//", "sftp://etl@h/dir"),
        ("sftp://etl@h/dir", "sftp://etl@h:22/dir"),
        ("sftp://%65tl@h:022/d%69r", "sftp://etl@h/dir"),
        (
            "sftp://etl@h:2222/in/entrada%20diaria/a%C3%B1o/",
            "sftp://etl@h:2222/in/entrada diaria/año",
        ),
        ("sftp://etl@[::1]:2222/", "sftp://etl@[::1]:2222/"),
        ("file:///srv/in/", "file:///srv/in"),
        ("file:///srv//in", "file:///srv/in/"),
    ] {
        let normalised: String = sqlx::query_scalar("SELECT visitas_origen_normalizado($1)")
            .bind(stored)
            .fetch_one(&t.db)
            .await
            .unwrap();
        assert_eq!(normalised, origin(configured), "{stored}");
    }
}

#[tokio::test]
async fn tier_4_binds_a_failed_item_to_the_origin_that_lists_its_file_now() {
    let t = TestDb::new().await;
    let run = t.dispatch_run().await;
    let failed = Item::new("report_1.txt")
        .origin("sftp://etl@old-host:22/in", None)
        .state(ItemState::Failed, AuditStatus::FalloSistema)
        .insert(&t)
        .await;
    let mut listed = Item::new("report_1.txt").listed();
    listed.origin.url = ORIGIN.to_string();
    let (retried, _) = attempt::retry_system_failures(&t.db, run, &[listed], &[], 2)
        .await
        .unwrap();
    assert_eq!(retried, [failed.id]);
    let now: String = sqlx::query_scalar("SELECT origin FROM work_items WHERE id = $1")
        .bind(failed.id)
        .fetch_one(&t.db)
        .await
        .unwrap();
    assert_eq!(now, ORIGIN);
}
