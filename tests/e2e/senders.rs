//! Issue 21, "Any sender, any server", and issue 20's point 2 ("the loaded content always
//! reaches the backup"): origins that refuse renames (the test bed's sshd on 2230, files
//! read in place) or renames and removes (2231), servers that show no mtime, done
//! markers, files set aside at the origin and resolved by an operator, directories with
//! a space and an `ñ`, and a crash between the commit and the backup with the file at
//! the origin changed. Every scenario ends with the invariants checked.

use crate::helpers::{Origin, Running, TestApp, spawn};
use crate::whole::in_flight_file;
use shared::fixtures::{FileSpec, Generated, generate};
use std::path::Path;
use std::time::{Duration, SystemTime};

pub(crate) fn file(rows: usize, seed: u64) -> Generated {
    generate(&FileSpec {
        rows,
        distinct_emails: 200,
        seed,
        ..Default::default()
    })
}

fn sha(bytes: &[u8]) -> String {
    use sha2::Digest;
    shared::local::hash::to_hex(&sha2::Sha256::digest(bytes))
}

/// The index just after the `n`th line end (the header is line 1).
pub(crate) fn after_line(bytes: &[u8], n: usize) -> usize {
    bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(n - 1)
        .unwrap()
        .0
        + 1
}

/// A performer service (one worker) that pauses the first time it reaches `point`.
pub(crate) fn paused_at(app: &TestApp, point: &str, secs: u32) -> Running {
    let secs = secs.to_string();
    let env = [
        ("VISITAS_FAULT_PAUSE_AT", point),
        ("VISITAS_FAULT_PAUSE_SECS", secs.as_str()),
    ];
    crate::whole::performer(app, &env, "2026-11-24").0
}

/// Puts `bytes` at the origin as `name`, enqueues it, and kills (-9) the performer that
/// loads it right after its commit, before its backup.
pub(crate) async fn killed_after_commit(app: &TestApp, name: &str, bytes: &[u8]) {
    app.put(name, bytes);
    app.enqueue();
    let mut doomed = paused_at(app, "after_commit", 60);
    doomed.wait_for("fault hook: pausing", 30);
    doomed.kill9();
}

/// Short leases, so the item of a killed performer comes back within seconds.
pub(crate) fn short_leases(app: &mut TestApp) {
    app.env
        .push(("VISITAS_PERFORMER__LEASE_SECS".into(), "3".into()));
}

/// Dates the file at `path` (an origin's file, as a sender's clock would).
pub(crate) fn set_mtime(path: &Path, at: SystemTime) {
    shared::local::paths::set_mtime(path, at).unwrap();
}

pub(crate) fn append(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

/// The names at the origin now.
fn at_origin(app: &TestApp) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(&app.origin)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Rows loaded (valid and rejected).
async fn rows(app: &TestApp) -> (i64, i64) {
    (
        app.count("SELECT count(*) FROM estadisticas").await,
        app.count("SELECT count(*) FROM errores").await,
    )
}

/// No line of one file loaded twice (by two items: its beginning, then the rest).
async fn no_line_twice(app: &TestApp) {
    let twice = app
        .count(
            "SELECT count(*) FROM (
                 SELECT 1 FROM (SELECT archivo, linea FROM estadisticas UNION ALL
                                SELECT archivo, linea FROM errores) l
                 GROUP BY archivo, linea HAVING count(*) > 1) twice",
        )
        .await;
    assert_eq!(twice, 0, "a line loaded twice");
}

