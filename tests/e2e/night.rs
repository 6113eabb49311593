//! Issue 3: the nightly dispatcher — complete files only, once, the day's zip, tier 4, retention.

use crate::helpers::{Origin, TestApp, spawn, terminate, testbed};
use sha2::{Digest, Sha256};
use shared::fixtures::{FileSpec, generate, report_name};
use std::io::Read;
use std::time::Duration;

async fn items(app: &TestApp) -> i64 {
    app.count("SELECT count(*) FROM work_items").await
}

#[tokio::test]
async fn a_file_still_being_written_is_enqueued_only_once_complete() {
    let mut app = spawn(Origin::Sftp).await;
    let g = generate(&FileSpec {
        rows: 100,
        ..Default::default()
    });
    // Our clock decides, never the server's (issue 21): a file whose mtime is an hour
    // ahead of ours (a server clock running fast) is complete once this dispatcher saw it
    // unchanged for `min_file_age_secs`, and not before.
    app.env = vec![
        ("VISITAS_SOURCE__MIN_FILE_AGE_SECS".into(), "2".into()),
        ("VISITAS_SOURCE__STABILITY_WINDOW_SECS".into(), "1".into()),
    ];
    let path = app.origin.join("report_1.txt");
    std::fs::write(&path, &g.bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(std::time::SystemTime::now() + Duration::from_secs(3600))
        .unwrap();
    let watched = std::time::Instant::now();
    app.enqueue();
    assert!(
        watched.elapsed() >= Duration::from_secs(2),
        "watched for 2 s"
    );
    assert_eq!(items(&app).await, 1);
    assert_eq!(
        app.count("SELECT files_incomplete::bigint FROM dispatch_runs ORDER BY id DESC LIMIT 1")
            .await,
        0
    );

    // Growing while the dispatcher compares its listings.
    app.env = vec![
        ("VISITAS_SOURCE__MIN_FILE_AGE_SECS".into(), "0".into()),
        ("VISITAS_SOURCE__STABILITY_WINDOW_SECS".into(), "2".into()),
    ];
    app.put("report_2.txt", &g.bytes[..100]);
    let mut dispatcher = app.spawn_bin("dispatcher", &["run", "--no-wait"]);
    let mut written = 100;
    while dispatcher.try_wait().unwrap().is_none() {
        // Still being uploaded: a chunk every 200 ms.
        written = (written + 200).min(g.bytes.len());
        std::fs::write(app.origin.join("report_2.txt"), &g.bytes[..written]).unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(dispatcher.wait().unwrap().success());
    assert_eq!(items(&app).await, 1, "a growing file is not enqueued");

    // Later, both are complete: a later run takes them.
    app.env.clear();
    app.put("report_1.txt", &g.bytes);
    app.put("report_2.txt", &g.bytes);
    app.enqueue();
    let names: Vec<String> =
        sqlx::query_scalar("SELECT file_name FROM work_items ORDER BY file_name")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(names, ["report_1.txt", "report_2.txt"]);
    assert_eq!(items(&app).await, 2);
}

#[tokio::test]
async fn two_simultaneous_runs_enqueue_every_file_once() {
    let mut app = spawn(Origin::Sftp).await;
    for n in 1..=20 {
        app.put(
            &report_name(n),
            &generate(&FileSpec {
                rows: 10,
                seed: n as u64,
                ..Default::default()
            })
            .bytes,
        );
    }
    // A window long enough that the two runs overlap.
    app.env = vec![("VISITAS_SOURCE__STABILITY_WINDOW_SECS".into(), "3".into())];
    let a = app.spawn_bin("dispatcher", &["run", "--no-wait"]);
    let b = app.spawn_bin("dispatcher", &["run", "--no-wait"]);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&a.stdout),
        String::from_utf8_lossy(&b.stdout)
    );
    assert!(
        said.contains("another dispatcher run is in progress"),
        "{said}"
    );
    assert_eq!(items(&app).await, 20);
    assert_eq!(
        app.count("SELECT count(DISTINCT source_path) FROM work_items")
            .await,
        20
    );
    assert_eq!(app.count("SELECT count(*) FROM bitacora_control").await, 20);
}

