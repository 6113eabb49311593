//! Issue 5: `ops/RUNBOOK.md`, followed literally. Each test reproduces its situation for
//! real, then runs that section's `sh` blocks verbatim (with the values the operator would
//! read off the previous command), then checks the outcome.

use crate::helpers::{Origin, PrivateSshd, Running, TestApp, spawn, testbed};
use shared::fixtures::{FileSpec, generate};
use std::process::Command;

const RUNBOOK: &str = include_str!("../../ops/RUNBOOK.md");

/// The situations the runbook must cover, each with a test below.
const SECTIONS: [&str; 16] = [
    "SFTP server down",
    "Database down",
    "A layout failure",
    "A file stuck running",
    "A night that did not drain",
    "A night blocked by a stuck lock",
    "Disk full",
    "Host key changed",
    "Re-loading a day from its backup zip",
    "Dropping old months of detail",
    "A feed late, missing or with too many files",
    "A file of unusual volume or error rate",
    "A file set aside at the origin",
    "An origin that refuses deletes",
    "Items no performer can claim",
    "A loaded file whose backup is missing",
];

/// The `sh` blocks of a section (`None`: the preamble before the first section).
fn blocks(section: Option<&str>) -> Vec<String> {
    let mut current: Option<String> = None;
    let (mut out, mut block, mut inside) = (Vec::new(), String::new(), false);
    for line in RUNBOOK.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            current = Some(title.trim().to_string());
        } else if line.trim() == "```sh" {
            inside = true;
        } else if inside && line.trim() == "```" {
            inside = false;
            if current.as_deref() == section {
                out.push(std::mem::take(&mut block));
            }
            block.clear();
        } else if inside {
            block.push_str(line);
            block.push('\n');
        }
    }
    assert!(
        !out.is_empty(),
        "no sh block in runbook section {section:?}"
    );
    out
}

/// Runs one block as an operator's shell would, with `vars` set; insists on success.
fn follow(app: &TestApp, block: &str, vars: &[(&str, String)]) -> String {
    let bin = crate::helpers::bin_dir();
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", block])
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .env("VISITAS_CONFIG", &app.config)
        .env("PGURL", app.db_url());
    for (k, v) in &app.env {
        cmd.env(k, v);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "runbook block failed:\n{block}\n{text}"
    );
    text
}

#[test]
fn the_runbook_has_exactly_the_situations_tested_here() {
    let titles: Vec<&str> = RUNBOOK
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .collect();
    assert_eq!(titles, SECTIONS);
}

async fn failed_id(app: &TestApp, file: &str, status: &str) -> String {
    let a = app.audit_of(file).await;
    assert_eq!(a.estatus, status, "{a:?}");
    a.id.to_string()
}

async fn assert_retry_loaded(app: &TestApp, id: &str) {
    let status: String =
        sqlx::query_scalar("SELECT estatus FROM bitacora_control WHERE reprocesa_de = $1::bigint")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(status.starts_with("COMPLETADO"), "{status}");
    app.check_invariants().await;
}

fn sample(rows: usize) -> Vec<u8> {
    generate(&FileSpec {
        rows,
        ..Default::default()
    })
    .bytes
}

#[tokio::test]
async fn sftp_server_down() {
    let mut app = spawn(Origin::Sftp).await;
    let mut sshd = PrivateSshd::new(&app.home);
    sshd.start();
    app.env.extend(sshd.env(&app.origin));
    app.put("report_1.txt", &sample(40));
    app.enqueue();
    sshd.stop();
    app.perform("2026-11-24");
    let id = failed_id(&app, "report_1.txt", "FALLO_SISTEMA").await;
    assert!(
        app.audit_of("report_1.txt")
            .await
            .mensaje
            .unwrap()
            .contains("connecting to")
    );
    sshd.start();
    follow(&app, &blocks(None)[0], &[]);
    let [fix, verify] = <[String; 2]>::try_from(blocks(Some("SFTP server down"))).unwrap();
    follow(&app, &fix, &[("ID", id.clone())]);
    app.perform("2026-11-24"); // the performer service
    assert!(follow(&app, &verify, &[("ID", id.clone())]).contains("COMPLETADO"));
    assert_retry_loaded(&app, &id).await;
}

