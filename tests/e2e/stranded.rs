//! Issue 11: never stranded, never stalled. Real processes: two closes at once, a close
//! during a load (staging on another filesystem), the read-only role holding every lock
//! it can take during a night, a lock held too long, per-file logs under `RUST_LOG=warn`.
//! Each ends with every item final and visible, every loaded file in the day's zip, and
//! the invariants of docs/data-contract.md §5 holding.

use crate::helpers::{Origin, Running, TestApp, put_files, spawn, text, zip_hashes};
use shared::fixtures::{FileSpec, HEADER, generate};
use sqlx::Connection;
use std::path::{Path, PathBuf};

const DAY: &str = "2026-11-24";

fn zip_of_day(app: &TestApp) -> PathBuf {
    app.root.join("backup/backup_20261124.zip")
}

fn loose_dir(app: &TestApp) -> PathBuf {
    app.root.join("backup/20261124")
}

/// Every file under `dir` whose name is temporary (a move or zip in progress).
fn temporaries(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(temporaries(&path));
        } else if shared::local::paths::is_temporary(&path.file_name().unwrap().to_string_lossy()) {
            found.push(path);
        }
    }
    found
}

/// Nothing out of sight: no item open, every loaded file's audit row names its entry in
/// the day's zip and that entry holds exactly the loaded content, no loose copy or
/// temporary left, the origin empty, the invariants hold, `status` works.
async fn all_zipped_and_visible(app: &TestApp, files: usize, scenario: &str) {
    assert_eq!(
        app.count("SELECT count(*) FROM work_items WHERE state IN ('pending', 'running')")
            .await,
        0,
        "{scenario}: no item left open"
    );
    let audits = app.audit().await;
    assert_eq!(audits.len(), files, "{scenario}: {audits:?}");
    let zipped = zip_hashes(&zip_of_day(app));
    for a in &audits {
        assert!(
            ["COMPLETADO", "COMPLETADO_CON_ERRORES", "DUPLICADO"].contains(&a.estatus.as_str()),
            "{scenario}: {a:?}"
        );
        let backup = a.ruta_backup.clone().unwrap_or_default();
        let (zip, entry) = backup
            .split_once('#')
            .unwrap_or_else(|| panic!("{scenario}: {} not zipped: {backup}", a.archivo));
        assert_eq!(Path::new(zip), zip_of_day(app), "{scenario}");
        assert_eq!(
            zipped.get(entry),
            a.sha256.as_ref(),
            "{scenario}: the zip entry {entry} holds what was loaded"
        );
    }
    assert_eq!(zipped.len(), files, "{scenario}: {zipped:?}");
    assert!(!loose_dir(app).exists(), "{scenario}: loose copies retired");
    assert_eq!(temporaries(&app.root), Vec::<PathBuf>::new(), "{scenario}");
    assert_eq!(
        std::fs::read_dir(&app.origin).unwrap().count(),
        0,
        "{scenario}: origin emptied"
    );
    app.check_invariants().await;
    app.run_ok("dispatcher", &["status"]);
    println!("{scenario}: {files} file(s) zipped once, named by their audit rows; invariants hold");
}

