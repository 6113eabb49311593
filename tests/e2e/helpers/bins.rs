//! Running the workspace's real binaries against a test's world.

use super::app::TestApp;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

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

impl TestApp {
    /// A binary of the workspace with this test's configuration and environment, not started.
    pub fn command(&self, binary: &str) -> Command {
        require_fault_hooks(binary, &self.env);
        let mut cmd = Command::new(bin(binary));
        cmd.env("VISITAS_CONFIG", &self.config)
            .env("RUST_LOG", "info");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs a binary of the workspace with this test's configuration.
    pub fn run(&self, binary: &str, args: &[&str]) -> Output {
        self.command(binary).args(args).output().unwrap()
    }

    /// Runs a binary and insists it exits 0.
    pub fn run_ok(&self, binary: &str, args: &[&str]) -> String {
        let out = self.run(binary, args);
        let text = super::files::text(&out);
        assert!(out.status.success(), "{binary} {args:?} failed: {text}");
        text
    }

    /// `dispatcher run --no-wait`: list, enqueue, return.
    pub fn enqueue(&self) -> String {
        self.run_ok("dispatcher", &["run", "--no-wait"])
    }

    /// Starts a binary in the background, output captured.
    pub fn spawn_bin(&self, binary: &str, args: &[&str]) -> std::process::Child {
        let child = self
            .command(binary)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Many tests read a background process's output only once it has ended: a pipe's
        // default 64 KiB would fill on a chatty night and freeze the process mid-write.
        use std::os::fd::AsRawFd;
        for fd in [
            child.stdout.as_ref().map(|p| p.as_raw_fd()),
            child.stderr.as_ref().map(|p| p.as_raw_fd()),
        ]
        .into_iter()
        .flatten()
        {
            // SAFETY: F_SETPIPE_SZ only resizes the kernel buffer of a pipe we own.
            unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, 1 << 20) };
        }
        child
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

    /// The process id (to signal it).
    pub fn pid(&self) -> u32 {
        self.child.id()
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
