//! docs/architecture.md, "Security": host keys are verified, remote names never become unchecked paths.

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

/// Loads update returning visitors through a temporary table: a service role without
/// PostgreSQL's default `TEMPORARY` privilege is refused at start, naming the grant,
/// instead of failing the load of every file with a returning visitor.
#[tokio::test]
async fn a_service_role_that_may_not_create_temporary_tables_is_refused_at_start() {
    let mut app = spawn(Origin::Local).await;
    let role = format!("servicio_{}", fastrand::u32(..));
    let db = app.db_name();
    let pool = app.db.clone();
    let sql = move |text: String| {
        let pool = pool.clone();
        async move {
            sqlx::query(sqlx::AssertSqlSafe(text))
                .execute(&pool)
                .await
                .unwrap();
        }
    };
    sql(format!("CREATE ROLE {role} LOGIN")).await;
    sql(format!(
        "GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}"
    ))
    .await;
    sql(format!(
        "GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}"
    ))
    .await;
    sql(format!("REVOKE TEMPORARY ON DATABASE {db} FROM PUBLIC")).await;
    let url = app.db_url().replacen("postgres@", &format!("{role}@"), 1);
    app.env.push(("VISITAS_DATABASE__URL".into(), url));

    let refused = app.run("performer", &["run", "--once"]);
    let text = String::from_utf8_lossy(&refused.stderr).into_owned()
        + &String::from_utf8_lossy(&refused.stdout);
    assert!(!refused.status.success(), "{text}");
    assert!(
        text.contains("GRANT TEMPORARY ON DATABASE"),
        "names the grant: {text}"
    );

    sql(format!("GRANT TEMPORARY ON DATABASE {db} TO {role}")).await;
    app.run_ok("performer", &["run", "--once"]);

    sql(format!("DROP OWNED BY {role}")).await;
    sql(format!("DROP ROLE {role}")).await;
}
