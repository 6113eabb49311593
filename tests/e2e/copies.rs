//! Issue 20: every copy kept, whatever fails. Real processes: a backfill older than the
//! retention, retention counted from when a backup was written, a close dated in the
//! future, a stale close whose lease was taken, zip entries dated by their files, a
//! partition dropped while a load commits into it, and a performer whose ETL root is not
//! the service's. Each ends with the invariants of docs/data-contract.md §5.

use crate::helpers::{Origin, Running, TestApp, put_files, spawn, text, zip_hashes, zip_hashes_of};
use crate::senders::set_mtime;
use shared::fixtures::{FileSpec, generate, report_name};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const DAY: &str = "2026-11-24";

/// Puts files `from..=to`, enqueues and loads them as of `day`; returns name → SHA-256.
fn load(app: &TestApp, from: usize, to: usize, rows: usize, day: &str) -> BTreeMap<String, String> {
    let loaded = put_files(app, from, to, rows);
    app.enqueue();
    app.perform(day);
    loaded
}

/// Puts `report_N.txt` with valid records only (no rows for `errores`).
fn put_valid_only(app: &TestApp, n: usize, rows: usize) {
    let g = generate(&FileSpec {
        rows,
        invalid_ratio: 0.0,
        seed: n as u64 * 13,
        ..Default::default()
    });
    app.put(&report_name(n), &g.bytes);
}

fn zip_of(app: &TestApp, day: &str) -> PathBuf {
    app.root
        .join(format!("backup/backup_{}.zip", day.replace('-', "")))
}

/// Every loaded file's audit row names an entry of `zip` that holds exactly its content.
async fn all_in_zip(app: &TestApp, zip: &Path, loaded: &BTreeMap<String, String>) {
    let entries = zip_hashes(zip);
    for (name, sha) in loaded {
        let a = app.audit_of(name).await;
        let backup = a.ruta_backup.clone().unwrap_or_default();
        let (at, entry) = backup
            .split_once('#')
            .unwrap_or_else(|| panic!("{name} is not zipped: {backup}"));
        assert_eq!(Path::new(at), zip, "{name}");
        assert_eq!(
            entries.get(entry),
            Some(sha),
            "{name}: its entry {entry} holds what was loaded ({entries:?})"
        );
    }
}

#[tokio::test]
async fn a_backfill_older_than_the_retention_keeps_its_zip_and_logs_through_two_closes() {
    let app = spawn(Origin::Local).await;
    // A business day four months back, well past the 90 days of backup_retention_days.
    let backfill = "2026-08-01";
    let loaded = load(&app, 1, 2, 200, backfill);
    let zip = zip_of(&app, backfill);
    for close in 1..=2 {
        let said = app.run_ok("dispatcher", &["close"]);
        assert!(
            zip.exists(),
            "close {close}: the backfill's zip is kept: {said}"
        );
        all_in_zip(&app, &zip, &loaded).await;
    }
    // Its per-file logs too (written today, whatever day they load).
    let logs: Vec<PathBuf> = std::fs::read_dir(app.root.join("logs"))
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|f| f.unwrap().path())
        .collect();
    for name in loaded.keys() {
        let log = name.replace(".txt", ".log");
        assert!(
            logs.iter().any(|p| p.ends_with(&log)),
            "{log} kept: {logs:?}"
        );
    }
    app.check_invariants().await;
}

#[tokio::test]
async fn a_close_dated_in_the_future_is_refused_and_changes_nothing() {
    let app = spawn(Origin::Local).await;
    let loaded = load(&app, 1, 1, 100, DAY);
    app.run_ok("dispatcher", &["close"]);
    let zip = zip_of(&app, DAY);
    let before = std::fs::read(&zip).unwrap();
    for args in [
        &["close", "--as-of", "2099-01-01"][..],
        &["run", "--as-of", "2099-01-01"][..],
    ] {
        let out = app.run("dispatcher", args);
        assert!(!out.status.success(), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains("--as-of 2099-01-01 is in the future"),
            "{args:?}: {}",
            text(&out)
        );
    }
    assert_eq!(std::fs::read(&zip).unwrap(), before, "the zip is untouched");
    all_in_zip(&app, &zip, &loaded).await;
    app.check_invariants().await;
}

