//! Where an item's file lives, as one normalised text, and what a performer can reach.
//!
//! Items are bound to their origin by text (`work_items.origin`), so two spellings of
//! one directory must give one text: the scheme and host in lower case, the port
//! always written, the user and the path %-decoded, repeated slashes collapsed and no
//! final slash (`sftp://h/dir`, `sftp://h:22/dir/` and `sftp://H//dir` are one origin).
//! Parsing a configured URL into these parts is `crate::source::location`; migration
//! 0011 brings stored origins to the same form (`visitas_origen_normalizado`).

/// Where an item's file lives: the origin directory, and for a local one, its host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The directory as a normalised URL without credentials (`sftp://user@host:port/dir`,
    /// `file:///dir`): the text items are bound to and performers compare.
    pub url: String,
    /// For `file://`: the host that holds the directory (only its performers claim the item).
    pub host: Option<String>,
}

impl Origin {
    /// A directory on host `host`.
    pub fn local(dir: &std::path::Path, host: String) -> Self {
        Self {
            url: format!("file://{}", normal_dir(&dir.to_string_lossy())),
            host: Some(host),
        }
    }

    /// A directory `dir` (already %-decoded) on an SFTP server.
    pub fn sftp(user: &str, host: &str, port: u16, dir: &str) -> Self {
        Self {
            url: format!(
                "sftp://{user}@{}:{port}{}",
                host.to_lowercase(),
                normal_dir(dir)
            ),
            host: None,
        }
    }
}

/// A directory path in its one spelling: repeated slashes collapsed, no final slash
/// (the root stays `/`).
pub fn normal_dir(dir: &str) -> String {
    let mut out = String::with_capacity(dir.len());
    for c in dir.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    while out.len() > 1 && out.ends_with('/') {
        out.pop();
    }
    out
}

/// What a performer can reach: its configured origins, and local files on its own host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    /// The configured origins' normalised URLs (as [`Origin::url`]).
    pub origins: Vec<String>,
    /// This host's name.
    pub host: String,
}

impl Reach {
    /// Whether a performer of this reach can claim an item of `origin`.
    pub fn covers(&self, origin: &Origin) -> bool {
        match &origin.host {
            Some(host) => *host == self.host,
            None => self.origins.contains(&origin.url),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_directory_has_one_spelling() {
        for dir in ["/dir", "/dir/", "//dir", "/dir//", "/dir///"] {
            assert_eq!(normal_dir(dir), "/dir", "{dir}");
        }
        assert_eq!(normal_dir("/"), "/");
        assert_eq!(normal_dir("//"), "/");
        assert_eq!(normal_dir("/a//b/c/"), "/a/b/c");
        assert_eq!(
            Origin::sftp("etl", "SFTP.Example.com", 22, "/in/").url,
            "sftp://etl@sftp.example.com:22/in"
        );
        assert_eq!(
            Origin::local(std::path::Path::new("/srv/in/"), "h".into()).url,
            "file:///srv/in"
        );
    }

    #[test]
    fn a_reach_covers_its_origins_and_its_hosts_local_files() {
        let reach = Reach {
            origins: vec!["sftp://u@h:22/a".into(), "sftp://u@h:22/b".into()],
            host: "here".into(),
        };
        assert!(reach.covers(&Origin::sftp("u", "h", 22, "/b/")));
        assert!(!reach.covers(&Origin::sftp("u", "h", 2222, "/b")));
        assert!(reach.covers(&Origin::local("/x".as_ref(), "here".into())));
        assert!(!reach.covers(&Origin::local("/x".as_ref(), "there".into())));
    }
}
