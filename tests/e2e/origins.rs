//! Issue 21, "items follow their origin": origins compared in one spelling, performers
//! that say which origins they serve, a night that alerts what no live performer can
//! claim instead of waiting out the drain, and an operator's rebind or cancel.

use crate::helpers::{Origin, Running, TestApp, spawn};
use crate::operators::webhook_receiver;
use shared::fixtures::{FileSpec, generate};
use std::time::{Duration, Instant};

fn put_files(app: &TestApp, n: usize) -> usize {
    let mut valid = 0;
    for i in 1..=n {
        let g = generate(&FileSpec {
            rows: 150,
            seed: 70 + i as u64,
            ..Default::default()
        });
        valid += g.valid;
        app.put(&format!("report_{i}.txt"), &g.bytes);
    }
    valid
}

/// The same world, its binaries configured with another `source.url`.
fn with_url(app: &TestApp, url: &str) -> TestApp {
    app.with_env(&[("VISITAS_SOURCE__URL", url)])
}

/// The same directory served by the test bed's sshd that refuses renames (2230): the
/// world configured for it, and its origin URL.
pub(crate) fn served_elsewhere(app: &TestApp) -> (TestApp, String) {
    let port = std::fs::read_to_string(crate::helpers::testbed().join("port_norename")).unwrap();
    let new = app
        .origin_url()
        .replace(":2222/", &format!(":{}/", port.trim()));
    let mut served = with_url(app, &new);
    let key = std::fs::read_to_string(crate::helpers::testbed().join("host_ed25519.pub")).unwrap();
    let known = app.home.join("known_hosts_new");
    std::fs::write(
        &known,
        format!(
            "[127.0.0.1]:{} {}\n",
            port.trim(),
            key.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
        ),
    )
    .unwrap();
    served.env.push((
        "VISITAS_SFTP__KNOWN_HOSTS".into(),
        known.display().to_string(),
    ));
    (served, new)
}

#[tokio::test]
async fn items_enqueued_under_one_spelling_are_claimed_by_a_performer_configured_with_another() {
    let app = spawn(Origin::Sftp).await;
    let valid = put_files(&app, 3);
    app.enqueue(); // under sftp://visitas-sftp@127.0.0.1:2222/var/tmp/…
    // The performer's configuration spells the same directory otherwise: a final slash,
    // a doubled one, a %-escape.
    let url = app.origin_url();
    let (head, dir) = url.split_at(url.find("/var/").unwrap());
    let other = format!("{}//%76{}/", head, &dir["/v".len()..]);
    assert_ne!(other, url);
    let performer = with_url(&app, &other);
    let started = Instant::now();
    performer.perform("2026-11-24");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(
        app.count("SELECT count(*) FROM work_items WHERE state = 'done'")
            .await,
        3
    );
    assert_eq!(
        app.count("SELECT count(*) FROM estadisticas").await as usize,
        valid
    );
    app.check_invariants().await;
}

