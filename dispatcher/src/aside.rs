//! Files set aside at the origin (`set_aside_files`), resolved by an operator through
//! `dispatcher quarantine retry ID` (load it as new content) and `dispatcher quarantine
//! discard ID` (move it to `quarantine/discarded/`), `ID` being the audit row of the item
//! that left it.
//!
//! Loading it as new content never loads what was loaded before: a file that still
//! begins with the content its item loaded (appended to since) is loaded from the line
//! after it, which must end a line (else the command refuses: that line's record was
//! loaded cut short); one that holds exactly that content ends `DUPLICADO` and leaves
//! the origin; any other is loaded whole (content loaded anywhere before ends
//! `DUPLICADO`). docs/decisions.md, "A file that begins with content already loaded".

use shared::config::Config;
use shared::local::paths::{Dirs, durable_move};
use shared::source::{Deletion, RemoteName, Source};
use shared::store::attempt;
use shared::store::set_aside::{self, SetAside};
use shared::types::{LoadedPrefix, NewItem, Origin, Resolution};

/// What loading a set-aside file did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// A new item loads it.
    Enqueued {
        /// The file.
        archivo: String,
        /// The audit row of the item that set it aside.
        id: i64,
        /// The new audit row.
        new_id: i64,
        /// Where the new item reads it.
        from: String,
        /// What of it was loaded before (and is not loaded again).
        loaded_before: LoadedBefore,
    },
    /// It is no longer at the origin: its record is closed.
    Gone {
        /// The file.
        archivo: String,
        /// The audit row of the item that set it aside.
        id: i64,
        /// Where it was.
        path: String,
    },
}

impl std::fmt::Display for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Loaded::Enqueued {
                archivo,
                id,
                new_id,
                from,
                loaded_before,
            } => {
                write!(f, "{archivo} (id {id}) at {from}: ")?;
                match loaded_before {
                    LoadedBefore::Nothing => write!(
                        f,
                        "it does not begin with what id {id} loaded; enqueued whole as \
                         bitacora_control.id = {new_id} (content loaded before ends DUPLICADO)"
                    ),
                    LoadedBefore::All => write!(
                        f,
                        "it holds exactly what id {id} loaded; enqueued as \
                         bitacora_control.id = {new_id}, which loads nothing (DUPLICADO) and \
                         removes it from the origin"
                    ),
                    LoadedBefore::Beginning { bytes } => write!(
                        f,
                        "its first {bytes} bytes are what id {id} loaded; enqueued as \
                         bitacora_control.id = {new_id} to load only the lines after them"
                    ),
                }
            }
            Loaded::Gone { archivo, id, path } => write!(
                f,
                "{archivo} (id {id}): {path} is no longer at the origin; nothing to load"
            ),
        }
    }
}

/// What the new item will not load again, as the command reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadedBefore {
    /// The file does not begin with what its item loaded: loaded whole.
    Nothing,
    /// The file is exactly what its item loaded: it ends `DUPLICADO`.
    All,
    /// Its first `bytes` bytes are what its item loaded: only the lines after them.
    Beginning {
        /// The length of the part loaded before.
        bytes: i64,
    },
}

async fn connect(config: &Config, aside: &SetAside) -> anyhow::Result<Source> {
    let origin = Origin {
        url: aside.origin.clone(),
        host: aside.origin_host.clone(),
    };
    Ok(Source::for_origin(&config.access(), &origin).await?)
}