#[tokio::test]
async fn read_in_place_a_night_of_several_files_loads_each_exactly_once() {
    let app = spawn(Origin::SftpNoRename).await;
    let files: Vec<Generated> = (1..=6).map(|n| file(300, 40 + n)).collect();
    for (n, g) in files.iter().enumerate() {
        app.put(&format!("report_{}.txt", n + 1), &g.bytes);
    }
    app.enqueue();
    let out = app.perform("2026-11-24");
    assert!(out.contains("the origin refuses renames"), "{out}");
    let audits = app.audit().await;
    assert_eq!(audits.len(), 6);
    for (n, g) in files.iter().enumerate() {
        let a = app.audit_of(&format!("report_{}.txt", n + 1)).await;
        assert!(a.estatus.starts_with("COMPLETADO"), "{a:?}");
        assert_eq!(a.sha256.as_deref(), Some(sha(&g.bytes).as_str()));
        assert_eq!(std::fs::read(a.ruta_backup.unwrap()).unwrap(), g.bytes);
    }
    let valid: usize = files.iter().map(|g| g.valid).sum();
    assert_eq!(rows(&app).await.0 as usize, valid);
    assert!(at_origin(&app).is_empty(), "{:?}", at_origin(&app));
    // The next night finds nothing: nothing is loaded twice.
    assert!(app.enqueue().contains("0 listed, 0 enqueued"));
    app.check_invariants().await;
}

#[tokio::test]
async fn read_in_place_a_file_appended_after_its_listing_is_loaded_whole() {
    let app = spawn(Origin::SftpNoRename).await;
    let whole = file(1200, 3);
    let cut = after_line(&whole.bytes, 601);
    app.put("report_1.txt", &whole.bytes[..cut]);
    app.enqueue(); // listed with the first 600 records
    app.put("report_1.txt", &whole.bytes); // the writer goes on
    let out = app.perform("2026-11-24");
    assert!(out.contains("changed after it was listed"), "{out}");
    let a = app.audit_of("report_1.txt").await;
    assert_eq!(a.sha256.as_deref(), Some(sha(&whole.bytes).as_str()));
    assert_eq!(
        a.totales,
        Some(1200),
        "the whole file, never the listed prefix"
    );
    assert_eq!(rows(&app).await.0 as usize, whole.valid);
    assert!(at_origin(&app).is_empty());
    app.check_invariants().await;
}

#[tokio::test]
async fn read_in_place_a_file_replaced_during_its_load_loses_nothing_and_loads_nothing_twice() {
    let app = spawn(Origin::SftpNoRename).await;
    let (old, new) = (file(800, 5), file(500, 6));
    app.put("report_1.txt", &old.bytes);
    app.enqueue();
    let mut loading = paused_at(&app, "load", 3);
    loading.wait_for("fault hook: pausing", 30);
    // The sender replaces the file under its name while the old content loads.
    app.put("report_1.txt", &new.bytes);
    app.wait_until_done(1, &loading).await;
    let (_, text) = loading.terminate();
    assert!(text.contains("replaced at the origin"), "{text}");
    let first = app.audit_of("report_1.txt").await;
    assert_eq!(first.sha256.as_deref(), Some(sha(&old.bytes).as_str()));
    assert_eq!(
        std::fs::read(first.ruta_backup.unwrap()).unwrap(),
        old.bytes
    );
    assert_eq!(
        std::fs::read(app.origin.join("report_1.txt")).unwrap(),
        new.bytes,
        "the new content was never deleted"
    );
    // The next night loads the new content.
    app.enqueue();
    app.perform("2026-11-25");
    let shas: Vec<_> = app.audit().await.into_iter().map(|a| a.sha256).collect();
    assert_eq!(shas, [Some(sha(&old.bytes)), Some(sha(&new.bytes))]);
    assert_eq!(rows(&app).await.0 as usize, old.valid + new.valid);
    assert!(at_origin(&app).is_empty());
    app.check_invariants().await;
}

/// Read in place, its mtime touched during the load, its content unchanged: it is still
/// what was loaded (the content decides), so it is deleted, not set aside.
#[tokio::test]
async fn read_in_place_a_file_touched_during_its_load_is_still_what_was_loaded() {
    let app = spawn(Origin::SftpNoRename).await;
    let g = file(400, 16);
    app.put("report_1.txt", &g.bytes);
    app.enqueue();
    let mut loading = paused_at(&app, "load", 3);
    loading.wait_for("fault hook: pausing", 30);
    set_mtime(&app.origin.join("report_1.txt"), SystemTime::now());
    app.wait_until_done(1, &loading).await;
    let (_, text) = loading.terminate();
    assert!(text.contains("deleted at the origin"), "{text}");
    assert!(at_origin(&app).is_empty());
    let a = app.audit_of("report_1.txt").await;
    assert!(a.mensaje.is_none(), "{a:?}");
    app.check_invariants().await;
}

