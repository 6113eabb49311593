//! Issue 4: fault injection against real processes. Each scenario runs a real
//! `performer`, injects the fault, lets the system recover, then checks docs/data-contract.md §5's
//! invariants (loaded once, counts consistent, visitors = aggregate, files as §6 says).
//!
//! Precise kill points use the test-only pause hook (`shared::local::fault`): the performer
//! logs "fault hook: pausing" at the point and sleeps; the test then acts.

use crate::helpers::{Origin, PrivateSshd, Running, TestApp, spawn};
use shared::fixtures::{FileSpec, generate, report_name};

/// Short leases so a killed performer's item comes back within seconds.
fn fast_leases(app: &mut TestApp) {
    app.env
        .push(("VISITAS_PERFORMER__LEASE_SECS".into(), "3".into()));
}

fn put_files(app: &TestApp, n: usize, rows: usize) -> usize {
    let mut valid = 0;
    for i in 1..=n {
        let g = generate(&FileSpec {
            rows,
            distinct_emails: 200,
            seed: i as u64 * 31,
            ..Default::default()
        });
        valid += g.valid;
        app.put(&report_name(i), &g.bytes);
    }
    valid
}

/// A performer that pauses `secs` the first time it reaches `point`.
fn performer_paused_at(app: &TestApp, point: &str, secs: u32) -> Running {
    let secs = secs.to_string();
    let paused = app.with_env(&[
        ("VISITAS_FAULT_PAUSE_AT", point),
        ("VISITAS_FAULT_PAUSE_SECS", &secs),
    ]);
    Running::new(paused.spawn_bin(
        "performer",
        &["run", "--workers", "1", "--as-of", "2026-11-24"],
    ))
}

/// After recovery: every file loaded once, the origin empty, the invariants hold.
async fn recovered(app: &TestApp, files: usize, valid: usize, scenario: &str) {
    let audits = app.audit().await;
    assert_eq!(audits.len(), files, "{scenario}");
    assert!(
        audits.iter().all(|a| a.estatus.starts_with("COMPLETADO")),
        "{scenario}: {audits:?}"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM estadisticas").await as usize,
        valid,
        "{scenario}"
    );
    assert_eq!(
        std::fs::read_dir(&app.origin).unwrap().count(),
        0,
        "{scenario}: origin emptied"
    );
    app.check_invariants().await;
    println!(
        "fault scenario `{scenario}`: {files} files moved, {valid} rows loaded once, invariants hold"
    );
}

async fn kill_9_at(point: &str) {
    let mut app = spawn(Origin::Sftp).await;
    fast_leases(&mut app);
    let valid = put_files(&app, 3, 400);
    app.enqueue();
    let mut doomed = performer_paused_at(&app, point, 60);
    doomed.wait_for("fault hook: pausing", 30);
    doomed.kill9();
    // Where it died, nothing is half-done.
    let committed = app
        .count("SELECT count(*) FROM bitacora_control WHERE estatus LIKE 'COMPLETADO%'")
        .await;
    let rows = app.count("SELECT count(*) FROM estadisticas").await;
    match point {
        "after_commit" => {
            assert_eq!(committed, 1, "the load committed before the kill");
            assert_eq!(
                std::fs::read_dir(&app.origin).unwrap().count(),
                3,
                "but nothing was deleted at the origin"
            );
        }
        _ => assert_eq!(
            (committed, rows),
            (0, 0),
            "nothing partial after a kill at {point}"
        ),
    }
    app.perform("2026-11-24");
    assert_eq!(
        app.count("SELECT max(attempts)::bigint FROM work_items")
            .await,
        2,
        "the killed attempt counted"
    );
    recovered(&app, 3, valid, &format!("kill -9 at {point}")).await;
}

#[tokio::test]
async fn kill_9_during_download() {
    kill_9_at("download").await;
}

#[tokio::test]
async fn kill_9_during_the_load_transaction() {
    kill_9_at("load").await;
}

#[tokio::test]
async fn kill_9_between_commit_and_delete() {
    kill_9_at("after_commit").await;
}

#[tokio::test]
async fn sigterm_during_a_load_exits_0_and_the_item_is_retried() {
    let mut app = spawn(Origin::Sftp).await;
    app.env
        .push(("VISITAS_PERFORMER__SHUTDOWN_GRACE_SECS".into(), "1".into()));
    let valid = put_files(&app, 1, 500);
    app.enqueue();
    let mut performer = performer_paused_at(&app, "load", 60);
    performer.wait_for("fault hook: pausing", 30);
    let (status, text) = performer.terminate();
    assert!(status.success(), "exit 0 on SIGTERM: {text}");
    assert!(text.contains("item abandoned"), "{text}");
    assert_eq!(
        app.count("SELECT count(*) FROM estadisticas").await,
        0,
        "nothing partial"
    );
    let back = app
        .count("SELECT count(*) FROM work_items WHERE state = 'pending' AND attempts = 0")
        .await;
    assert_eq!(back, 1, "handed back without using an attempt");
    assert_eq!(app.audit_of("report_1.txt").await.estatus, "PENDIENTE");
    app.perform("2026-11-24");
    recovered(&app, 1, valid, "SIGTERM during a load").await;
}

