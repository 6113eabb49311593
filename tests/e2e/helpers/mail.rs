//! The test bed's SMTP server (`ops/testbed-smtp.sh`, docs/testbed.md), private ones to
//! stop and start, and a webhook receiver: where a test reads the alerts it caused.
//! Tests run in parallel against the one shared server, so each finds its own mail by a
//! marker of its own (a recipient).

use super::sshd::testbed;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The facts `ops/testbed-smtp.sh` wrote (`$TB/smtp/env`).
pub fn smtp(key: &str) -> String {
    let env = std::fs::read_to_string(testbed().join("smtp/env"))
        .expect("run ops/testbed.sh (it starts the SMTP server) first");
    env.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key} missing from $TB/smtp/env"))
        .to_string()
}

/// A recipient no other test uses.
pub fn marker(test: &str) -> String {
    format!("alerts-{test}-{:08x}@example.test", fastrand::u32(..))
}

/// `[alerts.email]` towards `port` of the loopback with `tls`, as user `visitas`, to `to`.
pub fn email_section(host: &str, port: u16, tls: &str, to: &str) -> String {
    format!(
        "[alerts.email]\nhost = \"{host}\"\nport = {port}\ntls = \"{tls}\"\nca_file = \"{}\"\n\
         user = \"{}\"\npassword_file = \"{}\"\nfrom = \"visitas@localhost\"\nto = [\"{to}\"]\n",
        smtp("SMTP_CA_FILE"),
        smtp("SMTP_USER"),
        smtp("SMTP_PASSWORD_FILE")
    )
}

/// A message the server kept: what it saw (`.json`) and the message (`.eml`).
#[derive(Debug, Clone)]
pub struct Mail {
    /// The sidecar: envelope, TLS, AUTH user.
    pub meta: Value,
    /// The message as received.
    pub eml: String,
}

impl Mail {
    /// Its `Subject:` header (unfolded).
    pub fn subject(&self) -> String {
        let mut lines = self.eml.split("\r\n");
        let mut subject = String::new();
        while let Some(l) = lines.next() {
            if let Some(s) = l.strip_prefix("Subject: ") {
                subject.push_str(s);
                for cont in lines.by_ref() {
                    match cont.strip_prefix(' ') {
                        Some(c) => subject.push_str(&format!(" {c}")),
                        None => break,
                    }
                }
                break;
            }
        }
        subject
    }

    /// Its body (after the headers), decoded when quoted-printable.
    pub fn body(&self) -> String {
        let (head, body) = self.eml.split_once("\r\n\r\n").unwrap_or_default();
        if !head.contains("Content-Transfer-Encoding: quoted-printable") {
            return body.replace("\r\n", "\n");
        }
        let bytes = body.replace("=\r\n", "").replace("\r\n", "\n").into_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
            match (bytes[i], hex) {
                (b'=', Some(byte)) => {
                    out.push(byte);
                    i += 3;
                }
                (b, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Every message for `marker` kept in `dir` (a port's mail directory), in arrival order.
pub fn mails_in(dir: &Path, marker: &str) -> Vec<Mail> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    names.retain(|p| p.extension() == Some("json".as_ref()));
    names.sort();
    names
        .into_iter()
        .filter_map(|path| {
            let meta: Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
            let wanted = meta["rcpt_tos"]
                .as_array()
                .is_some_and(|r| r.iter().any(|t| t.as_str() == Some(marker)));
            wanted.then(|| {
                let eml = std::fs::read_to_string(dir.join(meta["eml"].as_str().unwrap())).unwrap();
                Mail { meta, eml }
            })
        })
        .collect()
}

/// The shared server's mail directory for `port`.
pub fn mail_dir(port: u16) -> PathBuf {
    PathBuf::from(smtp("SMTP_MAIL_DIR")).join(port.to_string())
}

/// Waits until `dir` holds at least `n` messages for `marker`; panics after `secs`.
pub fn wait_for_mails(dir: &Path, marker: &str, n: usize, secs: u64) -> Vec<Mail> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let found = mails_in(dir, marker);
        if found.len() >= n {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{} message(s) for {marker} in {}, {n} expected: {:?}",
            found.len(),
            dir.display(),
            found.iter().map(Mail::subject).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A private SMTP server (`ops/smtp_sink.py`) on a port of its own, to stop and start.
pub struct PrivateSmtp {
    /// Its port.
    pub port: u16,
    /// Where it keeps mail (`<dir>/<port>/`).
    pub dir: PathBuf,
    child: Option<std::process::Child>,
}

impl PrivateSmtp {
    /// A server on `port` in `mode` (`starttls`, `submission`, `tls`, `plain`); not started.
    pub fn new(home: &Path, port: u16) -> Self {
        Self {
            port,
            dir: home.join("smtp"),
            child: None,
        }
    }

    /// Starts it (STARTTLS, AUTH optional) and waits until it accepts connections.
    pub fn start(&mut self) {
        let tb = testbed();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut child = std::process::Command::new(tb.join("smtp/venv/bin/python"))
            .arg(root.join("ops/smtp_sink.py"))
            .args(["--listen", &format!("starttls:127.0.0.1:{}", self.port)])
            .arg("--mail-dir")
            .arg(&self.dir)
            .arg("--cert")
            .arg(tb.join("smtp/server.crt"))
            .arg("--key")
            .arg(tb.join("smtp/server.key"))
            .args(["--user", "visitas", "--password-file"])
            .arg(tb.join("smtp/password"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("smtp_sink: ready") {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "smtp_sink exited");
        }
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        self.child = Some(child);
    }

    /// Stops it (SIGTERM) and waits: connections are refused from then on.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .arg(child.id().to_string())
                .status();
            child.wait().unwrap();
        }
    }

    /// Its mail directory.
    pub fn mail_dir(&self) -> PathBuf {
        self.dir.join(self.port.to_string())
    }
}

impl Drop for PrivateSmtp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A webhook receiver on a port of its own: answers 204 to every POST and keeps each body.
pub struct Hooks {
    /// Its URL.
    pub url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Hooks {
    /// Starts it.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let _ = write!(
                    stream,
                    "HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                kept.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap());
            }
        });
        Self { url, bodies }
    }

    /// Every body received so far.
    pub fn received(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }

    /// Waits until `n` bodies arrived; panics after `secs`.
    pub fn wait_for(&self, n: usize, secs: u64) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} webhook call(s), {n} expected: {got:?}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