/// Read in place, killed between the commit and the backup, the file appended to before
/// the next attempt: what was loaded is backed up (its beginning), the file is set aside
/// under its own name and the night leaves it alone; the operator loads the rest, once.
#[tokio::test]
async fn read_in_place_a_file_changed_after_its_commit_and_a_kill_9_loses_nothing_and_loads_nothing_twice()
 {
    let mut app = spawn(Origin::SftpNoRename).await;
    short_leases(&mut app);
    let whole = file(900, 7);
    let cut = after_line(&whole.bytes, 451);
    killed_after_commit(&app, "report_1.txt", &whole.bytes[..cut]).await;
    append(&app.origin.join("report_1.txt"), &whole.bytes[cut..]);
    tokio::time::sleep(Duration::from_secs(4)).await; // the lease expires
    app.perform("2026-11-24");
    let first = app.audit_of("report_1.txt").await;
    assert_eq!(
        first.sha256.as_deref(),
        Some(sha(&whole.bytes[..cut]).as_str())
    );
    assert_eq!(
        std::fs::read(first.ruta_backup.as_deref().unwrap()).unwrap(),
        &whole.bytes[..cut],
        "the backup is what was loaded"
    );
    assert_eq!(
        std::fs::read(app.origin.join("report_1.txt")).unwrap(),
        whole.bytes,
        "nothing deleted at the origin"
    );
    // The night leaves it alone (it would load its first part twice), and says so.
    let night = app.enqueue();
    assert!(
        night.contains("0 enqueued") && night.contains("1 set aside"),
        "{night}"
    );
    let listed = app.run_ok("dispatcher", &["quarantine", "list"]);
    assert!(
        listed.contains("report_1.txt") && listed.contains("quarantine retry"),
        "{listed}"
    );
    let retried = app.run_ok(
        "dispatcher",
        &["quarantine", "retry", &first.id.to_string()],
    );
    assert!(
        retried.contains(&format!(
            "its first {cut} bytes are what id {} loaded",
            first.id
        )),
        "{retried}"
    );
    app.perform("2026-11-24");
    let rest = app.audit_of("report_1.txt").await;
    assert_ne!(rest.id, first.id);
    assert!(rest.estatus.starts_with("COMPLETADO"), "{rest:?}");
    assert_eq!(rest.sha256.as_deref(), Some(sha(&whole.bytes).as_str()));
    assert_eq!(
        rest.totales,
        Some(450),
        "only the lines after the loaded part"
    );
    no_line_twice(&app).await;
    let (valid, rejected) = rows(&app).await;
    assert_eq!(
        (valid as usize, rejected as usize),
        (whole.valid, whole.invalid_total()),
        "every line once"
    );
    assert!(at_origin(&app).is_empty(), "{:?}", at_origin(&app));
    assert!(
        !app.run_ok("dispatcher", &["quarantine", "list"])
            .contains("report_1.txt")
    );
    app.check_invariants().await;
}

#[tokio::test]
async fn an_origin_that_refuses_deletes_loads_each_content_once_and_keeps_the_files_in_sight() {
    let app = spawn(Origin::SftpReadOnly).await;
    let files: Vec<Generated> = (1..=3).map(|n| file(200, 60 + n)).collect();
    for (n, g) in files.iter().enumerate() {
        app.put(&format!("report_{}.txt", n + 1), &g.bytes);
    }
    app.enqueue();
    app.perform("2026-11-24");
    let valid: usize = files.iter().map(|g| g.valid).sum();
    assert_eq!(rows(&app).await.0 as usize, valid);
    assert_eq!(
        at_origin(&app),
        ["report_1.txt", "report_2.txt", "report_3.txt"],
        "the origin keeps them"
    );
    let listed = app.run_ok("dispatcher", &["quarantine", "list"]);
    assert_eq!(
        listed.matches("refuses to delete it").count(),
        3,
        "{listed}"
    );
    let status = app.run_ok("dispatcher", &["status"]);
    assert!(status.contains("Set aside at the origin"), "{status}");
    // Night after night: never loaded again.
    for day in ["2026-11-25", "2026-11-26"] {
        let night = app.enqueue();
        assert!(
            night.contains("0 enqueued") && night.contains("3 set aside"),
            "{night}"
        );
        app.perform(day);
    }
    assert_eq!(app.audit().await.len(), 3);
    assert_eq!(rows(&app).await.0 as usize, valid);
    app.check_invariants().await;
}

