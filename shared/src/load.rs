//! The load: one transaction puts a validated file into `estadisticas`, `errores`,
//! `visitantes` and `bitacora_control`, or nothing at all.
//!
//! Locks, in this order (so loads never deadlock):
//! 1. a transaction advisory lock on the file's SHA-256: two loads of the same
//!    content serialise, and the second sees the first and ends `DUPLICADO`
//!    (the unique index on loaded SHA-256 is the last line of defence);
//! 2. after the bulk COPY, one transaction advisory lock for the visitor upsert:
//!    visitor rows are updated by one load at a time, each seeing the rows of the
//!    loads committed before it, so counters are exact under concurrency.

use crate::audit::{FileFacts, Unloaded, record_unloaded};
use crate::copy_writer::{CopyError, CopyWriter};
use crate::feed::{FilePart, Rejected, StreamError};
use crate::queue::Claimed;
use chrono::{DateTime, NaiveDateTime};
use deadpool_postgres::Client;
use polars::prelude::{DataFrame, PolarsError};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::Receiver;
use tokio_postgres::types::{ToSql, Type};

/// Why a load did not commit.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The database failed (connection, timeout, constraint): the transaction rolled back.
    #[error("load transaction: {}", crate::db::describe(.0))]
    Db(#[from] tokio_postgres::Error),
    /// Reading the validated frame failed (a defect).
    #[error("reading validated rows: {0}")]
    Frame(#[from] PolarsError),
    /// Encoding or sending COPY data failed.
    #[error("COPY: {0}")]
    Copy(CopyError),
    /// Reading or validating the staged file failed.
    #[error(transparent)]
    Input(#[from] StreamError),
}

impl LoadError {
    /// A broken connection or a transient server condition can pass; a constraint violation cannot.
    pub fn is_transient(&self) -> bool {
        match self {
            LoadError::Db(e) => e.as_db_error().is_none_or(|db| {
                let code = db.code().code();
                // Class 08 connection, 40 serialization/deadlock, 53 resources, 57 operator intervention.
                ["08", "40", "53", "57"].iter().any(|c| code.starts_with(c))
            }),
            LoadError::Frame(_) | LoadError::Input(StreamError::Engine(_)) => false,
            LoadError::Input(StreamError::Io(_)) => true,
            // A send fails when the connection does; an encoding error cannot pass.
            LoadError::Copy(e) => e.downcast_ref::<tokio_postgres::Error>().is_some(),
        }
    }
}

/// What a committed load did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadOutcome {
    /// Rows loaded; `status` is `COMPLETADO` or `COMPLETADO_CON_ERRORES`.
    Loaded {
        /// Final status.
        status: &'static str,
        /// Valid records.
        valid: i32,
        /// Rejected records.
        rejected: i32,
        /// Visitors created by this file.
        new_visitors: i32,
        /// Visitors updated by this file.
        updated_visitors: i32,
    },
    /// The same content was already loaded under this `bitacora_control.id`.
    Duplicate {
        /// The earlier load.
        of: i64,
    },
}

/// Loads a file, arriving as validated batches, in one transaction (see the module doc
/// for the locks). Each batch is copied as it comes, so memory stays bounded; the
/// file's visitor aggregate, which arrives last, is upserted once at the end.
pub async fn load(
    client: &mut Client,
    item: &Claimed,
    facts: &FileFacts,
    mut parts: Receiver<Result<FilePart, StreamError>>,
) -> Result<LoadOutcome, LoadError> {
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&facts.sha256],
    )
    .await?;
    let earlier = tx
        .query_opt(
            "SELECT id FROM bitacora_control
             WHERE sha256 = $1 AND estatus IN ('COMPLETADO', 'COMPLETADO_CON_ERRORES') AND id <> $2
             LIMIT 1",
            &[&facts.sha256, &item.bitacora_id],
        )
        .await?;
    if let Some(row) = earlier {
        let of: i64 = row.get(0);
        let message =
            format!("same content (SHA-256) as bitacora_control.id = {of}; nothing loaded");
        record_unloaded(&tx, item, facts, Unloaded::Duplicate, &message).await?;
        tx.commit().await?;
        return Ok(LoadOutcome::Duplicate { of });
    }

    let (mut valid, mut rejected, mut visitors) = (0i32, 0i32, None);
    let (started, mut waited) = (Instant::now(), Duration::ZERO);
    let valid_into = crate::partitions::loading_into(&tx, "estadisticas").await?;
    let rejected_into = crate::partitions::loading_into(&tx, "errores").await?;
    loop {
        let waiting = Instant::now();
        let Some(part) = parts.recv().await else {
            break;
        };
        waited += waiting.elapsed();
        match part? {
            FilePart::Rows(batch) => {
                copy_valid(&tx, &valid_into, item, batch.valid()).await?;
                copy_rejected(&tx, &rejected_into, item, batch.rejected()).await?;
                valid += batch.valid().height() as i32;
                rejected += batch.rejected().len() as i32;
            }
            FilePart::Visitors(aggregate) => visitors = Some(aggregate),
        }
    }
    let copied = started.elapsed();
    let (new_visitors, updated_visitors) = match visitors {
        Some(aggregate) => {
            crate::visitor_counts::upsert(&tx, &aggregate, facts.business_date).await?
        }
        None => (0, 0),
    };
    tracing::info!(
        copy_ms = copied.as_millis() as u64,
        waiting_for_validation_ms = waited.as_millis() as u64,
        visitors_ms = (started.elapsed() - copied).as_millis() as u64,
        "rows copied and visitors upserted; committing"
    );
    let status = if rejected == 0 {
        "COMPLETADO"
    } else {
        "COMPLETADO_CON_ERRORES"
    };
    tx.execute(
        "UPDATE bitacora_control
         SET estatus = $2, sha256 = $3, tamano_bytes = $4, encoding = $5, fecha_negocio = $6,
             registros_totales = $7::int + $8::int, registros_validos = $7, registros_error = $8,
             visitantes_nuevos = $9, visitantes_actualizados = $10, mensaje_error = NULL, fin = now(),
             duracion_ms = (extract(epoch FROM now() - inicio) * 1000)::bigint
         WHERE id = $1",
        &[
            &item.bitacora_id,
            &status,
            &facts.sha256,
            &facts.size,
            &facts.encoding.label(),
            &facts.business_date,
            &valid,
            &rejected,
            &new_visitors,
            &updated_visitors,
        ],
    )
    .await?;
    crate::fault::pause("load").await;
    tx.commit().await?;
    Ok(LoadOutcome::Loaded {
        status,
        valid,
        rejected,
        new_visitors,
        updated_visitors,
    })
}

