//! One test's world: a fresh database, ETL root and origin directory (on the real test
//! sshd, or local), and what the test reads back from them.

use super::bins::Running;
use super::sshd::{chown_to_sftp_user, sshd_port, sshd_port_of, testbed};
use sqlx::{PgPool, Row};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Admin connection used to create the per-test databases.
pub(super) fn admin_url() -> String {
    std::env::var("VISITAS_TEST_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Where the files come from in a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The real OpenSSH sshd of the test bed.
    Sftp,
    /// The test bed's sshd that refuses renames (`internal-sftp -P rename,…`): files are
    /// read in place.
    SftpNoRename,
    /// The test bed's sshd that refuses renames and removes: read-only for the service.
    SftpReadOnly,
    /// A local directory (`file://`).
    Local,
}

/// One test's world.
pub struct TestApp {
    /// Pool on the test's own database.
    pub db: PgPool,
    /// The test database's name.
    pub db_name: String,
    /// Test working directory (config, ETL root).
    pub home: PathBuf,
    /// The origin directory, as a local path.
    pub origin: PathBuf,
    /// The ETL root.
    pub root: PathBuf,
    /// The configuration file.
    pub config: PathBuf,
    /// Extra environment for the binaries.
    pub env: Vec<(String, String)>,
    /// The admin URL of the server the test database lives on.
    pub admin: String,
}

/// A fresh world for one test.
pub async fn spawn(origin: Origin) -> TestApp {
    spawn_on(origin, &admin_url()).await
}

/// A fresh world for one test, its database on the server of `admin` (an admin URL).
pub async fn spawn_on(origin: Origin, admin_url: &str) -> TestApp {
    let id = format!("{:016x}", fastrand::u64(..));
    let name = format!("visitas_test_{id}");
    let admin = PgPool::connect(admin_url)
        .await
        .expect("PostgreSQL reachable (ops/testbed.sh)");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let db_url = admin_url.rsplit_once('/').unwrap().0.to_string() + "/" + &name;
    let db = PgPool::connect(&db_url).await.unwrap();
    shared::store::connect::MIGRATOR.run(&db).await.unwrap();

    let home = PathBuf::from("/var/tmp/visitas-tests").join(&id);
    std::fs::create_dir_all(&home).unwrap();
    let root = home.join("etl");
    let (origin_dir, url, sftp) = match origin {
        Origin::Local => {
            let dir = home.join("origin");
            std::fs::create_dir_all(&dir).unwrap();
            (
                dir.clone(),
                format!("file://{}", dir.display()),
                String::new(),
            )
        }
        Origin::Sftp | Origin::SftpNoRename | Origin::SftpReadOnly => {
            let port = match origin {
                Origin::SftpNoRename => sshd_port_of("norename"),
                Origin::SftpReadOnly => sshd_port_of("readonly"),
                _ => sshd_port(),
            };
            let dir = testbed().join("sftp").join(&id);
            std::fs::create_dir_all(&dir).unwrap();
            chown_to_sftp_user(&dir);
            let tb = testbed();
            // The test bed's known_hosts names its first sshd; the others, one of our own.
            let known_hosts = if origin == Origin::Sftp {
                tb.join("known_hosts")
            } else {
                let key = std::fs::read_to_string(tb.join("host_ed25519.pub")).unwrap();
                let key: Vec<&str> = key.split_whitespace().take(2).collect();
                let path = home.join(format!("known_hosts_{port}"));
                std::fs::write(&path, format!("[127.0.0.1]:{port} {}\n", key.join(" "))).unwrap();
                path
            };
            let sftp = format!(
                "[sftp]\nknown_hosts = \"{}\"\nprivate_key_file = \"{}\"\ntimeout_secs = 10\n",
                known_hosts.display(),
                tb.join("client_ed25519").display()
            );
            (
                dir.clone(),
                format!("sftp://visitas-sftp@127.0.0.1:{port}{}", dir.display()),
                sftp,
            )
        }
    };
    let config = home.join("visitas.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nurl = \"{url}\"\nstability_window_secs = 0\nmin_file_age_secs = 0\n{sftp}\n[database]\nurl = \"{db_url}\"\n\n[paths]\nroot = \"{}\"\n\n\
             [performer]\npoll_secs = 1\nretry_delay_secs = 1\nstep_backoff_ms = 100\nlease_secs = 30\n\
             # Small batches: every test crosses batch boundaries.\nbatch_rows = 50\n\n\
             [dispatcher]\nwait_poll_secs = 1\n",
            root.display()
        ),
    )
    .unwrap();
    TestApp {
        db,
        db_name: name,
        home,
        origin: origin_dir,
        root,
        config,
        env: Vec::new(),
        admin: admin_url.to_string(),
    }
}

/// One row of `bitacora_control`, as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    pub id: i64,
    pub archivo: String,
    pub estatus: String,
    pub encoding: Option<String>,
    pub totales: Option<i32>,
    pub validos: Option<i32>,
    pub errores: Option<i32>,
    pub nuevos: Option<i32>,
    pub actualizados: Option<i32>,
    pub mensaje: Option<String>,
    pub ruta_backup: Option<String>,
    pub sha256: Option<String>,
}