/// A server that shows no mtime (here: every mtime 0, which servers that keep none
/// send), and an upload that stalls for longer than the stability window.
#[tokio::test]
async fn without_mtimes_a_stalled_upload_is_taken_only_after_the_configured_agreeing_listings() {
    let mut app = spawn(Origin::Sftp).await;
    app.env = vec![
        ("VISITAS_SOURCE__STABILITY_WINDOW_SECS".into(), "1".into()),
        ("VISITAS_SOURCE__LISTINGS_WITHOUT_MTIME".into(), "5".into()),
    ];
    let whole = file(600, 8);
    let path = app.origin.join("report_1.txt");
    let half = after_line(&whole.bytes, 301);
    std::fs::write(&path, &whole.bytes[..half]).unwrap();
    set_mtime(&path, SystemTime::UNIX_EPOCH);
    let mut night = Running::new(app.spawn_bin("dispatcher", &["run", "--no-wait"]));
    night.wait_for("\"listing\":2", 30);
    // The upload stalled for more than a window (two listings agreed), then goes on.
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(&path, &whole.bytes).unwrap();
    set_mtime(&path, SystemTime::UNIX_EPOCH);
    let (status, text) = night.wait();
    assert!(status.success(), "{text}");
    assert!(
        text.contains("0 enqueued") && text.contains("1 incomplete"),
        "{text}"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM work_items").await,
        0,
        "never a prefix"
    );
    // A later night: five agreeing listings, the whole file.
    let out = app.enqueue();
    assert!(out.contains("1 enqueued"), "{out}");
    app.perform("2026-11-24");
    let a = app.audit_of("report_1.txt").await;
    assert_eq!(a.sha256.as_deref(), Some(sha(&whole.bytes).as_str()));
    assert!(a.mensaje.is_none(), "{a:?}");
    app.check_invariants().await;
}

async fn nothing_is_loaded_before_its_done_marker(origin: Origin) {
    let mut app = spawn(origin).await;
    app.env = vec![("VISITAS_SOURCE__DONE_MARKER".into(), "{name}.done".into())];
    let whole = file(500, 9);
    let path = app.origin.join("report_1.txt");
    // Stalled mid-upload for as long as you like, no mtime: never taken.
    std::fs::write(&path, &whole.bytes[..after_line(&whole.bytes, 100)]).unwrap();
    set_mtime(&path, SystemTime::UNIX_EPOCH);
    for _ in 0..2 {
        let night = app.enqueue();
        assert!(night.contains("0 enqueued"), "{night}");
    }
    std::fs::write(&path, &whole.bytes).unwrap();
    set_mtime(&path, SystemTime::UNIX_EPOCH);
    assert!(
        app.enqueue().contains("0 enqueued"),
        "complete, but no marker yet"
    );
    app.put("report_1.txt.done", b"");
    let night = app.enqueue();
    assert!(night.contains("1 enqueued"), "{night}");
    app.perform("2026-11-24");
    let a = app.audit_of("report_1.txt").await;
    assert_eq!(a.sha256.as_deref(), Some(sha(&whole.bytes).as_str()));
    assert!(
        at_origin(&app).is_empty(),
        "the marker went with its file: {:?}",
        at_origin(&app)
    );
    app.check_invariants().await;
}

#[tokio::test]
async fn with_a_done_marker_nothing_is_loaded_before_its_marker() {
    nothing_is_loaded_before_its_done_marker(Origin::Sftp).await;
}

#[tokio::test]
async fn with_a_done_marker_nothing_is_loaded_before_its_marker_read_in_place() {
    nothing_is_loaded_before_its_done_marker(Origin::SftpNoRename).await;
}

