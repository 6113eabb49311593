//! Issue 11 (5) and 15: `dispatcher reload` loads a day's files (or one file) again from
//! the day's backup zip, each at most once, through performers on this host only.

use crate::helpers::{Origin, Running, TestApp, spawn};
use sha2::{Digest, Sha256};
use shared::fixtures::{FileSpec, generate};
use std::io::Read;
use std::path::Path;

const DAY: &str = "2026-11-24";

fn sample(rows: usize, seed: u64) -> Vec<u8> {
    generate(&FileSpec {
        rows,
        seed,
        ..Default::default()
    })
    .bytes
}

fn sha(bytes: &[u8]) -> String {
    shared::local::hash::to_hex(&Sha256::digest(bytes))
}

/// The database "was restored from an older backup": every load is gone.
async fn restore_older_backup(app: &TestApp) {
    sqlx::query(
        "TRUNCATE estadisticas, errores, visitantes, visitas_por_anio, detalle_depurado, bitacora_control, work_items, dispatch_runs",
    )
    .execute(&app.db)
    .await
    .unwrap();
}

/// Entry name → SHA-256 of its content, for every entry of the day's zip.
fn zip_entries(app: &TestApp) -> Vec<(String, String)> {
    let path = app.root.join("backup/backup_20261124.zip");
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).unwrap();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        out.push((entry.name().unwrap().to_string(), sha(&bytes)));
    }
    out.sort();
    out
}

/// (archivo, estatus, sha256, fecha_negocio) of every audit row, by id.
async fn rows(app: &TestApp) -> Vec<(String, String, Option<String>, Option<String>)> {
    sqlx::query_as(
        "SELECT archivo, estatus, sha256, to_char(fecha_negocio, 'YYYY-MM-DD')
         FROM bitacora_control ORDER BY id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap()
}

fn loaded(status: &str) -> bool {
    status.starts_with("COMPLETADO")
}

/// Regular files left anywhere under `dir` (the reload's extracted copies).
fn files_under(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            out.extend(files_under(&entry.path()));
        } else {
            out.push(entry.path().display().to_string());
        }
    }
    out
}

#[tokio::test]
async fn reloading_a_day_loads_two_files_of_one_name_once_each_and_a_second_reload_nothing() {
    let app = spawn(Origin::Local).await;
    let (first, second) = (sample(40, 1), sample(60, 2));
    app.load(&[("report_1.txt", &first)], DAY);
    // Re-sent under the same name with new content the same day.
    app.load(&[("report_1.txt", &second)], DAY);
    app.run_ok("dispatcher", &["close", "--as-of", DAY]);
    let entries = zip_entries(&app);
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(entries.iter().all(|(n, _)| n.ends_with("-report_1.txt")));
    let rows_before = app.count("SELECT count(*) FROM estadisticas").await;
    restore_older_backup(&app).await;

    let said = app.run_ok("dispatcher", &["reload", "--day", DAY]);
    assert!(said.contains("reload: 2 file(s) enqueued"), "{said}");
    // The performer's own date is another day: the reload fixed the items' date.
    app.perform("2026-11-30");
    let after = rows(&app).await;
    assert_eq!(after.len(), 2, "{after:?}");
    for (archivo, status, _, day) in &after {
        assert_eq!(archivo, "report_1.txt");
        assert!(loaded(status), "{after:?}");
        assert_eq!(day.as_deref(), Some(DAY));
    }
    let mut shas: Vec<String> = after.iter().map(|r| r.2.clone().unwrap()).collect();
    shas.sort();
    let mut expected: Vec<String> = [sha(&first), sha(&second)].into();
    expected.sort();
    assert_eq!(shas, expected, "both contents, once each");
    assert_eq!(
        app.count("SELECT count(*) FROM estadisticas").await,
        rows_before
    );
    assert!(
        files_under(&app.root.join("reload")).is_empty(),
        "the extracted copies are consumed"
    );
    assert_eq!(zip_entries(&app), entries, "the zip stays as it was");
    app.check_invariants().await;

    // Again: the zip's two copies and the two new loose backups are all known content.
    let said = app.run_ok("dispatcher", &["reload", "--day", DAY]);
    assert!(said.contains("reload: 4 file(s) enqueued"), "{said}");
    app.perform("2026-11-30");
    let again = rows(&app).await;
    assert_eq!(again.len(), 6, "{again:?}");
    assert!(again[2..].iter().all(|r| r.1 == "DUPLICADO"), "{again:?}");
    assert_eq!(again.iter().filter(|r| loaded(&r.1)).count(), 2);
    assert_eq!(
        app.count("SELECT count(*) FROM estadisticas").await,
        rows_before
    );
    app.check_invariants().await;
}

