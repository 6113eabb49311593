//! Issue 15, "Whole or nothing", and issue 11's lost acknowledgements: against a live
//! sender and a stressed or frozen performer, on real processes (real sshd, real
//! PostgreSQL). Only what was loaded is ever deleted, and an attempt that lost its item
//! changes nothing. Every scenario ends with the invariants of docs/data-contract.md §5 checked.

use crate::helpers::{Origin, PrivateSshd, Running, TestApp, spawn};
use crate::operators::webhook_receiver;
use shared::fixtures::{FileSpec, generate};
use std::time::Duration;

fn file(rows: usize, seed: u64) -> shared::fixtures::Generated {
    generate(&FileSpec {
        rows,
        distinct_emails: 300,
        seed,
        ..Default::default()
    })
}

/// A performer (service mode, one worker) with extra environment.
pub(crate) fn performer(app: &TestApp, env: &[(&str, &str)], as_of: &str) -> (Running, u32) {
    let mut with = app.clone_handles();
    with.env
        .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let child = with.spawn_bin("performer", &["run", "--workers", "1", "--as-of", as_of]);
    let pid = child.id();
    (Running::new(child), pid)
}

/// The file an item took at the origin, under its in-flight name.
pub(crate) fn in_flight_file(app: &TestApp) -> std::path::PathBuf {
    std::fs::read_dir(&app.origin)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            shared::source::parse_in_flight(&p.file_name().unwrap().to_string_lossy()).is_some()
        })
        .expect("the file was taken under its in-flight name before it was read")
}

fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn wait_for_sql(app: &TestApp, sql: &str, want: i64, secs: u64) {
    for _ in 0..secs * 10 {
        if app.count(sql).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{sql} never reached {want}");
}

#[tokio::test]
async fn a_file_replaced_at_the_origin_after_its_download_is_loaded_by_the_next_night() {
    let app = spawn(Origin::Sftp).await;
    let (old, new) = (file(3000, 1), file(2000, 2));
    app.put("report_1.txt", &old.bytes);
    app.enqueue();
    let (mut first, _) = performer(
        &app,
        &[
            ("VISITAS_FAULT_PAUSE_AT", "downloaded"),
            ("VISITAS_FAULT_PAUSE_SECS", "3"),
        ],
        "2026-11-24",
    );
    first.wait_for("fault hook: pausing", 30);
    // The sender re-uploads the same name with new content while the old one loads.
    app.put("report_1.txt", &new.bytes);
    app.wait_until_done(1, &first).await;
    first.terminate();
    assert_eq!(
        std::fs::read(app.origin.join("report_1.txt")).unwrap(),
        new.bytes,
        "the new content is untouched at the origin"
    );
    // The next night takes it as a new file.
    app.enqueue();
    app.perform("2026-11-25");
    let audits = app.audit().await;
    let shas: Vec<_> = audits.iter().map(|a| a.sha256.clone().unwrap()).collect();
    assert_eq!(audits.len(), 2, "{audits:?}");
    assert_eq!(
        shas,
        vec![sha(&old.bytes), sha(&new.bytes)],
        "both contents loaded, once each"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM estadisticas").await as usize,
        old.valid + new.valid
    );
    assert!(!app.at_origin("report_1.txt"), "nothing left, nothing lost");
    app.check_invariants().await;
}

#[tokio::test]
async fn a_file_appended_after_the_listing_is_loaded_whole_never_a_prefix() {
    let app = spawn(Origin::Sftp).await;
    let whole = file(1200, 3);
    let cut = whole
        .bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(600)
        .unwrap()
        .0
        + 1;
    app.put("report_1.txt", &whole.bytes[..cut]);
    app.enqueue(); // listed with the first 600 records
    // The writer goes on after the listing.
    app.put("report_1.txt", &whole.bytes);
    let out = app.perform("2026-11-24");
    assert!(out.contains("changed after it was listed"), "{out}");
    let a = app.audit_of("report_1.txt").await;
    assert!(a.estatus.starts_with("COMPLETADO"), "{a:?}");
    assert_eq!(a.sha256.as_deref(), Some(sha(&whole.bytes).as_str()));
    assert_eq!(
        a.totales,
        Some(1200),
        "the whole final file, never the listed prefix"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM estadisticas").await as usize,
        whole.valid
    );
    app.check_invariants().await;
}

#[tokio::test]
async fn a_file_still_written_through_an_open_handle_while_read_is_read_again_whole() {
    let app = spawn(Origin::Sftp).await;
    let whole = file(1000, 4);
    let half = whole.bytes.len() / 2;
    app.put("report_1.txt", &whole.bytes[..half]);
    app.enqueue();
    let (mut performer, _) = performer(
        &app,
        &[
            ("VISITAS_FAULT_PAUSE_AT", "download"),
            ("VISITAS_FAULT_PAUSE_SECS", "2"),
        ],
        "2026-11-24",
    );
    performer.wait_for("fault hook: pausing", 30);
    // A writer that still holds the file open appends to it under its new name.
    let taken = in_flight_file(&app);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&taken)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &whole.bytes[half..]))
        .unwrap();
    app.wait_until_done(1, &performer).await;
    let (_, text) = performer.terminate();
    assert!(text.contains("changed while it was read"), "{text}");
    let a = app.audit_of("report_1.txt").await;
    assert_eq!(a.sha256.as_deref(), Some(sha(&whole.bytes).as_str()));
    assert_eq!(
        app.count("SELECT count(*) FROM estadisticas").await as usize,
        whole.valid
    );
    assert!(!app.at_origin("report_1.txt"));
    app.check_invariants().await;
}