/// Loads part of `whole` (its first `cut` bytes), kills the performer after the commit,
/// appends the rest at the origin, and lets a performer finish: the file is set aside.
/// Returns the audit row of that load.
pub(crate) async fn set_aside_after_a_crash(
    app: &TestApp,
    name: &str,
    whole: &[u8],
    cut: usize,
) -> i64 {
    app.put(name, &whole[..cut]);
    app.enqueue();
    let mut doomed = paused_at(app, "after_commit", 60);
    doomed.wait_for("fault hook: pausing", 30);
    doomed.kill9();
    append(&in_flight_file(app), &whole[cut..]);
    tokio::time::sleep(Duration::from_secs(4)).await; // the lease expires
    app.perform("2026-11-24");
    app.audit_of(name).await.id
}

#[tokio::test]
async fn a_file_set_aside_is_listed_and_resolved_each_way() {
    let mut app = spawn(Origin::Sftp).await;
    short_leases(&mut app);
    let (a, b) = (file(600, 10), file(600, 11));
    let (cut_a, cut_b) = (after_line(&a.bytes, 301), after_line(&b.bytes, 201));
    let id_a = set_aside_after_a_crash(&app, "report_1.txt", &a.bytes, cut_a).await;
    let id_b = set_aside_after_a_crash(&app, "report_2.txt", &b.bytes, cut_b).await;
    let aside: Vec<String> = at_origin(&app);
    assert_eq!(aside.len(), 2, "{aside:?}");
    assert!(aside.iter().all(|n| n.starts_with(".visitas-changed-")));
    let listed = app.run_ok("dispatcher", &["quarantine", "list", "--format", "csv"]);
    for id in [id_a, id_b] {
        assert!(
            listed
                .lines()
                .any(|l| l.starts_with(&format!("{id},")) && l.contains(".visitas-changed-")),
            "{listed}"
        );
    }
    // One is loaded as new content: only what follows the loaded part.
    let loaded = app.run_ok("dispatcher", &["quarantine", "retry", &id_a.to_string()]);
    assert!(
        loaded.contains("to load only the lines after them"),
        "{loaded}"
    );
    // The other is discarded: out of the origin, into quarantine/discarded/.
    let discarded = app.run_ok(
        "dispatcher",
        &[
            "quarantine",
            "discard",
            &id_b.to_string(),
            "--reason",
            "resent in full",
        ],
    );
    assert!(discarded.contains("quarantine/discarded/"), "{discarded}");
    let copy = app.root.join(format!(
        "quarantine/discarded/{id_b}-report_2.txt.set-aside"
    ));
    assert_eq!(std::fs::read(&copy).unwrap(), b.bytes, "{discarded}");
    app.perform("2026-11-24");
    assert!(at_origin(&app).is_empty(), "{:?}", at_origin(&app));
    no_line_twice(&app).await;
    let (valid, _) = rows(&app).await;
    let b_first = valid_of(&app, id_b).await;
    assert_eq!(valid as usize, a.valid + b_first);
    let listed = app.run_ok("dispatcher", &["quarantine", "list", "--format", "csv"]);
    assert_eq!(listed.lines().count(), 1, "only the header: {listed}");
    // Resolved: a second try changes nothing.
    let again = app.run_ok("dispatcher", &["quarantine", "retry", &id_a.to_string()]);
    assert!(again.contains("already re-enqueued"), "{again}");
    app.check_invariants().await;
}

/// The valid rows audit row `id` loaded.
async fn valid_of(app: &TestApp, id: i64) -> usize {
    app.count(&format!(
        "SELECT registros_validos::bigint FROM bitacora_control WHERE id = {id}"
    ))
    .await as usize
}

/// The case to decide (docs/decisions.md): the part loaded ends inside a line, whose
/// record was loaded cut short. Loading "the rest" would load part of that line again:
/// refused, with what to do; discarding works.
#[tokio::test]
async fn a_set_aside_file_whose_loaded_part_ends_inside_a_line_is_refused_and_discarded() {
    let mut app = spawn(Origin::Sftp).await;
    short_leases(&mut app);
    let whole = file(400, 12);
    let cut = after_line(&whole.bytes, 201) + 7; // seven bytes into line 202
    let id = set_aside_after_a_crash(&app, "report_1.txt", &whole.bytes, cut).await;
    let refused = app.run("dispatcher", &["quarantine", "retry", &id.to_string()]);
    let text = String::from_utf8_lossy(&refused.stderr).to_string();
    assert!(!refused.status.success());
    assert!(
        text.contains("end inside a line") && text.contains("Nothing changed"),
        "{text}"
    );
    assert_eq!(app.audit().await.len(), 1, "nothing enqueued");
    app.run_ok(
        "dispatcher",
        &["quarantine", "discard", &id.to_string(), "--reason", "x"],
    );
    assert!(at_origin(&app).is_empty());
    app.check_invariants().await;
}