#[tokio::test]
async fn reloading_beside_an_sftp_performer_service_loads_the_zip_and_leaves_the_origin_alone() {
    let app = spawn(Origin::Sftp).await;
    let zipped = [
        ("report_1.txt", sample(40, 1)),
        ("report_2.txt", sample(50, 2)),
    ];
    let named: Vec<(&str, &[u8])> = zipped.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    app.load(&named, DAY);
    app.run_ok("dispatcher", &["close", "--as-of", DAY]);
    restore_older_backup(&app).await;
    // Today's files at the SFTP origin carry the same names, with other content.
    let today = [
        ("report_1.txt", sample(70, 3)),
        ("report_2.txt", sample(80, 4)),
    ];
    for (name, bytes) in &today {
        app.put(name, bytes);
    }
    let performer = Running::new(app.spawn_bin(
        "performer",
        &["run", "--workers", "2", "--as-of", "2026-11-25"],
    ));

    let said = app.run_ok("dispatcher", &["reload", "--day", DAY, "--wait"]);
    assert!(said.contains("reload finished: "), "{said}");
    let after = rows(&app).await;
    let mut got: Vec<(String, String)> = after
        .iter()
        .map(|r| (r.0.clone(), r.2.clone().unwrap()))
        .collect();
    got.sort();
    let expected: Vec<(String, String)> = zipped
        .iter()
        .map(|(n, b)| (n.to_string(), sha(b)))
        .collect();
    assert_eq!(
        got,
        expected,
        "exactly the zip's files: {}",
        performer.text()
    );
    assert!(
        after
            .iter()
            .all(|r| loaded(&r.1) && r.3.as_deref() == Some(DAY))
    );
    for (name, bytes) in &today {
        assert_eq!(
            std::fs::read(app.origin.join(name)).unwrap(),
            *bytes,
            "{name} at the SFTP origin untouched"
        );
    }
    assert_eq!(
        std::fs::read_dir(&app.origin).unwrap().count(),
        today.len(),
        "nothing else at the origin (no in-flight name)"
    );
    performer.terminate();
    assert!(files_under(&app.root.join("reload")).is_empty());
    app.check_invariants().await;
}

#[tokio::test]
async fn reloading_one_file_by_its_id_loads_only_that_file() {
    let app = spawn(Origin::Local).await;
    let (one, two) = (sample(30, 1), sample(40, 2));
    app.load(&[("report_1.txt", &one), ("report_2.txt", &two)], DAY);
    app.run_ok("dispatcher", &["close", "--as-of", DAY]);
    let id = app.audit_of("report_2.txt").await.id.to_string();
    restore_older_backup(&app).await;

    let unknown = app.run("dispatcher", &["reload", "--file", "999999"]);
    assert!(!unknown.status.success());
    let text = String::from_utf8_lossy(&unknown.stderr).into_owned();
    assert!(text.contains("nothing to reload"), "{text}");

    let said = app.run_ok("dispatcher", &["reload", "--file", &id]);
    assert!(said.contains("reload: 1 file(s) enqueued"), "{said}");
    app.perform("2026-11-30");
    let after = rows(&app).await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].0, "report_2.txt");
    assert!(loaded(&after[0].1));
    assert_eq!(after[0].2.as_deref(), Some(sha(&two).as_str()));
    assert_eq!(after[0].3.as_deref(), Some(DAY));
    app.check_invariants().await;
}

#[tokio::test]
async fn a_damaged_zip_entry_is_named_and_the_other_files_still_load() {
    let app = spawn(Origin::Local).await;
    app.load(
        &[
            ("report_1.txt", &sample(60, 1)),
            ("report_2.txt", &sample(60, 2)),
        ],
        DAY,
    );
    app.run_ok("dispatcher", &["close", "--as-of", DAY]);
    restore_older_backup(&app).await;
    // Flip bytes inside the first entry's compressed data (after its local header).
    let path = app.root.join("backup/backup_20261124.zip");
    let mut bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..4], b"PK\x03\x04");
    let name_len = u16::from_le_bytes([bytes[26], bytes[27]]) as usize;
    let extra_len = u16::from_le_bytes([bytes[28], bytes[29]]) as usize;
    let damaged = String::from_utf8(bytes[30..30 + name_len].to_vec()).unwrap();
    let data = 30 + name_len + extra_len;
    for b in &mut bytes[data + 20..data + 60] {
        *b ^= 0xff;
    }
    std::fs::write(&path, &bytes).unwrap();

    let out = app.run("dispatcher", &["reload", "--day", DAY]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!("extracting {damaged} from {}", path.display())),
        "{text}"
    );
    assert!(text.contains("reload: 1 file(s) enqueued"), "{text}");
    app.perform("2026-11-30");
    let after = rows(&app).await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(
        Some(after[0].0.as_str()),
        damaged.split_once('-').map(|p| p.1)
    );
    assert!(loaded(&after[0].1));
    assert!(
        files_under(&app.root.join("reload")).is_empty(),
        "no partial copy left behind"
    );
    app.check_invariants().await;
}
