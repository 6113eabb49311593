//! `dispatcher quarantine list | retry ID | discard ID --reason "…"`: what waits for an
//! operator, re-enqueueing it (e.g. after fixing its header), or setting it aside for good.
//! Files set aside at the origin are listed and resolved here too (`crate::aside`).

use crate::aside;
use crate::output::{Format, Rows};
use shared::config::Config;
use shared::local::paths::{Dirs, durable_move};
use shared::source::{RemoteName, Source, in_flight_name};
use shared::store::{attempt, audit, queue, set_aside};
use shared::types::{AuditStatus, ItemState, NewItem, Origin, Resolution};
use sqlx::PgPool;
use std::path::Path;

/// Prints the quarantine: what waits for an operator, loaded files not yet finished or
/// without their backup, and files set aside at the origin, by id.
pub async fn list(pool: &PgPool, format: Format) -> anyhow::Result<()> {
    let mut rows: Vec<(i64, Vec<String>)> = audit::quarantined(pool)
        .await?
        .into_iter()
        .map(|q| {
            (
                q.id,
                vec![
                    q.id.to_string(),
                    q.archivo,
                    q.estatus.to_string(),
                    q.failed_at,
                    q.local_copy,
                    q.message,
                ],
            )
        })
        .collect();
    for a in set_aside::waiting(pool).await? {
        let line = vec![
            a.bitacora_id.to_string(),
            a.archivo.clone(),
            a.estatus.to_string(),
            a.set_aside_at.clone(),
            a.ruta_backup.clone().unwrap_or_default(),
            a.explain(),
        ];
        rows.push((a.bitacora_id, line));
    }
    rows.sort_by_key(|(id, _)| *id);
    let rows = Rows {
        columns: vec!["id", "file", "status", "failed_at", "local_copy", "message"],
        rows: rows.into_iter().map(|(_, line)| line).collect(),
    };
    print!("{}", rows.render(format));
    Ok(())
}

/// What an operator's retry did.
// `AlreadyRetried` is the name the console uses.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retried {
    /// A new item loads the file.
    Enqueued {
        /// The file.
        archivo: String,
        /// The retried audit row.
        id: i64,
        /// The new audit row.
        new_id: i64,
        /// Where the new item reads the file from.
        from: String,
        /// A quarantined copy that could not be trusted, set aside: (path, SHA-256 found, new path).
        set_aside: Option<(String, String, String)>,
    },
    /// A file set aside at the origin, resolved as new content (or found gone).
    Aside(aside::Loaded),
    /// An earlier retry of the same row already did: nothing changed.
    AlreadyRetried {
        /// The file.
        archivo: String,
        /// The retried audit row.
        id: i64,
        /// The audit row of that retry.
        new_id: i64,
    },
}

impl std::fmt::Display for Retried {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Retried::Enqueued {
                archivo,
                id,
                new_id,
                from,
                set_aside,
            } => {
                if let Some((path, found, aside)) = set_aside {
                    writeln!(
                        f,
                        "{path}: not a verified copy (SHA-256 {found}); set aside as {aside}"
                    )?;
                }
                write!(
                    f,
                    "{archivo} (id {id}) re-enqueued as bitacora_control.id = {new_id} from {from}"
                )
            }
            Retried::Aside(loaded) => write!(f, "{loaded}"),
            Retried::AlreadyRetried {
                archivo,
                id,
                new_id,
            } => write!(
                f,
                "{archivo} (id {id}) was already re-enqueued as bitacora_control.id = {new_id}; nothing to do"
            ),
        }
    }
}

/// Re-enqueues a quarantined file as a new item with a new audit row linked to the old one.
/// The source is the quarantined copy when there is one that can be trusted — a layout
/// failure's (perhaps fixed by the operator), or a system failure's whose SHA-256 is the
/// one recorded — else the file at the origin. A second retry of the same id changes nothing.
pub async fn retry(pool: &PgPool, config: &Config, id: i64) -> anyhow::Result<Retried> {
    let mut tx = pool.begin().await?;
    queue::lock_item_of(&mut tx, id).await?;
    if let Some(aside) = set_aside::for_operator(&mut tx, id).await? {
        let loaded = aside::load(&mut tx, config, &aside).await?;
        tx.commit().await?;
        return Ok(Retried::Aside(loaded));
    }
    refuse_while_finishing(&mut tx, id).await?;
    let old = audit::retry_candidate(&mut tx, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("bitacora_control.id = {id} does not exist"))?;
    let (archivo, estatus) = (old.archivo.clone(), old.estatus);
    if let Some(new_id) = old.retried_as {
        return Ok(Retried::AlreadyRetried {
            archivo,
            id,
            new_id,
        });
    }
    if !estatus.is_failure() || old.state != ItemState::Failed {
        anyhow::bail!(
            "{archivo} (id {id}) is {estatus}: only FALLO_LAYOUT and FALLO_SISTEMA files can be retried"
        );
    }
    if old.discarded {
        anyhow::bail!("{archivo} (id {id}) was discarded");
    }
    let mut unverified = None;
    let local = match old.ruta_backup.clone().filter(|p| Path::new(p).is_file()) {
        Some(path) if estatus == AuditStatus::FalloSistema => {
            let found = shared::local::staged::fingerprint(Path::new(&path))?.sha256;
            if old.sha256.as_deref() == Some(found.as_str()) {
                Some(path)
            } else {
                // Not known to be the whole file that was hashed: the origin is used, and the
                // copy is only set aside (never deleted: it may be all there is) once the
                // retry is enqueued.
                unverified = Some((path, found));
                None
            }
        }
        other => other,
    };
    let item = match &local {
        Some(path) => {
            let path = Path::new(path);
            let meta = std::fs::metadata(path)?;
            NewItem {
                origin: Origin::local(
                    path.parent().unwrap_or(Path::new("/")),
                    shared::local::host::name(),
                ),
                source_name: path
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                file_name: archivo.clone(),
                source_path: path.display().to_string(),
                size: meta.len(),
                mtime: chrono::DateTime::from_timestamp(
                    chrono::DateTime::<chrono::Utc>::from(meta.modified()?).timestamp(),
                    0,
                ),
                done_marker: None,
                // A copy of a file whose beginning an earlier item loaded: still only the rest.
                loaded_prefix: old.loaded_prefix(),
            }
        }
        None if estatus == AuditStatus::FalloLayout => {
            anyhow::bail!("{archivo} (id {id}): its quarantined copy is gone; nothing to load")
        }
        None => {
            let origin = Origin {
                url: old.origin.clone(),
                host: old.origin_host.clone(),
            };
            let mut item = at_origin(
                config,
                &origin,
                old.work_item,
                &archivo,
                old.source_name.clone(),
            )
            .await?;
            item.loaded_prefix = old.loaded_prefix();
            item
        }
    };
    let Some(new_id) = attempt::enqueue_retry(&mut tx, id, &item, old.max_attempts).await? else {
        anyhow::bail!(
            "{archivo} (id {id}): an open item is already loading {}; nothing to do",
            item.source_path
        );
    };
    let retried_as = format!("retried as bitacora_control.id = {new_id}");
    set_aside::resolve_failed(&mut tx, id, Resolution::Loaded, &retried_as).await?;
    tx.commit().await?;
    let set_aside = match unverified {
        Some((path, found)) => {
            let aside = format!("{path}.unverified");
            std::fs::rename(&path, &aside)?;
            Some((path, found, aside))
        }
        None => None,
    };
    Ok(Retried::Enqueued {
        archivo,
        id,
        new_id,
        from: item.source_path,
        set_aside,
    })
}