#[tokio::test]
async fn database_connections_terminated_in_the_middle_of_a_batch() {
    let app = spawn(Origin::Sftp).await;
    let valid = put_files(&app, 12, 3000);
    app.enqueue();
    let performer = Running::new(app.spawn_bin(
        "performer",
        &["run", "--once", "--workers", "2", "--as-of", "2026-11-24"],
    ));
    let admin = sqlx::PgPool::connect(&app.db_url()).await.unwrap();
    let db = app.db_name();
    let mut terminated = 0;
    for _ in 0..8 {
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = $1 AND pid <> pg_backend_pid()) t",
        )
        .bind(&db)
        .fetch_one(&admin)
        .await
        .unwrap();
        terminated += n;
    }
    let (status, text) = performer.wait();
    assert!(status.success(), "{text}");
    assert!(terminated > 0, "connections were terminated");
    let app = app.reconnect().await;
    recovered(
        &app,
        12,
        valid,
        &format!("{terminated} database connections terminated"),
    )
    .await;
}

#[tokio::test]
async fn sshd_stopped_during_a_download_then_started_again() {
    let mut app = spawn(Origin::Sftp).await;
    let mut sshd = PrivateSshd::new(&app.home);
    sshd.start();
    app.env.extend(sshd.env(&app.origin));
    let valid = put_files(&app, 2, 300);
    app.enqueue();
    let mut performer = performer_paused_at(&app, "download", 3);
    performer.wait_for("fault hook: pausing", 30);
    sshd.stop();
    performer.wait_for("the item will be retried", 60);
    sshd.start();
    // The paused attempt failed; the retries (tiers 1 and 2) finish the work.
    app.wait_until_done(2, &performer).await;
    performer.terminate();
    recovered(&app, 2, valid, "sshd stopped during a download").await;
}

#[tokio::test]
async fn sshd_down_longer_than_all_retries_is_fallo_sistema_then_a_later_run_succeeds() {
    let mut app = spawn(Origin::Sftp).await;
    let mut sshd = PrivateSshd::new(&app.home);
    sshd.start();
    app.env.extend(sshd.env(&app.origin));
    let valid = put_files(&app, 1, 300);
    app.enqueue();
    sshd.stop();
    let out = app.perform("2026-11-24");
    let a = app.audit_of("report_1.txt").await;
    assert_eq!(a.estatus, "FALLO_SISTEMA", "{out}");
    assert_eq!(
        app.count("SELECT attempts::bigint FROM work_items").await,
        3,
        "every attempt was used"
    );
    assert_eq!(
        out.matches("the item will be retried").count(),
        2,
        "two tier-2 retries, then the end"
    );
    assert!(app.at_origin("report_1.txt"));
    sshd.start();
    app.enqueue(); // the next night: tier 4
    app.perform("2026-11-24");
    recovered(
        &app,
        1,
        valid,
        "sshd down longer than all retries, then back",
    )
    .await;
}

#[tokio::test]
async fn a_file_deleted_at_the_origin_before_its_download_fails_once_clearly() {
    let app = spawn(Origin::Sftp).await;
    put_files(&app, 1, 50);
    app.enqueue();
    std::fs::remove_file(app.origin.join("report_1.txt")).unwrap();
    let out = app.perform("2026-11-24");
    let a = app.audit_of("report_1.txt").await;
    assert_eq!(a.estatus, "FALLO_SISTEMA");
    assert!(
        a.mensaje
            .as_deref()
            .unwrap_or("")
            .contains("not found at the origin"),
        "{:?}",
        a.mensaje
    );
    assert_eq!(
        app.count("SELECT attempts::bigint FROM work_items").await,
        1,
        "no retry storm"
    );
    assert_eq!(
        out.matches("retrying").count() + out.matches("will be retried").count(),
        0,
        "{out}"
    );
    println!(
        "fault scenario `file deleted before download`: 0 files moved, clear FALLO_SISTEMA, 1 attempt"
    );
}

/// A tmpfs mounted for the test's lifetime.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_full_staging_disk_is_fallo_sistema_with_nothing_partial() {
    let app = spawn(Origin::Sftp).await;
    let staging = app.root.join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&staging)
        .status()
        .unwrap();
    assert!(mounted.success(), "mounting a small tmpfs for staging");
    let _mount = Mount(staging.clone());
    let big = generate(&FileSpec {
        rows: 6000,
        ..Default::default()
    });
    assert!(big.bytes.len() > 512 * 1024);
    app.put("report_1.txt", &big.bytes);
    app.enqueue();
    app.perform("2026-11-24");
    let a = app.audit_of("report_1.txt").await;
    assert_eq!(a.estatus, "FALLO_SISTEMA");
    assert!(
        a.mensaje.as_deref().unwrap_or("").contains("No space left"),
        "{:?}",
        a.mensaje
    );
    assert_eq!(
        app.count("SELECT attempts::bigint FROM work_items").await,
        3
    );
    assert_eq!(
        app.count("SELECT count(*) FROM estadisticas").await,
        0,
        "nothing partial"
    );
    assert_eq!(
        std::fs::read_dir(&staging).unwrap().count(),
        0,
        "no partial download left"
    );
    assert_eq!(
        std::fs::read_dir(app.root.join("quarantine"))
            .unwrap()
            .count(),
        0,
        "and none quarantined"
    );
    assert!(app.at_origin("report_1.txt"), "the origin keeps the file");
    app.check_invariants().await;
    println!(
        "fault scenario `staging disk full`: 0 files moved, FALLO_SISTEMA after 3 attempts, nothing partial"
    );
}
