//! A fresh, migrated database for one test, with both of the queue's drivers.

use sqlx::PgPool;

/// Admin connection used to create the per-test databases (as the e2e tests do).
fn admin_url() -> String {
    std::env::var("VISITAS_TEST_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// One test's database: the sqlx pool (dispatcher side) and a deadpool pool (performer side).
pub struct TestDb {
    /// sqlx pool.
    pub db: PgPool,
    /// tokio-postgres pool.
    pub pg: deadpool_postgres::Pool,
}

impl TestDb {
    /// Creates `visitas_test_<random>` (dropped by `ops/testbed.sh` with the e2e ones) and migrates it.
    pub async fn new() -> Self {
        let name = format!("visitas_test_{:016x}", fastrand::u64(..));
        let admin = PgPool::connect(&admin_url())
            .await
            .expect("PostgreSQL reachable (ops/testbed.sh)");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let url = admin_url().rsplit_once('/').unwrap().0.to_string() + "/" + &name;
        let db = PgPool::connect(&url).await.unwrap();
        shared::store::connect::MIGRATOR.run(&db).await.unwrap();
        let pg = deadpool_postgres::Config {
            url: Some(url),
            ..Default::default()
        }
        .create_pool(
            Some(deadpool_postgres::Runtime::Tokio1),
            tokio_postgres::NoTls,
        )
        .unwrap();
        Self { db, pg }
    }

    /// A performer-side connection.
    pub async fn client(&self) -> deadpool_postgres::Client {
        self.pg.get().await.unwrap()
    }

    /// The item's row and its audit row as JSON text: equal snapshots, nothing changed.
    pub async fn snapshot(&self, id: i64) -> String {
        sqlx::query_scalar(
            "SELECT row_to_json(w)::text || row_to_json(b)::text
             FROM work_items w JOIN bitacora_control b ON b.work_item_id = w.id WHERE w.id = $1",
        )
        .bind(id)
        .fetch_one(&self.db)
        .await
        .unwrap()
    }

    /// One column of the item's row, as text (NULL as `None`).
    pub async fn item(&self, id: i64, column: &str) -> Option<String> {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT {column}::text FROM work_items WHERE id = $1"
        )))
        .bind(id)
        .fetch_one(&self.db)
        .await
        .unwrap()
    }

    /// One column of the item's audit row, as text (NULL as `None`).
    pub async fn audit(&self, id: i64, column: &str) -> Option<String> {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT {column}::text FROM bitacora_control WHERE work_item_id = $1"
        )))
        .bind(id)
        .fetch_one(&self.db)
        .await
        .unwrap()
    }

    /// Whether an SQL condition on the item (alias `w`) holds.
    pub async fn holds(&self, id: i64, condition: &str) -> bool {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT {condition} FROM work_items w WHERE w.id = $1"
        )))
        .bind(id)
        .fetch_one(&self.db)
        .await
        .unwrap()
    }

    /// A `dispatch_runs` row for the nightly run's writes.
    pub async fn dispatch_run(&self) -> i64 {
        sqlx::query_scalar(
            "INSERT INTO dispatch_runs (host, source) VALUES ('test', 'test') RETURNING id",
        )
        .fetch_one(&self.db)
        .await
        .unwrap()
    }
}
