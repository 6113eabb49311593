//! One vocabulary: the state and status values written outside Rust — the database's
//! own CHECK constraints (migrations), the invariants checked from outside
//! (`sql/checks/invariants.sql`) and the dashboard's SQL (`ops/dashboard.json`) — are
//! tested against the enums of `shared::types`, the one place their text is written.

use crate::testdb::TestDb;
use regex::Regex;
use shared::types::{AuditStatus, ItemState};
use std::collections::BTreeSet;

fn items() -> BTreeSet<String> {
    ItemState::ALL.iter().map(|s| s.to_string()).collect()
}

fn statuses() -> BTreeSet<String> {
    AuditStatus::ALL.iter().map(|s| s.to_string()).collect()
}

/// The quoted literals of `text`.
fn literals(text: &str) -> BTreeSet<String> {
    Regex::new(r"'([^']*)'")
        .unwrap()
        .captures_iter(text)
        .map(|c| c[1].to_string())
        .collect()
}

#[tokio::test]
async fn the_database_allows_exactly_the_enums_values() {
    let t = TestDb::new().await;
    for (table, column, values) in [
        ("work_items", "state", items()),
        ("bitacora_control", "estatus", statuses()),
    ] {
        let checks: Vec<String> = sqlx::query_scalar(
            "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
             WHERE c.conrelid = $1::regclass AND c.contype = 'c'",
        )
        .bind(table)
        .fetch_all(&t.db)
        .await
        .unwrap();
        let on_column: Vec<&String> = checks
            .iter()
            .filter(|c| c.contains(&format!("({column} ")) || c.contains(&format!("{column} =")))
            .collect();
        // The constraint that lists the column's domain lists exactly the enum's values.
        let domain = on_column
            .iter()
            .map(|c| literals(c))
            .max_by_key(BTreeSet::len)
            .unwrap_or_else(|| panic!("no CHECK on {table}.{column}"));
        assert_eq!(
            domain, values,
            "the CHECK of {table}.{column} against the enum"
        );
        // Every value any other constraint on the column names is one of them.
        for c in on_column {
            assert!(
                literals(c).is_subset(&values),
                "{table}.{column}: a constraint names a value the enum does not: {c}"
            );
        }
    }
}

#[test]
fn sql_outside_rust_names_only_the_enums_values() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    // A status or state compared in SQL: `estatus IN (…)`, `state = '…'`, `estatus <> '…'`.
    let compared =
        Regex::new(r"(?i)\b(estatus|state)\s*(?:NOT\s+IN|IN|=|<>|!=)\s*(\([^)]*\)|'[^']*')")
            .unwrap();
    for file in ["sql/checks/invariants.sql", "ops/dashboard.json"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let mut seen = 0;
        for c in compared.captures_iter(&text) {
            let values = if c[1].eq_ignore_ascii_case("state") {
                items()
            } else {
                statuses()
            };
            for value in literals(&c[2]) {
                assert!(
                    values.contains(&value),
                    "{file}: `{}` names `{value}`, not a value of the enum",
                    &c[0]
                );
                seen += 1;
            }
        }
        assert!(
            seen > 0,
            "{file}: no status compared (the pattern no longer reads it?)"
        );
    }
}
