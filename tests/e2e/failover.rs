//! Issue 20: a database failover is a pause, not a failure. Real processes against the
//! HA test bed (`ops/testbed-ha.sh`: two PostgreSQL nodes under Patroni with synchronous
//! replication, etcd, HAProxy in front on 127.0.0.1:5440): the primary's whole process
//! tree killed in the middle of a night, and a planned switchover during a load, each
//! with `dispatcher run` waiting. The night completes after it, every file loaded exactly
//! once with no attempt spent on the outage, no item waiting out its lease, no alert.
//!
//! They take the shared cluster down, so they are ignored in the main run: `ops/test.sh`
//! runs them as their own step, one at a time, after `ops/testbed-ha.sh up`
//! (`cargo test --test e2e -- --ignored failover:: --test-threads=1`).

use crate::helpers::{Origin, Running, TestApp, spawn_on};
use shared::fixtures::{FileSpec, generate, report_name};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const DAY: &str = "2026-11-24";

/// The cluster's admin URL, through HAProxy (always the primary).
const HA_ADMIN: &str = "postgres://postgres@127.0.0.1:5440/postgres";

/// Files of a night, and rows in each.
const FILES: usize = 8;
const ROWS: usize = 4000;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ops/testbed-ha.sh")
}

/// Runs `ops/testbed-ha.sh ARGS`; returns what it printed, failing the test if it failed.
fn ha(args: &[&str]) -> String {
    let out = std::process::Command::new(script())
        .args(args)
        .output()
        .unwrap();
    let said = crate::helpers::text(&out);
    assert!(out.status.success(), "ops/testbed-ha.sh {args:?}: {said}");
    said
}

/// Brings the cluster back to two healthy nodes when the test ends, however it ends.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        for args in [&["up"][..], &["wait-healthy"][..]] {
            let _ = std::process::Command::new(script()).args(args).status();
        }
    }
}

/// What one disturbed night showed.
struct Night {
    app: TestApp,
    performer: String,
    dispatcher: String,
    disturbance: String,
    took: Duration,
    after_disturbance: Duration,
}

impl Night {
    /// How often each program said it waited for the database.
    fn waits(&self) -> String {
        let count = |text: &str, needle: &str| text.matches(needle).count();
        format!(
            "the performer waited for the database {} time(s), the waiting dispatcher {} time(s)",
            count(&self.performer, "the database is unavailable"),
            count(&self.dispatcher, "the database is unavailable")
        )
    }
}

/// A night of [`FILES`] files with a performer serving and `dispatcher run` waiting;
/// `disturb` (arguments of `ops/testbed-ha.sh`) runs while a load is inside its
/// transaction, rows copied, not committed.
async fn a_night_through(disturb: &[&str]) -> Night {
    ha(&["up"]);
    ha(&["wait-healthy"]);
    let mut app = spawn_on(Origin::Local, HA_ADMIN).await;
    let (url, alerts) = crate::operators::webhook_receiver();
    app.env.push(("VISITAS_ALERTS__WEBHOOK_URL".into(), url));
    // The service's defaults: a 300 s lease, a 60 s outage budget (no test shortcut).
    app.env
        .push(("VISITAS_PERFORMER__LEASE_SECS".into(), "300".into()));
    for n in 1..=FILES {
        app.put(
            &report_name(n),
            &generate(&FileSpec {
                rows: ROWS,
                seed: n as u64 * 17,
                ..Default::default()
            })
            .bytes,
        );
    }
    let started = Instant::now();
    let paused = app.with_env(&[
        ("VISITAS_FAULT_PAUSE_AT", "load"),
        ("VISITAS_FAULT_PAUSE_SECS", "3"),
    ]);
    let mut performer =
        Running::new(paused.spawn_bin("performer", &["run", "--workers", "2", "--as-of", DAY]));
    let mut night = Running::new(app.spawn_bin("dispatcher", &["run", "--as-of", DAY]));
    performer.wait_for("fault hook: pausing", 120);
    let disturbed = Instant::now();
    let disturbance = ha(disturb);
    night.wait_for("close: ", 600);
    let (status, dispatcher) = night.wait();
    let (took, after_disturbance) = (started.elapsed(), disturbed.elapsed());
    assert!(
        status.success(),
        "the night drained and closed ({status}): {dispatcher}"
    );
    let app = app.reconnect().await;
    app.wait_until_done(FILES as i64, &performer).await;
    let (status, performer) = performer.terminate();
    assert!(status.success(), "{performer}");
    assert_eq!(
        alerts.try_iter().collect::<Vec<_>>(),
        Vec::<String>::new(),
        "nothing alerted"
    );
    Night {
        app,
        performer,
        dispatcher,
        disturbance,
        took,
        after_disturbance,
    }
}

/// Every file loaded exactly once, no attempt spent, no lease waited out, invariants.
async fn loaded_once_and_exact(night: &Night, what: &str) {
    let app = &night.app;
    let audit = app.audit().await;
    assert_eq!(audit.len(), FILES, "{what}: one audit row per file");
    for a in &audit {
        assert!(
            a.estatus.starts_with("COMPLETADO"),
            "{what}: {} {}: {:?}",
            a.archivo,
            a.estatus,
            a.mensaje
        );
    }
    assert_eq!(
        app.count("SELECT count(*) FROM work_items WHERE state <> 'done' OR attempts <> 1")
            .await,
        0,
        "{what}: every item done on its first attempt: {}",
        night.performer
    );
    assert_eq!(
        app.count("SELECT count(*) FROM bitacora_control WHERE intentos <> 1")
            .await,
        0,
        "{what}: no attempt spent on the outage"
    );
    assert!(
        !night
            .performer
            .contains("took back items whose performer stopped answering"),
        "{what}: no item waited out its lease: {}",
        night.performer
    );
    app.check_invariants().await;
}

#[tokio::test]
#[ignore = "needs the HA test bed; ops/test.sh runs it as its own step"]
async fn the_primary_killed_in_the_middle_of_a_night_is_a_pause_not_a_failure() {
    let _restore = Restore;
    let night = a_night_through(&["kill-primary"]).await;
    assert!(
        night
            .performer
            .contains("the database is unavailable (a failover or a restart?): waiting for it"),
        "the load in flight waited the outage out: {}",
        night.performer
    );
    assert!(
        night.performer.contains("the database is back"),
        "{}",
        night.performer
    );
    loaded_once_and_exact(&night, "primary killed").await;
    println!(
        "primary killed mid-night ({}): night of {FILES} files x {ROWS} rows done in {:.1} s, \
         {:.1} s after the kill; every file loaded once on its first attempt, nothing alerted; \
         {}",
        night.disturbance.trim(),
        night.took.as_secs_f64(),
        night.after_disturbance.as_secs_f64(),
        night.waits()
    );
}

#[tokio::test]
#[ignore = "needs the HA test bed; ops/test.sh runs it as its own step"]
async fn a_planned_switchover_during_a_load_is_a_pause_not_a_failure() {
    let _restore = Restore;
    let night = a_night_through(&["switchover"]).await;
    loaded_once_and_exact(&night, "switchover").await;
    println!(
        "switchover during a load ({}): night of {FILES} files x {ROWS} rows done in {:.1} s, \
         {:.1} s after the switchover; every file loaded once on its first attempt, nothing alerted",
        night.disturbance.trim(),
        night.took.as_secs_f64(),
        night.after_disturbance.as_secs_f64(),
    );
    println!("switchover: {}", night.waits());
}