/// Enqueues the set-aside file as a new item (`reprocesa_de` = its item's audit row), in
/// the operator's transaction, and resolves its record.
pub async fn load(
    tx: &mut sqlx::PgConnection,
    config: &Config,
    aside: &SetAside,
) -> anyhow::Result<Loaded> {
    let (archivo, id) = (aside.archivo.clone(), aside.bitacora_id);
    let source = connect(config, aside).await?;
    let name = RemoteName::parse(&aside.name)?;
    let Some(file) = source.stat(&name).await? else {
        source.close().await;
        set_aside::resolve(tx, aside.id, Resolution::Gone, "no longer at the origin").await?;
        return Ok(Loaded::Gone {
            archivo,
            id,
            path: aside.path.clone(),
        });
    };
    let loaded_size = aside.loaded_size.unwrap_or_default().max(0) as u64;
    let begins = match &aside.loaded_sha256 {
        Some(sha) if loaded_size > 0 && file.size >= loaded_size => {
            let read = source.digest(&name, Some(loaded_size)).await?;
            (read.sha256 == *sha && read.bytes == loaded_size).then_some(read.last)
        }
        _ => None,
    };
    // Its item itself loaded only what followed an earlier item's part: a file that
    // still begins with that part, but not with what the item read, may hold lines
    // either loaded — no machine can tell which.
    let earlier = match (&aside.item_prefix_sha256, aside.item_prefix_bytes) {
        (Some(sha), Some(bytes)) if begins.is_none() && file.size >= bytes.max(0) as u64 => {
            let read = source.digest(&name, Some(bytes as u64)).await?;
            read.sha256 == *sha && read.bytes == bytes as u64
        }
        _ => false,
    };
    source.close().await;
    anyhow::ensure!(
        !earlier,
        "{archivo} (id {id}) at {}: it begins with the part an earlier item loaded, but no \
         longer with what id {id} read after it: the lines in between may have been loaded. \
         Nothing changed. Compare it with the backups of both, then discard it \
         (`dispatcher quarantine discard {id} --reason \"…\"`) and have the sender resend \
         what was not loaded.",
        aside.path
    );
    let before = match begins {
        None => LoadedBefore::Nothing,
        Some(_) if file.size == loaded_size => LoadedBefore::All,
        Some(Some(b'\n')) => LoadedBefore::Beginning {
            bytes: loaded_size as i64,
        },
        Some(_) => anyhow::bail!(
            "{archivo} (id {id}) at {}: its first {loaded_size} bytes are what id {id} loaded, \
             but they end inside a line, whose record was loaded cut short: it cannot be \
             split without loading part of that line again. Nothing changed. Discard it \
             (`dispatcher quarantine discard {id} --reason \"…\"`) and have the sender resend \
             the records after the cut one.",
            aside.path
        ),
    };
    let item = NewItem {
        origin: Origin {
            url: aside.origin.clone(),
            host: aside.origin_host.clone(),
        },
        source_name: aside.name.clone(),
        file_name: archivo.clone(),
        source_path: aside.path.clone(),
        size: file.size,
        mtime: file.mtime,
        done_marker: aside.done_marker.clone(),
        // Also when it holds exactly what was loaded: the sender may append to it before a
        // performer takes it, and then only what follows is loaded (unchanged, DUPLICADO).
        loaded_prefix: match before {
            LoadedBefore::Beginning { bytes } => Some(LoadedPrefix {
                bytes,
                sha256: aside.loaded_sha256.clone().unwrap_or_default(),
                loaded_by: id,
            }),
            LoadedBefore::All => Some(LoadedPrefix {
                bytes: loaded_size as i64,
                sha256: aside.loaded_sha256.clone().unwrap_or_default(),
                loaded_by: id,
            }),
            LoadedBefore::Nothing => None,
        },
    };
    let max_attempts = config.performer.max_attempts as i32;
    let Some(new_id) = attempt::enqueue_retry(tx, id, &item, max_attempts).await? else {
        anyhow::bail!(
            "{archivo} (id {id}): an open item is already loading {}; nothing to do",
            item.source_path
        );
    };
    let resolved_as = format!("loaded as new content: bitacora_control.id = {new_id}");
    set_aside::resolve(tx, aside.id, Resolution::Loaded, &resolved_as).await?;
    Ok(Loaded::Enqueued {
        archivo,
        id,
        new_id,
        from: aside.path.clone(),
        loaded_before: before,
    })
}

/// Moves the set-aside file to `quarantine/discarded/` — copied there durably, then
/// deleted at the origin only if it is still what was copied — and resolves its record,
/// in the operator's transaction. A refused delete changes nothing (the copy is removed).
pub async fn discard(
    tx: &mut sqlx::PgConnection,
    config: &Config,
    aside: &SetAside,
    reason: &str,
) -> anyhow::Result<String> {
    let (archivo, id) = (&aside.archivo, aside.bitacora_id);
    let source = connect(config, aside).await?;
    let outcome = discard_from(&source, config, aside).await;
    source.close().await;
    let Some(to) = outcome? else {
        set_aside::resolve(tx, aside.id, Resolution::Gone, "no longer at the origin").await?;
        return Ok(format!(
            "{archivo} (id {id}): {} is no longer at the origin; nothing to discard",
            aside.path
        ));
    };
    let resolved_as = format!("discarded to {}: {reason}", to.display());
    set_aside::resolve(tx, aside.id, Resolution::Discarded, &resolved_as).await?;
    Ok(format!(
        "{archivo} (id {id}): {} moved to {} and removed from the origin: {reason}",
        aside.path,
        to.display()
    ))
}

/// The copy and the delete of [`discard`]; `None` when the file is gone.
async fn discard_from(
    source: &Source,
    config: &Config,
    aside: &SetAside,
) -> anyhow::Result<Option<std::path::PathBuf>> {
    let name = RemoteName::parse(&aside.name)?;
    let Some(file) = source.stat(&name).await? else {
        return Ok(None);
    };
    let dir = Dirs::new(&config.paths.root).quarantine().join("discarded");
    shared::local::paths::create_dir_durable(&dir)?;
    // The file's logical name was a listed name: still, only a safe one becomes a path.
    let archivo = RemoteName::parse(&aside.archivo)?;
    let to = dir.join(format!("{}-{archivo}.set-aside", aside.bitacora_id));
    let part = dir.join(shared::local::paths::temporary_name(&to));
    let copied = source.download(&name, &part).await;
    let kept = async {
        let bytes = copied?;
        let facts = shared::local::staged::fingerprint(&part)?;
        anyhow::ensure!(
            bytes == file.size && facts.size == file.size,
            "{}: changed while it was copied; nothing changed",
            aside.path
        );
        durable_move(&part, &to)?;
        Ok(facts)
    }
    .await;
    let facts = match kept {
        Ok(facts) => facts,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    };
    let deleted = source
        .delete_verified(&name, file.seen(), Some((&facts.sha256, facts.size)))
        .await;
    match deleted {
        Ok(Deletion::Deleted | Deletion::Gone) => {}
        Ok(Deletion::Changed(_)) => {
            let _ = std::fs::remove_file(&to);
            anyhow::bail!(
                "{}: changed at the origin while it was copied; nothing changed (try again)",
                aside.path
            );
        }
        Err(e) => {
            let _ = std::fs::remove_file(&to);
            anyhow::bail!(
                "{e}; nothing changed. If the origin refuses deletes, ask for delete rights \
                 for the service's SFTP user, then discard it again"
            );
        }
    }
    if let Some(marker) = &aside.done_marker {
        let _ = source.delete(&RemoteName::parse(marker)?).await;
    }
    Ok(Some(to))
}