#[tokio::test]
async fn a_directory_named_entrada_diaria_ano_lists_and_loads() {
    let mut app = spawn(Origin::Sftp).await;
    let base = app.origin_url();
    let dir = app.origin.join("entrada diaria").join("año");
    std::fs::create_dir_all(&dir).unwrap();
    for d in [dir.parent().unwrap(), &dir] {
        let status = std::process::Command::new("chown")
            .arg("visitas-sftp:")
            .arg(d)
            .status()
            .unwrap();
        assert!(status.success());
    }
    app.origin = dir.clone();
    app.env.push((
        "VISITAS_SOURCE__URL".into(),
        format!("{base}/entrada diaria/año"),
    ));
    let (one, two) = (file(200, 13), file(200, 14));
    app.load(
        &[("report_1.txt", &one.bytes), ("report_2.txt", &two.bytes)],
        "2026-11-24",
    );
    for name in ["report_1.txt", "report_2.txt"] {
        let a = app.audit_of(name).await;
        assert!(a.estatus.starts_with("COMPLETADO"), "{a:?}");
    }
    let path: String = sqlx::query_scalar("SELECT ruta_origen FROM bitacora_control LIMIT 1")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(path.contains("/entrada diaria/año/report_"), "{path}");
    assert!(at_origin(&app).is_empty());
    app.check_invariants().await;
}

/// Issue 20, point 2: killed between the commit and the backup, and the file at the
/// origin then rewritten with other content of the same size. Before the fix the next
/// attempt deleted that unloaded content and backed nothing up. Now what was loaded
/// reaches the backup from a copy whose SHA-256 is what was loaded (here, the killed
/// attempt's own download), and the changed file stays, loaded the next night.
#[tokio::test]
async fn a_commit_then_crash_with_the_origin_changed_keeps_the_loaded_content_and_the_changed_file()
{
    let mut app = spawn(Origin::Sftp).await;
    short_leases(&mut app);
    let loaded = file(500, 15);
    let mut changed = loaded.bytes.clone();
    let at = changed.len() - 30;
    changed[at..at + 4].copy_from_slice(b"7777");
    killed_after_commit(&app, "report_1.txt", &loaded.bytes).await;
    let taken = in_flight_file(&app);
    std::fs::write(&taken, &changed).unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await; // the lease expires
    app.perform("2026-11-24");
    let first = app.audit_of("report_1.txt").await;
    let backup = first
        .ruta_backup
        .clone()
        .expect("the loaded content is backed up");
    assert_eq!(std::fs::read(&backup).unwrap(), loaded.bytes);
    assert_eq!(
        std::fs::read(&taken).unwrap(),
        changed,
        "the changed file is never deleted"
    );
    assert!(
        first.mensaje.as_deref().unwrap_or("").contains("replaced"),
        "{first:?}"
    );
    app.check_invariants().await;
    // The next night loads the changed content as a new file.
    app.enqueue();
    app.perform("2026-11-25");
    let shas: Vec<_> = app.audit().await.into_iter().map(|a| a.sha256).collect();
    assert_eq!(shas, [Some(sha(&loaded.bytes)), Some(sha(&changed))]);
    assert!(at_origin(&app).is_empty());
    app.check_invariants().await;
}

