//! Issue 14: the nightly cost must not grow with history. Visitor counters come from
//! per-month counts (never a recount of `estadisticas`) and stay exact on the first
//! night of a month or a year, for dates in any year and backfills; the detail tables
//! are partitioned by load month, keep their integrity guards on every partition, and a
//! look-up by e-mail reads each partition's index, not its heap.

use crate::helpers::{Origin, Running, TestApp, spawn};
use chrono::{NaiveDate, NaiveDateTime};
use shared::fixtures::{FileSpec, HEADER, generate};

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

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

type Visitor = (NaiveDateTime, NaiveDateTime, i32, i32, i32, NaiveDate);

async fn visitor(app: &TestApp, email: &str) -> Visitor {
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
async fn first_of_month_and_year_nights_after_history_give_exact_counters() {
    let app = spawn(Origin::Local).await;
    // History: three November nights, with rows dated ahead (December, next year) and
    // far back, loaded out of date order.
    app.load(
        &[(
            "report_1.txt",
            &file(&[
                ("ana@example.com", "03/11/2026 10:00"),
                ("ana@example.com", "05/12/2026 10:00"), // ahead of its night
                ("bob@example.com", "01/11/2026 00:00"),
                ("ana@example.com", "15/01/2027 08:00"), // next year
            ]),
        )],
        "2026-11-03",
    );
    app.load(
        &[(
            "report_2.txt",
            &file(&[
                ("ana@example.com", "20/11/2026 09:00"),
                ("bob@example.com", "31/12/2026 23:59"),
                ("ana@example.com", "02/01/1999 00:00"), // far back
            ]),
        )],
        "2026-11-20",
    );
    assert_eq!(
        visitor(&app, "ana@example.com").await,
        (
            at("1999-01-02 00:00"),
            at("2027-01-15 08:00"),
            5,
            3,
            2,
            day("2026-11-20")
        )
    );
    app.check_invariants().await;

    // The first night of December: the month counter counts the rows loaded ahead.
    app.load(
        &[(
            "report_3.txt",
            &file(&[("ana@example.com", "01/12/2026 06:00")]),
        )],
        "2026-12-01",
    );
    assert_eq!(
        visitor(&app, "ana@example.com").await,
        (
            at("1999-01-02 00:00"),
            at("2027-01-15 08:00"),
            6,
            4,
            2,
            day("2026-12-01")
        )
    );
    app.check_invariants().await;

    // The first night of 2027, two files at once (two workers): the year counters
    // start from the rows of 2027 loaded before; bob, not in these files, keeps his.
    app.load(
        &[
            (
                "report_4.txt",
                &file(&[("ana@example.com", "01/01/2027 01:00")]),
            ),
            (
                "report_5.txt",
                &file(&[
                    ("ana@example.com", "01/01/2027 02:00"),
                    ("carl@example.com", "31/12/2026 22:00"),
                ]),
            ),
        ],
        "2027-01-01",
    );
    assert_eq!(
        visitor(&app, "ana@example.com").await,
        (
            at("1999-01-02 00:00"),
            at("2027-01-15 08:00"),
            8,
            3,
            3,
            day("2027-01-01")
        )
    );
    assert_eq!(
        visitor(&app, "carl@example.com").await,
        (
            at("2026-12-31 22:00"),
            at("2026-12-31 22:00"),
            1,
            0,
            0,
            day("2027-01-01")
        )
    );
    assert_eq!(
        visitor(&app, "bob@example.com").await,
        (
            at("2026-11-01 00:00"),
            at("2026-12-31 23:59"),
            2,
            2,
            1,
            day("2026-11-20")
        )
    );
    app.check_invariants().await;

    // A backfill of an old day (as of 1999-01-31): counted for that year and month.
    app.load(
        &[(
            "report_6.txt",
            &file(&[("ana@example.com", "10/01/1999 10:00")]),
        )],
        "1999-01-31",
    );
    assert_eq!(
        visitor(&app, "ana@example.com").await,
        (
            at("1999-01-02 00:00"),
            at("2027-01-15 08:00"),
            9,
            2,
            2,
            day("1999-01-31")
        )
    );
    app.check_invariants().await;
}

#[tokio::test]
async fn detail_partitions_keep_their_guards_and_one_row_per_line() {
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
    let id = app.audit_of("report_1.txt").await.id;
    let partition: String = sqlx::query_scalar(
        "SELECT tableoid::regclass::text FROM estadisticas WHERE bitacora_id = $1 LIMIT 1",
    )
    .bind(id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(partition.starts_with("estadisticas_"), "{partition}");
    // Straight into a partition: its own statement trigger guards the reference.
    let orphan = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {partition} (id, bitacora_id, archivo, linea, email, fecha_envio)
         VALUES (-1, 999999, 'x', 2, 'a@b.co', now())"
    )))
    .execute(&app.db)
    .await
    .unwrap_err()
    .to_string();
    assert!(
        orphan.contains("violates the reference to bitacora_control"),
        "{orphan}"
    );
    // The same line of the same file again, under another load time (so another
    // partition's unique index would not see it): refused, whether that time is later
    // than the file's load, or earlier than its audit row (no load writes such rows).
    for (at, refusal) in [
        ("now() + interval '1 day'", "violates one row per line"),
        ("'2025-06-01 00:00+00'", "violates the load order"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT visitas_particion_de_carga('estadisticas', {at})"
        )))
        .execute(&app.db)
        .await
        .unwrap();
        let again = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO estadisticas (bitacora_id, archivo, linea, email, fecha_envio, creado_en)
             SELECT bitacora_id, archivo, linea, email, fecha_envio, {at}
             FROM estadisticas WHERE bitacora_id = $1 LIMIT 1"
        )))
        .bind(id)
        .execute(&app.db)
        .await
        .unwrap_err()
        .to_string();
        assert!(again.contains(refusal), "{at}: {again}");
    }
    // An audit row with detail rows in a partition still cannot be deleted.
    let deleted = sqlx::query("DELETE FROM bitacora_control WHERE id = $1")
        .bind(id)
        .execute(&app.db)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        deleted.contains("violates the reference from its detail rows"),
        "{deleted}"
    );
    app.check_invariants().await;
}