/// The origin is retired (the performers now serve another): `performer run --once`
/// exits instead of waiting forever, `dispatcher status` shows the items no live
/// performer can claim, the night alerts them and exits 3 at once instead of waiting out
/// its drain, and an operator's rebind has them loaded.
#[tokio::test]
async fn items_of_a_retired_origin_are_alerted_by_the_night_and_rebound() {
    let mut app = spawn(Origin::Sftp).await;
    let (hook, alerts) = webhook_receiver();
    app.env.push(("VISITAS_ALERTS__WEBHOOK_URL".into(), hook));
    app.env.push((
        "VISITAS_DISPATCHER__DRAIN_TIMEOUT_SECS".into(),
        "300".into(),
    ));
    let valid = put_files(&app, 2);
    app.enqueue();
    let old = app.origin_url();
    // The same directory, served now by the sshd that refuses renames.
    let (served, new) = served_elsewhere(&app);

    let started = Instant::now();
    served.perform("2026-11-24");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "--once is not kept waiting by items it cannot claim"
    );
    assert_eq!(app.count("SELECT count(*) FROM estadisticas").await, 0);

    let mut service = Running::new(served.spawn_bin(
        "performer",
        &["run", "--workers", "1", "--as-of", "2026-11-24"],
    ));
    service.wait_for("performer starting", 30);
    tokio::time::sleep(Duration::from_secs(1)).await; // its row is written
    let status = app.run_ok("dispatcher", &["status"]);
    assert!(
        status.contains("Items no live performer can claim") && status.contains(&old),
        "{status}"
    );
    let started = Instant::now();
    let night = app.run("dispatcher", &["run", "--as-of", "2026-11-24"]);
    let printed = String::from_utf8_lossy(&night.stdout).to_string();
    assert_eq!(night.status.code(), Some(3), "{printed}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "not the 300 s drain"
    );
    assert!(
        printed.contains("no live performer can claim 2 item(s)"),
        "{printed}"
    );
    let alert = std::iter::from_fn(|| alerts.recv_timeout(Duration::from_secs(5)).ok())
        .find(|a| a.contains("ORIGEN_SIN_PERFORMER"))
        .expect("the night alerts the items no performer can claim");
    assert!(alert.contains("rebind"), "{alert}");

    let dry = app.run_ok(
        "dispatcher",
        &["origins", "rebind", &old, &new, "--dry-run"],
    );
    assert!(dry.contains("would move 2 pending item(s)"), "{dry}");
    let moved = app.run_ok("dispatcher", &["origins", "rebind", &old, &new]);
    assert!(moved.contains("moved 2 pending item(s)"), "{moved}");
    app.wait_until_done(2, &service).await;
    let (_, text) = service.terminate();
    assert!(text.contains("reading the file in place"), "{text}");
    assert_eq!(
        app.count("SELECT count(*) FROM estadisticas").await as usize,
        valid
    );
    assert!(std::fs::read_dir(&app.origin).unwrap().next().is_none());
    app.check_invariants().await;
}

#[tokio::test]
async fn items_of_a_retired_origin_can_be_cancelled() {
    let app = spawn(Origin::Local).await;
    put_files(&app, 2);
    app.enqueue();
    let old = app.origin_url();
    let out = app.run_ok(
        "dispatcher",
        &["origins", "cancel", &old, "--reason", "server retired"],
    );
    assert!(out.contains("cancelled 2 pending item(s)"), "{out}");
    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT w.state, b.estatus, b.motivo_descarte FROM work_items w
         JOIN bitacora_control b ON b.work_item_id = w.id ORDER BY w.id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    for (state, status, reason) in rows {
        assert_eq!(
            (state.as_str(), status.as_str()),
            ("failed", "FALLO_SISTEMA")
        );
        assert!(reason.unwrap().contains("server retired"));
    }
    let listed = app.run_ok("dispatcher", &["quarantine", "list", "--format", "csv"]);
    assert_eq!(listed.lines().count(), 1, "nothing waits: {listed}");
    // The files stay at the origin, and the night leaves them to the operator.
    assert!(app.enqueue().contains("0 enqueued"));
    assert_eq!(app.count("SELECT count(*) FROM work_items").await, 2);
}

/// A performer killed between its commit and its backup leaves its item pending, its
/// verified staged copy in `staging/`; the operator cancels the origin (retired): what
/// was loaded reaches the backup, and the next close keeps it.
#[tokio::test]
async fn cancelling_an_origin_backs_up_what_its_items_loaded() {
    use crate::senders::{file, killed_after_commit, short_leases};
    let mut app = spawn(Origin::Sftp).await;
    short_leases(&mut app);
    let g = file(200, 97);
    killed_after_commit(&app, "report_1.txt", &g.bytes).await;
    tokio::time::sleep(Duration::from_secs(4)).await; // the lease expires
    // A performer of another origin takes the item back, and cannot claim it.
    let elsewhere = app.home.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let url = format!("file://{}", elsewhere.display());
    app.with_env(&[("VISITAS_SOURCE__URL", url.as_str())])
        .perform("2026-11-24");
    let out = app.run_ok(
        "dispatcher",
        &[
            "origins",
            "cancel",
            &app.origin_url(),
            "--reason",
            "server retired",
        ],
    );
    assert!(out.contains("1 loaded item(s)"), "{out}");
    app.run_ok("dispatcher", &["close"]);
    let a = app.audit_of("report_1.txt").await;
    let copy = a
        .ruta_backup
        .clone()
        .unwrap_or_else(|| panic!("no backup: {a:?}\n{out}"));
    let want = {
        use sha2::Digest;
        shared::local::hash::to_hex(&sha2::Sha256::digest(&g.bytes))
    };
    let found = match copy.split_once('#') {
        Some((zip, entry)) => crate::helpers::zip_hashes(std::path::Path::new(zip))[entry].clone(),
        None => {
            use sha2::Digest;
            shared::local::hash::to_hex(&sha2::Sha256::digest(std::fs::read(&copy).unwrap()))
        }
    };
    assert_eq!(found, want, "the backup is what was loaded");
    let open = app.run_ok("dispatcher", &["alerts", "--open", "--format", "csv"]);
    assert!(!open.contains("RESPALDO_FALTANTE"), "{open}");
    app.check_invariants().await;
}

