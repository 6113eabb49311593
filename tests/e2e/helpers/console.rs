//! The operators' console of a test's world: its users, the running `dispatcher console`
//! (on a port the kernel picks, read back from what it prints), and an HTTP client that
//! follows no redirect and keeps every status.

use super::app::TestApp;
use super::bins::Running;
use base64::Engine;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

/// A running console.
pub struct Console {
    process: Option<Running>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Drop for Console {
    fn drop(&mut self) {
        if let Some(p) = self.process.take() {
            let _ = p.terminate();
        }
    }
}

impl Console {
    /// Stops it; returns everything it printed.
    pub fn stop(mut self) -> String {
        self.process.take().unwrap().terminate().1
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl TestApp {
    /// Adds the `[console]` section (the users file in the test's home, and `extra` lines).
    pub fn configure_console(&self, extra: &str) {
        let mut config = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.config)
            .unwrap();
        writeln!(
            config,
            "\n[console]\nusers_file = \"{}\"\n{extra}",
            self.home.join("console-users").display()
        )
        .unwrap();
    }

    /// `dispatcher console user add NAME --role ROLE`, the password on standard input.
    pub fn console_user(&self, name: &str, role: &str, password: &str) {
        let mut child = self
            .command("dispatcher")
            .args(["console", "user", "add", name, "--role", role])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "console user add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts `dispatcher console --listen 127.0.0.1:0 ARGS` and waits until it listens.
    pub fn start_console(&self, args: &[&str]) -> Console {
        let mut all = vec!["console"];
        if !args.contains(&"--listen") {
            all.extend(["--listen", "127.0.0.1:0"]);
        }
        all.extend_from_slice(args);
        let mut running = Running::new(self.spawn_bin("dispatcher", &all));
        running.wait_for("console: listening on ", 30);
        let text = running.text();
        let base = text
            .lines()
            .find_map(|l| l.strip_prefix("console: listening on "))
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        Console {
            process: Some(running),
            base,
        }
    }
}

/// An HTTP client that returns every status as it is and follows no redirect.
pub fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// An `Authorization: Basic` value.
pub fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Status and body of a response.
pub fn read(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, String) {
    let mut response = response.unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}
