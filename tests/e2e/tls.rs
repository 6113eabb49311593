//! TLS to PostgreSQL (libpq's sslmode) on real processes: the test bed's second cluster
//! (127.0.0.1:5433, `hostssl` only, a certificate for localhost and 127.0.0.1 signed by
//! a test CA; see ops/testbed-pgtls.sh) and the plain main cluster on 5432.

use crate::helpers::{Origin, Running, TestApp, spawn, testbed};
use shared::fixtures::{FileSpec, generate};
use sqlx::PgPool;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

const DAY: &str = "2026-11-24";

/// The TLS cluster's files and password (made by ops/testbed-pgtls.sh).
struct TlsBed {
    port: u16,
    password: String,
}

impl TlsBed {
    fn new() -> Self {
        let read = |f: &str| {
            std::fs::read_to_string(Self::dir().join(f))
                .unwrap_or_else(|_| panic!("run ops/testbed.sh first (no pgtls/{f})"))
                .trim()
                .to_string()
        };
        Self {
            port: read("port").parse().unwrap(),
            password: read("password"),
        }
    }

    fn dir() -> PathBuf {
        testbed().join("pgtls")
    }

    fn file(name: &str) -> String {
        Self::dir().join(name).display().to_string()
    }

    /// A URL for `visitas_tls` on `host:port`, with the given query.
    fn url(&self, host: &str, port: u16, db: &str, query: &str) -> String {
        format!(
            "postgres://visitas_tls:{}@{host}:{port}/{db}?{query}",
            self.password
        )
    }

    /// verify-full against the test CA.
    fn verified(&self, db: &str) -> String {
        self.url(
            "127.0.0.1",
            self.port,
            db,
            &format!("sslmode=verify-full&sslrootcert={}", Self::file("ca.crt")),
        )
    }
}

/// A test world whose database lives on the TLS cluster: the binaries get its URL by
/// `VISITAS_DATABASE__URL` (sslmode and sslrootcert in it), the test's pool uses verify-full.
async fn spawn_tls(origin: Origin) -> (TestApp, TlsBed) {
    let bed = TlsBed::new();
    let plain = spawn(origin).await;
    let name = format!("visitas_test_{:016x}", fastrand::u64(..));
    let admin = PgPool::connect(&bed.verified("postgres"))
        .await
        .expect("TLS cluster reachable with verify-full (ops/testbed.sh)");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let db = PgPool::connect(&bed.verified(&name)).await.unwrap();
    shared::store::connect::MIGRATOR.run(&db).await.unwrap();
    let env = vec![("VISITAS_DATABASE__URL".to_string(), bed.verified(&name))];
    plain.db.close().await;
    let app = TestApp {
        db,
        db_name: name,
        env,
        ..plain
    };
    (app, bed)
}