fn signal(process: &Running, signal: &str) {
    let sent = std::process::Command::new("kill")
        .args([signal, &process.pid().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill {signal}");
}

#[tokio::test]
async fn a_stale_close_whose_lease_was_taken_cannot_replace_or_shrink_the_new_zip() {
    let app = spawn(Origin::Local).await;
    let mut loaded = load(&app, 1, 1, 200, DAY);
    app.run_ok("dispatcher", &["close"]);
    loaded.extend(load(&app, 2, 2, 200, DAY));
    // A third file waits in the queue (enqueued now: the closes will hold the lock).
    loaded.extend(put_files(&app, 3, 3, 200));
    app.enqueue();

    // Close A takes the lock and is frozen (SIGSTOP) before archiving; its lease lapses,
    // as a process stalled past a minute's would, and close B takes the lock.
    let stale = app.with_env(&[
        ("VISITAS_FAULT_PAUSE_AT", "close,zipped"),
        ("VISITAS_FAULT_PAUSE_SECS", "2"),
    ]);
    let mut a = Running::new(stale.spawn_bin("dispatcher", &["close"]));
    a.wait_for("\"point\":\"close\"", 30);
    signal(&a, "-STOP");
    sqlx::query(
        "UPDATE service_locks SET expires_at = now() - interval '1 second' WHERE name = 'dispatch'",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let holding = app.with_env(&[
        ("VISITAS_FAULT_PAUSE_AT", "close"),
        ("VISITAS_FAULT_PAUSE_SECS", "2"),
    ]);
    let mut b = Running::new(holding.spawn_bin("dispatcher", &["close"]));
    b.wait_for("fault hook: pausing", 30);
    signal(&b, "-STOP");

    // A wakes up unaware and writes its zip of {1, 2}; it is frozen again before
    // installing it. The third file loads; B zips {1, 2, 3} and removes the loose copies.
    signal(&a, "-CONT");
    a.wait_for("\"point\":\"zipped\"", 30);
    signal(&a, "-STOP");
    app.perform(DAY);
    signal(&b, "-CONT");
    let (status, said) = b.wait();
    assert!(status.success(), "{said}");
    assert!(said.contains("2 file(s) archived"), "{said}");
    let zip = zip_of(&app, DAY);
    let new_zip = std::fs::read(&zip).unwrap();
    all_in_zip(&app, &zip, &loaded).await;

    // A wakes up again: it must change nothing.
    signal(&a, "-CONT");
    let (status, said) = a.wait();
    assert_eq!(
        zip_hashes(&zip),
        zip_hashes_of(&new_zip),
        "the new zip is neither replaced nor shrunk: {said}"
    );
    assert_eq!(std::fs::read(&zip).unwrap(), new_zip, "byte for byte");
    all_in_zip(&app, &zip, &loaded).await;
    assert!(
        said.contains("lost the `dispatch` lock"),
        "the stale close says it stopped ({status}): {said}"
    );
    let leftovers: Vec<String> = std::fs::read_dir(app.root.join("backup"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert_eq!(leftovers, Vec::<String>::new(), "no temporary zip left");
    app.check_invariants().await;
}

#[tokio::test]
async fn zip_entries_carry_their_files_mtime_or_else_the_load_time() {
    let app = spawn(Origin::Sftp).await;
    // The sender's mtimes, at the origin: nothing in the ETL root is touched.
    put_files(&app, 1, 2, 50);
    let dated = SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_632_800); // 2025-11-20 10:00:00 UTC
    set_mtime(&app.origin.join("report_1.txt"), dated);
    // Before 1980: the zip format cannot hold it, so the entry takes the load time.
    set_mtime(
        &app.origin.join("report_2.txt"),
        SystemTime::UNIX_EPOCH + Duration::from_secs(86_400),
    );
    app.enqueue();
    app.perform(DAY);
    let first = app.audit_of("report_1.txt").await;
    let second = app.audit_of("report_2.txt").await;
    app.run_ok("dispatcher", &["close"]);
    let loaded_at: i64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM fin)::bigint FROM bitacora_control WHERE archivo = 'report_2.txt'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    let mut archive =
        zip::ZipArchive::new(std::fs::File::open(zip_of(&app, DAY)).unwrap()).unwrap();
    let mut found = BTreeMap::new();
    for i in 0..archive.len() {
        let entry = archive.by_index(i).unwrap();
        let unix = entry.extra_data_fields().find_map(|f| match f {
            zip::extra_fields::ExtraField::ExtendedTimestamp(t) => t.mod_time(),
            _ => None,
        });
        let dos = entry.last_modified().unwrap();
        found.insert(
            entry.name().unwrap().to_string(),
            (
                unix,
                (dos.year(), dos.month(), dos.day(), dos.hour(), dos.minute()),
            ),
        );
    }
    // 10:00 UTC is 04:00 in America/Mexico_City (business.time_zone), where operators read it.
    assert_eq!(
        found[&format!("{}-report_1.txt", first.id)],
        (Some(1_763_632_800), (2025, 11, 20, 4, 0)),
        "{found:?}"
    );
    let (unix, dos) = found[&format!("{}-report_2.txt", second.id)];
    let unix = i64::from(unix.expect("an extended timestamp"));
    assert!(
        (unix - loaded_at).abs() <= 2,
        "clamped to the load time {loaded_at}: {unix}"
    );
    assert!(dos.0 >= 2026, "{dos:?}");
    app.check_invariants().await;
}

/// A performer whose load of `report_2.txt` stops, rows copied and not committed.
fn performer_paused_in_its_load(app: &TestApp, secs: &str) -> Running {
    let paused = app.with_env(&[
        ("VISITAS_FAULT_PAUSE_AT", "load"),
        ("VISITAS_FAULT_PAUSE_SECS", secs),
    ]);
    let mut performer = Running::new(paused.spawn_bin(
        "performer",
        &["run", "--once", "--workers", "1", "--as-of", DAY],
    ));
    performer.wait_for("fault hook: pausing", 60);
    performer
}

/// The first month after the current one (UTC), as `YYYY-MM`: `--before` it names the
/// month a load writes into now (a test hook lets the drop take the current month).
async fn next_month(app: &TestApp) -> String {
    sqlx::query_scalar(
        "SELECT to_char(date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month', 'YYYY-MM')",
    )
    .fetch_one(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn dropping_a_month_while_a_load_commits_into_it_keeps_the_audit_row_and_the_rows_consistent()
{
    let app = spawn(Origin::Local).await;
    load(&app, 1, 1, 100, DAY);
    // Valid rows only: its load writes into estadisticas alone, whatever the drop's order.
    put_valid_only(&app, 2, 300);
    app.enqueue();
    let performer = performer_paused_in_its_load(&app, "6");
    let before = next_month(&app).await;
    let drop = app.with_env(&[("VISITAS_FAULT_DROP_CURRENT_MONTH", "1")]);
    let said = drop.run_ok("dispatcher", &["partitions", "drop", "--before", &before]);
    let (status, output) = performer.wait();
    assert!(status.success(), "{output}");
    let a = app.audit_of("report_2.txt").await;
    assert!(a.estatus.starts_with("COMPLETADO"), "{a:?}: {output}");
    // Whatever the order, the load's audit row and its rows agree: either its rows are
    // kept, or detalle_depurado names it among the dropped.
    let dropped: i64 = app
        .count(&format!(
            "SELECT count(*) FROM detalle_depurado WHERE bitacora_id = {}",
            a.id
        ))
        .await;
    let rows: i64 = app
        .count(&format!(
            "SELECT count(*) FROM estadisticas WHERE bitacora_id = {}",
            a.id
        ))
        .await;
    assert!(
        (dropped == 1 && rows == 0) || (dropped == 0 && rows == i64::from(a.validos.unwrap())),
        "report_2: recorded as dropped {dropped}, rows {rows}, audit {a:?}: {said}"
    );
    println!("drop during a committing load: {said}");
    app.check_invariants().await;
}

#[tokio::test]
async fn a_dry_run_of_a_drop_blocks_no_load() {
    let app = spawn(Origin::Local).await;
    load(&app, 1, 1, 100, DAY);
    put_files(&app, 2, 2, 300);
    app.enqueue();
    let performer = performer_paused_in_its_load(&app, "20");
    let before = next_month(&app).await;
    let drop = app.with_env(&[("VISITAS_FAULT_DROP_CURRENT_MONTH", "1")]);
    let said = drop.run_ok(
        "dispatcher",
        &["partitions", "drop", "--before", &before, "--dry-run"],
    );
    assert!(said.contains("would drop"), "{said}");
    assert_eq!(
        app.audit_of("report_2.txt").await.estatus,
        "EN_PROCESO",
        "the dry run answered while the load was still open, waiting for nothing: {said}"
    );
    let (status, output) = performer.wait();
    assert!(status.success(), "{output}");
    assert!(
        app.audit_of("report_2.txt")
            .await
            .estatus
            .starts_with("COMPLETADO")
    );
    assert_eq!(app.count("SELECT count(*) FROM detalle_depurado").await, 0);
    app.check_invariants().await;
}

#[tokio::test]
async fn a_performer_whose_root_is_not_the_services_is_refused_at_start() {
    // Over SFTP: the origin any host can reach (a local one is its own host's alone).
    let app = spawn(Origin::Sftp).await;
    let loaded = load(&app, 1, 1, 100, DAY);
    // Another host (on this machine: its own name and its own root) with a root of its own.
    let other_root = app.home.join("etl-host-b");
    let host_b = app.with_env(&[
        ("VISITAS_PATHS__ROOT", other_root.to_str().unwrap()),
        ("VISITAS_PERFORMER__HOST_NAME", "host-b"),
    ]);
    put_files(&app, 2, 2, 100);
    app.enqueue();
    let out = host_b.run(
        "performer",
        &["run", "--once", "--workers", "1", "--as-of", DAY],
    );
    let said = text(&out);
    assert!(!out.status.success(), "refused: {said}");
    println!("a performer with a root of its own: {said}");
    for needed in [
        other_root.to_str().unwrap(),
        app.root.to_str().unwrap(),
        "paths.root",
        "share one ETL root",
    ] {
        assert!(
            said.contains(needed),
            "the refusal names {needed:?}: {said}"
        );
    }
    assert_eq!(
        app.audit_of("report_2.txt").await.estatus,
        "PENDIENTE",
        "the refused performer took nothing"
    );
    for args in [&["close"][..], &["reload", "--day", DAY][..]] {
        let out = host_b.run("dispatcher", args);
        assert!(!out.status.success(), "{args:?}: {}", text(&out));
        assert!(text(&out).contains("share one ETL root"), "{}", text(&out));
    }
    // The shared root is welcome from any host.
    let host_c = app.with_env(&[("VISITAS_PERFORMER__HOST_NAME", "host-c")]);
    host_c.run_ok(
        "performer",
        &["run", "--once", "--workers", "1", "--as-of", DAY],
    );
    app.run_ok("dispatcher", &["close"]);
    let mut all = loaded;
    all.insert(
        "report_2.txt".into(),
        app.audit_of("report_2.txt").await.sha256.unwrap(),
    );
    all_in_zip(&app, &zip_of(&app, DAY), &all).await;
    app.check_invariants().await;
}

/// The console acts on the ETL root (a discard downloads into `quarantine/discarded/`, a
/// reload reads `backup/`): with a root that is not the service's it is refused at start,
/// as every command that writes there; read-only, it may serve.
#[tokio::test]
async fn a_console_whose_root_is_not_the_services_is_refused_at_start() {
    let app = spawn(Origin::Sftp).await;
    load(&app, 1, 1, 50, DAY);
    app.configure_console("");
    app.console_user("ana", "operator", "a long password 1");
    let other_root = app.home.join("etl-ops-box");
    let ops_box = app.with_env(&[
        ("VISITAS_PATHS__ROOT", other_root.to_str().unwrap()),
        ("VISITAS_PERFORMER__HOST_NAME", "ops-box"),
    ]);
    let mut console = ops_box.spawn_bin("dispatcher", &["console", "--listen", "127.0.0.1:0"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = console.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let (_, said) = crate::helpers::terminate(console);
            panic!("the console served on a root of its own: {said}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let said = text(&console.wait_with_output().unwrap());
    assert!(!status.success(), "refused: {said}");
    for needed in [
        other_root.to_str().unwrap(),
        app.root.to_str().unwrap(),
        "share one ETL root",
    ] {
        assert!(
            said.contains(needed),
            "the refusal names {needed:?}: {said}"
        );
    }
    // Read-only it writes nowhere: it serves.
    ops_box.start_console(&["--read-only"]).stop();
}
