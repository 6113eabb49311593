//! Every byte accounted for: the corpus of odd and hostile files (`tests/corpus/`, whose
//! README holds the expected outcome of each) loaded through the real binaries over the
//! real SFTP server; no record lost, no file content turned into `FALLO_SISTEMA`, every
//! message as the operator reads it.

use crate::helpers::{Origin, TestApp, spawn};
use sha2::{Digest, Sha256};
use shared::fixtures::HEADER;
use shared::types::storable::{self, MESSAGE_MAX_CHARS};
use sqlx::Row;
use std::path::{Path, PathBuf};

/// A message may pass the cap by the words that say what was cut.
const MESSAGE_MAX_SHOWN: usize = MESSAGE_MAX_CHARS + 60;
const ROW: &str = "ana@example.com,J1,-,,08/02/2013 18:30,09/02/2013 10:00,3,0,-,,7,http://a,189.1.1.1,Chrome,Linux";

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// One row of the corpus README's table.
#[derive(Debug)]
struct Case {
    file: String,
    encoding: String,
    status: String,
    /// (total, valid, error), for a loaded file.
    records: Option<(i32, i32, i32)>,
    /// (line, code) of every rejected record.
    errores: Vec<(i32, String)>,
    /// Text expected in `mensaje_error` (layout failure) or in `detalle` of a line.
    says: Option<(Option<i32>, String)>,
}

fn manifest() -> Vec<Case> {
    let text = std::fs::read_to_string(corpus_dir().join("README.md")).unwrap();
    text.lines()
        .filter(|l| l.starts_with("| ") && l.contains(".txt"))
        .map(|l| {
            // No cell holds a `|`.
            let inner = l.trim().strip_prefix('|').and_then(|l| l.strip_suffix('|'));
            let cells: Vec<&str> = inner.unwrap().split('|').map(str::trim).collect();
            assert_eq!(cells.len(), 6, "corpus README row: {l}");
            let records = (!cells[3].is_empty()).then(|| {
                let n: Vec<i32> = cells[3].split('/').map(|n| n.parse().unwrap()).collect();
                (n[0], n[1], n[2])
            });
            let errores = cells[4]
                .split(", ")
                .filter(|e| !e.is_empty())
                .map(|e| {
                    let (line, code) = e.split_once(' ').unwrap();
                    (line.parse().unwrap(), code.to_string())
                })
                .collect();
            let says = (!cells[5].is_empty()).then(|| {
                let line_text = cells[5]
                    .split_once(": ")
                    .and_then(|(l, t)| Some((l.parse().ok()?, t.to_string())));
                match line_text {
                    Some((line, text)) => (Some(line), text),
                    None => (None, cells[5].to_string()),
                }
            });
            Case {
                file: cells[0].trim_end_matches(" (generated)").to_string(),
                encoding: cells[1].into(),
                status: cells[2].into(),
                records,
                errores,
                says,
            }
        })
        .collect()
}

/// The file's bytes: from the corpus directory, or made here when too big to keep.
fn bytes_of(file: &str) -> Vec<u8> {
    let five_mb = 5 * 1024 * 1024;
    match file {
        // The "one-line file of 5 MB without a header".
        "one-line-5mb-no-header.txt" => {
            let mut line = ROW.to_string();
            while line.len() < five_mb {
                line.push(',');
                line.push_str(ROW);
            }
            line.into_bytes()
        }
        "header-then-a-5mb-line.txt" => {
            let huge = ROW.replace("http://a", &"x".repeat(five_mb));
            format!("{HEADER}\n{huge}\n").into_bytes()
        }
        _ => std::fs::read(corpus_dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}")),
    }
}