/// Exit status and everything printed.
fn outcome(app: &TestApp, binary: &str, args: &[&str]) -> (bool, String) {
    let out = app.run(binary, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The commands that open the database: the night, two operator commands, the performer.
const EVERY_CLIENT: [(&str, &[&str]); 4] = [
    ("dispatcher", &["run", "--no-wait"]),
    ("dispatcher", &["status"]),
    ("dispatcher", &["quarantine", "list"]),
    (
        "performer",
        &["run", "--once", "--workers", "1", "--as-of", DAY],
    ),
];

/// Asserts every client is refused with a message naming `server` and `reason`, without
/// printing the password.
fn assert_all_refused(app: &TestApp, server: &str, reason: &str, password: &str) {
    for (binary, args) in EVERY_CLIENT {
        let (ok, text) = outcome(app, binary, args);
        assert!(!ok, "{binary} {args:?} must be refused: {text}");
        assert!(
            text.contains(server) && text.contains(reason),
            "{binary} {args:?} must name {server} and {reason:?}: {text}"
        );
        assert!(!text.contains(password), "the password was printed: {text}");
    }
}

#[tokio::test]
async fn a_full_night_runs_over_verify_full_for_dispatcher_operators_and_performer() {
    let (app, bed) = spawn_tls(Origin::Sftp).await;
    let g = generate(&FileSpec {
        rows: 300,
        seed: 11,
        ..Default::default()
    });
    app.put("report_1.txt", &g.bytes);
    app.put("report_2.txt", b"not,the,header\n1,2,3\n");

    let performer = Running::new(app.spawn_performer(DAY));
    let (ok, night) = outcome(&app, "dispatcher", &["run", "--as-of", DAY]);
    let (status, performed) = performer.terminate();
    assert!(ok, "dispatcher run over verify-full: {night}");
    assert!(status.success(), "performer: {performed}");
    assert!(night.contains(&format!("Summary of {DAY}")), "{night}");

    let loaded = app.audit_of("report_1.txt").await;
    assert_eq!(loaded.estatus, "COMPLETADO_CON_ERRORES");
    assert_eq!(loaded.validos, Some(g.valid as i32));
    assert_eq!(app.audit_of("report_2.txt").await.estatus, "FALLO_LAYOUT");
    app.check_invariants().await;

    for args in [&["status"][..], &["quarantine", "list"]] {
        let (ok, text) = outcome(&app, "dispatcher", args);
        assert!(ok, "dispatcher {args:?} over verify-full: {text}");
        assert!(!text.contains(&bed.password), "password printed: {text}");
    }
    let (_, quarantined) = outcome(&app, "dispatcher", &["quarantine", "list"]);
    assert!(quarantined.contains("report_2.txt"), "{quarantined}");
    for text in [&night, &performed] {
        assert!(!text.contains(&bed.password), "password printed: {text}");
        assert!(
            !text.contains("does not check its identity"),
            "verify-full on the loopback needs no warning: {text}"
        );
    }
}

/// A TCP relay to `port` that records what clients send.
fn recording_relay(port: u16) -> (u16, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let relay_port = listener.local_addr().unwrap().port();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let record = sent.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let Ok(server) = TcpStream::connect(("127.0.0.1", port)) else {
                continue;
            };
            let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let record = record.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = c_in.read(&mut buf) {
                    record.lock().unwrap().extend_from_slice(&buf[..n]);
                    if s_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = s_out.shutdown(std::net::Shutdown::Write);
            });
            let (mut s_in, mut c_out) = (server, client);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_in, &mut c_out);
                let _ = c_out.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (relay_port, sent)
}

#[tokio::test]
async fn a_server_whose_certificate_the_ca_did_not_sign_is_refused_before_any_credential() {
    let (mut app, bed) = spawn_tls(Origin::Local).await;
    let other_ca = TlsBed::file("other-ca.crt");
    app.env = vec![(
        "VISITAS_DATABASE__URL".into(),
        bed.url(
            "127.0.0.1",
            bed.port,
            &app.db_name,
            &format!("sslmode=verify-full&sslrootcert={other_ca}"),
        ),
    )];
    assert_all_refused(
        &app,
        &format!("127.0.0.1:{}", bed.port),
        "unknown CA",
        &bed.password,
    );
    // libpq's rule: `require` with a CA file checks the chain as verify-ca does.
    app.env = vec![(
        "VISITAS_DATABASE__URL".into(),
        bed.url(
            "127.0.0.1",
            bed.port,
            &app.db_name,
            &format!("sslmode=require&sslrootcert={other_ca}"),
        ),
    )];
    let (ok, text) = outcome(&app, "dispatcher", &["status"]);
    assert!(!ok && text.contains("unknown CA"), "{text}");

    // What the client sent, seen on the wire: the SSLRequest, then the refused handshake;
    // never a startup message, so neither the user name nor the password.
    let (relay, sent) = recording_relay(bed.port);
    app.env = vec![(
        "VISITAS_DATABASE__URL".into(),
        bed.url(
            "127.0.0.1",
            relay,
            &app.db_name,
            &format!("sslmode=verify-full&sslrootcert={other_ca}"),
        ),
    )];
    let (ok, text) = outcome(&app, "dispatcher", &["status"]);
    assert!(!ok && text.contains("unknown CA"), "{text}");
    let (ok, text) = outcome(&app, "performer", &["run", "--once", "--as-of", DAY]);
    assert!(!ok && text.contains("unknown CA"), "{text}");
    let bytes = sent.lock().unwrap().clone();
    const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    assert_eq!(
        bytes.get(..8),
        Some(&SSL_REQUEST[..]),
        "TLS is asked for first"
    );
    let seen = String::from_utf8_lossy(&bytes);
    assert!(
        !seen.contains("visitas_tls") && !seen.contains(&bed.password),
        "a credential crossed the wire before the certificate was checked"
    );
}