/// Read in place, loaded, its backup refused (a file where the day's backup directory
/// belongs), the file at the origin replaced before the next attempt: the copy the failed
/// attempt verified is what reaches the backup; the new content stays at the origin.
#[tokio::test]
async fn a_backup_that_fails_after_the_commit_keeps_the_loaded_copy_for_the_next_attempt() {
    let app = spawn(Origin::SftpNoRename).await;
    let (old, new) = (file(300, 81), file(200, 82));
    app.put("report_1.txt", &old.bytes);
    app.enqueue();
    let mut loading = paused_at(&app, "after_commit", 3);
    loading.wait_for("fault hook: pausing", 30);
    // The backup's move fails: a regular file where the day's directory goes.
    let backup = app.root.join("backup");
    std::fs::create_dir_all(&backup).unwrap();
    let blocker = backup.join("20261124");
    std::fs::write(&blocker, b"in the way").unwrap();
    // The sender replaces the file under its name before the next attempt.
    app.put("report_1.txt", &new.bytes);
    loading.wait_for(
        "the backup and the delete at the origin will be retried",
        30,
    );
    std::fs::remove_file(&blocker).unwrap();
    app.wait_until_done(1, &loading).await;
    let (_, text) = loading.terminate();
    let a = app.audit_of("report_1.txt").await;
    assert_eq!(a.sha256.as_deref(), Some(sha(&old.bytes).as_str()));
    let backed_up = a
        .ruta_backup
        .as_deref()
        .unwrap_or_else(|| panic!("no backup: {a:?}\n{text}"));
    assert_eq!(
        std::fs::read(backed_up).unwrap(),
        old.bytes,
        "the backup is what was loaded"
    );
    assert_eq!(
        std::fs::read(app.origin.join("report_1.txt")).unwrap(),
        new.bytes,
        "the new content is left at the origin"
    );
    let open = app.run_ok("dispatcher", &["alerts", "--open", "--format", "csv"]);
    assert!(!open.contains("RESPALDO_FALTANTE"), "{open}");
    app.check_invariants().await;
}

/// A file with a bad header on an origin that refuses deletes: quarantined, left at the
/// origin. The operator's discard is taken (its alert closes), the same bad file is not
/// loaded again, and the sender's correction under the same name loads.
#[tokio::test]
async fn a_bad_file_on_an_origin_that_refuses_deletes_is_discarded_and_its_correction_loads() {
    use shared::fixtures::HEADER;
    let app = spawn(Origin::SftpReadOnly).await;
    let good = file(120, 91);
    let bad = String::from_utf8(good.bytes.clone()).unwrap().replacen(
        HEADER,
        &HEADER.replace("Badmail", "Bad mail"),
        1,
    );
    app.put("report_1.txt", bad.as_bytes());
    app.enqueue();
    app.perform("2026-11-24");
    let failed = app.audit_of("report_1.txt").await;
    assert_eq!(failed.estatus, "FALLO_LAYOUT", "{failed:?}");
    let why = failed.mensaje.clone().unwrap_or_default();
    assert!(
        why.contains("line 1") && why.contains("refuses to delete"),
        "the layout error stays, the note follows: {why}"
    );
    assert_eq!(at_origin(&app), ["report_1.txt"], "the origin keeps it");
    let listed = app.run_ok("dispatcher", &["quarantine", "list"]);
    assert!(
        !listed.contains("loaded and backed up") && listed.contains("refuses to delete"),
        "nothing was loaded: {listed}"
    );
    let said = app.run_ok(
        "dispatcher",
        &[
            "quarantine",
            "discard",
            &failed.id.to_string(),
            "--reason",
            "the sender resends it",
        ],
    );
    assert!(said.contains("discarded"), "{said}");
    let open = app.run_ok("dispatcher", &["alerts", "--open", "--format", "csv"]);
    assert!(!open.contains("FALLO_LAYOUT"), "{open}");
    // The discarded file, still at the origin, is not loaded again.
    let night = app.enqueue();
    assert!(night.contains("0 enqueued"), "{night}");
    // The sender's correction, under the same name, is.
    app.put("report_1.txt", &good.bytes);
    let night = app.enqueue();
    assert!(night.contains("1 enqueued"), "{night}");
    app.perform("2026-11-25");
    let loaded = app.audit_of("report_1.txt").await;
    assert!(loaded.estatus.starts_with("COMPLETADO"), "{loaded:?}");
    assert_eq!(rows(&app).await.0 as usize, good.valid);
    app.check_invariants().await;
}