impl TestApp {
    /// The same world with a fresh pool (after its connections were terminated).
    pub async fn reconnect(self) -> TestApp {
        let db = PgPool::connect(&self.db_url()).await.unwrap();
        TestApp { db, ..self }
    }

    /// The same world sharing this one's pool, for a variant with other environment.
    pub fn clone_handles(&self) -> TestApp {
        TestApp {
            db: self.db.clone(),
            db_name: self.db_name.clone(),
            home: self.home.clone(),
            origin: self.origin.clone(),
            root: self.root.clone(),
            config: self.config.clone(),
            env: self.env.clone(),
            admin: self.admin.clone(),
        }
    }

    /// The same world with extra environment for the binaries it runs.
    pub fn with_env(&self, extra: &[(&str, &str)]) -> TestApp {
        let mut world = self.clone_handles();
        world
            .env
            .extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        world
    }

    /// URL of the test database.
    pub fn db_url(&self) -> String {
        self.admin.rsplit_once('/').unwrap().0.to_string() + "/" + &self.db_name
    }

    /// The test database's name.
    pub fn db_name(&self) -> String {
        self.db_name.clone()
    }

    /// Adds sections to the configuration file.
    pub fn configure(&self, toml: &str) {
        let mut text = std::fs::read_to_string(&self.config).unwrap();
        text.push('\n');
        text.push_str(toml);
        std::fs::write(&self.config, text).unwrap();
    }

    /// Writes a file at the origin, an hour old (complete for the dispatcher).
    pub fn put(&self, name: &str, bytes: &[u8]) {
        let path = self.origin.join(name);
        std::fs::write(&path, bytes).unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }

    /// The origin's URL as configured (what the dispatcher records on its items).
    pub fn origin_url(&self) -> String {
        let config = std::fs::read_to_string(&self.config).unwrap();
        let line = config.lines().find(|l| l.starts_with("url = ")).unwrap();
        line.trim_start_matches("url = ")
            .trim_matches('"')
            .to_string()
    }

    /// Whether a file is still at the origin: under its name, or under the private
    /// in-flight name an item took it by (`.visitas-inflight-<id>-<name>`).
    pub fn at_origin(&self, name: &str) -> bool {
        self.origin.join(name).exists()
            || std::fs::read_dir(&self.origin).unwrap().any(|e| {
                shared::source::parse_in_flight(&e.unwrap().file_name().to_string_lossy())
                    .is_some_and(|(_, original)| original == name)
            })
    }

    /// Every `bitacora_control` row, by id.
    pub async fn audit(&self) -> Vec<Audit> {
        sqlx::query(
            "SELECT id, archivo, estatus, encoding, registros_totales, registros_validos, registros_error,
                    visitantes_nuevos, visitantes_actualizados, mensaje_error, ruta_backup, sha256
             FROM bitacora_control ORDER BY id",
        )
        .fetch_all(&self.db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| Audit {
            id: r.get(0),
            archivo: r.get(1),
            estatus: r.get(2),
            encoding: r.get(3),
            totales: r.get(4),
            validos: r.get(5),
            errores: r.get(6),
            nuevos: r.get(7),
            actualizados: r.get(8),
            mensaje: r.get(9),
            ruta_backup: r.get(10),
            sha256: r.get(11),
        })
        .collect()
    }

    /// Invariants 1 and 2 and the visitor aggregate (the checks shared with
    /// ops/bench.sh), without the local copies (which retention may have removed).
    pub async fn check_data_invariants(&self) {
        let checks: Vec<(String, i64)> =
            sqlx::query_as(include_str!("../../../sql/checks/invariants.sql"))
                .fetch_all(&self.db)
                .await
                .unwrap();
        let broken: Vec<_> = checks.iter().filter(|(_, n)| *n != 0).collect();
        assert!(
            broken.is_empty(),
            "invariants of docs/data-contract.md §5 broken: {broken:?}"
        );
    }

    /// The audit row of the last item for `archivo`.
    pub async fn audit_of(&self, archivo: &str) -> Audit {
        self.audit()
            .await
            .into_iter()
            .rev()
            .find(|a| a.archivo == archivo)
            .unwrap_or_else(|| panic!("no audit row for {archivo}"))
    }

    /// A count from any query returning one bigint.
    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    /// Waits until `n` items are done while `performer` serves; panics with its output after 60 s.
    pub async fn wait_until_done(&self, n: i64, performer: &Running) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while self
            .count("SELECT count(*) FROM work_items WHERE state = 'done'")
            .await
            < n
        {
            assert!(std::time::Instant::now() < deadline, "{}", performer.text());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// docs/data-contract.md §5 invariants, checked from the outside after a run.
    pub async fn check_invariants(&self) {
        self.check_data_invariants().await;
        // 3. every loaded file has a durable local copy.
        for a in self.audit().await {
            if shared::types::AuditStatus::parse(&a.estatus).is_some_and(|s| s.is_final()) {
                let path = a
                    .ruta_backup
                    .clone()
                    .unwrap_or_else(|| panic!("{} has no local copy", a.archivo));
                // Loose (`…/backup/YYYYMMDD/ID-name`) or zipped (`…/backup_YYYYMMDD.zip#ID-name`).
                let file = path.split_once('#').map_or(path.as_str(), |(zip, _)| zip);
                assert!(Path::new(file).exists(), "{path} missing");
            }
        }
    }
}
