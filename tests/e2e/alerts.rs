//! Issue 23: eyes on the night. A feed that is late, missing or odd is an alert; alerts
//! reach people by webhook and e-mail (the test bed's real SMTP server), through an
//! outbox that loses nothing; every alert says when it is over.

use crate::helpers::{
    Hooks, Origin, PrivateSmtp, Running, TestApp, email_section, mail_dir, mails_in, marker, smtp,
    spawn, wait_for_mails,
};
use serde_json::Value;
use shared::fixtures::{FileSpec, generate};
use std::time::Duration;

/// Today, as the binaries see it with `business.time_zone = "UTC"`.
fn today() -> String {
    chrono::Utc::now().date_naive().to_string()
}

fn starttls_port() -> u16 {
    smtp("SMTP_STARTTLS_PORT").parse().unwrap()
}

/// A world whose alerts go to a webhook receiver and, by e-mail, to a recipient of its own.
async fn watched(test: &str, smtp_port: u16, tls: &str) -> (TestApp, Hooks, String) {
    let mut app = spawn(Origin::Local).await;
    let hooks = Hooks::start();
    let to = marker(test);
    app.env
        .push(("VISITAS_ALERTS__WEBHOOK_URL".into(), hooks.url.clone()));
    app.configure(&format!(
        "[business]\ntime_zone = \"UTC\"\n\n[alerts]\nrepeat_every = \"1h\"\nretry_delay_secs = 1\n\n{}",
        email_section("localhost", smtp_port, tls, &to)
    ));
    (app, hooks, to)
}

fn sample(rows: usize, seed: u64, invalid_ratio: f64) -> Vec<u8> {
    generate(&FileSpec {
        rows,
        seed,
        invalid_ratio,
        ..Default::default()
    })
    .bytes
}

