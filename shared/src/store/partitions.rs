//! The monthly partitions of `estadisticas` and `errores` (migration 6), each split by
//! day (migration 10): made ahead of the loads that need them, listed, and dropped by
//! retention.
//!
//! Rows go to the partition of the UTC day of their `creado_en` (the load
//! transaction's start), so a file lives in exactly one partition of each table and a
//! night maintains the indexes of its own day of data, whatever the history. Months are
//! the unit of retention: dropping a month drops whole files, whose `bitacora_control`
//! rows stay, and `detalle_depurado` names them (docs/data-contract.md §5 invariant 1 is then about the
//! files whose detail is kept).

use chrono::{Datelike, NaiveDate};
use sqlx::PgPool;

/// Months made ahead of the current one, so a load never waits for (or misses) its partition.
pub const MONTHS_AHEAD: i32 = 2;

/// Days made ahead of today: a load that had to make its day's partition would hold the
/// lock that makes partitions until it commits, and the night's other loads would wait.
pub const DAYS_AHEAD: i32 = 2;

/// The missing partitions of this month and the next [`MONTHS_AHEAD`] (`$1`), then the
/// missing days of today and the next [`DAYS_AHEAD`] (`$2`), created. Takes no lock that
/// waits for loads or blocks readers.
const ENSURE_AHEAD: &str = "SELECT p FROM generate_series(0, $1) AS n,
     LATERAL visitas_asegurar_particiones(now() + make_interval(months => n)) AS p
     UNION ALL
     SELECT p.particion FROM generate_series(0, $2) AS n, unnest(ARRAY['estadisticas', 'errores']) AS t(tabla),
     LATERAL visitas_particion_de_carga(t.tabla, now() + make_interval(days => n)) AS p
     WHERE p.creada";

/// Creates the partitions of this month and the next [`MONTHS_AHEAD`], and of today and
/// the next [`DAYS_AHEAD`], that are missing; returns the names created (the nightly
/// close, `dispatcher partitions ensure`, and a performer at its start: one starting
/// after months without a nightly close still finds its partition).
pub async fn ensure_ahead(pool: &PgPool) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(ENSURE_AHEAD)
        .bind(MONTHS_AHEAD)
        .bind(DAYS_AHEAD)
        .fetch_all(pool)
        .await
}

/// The partition of `table` (`estadisticas` or `errores`) that rows written now by this
/// transaction belong to (their `creado_en` is its `now()`): its day's, or its month's
/// for a month made before migration 10; created if missing, as a quoted identifier. The loader COPYs into it rather than into the parent: PostgreSQL 15
/// gives up multi-row inserts for a COPY into a partitioned table with a statement
/// trigger over a transition table (the reference guard), ~3 s per 950,000 rows.
pub(crate) async fn loading_into(
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
) -> Result<String, tokio_postgres::Error> {
    let row = tx
        .query_one(
            "SELECT quote_ident(particion) FROM visitas_particion_de_carga($1, now())",
            &[&table],
        )
        .await?;
    Ok(row.get("quote_ident"))
}

/// One partition of a detail table.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Partition {
    /// `estadisticas` or `errores`.
    pub table: String,
    /// The partition's name, `<table>_YYYY_MM`.
    pub name: String,
    /// The first day of its UTC month of `creado_en`.
    pub month: NaiveDate,
    /// Rows (the planner's estimate: exact counts would read every partition).
    pub rows_estimate: i64,
    /// Bytes on disk, indexes included.
    pub bytes: i64,
}

/// Every month partition of both tables, oldest first; rows and bytes are those of its
/// days.
pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<Partition>> {
    sqlx::query_as(
        "SELECT parent.relname::text AS \"table\", c.relname::text AS name,
                to_date(substring(c.relname FROM '(\\d{4}_\\d{2})$'), 'YYYY_MM') AS month,
                (SELECT coalesce(sum(greatest(l.reltuples, 0)), 0)::bigint
                 FROM pg_partition_tree(c.oid) t JOIN pg_class l ON l.oid = t.relid WHERE t.isleaf)
                    AS rows_estimate,
                (SELECT coalesce(sum(pg_total_relation_size(t.relid)), 0)::bigint
                 FROM pg_partition_tree(c.oid) t WHERE t.isleaf) AS bytes
         FROM pg_inherits i
         JOIN pg_class parent ON parent.oid = i.inhparent
         JOIN pg_class c ON c.oid = i.inhrelid
         WHERE parent.relname IN ('estadisticas', 'errores') AND c.relname ~ '_\\d{4}_\\d{2}$'
           AND parent.relnamespace = 'public'::regnamespace
         ORDER BY 3, 1",
    )
    .fetch_all(pool)
    .await
}

