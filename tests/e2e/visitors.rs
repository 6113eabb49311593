//! docs/data-contract.md §5: `visitantes` equals the aggregate of all valid rows, whatever the load order.

use crate::helpers::{Origin, spawn};
use chrono::{NaiveDate, NaiveDateTime};
use shared::fixtures::HEADER;

fn file(rows: &[(&str, &str)]) -> Vec<u8> {
    let mut text = format!("{HEADER}\n");
    for (email, sent) in rows {
        text.push_str(&format!("{email},J1,-,-,{sent},-,0,0,-,0,0,-,-,-,-\n"));
    }
    text.into_bytes()
}

fn at(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
}

type Visitor = (NaiveDateTime, NaiveDateTime, i32, i32, i32, NaiveDate);

async fn visitor(app: &crate::helpers::TestApp, email: &str) -> Visitor {
    sqlx::query_as(
        "SELECT fecha_primera_visita, fecha_ultima_visita, visitas_totales, visitas_anio_actual,
                visitas_mes_actual, contadores_al FROM visitantes WHERE email = $1",
    )
    .bind(email)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn visitors_match_the_aggregate_across_files_cases_and_load_order() {
    let app = spawn(Origin::Local).await;
    let day = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
    let first = file(&[
        ("ana@example.com", "15/11/2026 10:00"),
        ("Ana@Example.com", "01/03/2026 09:00"),
        ("bob@example.com", "20/12/2025 08:00"),
        ("carl@example.com", "31/11/2026 08:00"), // invalid: not a visit
    ]);
    app.load(&[("report_10.txt", &first)], "2026-11-24");
    // Loaded after, but holding both older and newer visits.
    let second = file(&[
        ("ANA@EXAMPLE.COM", "02/01/2020 00:00"),
        ("ana@example.com", "24/11/2026 23:59"),
        (" bob@example.com ", "05/11/2026 12:00"),
    ]);
    app.load(&[("report_5.txt", &second)], "2026-11-24");

    assert_eq!(
        visitor(&app, "ana@example.com").await,
        (at("2020-01-02 00:00"), at("2026-11-24 23:59"), 4, 3, 2, day)
    );
    assert_eq!(
        visitor(&app, "bob@example.com").await,
        (at("2025-12-20 08:00"), at("2026-11-05 12:00"), 2, 1, 1, day)
    );
    assert_eq!(
        app.count("SELECT count(*) FROM visitantes WHERE email LIKE 'carl%'")
            .await,
        0
    );
    let (a, b) = (
        app.audit_of("report_10.txt").await,
        app.audit_of("report_5.txt").await,
    );
    assert_eq!((a.nuevos, a.actualizados), (Some(2), Some(0)));
    assert_eq!((b.nuevos, b.actualizados), (Some(0), Some(2)));

    // A new business year: the year and month counters are recounted, not carried over.
    app.load(
        &[(
            "report_11.txt",
            &file(&[("ana@example.com", "10/01/2027 08:00")]),
        )],
        "2027-01-10",
    );
    assert_eq!(
        visitor(&app, "ana@example.com").await,
        (
            at("2020-01-02 00:00"),
            at("2027-01-10 08:00"),
            5,
            1,
            1,
            NaiveDate::from_ymd_opt(2027, 1, 10).unwrap()
        )
    );
    app.check_invariants().await;
}

#[tokio::test]
async fn generated_files_sharing_visitors_agree_with_the_aggregate() {
    use shared::fixtures::{FileSpec, generate};
    let app = spawn(Origin::Local).await;
    let mut files = Vec::new();
    for n in 1..=6u64 {
        let g = generate(&FileSpec {
            rows: 400,
            distinct_emails: 60,
            seed: n,
            year: 2020 + n as i32,
            ..Default::default()
        });
        files.push((format!("report_{n}.txt"), g));
    }
    // Newest first: out of date order.
    let named: Vec<(&str, &[u8])> = files
        .iter()
        .rev()
        .map(|(n, g)| (n.as_str(), g.bytes.as_slice()))
        .collect();
    app.load(&named, "2026-06-15");
    let loaded = app.count("SELECT count(*) FROM estadisticas").await as usize;
    assert_eq!(loaded, files.iter().map(|(_, g)| g.valid).sum::<usize>());
    app.check_invariants().await;
}

#[tokio::test]
async fn many_returning_visitors_moving_to_a_new_year_agree_with_the_aggregate() {
    // Past 500 returning visitors a load updates them through a temporary table (below
    // that, from array parameters): here a night of 2026, then one of 2027 whose visitors
    // all come back and move to the new year, then a small one back on the array path.
    use shared::fixtures::{FileSpec, generate};
    let app = spawn(Origin::Local).await;
    let spec = |seed, year, rows| FileSpec {
        rows,
        distinct_emails: 800,
        seed,
        year,
        ..Default::default()
    };
    let nights = [
        (generate(&spec(1, 2026, 4000)), "2026-11-24"),
        (generate(&spec(2, 2027, 4000)), "2027-01-10"),
        (generate(&spec(3, 2027, 60)), "2027-01-11"),
    ];
    for (n, (file, as_of)) in nights.iter().enumerate() {
        app.load(&[(&format!("report_{}.txt", n + 1), &file.bytes)], as_of);
        app.check_invariants().await;
    }
    let moved = app
        .count("SELECT count(*) FROM visitas_por_anio WHERE anio = 2026")
        .await;
    assert!(moved > 500, "{moved} visitors archived their 2026");
}