#[tokio::test]
async fn database_down() {
    let app = spawn(Origin::Local).await;
    app.put("report_1.txt", &sample(40));
    app.enqueue();
    let admin = sqlx::PgPool::connect(&app.db_url().replace(&app.db_name(), "postgres"))
        .await
        .unwrap();
    let block = |allow: bool| {
        let (admin, db) = (admin.clone(), app.db_name());
        async move {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER DATABASE {db} ALLOW_CONNECTIONS {allow}"
            )))
            .execute(&admin)
            .await
            .unwrap();
            if !allow {
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                )
                .bind(&db)
                .execute(&admin)
                .await
                .unwrap();
            }
        }
    };
    block(false).await;
    let mut performer = Running::new(app.spawn_performer("2026-11-24"));
    performer.wait_for("could not claim; trying again", 30);
    block(true).await;
    follow(&app, &blocks(Some("Database down"))[0], &[]);
    let app = app.reconnect().await;
    app.wait_until_done(1, &performer).await;
    performer.terminate();
    app.check_invariants().await;
}

#[tokio::test]
async fn a_layout_failure() {
    let app = spawn(Origin::Sftp).await;
    let good = sample(60);
    let renamed = String::from_utf8(good.clone())
        .unwrap()
        .replacen("Badmail", "Bad mail", 1);
    app.load(
        &[
            ("report_1.txt", renamed.as_bytes()),
            ("report_2.txt", b"garbage\n"),
        ],
        "2026-11-24",
    );
    let id = failed_id(&app, "report_1.txt", "FALLO_LAYOUT").await;
    let copy = app.audit_of("report_1.txt").await.ruta_backup.unwrap();
    let [fix, discard, verify] = <[String; 3]>::try_from(blocks(Some("A layout failure"))).unwrap();
    let seen = follow(&app, &fix, &[("ID", id.clone()), ("COPY", copy)]);
    assert!(
        seen.contains("Bad mail"),
        "head shows the broken header: {seen}"
    );
    app.perform("2026-11-24");
    assert!(follow(&app, &verify, &[("ID", id.clone())]).contains("COMPLETADO"));
    assert_retry_loaded(&app, &id).await;
    // The other way out: the data itself is wrong.
    let other = failed_id(&app, "report_2.txt", "FALLO_LAYOUT").await;
    follow(&app, &discard, &[("ID", other.clone())]);
    let reason: Option<String> =
        sqlx::query_scalar("SELECT motivo_descarte FROM bitacora_control WHERE id = $1::bigint")
            .bind(&other)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(reason.as_deref(), Some("wrong data; sender will resend"));
}

#[tokio::test]
async fn a_file_stuck_running() {
    let mut app = spawn(Origin::Local).await;
    app.env
        .push(("VISITAS_PERFORMER__LEASE_SECS".into(), "600".into()));
    app.put("report_1.txt", &sample(40));
    app.enqueue();
    let mut stuck_env = app.env.clone();
    stuck_env.push(("VISITAS_FAULT_PAUSE_AT".into(), "load".into()));
    let stuck = TestApp {
        env: stuck_env,
        ..app.clone_handles()
    };
    let mut performer = Running::new(stuck.spawn_performer("2026-11-24"));
    performer.wait_for("fault hook: pausing", 30);
    performer.kill9(); // its host "is gone"; the lease still has ten minutes
    let item = app
        .count("SELECT id FROM work_items WHERE state = 'running'")
        .await
        .to_string();
    let [fix, verify] = <[String; 2]>::try_from(blocks(Some("A file stuck running"))).unwrap();
    let seen = follow(&app, &fix, &[("ITEM", item.clone())]);
    assert!(
        seen.contains("report_1.txt"),
        "status lists the running item: {seen}"
    );
    app.perform("2026-11-24");
    let seen = follow(&app, &verify, &[("ITEM", item)]);
    assert!(seen.contains("done") && seen.contains(" 2"), "{seen}");
    app.check_invariants().await;
}