/// The failed item's file at its origin: under its in-flight name, or still as listed.
async fn at_origin(
    config: &Config,
    origin: &Origin,
    item_id: i64,
    archivo: &str,
    listed: String,
) -> anyhow::Result<NewItem> {
    let source = Source::for_origin(&config.access(), origin).await?;
    let in_flight = in_flight_name(item_id, &RemoteName::parse(archivo)?)?;
    let mut found = None;
    for name in [in_flight.to_string(), listed] {
        if let Some(file) = source.stat(&RemoteName::parse(&name)?).await? {
            found = Some(NewItem {
                origin: origin.clone(),
                source_path: source.path_of(&name),
                source_name: name,
                file_name: archivo.to_string(),
                size: file.size,
                mtime: file.mtime,
                done_marker: None,
                loaded_prefix: None,
            });
            break;
        }
    }
    source.close().await;
    found.ok_or_else(|| {
        anyhow::anyhow!(
            "{archivo}: no longer at the origin {}; nothing to retry",
            origin.url
        )
    })
}

/// Sets a quarantined file aside for good: recorded with its reason, the copy moved to
/// `quarantine/discarded/`, never retried. Returns what operators are told.
pub async fn discard(
    pool: &PgPool,
    config: &Config,
    id: i64,
    reason: &str,
) -> anyhow::Result<String> {
    if reason.trim().is_empty() {
        anyhow::bail!("--reason must say why the file is discarded");
    }
    let mut tx = pool.begin().await?;
    queue::lock_item_of(&mut tx, id).await?;
    if let Some(aside) = set_aside::for_operator(&mut tx, id).await? {
        let discarded = aside::discard(&mut tx, config, &aside, reason).await?;
        tx.commit().await?;
        settle_alerts(pool, config).await;
        return Ok(discarded);
    }
    refuse_while_finishing(&mut tx, id).await?;
    let audit::DiscardCandidate {
        archivo,
        ruta_backup: copy,
        loaded,
    } = audit::discard_candidate(&mut tx, id)
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "bitacora_control.id = {id} is not waiting in quarantine (see `quarantine list`)"
            )
        })?;
    let mut moved_to = None;
    if let Some(copy) = copy.filter(|p| Path::new(p).is_file()) {
        let to = Dirs::new(&config.paths.root)
            .quarantine()
            .join("discarded")
            .join(Path::new(&copy).file_name().unwrap_or_default());
        durable_move(Path::new(&copy), &to)?;
        moved_to = Some(to.display().to_string());
    }
    attempt::discard(&mut tx, id, reason, moved_to.as_deref()).await?;
    set_aside::resolve_failed(&mut tx, id, Resolution::Discarded, reason).await?;
    tx.commit().await?;
    // Its alert is over (and the next check would say so too).
    settle_alerts(pool, config).await;
    if loaded {
        return Ok(format!(
            "{archivo} (id {id}): its missing backup acknowledged; its loaded rows stay: {reason}"
        ));
    }
    Ok(format!("{archivo} (id {id}) discarded: {reason}"))
}

/// Closes the alerts whose file an operator's command settled (the next check would too).
async fn settle_alerts(pool: &PgPool, config: &Config) {
    if let Err(e) = shared::observe::alert::settle_files(pool, config, 0).await {
        tracing::warn!(error = %e, "could not resolve the file's alert; the next check does it");
    }
}

/// A file set aside at the origin by an item still finishing (its attempt may record it
/// again) waits for that item: the operator is told to try again shortly.
async fn refuse_while_finishing(tx: &mut sqlx::PgConnection, id: i64) -> anyhow::Result<()> {
    if set_aside::still_finishing(tx, id).await? {
        anyhow::bail!(
            "bitacora_control.id = {id}: its file is being set aside at the origin by an item \
             still finishing; try again once `dispatcher status` no longer shows it"
        );
    }
    Ok(())
}
