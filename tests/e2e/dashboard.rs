//! `ops/dashboard.json`: every panel's SQL runs on a loaded database as the read-only role.

use crate::helpers::{Origin, spawn};
use shared::fixtures::{FileSpec, generate};

/// Grafana's time macro, expanded as Grafana would for a wide range.
fn expand_macros(sql: &str) -> String {
    let mut out = sql.to_string();
    while let Some(start) = out.find("$__timeFilter(") {
        let open = start + "$__timeFilter(".len();
        let mut depth = 1;
        let end = out[open..]
            .char_indices()
            .find_map(|(i, c)| {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                (depth == 0).then_some(open + i)
            })
            .expect("balanced parentheses");
        let column = out[open..end].to_string();
        out.replace_range(
            start..=end,
            &format!("{column} BETWEEN '2000-01-01' AND '2100-01-01'"),
        );
    }
    out
}

#[tokio::test]
async fn every_dashboard_panel_query_runs_as_the_operator_role() {
    let app = spawn(Origin::Local).await;
    let g = generate(&FileSpec {
        rows: 100,
        ..Default::default()
    });
    app.load(
        &[("report_1.txt", &g.bytes), ("report_2.txt", b"")],
        "2026-11-24",
    );
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ops/dashboard.json"))
            .unwrap(),
    )
    .unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    let titles: Vec<&str> = panels
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for wanted in [
        "Files per day",
        "Success rate",
        "quarantine",
        "Status mix",
        "Error rate",
        "Top error types",
        "Open alerts",
        "Alert notices not delivered",
        "Open alerts by kind",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(wanted)),
            "{wanted} panel missing: {titles:?}"
        );
    }
    let mut tx = app.db.begin().await.unwrap();
    sqlx::query("SET LOCAL ROLE visitas_lectura")
        .execute(&mut *tx)
        .await
        .unwrap();
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            let sql = expand_macros(target["rawSql"].as_str().unwrap());
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .fetch_all(&mut *tx)
                .await
                .unwrap_or_else(|e| panic!("panel {}: {e}\n{sql}", panel["title"]));
            assert!(
                !rows.is_empty(),
                "panel {} returned nothing on a loaded database",
                panel["title"]
            );
        }
    }
}