#[tokio::test]
async fn two_closes_at_once_never_overlap_and_lose_nothing() {
    let app = spawn(Origin::Local).await;
    put_files(&app, 1, 3, 300);
    app.enqueue();
    app.perform(DAY);
    assert_eq!(std::fs::read_dir(loose_dir(&app)).unwrap().count(), 3);

    // Close A holds the dispatcher's lock and stops there; close B and a run find it held.
    let held = app.with_env(&[
        ("VISITAS_FAULT_PAUSE_AT", "close"),
        ("VISITAS_FAULT_PAUSE_SECS", "4"),
    ]);
    let mut a = Running::new(held.spawn_bin("dispatcher", &["close", "--as-of", DAY]));
    a.wait_for("fault hook: pausing", 30);
    for args in [
        &["close", "--as-of", DAY][..],
        &["run", "--no-wait", "--as-of", DAY][..],
    ] {
        let out = app.run("dispatcher", args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains("another dispatcher run is in progress")
                && text(&out).contains("dispatcher close"),
            "{args:?} names the close holding the lock: {}",
            text(&out)
        );
    }
    assert_eq!(
        std::fs::read_dir(loose_dir(&app)).unwrap().count(),
        3,
        "the busy close touched nothing"
    );
    assert!(!zip_of_day(&app).exists());
    let (status, said) = a.wait();
    assert!(status.success(), "{said}");
    assert!(said.contains("3 file(s) archived"), "{said}");
    all_zipped_and_visible(&app, 3, "a close while another holds the lock").await;

    // Two more files, then two closes started together, no hook: whichever runs second
    // either waits its turn out (busy) or finds nothing left; the zip gains both once.
    put_files(&app, 4, 5, 300);
    app.enqueue();
    app.perform(DAY);
    let first = app.spawn_bin("dispatcher", &["close", "--as-of", DAY]);
    let second = app.spawn_bin("dispatcher", &["close", "--as-of", DAY]);
    let outs = [
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    ];
    for out in &outs {
        assert!(out.status.success(), "{}", text(out));
    }
    let busy = outs
        .iter()
        .filter(|o| text(o).contains("another dispatcher run is in progress"))
        .count();
    println!("two closes started together: {busy} found the lock held");
    all_zipped_and_visible(&app, 5, "two closes started together").await;
}

/// A tmpfs mounted for the test's lifetime.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_close_during_a_load_leaves_it_alone_and_a_later_close_zips_it() {
    let app = spawn(Origin::Sftp).await;
    // Staging on its own filesystem: every move to backup crosses filesystems.
    let staging = app.root.join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
        .arg(&staging)
        .status()
        .unwrap();
    assert!(mounted.success(), "mounting a tmpfs for staging");
    let _mount = Mount(staging.clone());

    put_files(&app, 1, 1, 300);
    app.enqueue();
    app.perform(DAY);
    assert_eq!(temporaries(&app.root), Vec::<PathBuf>::new());

    put_files(&app, 2, 3, 2000);
    app.enqueue();
    let loading = app.with_env(&[
        ("VISITAS_FAULT_PAUSE_AT", "load"),
        ("VISITAS_FAULT_PAUSE_SECS", "6"),
    ]);
    let mut performer =
        Running::new(loading.spawn_bin("performer", &["run", "--workers", "1", "--as-of", DAY]));
    performer.wait_for("fault hook: pausing", 30);
    // A move into the day directory caught half-way (a mover on another filesystem).
    let moving = loose_dir(&app).join(shared::local::paths::temporary_name(
        &loose_dir(&app).join("99-report_9.txt"),
    ));
    std::fs::write(&moving, b"half a file").unwrap();

    let said = app.run_ok("dispatcher", &["close", "--as-of", DAY]);
    assert!(said.contains("1 file(s) archived"), "{said}");
    let zipped = zip_hashes(&zip_of_day(&app));
    assert_eq!(
        zipped.keys().count(),
        1,
        "only the finished file: {zipped:?}"
    );
    assert!(moving.exists(), "a move in progress is left alone");
    let staged: Vec<_> = std::fs::read_dir(&staging).unwrap().collect();
    assert_eq!(staged.len(), 1, "the loading item's staged copy stays");
    std::fs::remove_file(&moving).unwrap();

    app.wait_until_done(3, &performer).await;
    let (status, output) = performer.terminate();
    assert!(status.success(), "{output}");
    app.run_ok("dispatcher", &["close", "--as-of", DAY]);
    all_zipped_and_visible(&app, 3, "a close during a load, staging on a tmpfs").await;
}

