//! The test bed's sshd (made by `ops/testbed.sh`) and private ones to stop and start.

use super::procfs::descendants;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The test bed made by `ops/testbed.sh`.
pub fn testbed() -> PathBuf {
    PathBuf::from(
        std::env::var("VISITAS_TESTBED").unwrap_or_else(|_| "/var/tmp/visitas-testbed".into()),
    )
}

pub(super) fn sshd_port() -> u16 {
    let port = std::fs::read_to_string(testbed().join("port"))
        .expect("run ops/testbed.sh first (no test sshd port file)");
    port.trim().parse().expect("a port number")
}

/// The port of one of the test bed's extra sshds (`norename`, `readonly`).
pub(super) fn sshd_port_of(name: &str) -> u16 {
    let port = std::fs::read_to_string(testbed().join(format!("port_{name}")))
        .unwrap_or_else(|_| panic!("run ops/testbed.sh first (no port_{name} file)"));
    port.trim().parse().expect("a port number")
}

pub(super) fn chown_to_sftp_user(dir: &Path) {
    let status = Command::new("chown")
        .arg("visitas-sftp:")
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success(), "chown {}", dir.display());
}

/// A private OpenSSH sshd (same keys as the test bed, its own port), to stop and start.
pub struct PrivateSshd {
    /// Its port.
    pub port: u16,
    config: PathBuf,
    /// Its log (every start appends to it).
    log: PathBuf,
    known_hosts: PathBuf,
    child: Option<std::process::Child>,
}

impl PrivateSshd {
    /// Writes its configuration and a known_hosts naming its port; not started yet.
    pub fn new(home: &Path) -> Self {
        Self::on(home, 23000 + fastrand::u16(0..2000), None)
    }

    /// The same on port `port` (tests of their own take one of 2232–2239), its
    /// internal-sftp refusing the `refused` requests (`rename,remove`…). Another on the
    /// same port, once this one is stopped, is the same origin with other rights.
    pub fn on(home: &Path, port: u16, refused: Option<&str>) -> Self {
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
                Some(key @ ("Subsystem" | "ForceCommand")) => {
                    let sftp =
                        refused.map_or("internal-sftp".into(), |r| format!("internal-sftp -P {r}"));
                    if key == "Subsystem" {
                        format!("Subsystem sftp {sftp}")
                    } else {
                        format!("ForceCommand {sftp}")
                    }
                }
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
            log: home.join(format!("sshd_{port}.log")),
            config,
            known_hosts,
            child: None,
        }
    }

    /// The same with `setting` (`MaxStartups 1`…) in place of the test bed's line for
    /// its keyword, or added.
    pub fn with(self, setting: &str) -> Self {
        let key = setting.split_whitespace().next().expect("a keyword");
        let text = std::fs::read_to_string(&self.config).unwrap();
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| l.split_whitespace().next() != Some(key))
            .map(str::to_string)
            .collect();
        // Before any Match block: a global keyword.
        lines.insert(0, setting.to_string());
        std::fs::write(&self.config, lines.join("\n") + "\n").unwrap();
        self
    }

    /// Everything it logged so far, over all its starts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many logins it accepted (its `Accepted publickey` lines).
    pub fn logins(&self) -> usize {
        self.log().matches("Accepted publickey").count()
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
            .args(["-D", "-E"])
            .arg(&self.log)
            .arg("-f")
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
