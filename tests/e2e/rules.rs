//! docs/data-contract.md §2–§4: every rule, broken and kept, as seen in `errores` and `estadisticas`.

use crate::helpers::{Origin, spawn};
use shared::fixtures::HEADER;
use sqlx::Row;

const GOOD: &str = "ana@example.com,J1,-,,08/02/2013 18:30,09/02/2013 10:00,3,0,-,,7,http://a,189.1.1.1,Chrome,Linux";

/// `GOOD` with column `i` replaced.
fn with(i: usize, value: &str) -> String {
    let mut fields: Vec<String> = GOOD.split(',').map(str::to_string).collect();
    fields[i] = value.to_string();
    fields.join(",")
}

#[tokio::test]
async fn every_rule_is_enforced_in_the_tables() {
    let app = spawn(Origin::Sftp).await;
    let email_254 = format!(
        "{}@{}.{}.{}.com",
        "a".repeat(64),
        "b".repeat(61),
        "c".repeat(61),
        "d".repeat(61)
    );
    let long = "x".repeat(4097);
    // (record, expected tipo_error); line numbers follow from the order.
    let cases: Vec<(String, Option<&str>)> = vec![
        (with(0, "  Ana.Maria@Example.COM "), None),
        (with(0, &email_254), None),
        (with(0, &format!("z{email_254}")), Some("EMAIL_INVALIDO")),
        (with(0, "ana@localhost"), Some("EMAIL_INVALIDO")),
        (with(0, "ana..b@example.com"), Some("EMAIL_INVALIDO")),
        (with(0, "-"), Some("EMAIL_INVALIDO")),
        (with(4, "31/12/2013 23:59"), None),
        (with(4, "31/02/2013 10:00"), Some("FECHA_ENVIO_INVALIDA")),
        (with(4, "08/020/2013 18:30"), Some("FECHA_ENVIO_INVALIDA")),
        (with(4, "8/2/2013 18:30"), Some("FECHA_ENVIO_INVALIDA")),
        (with(4, "08/02/0000 10:00"), Some("FECHA_ENVIO_INVALIDA")),
        (with(4, ""), Some("FECHA_ENVIO_INVALIDA")),
        (with(5, "-"), None),
        (with(5, "29/02/2013 10:00"), Some("FECHA_OPEN_INVALIDA")),
        (with(8, "10/02/2013 07:05"), None),
        (with(8, "10/02/2013 7:05"), Some("FECHA_CLICK_INVALIDA")),
        (with(6, "2147483647"), None),
        (with(6, "2147483648"), Some("ENTERO_INVALIDO")),
        (with(7, "-2"), Some("ENTERO_INVALIDO")),
        (with(9, "1e3"), Some("ENTERO_INVALIDO")),
        (with(11, &long[1..]), None),
        (with(11, &long), Some("TEXTO_DEMASIADO_LARGO")),
        (with(12, "\"189.1.1.1,200.2.2.2\""), None),
        (with(13, "\"Say \"\"hi\"\"\""), None),
        (with(13, "\"unterminated"), Some("FIELD_COUNT")),
        (with(13, "\"closed\"trailing"), Some("FIELD_COUNT")),
        (with(13, "in\"side"), None),
        (format!("{GOOD},extra"), Some("FIELD_COUNT")),
        ("ana@example.com,J1".to_string(), Some("FIELD_COUNT")),
        (String::new(), Some("FIELD_COUNT")),
        (with(0, "bad").replace(",3,", ",x,"), Some("EMAIL_INVALIDO")),
    ];
    let mut text = format!("{HEADER}\n");
    for (record, _) in &cases {
        text.push_str(record);
        text.push('\n');
    }
    text.push_str("\n  \n"); // trailing blank lines are not records
    app.load(&[("report_1.txt", text.as_bytes())], "2026-11-24");

    let expected: Vec<(i32, String, String)> = cases
        .iter()
        .enumerate()
        .filter_map(|(i, (record, code))| {
            code.map(|c| (i as i32 + 2, c.to_string(), record.clone()))
        })
        .collect();
    let found: Vec<(i32, String, String)> =
        sqlx::query("SELECT linea, tipo_error, fila_original FROM errores ORDER BY linea")
            .fetch_all(&app.db)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
    assert_eq!(found, expected);

    let audit = app.audit_of("report_1.txt").await;
    assert_eq!(audit.estatus, "COMPLETADO_CON_ERRORES");
    let valid = cases.iter().filter(|(_, c)| c.is_none()).count() as i32;
    assert_eq!(
        (audit.totales, audit.validos),
        (Some(cases.len() as i32), Some(valid))
    );

    // Every failing rule is listed, the first one is the type.
    let detalle: String = sqlx::query_scalar("SELECT detalle FROM errores WHERE linea = $1")
        .bind(cases.len() as i32 + 1)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(
        detalle.contains("EMAIL_INVALIDO") && detalle.contains("Opens: ENTERO_INVALIDO"),
        "{detalle}"
    );

    // Stored values: trimmed, lower-cased, nulls, timestamps, integers, unquoted text.
    let row = sqlx::query(
        "SELECT email, badmail, baja, fecha_envio::text, fecha_open::text, opens, clicks, fecha_click, archivo
         FROM estadisticas WHERE linea = 2",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(row.get::<String, _>(0), "ana.maria@example.com");
    assert_eq!(row.get::<Option<String>, _>(1), None, "`-` is null");
    assert_eq!(row.get::<Option<String>, _>(2), None, "empty is null");
    assert_eq!(row.get::<String, _>(3), "2013-02-08 18:30:00");
    assert_eq!(row.get::<String, _>(4), "2013-02-09 10:00:00");
    assert_eq!(row.get::<Option<i32>, _>(5), Some(3));
    assert_eq!(row.get::<Option<i32>, _>(6), None);
    assert_eq!(row.get::<Option<chrono::NaiveDateTime>, _>(7), None);
    assert_eq!(row.get::<String, _>(8), "report_1.txt");
    let text_of = |line: usize, column: &'static str| {
        let db = app.db.clone();
        async move {
            sqlx::query_scalar::<_, Option<String>>(sqlx::AssertSqlSafe(format!(
                "SELECT {column} FROM estadisticas WHERE linea = {line}"
            )))
            .fetch_one(&db)
            .await
            .unwrap()
        }
    };
    assert_eq!(
        text_of(24, "ips").await.as_deref(),
        Some("189.1.1.1,200.2.2.2")
    );
    assert_eq!(
        text_of(25, "navegadores").await.as_deref(),
        Some("Say \"hi\"")
    );
    assert_eq!(
        text_of(28, "navegadores").await.as_deref(),
        Some("in\"side")
    );
    assert_eq!(text_of(22, "links").await.map(|s| s.len()), Some(4096));
    app.check_invariants().await;
}

