//! `spawn`: a fresh database, ETL root and origin directory (on the real test sshd,
//! or local) for one test, and helpers that run the real binaries against them.

use sqlx::{PgPool, Row};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

/// Admin connection used to create the per-test databases.
fn admin_url() -> String {
    std::env::var("VISITAS_TEST_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The test bed made by `ops/testbed.sh`.
pub fn testbed() -> PathBuf {
    PathBuf::from(
        std::env::var("VISITAS_TESTBED").unwrap_or_else(|_| "/var/tmp/visitas-testbed".into()),
    )
}

fn sshd_port() -> u16 {
    let port = std::fs::read_to_string(testbed().join("port"))
        .expect("run ops/testbed.sh first (no test sshd port file)");
    port.trim().parse().expect("a port number")
}

/// The directory holding the workspace's binaries (next to this test's `deps/`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} missing: run `cargo build --workspace --bins --features dispatcher/fault-hooks,performer/fault-hooks` first",
        path.display()
    );
    path
}

/// A test that sets `VISITAS_FAULT_…` needs binaries built with the test-only hooks;
/// without them the variables are ignored and the test would wait for nothing.
fn require_fault_hooks(binary: &str, env: &[(String, String)]) {
    if !env.iter().any(|(k, _)| k.starts_with("VISITAS_FAULT_")) {
        return;
    }
    let out = Command::new(bin(binary)).arg("--version").output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("fault-hooks"),
        "{binary} was built without the fault hooks: run \
         `cargo build --workspace --bins --features dispatcher/fault-hooks,performer/fault-hooks`"
    );
}

/// Where the files come from in a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The real OpenSSH sshd of the test bed.
    Sftp,
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
}

/// A fresh world for one test.
pub async fn spawn(origin: Origin) -> TestApp {
    let id = format!("{:016x}", fastrand::u64(..));
    let name = format!("visitas_test_{id}");
    let admin = PgPool::connect(&admin_url())
        .await
        .expect("PostgreSQL reachable (ops/testbed.sh)");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let db_url = admin_url().rsplit_once('/').unwrap().0.to_string() + "/" + &name;
    let db = PgPool::connect(&db_url).await.unwrap();
    shared::db::MIGRATOR.run(&db).await.unwrap();

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
        Origin::Sftp => {
            let dir = testbed().join("sftp").join(&id);
            std::fs::create_dir_all(&dir).unwrap();
            chown_to_sftp_user(&dir);
            let tb = testbed();
            let sftp = format!(
                "[sftp]\nknown_hosts = \"{}\"\nprivate_key_file = \"{}\"\ntimeout_secs = 10\n",
                tb.join("known_hosts").display(),
                tb.join("client_ed25519").display()
            );
            (
                dir.clone(),
                format!(
                    "sftp://visitas-sftp@127.0.0.1:{}{}",
                    sshd_port(),
                    dir.display()
                ),
                sftp,
            )
        }
    };
    let config = home.join("visitas.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nurl = \"{url}\"\nstability_window_secs = 0\n{sftp}\n[database]\nurl = \"{db_url}\"\n\n[paths]\nroot = \"{}\"\n\n\
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
    }
}

