//! The console's credentials file: one user a line, `NAME ROLE ARGON2-HASH`, written by
//! `dispatcher console user add` and read by the console (again whenever it changes).
//! Passwords are never stored, only their argon2id hashes (PHC strings).

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Reads every page; acts on nothing.
    Viewer,
    /// Reads and acts (retry, discard, reload, take-back).
    Operator,
}

impl Role {
    /// As written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            _ => None,
        }
    }
}

/// One user of the file.
#[derive(Debug, Clone)]
pub struct User {
    /// Their role.
    pub role: Role,
    /// The argon2 PHC string of their password.
    hash: String,
}

/// A user name: 1 to 64 of `A-Z a-z 0-9 . _ @ -`, so a name is never markup, a path or a
/// header's delimiter.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b))
}

/// Reads the file: users by name. Errors name the file, the line and the rule.
pub fn read(path: &Path) -> anyhow::Result<BTreeMap<String, User>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("console.users_file {}: {e}", path.display()))?;
    let mut users = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("{}:{}", path.display(), n + 1);
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, role, hash] = fields[..] else {
            anyhow::bail!("{}: expected `NAME ROLE ARGON2-HASH`", at());
        };
        if !valid_name(name) {
            anyhow::bail!(
                "{}: `{name}` is not a user name (A-Z a-z 0-9 . _ @ -)",
                at()
            );
        }
        let role = Role::parse(role).ok_or_else(|| {
            anyhow::anyhow!("{}: role `{role}` is neither viewer nor operator", at())
        })?;
        PasswordHash::new(hash)
            .map_err(|e| anyhow::anyhow!("{}: not an argon2 hash: {e}", at()))?;
        users.insert(
            name.to_string(),
            User {
                role,
                hash: hash.to_string(),
            },
        );
    }
    Ok(users)
}

/// Adds or replaces `name` with `password` and `role`, rewriting the file whole (a
/// temporary file, mode 0600, renamed into place).
pub fn add(path: &Path, name: &str, role: Role, password: &str) -> anyhow::Result<()> {
    if !valid_name(name) {
        anyhow::bail!("`{name}` is not a user name (1 to 64 of A-Z a-z 0-9 . _ @ -)");
    }
    if password.chars().count() < 8 {
        anyhow::bail!("the password must have at least 8 characters");
    }
    let mut users = if path.exists() {
        read(path)?
    } else {
        BTreeMap::new()
    };
    let hash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?
        .to_string();
    users.insert(name.to_string(), User { role, hash });
    let mut text = String::from(
        "# visitas console users: NAME ROLE ARGON2-HASH (dispatcher console user add)\n",
    );
    for (name, user) in &users {
        text.push_str(&format!("{name} {} {}\n", user.role.as_str(), user.hash));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(shared::local::paths::temporary_name(path));
    let written = (|| -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        shared::local::paths::sync_dir(dir)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        anyhow::bail!("writing {}: {e}", path.display());
    }
    Ok(())
}

/// Whether `password` is `user`'s. Slow on purpose (argon2): call it off the runtime.
pub fn verify(user: &User, password: &str) -> bool {
    PasswordHash::new(&user.hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash no password matches quickly: verified against when the user is unknown, so
/// an unknown name costs the same time as a wrong password.
fn decoy() -> &'static User {
    static DECOY: std::sync::OnceLock<User> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| User {
        role: Role::Viewer,
        hash: Argon2::default()
            .hash_password(b"decoy password never used")
            .map(|h| h.to_string())
            .unwrap_or_default(),
    })
}

/// The users file as the console reads it: read again when its modification time changes.
pub struct Users {
    path: Option<PathBuf>,
    cached: Mutex<(Option<SystemTime>, BTreeMap<String, User>)>,
}

impl Users {
    /// The file at `path` (none: no password logins), read once now to fail early.
    pub fn open(path: Option<PathBuf>) -> anyhow::Result<Self> {
        let users = Self {
            path,
            cached: Mutex::new((None, BTreeMap::new())),
        };
        users.current()?;
        Ok(users)
    }

    /// The users now.
    fn current(&self) -> anyhow::Result<BTreeMap<String, User>> {
        let Some(path) = &self.path else {
            return Ok(BTreeMap::new());
        };
        let modified = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .map_err(|e| anyhow::anyhow!("console.users_file {}: {e}", path.display()))?;
        let mut cached = self.cached.lock().expect("not poisoned");
        if cached.0 != Some(modified) {
            *cached = (Some(modified), read(path)?);
        }
        Ok(cached.1.clone())
    }

    /// `name` if the file lists it, for a log line: a name that is no user's may be a
    /// password typed in the wrong field, and is never written down.
    pub fn loggable<'a>(&self, name: &'a str) -> &'a str {
        if self.role_of(name).is_some() {
            name
        } else {
            "(not a user)"
        }
    }

    /// The role of `name`, if the file lists them (a trusted proxy's user).
    pub fn role_of(&self, name: &str) -> Option<Role> {
        match self.current() {
            Ok(users) => users.get(name).map(|u| u.role),
            Err(e) => {
                tracing::error!(error = %e, "console users file unreadable: nobody gets in");
                None
            }
        }
    }

    /// The role of `name` if `password` is theirs. Runs argon2 on a blocking thread, and
    /// as long for an unknown name as for a wrong password.
    pub async fn check(&self, name: &str, password: &str) -> Option<Role> {
        let user = match self.current() {
            Ok(users) => users.get(name).cloned(),
            Err(e) => {
                tracing::error!(error = %e, "console users file unreadable: nobody gets in");
                None
            }
        };
        let password = password.to_string();
        tokio::task::spawn_blocking(move || match user {
            Some(user) => verify(&user, &password).then_some(user.role),
            None => {
                verify(decoy(), &password);
                None
            }
        })
        .await
        .ok()
        .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_round_trips_and_bad_lines_are_named() {
        let dir = std::env::temp_dir().join(format!("visitas-users-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("users");
        add(&path, "ana", Role::Operator, "correct horse").unwrap();
        add(&path, "vic", Role::Viewer, "battery staple").unwrap();
        let users = read(&path).unwrap();
        assert!(verify(&users["ana"], "correct horse"));
        assert!(!verify(&users["ana"], "battery staple"));
        assert_eq!(users["vic"].role, Role::Viewer);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("correct horse"), "{text}");
        std::fs::write(&path, format!("{text}bob admin $argon2id$x\n")).unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains(":4: role `admin`"), "{err}");
        assert!(add(&path, "a b", Role::Viewer, "long enough").is_err());
        assert!(add(&path, "carl", Role::Viewer, "short").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