#[tokio::test]
async fn a_lookup_by_email_reads_each_partitions_index_not_its_heap() {
    let app = spawn(Origin::Local).await;
    let spec = |seed| FileSpec {
        rows: 3000,
        distinct_emails: 2000,
        seed,
        ..Default::default()
    };
    app.load(
        &[
            ("report_1.txt", &generate(&spec(1)).bytes),
            ("report_2.txt", &generate(&spec(2)).bytes),
        ],
        "2026-11-24",
    );
    // report_1.txt as if loaded in an earlier month: two partitions hold rows.
    let first = app.audit_of("report_1.txt").await.id;
    sqlx::query("SELECT visitas_particion_de_carga('estadisticas', '2026-01-10 00:00+00')")
        .execute(&app.db)
        .await
        .unwrap();
    for moved in [
        "UPDATE bitacora_control SET creado_en = '2026-01-10 00:00+00' WHERE id = $1",
        "UPDATE estadisticas SET creado_en = '2026-01-10 00:00+00' WHERE bitacora_id = $1",
    ] {
        sqlx::query(moved)
            .bind(first)
            .execute(&app.db)
            .await
            .unwrap();
    }
    sqlx::query("ANALYZE estadisticas")
        .execute(&app.db)
        .await
        .unwrap();
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN SELECT * FROM estadisticas WHERE email = 'visitante7@empresa.com.mx'",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let text = plan.join("\n");
    // Partitions holding rows are read through their e-mail index; the empty ones of
    // the months ahead are "scanned" at no cost (no page to read).
    for line in plan.iter().filter(|l| l.contains("Seq Scan")) {
        assert!(line.contains("cost=0.00..0.00"), "{text}");
    }
    let this_month: String =
        sqlx::query_scalar("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM')")
            .fetch_one(&app.db)
            .await
            .unwrap();
    // A month's rows are in its days (migration 10): each read through its e-mail index.
    for month in ["2026_01", this_month.as_str()] {
        assert!(
            plan.iter()
                .any(|l| l.contains(&format!("estadisticas_{month}_")) && l.contains("_email_idx")),
            "{text}"
        );
    }
    app.check_invariants().await;
}

#[tokio::test]
async fn partitions_of_the_next_months_are_made_by_the_close_and_by_a_performer() {
    let app = spawn(Origin::Local).await;
    let next: String = sqlx::query_scalar(
        "SELECT to_char((now() AT TIME ZONE 'UTC') + interval '1 month', 'YYYY_MM')",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    let drop_next = || async {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP TABLE estadisticas_{next}, errores_{next}"
        )))
        .execute(&app.db)
        .await
        .unwrap();
    };
    let exists = || async {
        app.count(&format!(
            "SELECT count(*) FROM pg_class WHERE relname IN ('estadisticas_{next}', 'errores_{next}')"
        ))
        .await
    };
    drop_next().await;
    let said = app.run_ok("dispatcher", &["close", "--as-of", "2026-11-24"]);
    assert!(
        said.contains(&format!(
            "partitions created: estadisticas_{next}, errores_{next}"
        )),
        "{said}"
    );
    assert_eq!(exists().await, 2);
    drop_next().await;
    app.perform("2026-11-24");
    assert_eq!(exists().await, 2, "a starting performer makes them too");
    let listed = app.run_ok("dispatcher", &["partitions", "list"]);
    assert!(listed.contains(&format!("errores_{next}")), "{listed}");
}