/// Test-only fault hook (`fault-hooks` builds only): when set, `drop_before` may take
/// the current month too, so a test can drop the month a load is writing into.
pub const DROP_CURRENT_MONTH_HOOK: &str = "VISITAS_FAULT_DROP_CURRENT_MONTH";

/// A partition retention dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// The partition's name.
    pub name: String,
    /// Its rows when dropped (counted).
    pub rows: i64,
    /// Files (`bitacora_control` rows) whose rows it held.
    pub files: i64,
}

/// Why retention refused.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// Only whole months before the current one can go.
    #[error(
        "--before {before} would drop the current month or later (now {current}); nothing dropped"
    )]
    NotPast {
        /// The month asked for.
        before: NaiveDate,
        /// The current UTC month.
        current: NaiveDate,
    },
    /// The database failed; the transaction rolled back and nothing was dropped.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// The first day of the month of `day`.
pub fn month_start(day: NaiveDate) -> NaiveDate {
    day.with_day(1).expect("the first of a month exists")
}

/// Drops, in one transaction, every partition of both tables for months before `before`
/// (the first of a month, at most the current UTC month), recording each of their files
/// in `detalle_depurado`; with `dry_run` it only counts.
///
/// The right to drop is proven before anything is counted: each partition is first
/// locked `SHARE` (up to `lock_timeout`, 30 s), which waits for the loads still writing
/// into it to commit or roll back and lets no new one in, while readers go on; only then
/// are its rows and files counted and recorded, so every file whose rows go is named.
/// The `DROP` then takes `ACCESS EXCLUSIVE` for a moment. A dry run takes no lock a load
/// or a reader waits for: it counts what is committed now.
pub async fn drop_before(
    pool: &PgPool,
    before: NaiveDate,
    dry_run: bool,
) -> Result<Vec<Dropped>, RetentionError> {
    let current: NaiveDate =
        sqlx::query_scalar("SELECT date_trunc('month', now() AT TIME ZONE 'UTC')::date")
            .fetch_one(pool)
            .await?;
    // Test hook: the fault suite drops the month a load is writing into now.
    let current = if crate::local::fault::armed(DROP_CURRENT_MONTH_HOOK) {
        current
            .checked_add_months(chrono::Months::new(1))
            .unwrap_or(current)
    } else {
        current
    };
    if before > current {
        return Err(RetentionError::NotPast { before, current });
    }
    let old: Vec<Partition> = list(pool)
        .await?
        .into_iter()
        .filter(|p| p.month < before)
        .collect();
    if dry_run {
        let mut conn = pool.acquire().await?;
        let mut found = Vec::new();
        for p in old {
            found.push(counted(&mut conn, &p.name).await?);
        }
        return Ok(found);
    }
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL lock_timeout = '30s'")
        .execute(&mut *tx)
        .await?;
    for p in &old {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "LOCK TABLE {} IN SHARE MODE",
            quoted(&p.name)
        )))
        .execute(&mut *tx)
        .await?;
    }
    let mut dropped = Vec::new();
    for p in old {
        let counts = counted(&mut tx, &p.name).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO detalle_depurado (bitacora_id, particion)
             SELECT DISTINCT bitacora_id, $1 FROM {}
             ON CONFLICT (bitacora_id) DO NOTHING",
            quoted(&p.name)
        )))
        .bind(&p.name)
        .execute(&mut *tx)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP TABLE {}",
            quoted(&p.name)
        )))
        .execute(&mut *tx)
        .await?;
        dropped.push(counts);
    }
    tx.commit().await?;
    Ok(dropped)
}

/// A partition's name (from pg_class) quoted as an identifier: never data.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The rows and files partition `name` holds now (as this connection sees them).
async fn counted(conn: &mut sqlx::PgConnection, name: &str) -> sqlx::Result<Dropped> {
    let (rows, files): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), count(DISTINCT bitacora_id) FROM {}",
        quoted(name)
    )))
    .fetch_one(conn)
    .await?;
    Ok(Dropped {
        name: name.to_string(),
        rows,
        files,
    })
}
