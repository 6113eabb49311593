//! The ETL root's identity: a random id in `<root>/visitas-root`, written once by the
//! first process that registers the root (`crate::store::root`), read by every other
//! to prove it is looking at the same directory.

use super::paths::{sync_dir, temporary_name};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The mark's name under the root (not a dot name: those are files being written).
pub const MARK: &str = "visitas-root";

/// The marker file of `root`.
pub fn path(root: &Path) -> PathBuf {
    root.join(MARK)
}

/// The id in `root`'s marker, if it has one.
pub fn read(root: &Path) -> io::Result<Option<String>> {
    match std::fs::read_to_string(path(root)) {
        Ok(text) => Ok(Some(text.trim().to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Gives `root` a marker with a new random id unless it has one; returns the id there.
/// Written durably under a temporary name and linked into place, so two processes
/// starting at once agree on one id.
pub fn ensure(root: &Path) -> io::Result<String> {
    if let Some(id) = read(root)? {
        return Ok(id);
    }
    let mark = path(root);
    let tmp = root.join(temporary_name(&mark));
    let mut file = std::fs::File::create_new(&tmp)?;
    file.write_all(new_id()?.as_bytes())?;
    file.sync_all()?;
    // A hard link never replaces: whoever links first wins, the other reads theirs.
    let linked = std::fs::hard_link(&tmp, &mark);
    std::fs::remove_file(&tmp)?;
    match linked {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    sync_dir(root)?;
    read(root)?.ok_or_else(|| io::Error::other(format!("{} vanished", mark.display())))
}

/// 128 random bits, in hex.
fn new_id() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_gets_one_id_and_keeps_it() {
        let root = std::env::temp_dir().join(format!("visitas-root-mark-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        assert_eq!(read(&root).unwrap(), None);
        let id = ensure(&root).unwrap();
        assert_eq!(id.len(), 32);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(ensure(&root).unwrap(), id);
        assert_eq!(read(&root).unwrap(), Some(id));
        let names: Vec<_> = std::fs::read_dir(&root).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary left");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
