//! `dispatcher quarantine list | retry ID | discard ID --reason "…"`: what waits for an
//! operator, re-enqueueing it (e.g. after fixing its header), or setting it aside for good.

use crate::output::{Format, Rows};
use shared::config::Config;
use shared::paths::{Dirs, durable_move};
use shared::queue::CHANNEL;
use sqlx::{PgPool, Row};
use std::path::Path;

/// Files waiting for an operator: layout or system failures neither retried nor discarded.
const WAITING: &str = "b.estatus IN ('FALLO_LAYOUT', 'FALLO_SISTEMA') AND b.descartado_en IS NULL
    AND NOT EXISTS (SELECT 1 FROM work_items r WHERE r.retry_of = b.id)
    AND w.state = 'failed'";

/// Prints the quarantine.
pub async fn list(pool: &PgPool, format: Format) -> anyhow::Result<()> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT b.id, b.archivo, b.estatus, coalesce(to_char(b.fin, 'YYYY-MM-DD HH24:MI'), ''),
                coalesce(b.ruta_backup, ''), coalesce(b.mensaje_error, '')
         FROM bitacora_control b JOIN work_items w ON w.id = b.work_item_id
         WHERE {WAITING} ORDER BY b.id"
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
/// The source is the quarantined copy when there is one (a layout failure, perhaps fixed by
/// the operator), else the origin. A second retry of the same id changes nothing.
pub async fn retry(pool: &PgPool, id: i64) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    let old = sqlx::query(
        "SELECT b.archivo, b.estatus, b.ruta_backup, b.descartado_en IS NOT NULL, w.source_path, w.size_bytes,
                w.mtime, w.max_attempts, w.state
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
    if !matches!(estatus.as_str(), "FALLO_LAYOUT" | "FALLO_SISTEMA")
        || old.get::<String, _>(8) != "failed"
    {
        anyhow::bail!(
            "{archivo} (id {id}) is {estatus}: only FALLO_LAYOUT and FALLO_SISTEMA files can be retried"
        );
    }
    if old.get::<bool, _>(3) {
        anyhow::bail!("{archivo} (id {id}) was discarded");
    }
    let copy: Option<String> = old.get(2);
    let local = copy.filter(|p| Path::new(p).is_file());
    let (source_path, size, mtime) = match &local {
        Some(path) => {
            let meta = std::fs::metadata(path)?;
            let mtime: chrono::DateTime<chrono::Utc> = meta.modified()?.into();
            (path.clone(), meta.len() as i64, mtime)
        }
        None if estatus == "FALLO_LAYOUT" => {
            anyhow::bail!("{archivo} (id {id}): its quarantined copy is gone; nothing to load")
        }
        None => (old.get(4), old.get(5), old.get(6)),
    };
    let work_item: i64 = sqlx::query_scalar(
        "INSERT INTO work_items (source_path, file_name, size_bytes, mtime, max_attempts, local_path, retry_of)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(&source_path)
    .bind(&archivo)
    .bind(size)
    .bind(mtime)
    .bind(old.get::<i32, _>(7))
    .bind(&local)
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    let new_id: i64 = sqlx::query_scalar(
        "INSERT INTO bitacora_control (work_item_id, archivo, ruta_origen, tamano_bytes, reprocesa_de)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(work_item)
    .bind(&archivo)
    .bind(&source_path)
    .bind(size)
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    stop_nightly_retries(&mut tx, id).await?;
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    println!(
        "{archivo} (id {id}) re-enqueued as bitacora_control.id = {new_id} from {source_path}"
    );
    Ok(())
}

/// Sets a quarantined file aside for good: recorded with its reason, the copy moved to
/// `quarantine/discarded/`, never retried.
pub async fn discard(pool: &PgPool, config: &Config, id: i64, reason: &str) -> anyhow::Result<()> {
    if reason.trim().is_empty() {
        anyhow::bail!("--reason must say why the file is discarded");
    }
    let mut tx = pool.begin().await?;
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
    sqlx::query(
        "UPDATE bitacora_control SET descartado_en = now(), motivo_descarte = $2, ruta_backup = coalesce($3, ruta_backup)
         WHERE id = $1",
    )
    .bind(id)
    .bind(reason)
    .bind(&moved_to)
    .execute(&mut *tx)
    .await?;
    stop_nightly_retries(&mut tx, id).await?;
    tx.commit().await?;
    println!("{archivo} (id {id}) discarded: {reason}");
    Ok(())
}

/// The nightly tier 4 leaves the item of audit row `id` alone from now on: an operator took it over.
async fn stop_nightly_retries(tx: &mut sqlx::PgConnection, id: i64) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE work_items SET system_retry_days = 999
         FROM bitacora_control b WHERE b.id = $1 AND work_items.id = b.work_item_id",
    )
    .bind(id)
    .execute(tx)
    .await?;
    Ok(())
}