#[tokio::test]
async fn a_missing_feed_alerts_once_by_webhook_and_email_and_its_late_file_closes_it() {
    let (app, hooks, to) = watched("missing", starttls_port(), "starttls").await;
    // Expected every day by midnight: today's files are already late.
    app.configure("[expect.visitas]\ndays = \"*\"\ndue_by = \"00:00\"\nfiles = { min = 1 }\n");
    let day = today();
    let said = app.run_ok("dispatcher", &["check"]);
    assert!(said.contains("1 alert(s) raised"), "{said}");
    let hook = &hooks.wait_for(1, 10)[0];
    assert_eq!(hook["event"], "ARCHIVO_AUSENTE");
    assert_eq!(hook["notice"], "ALERTA");
    assert_eq!(hook["feed"], "visitas");
    assert_eq!(hook["business_day"], day.as_str());
    assert_eq!(hook["figures"]["files"], 0);
    for key in [
        "file",
        "bitacora_id",
        "work_item_id",
        "message",
        "host",
        "at",
    ] {
        assert!(hook.get(key).is_some(), "{key} missing from {hook}");
    }
    let dir = mail_dir(starttls_port());
    let mail = &wait_for_mails(&dir, &to, 1, 10)[0];
    assert_eq!(
        mail.subject(),
        format!("[visitas] ARCHIVO_AUSENTE visitas {day}")
    );
    assert_eq!(mail.meta["tls"], true, "{}", mail.meta);
    assert_eq!(mail.meta["auth_user"], "visitas", "{}", mail.meta);
    let body = mail.body();
    for needle in [
        "Feed:          visitas",
        &format!("Business day:  {day}"),
        "files: 0",
        "Host:",
        "dispatcher alerts --open",
        "ops/RUNBOOK.md, section \"A feed late, missing or with too many files\"",
    ] {
        assert!(body.contains(needle), "{needle} missing from:\n{body}");
    }

    // Checked again (the timer, every 15 minutes): nothing new before repeat_every.
    let said = app.run_ok("dispatcher", &["check"]);
    assert!(said.contains("0 alert(s) raised"), "{said}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(hooks.received().len(), 1);
    assert_eq!(mails_in(&dir, &to).len(), 1);
    let open = app.run_ok("dispatcher", &["alerts", "--open", "--format", "csv"]);
    assert!(
        open.contains(&format!(",ARCHIVO_AUSENTE,visitas,{day},")),
        "{open}"
    );

    // The file arrives late and the night loads it: one RECUPERADO, by both channels.
    app.load(&[("report_1.txt", &sample(40, 1, 0.05))], &day);
    let hooks_now = hooks.wait_for(2, 10);
    assert_eq!(hooks_now[1]["event"], "RECUPERADO");
    assert_eq!(hooks_now[1]["kind"], "ARCHIVO_AUSENTE");
    assert_eq!(hooks_now[1]["alert_id"], hooks_now[0]["alert_id"]);
    let mails = wait_for_mails(&dir, &to, 2, 10);
    assert_eq!(
        mails[1].subject(),
        format!("[visitas] RECUPERADO ARCHIVO_AUSENTE visitas {day}")
    );
    assert!(
        mails[1].body().contains("arrived late"),
        "{}",
        mails[1].body()
    );
    app.run_ok("dispatcher", &["check"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(hooks.received().len(), 2, "{:?}", hooks.received());
    assert_eq!(mails_in(&dir, &to).len(), 2);
    let open = app.run_ok("dispatcher", &["alerts", "--open", "--format", "csv"]);
    assert!(!open.contains("ARCHIVO_AUSENTE"), "{open}");
}

#[tokio::test]
async fn days_without_files_stay_open_until_the_feeds_next_file_names_them() {
    let (app, hooks, to) = watched("nofile", starttls_port(), "starttls").await;
    // The feed's own recipients replace alerts.email.to.
    let feed_to = marker("nofile-feed");
    app.configure(&format!(
        "[expect.visitas]\ndays = \"*\"\ndue_by = \"00:00\"\nemail_to = [\"{feed_to}\"]\n"
    ));
    let today = chrono::Utc::now().date_naive();
    let day = |back: u64| (today - chrono::Days::new(back)).to_string();
    // The feed delivered three days ago; nothing since.
    app.load(&[("report_1.txt", &sample(30, 1, 0.05))], &day(3));
    let said = app.run_ok("dispatcher", &["check"]);
    assert!(said.contains("3 alert(s) raised"), "{said}");
    let got = hooks.wait_for(3, 10);
    let days: Vec<&str> = got
        .iter()
        .map(|h| h["business_day"].as_str().unwrap())
        .collect();
    assert_eq!(days, [day(2), day(1), day(0)]);
    // Today's file arrives: today's alert is over (its file came late), and the two days
    // before it had none: one RECUPERADO names them.
    app.load(&[("report_2.txt", &sample(30, 2, 0.05))], &day(0));
    let got = hooks.wait_for(5, 10);
    let recovered: Vec<&Value> = got.iter().filter(|h| h["event"] == "RECUPERADO").collect();
    assert_eq!(recovered.len(), 2, "{got:?}");
    let passed = recovered
        .iter()
        .find(|h| h["alert_ids"].as_array().unwrap().len() == 2)
        .unwrap_or_else(|| panic!("{recovered:?}"));
    let message = passed["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("{} (0 file(s)), {} (0 file(s))", day(2), day(1))),
        "{message}"
    );
    let mails = wait_for_mails(&mail_dir(starttls_port()), &feed_to, 5, 10);
    assert!(mails_in(&mail_dir(starttls_port()), &to).is_empty());
    assert!(
        mails.iter().any(|m| m.subject()
            == format!(
                "[visitas] RECUPERADO ARCHIVO_AUSENTE visitas {}..{}",
                day(2),
                day(1)
            )),
        "{:?}",
        mails.iter().map(|m| m.subject()).collect::<Vec<_>>()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(hooks.received().len(), 5);
}

#[tokio::test]
async fn a_holiday_or_a_day_off_raises_nothing() {
    let (app, hooks, to) = watched("holiday", starttls_port(), "starttls").await;
    let day = today();
    app.configure(&format!(
        "[expect.visitas]\ndays = \"*\"\ndue_by = \"00:00\"\nholidays = [{day}]\n"
    ));
    let said = app.run_ok("dispatcher", &["check"]);
    assert!(said.contains("0 alert(s) raised"), "{said}");
    // Not an expected weekday either.
    let weekday = chrono::Datelike::weekday(&chrono::Utc::now().date_naive());
    let other = weekday.succ().to_string().to_ascii_lowercase();
    let off = app.with_env(&[
        ("VISITAS_EXPECT__VISITAS__DAYS", other.as_str()),
        ("VISITAS_EXPECT__VISITAS__HOLIDAYS", "[]"),
    ]);
    let said = off.run_ok("dispatcher", &["check"]);
    assert!(said.contains("0 alert(s) raised"), "{said}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(hooks.received().is_empty(), "{:?}", hooks.received());
    assert!(mails_in(&mail_dir(starttls_port()), &to).is_empty());
    let all = app.run_ok("dispatcher", &["alerts", "--format", "csv"]);
    assert_eq!(all.lines().count(), 1, "only the header: {all}");
}

/// The webhook notices of `kind` received so far.
fn of_kind<'a>(hooks: &'a [Value], notice: &str, kind: &str) -> Vec<&'a Value> {
    hooks
        .iter()
        .filter(|h| h["notice"] == notice && h["kind"] == kind)
        .collect()
}

#[tokio::test]
async fn volume_and_error_rate_are_judged_against_the_feeds_history() {
    let (app, hooks, to) = watched("volume", starttls_port(), "starttls").await;
    // Large batches: ten thousand rows a night.
    let app = app.with_env(&[("VISITAS_PERFORMER__BATCH_ROWS", "25000")]);
    let night = |n: u64| format!("2026-11-{:02}", n);
    // Ten nights of ~10,000 rows (±5 %), 5 % rejects.
    for n in 1..=10u64 {
        let rows = 9_500 + (n as usize * 397) % 1_000;
        app.load(
            &[(&format!("report_{n}.txt"), &sample(rows, n, 0.05))],
            &night(n),
        );
    }
    assert!(hooks.received().is_empty(), "{:?}", hooks.received());
    // One of 1,000 rows.
    app.load(&[("report_11.txt", &sample(1_000, 11, 0.05))], &night(11));
    let got = hooks.wait_for(1, 10);
    let volume = of_kind(&got, "ALERTA", "VOLUMEN_ANOMALO");
    assert_eq!(volume.len(), 1, "{got:?}");
    let rows = &volume[0]["figures"]["valid_rows"];
    assert_eq!(rows["value"], 950.0, "{rows}");
    assert_eq!(rows["history"], 10, "{rows}");
    assert!(rows["median"].as_f64().unwrap() > 9_000.0, "{rows}");
    assert!(rows["mad"].as_f64().unwrap() > 0.0, "{rows}");
    assert!(rows["z"].as_f64().unwrap() < -3.5, "{rows}");
    assert_eq!(volume[0]["file"], "report_11.txt");
    assert!(
        of_kind(&got, "ALERTA", "TASA_ERROR_ANOMALA").is_empty(),
        "{got:?}"
    );
    let mail = &wait_for_mails(&mail_dir(starttls_port()), &to, 1, 10)[0];
    assert!(
        mail.subject()
            .starts_with("[visitas] VOLUMEN_ANOMALO visitas 2026-11-11"),
        "{}",
        mail.subject()
    );
    let body = mail.body();
    assert!(
        body.contains("median") && body.contains("First rejected records"),
        "{body}"
    );

    // The usual rows, 40 % of them rejected: 8,000 rows half invalid, 2,000 all valid.
    let mut forty = sample(8_000, 12, 0.5);
    let valid = sample(2_000, 14, 0.0);
    let records = valid.iter().position(|b| *b == b'\n').unwrap() + 1;
    forty.extend_from_slice(&valid[records..]);
    app.load(&[("report_12.txt", &forty)], &night(12));
    let got = hooks.wait_for(2, 10);
    let rate = of_kind(&got, "ALERTA", "TASA_ERROR_ANOMALA");
    assert_eq!(rate.len(), 1, "{got:?}");
    let figures = &rate[0]["figures"]["error_rate_pct"];
    assert!(
        (figures["value"].as_f64().unwrap() - 40.0).abs() < 0.01,
        "{figures}"
    );
    assert!(figures["median"].as_f64().unwrap() < 6.0, "{figures}");
    // Still short of valid rows: the volume alert stays open, and says so only once.
    assert_eq!(of_kind(&got, "ALERTA", "VOLUMEN_ANOMALO").len(), 1);

    // The next normal night closes both.
    app.load(&[("report_13.txt", &sample(10_000, 13, 0.05))], &night(13));
    let got = hooks.wait_for(4, 10);
    assert_eq!(
        of_kind(&got, "RECUPERADO", "VOLUMEN_ANOMALO").len(),
        1,
        "{got:?}"
    );
    assert_eq!(
        of_kind(&got, "RECUPERADO", "TASA_ERROR_ANOMALA").len(),
        1,
        "{got:?}"
    );
    let open = app.run_ok("dispatcher", &["alerts", "--open", "--format", "csv"]);
    assert_eq!(open.lines().count(), 1, "none open: {open}");
    assert_eq!(
        app.count("SELECT count(*) FROM file_checks").await,
        13,
        "every file judged once"
    );
}

#[tokio::test]
async fn with_the_smtp_server_down_loads_go_on_and_the_mail_goes_when_it_is_back() {
    let app = spawn(Origin::Local).await;
    let to = marker("down");
    let mut server = PrivateSmtp::new(&app.home, 2250);
    app.configure(&format!(
        "[alerts]\nretry_delay_secs = 1\ntries = 30\n\n{}",
        email_section("localhost", 2250, "starttls", &to)
    ));
    let port = 24000 + fastrand::u16(0..2000);
    let app = app.with_env(&[(
        "VISITAS_TELEMETRY__METRICS_LISTEN",
        format!("127.0.0.1:{port}").as_str(),
    )]);
    // The server is down; the performer serves.
    let mut performer = Running::new(app.spawn_performer("2026-11-24"));
    performer.wait_for("performer starting", 30);
    app.put("report_1.txt", b"");
    app.put("report_2.txt", &sample(60, 2, 0.05));
    app.enqueue();
    performer.wait_for("alert notice not delivered; it will be tried again", 30);
    app.wait_until_done(1, &performer).await;
    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT estatus FROM bitacora_control ORDER BY archivo")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(
        statuses,
        ["FALLO_LAYOUT", "COMPLETADO_CON_ERRORES"],
        "loads went on"
    );
    // Counted, and the open alert shows (the gauges are refreshed every 5 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let metrics = loop {
        let metrics = crate::operators::scrape(port);
        if metrics.contains("visitas_alerts_open{kind=\"FALLO_LAYOUT\"} 1")
            || std::time::Instant::now() > deadline
        {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    for needle in [
        "visitas_alert_notices_failed_total{channel=\"email\"}",
        "visitas_alerts_open{kind=\"FALLO_LAYOUT\"} 1",
        "visitas_alerts_open{kind=\"ARCHIVO_AUSENTE\"} 0",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from {metrics}");
    }
    // Back: the retry delivers it.
    server.start();
    let mails = wait_for_mails(&server.mail_dir(), &to, 1, 30);
    assert!(
        mails[0].subject().contains("FALLO_LAYOUT"),
        "{}",
        mails[0].subject()
    );
    performer.wait_for("alert notice sent", 10);
    performer.terminate();
    let sent: i64 = app
        .count("SELECT count(*) FROM alert_notices WHERE sent_at IS NOT NULL AND tries > 1")
        .await;
    assert_eq!(sent, 1);
    assert_eq!(mails_in(&server.mail_dir(), &to).len(), 1, "sent once");
}

#[tokio::test]
async fn an_open_alert_repeats_until_an_operator_acknowledges_it() {
    let (app, hooks, to) = watched("repeat", starttls_port(), "starttls").await;
    app.configure("[expect.visitas]\ndays = \"*\"\ndue_by = \"00:00\"\n");
    let app = app.with_env(&[("VISITAS_ALERTS__REPEAT_EVERY", "1s")]);
    app.run_ok("dispatcher", &["check"]);
    hooks.wait_for(1, 10);
    std::thread::sleep(Duration::from_millis(1100));
    let said = app.run_ok("dispatcher", &["check"]);
    assert!(said.contains("1 reminder(s) queued"), "{said}");
    let got = hooks.wait_for(2, 10);
    assert_eq!(got[1]["notice"], "RECORDATORIO");
    assert_eq!(got[1]["event"], "ARCHIVO_AUSENTE");
    let mails = wait_for_mails(&mail_dir(starttls_port()), &to, 2, 10);
    assert!(
        mails[1].subject().contains("still open since"),
        "{}",
        mails[1].subject()
    );
    let id = got[0]["alert_id"].to_string();
    let refused = app.run("dispatcher", &["alerts", "ack", &id, "--note", " "]);
    assert!(!refused.status.success(), "a note is required");
    let acked = app.run_ok(
        "dispatcher",
        &[
            "alerts",
            "ack",
            &id,
            "--note",
            "sender confirmed: nothing today",
        ],
    );
    assert!(acked.contains("acknowledged"), "{acked}");
    std::thread::sleep(Duration::from_millis(1100));
    let said = app.run_ok("dispatcher", &["check"]);
    assert!(
        said.contains("0 alert(s) raised") && said.contains("0 reminder(s)"),
        "{said}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        hooks.received().len(),
        2,
        "no RECUPERADO, no reminder after the ack"
    );
    let listed = app.run_ok("dispatcher", &["alerts", "--format", "csv"]);
    assert!(
        listed.contains("sender confirmed: nothing today"),
        "{listed}"
    );
    let again = app.run("dispatcher", &["alerts", "ack", &id, "--note", "twice"]);
    assert!(!again.status.success());
}

#[tokio::test]
async fn a_file_alert_closes_when_its_file_is_retried_and_loads_or_is_discarded() {
    // E-mail over implicit TLS (SMTPS), AUTH as the service's user.
    let tls_port: u16 = smtp("SMTP_TLS_PORT").parse().unwrap();
    let (app, hooks, to) = watched("files", tls_port, "implicit").await;
    let good = sample(50, 5, 0.05);
    let broken = String::from_utf8(good.clone())
        .unwrap()
        .replacen("Badmail", "Bad mail", 1);
    app.load(
        &[("report_1.txt", broken.as_bytes()), ("report_2.txt", b"")],
        "2026-11-24",
    );
    let got = hooks.wait_for(2, 10);
    assert!(got.iter().all(|h| h["event"] == "FALLO_LAYOUT"), "{got:?}");
    let mails = wait_for_mails(&crate::helpers::mail_dir(tls_port), &to, 2, 10);
    assert_eq!(mails[0].meta["mode"], "tls");
    assert_eq!(mails[0].meta["auth_user"], "visitas");
    let subject = |file: &str| format!("[visitas] FALLO_LAYOUT visitas 2026-11-24 {file}");
    assert!(mails.iter().any(|m| m.subject() == subject("report_1.txt")));
    // The operator fixes report_1.txt and retries it; discards report_2.txt.
    let one = app.audit_of("report_1.txt").await;
    let copy = one.ruta_backup.clone().unwrap();
    std::fs::write(&copy, &good).unwrap();
    app.run_ok("dispatcher", &["quarantine", "retry", &one.id.to_string()]);
    app.perform("2026-11-24");
    let got = hooks.wait_for(3, 10);
    assert_eq!(got[2]["event"], "RECUPERADO");
    assert_eq!(got[2]["file"], "report_1.txt");
    assert!(
        got[2]["message"].as_str().unwrap().contains("retried as"),
        "{}",
        got[2]
    );
    let two = app.audit_of("report_2.txt").await;
    app.run_ok(
        "dispatcher",
        &[
            "quarantine",
            "discard",
            &two.id.to_string(),
            "--reason",
            "empty",
        ],
    );
    let got = hooks.wait_for(4, 10);
    assert_eq!(
        (got[3]["event"].as_str(), got[3]["file"].as_str()),
        (Some("RECUPERADO"), Some("report_2.txt"))
    );
    assert!(
        got[3]["message"]
            .as_str()
            .unwrap()
            .contains("discarded: empty")
    );
    let mails = wait_for_mails(&crate::helpers::mail_dir(tls_port), &to, 4, 10);
    assert!(
        mails[3]
            .subject()
            .starts_with("[visitas] RECUPERADO FALLO_LAYOUT")
    );
    let open = app.run_ok("dispatcher", &["alerts", "--open", "--format", "csv"]);
    assert_eq!(open.lines().count(), 1, "{open}");
}

#[tokio::test]
async fn a_failure_whose_process_stopped_before_alerting_is_raised_by_the_check() {
    // The submission port: STARTTLS and AUTH required.
    let port: u16 = smtp("SMTP_SUBMISSION_PORT").parse().unwrap();
    let (app, hooks, to) = watched("reconcile", port, "starttls").await;
    app.load(&[("report_1.txt", b"")], "2026-11-24");
    hooks.wait_for(1, 10);
    // As if the performer had died between recording the failure and raising its alert.
    sqlx::query("TRUNCATE alert_notices, alerts")
        .execute(&app.db)
        .await
        .unwrap();
    let said = app.run_ok("dispatcher", &["check"]);
    assert!(said.contains("1 alert(s) raised"), "{said}");
    let got = hooks.wait_for(2, 10);
    assert_eq!(
        (got[1]["event"].as_str(), got[1]["file"].as_str()),
        (Some("FALLO_LAYOUT"), Some("report_1.txt"))
    );
    let mails = wait_for_mails(&crate::helpers::mail_dir(port), &to, 2, 10);
    assert_eq!(mails[1].meta["auth_user"], "visitas");
    let said = app.run_ok("dispatcher", &["check"]);
    assert!(said.contains("0 alert(s) raised"), "{said}");
}

#[tokio::test]
async fn e_mail_refuses_a_server_it_cannot_trust_and_says_why() {
    // A server whose certificate the configured CA did not sign, and one whose name is
    // not in its certificate: both refused, given up after their tries, and listed so.
    let port = starttls_port();
    for (host, ca) in [
        ("localhost", smtp("SMTP_OTHER_CA_FILE")),
        (smtp("SMTP_MISMATCH_HOST").as_str(), smtp("SMTP_CA_FILE")),
    ] {
        let app = spawn(Origin::Local).await;
        let to = marker("untrusted");
        let section =
            email_section(host, port, "starttls", &to).replace(&smtp("SMTP_CA_FILE"), &ca);
        app.configure(&format!(
            "[business]\ntime_zone = \"UTC\"\n[alerts]\ntries = 1\n{section}\n\
             [expect.visitas]\ndays = \"*\"\ndue_by = \"00:00\"\n"
        ));
        let said = app.run_ok("dispatcher", &["check"]);
        assert!(said.contains("alert notice given up"), "{said}");
        let listed = app.run_ok("dispatcher", &["alerts", "--open", "--format", "csv"]);
        assert!(listed.contains("1 given up (SMTP"), "{listed}");
        assert!(mails_in(&mail_dir(port), &to).is_empty());
    }
    // Without TLS, to the loopback: allowed (the plain port).
    let plain: u16 = smtp("SMTP_PLAIN_PORT").parse().unwrap();
    let app = spawn(Origin::Local).await;
    let to = marker("plain");
    app.configure(&format!(
        "[business]\ntime_zone = \"UTC\"\n[alerts.email]\nhost = \"127.0.0.1\"\nport = {plain}\n\
         tls = \"none\"\nfrom = \"visitas@localhost\"\nto = [\"{to}\"]\n\
         [expect.visitas]\ndays = \"*\"\ndue_by = \"00:00\"\n"
    ));
    app.run_ok("dispatcher", &["check"]);
    let mail = &wait_for_mails(&mail_dir(plain), &to, 1, 10)[0];
    assert_eq!(mail.meta["tls"], false);
    let listed = app.run_ok("dispatcher", &["alerts", "--open", "--format", "csv"]);
    assert!(listed.contains(",1 sent,"), "{listed}");
}