#[tokio::test]
async fn bom_crlf_and_windows_1252_lose_nothing() {
    let app = spawn(Origin::Sftp).await;
    let crlf = format!(
        "\u{FEFF}{HEADER}\r\n{}\r\n\r\n{}\r\n\r\n",
        with(1, "Peña"),
        GOOD
    )
    .into_bytes();
    let mut cp1252 = format!("{HEADER}\n").into_bytes();
    cp1252.extend_from_slice(
        b"jose@example.com,Jos\xE9 \x81\x8D\x8F\x90\x9D \x80,-,,08/02/2013 18:30,,1,0,,0,0,,,,\n",
    );
    let mut cp1252_bom = b"\xEF\xBB\xBF".to_vec();
    cp1252_bom.extend_from_slice(&format!("{HEADER}\n{}\n", with(1, "x")).into_bytes());
    cp1252_bom.extend_from_slice(b"raul@example.com,Ra\xFAl,-,,08/02/2013 18:30,,1,0,,0,0,,,,\n");
    app.load(
        &[
            ("report_1.txt", &crlf),
            ("report_2.txt", &cp1252),
            ("report_3.txt", &cp1252_bom),
        ],
        "2026-11-24",
    );

    let crlf_audit = app.audit_of("report_1.txt").await;
    assert_eq!(
        (crlf_audit.estatus.as_str(), crlf_audit.encoding.as_deref()),
        ("COMPLETADO_CON_ERRORES", Some("utf-8"))
    );
    // The blank middle line is a FIELD_COUNT record at line 3; the trailing one is ignored.
    let (linea, original): (i32, String) =
        sqlx::query_as("SELECT linea, fila_original FROM errores e JOIN bitacora_control b ON b.id = e.bitacora_id WHERE b.archivo = 'report_1.txt'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!((linea, original.as_str()), (3, ""));
    assert_eq!(crlf_audit.totales, Some(3));
    let jyv: String = sqlx::query_scalar(
        "SELECT jyv FROM estadisticas WHERE linea = 2 AND archivo = 'report_1.txt'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(jyv, "Peña", "no BOM or CR left in the data");

    let cp = app.audit_of("report_2.txt").await;
    assert_eq!(
        (cp.estatus.as_str(), cp.encoding.as_deref()),
        ("COMPLETADO", Some("windows-1252"))
    );
    let jyv: String =
        sqlx::query_scalar("SELECT jyv FROM estadisticas WHERE archivo = 'report_2.txt'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(jyv, "José \u{81}\u{8D}\u{8F}\u{90}\u{9D} €");

    let bom = app.audit_of("report_3.txt").await;
    assert_eq!(
        (bom.estatus.as_str(), bom.encoding.as_deref(), bom.validos),
        ("COMPLETADO", Some("windows-1252"), Some(2))
    );
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT jyv FROM estadisticas WHERE archivo = 'report_3.txt' ORDER BY linea",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        names,
        vec!["x", "Raúl"],
        "the BOM is stripped even in the Windows-1252 fallback"
    );
    app.check_invariants().await;
}