/// A host renamed (a local origin's items bound to the old name): the operator cancels
/// them, and the files still there, unchanged, are loaded by the new host's night.
/// A cancel of an origin whose pending items a live performer would load is refused.
#[tokio::test]
async fn files_of_a_cancelled_origin_resent_unchanged_are_loaded() {
    let app = spawn(Origin::Local).await;
    let valid = put_files(&app, 2);
    let host_a = app.with_env(&[("VISITAS_PERFORMER__HOST_NAME", "host-a")]);
    host_a.enqueue();
    let origin = app.origin_url();
    let out = app.run_ok(
        "dispatcher",
        &["origins", "cancel", &origin, "--reason", "host renamed"],
    );
    assert!(out.contains("cancelled 2 pending item(s)"), "{out}");
    let host_b = app.with_env(&[("VISITAS_PERFORMER__HOST_NAME", "host-b")]);
    let night = host_b.enqueue();
    assert!(night.contains("2 enqueued"), "{night}");
    // While host-b serves them (one paused in its download, one pending), no cancel.
    let mut serving = crate::senders::paused_at(&host_b, "download", 5);
    serving.wait_for("fault hook: pausing", 30);
    let refused = app.run(
        "dispatcher",
        &["origins", "cancel", &origin, "--reason", "by mistake"],
    );
    let said = crate::helpers::text(&refused);
    assert!(
        !refused.status.success() && said.contains("a live performer serves it"),
        "{said}"
    );
    app.wait_until_done(2, &serving).await;
    serving.terminate();
    for name in ["report_1.txt", "report_2.txt"] {
        let loaded = app.audit_of(name).await;
        assert!(loaded.estatus.starts_with("COMPLETADO"), "{loaded:?}");
    }
    assert_eq!(
        app.count("SELECT count(*) FROM estadisticas").await as usize,
        valid
    );
}

/// A host renamed: the items of a local origin, bound to the old name, are rebound to
/// the new one (the same origin, `--host`), and its performers load them.
#[tokio::test]
async fn a_local_origins_items_follow_a_renamed_host() {
    let app = spawn(Origin::Local).await;
    let valid = put_files(&app, 1);
    app.with_env(&[("VISITAS_PERFORMER__HOST_NAME", "host-a")])
        .enqueue();
    let host_b = app.with_env(&[("VISITAS_PERFORMER__HOST_NAME", "host-b")]);
    host_b.perform("2026-11-24");
    assert_eq!(app.audit_of("report_1.txt").await.estatus, "PENDIENTE");
    let origin = app.origin_url();
    let out = app.run_ok(
        "dispatcher",
        &["origins", "rebind", &origin, &origin, "--host", "host-b"],
    );
    assert!(out.contains("moved 1 pending item(s)"), "{out}");
    host_b.perform("2026-11-24");
    let loaded = app.audit_of("report_1.txt").await;
    assert!(loaded.estatus.starts_with("COMPLETADO"), "{loaded:?}");
    assert_eq!(
        app.count("SELECT count(*) FROM estadisticas").await as usize,
        valid
    );
    app.check_invariants().await;
}
