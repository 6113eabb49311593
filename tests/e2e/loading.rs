//! docs/data-contract.md §5 invariant 2 and §6: content is loaded once; loaded files are backed up and leave the origin.

use crate::helpers::{Origin, spawn};
use shared::fixtures::{FileSpec, generate};

#[tokio::test]
async fn same_content_is_duplicado_and_a_reused_name_with_new_content_loads() {
    let app = spawn(Origin::Sftp).await;
    let x = generate(&FileSpec {
        rows: 300,
        seed: 7,
        ..Default::default()
    });
    app.load(&[("report_1.txt", &x.bytes)], "2026-11-24");
    let first = app.audit_of("report_1.txt").await;
    assert_eq!(first.estatus, "COMPLETADO_CON_ERRORES");
    assert_eq!(first.validos, Some(x.valid as i32));
    assert!(!app.at_origin("report_1.txt"));
    let rows_after_first = app.count("SELECT count(*) FROM estadisticas").await;

    // Same bytes, new name.
    app.load(&[("report_2.txt", &x.bytes)], "2026-11-24");
    let dup = app.audit_of("report_2.txt").await;
    assert_eq!(dup.estatus, "DUPLICADO");
    assert!(
        dup.mensaje
            .unwrap()
            .contains(&format!("bitacora_control.id = {}", first.id))
    );
    assert_eq!(dup.sha256, first.sha256);
    assert_eq!(
        app.count("SELECT count(*) FROM estadisticas").await,
        rows_after_first,
        "a duplicate loads nothing"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM errores WHERE archivo = 'report_2.txt'")
            .await,
        0
    );
    assert!(
        !app.at_origin("report_2.txt"),
        "a duplicate leaves the origin"
    );
    assert!(
        std::path::Path::new(&dup.ruta_backup.unwrap()).exists(),
        "and is backed up"
    );

    // Same name, new content: a new file, loaded.
    let y = generate(&FileSpec {
        rows: 200,
        seed: 8,
        ..Default::default()
    });
    app.load(&[("report_1.txt", &y.bytes)], "2026-11-24");
    let audits = app.audit().await;
    let reused = audits
        .iter()
        .filter(|a| a.archivo == "report_1.txt")
        .collect::<Vec<_>>();
    assert_eq!(reused.len(), 2);
    assert_eq!(reused[1].estatus, "COMPLETADO_CON_ERRORES");
    assert_eq!(reused[1].validos, Some(y.valid as i32));

    // The backup copies are byte-identical to what was loaded.
    let backup = std::fs::read(reused[0].ruta_backup.as_ref().unwrap()).unwrap();
    assert_eq!(backup, x.bytes);
    app.check_invariants().await;
}

#[tokio::test]
async fn detail_rows_always_have_their_audit_row_in_the_database_itself() {
    let app = spawn(Origin::Local).await;
    app.load(
        &[(
            "report_1.txt",
            &generate(&FileSpec {
                rows: 40,
                ..Default::default()
            })
            .bytes,
        )],
        "2026-11-24",
    );
    let audit = app.audit_of("report_1.txt").await;
    let orphan = sqlx::query(
        "INSERT INTO estadisticas (bitacora_id, archivo, linea, email, fecha_envio) VALUES (999999, 'x', 2, 'a@b.co', now())",
    )
    .execute(&app.db)
    .await
    .unwrap_err()
    .to_string();
    assert!(
        orphan.contains("violates the reference to bitacora_control"),
        "{orphan}"
    );
    let orphan = sqlx::query(
        "INSERT INTO errores (bitacora_id, archivo, linea, tipo_error, detalle, fila_original) VALUES (999999, 'x', 2, 'FIELD_COUNT', '', '')",
    )
    .execute(&app.db)
    .await
    .unwrap_err()
    .to_string();
    assert!(orphan.contains("violates the reference"), "{orphan}");
    let moved = sqlx::query("UPDATE estadisticas SET bitacora_id = 999999 WHERE linea = 2")
        .execute(&app.db)
        .await;
    assert!(
        moved
            .unwrap_err()
            .to_string()
            .contains("violates the reference")
    );
    let deleted = sqlx::query("DELETE FROM bitacora_control WHERE id = $1")
        .bind(audit.id)
        .execute(&app.db)
        .await;
    let deleted = deleted.unwrap_err().to_string();
    assert!(
        deleted.contains("violates the reference from its detail rows"),
        "an audit row with details stays: {deleted}"
    );
    app.check_invariants().await;
}

/// Rejected records are copied in one go, or every `batch_rows` (50 in the tests) when
/// there are more: a file of mostly rejects crosses that bound several times and still
/// lands every record once, in its line.
#[tokio::test]
async fn a_file_of_mostly_rejects_records_each_one_once() {
    let app = spawn(Origin::Sftp).await;
    let g = generate(&FileSpec {
        rows: 500,
        invalid_ratio: 0.5,
        seed: 21,
        ..Default::default()
    });
    assert!(
        g.invalid_total() > 4 * 50,
        "crosses the flush bound several times"
    );
    app.load(&[("report_1.txt", &g.bytes)], "2026-11-24");
    let audit = app.audit_of("report_1.txt").await;
    assert_eq!(audit.estatus, "COMPLETADO_CON_ERRORES");
    assert_eq!(audit.validos, Some(g.valid as i32));
    assert_eq!(audit.errores, Some(g.invalid_total() as i32));
    let lines = "SELECT count(DISTINCT linea) FROM errores WHERE archivo = 'report_1.txt'";
    assert_eq!(app.count(lines).await, g.invalid_total() as i64);
    for (code, n) in &g.invalid {
        let of_code = format!("SELECT count(*) FROM errores WHERE tipo_error = '{code}'");
        assert_eq!(app.count(&of_code).await, *n as i64, "{code}");
    }
    app.check_invariants().await;
}
