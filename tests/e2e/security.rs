//! DESIGN "Security": host keys are verified, remote names never become unchecked paths.

use crate::helpers::{Origin, spawn, testbed};
use shared::fixtures::{FileSpec, generate};

#[tokio::test]
async fn a_changed_or_unknown_host_key_is_refused_and_nothing_is_downloaded() {
    let mut app = spawn(Origin::Sftp).await;
    let g = generate(&FileSpec {
        rows: 50,
        ..Default::default()
    });
    app.put("report_1.txt", &g.bytes);
    app.enqueue(); // with the right key

    let unknown = app.home.join("empty_known_hosts");
    std::fs::write(&unknown, "").unwrap();
    for (known_hosts, reason) in [
        (testbed().join("known_hosts.changed"), "differs"),
        (unknown, "not listed"),
    ] {
        app.env = vec![(
            "VISITAS_SFTP__KNOWN_HOSTS".into(),
            known_hosts.display().to_string(),
        )];
        let out = app.run("dispatcher", &["run", "--no-wait"]);
        let text = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "enqueue must fail: {text}");
        assert!(text.contains("host key") && text.contains(reason), "{text}");
    }

    app.env = vec![(
        "VISITAS_SFTP__KNOWN_HOSTS".into(),
        testbed().join("known_hosts.changed").display().to_string(),
    )];
    app.perform("2026-11-24");
    let a = app.audit_of("report_1.txt").await;
    assert_eq!(a.estatus, "FALLO_SISTEMA");
    assert!(
        a.mensaje.as_deref().unwrap_or("").contains("host key"),
        "{:?}",
        a.mensaje
    );
    assert!(app.at_origin("report_1.txt"), "the origin keeps the file");
    let staged = std::fs::read_dir(app.root.join("staging")).unwrap().count();
    assert_eq!(staged, 0, "nothing was downloaded");
    assert_eq!(app.count("SELECT count(*) FROM estadisticas").await, 0);
}

#[tokio::test]
async fn remote_names_with_dot_dot_or_slash_are_refused() {
    let app = spawn(Origin::Sftp).await;
    // A file outside the origin directory that a `..` name would reach.
    let outside_name = format!(
        "{}-outside.txt",
        app.origin.file_name().unwrap().to_string_lossy()
    );
    let outside = app.origin.parent().unwrap().join(&outside_name);
    std::fs::write(&outside, generate(&FileSpec::default()).bytes).unwrap();
    for name in [
        format!("../{outside_name}"),
        "sub/report_1.txt".to_string(),
        "report_1..txt".to_string(),
    ] {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO work_items (origin, source_name, source_path, file_name, size_bytes, mtime)
             VALUES ($2, $1, $1, $1, 1, now()) RETURNING id",
        )
        .bind(&name)
        .bind(app.origin_url())
        .fetch_one(&app.db)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO bitacora_control (work_item_id, archivo, ruta_origen) VALUES ($1, $2, $2)",
        )
        .bind(id)
        .bind(&name)
        .execute(&app.db)
        .await
        .unwrap();
    }
    app.perform("2026-11-24");
    for a in app.audit().await {
        assert_eq!(a.estatus, "FALLO_SISTEMA", "{}", a.archivo);
        assert!(
            a.mensaje.as_deref().unwrap_or("").contains("refused"),
            "{:?}",
            a.mensaje
        );
    }
    assert!(outside.exists(), "nothing outside the origin was touched");
    assert_eq!(
        std::fs::read_dir(app.root.join("staging")).unwrap().count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(app.root.join("quarantine"))
            .unwrap()
            .count(),
        0
    );
    std::fs::remove_file(outside).unwrap();
}