async fn copy_valid(
    tx: &tokio_postgres::Transaction<'_>,
    into: &str,
    item: &Claimed,
    rows: &DataFrame,
) -> Result<(), LoadError> {
    let sink = tx
        .copy_in(&format!(
            "COPY {into} (bitacora_id, archivo, linea, email, jyv, badmail, baja, fecha_envio, fecha_open,
                 opens, opens_virales, fecha_click, clicks, clicks_virales, links, ips, navegadores, plataformas)
             FROM STDIN (FORMAT binary)"
        ))
        .await?;
    use Type as T;
    let types = [
        T::INT8,
        T::TEXT,
        T::INT4,
        T::TEXT,
        T::TEXT,
        T::TEXT,
        T::TEXT,
        T::TIMESTAMP,
        T::TIMESTAMP,
        T::INT4,
        T::INT4,
        T::TIMESTAMP,
        T::INT4,
        T::INT4,
        T::TEXT,
        T::TEXT,
        T::TEXT,
        T::TEXT,
    ];
    let mut writer = CopyWriter::new(sink, &types);
    let text = |name: &str| rows.column(name).and_then(|c| c.str()).cloned();
    let int = |name: &str| rows.column(name).and_then(|c| c.i32()).cloned();
    let time = |name: &str| {
        rows.column(name)
            .and_then(|c| c.datetime())
            .map(|c| c.physical().clone())
    };
    let linea = rows.column("linea")?.u32()?.clone();
    let (email, jyv, badmail, baja) = (
        text("email")?,
        text("jyv")?,
        text("badmail")?,
        text("baja")?,
    );
    let (fecha_envio, fecha_open, fecha_click) = (
        time("fecha_envio")?,
        time("fecha_open")?,
        time("fecha_click")?,
    );
    let (opens, opens_virales, clicks, clicks_virales) = (
        int("opens")?,
        int("opens_virales")?,
        int("clicks")?,
        int("clicks_virales")?,
    );
    let (links, ips, navegadores, plataformas) = (
        text("links")?,
        text("ips")?,
        text("navegadores")?,
        text("plataformas")?,
    );
    for i in 0..rows.height() {
        let line = linea.get(i).map(|l| l as i32);
        let sent = fecha_envio.get(i).map(millis_to_naive);
        let opened = fecha_open.get(i).map(millis_to_naive);
        let clicked = fecha_click.get(i).map(millis_to_naive);
        let values: [&(dyn ToSql + Sync); 18] = [
            &item.bitacora_id,
            &item.file_name,
            &line,
            &email.get(i),
            &jyv.get(i),
            &badmail.get(i),
            &baja.get(i),
            &sent,
            &opened,
            &opens.get(i),
            &opens_virales.get(i),
            &clicked,
            &clicks.get(i),
            &clicks_virales.get(i),
            &links.get(i),
            &ips.get(i),
            &navegadores.get(i),
            &plataformas.get(i),
        ];
        writer.row(&values).await.map_err(LoadError::Copy)?;
    }
    writer.finish().await?;
    Ok(())
}

async fn copy_rejected(
    tx: &tokio_postgres::Transaction<'_>,
    into: &str,
    item: &Claimed,
    rejected: &[Rejected],
) -> Result<(), LoadError> {
    if rejected.is_empty() {
        return Ok(());
    }
    let sink = tx
        .copy_in(&format!(
            "COPY {into} (bitacora_id, archivo, linea, tipo_error, detalle, fila_original)
             FROM STDIN (FORMAT binary)"
        ))
        .await?;
    let mut writer = CopyWriter::new(
        sink,
        &[
            Type::INT8,
            Type::TEXT,
            Type::INT4,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
        ],
    );
    for r in rejected {
        let line = r.line as i32;
        writer
            .row(&[
                &item.bitacora_id,
                &item.file_name,
                &line,
                &r.code.as_str(),
                &r.detail,
                &r.original,
            ])
            .await
            .map_err(LoadError::Copy)?;
    }
    writer.finish().await?;
    Ok(())
}

fn millis_to_naive(ms: i64) -> NaiveDateTime {
    DateTime::from_timestamp_millis(ms)
        .expect("parsed dates are in range")
        .naive_utc()
}
