//! Issue 5: the operators' day — commands, logs, metrics, alerts, the read-only role.

use crate::helpers::{Origin, Running, spawn};
use shared::fixtures::{FileSpec, HEADER, generate};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

#[tokio::test]
async fn quarantine_retry_of_a_fixed_layout_failure_loads_it_once_even_twice() {
    let app = spawn(Origin::Sftp).await;
    let good = generate(&FileSpec {
        rows: 80,
        ..Default::default()
    });
    let broken = String::from_utf8(good.bytes.clone())
        .unwrap()
        .replacen("Badmail", "Bad mail", 1);
    app.load(&[("report_1.txt", broken.as_bytes())], "2026-11-24");
    let failed = app.audit_of("report_1.txt").await;
    assert_eq!(failed.estatus, "FALLO_LAYOUT");
    let listed = app.run_ok("dispatcher", &["quarantine", "list", "--format", "csv"]);
    assert!(
        listed.contains(&format!("{},report_1.txt,FALLO_LAYOUT", failed.id)),
        "{listed}"
    );

    // The operator fixes the header of the quarantined copy, then retries twice.
    let copy = failed.ruta_backup.clone().unwrap();
    let text = std::fs::read_to_string(&copy)
        .unwrap()
        .replacen("Bad mail", "Badmail", 1);
    std::fs::write(&copy, text).unwrap();
    let id = failed.id.to_string();
    let first = app.run_ok("dispatcher", &["quarantine", "retry", &id]);
    assert!(
        first.contains("re-enqueued as bitacora_control.id"),
        "{first}"
    );
    let second = app.run_ok("dispatcher", &["quarantine", "retry", &id]);
    assert!(second.contains("already re-enqueued"), "{second}");
    app.perform("2026-11-24");
    app.run_ok("dispatcher", &["quarantine", "retry", &id]);
    app.perform("2026-11-24");

    let retried: Vec<(String, Option<i32>)> = sqlx::query_as(
        "SELECT estatus, registros_validos FROM bitacora_control WHERE reprocesa_de = $1",
    )
    .bind(failed.id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        retried,
        vec![(
            "COMPLETADO_CON_ERRORES".to_string(),
            Some(good.valid as i32)
        )]
    );
    assert_eq!(
        app.count("SELECT count(*) FROM estadisticas").await,
        good.valid as i64,
        "loaded once"
    );
    assert!(
        !std::path::Path::new(&copy).exists(),
        "the quarantined copy went to the backup"
    );
    let listed = app.run_ok("dispatcher", &["quarantine", "list", "--format", "csv"]);
    assert_eq!(
        listed
            .lines()
            .filter(|l| l.contains("report_1.txt"))
            .count(),
        0,
        "{listed}"
    );
    app.check_invariants().await;
}

#[tokio::test]
async fn quarantine_discard_records_the_reason_and_sets_the_file_aside() {
    let app = spawn(Origin::Local).await;
    app.load(&[("report_1.txt", b"")], "2026-11-24");
    let a = app.audit_of("report_1.txt").await;
    let refused = app.run(
        "dispatcher",
        &["quarantine", "discard", &a.id.to_string(), "--reason", " "],
    );
    assert!(!refused.status.success(), "a reason is required");
    app.run_ok(
        "dispatcher",
        &[
            "quarantine",
            "discard",
            &a.id.to_string(),
            "--reason",
            "empty; sender resends",
        ],
    );
    let (reason, copy): (String, String) =
        sqlx::query_as("SELECT motivo_descarte, ruta_backup FROM bitacora_control WHERE id = $1")
            .bind(a.id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(reason, "empty; sender resends");
    assert!(
        copy.contains("quarantine/discarded/") && std::path::Path::new(&copy).exists(),
        "{copy}"
    );
    let listed = app.run_ok("dispatcher", &["quarantine", "list", "--format", "json"]);
    let listed: serde_json::Value = serde_json::from_str(
        listed
            .lines()
            .skip_while(|l| !l.starts_with('['))
            .collect::<Vec<_>>()
            .join("\n")
            .as_str(),
    )
    .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 0);
    let retry = app.run("dispatcher", &["quarantine", "retry", &a.id.to_string()]);
    assert!(!retry.status.success(), "a discarded file is not retried");
}

fn json_of(output: &str) -> serde_json::Value {
    let start = output.find(['[', '{']).unwrap();
    let end = output.rfind([']', '}']).unwrap();
    serde_json::from_str(&output[start..=end]).unwrap()
}

