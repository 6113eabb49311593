//! Issue 25: a worker keeps its SSH connection between items. A night of small files
//! authenticates once per worker, not once per file; a connection that died between
//! items is replaced before the next item uses it; a server turning connections away
//! for load (`MaxStartups`) is waited for, never a failure.

use crate::helpers::{Origin, PrivateSshd, Running, TestApp, put_files, spawn};

/// Every item loaded on its first attempt, the origin emptied, the invariants hold.
async fn all_loaded_first_time(app: &TestApp, files: usize, out: &str) {
    let audits = app.audit().await;
    assert_eq!(audits.len(), files, "{out}");
    assert!(
        audits.iter().all(|a| a.estatus.starts_with("COMPLETADO")),
        "{audits:?}\n{out}"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM work_items WHERE attempts <> 1")
            .await,
        0,
        "no attempt spent on a connection: {out}"
    );
    assert!(!out.contains("the item will be retried"), "{out}");
    assert_eq!(std::fs::read_dir(&app.origin).unwrap().count(), 0, "{out}");
    app.check_invariants().await;
}

/// A test world whose origin is served by an sshd of its own (its log read by the test),
/// with `extra` in its configuration.
async fn behind_private_sshd(extra: Option<&str>) -> (TestApp, PrivateSshd) {
    let mut app = spawn(Origin::Sftp).await;
    let mut sshd = PrivateSshd::new(&app.home);
    if let Some(extra) = extra {
        sshd = sshd.with(extra);
    }
    sshd.start();
    app.env.extend(sshd.env(&app.origin));
    (app, sshd)
}

fn serving(app: &TestApp, workers: &str) -> Running {
    Running::new(app.spawn_bin(
        "performer",
        &["run", "--workers", workers, "--as-of", "2026-11-24"],
    ))
}

#[tokio::test]
async fn an_sshd_killed_between_two_items_is_replaced_before_the_next_item() {
    let (app, mut sshd) = behind_private_sshd(None).await;
    put_files(&app, 1, 1, 50);
    app.enqueue();
    let performer = serving(&app, "1");
    app.wait_until_done(1, &performer).await;
    // The worker keeps its connection; the server and every session it holds die.
    sshd.stop();
    sshd.start();
    put_files(&app, 2, 2, 50);
    app.enqueue();
    app.wait_until_done(2, &performer).await;
    let (status, out) = performer.terminate();
    assert!(status.success(), "{out}");
    all_loaded_first_time(&app, 2, &out).await;
    assert!(
        !out.contains("step failed"),
        "no step tried the dead connection: {out}"
    );
    assert!(
        out.contains("no longer answers; opening a new one"),
        "{out}"
    );
}

#[tokio::test]
async fn an_sshd_with_max_startups_1_serves_a_night_with_4_workers() {
    let (app, sshd) = behind_private_sshd(Some("MaxStartups 1")).await;
    put_files(&app, 1, 40, 50);
    app.enqueue();
    let out = app.run_ok(
        "performer",
        &["run", "--once", "--workers", "4", "--as-of", "2026-11-24"],
    );
    all_loaded_first_time(&app, 40, &out).await;
    // Waited out where the connection is opened, not by a step's tries.
    assert!(
        out.contains("closed the connection before its greeting"),
        "{out}"
    );
    assert!(!out.contains("step failed"), "{out}");
    let log = sshd.log();
    assert!(
        log.contains("past MaxStartups"),
        "the server turned connections away (else this proves nothing): {log}\n{out}"
    );
    assert!(
        sshd.logins() <= 5,
        "one login per worker, and the listing's: {log}"
    );
}

#[tokio::test]
async fn a_night_of_200_files_with_2_workers_authenticates_at_most_4_times() {
    let (app, sshd) = behind_private_sshd(None).await;
    put_files(&app, 1, 200, 20);
    let performer = serving(&app, "2");
    let night = app.run_ok("dispatcher", &["run", "--as-of", "2026-11-24"]);
    let (status, out) = performer.terminate();
    assert!(status.success(), "{out}");
    all_loaded_first_time(&app, 200, &format!("{night}\n{out}")).await;
    let logins = sshd.logins();
    assert!(
        logins <= 4,
        "{logins} logins for a night of 200 files: {}",
        sshd.log()
    );
}

/// The connections the server saw closed by the client (SSH_MSG_DISCONNECT), not dropped.
fn closed_politely(sshd: &PrivateSshd) -> usize {
    sshd.log().matches("Received disconnect from").count()
}

#[tokio::test]
async fn a_kept_connection_is_closed_once_idle_and_at_shutdown() {
    let (app, sshd) = behind_private_sshd(None).await;
    put_files(&app, 1, 1, 50);
    app.enqueue();
    // Idle for a second: closed while the performer keeps serving.
    let idle = app.with_env(&[("VISITAS_SFTP__KEEP_IDLE_SECS", "1")]);
    let performer = serving(&idle, "1");
    app.wait_until_done(1, &performer).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while closed_politely(&sshd) < sshd.logins() {
        assert!(
            std::time::Instant::now() < deadline,
            "the idle connection was not closed: {}\n{}",
            sshd.log(),
            performer.text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (status, out) = performer.terminate();
    assert!(status.success(), "{out}");
    // Kept for a minute by default: closed when the performer stops.
    put_files(&app, 2, 2, 50);
    app.enqueue();
    let performer = serving(&app, "1");
    app.wait_until_done(2, &performer).await;
    assert_eq!(
        closed_politely(&sshd) + 1,
        sshd.logins(),
        "kept open: {}",
        sshd.log()
    );
    let (status, out) = performer.terminate();
    assert!(status.success(), "{out}");
    for _ in 0..25 {
        if closed_politely(&sshd) == sshd.logins() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(closed_politely(&sshd), sshd.logins(), "{}", sshd.log());
    all_loaded_first_time(&app, 2, &out).await;
}