#[tokio::test]
async fn a_night_that_did_not_drain() {
    let app = spawn(Origin::Local).await;
    app.put("report_1.txt", &sample(40));
    let short = TestApp {
        env: vec![("VISITAS_DISPATCHER__DRAIN_TIMEOUT_SECS".into(), "1".into())],
        ..app.clone_handles()
    };
    assert_eq!(
        short.run("dispatcher", &["run"]).status.code(),
        Some(3),
        "no performer: not drained"
    );
    let performer = app.spawn_performer("2026-11-24"); // the service is started again
    let seen = follow(&app, &blocks(Some("A night that did not drain"))[0], &[]);
    crate::helpers::terminate(performer);
    assert!(seen.contains("Summary of"), "{seen}");
    let drained: Option<bool> =
        sqlx::query_scalar("SELECT drained FROM dispatch_runs ORDER BY id DESC LIMIT 1")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(drained, Some(true));
    app.check_invariants().await;
}

#[tokio::test]
async fn a_night_blocked_by_a_stuck_lock() {
    let app = spawn(Origin::Local).await;
    app.put("report_1.txt", &sample(40));
    // A run on another host took the lock three hours ago and hangs, still renewing it.
    sqlx::query(
        "UPDATE service_locks SET holder = 'otherhost:777 dispatcher run', token = token + 1,
             acquired_at = now() - interval '3 hours', expires_at = now() + interval '1 minute'
         WHERE name = 'dispatch'",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let hour_timeout = TestApp {
        env: vec![(
            "VISITAS_DISPATCHER__DRAIN_TIMEOUT_SECS".into(),
            "3600".into(),
        )],
        ..app.clone_handles()
    };
    let blocked = hour_timeout.run_ok("dispatcher", &["run"]);
    assert!(
        blocked.contains("longer than the drain timeout"),
        "{blocked}"
    );
    let [see, rerun] = &blocks(Some("A night blocked by a stuck lock"))[..] else {
        panic!("two blocks");
    };
    assert!(follow(&app, see, &[]).contains("otherhost:777"));
    // The operator stops the stuck process; a minute later its lease has run out.
    sqlx::query(
        "UPDATE service_locks SET expires_at = now() - interval '1 second' WHERE name = 'dispatch'",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let performer = app.spawn_performer("2026-11-24");
    let seen = follow(&app, rerun, &[]);
    crate::helpers::terminate(performer);
    assert!(seen.contains("Summary of"), "{seen}");
    assert!(!follow(&app, see, &[]).contains("otherhost"));
    app.check_invariants().await;
}

#[tokio::test]
async fn disk_full() {
    let app = spawn(Origin::Sftp).await;
    let staging = app.root.join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let mount = |args: &[&str]| {
        Command::new(args[0])
            .args(&args[1..])
            .arg(&staging)
            .status()
            .unwrap()
            .success()
    };
    assert!(mount(&["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs"]));
    app.put("report_1.txt", &sample(6000));
    app.enqueue();
    app.perform("2026-11-24");
    let unmounted = mount(&["umount"]); // the operator frees space
    assert!(unmounted);
    let id = failed_id(&app, "report_1.txt", "FALLO_SISTEMA").await;
    let seen = follow(
        &app,
        &blocks(Some("Disk full"))[0],
        &[
            ("ID", id.clone()),
            ("ETL_ROOT", app.root.display().to_string()),
        ],
    );
    assert!(seen.contains("re-enqueued"), "{seen}");
    app.perform("2026-11-24");
    assert_retry_loaded(&app, &id).await;
}

#[tokio::test]
async fn host_key_changed() {
    let mut app = spawn(Origin::Sftp).await;
    let known_hosts = app.home.join("known_hosts");
    std::fs::copy(testbed().join("known_hosts.changed"), &known_hosts).unwrap();
    app.env.push((
        "VISITAS_SFTP__KNOWN_HOSTS".into(),
        known_hosts.display().to_string(),
    ));
    app.put("report_1.txt", &sample(40));
    let port = std::fs::read_to_string(testbed().join("port"))
        .unwrap()
        .trim()
        .to_string();
    // Enqueued while the key was still the known one; the "new" key is met at download.
    TestApp {
        env: vec![],
        ..app.clone_handles()
    }
    .enqueue();
    app.perform("2026-11-24");
    let id = failed_id(&app, "report_1.txt", "FALLO_SISTEMA").await;
    let vars = [
        ("ID", id.clone()),
        ("HOST", "127.0.0.1".to_string()),
        ("PORT", port),
        ("KNOWN_HOSTS", known_hosts.display().to_string()),
    ];
    let seen = follow(&app, &blocks(Some("Host key changed"))[0], &vars);
    assert!(
        seen.contains("SHA256:") && seen.contains("ED25519"),
        "the fingerprint is shown: {seen}"
    );
    app.perform("2026-11-24");
    assert_retry_loaded(&app, &id).await;
}

#[tokio::test]
async fn re_loading_a_day_from_its_backup_zip() {
    let app = spawn(Origin::Local).await;
    let files: Vec<(String, Vec<u8>)> = (1..=3)
        .map(|n| {
            (
                format!("report_{n}.txt"),
                generate(&FileSpec {
                    rows: 50,
                    seed: n,
                    ..Default::default()
                })
                .bytes,
            )
        })
        .collect();
    let named: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    app.load(&named, "2026-11-24");
    app.run_ok("dispatcher", &["close", "--as-of", "2026-11-24"]);
    let rows_before = app.count("SELECT count(*) FROM estadisticas").await;
    // The database "was restored from an older backup": the day's loads are gone.
    sqlx::query(
        "TRUNCATE estadisticas, errores, visitantes, visitas_por_anio, detalle_depurado, bitacora_control, work_items, dispatch_runs",
    )
    .execute(&app.db)
    .await
    .unwrap();
    // The performer service runs on this host (its own date is another day).
    let performer = Running::new(app.spawn_performer("2026-11-25"));
    let vars = [("DAY", "2026-11-24".to_string())];
    let [reload, verify] =
        <[String; 2]>::try_from(blocks(Some("Re-loading a day from its backup zip"))).unwrap();
    follow(&app, &reload, &vars);
    performer.terminate();
    let seen = follow(&app, &verify, &vars);
    assert!(seen.contains("COMPLETADO_CON_ERRORES"), "{seen}");
    assert_eq!(
        app.count("SELECT count(*) FROM estadisticas").await,
        rows_before,
        "the day is back, once"
    );
    let names: Vec<String> =
        sqlx::query_scalar("SELECT archivo FROM bitacora_control ORDER BY archivo")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(names, ["report_1.txt", "report_2.txt", "report_3.txt"]);
    app.check_invariants().await;
}

#[tokio::test]
async fn dropping_old_months_of_detail() {
    let app = spawn(Origin::Local).await;
    let (old, kept) = (sample(60), sample_seeded(80, 2));
    app.load(&[("report_1.txt", &old)], "2025-01-20");
    app.load(&[("report_2.txt", &kept)], "2026-11-24");
    let (old_id, kept_id) = (
        app.audit_of("report_1.txt").await.id,
        app.audit_of("report_2.txt").await.id,
    );
    // The situation: report_1.txt was loaded in January 2025 (its rows move to the
    // partitions of that month, as if loaded then).
    sqlx::query("UPDATE bitacora_control SET creado_en = '2025-01-20 03:00+00' WHERE id = $1")
        .bind(old_id)
        .execute(&app.db)
        .await
        .unwrap();
    for table in ["estadisticas", "errores"] {
        sqlx::query("SELECT visitas_particion_de_carga($1, '2025-01-20 03:00+00')")
            .bind(table)
            .execute(&app.db)
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET creado_en = '2025-01-20 03:00+00' WHERE bitacora_id = $1"
        )))
        .bind(old_id)
        .execute(&app.db)
        .await
        .unwrap();
    }
    let old_rows = app
        .count(&format!(
            "SELECT count(*) FROM estadisticas_2025_01 WHERE bitacora_id = {old_id}"
        ))
        .await;
    assert!(old_rows > 0);
    let kept_rows = app.count("SELECT count(*) FROM estadisticas").await - old_rows;
    let vars = [("MONTH", "2025-02".to_string())];
    let [look, drop, verify] =
        <[String; 3]>::try_from(blocks(Some("Dropping old months of detail"))).unwrap();
    let seen = follow(&app, &look, &vars);
    assert!(seen.contains("estadisticas_2025_01"), "{seen}");
    assert!(
        seen.contains(&format!(
            "would drop estadisticas_2025_01: {old_rows} rows of 1 file(s)"
        )),
        "{seen}"
    );
    assert!(seen.contains("would drop errores_2025_01"), "{seen}");
    assert_eq!(
        app.count("SELECT count(*) FROM detalle_depurado").await,
        0,
        "a dry run drops nothing"
    );
    let said = follow(&app, &drop, &vars);
    assert!(
        said.contains(&format!(
            "dropped estadisticas_2025_01: {old_rows} rows of 1 file(s)"
        )),
        "{said}"
    );
    assert!(said.contains("dropped errores_2025_01"), "{said}");
    let listed = follow(&app, &verify, &vars);
    assert!(!listed.contains("2025_01"), "{listed}");
    assert!(listed.contains("estadisticas_"), "{listed}");
    // Only the old month went: the kept file's rows are all there, the old file's audit
    // row stays and is named in detalle_depurado; visitantes keeps every visit.
    assert_eq!(
        app.count("SELECT count(*) FROM estadisticas").await,
        kept_rows
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM estadisticas WHERE bitacora_id = {kept_id}"
        ))
        .await,
        kept_rows
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM detalle_depurado WHERE bitacora_id = {old_id}"
        ))
        .await,
        1
    );
    assert_eq!(
        app.count("SELECT sum(visitas_totales) FROM visitantes")
            .await,
        (generate(&FileSpec {
            rows: 60,
            ..Default::default()
        })
        .valid
            + generate(&FileSpec {
                rows: 80,
                seed: 2,
                ..Default::default()
            })
            .valid) as i64
    );
    // The current month cannot go.
    let refused = app.run("dispatcher", &["partitions", "drop", "--before", "2999-01"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("would drop the current month or later"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    app.check_invariants().await;
}

fn sample_seeded(rows: usize, seed: u64) -> Vec<u8> {
    generate(&FileSpec {
        rows,
        seed,
        ..Default::default()
    })
    .bytes
}

/// The open alerts' `id` of `kind` in `dispatcher alerts --open --format csv`.
fn open_alert(app: &TestApp, kind: &str) -> String {
    let listed = app.run_ok("dispatcher", &["alerts", "--open", "--format", "csv"]);
    listed
        .lines()
        .find(|l| l.split(',').nth(1) == Some(kind))
        .and_then(|l| l.split(',').next())
        .unwrap_or_else(|| panic!("no open {kind}: {listed}"))
        .to_string()
}

#[tokio::test]
async fn a_feed_late_missing_or_with_too_many_files() {
    let app = spawn(Origin::Local).await;
    let today = chrono::Utc::now().date_naive().to_string();
    app.configure(
        "[business]\ntime_zone = \"UTC\"\n[expect.visitas]\ndays = \"*\"\ndue_by = \"00:00\"\n",
    );
    app.run_ok("dispatcher", &["check"]);
    let [look, ack, verify] =
        <[String; 3]>::try_from(blocks(Some("A feed late, missing or with too many files")))
            .unwrap();
    // The file arrives late; the operator runs the night again (the performer service runs).
    app.put("report_1.txt", &sample(40));
    let performer = app.spawn_performer(&today);
    let seen = follow(&app, &look, &[]);
    crate::helpers::terminate(performer);
    assert!(
        seen.contains("ARCHIVO_AUSENTE") && seen.contains("OPEN"),
        "{seen}"
    );
    assert!(seen.contains("Summary of"), "{seen}");
    assert!(!follow(&app, &verify, &[]).contains("ARCHIVO_AUSENTE"));
    app.check_invariants().await;

    // Another feed day with nothing: the sender confirms, the operator acknowledges.
    let quiet = spawn(Origin::Local).await;
    quiet.configure(
        "[business]\ntime_zone = \"UTC\"\n[expect.visitas]\ndays = \"*\"\ndue_by = \"00:00\"\n",
    );
    quiet.run_ok("dispatcher", &["check"]);
    let id = open_alert(&quiet, "ARCHIVO_AUSENTE");
    assert!(follow(&quiet, &ack, &[("ID", id)]).contains("acknowledged"));
    assert!(!follow(&quiet, &verify, &[]).contains("ARCHIVO_AUSENTE"));
    quiet.run_ok("dispatcher", &["check"]);
    assert!(
        !follow(&quiet, &verify, &[]).contains("ARCHIVO_AUSENTE"),
        "not raised again"
    );
}

#[tokio::test]
async fn a_file_of_unusual_volume_or_error_rate() {
    let app = spawn(Origin::Local).await;
    app.configure("[expect.visitas]\nhistory = 5\nmin_history = 3\nmin_rows_change = 10\n");
    for n in 1..=3u64 {
        let day = format!("2026-11-2{n}");
        app.load(
            &[(
                &format!("report_{n}.txt"),
                &sample_seeded(200 + n as usize, n),
            )],
            &day,
        );
    }
    app.load(&[("report_4.txt", &sample_seeded(20, 4))], "2026-11-24");
    let [look, ack, verify] =
        <[String; 3]>::try_from(blocks(Some("A file of unusual volume or error rate"))).unwrap();
    let vars = [
        ("DAY", "2026-11-24".to_string()),
        ("FILE", "report_4.txt".to_string()),
    ];
    let seen = follow(&app, &look, &vars);
    assert!(
        seen.contains("VOLUMEN_ANOMALO") && seen.contains("report_4.txt"),
        "{seen}"
    );
    assert!(
        seen.contains("EMAIL_INVALIDO"),
        "the file's rejected records: {seen}"
    );
    let id = open_alert(&app, "VOLUMEN_ANOMALO");
    assert!(follow(&app, &ack, &[("ID", id)]).contains("acknowledged"));
    assert!(!follow(&app, &verify, &[]).contains("VOLUMEN_ANOMALO"));
}

#[tokio::test]
async fn a_file_set_aside_at_the_origin() {
    use crate::senders::{after_line, file, set_aside_after_a_crash, short_leases};
    let mut app = spawn(Origin::Sftp).await;
    short_leases(&mut app);
    let (a, b) = (file(400, 31), file(400, 32));
    let cut = after_line(&a.bytes, 151);
    let id_a = set_aside_after_a_crash(&app, "report_1.txt", &a.bytes, cut).await;
    let id_b = set_aside_after_a_crash(&app, "report_2.txt", &b.bytes, cut).await;
    let [fix, discard, verify] =
        <[String; 3]>::try_from(blocks(Some("A file set aside at the origin"))).unwrap();
    let seen = follow(&app, &fix, &[("ID", id_a.to_string())]);
    assert!(seen.contains("left at the origin as"), "{seen}");
    assert!(seen.contains("to load only the lines after them"), "{seen}");
    follow(&app, &discard, &[("ID", id_b.to_string())]);
    app.perform("2026-11-24"); // the performer service
    let seen = follow(&app, &verify, &[("ID", id_a.to_string())]);
    assert!(seen.contains("COMPLETADO"), "{seen}");
    assert!(!seen.contains("left at the origin"), "{seen}");
    assert_eq!(std::fs::read_dir(&app.origin).unwrap().count(), 0);
    app.check_invariants().await;
}

#[tokio::test]
async fn an_origin_that_refuses_deletes() {
    let mut app = spawn(Origin::Sftp).await;
    let refusing = "rename,posix-rename,hardlink,remove";
    let mut sshd = PrivateSshd::on(&app.home, 2232, Some(refusing));
    sshd.start();
    app.env.extend(sshd.env(&app.origin));
    app.load(&[("report_1.txt", &sample(40))], "2026-11-24");
    let id = app.audit_of("report_1.txt").await.id.to_string();
    assert!(app.at_origin("report_1.txt"));
    // The provider grants delete rights (renames still refused): the same origin.
    sshd.stop();
    let mut sshd = PrivateSshd::on(&app.home, 2232, Some("rename,posix-rename,hardlink"));
    sshd.start();
    let [fix, verify] =
        <[String; 2]>::try_from(blocks(Some("An origin that refuses deletes"))).unwrap();
    let seen = follow(&app, &fix, &[("ID", id.clone())]);
    assert!(seen.contains("refuses to delete it"), "{seen}");
    app.perform("2026-11-24");
    let seen = follow(&app, &verify, &[("ID", id.clone())]);
    assert!(!seen.contains("report_1.txt"), "{seen}");
    assert!(!app.at_origin("report_1.txt"));
    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT estatus FROM bitacora_control ORDER BY id")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(
        statuses,
        ["COMPLETADO_CON_ERRORES", "DUPLICADO"],
        "loaded once"
    );
    app.check_invariants().await;
}

#[tokio::test]
async fn items_no_performer_can_claim() {
    let app = spawn(Origin::Sftp).await;
    app.put("report_1.txt", &sample(40));
    app.put("report_2.txt", &sample_seeded(40, 2));
    app.enqueue();
    let old = app.origin_url();
    let (served, new) = crate::origins::served_elsewhere(&app);
    let mut performer = Running::new(served.spawn_bin(
        "performer",
        &["run", "--workers", "1", "--as-of", "2026-11-24"],
    ));
    performer.wait_for("performer starting", 30);
    let night = app.run("dispatcher", &["run", "--as-of", "2026-11-24"]);
    assert_eq!(night.status.code(), Some(3));
    let [rebind, cancel, verify] =
        <[String; 3]>::try_from(blocks(Some("Items no performer can claim"))).unwrap();
    let vars = [("OLD", old.clone()), ("NEW", new.clone())];
    let seen = follow(&app, &rebind, &vars);
    assert!(seen.contains("NO: no live performer"), "{seen}");
    assert!(seen.contains("moved 2 pending item(s)"), "{seen}");
    app.wait_until_done(2, &performer).await;
    // Another file of the retired origin, whose server (say) is gone: cancelled.
    app.put("report_3.txt", &sample_seeded(40, 3));
    app.enqueue();
    let seen = follow(&app, &cancel, &vars);
    assert!(seen.contains("cancelled 1 pending item(s)"), "{seen}");
    let seen = follow(&app, &verify, &vars);
    assert!(!seen.contains("no live performer"), "{seen}");
    performer.terminate();
    assert_eq!(
        app.run("dispatcher", &["run", "--as-of", "2026-11-24"])
            .status
            .code(),
        Some(0),
        "the night drains"
    );
    app.check_invariants().await;
}

#[tokio::test]
async fn a_loaded_file_whose_backup_is_missing() {
    use crate::senders::{killed_after_commit, short_leases};
    use crate::whole::in_flight_file;
    let mut app = spawn(Origin::Sftp).await;
    short_leases(&mut app);
    killed_after_commit(&app, "report_1.txt", &sample(60)).await;
    // The file at the origin changes, and the host that finishes the item holds no copy.
    let taken = in_flight_file(&app);
    std::fs::write(&taken, sample_seeded(30, 9)).unwrap();
    for staged in std::fs::read_dir(app.root.join("staging")).unwrap() {
        std::fs::remove_file(staged.unwrap().path()).unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_secs(4)).await; // the lease expires
    app.perform("2026-11-24");
    let a = app.audit_of("report_1.txt").await;
    assert!(a.ruta_backup.is_none(), "{a:?}");
    assert!(taken.exists(), "nothing deleted at the origin");
    let listed = app.run_ok("dispatcher", &["quarantine", "list"]);
    assert!(listed.contains("BACKUP MISSING"), "{listed}");
    let open = app.run_ok("dispatcher", &["alerts", "--open", "--format", "csv"]);
    assert!(open.contains("RESPALDO_FALTANTE"), "{open}");
    let [fix, verify] =
        <[String; 2]>::try_from(blocks(Some("A loaded file whose backup is missing"))).unwrap();
    let seen = follow(&app, &fix, &[("ID", a.id.to_string())]);
    assert!(seen.contains(&a.sha256.clone().unwrap()), "{seen}");
    assert!(seen.contains("acknowledged"), "{seen}");
    let seen = follow(&app, &verify, &[("ID", a.id.to_string())]);
    assert!(!seen.contains("BACKUP MISSING"), "{seen}");
    // Acknowledged, its alert is over: no reminder follows.
    let open = app.run_ok("dispatcher", &["alerts", "--open", "--format", "csv"]);
    assert!(!open.contains("RESPALDO_FALTANTE"), "{open}");
    assert!(
        app.run_ok("dispatcher", &["alerts", "--format", "csv"])
            .contains("RESPALDO_FALTANTE"),
        "closed, not forgotten"
    );
    assert_eq!(
        a.validos.map(|n| n as i64),
        Some(app.count("SELECT count(*) FROM estadisticas").await)
    );
}