#[tokio::test]
async fn a_performer_frozen_past_its_lease_can_change_nothing_and_the_rescue_loads_once() {
    frozen_past_the_lease(false).await;
}

/// The same, when the frozen attempt reaches its COMMIT before its heartbeat noticed:
/// the database itself refuses the write of a stale token.
#[tokio::test]
async fn a_stale_attempt_whose_heartbeat_has_not_noticed_is_refused_by_the_database() {
    frozen_past_the_lease(true).await;
}

async fn frozen_past_the_lease(deaf_heartbeat: bool) {
    let mut app = spawn(Origin::Sftp).await;
    let (url, alerts) = webhook_receiver();
    app.env.push(("VISITAS_ALERTS__WEBHOOK_URL".into(), url));
    app.env
        .push(("VISITAS_PERFORMER__LEASE_SECS".into(), "3".into()));
    let x = file(2000, 5);
    app.put("report_1.txt", &x.bytes);
    app.enqueue();
    // Frozen mid-load (rows copied, not committed): what a VM pause or a swap storm does.
    let mut env = vec![
        ("VISITAS_FAULT_PAUSE_AT", "load"),
        ("VISITAS_FAULT_PAUSE_SECS", "1"),
    ];
    if deaf_heartbeat {
        env.push(("VISITAS_FAULT_DEAF_HEARTBEAT", "1"));
    }
    let (mut stale, pid) = performer(&app, &env, "2026-11-24");
    stale.wait_for("fault hook: pausing", 30);
    signal(pid, "-STOP");
    tokio::time::sleep(Duration::from_secs(5)).await; // past the lease
    let (mut rescuer, _) = performer(&app, &[], "2026-11-24");
    rescuer.wait_for("took back items whose performer stopped answering", 30);
    rescuer.wait_for("taken at the origin", 30);
    // The rescue waits on the frozen load's content lock; resume the frozen one.
    signal(pid, "-CONT");
    app.wait_until_done(1, &rescuer).await;
    tokio::time::sleep(Duration::from_secs(2)).await; // let the stale attempt do its worst
    let (_, stale_text) = stale.terminate();
    let (_, rescue_text) = rescuer.terminate();
    assert!(stale_text.contains("lease lost"), "{stale_text}");
    assert!(
        !stale_text.contains("load committed"),
        "the stale attempt committed nothing: {stale_text}"
    );

    assert!(
        !rescue_text.contains("step failed") && !rescue_text.contains("will be retried"),
        "the rescue wasted no retry: {rescue_text}"
    );
    let a = app.audit_of("report_1.txt").await;
    assert!(a.estatus.starts_with("COMPLETADO"), "{a:?}");
    assert_eq!(
        app.count("SELECT attempts::bigint FROM work_items").await,
        2
    );
    assert_eq!(
        app.count("SELECT count(*) FROM estadisticas").await as usize,
        x.valid,
        "loaded exactly once"
    );
    assert!(
        alerts.recv_timeout(Duration::from_secs(1)).is_err(),
        "no alert for a file that loaded fine"
    );
    assert!(!app.at_origin("report_1.txt"));
    assert_eq!(
        std::fs::read_dir(app.root.join("quarantine"))
            .unwrap()
            .count(),
        0
    );
    app.check_invariants().await;
}