/// A night maintains the indexes of its own day's partition only (migration 10): every
/// row of a load, valid or rejected, lands in the partition of the UTC day it was
/// loaded, inside that day's month.
#[tokio::test]
async fn a_load_writes_into_its_days_partition() {
    let app = spawn(Origin::Local).await;
    let g = generate(&FileSpec {
        rows: 120,
        invalid_ratio: 0.1,
        ..Default::default()
    });
    app.load(&[("report_1.txt", &g.bytes)], "2026-11-24");
    for table in ["estadisticas", "errores"] {
        let places: Vec<(String, String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT d.tableoid::regclass::text, m.relname::text,
                    to_char(d.creado_en AT TIME ZONE 'UTC', 'YYYY_MM_DD')
             FROM {table} d
             JOIN pg_inherits i ON i.inhrelid = d.tableoid
             JOIN pg_class m ON m.oid = i.inhparent"
        )))
        .fetch_all(&app.db)
        .await
        .unwrap();
        assert_eq!(places.len(), 1, "{table}: one partition: {places:?}");
        let (leaf, month, day) = &places[0];
        assert_eq!(leaf, &format!("{table}_{day}"), "{table}");
        assert_eq!(month, &format!("{table}_{}", &day[..7]), "{table}");
    }
    app.check_invariants().await;
}

/// Day 300: a load touches the partitions of its own day, whatever the history. With a
/// year and more of daily partitions behind it, the load's transaction (paused before its
/// COMMIT, its rows copied and guarded) holds locks on a handful of detail relations, not
/// on every day's partition and index: PostgreSQL's lock table is shared by the whole
/// server (64 per server process slot by default), so a load locking ~1,600 relations a year per
/// table would, after a year, fail for "out of shared memory" beside one more such load.
#[tokio::test]
async fn a_load_after_a_year_of_daily_partitions_locks_only_its_own_days() {
    let app = spawn(Origin::Local).await;
    // Twenty days per transaction: making a partition locks it until commit, and the lock
    // table is the whole server's (other tests migrate beside this one).
    let mut made = 0;
    for first in (1..=400).step_by(20) {
        made += app
            .count(&format!(
                "SELECT count(*) FROM generate_series({first}, {}) AS n,
                        unnest(ARRAY['estadisticas', 'errores']) AS t(tabla),
                        LATERAL visitas_particion_de_carga(t.tabla, now() - make_interval(days => n)) AS p
                 WHERE p.creada",
                first + 19
            ))
            .await;
    }
    assert_eq!(made, 800, "400 past days of both tables");
    let g = generate(&FileSpec {
        rows: 200,
        invalid_ratio: 0.1,
        ..Default::default()
    });
    app.put("report_1.txt", &g.bytes);
    app.enqueue();
    let paused = app.with_env(&[
        ("VISITAS_FAULT_PAUSE_AT", "load"),
        ("VISITAS_FAULT_PAUSE_SECS", "4"),
    ]);
    let mut performer = Running::new(paused.spawn_bin(
        "performer",
        &["run", "--workers", "1", "--as-of", "2026-11-24"],
    ));
    performer.wait_for("fault hook: pausing", 60);
    let locked = app
        .count(
            "SELECT count(DISTINCT l.relation) FROM pg_locks l
             JOIN pg_class c ON c.oid = l.relation
             JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
               AND l.locktype = 'relation' AND c.relname ~ '^(estadisticas|errores)'",
        )
        .await;
    assert!(
        locked > 0 && locked <= 40,
        "the paused load locks {locked} detail relations"
    );
    app.wait_until_done(1, &performer).await;
    let (status, output) = performer.terminate();
    assert!(status.success(), "{output}");
    let audit = app.audit_of("report_1.txt").await;
    assert_eq!(audit.estatus, "COMPLETADO_CON_ERRORES");
    app.check_invariants().await;
}

/// Two sessions making the same partition at once (a load and the nightly close, or two
/// loads): the second waits for the first and finds the partition made. It used to fail
/// with "already exists" (its catalog cache still said missing), and a load that failed
/// there ended FALLO_SISTEMA.
#[tokio::test]
async fn two_sessions_making_the_same_partition_at_once_both_succeed() {
    let app = spawn(Origin::Local).await;
    const MAKE: &str =
        "SELECT creada FROM visitas_particion_de_carga('estadisticas', '2031-03-15 12:00+00')";
    let mut first = app.db.begin().await.unwrap();
    let made: bool = sqlx::query_scalar(MAKE)
        .fetch_one(&mut *first)
        .await
        .unwrap();
    assert!(made, "the first session makes the day (and its month)");
    let db = app.db.clone();
    let second =
        tokio::spawn(async move { sqlx::query_scalar::<_, bool>(MAKE).fetch_one(&db).await });
    // The second session is waiting for the first's lock before the first commits.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while app
        .count("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        .await
        == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the second session never waited"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    first.commit().await.unwrap();
    let made_again = second.await.unwrap().expect("the second session succeeds");
    assert!(!made_again, "the second session finds the partition made");
    assert_eq!(
        app.count("SELECT count(*) FROM pg_class WHERE relname IN ('estadisticas_2031_03', 'estadisticas_2031_03_15')")
            .await,
        2
    );
}