/// Entry name → SHA-256 of its bytes.
fn zip_hashes(path: &std::path::Path) -> Vec<(String, String)> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out: Vec<(String, String)> = (0..zip.len())
        .map(|i| {
            let mut entry = zip.by_index(i).unwrap();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            let hex = shared::local::hash::to_hex(&Sha256::digest(&bytes));
            (entry.name().unwrap().to_string(), hex)
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_full_night_loads_zips_and_summarises_the_day() {
    let app = spawn(Origin::Sftp).await;
    for n in 1..=24 {
        let spec = FileSpec {
            rows: 150,
            distinct_emails: 100,
            seed: n as u64,
            ..Default::default()
        };
        app.put(&report_name(n), &generate(&spec).bytes);
    }
    let bad = generate(&FileSpec {
        rows: 20,
        seed: 99,
        ..Default::default()
    })
    .bytes;
    let bad = String::from_utf8(bad).unwrap().replacen("Baja", "Bajas", 1);
    app.put("report_25.txt", bad.as_bytes());
    app.put("report_26.txt", b"");
    app.put(
        "report_27.txt",
        &generate(&FileSpec {
            rows: 150,
            distinct_emails: 100,
            seed: 3,
            ..Default::default()
        })
        .bytes,
    );
    app.put("notes.txt", b"not a visits file");

    let performer = app.spawn_performer("2026-11-24");
    let out = app.run("dispatcher", &["run", "--as-of", "2026-11-24"]);
    let (status, _) = terminate(performer);
    assert!(status.success(), "performer exits 0 on SIGTERM");
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(printed.contains("Summary of 2026-11-24"), "{printed}");
    assert!(printed.contains("28 listed, 27 enqueued"), "{printed}");

    let statuses = app
        .count("SELECT count(*) FROM bitacora_control WHERE estatus LIKE 'COMPLETADO%'")
        .await;
    assert_eq!(statuses, 24);
    assert_eq!(app.audit_of("report_25.txt").await.estatus, "FALLO_LAYOUT");
    assert_eq!(app.audit_of("report_26.txt").await.estatus, "FALLO_LAYOUT");
    // report_27 holds report_3's bytes: whichever is loaded second is the duplicate.
    let mut pair = vec![
        app.audit_of("report_3.txt").await.estatus,
        app.audit_of("report_27.txt").await.estatus,
    ];
    pair.sort();
    assert_eq!(pair, ["COMPLETADO_CON_ERRORES", "DUPLICADO"]);
    for line in ["COMPLETADO_CON_ERRORES", "DUPLICADO", "FALLO_LAYOUT"] {
        assert!(
            printed.lines().any(|l| l.starts_with(line)),
            "{line} in {printed}"
        );
    }
    assert!(
        app.at_origin("notes.txt"),
        "files outside the pattern are left alone"
    );

    // The zip holds exactly the day's loaded files, byte-identical to what was loaded.
    let zip = app.root.join("backup/backup_20261124.zip");
    let mut expected: Vec<(String, String)> = app
        .audit()
        .await
        .into_iter()
        .filter(|a| a.estatus.starts_with("COMPLETADO") || a.estatus == "DUPLICADO")
        .map(|a| {
            assert_eq!(
                a.ruta_backup.as_deref(),
                Some(format!("{}#{}-{}", zip.display(), a.id, a.archivo).as_str())
            );
            (format!("{}-{}", a.id, a.archivo), a.sha256.unwrap())
        })
        .collect();
    expected.sort();
    assert_eq!(zip_hashes(&zip), expected);
    assert!(
        !app.root.join("backup/20261124").exists(),
        "loose copies removed after verification"
    );
    assert_eq!(
        std::fs::read_dir(app.root.join("quarantine"))
            .unwrap()
            .count(),
        2
    );
    app.check_invariants().await;

    // A second close the same day adds to the zip without losing entries.
    app.put(
        "report_28.txt",
        &generate(&FileSpec {
            rows: 30,
            seed: 28,
            ..Default::default()
        })
        .bytes,
    );
    let performer = app.spawn_performer("2026-11-24");
    app.run_ok("dispatcher", &["run", "--as-of", "2026-11-24"]);
    terminate(performer);
    let after = zip_hashes(&zip);
    assert_eq!(after.len(), expected.len() + 1);
    assert!(expected.iter().all(|e| after.contains(e)));
}

#[tokio::test]
async fn a_corrupted_temporary_zip_never_replaces_a_good_one() {
    let mut app = spawn(Origin::Local).await;
    app.load(
        &[(
            "report_1.txt",
            &generate(&FileSpec {
                rows: 50,
                ..Default::default()
            })
            .bytes,
        )],
        "2026-11-24",
    );
    app.run_ok("dispatcher", &["close", "--as-of", "2026-11-24"]);
    let zip = app.root.join("backup/backup_20261124.zip");
    let good = std::fs::read(&zip).unwrap();

    app.load(
        &[(
            "report_2.txt",
            &generate(&FileSpec {
                rows: 50,
                seed: 2,
                ..Default::default()
            })
            .bytes,
        )],
        "2026-11-24",
    );
    app.env = vec![("VISITAS_FAULT_CORRUPT_ARCHIVE".into(), "1".into())];
    let out = app.run("dispatcher", &["close", "--as-of", "2026-11-24"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "a failed verification is an error"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("archive FAILED"));
    assert_eq!(
        std::fs::read(&zip).unwrap(),
        good,
        "the good zip is untouched"
    );
    let loose = app.root.join("backup/20261124");
    assert_eq!(
        std::fs::read_dir(&loose).unwrap().count(),
        1,
        "the loose copy is kept"
    );
    let leftovers = std::fs::read_dir(app.root.join("backup"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".tmp")
        });
    assert_eq!(leftovers.count(), 0, "no temporary zip left behind");
    app.check_invariants().await;

    app.env.clear();
    app.run_ok("dispatcher", &["close", "--as-of", "2026-11-24"]);
    assert_eq!(zip_hashes(&zip).len(), 2);
    assert!(!loose.exists());
    app.check_invariants().await;
}

#[tokio::test]
async fn a_fallo_sistema_file_is_retried_by_the_next_two_runs_and_not_the_third() {
    let mut app = spawn(Origin::Sftp).await;
    app.put(
        "report_1.txt",
        &generate(&FileSpec {
            rows: 20,
            ..Default::default()
        })
        .bytes,
    );
    app.enqueue();
    // The SFTP server's key "changed": every attempt fails with FALLO_SISTEMA.
    let refuse = (
        "VISITAS_SFTP__KNOWN_HOSTS".to_string(),
        testbed().join("known_hosts.changed").display().to_string(),
    );
    let perform_refused = |app: &mut TestApp| {
        app.env = vec![refuse.clone()];
        app.perform("2026-11-24");
        app.env.clear();
    };
    perform_refused(&mut app);
    assert_eq!(app.audit_of("report_1.txt").await.estatus, "FALLO_SISTEMA");
    let last_run = "SELECT files_retried::bigint * 10 + files_waiting_operator FROM dispatch_runs ORDER BY id DESC LIMIT 1";
    for expected in [10, 10, 1] {
        app.enqueue();
        assert_eq!(app.count(last_run).await, expected, "retried*10 + waiting");
        perform_refused(&mut app);
        assert_eq!(app.audit_of("report_1.txt").await.estatus, "FALLO_SISTEMA");
    }
    assert_eq!(
        app.count("SELECT system_retry_days::bigint FROM work_items")
            .await,
        2
    );
    assert!(
        app.at_origin("report_1.txt"),
        "the origin keeps a FALLO_SISTEMA file"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM bitacora_control").await,
        1,
        "still one file, one audit row"
    );
}

#[tokio::test]
async fn close_applies_retention_to_backups_and_logs_written_long_enough_ago_only() {
    let app = spawn(Origin::Local).await;
    let now = std::time::SystemTime::now();
    let ago = |days: u64| now - Duration::from_secs(days * 86_400);
    let set_mtime =
        |path: &std::path::Path, at| std::fs::File::open(path).unwrap().set_modified(at).unwrap();
    // Two old business days, each zipped; what counts is when their copies were written.
    for (n, day) in [(1, "2026-08-01"), (2, "2026-08-02")] {
        app.put(
            &format!("report_{n}.txt"),
            &generate(&FileSpec {
                rows: 20,
                seed: n,
                ..Default::default()
            })
            .bytes,
        );
        app.enqueue();
        app.perform(day);
    }
    app.run_ok("dispatcher", &["close"]);
    let zip = |day: &str| app.root.join(format!("backup/backup_{day}.zip"));
    // report_1 was loaded 91 days ago, report_2 89 days ago; both zips last written 91 days ago.
    for (archivo, days) in [("report_1.txt", 91), ("report_2.txt", 89)] {
        sqlx::query(
            "UPDATE bitacora_control SET fin = now() - make_interval(days => $2) WHERE archivo = $1",
        )
        .bind(archivo)
        .bind(days)
        .execute(&app.db)
        .await
        .unwrap();
    }
    set_mtime(&zip("20260801"), ago(91));
    set_mtime(&zip("20260802"), ago(91));
    // A zip named for an old day whose content no audit row knows: it may be all there is.
    let unknown = zip("20250101");
    std::fs::write(&unknown, b"not a zip this service wrote").unwrap();
    set_mtime(&unknown, ago(400));
    // Log directories are named by the business day they were written (business.time_zone).
    let today: chrono::NaiveDate =
        sqlx::query_scalar("SELECT (now() AT TIME ZONE 'America/Mexico_City')::date")
            .fetch_one(&app.db)
            .await
            .unwrap();
    let log_day = |n: i64| {
        let dir = app.root.join(format!(
            "logs/{}",
            (today - chrono::Duration::days(n)).format("%Y%m%d")
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    };
    let written = |dir: &std::path::Path, at| {
        let log = dir.join("report_9.log");
        std::fs::write(&log, b"{}\n").unwrap();
        set_mtime(&log, at);
        set_mtime(dir, at);
    };
    let (old, recent_name, rewritten) = (log_day(31), log_day(30), log_day(45));
    written(&old, ago(31));
    written(&recent_name, ago(31));
    written(&rewritten, ago(1));

    let said = app.run_ok("dispatcher", &["close"]);
    assert!(
        !zip("20260801").exists(),
        "everything in it is 91 days old: {said}"
    );
    assert!(zip("20260802").exists(), "report_2 was loaded 89 days ago");
    assert!(unknown.exists(), "unknown content is kept");
    assert!(
        said.contains("retention removed 1 zip(s) and 1 log day(s)")
            && said.contains("kept 1 zip(s) past their retention"),
        "{said}"
    );
    assert!(!old.exists());
    assert!(recent_name.exists() && rewritten.exists());
    // The data contract holds; report_1's copy is gone by retention, on purpose.
    app.check_data_invariants().await;
}
