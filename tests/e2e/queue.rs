//! The queue: concurrent performers process every file exactly once; migrations are idempotent.

use crate::helpers::{Origin, spawn};
use shared::fixtures::{FileSpec, generate, report_name};

#[tokio::test]
async fn two_performers_on_fifty_files_process_each_exactly_once() {
    let app = spawn(Origin::Sftp).await;
    let mut expected_valid = 0;
    for n in 1..=50 {
        let g = generate(&FileSpec {
            rows: 120,
            distinct_emails: 80,
            seed: n,
            ..Default::default()
        });
        expected_valid += g.valid as i64;
        app.put(&report_name(n as usize), &g.bytes);
    }
    app.enqueue();
    let spawn_one = || {
        app.spawn_bin(
            "performer",
            &["run", "--once", "--workers", "2", "--as-of", "2026-11-24"],
        )
    };
    let (a, b) = (spawn_one(), spawn_one());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success());

    let audits = app.audit().await;
    assert_eq!(audits.len(), 50);
    assert!(
        audits.iter().all(|x| x.estatus.starts_with("COMPLETADO")),
        "{audits:?}"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM work_items WHERE state = 'done' AND attempts = 1")
            .await,
        50
    );
    assert_eq!(
        app.count("SELECT count(*) FROM estadisticas").await,
        expected_valid
    );
    let workers = app
        .count("SELECT count(DISTINCT split_part(worker, ':', 2)) FROM bitacora_control")
        .await;
    assert_eq!(workers, 2, "both performers took part");
    assert_eq!(
        std::fs::read_dir(&app.origin).unwrap().count(),
        0,
        "the origin is empty"
    );
    app.check_invariants().await;
}

#[tokio::test]
async fn migrate_twice_changes_nothing() {
    let app = spawn(Origin::Local).await;
    let schema = "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public'";
    let before = app.count(schema).await;
    app.run_ok("dispatcher", &["migrate"]);
    app.run_ok("dispatcher", &["migrate"]);
    assert_eq!(app.count(schema).await, before);
    let migrations = shared::store::connect::MIGRATOR.iter().count() as i64;
    assert_eq!(
        app.count("SELECT count(*) FROM _sqlx_migrations WHERE success")
            .await,
        migrations
    );
}
