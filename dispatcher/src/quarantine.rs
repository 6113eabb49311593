//! `dispatcher quarantine list | retry ID | discard ID --reason "…"`: what waits for an
//! operator, re-enqueueing it (e.g. after fixing its header), or setting it aside for good.

use crate::output::{Format, Rows};
use shared::audit::{self, AuditStatus};
use shared::config::Config;
use shared::paths::{Dirs, durable_move};
use shared::queue::{self, ItemState, NewItem, Origin};
use shared::source::{RemoteName, Source, in_flight_name};
use sqlx::{PgPool, Row};
use std::path::Path;

/// Files waiting for an operator: layout or system failures neither retried nor discarded.
const WAITING: &str = "b.estatus IN ('FALLO_LAYOUT', 'FALLO_SISTEMA') AND b.descartado_en IS NULL
    AND NOT EXISTS (SELECT 1 FROM work_items r WHERE r.retry_of = b.id)
    AND w.state = 'failed'";

/// Files loaded whose backup or delete at the origin failed past every attempt: they keep
/// being retried (never made failures), and are shown with what is left to do.
const UNFINISHED: &str =
    "b.estatus IN ('COMPLETADO', 'COMPLETADO_CON_ERRORES', 'DUPLICADO', 'FALLO_LAYOUT')
    AND w.state IN ('pending', 'running') AND w.attempts >= w.max_attempts";

/// Prints the quarantine: what waits for an operator, and loaded files not yet finished.
pub async fn list(pool: &PgPool, format: Format) -> anyhow::Result<()> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT b.id, b.archivo, b.estatus, coalesce(to_char(b.fin, 'YYYY-MM-DD HH24:MI'), ''),
                coalesce(b.ruta_backup, ''),
                CASE WHEN {UNFINISHED} THEN coalesce(w.last_error, 'loaded; left to do: backup and delete at the origin')
                     ELSE coalesce(b.mensaje_error, '') END
         FROM bitacora_control b JOIN work_items w ON w.id = b.work_item_id
         WHERE ({WAITING}) OR ({UNFINISHED}) ORDER BY b.id"
    )))
    .fetch_all(pool)
    .await?;
    let rows = Rows {
        columns: vec!["id", "file", "status", "failed_at", "local_copy", "message"],
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    r.get::<i64, _>(0).to_string(),
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    r.get(5),
                ]
            })
            .collect(),
    };
    print!("{}", rows.render(format));
    Ok(())
}