#[tokio::test]
async fn more_workers_than_connections_never_starve_a_lease() {
    let mut app = spawn(Origin::Sftp).await;
    app.env
        .push(("VISITAS_PERFORMER__LEASE_SECS".into(), "2".into()));
    app.env
        .push(("VISITAS_DATABASE__POOL_SIZE".into(), "2".into()));
    let mut valid = 0;
    for i in 1..=10 {
        let g = file(3000, 100 + i);
        valid += g.valid;
        app.put(&format!("report_{i}.txt"), &g.bytes);
    }
    app.enqueue();
    let out = app.run_ok(
        "performer",
        &["run", "--once", "--workers", "6", "--as-of", "2026-11-24"],
    );
    assert!(!out.contains("lease lost"), "{out}");
    let audits = app.audit().await;
    assert_eq!(audits.len(), 10);
    assert!(
        audits.iter().all(|a| a.estatus.starts_with("COMPLETADO")),
        "{audits:?}"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM estadisticas").await as usize,
        valid
    );
    app.check_invariants().await;
}

#[tokio::test]
async fn a_validator_that_panics_mid_file_commits_nothing_and_the_load_is_retried() {
    let mut app = spawn(Origin::Sftp).await;
    app.env
        .push(("VISITAS_FAULT_PANIC_AT".into(), "validate".into()));
    let x = file(500, 6);
    app.put("report_1.txt", &x.bytes);
    app.enqueue();
    let out = app.perform("2026-11-24");
    assert!(out.contains("validator stopped before the end"), "{out}");
    let a = app.audit_of("report_1.txt").await;
    assert!(a.estatus.starts_with("COMPLETADO"), "{a:?}");
    assert_eq!(
        app.count("SELECT count(*) FROM estadisticas").await as usize,
        x.valid,
        "nothing of the panicked try, everything of the retry"
    );
    app.check_invariants().await;
}

#[tokio::test]
async fn a_lost_commit_acknowledgement_is_recognised_and_the_item_finishes() {
    let mut app = spawn(Origin::Sftp).await;
    let (url, alerts) = webhook_receiver();
    app.env.push(("VISITAS_ALERTS__WEBHOOK_URL".into(), url));
    app.env
        .push(("VISITAS_FAULT_LOSE_COMMIT_ACK".into(), "load".into()));
    let x = file(800, 7);
    app.put("report_1.txt", &x.bytes);
    app.enqueue();
    let out = app.perform("2026-11-24");
    assert!(out.contains("acknowledgement was lost"), "{out}");
    let a = app.audit_of("report_1.txt").await;
    assert!(a.estatus.starts_with("COMPLETADO"), "{a:?}");
    assert_eq!(
        app.count("SELECT count(*) FROM work_items WHERE state = 'done'")
            .await,
        1
    );
    assert!(alerts.recv_timeout(Duration::from_secs(1)).is_err());
    assert!(!app.at_origin("report_1.txt"));
    app.check_invariants().await;
}

#[tokio::test]
async fn sftp_down_past_every_attempt_after_a_commit_keeps_the_item_in_sight_until_done() {
    let mut app = spawn(Origin::Sftp).await;
    let mut sshd = PrivateSshd::new(&app.home);
    sshd.start();
    app.env.extend(sshd.env(&app.origin));
    let x = file(400, 8);
    app.put("report_1.txt", &x.bytes);
    app.enqueue();
    let (mut performer, _) = performer(
        &app,
        &[
            ("VISITAS_FAULT_PAUSE_AT", "after_commit"),
            ("VISITAS_FAULT_PAUSE_SECS", "2"),
        ],
        "2026-11-24",
    );
    performer.wait_for("fault hook: pausing", 30);
    sshd.stop();
    // Every attempt fails at the origin; the committed item is never made a failure.
    wait_for_sql(
        &app,
        "SELECT count(*) FROM work_items WHERE attempts > max_attempts",
        1,
        60,
    )
    .await;
    let a = app.audit_of("report_1.txt").await;
    assert!(a.estatus.starts_with("COMPLETADO"), "{a:?}");
    assert_eq!(
        app.count("SELECT count(*) FROM work_items WHERE state = 'failed'")
            .await,
        0
    );
    let status = app.run_ok("dispatcher", &["status"]);
    assert!(
        status.contains("left to do: backup and delete at the origin"),
        "{status}"
    );
    let quarantine = app.run_ok("dispatcher", &["quarantine", "list"]);
    assert!(quarantine.contains("report_1.txt"), "{quarantine}");
    assert!(quarantine.contains("left to do"), "{quarantine}");
    sshd.start();
    app.wait_until_done(1, &performer).await;
    performer.terminate();
    assert!(!app.at_origin("report_1.txt"));
    assert!(
        std::path::Path::new(&app.audit_of("report_1.txt").await.ruta_backup.unwrap()).exists()
    );
    app.check_invariants().await;
}