fn chown_to_sftp_user(dir: &Path) {
    let status = Command::new("chown")
        .arg("visitas-sftp:")
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success(), "chown {}", dir.display());
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
        }
    }

    /// URL of the test database.
    pub fn db_url(&self) -> String {
        admin_url().rsplit_once('/').unwrap().0.to_string() + "/" + &self.db_name
    }

    /// The test database's name.
    pub fn db_name(&self) -> String {
        self.db_name.clone()
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

    /// Runs a binary of the workspace with this test's configuration.
    pub fn run(&self, binary: &str, args: &[&str]) -> Output {
        require_fault_hooks(binary, &self.env);
        let mut cmd = Command::new(bin(binary));
        cmd.args(args)
            .env("VISITAS_CONFIG", &self.config)
            .env("RUST_LOG", "info");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// Runs a binary and insists it exits 0.
    pub fn run_ok(&self, binary: &str, args: &[&str]) -> String {
        let out = self.run(binary, args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{binary} {args:?} failed: {text}");
        text
    }

    /// `dispatcher run --no-wait`: list, enqueue, return.
    pub fn enqueue(&self) -> String {
        self.run_ok("dispatcher", &["run", "--no-wait"])
    }

    /// Starts a binary in the background, output captured.
    pub fn spawn_bin(&self, binary: &str, args: &[&str]) -> std::process::Child {
        require_fault_hooks(binary, &self.env);
        let mut cmd = Command::new(bin(binary));
        cmd.args(args)
            .env("VISITAS_CONFIG", &self.config)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.spawn().unwrap()
    }

    /// Starts `performer run` (serving until SIGTERM) in the background.
    pub fn spawn_performer(&self, as_of: &str) -> std::process::Child {
        self.spawn_bin("performer", &["run", "--workers", "2", "--as-of", as_of])
    }

    /// `performer run --once --workers 2 --as-of DAY`.
    pub fn perform(&self, as_of: &str) -> String {
        self.run_ok(
            "performer",
            &["run", "--once", "--workers", "2", "--as-of", as_of],
        )
    }

    /// Puts the files at the origin, enqueues them and drains the queue.
    pub fn load(&self, files: &[(&str, &[u8])], as_of: &str) -> String {
        for (name, bytes) in files {
            self.put(name, bytes);
        }
        self.enqueue();
        self.perform(as_of)
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

    /// SPEC §5 invariants, checked from the outside after a run.
    pub async fn check_invariants(&self) {
        // 1 and 2, and visitantes = aggregate: the checks shared with ops/bench.sh.
        let checks: Vec<(String, i64)> =
            sqlx::query_as(include_str!("../../sql/checks/invariants.sql"))
                .fetch_all(&self.db)
                .await
                .unwrap();
        let broken: Vec<_> = checks.iter().filter(|(_, n)| *n != 0).collect();
        assert!(broken.is_empty(), "SPEC invariants broken: {broken:?}");
        // 3. every loaded file has a durable local copy.
        for a in self.audit().await {
            if matches!(
                a.estatus.as_str(),
                "COMPLETADO" | "COMPLETADO_CON_ERRORES" | "DUPLICADO" | "FALLO_LAYOUT"
            ) {
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

/// Sends SIGTERM and waits; returns the exit status and everything printed.
pub fn terminate(child: std::process::Child) -> (std::process::ExitStatus, String) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, text)
}

/// A background process whose output lines are collected as they come.
pub struct Running {
    child: std::process::Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Wraps a child spawned with piped stdout and stderr.
    pub fn new(mut child: std::process::Child) -> Self {
        use std::io::BufRead;
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        let out: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
        for stream in [out, err] {
            let lines = lines.clone();
            readers.push(std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream)
                    .lines()
                    .map_while(Result::ok)
                {
                    lines.lock().unwrap().push(line);
                }
            }));
        }
        Self {
            child,
            lines,
            readers,
        }
    }

    /// Waits until a line contains `needle`; panics after `secs`.
    pub fn wait_for(&mut self, needle: &str, secs: u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        while std::time::Instant::now() < deadline {
            if self
                .lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(needle))
            {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "process exited ({status}) before saying {needle:?}: {}",
                    self.text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no {needle:?} within {secs}s: {}", self.text());
    }

    /// Everything printed so far.
    pub fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// SIGKILL: the process dies where it stands.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits; returns the exit status and everything printed.
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let status = self.child.wait().unwrap();
        for r in self.readers.drain(..) {
            r.join().unwrap();
        }
        (status, self.text())
    }

    /// Waits for the exit; returns the status and everything printed.
    pub fn wait(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().unwrap();
        for r in self.readers.drain(..) {
            r.join().unwrap();
        }
        (status, self.text())
    }
}

/// A private OpenSSH sshd (same keys as the test bed, its own port), to stop and start.
pub struct PrivateSshd {
    /// Its port.
    pub port: u16,
    config: PathBuf,
    known_hosts: PathBuf,
    child: Option<std::process::Child>,
}

impl PrivateSshd {
    /// Writes its configuration and a known_hosts naming its port; not started yet.
    pub fn new(home: &Path) -> Self {
        let port = 23000 + fastrand::u16(0..2000);
        let tb = testbed();
        let base = std::fs::read_to_string(tb.join("sshd_config")).unwrap();
        let config = home.join(format!("sshd_{port}.conf"));
        let text: String = base
            .lines()
            .map(|l| match l.split_whitespace().next() {
                Some("Port") => format!("Port {port}"),
                Some("PidFile") => format!(
                    "PidFile {}",
                    home.join(format!("sshd_{port}.pid")).display()
                ),
                _ => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&config, text + "\n").unwrap();
        let key = std::fs::read_to_string(tb.join("host_ed25519.pub")).unwrap();
        let key: Vec<&str> = key.split_whitespace().take(2).collect();
        let known_hosts = home.join(format!("known_hosts_{port}"));
        std::fs::write(
            &known_hosts,
            format!("[127.0.0.1]:{port} {}\n", key.join(" ")),
        )
        .unwrap();
        Self {
            port,
            config,
            known_hosts,
            child: None,
        }
    }

    /// Environment pointing a test app at this sshd for `origin`.
    pub fn env(&self, origin: &Path) -> Vec<(String, String)> {
        vec![
            (
                "VISITAS_SOURCE__URL".into(),
                format!(
                    "sftp://visitas-sftp@127.0.0.1:{}{}",
                    self.port,
                    origin.display()
                ),
            ),
            (
                "VISITAS_SFTP__KNOWN_HOSTS".into(),
                self.known_hosts.display().to_string(),
            ),
        ]
    }

    /// Starts it and waits until it accepts connections.
    pub fn start(&mut self) {
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&self.config)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("private sshd on port {} did not start", self.port);
    }

    /// Kills it and every session it started (sessions call setsid, so a process group kill misses them).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            for p in descendants(child.id()) {
                let _ = Command::new("kill").arg("-9").arg(p.to_string()).status();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateSshd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Every process below `pid`, from /proc.
fn descendants(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            let after = stat.rsplit_once(')')?.1;
            let ppid = after.split_whitespace().nth(1)?.parse().ok()?;
            Some((p, ppid))
        })
        .collect();
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for &(p, pp) in &parents {
            if pp == parent {
                out.push(p);
                frontier.push(p);
            }
        }
    }
    out
}