#[tokio::test]
async fn require_against_a_server_without_tls_is_refused() {
    let mut app = spawn(Origin::Local).await;
    app.env = vec![("VISITAS_DATABASE__SSLMODE".into(), "require".into())];
    assert_all_refused(
        &app,
        "127.0.0.1:5432",
        "the server does not support TLS",
        "no password here",
    );
    // The same server with libpq's default (prefer) connects without TLS.
    app.env.clear();
    let (ok, text) = outcome(&app, "dispatcher", &["status"]);
    assert!(ok, "{text}");
}

#[tokio::test]
async fn a_host_name_the_certificate_does_not_name_is_refused_under_verify_full() {
    let (mut app, bed) = spawn_tls(Origin::Local).await;
    // 127.0.0.2 reaches the same server; its certificate names localhost and 127.0.0.1.
    let url = |mode: &str| {
        bed.url(
            "127.0.0.2",
            bed.port,
            &app.db_name,
            &format!("sslmode={mode}&sslrootcert={}", TlsBed::file("ca.crt")),
        )
    };
    app.env = vec![("VISITAS_DATABASE__URL".into(), url("verify-full"))];
    assert_all_refused(
        &app,
        &format!("127.0.0.2:{}", bed.port),
        "host name mismatch",
        &bed.password,
    );
    // verify-ca checks the chain only: the same server is accepted.
    app.env = vec![("VISITAS_DATABASE__URL".into(), url("verify-ca"))];
    let (ok, text) = outcome(&app, "dispatcher", &["status"]);
    assert!(ok, "{text}");
    let (ok, text) = outcome(&app, "performer", &["run", "--once", "--as-of", DAY]);
    assert!(ok, "{text}");
}

#[tokio::test]
async fn a_client_certificate_from_the_configuration_keys_logs_in() {
    let (mut app, bed) = spawn_tls(Origin::Local).await;
    let g = generate(&FileSpec {
        rows: 120,
        seed: 5,
        ..Default::default()
    });
    app.put("report_1.txt", &g.bytes);
    // No password: the `cert` login of pg_hba; TLS settings from [database] keys.
    app.env = vec![
        (
            "VISITAS_DATABASE__URL".into(),
            format!(
                "postgres://visitas_tls_cert@localhost:{}/{}",
                bed.port, app.db_name
            ),
        ),
        ("VISITAS_DATABASE__SSLMODE".into(), "verify-full".into()),
        (
            "VISITAS_DATABASE__SSLROOTCERT".into(),
            TlsBed::file("ca.crt"),
        ),
        (
            "VISITAS_DATABASE__SSLCERT".into(),
            TlsBed::file("client.crt"),
        ),
        (
            "VISITAS_DATABASE__SSLKEY".into(),
            TlsBed::file("client.key"),
        ),
    ];
    let (ok, text) = outcome(&app, "dispatcher", &["run", "--no-wait"]);
    assert!(ok, "{text}");
    let (ok, text) = outcome(&app, "performer", &["run", "--once", "--as-of", DAY]);
    assert!(ok, "{text}");
    assert_eq!(
        app.audit_of("report_1.txt").await.estatus,
        "COMPLETADO_CON_ERRORES"
    );
    // A URL and a key that disagree is an error naming the key.
    app.env[0] = (
        "VISITAS_DATABASE__URL".into(),
        format!(
            "postgres://visitas_tls_cert@localhost:{}/{}?sslmode=require",
            bed.port, app.db_name
        ),
    );
    let (ok, text) = outcome(&app, "dispatcher", &["status"]);
    assert!(!ok && text.contains("database.sslmode"), "{text}");
}