#[tokio::test]
async fn a_partial_staged_copy_is_never_quarantined_nor_taken_for_the_file() {
    let mut app = spawn(Origin::Sftp).await;
    app.env
        .push(("VISITAS_PERFORMER__LEASE_SECS".into(), "3".into()));
    let x = file(600, 9);
    app.put("report_1.txt", &x.bytes);
    app.enqueue();
    let (mut doomed, _) = performer(
        &app,
        &[
            ("VISITAS_FAULT_PAUSE_AT", "download"),
            ("VISITAS_FAULT_PAUSE_SECS", "60"),
        ],
        "2026-11-24",
    );
    doomed.wait_for("fault hook: pausing", 30);
    doomed.kill9();
    let staged = app.root.join("staging");
    assert_eq!(
        std::fs::read_dir(&staged).unwrap().count(),
        1,
        "a partial copy"
    );
    app.run_ok("dispatcher", &["close", "--as-of", "2026-11-24"]);
    assert_eq!(
        std::fs::read_dir(app.root.join("quarantine"))
            .unwrap()
            .count(),
        0,
        "a partial copy is never quarantined"
    );
    tokio::time::sleep(Duration::from_secs(4)).await; // the lease expires
    app.perform("2026-11-24");
    app.run_ok("dispatcher", &["close", "--as-of", "2026-11-24"]);
    assert_eq!(std::fs::read_dir(&staged).unwrap().count(), 0);
    let a = app.audit_of("report_1.txt").await;
    assert_eq!(a.sha256.as_deref(), Some(sha(&x.bytes).as_str()));
    assert_eq!(
        app.count("SELECT count(*) FROM estadisticas").await as usize,
        x.valid
    );
    app.check_invariants().await;
}

#[tokio::test]
async fn the_business_date_is_fixed_at_the_first_claim_across_midnight() {
    let mut app = spawn(Origin::Sftp).await;
    app.env
        .push(("VISITAS_PERFORMER__LEASE_SECS".into(), "3".into()));
    let x = file(300, 10);
    app.put("report_1.txt", &x.bytes);
    app.enqueue();
    // Claimed on the 24th, committed, then the performer dies before the backup...
    let (mut before_midnight, _) = performer(
        &app,
        &[
            ("VISITAS_FAULT_PAUSE_AT", "after_commit"),
            ("VISITAS_FAULT_PAUSE_SECS", "60"),
        ],
        "2026-11-24",
    );
    before_midnight.wait_for("fault hook: pausing", 30);
    before_midnight.kill9();
    tokio::time::sleep(Duration::from_secs(4)).await;
    // ... and the attempt that finishes it runs on the 25th.
    app.perform("2026-11-25");
    let day: Option<chrono::NaiveDate> =
        sqlx::query_scalar("SELECT fecha_negocio FROM bitacora_control")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(day, chrono::NaiveDate::from_ymd_opt(2026, 11, 24));
    let a = app.audit_of("report_1.txt").await;
    assert!(
        a.ruta_backup.as_deref().unwrap().contains("/20261124/"),
        "backed up with its own day: {a:?}"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM visitantes WHERE contadores_al <> '2026-11-24'")
            .await,
        0,
        "counters as of the item's day"
    );
    app.check_invariants().await;
}

fn sha(bytes: &[u8]) -> String {
    use sha2::Digest;
    shared::local::hash::to_hex(&sha2::Sha256::digest(bytes))
}