/// Re-enqueues a quarantined file as a new item with a new audit row linked to the old one.
/// The source is the quarantined copy when there is one that can be trusted — a layout
/// failure's (perhaps fixed by the operator), or a system failure's whose SHA-256 is the
/// one recorded — else the file at the origin. A second retry of the same id changes nothing.
pub async fn retry(pool: &PgPool, config: &Config, id: i64) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    queue::lock_item_of(&mut tx, id).await?;
    let old = sqlx::query(
        "SELECT b.archivo, b.estatus, b.ruta_backup, b.descartado_en IS NOT NULL, b.sha256, w.id, w.origin,
                w.origin_host, w.source_name, w.source_path, w.size_bytes, w.mtime, w.max_attempts, w.state
         FROM bitacora_control b JOIN work_items w ON w.id = b.work_item_id
         WHERE b.id = $1 FOR UPDATE OF b",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| anyhow::anyhow!("bitacora_control.id = {id} does not exist"))?;
    let (archivo, estatus): (String, String) = (old.get(0), old.get(1));
    let earlier: Option<i64> =
        sqlx::query_scalar("SELECT b.id FROM work_items w JOIN bitacora_control b ON b.work_item_id = w.id WHERE w.retry_of = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some(new_id) = earlier {
        println!(
            "{archivo} (id {id}) was already re-enqueued as bitacora_control.id = {new_id}; nothing to do"
        );
        return Ok(());
    }
    let status = AuditStatus::parse(&estatus);
    let failed = old.get::<String, _>(13) == ItemState::Failed.as_str();
    if !matches!(
        status,
        Some(AuditStatus::FalloLayout | AuditStatus::FalloSistema)
    ) || !failed
    {
        anyhow::bail!(
            "{archivo} (id {id}) is {estatus}: only FALLO_LAYOUT and FALLO_SISTEMA files can be retried"
        );
    }
    if old.get::<bool, _>(3) {
        anyhow::bail!("{archivo} (id {id}) was discarded");
    }
    let copy: Option<String> = old.get(2);
    let recorded_sha: Option<String> = old.get(4);
    let mut unverified = None;
    let local = match copy.filter(|p| Path::new(p).is_file()) {
        Some(path) if status == Some(AuditStatus::FalloSistema) => {
            let found = shared::feed::fingerprint(Path::new(&path))?.sha256;
            if recorded_sha.as_deref() == Some(found.as_str()) {
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
                origin: Origin::local(path.parent().unwrap_or(Path::new("/"))),
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
                )
                .unwrap_or_default(),
            }
        }
        None if status == Some(AuditStatus::FalloLayout) => {
            anyhow::bail!("{archivo} (id {id}): its quarantined copy is gone; nothing to load")
        }
        None => {
            let origin = Origin {
                url: old.get(6),
                host: old.get(7),
            };
            at_origin(config, &origin, old.get(5), &archivo, old.get(8)).await?
        }
    };
    let Some(new_id) = queue::enqueue_retry(&mut tx, id, &item, old.get::<i32, _>(12)).await?
    else {
        anyhow::bail!(
            "{archivo} (id {id}): an open item is already loading {}; nothing to do",
            item.source_path
        );
    };
    tx.commit().await?;
    if let Some((path, found)) = unverified {
        let aside = format!("{path}.unverified");
        std::fs::rename(&path, &aside)?;
        println!("{path}: not a verified copy (SHA-256 {found}); set aside as {aside}");
    }
    println!(
        "{archivo} (id {id}) re-enqueued as bitacora_control.id = {new_id} from {}",
        item.source_path
    );
    Ok(())
}

/// The failed item's file at its origin: under its in-flight name, or still as listed.
async fn at_origin(
    config: &Config,
    origin: &Origin,
    item_id: i64,
    archivo: &str,
    listed: String,
) -> anyhow::Result<NewItem> {
    let source = Source::for_origin(config, origin).await?;
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
/// `quarantine/discarded/`, never retried.
pub async fn discard(pool: &PgPool, config: &Config, id: i64, reason: &str) -> anyhow::Result<()> {
    if reason.trim().is_empty() {
        anyhow::bail!("--reason must say why the file is discarded");
    }
    let mut tx = pool.begin().await?;
    queue::lock_item_of(&mut tx, id).await?;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT b.archivo, b.ruta_backup FROM bitacora_control b JOIN work_items w ON w.id = b.work_item_id
         WHERE b.id = $1 AND {WAITING} FOR UPDATE OF b"
    )))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| anyhow::anyhow!("bitacora_control.id = {id} is not waiting in quarantine (see `quarantine list`)"))?;
    let (archivo, copy): (String, Option<String>) = (row.get(0), row.get(1));
    let mut moved_to = None;
    if let Some(copy) = copy.filter(|p| Path::new(p).is_file()) {
        let to = Dirs::new(&config.paths.root)
            .quarantine()
            .join("discarded")
            .join(Path::new(&copy).file_name().unwrap_or_default());
        durable_move(Path::new(&copy), &to)?;
        moved_to = Some(to.display().to_string());
    }
    audit::record_discard(&mut tx, id, reason, moved_to.as_deref()).await?;
    queue::stop_nightly_retries(&mut tx, id).await?;
    tx.commit().await?;
    println!("{archivo} (id {id}) discarded: {reason}");
    Ok(())
}