/// The file's records as docs/data-contract.md §2/§7 define them, counted here from the bytes: physical
/// lines ending in LF or CRLF, decoded, without the header and the blank lines at the end.
fn records(bytes: &[u8]) -> Vec<String> {
    let (text, _) = shared::feed::decode(bytes);
    let segments: Vec<&str> = text.split('\n').collect();
    let last = segments.len() - 1;
    let mut lines: Vec<String> = segments
        .iter()
        .enumerate()
        // The segment after the last LF has no line end, so no CR of a CRLF.
        .map(|(i, s)| {
            if i < last {
                s.strip_suffix('\r').unwrap_or(s)
            } else {
                s
            }
            .to_string()
        })
        .collect();
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    lines.into_iter().skip(1).collect()
}

fn sha256(bytes: &[u8]) -> String {
    shared::local::hash::to_hex(&Sha256::digest(bytes))
}

#[tokio::test]
async fn every_corpus_file_is_accounted_for_to_the_line() {
    let app = spawn(Origin::Sftp).await;
    let cases = manifest();
    assert!(cases.len() >= 70, "the corpus has {} files", cases.len());
    let contents: Vec<Vec<u8>> = cases.iter().map(|c| bytes_of(&c.file)).collect();
    let mut hashes: Vec<String> = contents.iter().map(|b| sha256(b)).collect();
    hashes.sort();
    hashes.dedup();
    assert_eq!(hashes.len(), cases.len(), "corpus contents must differ");
    for (i, bytes) in contents.iter().enumerate() {
        app.put(&format!("report_{}.txt", i + 1), bytes);
    }
    app.enqueue();
    app.perform("2026-11-24");

    let mut wrong = Vec::new();
    for (i, (case, bytes)) in cases.iter().zip(&contents).enumerate() {
        let name = format!("report_{}.txt", i + 1);
        for problem in check(&app, case, &name, bytes).await {
            wrong.push(format!("{} ({name}): {problem}", case.file));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} problems in the corpus:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    app.check_invariants().await;
}

/// Everything that must hold for one file; returns what does not.
async fn check(app: &TestApp, case: &Case, name: &str, bytes: &[u8]) -> Vec<String> {
    let mut wrong = Vec::new();
    let mut expect = |ok: bool, what: String| {
        if !ok {
            wrong.push(what);
        }
    };
    let a = app.audit_of(name).await;
    expect(
        a.estatus == case.status,
        format!(
            "status {} (expected {}): {:?}",
            a.estatus, case.status, a.mensaje
        ),
    );
    expect(
        a.encoding.as_deref() == Some(case.encoding.as_str()),
        format!("encoding {:?}, expected {}", a.encoding, case.encoding),
    );
    expect(!app.at_origin(name), "still at the origin".into());
    match a.ruta_backup.as_deref().map(std::fs::read) {
        Some(Ok(copy)) => expect(
            copy == bytes,
            "the local copy differs from the file sent".into(),
        ),
        other => expect(false, format!("no local copy: {other:?}")),
    }
    if let Some(m) = &a.mensaje {
        expect(
            m.chars().count() <= MESSAGE_MAX_SHOWN,
            format!("mensaje_error of {} characters", m.chars().count()),
        );
    }
    let rows = sqlx::query(
        "SELECT linea, NULL::text, NULL::text, NULL::text FROM estadisticas WHERE bitacora_id = $1
         UNION ALL
         SELECT linea, tipo_error, detalle, fila_original FROM errores WHERE bitacora_id = $1
         ORDER BY 1",
    )
    .bind(a.id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    if case.status == "FALLO_LAYOUT" {
        expect(
            (a.totales, a.validos, a.errores) == (None, None, None),
            "counts of a layout failure".into(),
        );
        expect(
            rows.is_empty(),
            format!("{} rows of a layout failure", rows.len()),
        );
        let message = a.mensaje.clone().unwrap_or_default();
        expect(
            message.starts_with(&format!("{name}: line 1")),
            format!("mensaje_error does not name the file and line: {message}"),
        );
        if let Some((_, says)) = &case.says {
            expect(
                message.contains(says.as_str()),
                format!("mensaje_error {message:?} does not say {says:?}"),
            );
        }
        return wrong;
    }

    // No record lost: the counts, the table rows and the lines of the file agree.
    let lines = records(bytes);
    let counted = (a.totales, a.validos, a.errores);
    expect(
        Some(counted) == case.records.map(|(t, v, e)| (Some(t), Some(v), Some(e))),
        format!("records {counted:?}, expected {:?}", case.records),
    );
    expect(
        a.totales == Some(lines.len() as i32),
        format!(
            "registros_totales {:?}, the file has {} records",
            a.totales,
            lines.len()
        ),
    );
    let numbers: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    let every_line: Vec<i32> = (2..lines.len() as i32 + 2).collect();
    expect(
        numbers == every_line,
        format!(
            "the tables hold lines {numbers:?}, expected 2..={}",
            lines.len() + 1
        ),
    );
    let mut errores = Vec::new();
    for r in &rows {
        let (linea, code): (i32, Option<String>) = (r.get(0), r.get(1));
        let Some(code) = code else { continue };
        let (detalle, stored): (String, String) = (r.get(2), r.get(3));
        errores.push((linea, code));
        let Some(line) = lines.get(linea as usize - 2) else {
            continue;
        };
        expect(
            stored == storable::line(line),
            format!("line {linea}: fila_original {stored:?} is not the line {line:?}"),
        );
        if line.contains('\0') {
            expect(
                storable::unescape_line(&stored) == *line,
                format!("line {linea}: unescaping fila_original does not give the line back"),
            );
        }
        expect(
            detalle.chars().count() <= MESSAGE_MAX_SHOWN,
            format!(
                "line {linea}: detalle of {} characters",
                detalle.chars().count()
            ),
        );
        if let Some((Some(at), says)) = &case.says
            && *at == linea
        {
            expect(
                detalle.contains(says.as_str()),
                format!("line {linea}: detalle {detalle:?} does not say {says:?}"),
            );
        }
    }
    expect(
        errores == case.errores,
        format!("errores {errores:?}, expected {:?}", case.errores),
    );
    wrong
}

/// The 5 MB one-line file once gave a 5-million-character message in the table,
/// the log line and the webhook alike: each now says what to fix in a few lines.
#[tokio::test]
async fn a_huge_one_line_file_gets_a_short_message_everywhere_the_operator_looks() {
    let mut app = spawn(Origin::Local).await;
    let (url, received) = crate::operators::webhook_receiver();
    app.env.push(("VISITAS_ALERTS__WEBHOOK_URL".into(), url));
    app.env
        .push(("VISITAS_ALERTS__TIMEOUT_SECS".into(), "2".into()));
    let bytes = bytes_of("one-line-5mb-no-header.txt");
    app.load(&[("report_1.txt", &bytes)], "2026-11-24");

    let expected = "report_1.txt: line 1 has no line end in its first 65,536 bytes, so it cannot be the header (15 column names, about 140 characters): the header is missing or the lines do not end in LF or CRLF";
    let audit = app.audit_of("report_1.txt").await;
    assert_eq!(
        (audit.estatus.as_str(), audit.mensaje.as_deref()),
        ("FALLO_LAYOUT", Some(expected))
    );
    // The first POST is answered 500 on purpose; the retry carries the same alert.
    let _ = received.recv_timeout(std::time::Duration::from_secs(10));
    let alert: serde_json::Value = serde_json::from_str(
        &received
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(alert["message"], expected);
    let day = std::fs::read_dir(app.root.join("logs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let log = std::fs::read_to_string(day.join("report_1.log")).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("FALLO_LAYOUT"))
        .unwrap_or_else(|| panic!("no FALLO_LAYOUT line in {log}"));
    let line: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["error"], expected);
    assert!(
        log.len() < 20_000,
        "the file's log is {} bytes long",
        log.len()
    );
}