#[tokio::test]
async fn the_read_only_role_holding_every_lock_it_can_take_stalls_nothing() {
    let mut app = spawn(Origin::Sftp).await;
    app.env.push((
        "VISITAS_DISPATCHER__DRAIN_TIMEOUT_SECS".into(),
        "120".into(),
    ));
    let hashes: Vec<String> = put_files(&app, 1, 2, 300).into_values().collect();
    // A re-sent file: its load must see the first and end DUPLICADO.
    app.put(
        "report_3.txt",
        &std::fs::read(app.origin.join("report_1.txt")).unwrap(),
    );

    let mut reader = sqlx::PgConnection::connect(&app.db_url()).await.unwrap();
    let run = |sql: String| sqlx::query(sqlx::AssertSqlSafe(sql));
    run("SET ROLE visitas_lectura".into())
        .execute(&mut reader)
        .await
        .unwrap();
    // The advisory keys the service used, and the content keys of the files to come.
    run("SELECT pg_advisory_lock(6217592334972965633), pg_advisory_lock(1447646025, 1)".into())
        .execute(&mut reader)
        .await
        .unwrap();
    for sha in &hashes {
        run(format!(
            "SELECT pg_advisory_lock(hashtextextended('{sha}', 0))"
        ))
        .execute(&mut reader)
        .await
        .unwrap();
    }
    // Every table in every mode, and every row-locking clause: keep what is granted.
    let mut reader = reader.begin().await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .fetch_all(&mut *reader)
    .await
    .unwrap();
    let mut taken = Vec::new();
    for table in &tables {
        for lock in [
            "LOCK TABLE {t} IN ACCESS SHARE MODE",
            "LOCK TABLE {t} IN ROW SHARE MODE",
            "LOCK TABLE {t} IN ROW EXCLUSIVE MODE",
            "LOCK TABLE {t} IN SHARE UPDATE EXCLUSIVE MODE",
            "LOCK TABLE {t} IN SHARE MODE",
            "LOCK TABLE {t} IN SHARE ROW EXCLUSIVE MODE",
            "LOCK TABLE {t} IN EXCLUSIVE MODE",
            "LOCK TABLE {t} IN ACCESS EXCLUSIVE MODE",
            "SELECT FROM {t} FOR KEY SHARE",
            "SELECT FROM {t} FOR SHARE",
            "SELECT FROM {t} FOR NO KEY UPDATE",
            "SELECT FROM {t} FOR UPDATE",
        ] {
            run("SAVEPOINT try".into())
                .execute(&mut *reader)
                .await
                .unwrap();
            let sql = lock.replace("{t}", table);
            match run(sql.clone()).execute(&mut *reader).await {
                Ok(_) => taken.push(sql),
                Err(_) => run("ROLLBACK TO SAVEPOINT try".into())
                    .execute(&mut *reader)
                    .await
                    .map(drop)
                    .unwrap(),
            }
        }
    }
    assert!(
        taken.iter().all(|t| t.ends_with("IN ACCESS SHARE MODE")),
        "the read-only role takes nothing but ACCESS SHARE: {taken:?}"
    );
    assert!(
        taken.iter().any(|t| t.contains("service_locks")),
        "{taken:?}"
    );
    println!(
        "read-only role holds {} table lock(s) and {} advisory lock(s)",
        taken.len(),
        2 + hashes.len()
    );

    let performer = Running::new(app.spawn_performer(DAY));
    let night = app.run("dispatcher", &["run", "--as-of", DAY]);
    let (_, performed) = performer.terminate();
    assert!(
        night.status.success(),
        "{}\n--- performer:\n{performed}",
        text(&night)
    );
    assert!(
        !text(&night).contains("another dispatcher run is in progress"),
        "{}",
        text(&night)
    );
    let statuses: Vec<String> = app.audit().await.into_iter().map(|a| a.estatus).collect();
    assert_eq!(
        statuses.iter().filter(|s| *s == "DUPLICADO").count(),
        1,
        "{statuses:?}"
    );
    all_zipped_and_visible(&app, 3, "the read-only role holding every lock it can").await;
    reader.rollback().await.unwrap();
}