#[tokio::test]
async fn status_and_reports_in_every_format() {
    let app = spawn(Origin::Local).await;
    let g = generate(&FileSpec {
        rows: 200,
        invalid_ratio: 0.1,
        ..Default::default()
    });
    app.load(
        &[("report_1.txt", &g.bytes), ("report_2.txt", b"")],
        "2026-11-24",
    );
    let day = app.run_ok(
        "dispatcher",
        &["report", "--day", "2026-11-24", "--format", "json"],
    );
    let day = json_of(&day);
    let rows = day.as_array().unwrap();
    let status = |name: &str| {
        rows.iter()
            .find(|r| r["section"] == "status" && r["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        status("COMPLETADO_CON_ERRORES")["records_valid"],
        g.valid as i64
    );
    assert_eq!(status("FALLO_LAYOUT")["files"], 1);
    let top = rows.iter().filter(|r| r["section"] == "error_type").count();
    assert_eq!(
        top,
        g.invalid.len(),
        "every error type of the day is listed"
    );
    let month = app.run_ok(
        "dispatcher",
        &["report", "--month", "2026-11", "--format", "csv"],
    );
    assert!(
        month.contains("section,name,files,records_total,records_valid,records_error"),
        "{month}"
    );
    assert!(
        month.contains(&format!(
            "status,COMPLETADO_CON_ERRORES,1,200,{},{}",
            g.valid,
            g.invalid_total()
        )),
        "{month}"
    );
    let table = app.run_ok("dispatcher", &["report", "--month", "2026-11"]);
    assert!(
        table.contains("Report 2026-11") && table.contains("FALLO_LAYOUT"),
        "{table}"
    );
    let status = json_of(&app.run_ok("dispatcher", &["status", "--format", "json"]));
    assert_eq!(status["queue"][2]["state"], "done");
    assert_eq!(status["queue"][2]["items"], 1);
    assert_eq!(status["last_dispatch_run"][0]["enqueued"], 2);
    // In a script (no terminal) the long `run` shows no progress bar.
    let out = app.run("dispatcher", &["run", "--as-of", "2026-11-24"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("waiting for the performers"));
}

#[tokio::test]
async fn each_file_gets_its_own_log_and_every_line_names_it() {
    let app = spawn(Origin::Local).await;
    let g = generate(&FileSpec {
        rows: 30,
        ..Default::default()
    });
    app.load(&[("report_7.txt", &g.bytes)], "2026-11-24");
    let day = std::fs::read_dir(app.root.join("logs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let per_file = std::fs::read_to_string(day.join("report_7.log")).unwrap();
    let lines: Vec<serde_json::Value> = per_file
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines.iter().any(|l| l["message"] == "load committed"),
        "{per_file}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l["file"] == "report_7.txt" && l["work_item_id"].is_i64()),
        "{per_file}"
    );
    let orchestrator = std::fs::read_to_string(day.join("performer.log")).unwrap();
    assert!(
        orchestrator.contains("performer starting") && !orchestrator.contains("load committed")
    );
    assert!(
        std::fs::read_to_string(day.join("dispatcher.log"))
            .unwrap()
            .contains("dispatch finished")
    );
}

/// A one-shot HTTP listener: records every request body, answers 500 to the first (to
/// prove the retry) and 204 to the rest.
pub(crate) fn webhook_receiver() -> (String, std::sync::mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/hook?token=s3cret",
        listener.local_addr().unwrap()
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if line == "\r\n" || line.is_empty() {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let answer = if n == 0 {
                "500 Internal Server Error"
            } else {
                "204 No Content"
            };
            write!(
                stream,
                "HTTP/1.1 {answer}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
            .unwrap();
            let _ = tx.send(String::from_utf8(body).unwrap());
        }
    });
    (url, rx)
}

#[tokio::test]
async fn alerts_reach_the_webhook_for_layout_system_failures_and_an_undrained_night() {
    let mut app = spawn(Origin::Local).await;
    let (url, received) = webhook_receiver();
    app.env.push(("VISITAS_ALERTS__WEBHOOK_URL".into(), url));
    app.env
        .push(("VISITAS_ALERTS__TIMEOUT_SECS".into(), "2".into()));
    let header_only = format!("{}\n", HEADER.replace("IPs", "IP"));
    app.load(&[("report_1.txt", header_only.as_bytes())], "2026-11-24");
    let first = received
        .recv_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    let retried = received
        .recv_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        first, retried,
        "a failed POST is retried with the same alert"
    );
    let alert: serde_json::Value = serde_json::from_str(&retried).unwrap();
    assert_eq!(alert["event"], "FALLO_LAYOUT");
    assert_eq!(alert["file"], "report_1.txt");
    assert!(
        alert["message"].as_str().unwrap().contains("column 13"),
        "{alert}"
    );

    app.put("report_2.txt", b"x");
    app.enqueue();
    std::fs::remove_file(app.origin.join("report_2.txt")).unwrap();
    app.perform("2026-11-24");
    let alert: serde_json::Value = serde_json::from_str(
        &received
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (alert["event"].as_str(), alert["file"].as_str()),
        (Some("FALLO_SISTEMA"), Some("report_2.txt"))
    );

    // No performer: the night cannot drain before its (short) deadline.
    app.put("report_3.txt", b"y");
    app.env
        .push(("VISITAS_DISPATCHER__DRAIN_TIMEOUT_SECS".into(), "1".into()));
    let out = app.run("dispatcher", &["run", "--as-of", "2026-11-24"]);
    assert_eq!(out.status.code(), Some(3));
    let alert: serde_json::Value = serde_json::from_str(
        &received
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(alert["event"], "NOCHE_SIN_DRENAR");
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !logs.contains("s3cret"),
        "the webhook token never reaches the logs"
    );
}

pub(crate) fn scrape(port: u16) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

#[tokio::test]
async fn the_performer_serves_prometheus_metrics() {
    let mut app = spawn(Origin::Local).await;
    let port = 24000 + fastrand::u16(0..2000);
    app.env.push((
        "VISITAS_TELEMETRY__METRICS_LISTEN".into(),
        format!("127.0.0.1:{port}"),
    ));
    let g = generate(&FileSpec {
        rows: 100,
        ..Default::default()
    });
    app.put("report_1.txt", &g.bytes);
    app.put("report_2.txt", b"");
    app.enqueue();
    let mut performer = Running::new(app.spawn_performer("2026-11-24"));
    performer.wait_for("deleted at the origin", 30);
    performer.wait_for("FALLO_LAYOUT", 30);
    std::thread::sleep(std::time::Duration::from_secs(6)); // one refresh of the queue gauges
    let text = scrape(port);
    performer.terminate();
    for needle in [
        "visitas_files_total{status=\"COMPLETADO_CON_ERRORES\"} 1".to_string(),
        "visitas_files_total{status=\"FALLO_LAYOUT\"} 1".to_string(),
        format!("visitas_rows_total{{kind=\"valid\"}} {}", g.valid),
        format!("visitas_rows_total{{kind=\"error\"}} {}", g.invalid_total()),
        "visitas_stage_seconds_bucket{stage=\"load\"".to_string(),
        "visitas_stage_seconds_count{stage=\"download\"} 2".to_string(),
        "visitas_queue_depth{state=\"done\"} 1".to_string(),
        "visitas_queue_depth{state=\"failed\"} 1".to_string(),
        "visitas_oldest_pending_age_seconds 0".to_string(),
    ] {
        assert!(text.contains(&needle), "{needle} missing from:\n{text}");
    }
}

#[tokio::test]
async fn the_operator_role_reads_everything_and_writes_nothing() {
    let app = spawn(Origin::Local).await;
    app.load(
        &[(
            "report_1.txt",
            &generate(&FileSpec {
                rows: 20,
                ..Default::default()
            })
            .bytes,
        )],
        "2026-11-24",
    );
    let login = format!("operador_{}", fastrand::u32(..));
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE {login} LOGIN IN ROLE visitas_lectura"
    )))
    .execute(&app.db)
    .await
    .unwrap();
    let url = app.db_url().replacen("postgres@", &format!("{login}@"), 1);
    let operator = sqlx::PgPool::connect(&url).await.unwrap();
    for table in [
        "bitacora_control",
        "estadisticas",
        "errores",
        "visitantes",
        "work_items",
        "dispatch_runs",
        "reporte_mensual",
        "resumen_diario",
    ] {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&operator)
                .await
                .unwrap_or_else(|e| panic!("SELECT on {table}: {e}"));
        assert!(n >= 0);
    }
    for write in [
        "INSERT INTO visitantes (email, fecha_primera_visita, fecha_ultima_visita, visitas_totales, visitas_anio_actual, visitas_mes_actual, contadores_al) VALUES ('x@y.com', now(), now(), 1, 1, 1, now())",
        "UPDATE bitacora_control SET estatus = 'COMPLETADO'",
        "DELETE FROM estadisticas",
        "DELETE FROM work_items",
        "CREATE TABLE sneaky (x int)",
    ] {
        let err = sqlx::query(write)
            .execute(&operator)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("permission denied"), "{write}: {err}");
    }
    operator.close().await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP ROLE {login}")))
        .execute(&app.db)
        .await
        .unwrap();
}