/// On an origin that refuses deletes: the operator has a file that holds exactly what was
/// loaded retried, and the sender appends to it before a performer takes it: only the
/// lines after what was loaded are loaded, once.
#[tokio::test]
async fn a_set_aside_file_appended_after_its_retry_loads_only_its_new_lines() {
    let app = spawn(Origin::SftpReadOnly).await;
    let whole = file(300, 93);
    let cut = after_line(&whole.bytes, 201);
    let other = file(100, 94);
    app.put("report_1.txt", &whole.bytes[..cut]);
    app.put("report_2.txt", &other.bytes);
    app.enqueue();
    app.perform("2026-11-24");
    let first = app.audit_of("report_1.txt").await;
    assert!(first.estatus.starts_with("COMPLETADO"), "{first:?}");
    let unchanged = app.audit_of("report_2.txt").await;
    for id in [first.id, unchanged.id] {
        let retried = app.run_ok("dispatcher", &["quarantine", "retry", &id.to_string()]);
        assert!(retried.contains("DUPLICADO"), "{retried}");
    }
    // The sender goes on writing before a performer takes it.
    append(&app.origin.join("report_1.txt"), &whole.bytes[cut..]);
    app.perform("2026-11-24");
    let rest = app.audit_of("report_1.txt").await;
    assert_ne!(rest.id, first.id);
    assert!(rest.estatus.starts_with("COMPLETADO"), "{rest:?}");
    assert_eq!(
        rest.totales,
        Some(100),
        "only the lines after the loaded part"
    );
    // The one left as it was is what was loaded.
    assert_eq!(app.audit_of("report_2.txt").await.estatus, "DUPLICADO");
    no_line_twice(&app).await;
    let (valid, rejected) = rows(&app).await;
    assert_eq!(
        (valid as usize, rejected as usize),
        (
            whole.valid + other.valid,
            whole.invalid_total() + other.invalid_total()
        ),
        "every line once"
    );
    app.check_invariants().await;
}

/// On an origin that refuses deletes, the sender reuses a loaded file's name for new
/// content: the night does not load it on its own (it is set aside), but says so by an
/// alert, and the operator's retry loads it.
#[tokio::test]
async fn new_content_under_a_set_aside_name_is_alerted_and_loaded_on_retry() {
    let app = spawn(Origin::SftpReadOnly).await;
    let (old, new) = (file(200, 95), file(150, 96));
    app.put("report_1.txt", &old.bytes);
    app.enqueue();
    app.perform("2026-11-24");
    let first = app.audit_of("report_1.txt").await;
    let open = app.run_ok("dispatcher", &["alerts", "--open", "--format", "csv"]);
    assert!(!open.contains("ARCHIVO_MODIFICADO"), "{open}");
    // Unchanged: nothing to say, night after night.
    app.enqueue();
    let open = app.run_ok("dispatcher", &["alerts", "--open", "--format", "csv"]);
    assert!(!open.contains("ARCHIVO_MODIFICADO"), "{open}");
    // Tomorrow's file under the same name.
    app.put("report_1.txt", &new.bytes);
    let night = app.enqueue();
    assert!(night.contains("1 set aside"), "{night}");
    let open = app.run_ok("dispatcher", &["alerts", "--open", "--format", "csv"]);
    assert!(
        open.lines()
            .any(|l| l.contains("ARCHIVO_MODIFICADO") && l.contains("report_1.txt")),
        "{open}"
    );
    app.run_ok(
        "dispatcher",
        &["quarantine", "retry", &first.id.to_string()],
    );
    app.perform("2026-11-25");
    let loaded = app.audit_of("report_1.txt").await;
    assert_ne!(loaded.id, first.id);
    assert_eq!(loaded.sha256.as_deref(), Some(sha(&new.bytes).as_str()));
    assert_eq!(rows(&app).await.0 as usize, old.valid + new.valid);
    app.run_ok("dispatcher", &["check"]);
    let open = app.run_ok("dispatcher", &["alerts", "--open", "--format", "csv"]);
    assert!(!open.contains("ARCHIVO_MODIFICADO"), "{open}");
    app.check_invariants().await;
}