#[tokio::test]
async fn a_night_finding_the_lock_held_longer_than_the_drain_timeout_alerts() {
    let mut app = spawn(Origin::Local).await;
    let (url, received) = crate::operators::webhook_receiver();
    app.env.push(("VISITAS_ALERTS__WEBHOOK_URL".into(), url));
    app.env
        .push(("VISITAS_ALERTS__TIMEOUT_SECS".into(), "2".into()));
    app.env
        .push(("VISITAS_DISPATCHER__DRAIN_TIMEOUT_SECS".into(), "60".into()));
    put_files(&app, 1, 1, 50);
    // A run on another host took the lock two hours ago and still renews it.
    sqlx::query(
        "UPDATE service_locks SET holder = 'elsewhere:4242 dispatcher run', token = token + 1,
             acquired_at = now() - interval '2 hours', expires_at = now() + interval '10 minutes'
         WHERE name = 'dispatch'",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let said = app.run_ok("dispatcher", &["run", "--as-of", DAY]);
    assert!(
        said.contains("another dispatcher run is in progress")
            && said.contains("elsewhere:4242")
            && said.contains("longer than the drain timeout"),
        "{said}"
    );
    let alert: serde_json::Value = loop {
        let body = received
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("an alert");
        let alert: serde_json::Value = serde_json::from_str(&body).unwrap();
        if alert["event"] == "NOCHE_BLOQUEADA" {
            break alert;
        }
    };
    assert!(
        alert["message"]
            .as_str()
            .unwrap()
            .contains("elsewhere:4242"),
        "{alert}"
    );
    let logs = std::fs::read_dir(app.root.join("logs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let log = std::fs::read_to_string(logs.join("dispatcher.log")).unwrap();
    assert!(log.contains("longer than the drain timeout"), "{log}");
    assert_eq!(app.count("SELECT count(*) FROM work_items").await, 0);

    // Its holder dies: the lease runs out and the next night takes over.
    sqlx::query(
        "UPDATE service_locks SET expires_at = now() - interval '1 second' WHERE name = 'dispatch'",
    )
    .execute(&app.db)
    .await
    .unwrap();
    app.run_ok("dispatcher", &["run", "--no-wait", "--as-of", DAY]);
    assert_eq!(app.count("SELECT count(*) FROM work_items").await, 1);
    assert_eq!(
        app.count("SELECT count(*) FROM service_locks WHERE holder IS NOT NULL")
            .await,
        0,
        "released at the end of the run"
    );
}

#[tokio::test]
async fn per_file_logs_are_written_at_info_whatever_rust_log_says() {
    let mut app = spawn(Origin::Local).await;
    app.env.push(("RUST_LOG".into(), "warn".into()));
    let good = generate(&FileSpec {
        rows: 30,
        ..Default::default()
    });
    let renamed = format!("{}\n", HEADER.replace("Badmail", "Bad mail"));
    let stdout = app.load(
        &[
            ("report_1.txt", &good.bytes),
            ("report_2.txt", renamed.as_bytes()),
        ],
        DAY,
    );
    let day = std::fs::read_dir(app.root.join("logs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let lines = |name: &str| -> Vec<serde_json::Value> {
        std::fs::read_to_string(day.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    for (n, name) in ["report_1.txt", "report_2.txt"].iter().enumerate() {
        let log = lines(&format!("report_{}.log", n + 1));
        assert!(!log.is_empty());
        assert!(
            log.iter()
                .all(|l| l["file"] == *name && l["work_item_id"].is_i64()),
            "{log:?}"
        );
    }
    assert!(
        lines("report_1.log")
            .iter()
            .any(|l| l["level"] == "INFO" && l["message"] == "load committed")
    );
    assert!(
        lines("report_2.log").iter().any(
            |l| l["level"] == "WARN" && l["message"].as_str().unwrap().contains("FALLO_LAYOUT")
        ),
        "the warning is in the file's own log, with its ids"
    );
    assert!(
        lines("performer.log")
            .iter()
            .any(|l| l["message"] == "performer starting")
    );
    // Stdout keeps RUST_LOG's level, and its warnings name the item too.
    let printed: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(printed.iter().all(|l| l["level"] != "INFO"), "{stdout}");
    let warning = printed
        .iter()
        .find(|l| l["message"].as_str().unwrap_or("").contains("FALLO_LAYOUT"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(warning["span"]["file"], "report_2.txt", "{warning}");
    assert!(warning["span"]["work_item_id"].is_i64(), "{warning}");
}
