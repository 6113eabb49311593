//! docs/data-contract.md §3 and §6: layout failures load nothing and wait in quarantine; header-only loads 0 rows.

use crate::helpers::{Origin, spawn};
use shared::fixtures::HEADER;

const ROW: &str = "ana@example.com,J1,-,,08/02/2013 18:30,,1,0,,0,0,,,,";

#[tokio::test]
async fn bad_header_empty_and_header_only_end_as_the_spec_says() {
    let app = spawn(Origin::Sftp).await;
    let renamed = format!("{}\n{ROW}\n", HEADER.replace("Badmail", "Bad mail"));
    let missing = format!("{}\n{ROW}\n", HEADER.replace(",Plataformas", ""));
    let header_only = format!("{HEADER}\n");
    app.load(
        &[
            ("report_1.txt", renamed.as_bytes()),
            ("report_2.txt", missing.as_bytes()),
            ("report_3.txt", b""),
            ("report_4.txt", header_only.as_bytes()),
        ],
        "2026-11-24",
    );

    for (file, needle) in [
        ("report_1.txt", "column 3"),
        ("report_2.txt", "Plataformas"),
        ("report_3.txt", "empty"),
    ] {
        let a = app.audit_of(file).await;
        assert_eq!(a.estatus, "FALLO_LAYOUT", "{file}");
        let message = a.mensaje.unwrap();
        assert!(
            message.contains(file) && message.contains("line 1") && message.contains(needle),
            "{message}"
        );
        assert_eq!(a.totales, None, "nothing counted for {file}");
        let copy = a.ruta_backup.unwrap();
        assert!(
            copy.starts_with(&app.root.join("quarantine").display().to_string()),
            "{copy}"
        );
        assert!(std::path::Path::new(&copy).exists());
        assert!(!app.at_origin(file), "{file} removed from the origin");
    }
    let nothing = app
        .count("SELECT (SELECT count(*) FROM estadisticas) + (SELECT count(*) FROM errores) + (SELECT count(*) FROM visitantes)")
        .await;
    assert_eq!(nothing, 0, "nothing partial in any table");
    let header_only = app.audit_of("report_4.txt").await;
    assert_eq!(
        (header_only.estatus.as_str(), header_only.totales),
        ("COMPLETADO", Some(0))
    );
    // Layout failures are final: the queue does not retry them.
    assert_eq!(
        app.count("SELECT count(*) FROM work_items WHERE state = 'failed' AND attempts = 1")
            .await,
        3
    );

    // An empty file seen twice is FALLO_LAYOUT twice (only loads count as "already loaded").
    app.load(&[("report_5.txt", b"")], "2026-11-24");
    assert_eq!(app.audit_of("report_5.txt").await.estatus, "FALLO_LAYOUT");
    app.check_invariants().await;
}