#[tokio::test]
async fn a_slow_load_records_its_real_duration() {
    let mut app = spawn(Origin::Local).await;
    app.env
        .push(("VISITAS_FAULT_PAUSE_AT".into(), "load".into()));
    app.env
        .push(("VISITAS_FAULT_PAUSE_SECS".into(), "3".into()));
    app.put("report_1.txt", &file(200, 11).bytes);
    app.enqueue();
    let started = std::time::Instant::now();
    app.perform("2026-11-24");
    let wall_ms = started.elapsed().as_millis() as i64;
    let (duration_ms, span_ms): (i64, f64) = sqlx::query_as(
        "SELECT duracion_ms, extract(epoch FROM fin - inicio)::float8 * 1000 FROM bitacora_control",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(
        (3000..=wall_ms).contains(&duration_ms),
        "the 3 s inside the load transaction are counted: {duration_ms} ms of {wall_ms} ms"
    );
    assert!(
        (span_ms - duration_ms as f64).abs() < 5.0,
        "fin - inicio is the same duration: {span_ms} vs {duration_ms}"
    );
}

#[tokio::test]
async fn a_reused_name_with_new_content_of_the_same_size_and_mtime_is_loaded() {
    let app = spawn(Origin::Sftp).await;
    let first = file(300, 12);
    // Same length, other content: the sender re-sends a corrected file, mtime preserved
    // (`sftp put -p`, `rsync -t`).
    let mut second = first.bytes.clone();
    let at = second.len() - 40;
    second[at..at + 5].copy_from_slice(b"99999");
    let put_with_mtime = |bytes: &[u8]| {
        let path = app.origin.join("report_1.txt");
        std::fs::write(&path, bytes).unwrap();
        let mtime = std::time::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    };
    put_with_mtime(&first.bytes);
    app.enqueue();
    app.perform("2026-11-24");
    put_with_mtime(&second);
    app.enqueue();
    app.perform("2026-11-25");
    let audits = app.audit().await;
    assert_eq!(
        audits.len(),
        2,
        "the new content was not hidden: {audits:?}"
    );
    assert_eq!(audits[1].sha256.as_deref(), Some(sha(&second).as_str()));
    assert!(audits[1].estatus.starts_with("COMPLETADO"), "{audits:?}");
    assert!(!app.at_origin("report_1.txt"));
    app.check_invariants().await;
}

#[tokio::test]
async fn a_file_left_under_an_in_flight_name_is_found_again_by_the_dispatcher() {
    let app = spawn(Origin::Sftp).await;
    // As left by an attempt that took the file and whose item then ended elsewhere
    // (here: an item this database never had).
    let x = file(250, 13);
    app.put(".visitas-inflight-999-report_9.txt", &x.bytes);
    let out = app.enqueue();
    assert!(out.contains("1 enqueued"), "{out}");
    app.perform("2026-11-24");
    let a = app.audit_of("report_9.txt").await;
    assert!(a.estatus.starts_with("COMPLETADO"), "{a:?}");
    assert_eq!(a.sha256.as_deref(), Some(sha(&x.bytes).as_str()));
    assert!(!app.at_origin("report_9.txt"), "nothing left at the origin");
    app.check_invariants().await;
}

#[tokio::test]
async fn a_file_written_to_after_its_load_is_backed_up_as_loaded_and_set_aside_whole() {
    let mut app = spawn(Origin::Sftp).await;
    app.env
        .push(("VISITAS_PERFORMER__LEASE_SECS".into(), "3".into()));
    let whole = file(800, 14);
    let half = whole.bytes.len() / 2;
    let cut = half
        + whole.bytes[half..]
            .iter()
            .position(|b| *b == b'\n')
            .unwrap()
        + 1;
    app.put("report_1.txt", &whole.bytes[..cut]);
    app.enqueue();
    let (mut loaded, _) = performer(
        &app,
        &[
            ("VISITAS_FAULT_PAUSE_AT", "after_commit"),
            ("VISITAS_FAULT_PAUSE_SECS", "60"),
        ],
        "2026-11-24",
    );
    loaded.wait_for("fault hook: pausing", 30);
    loaded.kill9();
    // A sender still holding the file open writes the rest after the load committed.
    let taken = in_flight_file(&app);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&taken)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &whole.bytes[cut..]))
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await; // the lease expires
    app.perform("2026-11-24");
    let a = app.audit_of("report_1.txt").await;
    assert_eq!(a.sha256.as_deref(), Some(sha(&whole.bytes[..cut]).as_str()));
    assert_eq!(
        std::fs::read(a.ruta_backup.as_deref().unwrap()).unwrap(),
        &whole.bytes[..cut],
        "the backup is what was loaded"
    );
    assert!(
        a.mensaje
            .as_deref()
            .unwrap_or("")
            .contains("changed at the origin after it was loaded"),
        "{a:?}"
    );
    let aside: Vec<_> = std::fs::read_dir(&app.origin)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(
        aside[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".visitas-changed-")
    );
    assert_eq!(
        std::fs::read(&aside[0]).unwrap(),
        whole.bytes,
        "nothing lost"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM work_items WHERE state = 'done'")
            .await,
        1
    );
    app.check_invariants().await;
}
