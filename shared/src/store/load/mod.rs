//! The load: one transaction puts a validated file into `estadisticas`, `errores`,
//! `visitantes` and `bitacora_control`, or nothing at all.
//!
//! Locks, in this order (so loads never deadlock), both row locks the read-only role
//! cannot take (`crate::store::locks`):
//! 1. the file's SHA-256 row in `content_locks`: two loads of the same
//!    content serialise, and the second sees the first and ends `DUPLICADO`
//!    (the unique index on loaded SHA-256 is the last line of defence);
//! 2. after the bulk COPY, the `visitors` row of `service_locks` for the visitor upsert:
//!    visitor rows are updated by one load at a time, each seeing the rows of the
//!    loads committed before it, so counters are exact under concurrency.

mod copy_writer;
mod error;
mod visitors;

pub use error::LoadError;
pub use visitors::may_update_returning;

use super::audit::{self, record_unloaded};
use crate::feed::{Rejected, VISITS};
use crate::local::staged::{self, EndOfFile, FilePart, StreamError};
use crate::types::{Claimed, Fence, FileFacts, LoadCounts, LoadOutcome, Unloaded};
use chrono::{DateTime, NaiveDateTime};
use copy_writer::CopyWriter;
use deadpool_postgres::Client;
use polars::prelude::DataFrame;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::Receiver;
use tokio_postgres::types::{ToSql, Type};

/// Staged file → tables, in one call: validates the staged file on a blocking thread
/// (pass 2) while its batches are copied, and commits only after the validator's end
/// arrived and matched pass 1 (`facts`). A try whose COMMIT acknowledgement was lost
/// is recognised on the next: it finds its own row final and returns what it recorded.
pub async fn load_file(
    client: &mut Client,
    item: &Claimed,
    facts: &FileFacts,
    staged: &Path,
    batch_rows: usize,
    lease: Duration,
) -> Result<LoadOutcome, LoadError> {
    // Each try first proves (and extends) the lease: a stale attempt loads nothing more.
    if !super::queue::heartbeat(&*client, item, lease).await? {
        return Err(LoadError::LeaseLost);
    }
    if let Some(outcome) = audit::committed_outcome(&*client, item.into()).await? {
        tracing::warn!("this attempt's load had committed (its acknowledgement was lost)");
        return Ok(outcome);
    }
    // The channel holds one batch, so memory stays bounded.
    let (sender, parts) = tokio::sync::mpsc::channel(1);
    let (path, encoding, as_of) = (staged.to_path_buf(), facts.encoding, facts.business_date);
    // A file an earlier item loaded the beginning of: only the lines after it.
    let skip = item.loaded_prefix.as_ref().map_or(0, |p| p.bytes as u64);
    let validator = tokio::task::spawn_blocking(move || {
        staged::validate_file(&path, encoding, &VISITS, batch_rows, as_of, skip, |part| {
            sender.blocking_send(part).is_ok()
        })
    });
    let loaded = load(client, item, facts, parts, batch_rows, lease).await;
    // A panicked validator closed the channel early: `load` saw no end and rolled back.
    if let Err(panic) = validator.await {
        tracing::error!(error = %panic, "the validator thread failed");
    }
    loaded
}

/// Loads a file, arriving as validated batches, in one transaction (see the module doc
/// for the locks). Each batch is copied as it comes, so memory stays bounded; the
/// file's visitor aggregate, which arrives last, is upserted once at the end.
async fn load(
    client: &mut Client,
    item: &Claimed,
    facts: &FileFacts,
    mut parts: Receiver<Result<FilePart, StreamError>>,
    batch_rows: usize,
    lease: Duration,
) -> Result<LoadOutcome, LoadError> {
    let fence = Fence::from(item);
    let tx = client.transaction().await?;
    // A holder frozen (or hung) inside its load past a lease lost the item anyway: the
    // server ends its transaction, so its locks never stall the other loads.
    tx.batch_execute(&format!(
        "SET LOCAL idle_in_transaction_session_timeout = {}",
        lease.as_millis().max(1000)
    ))
    .await?;
    super::locks::lock_content(&tx, &facts.sha256).await?;
    if let Some(of) = audit::loaded_elsewhere(&tx, &facts.sha256, item.bitacora_id).await? {
        let message =
            format!("same content (SHA-256) as bitacora_control.id = {of}; nothing loaded");
        if !record_unloaded(&tx, fence, facts, Unloaded::Duplicate, &message).await? {
            return Err(LoadError::LeaseLost);
        }
        tx.commit().await?;
        return Ok(LoadOutcome::Duplicate { of });
    }

    let (mut valid, mut rejected, mut end) = (0i32, 0i32, None::<EndOfFile>);
    let (started, mut waited) = (Instant::now(), Duration::ZERO);
    let valid_into = super::partitions::loading_into(&tx, "estadisticas").await?;
    let rejected_into = super::partitions::loading_into(&tx, "errores").await?;
    // Each batch of valid rows is one COPY, closed before the next batch is awaited: a
    // holder frozen between batches is then idle in its transaction, which the server
    // ends (an open COPY would wait for it forever). Rejected records wait for one COPY
    // at the end (one statement, one pass of the reference guard, instead of one per
    // batch); a file of many (or long) rejects copies them every `batch_rows` records or
    // `REJECTS_HELD` bytes, so memory stays bounded. The counts are the COPY statements'
    // own counts of the rows they stored.
    let (mut rejects, mut held) = (Vec::<Rejected>::new(), 0);
    while end.is_none() {
        let waiting = Instant::now();
        let part = parts.recv().await.ok_or(LoadError::InputEnded)?;
        waited += waiting.elapsed();
        match part? {
            FilePart::Rows(mut batch) => {
                valid += copy_valid(&tx, &valid_into, item, batch.valid()).await? as i32;
                let mut taken = batch.take_rejected();
                held += taken
                    .iter()
                    .map(|r| r.original.len() + r.detail.len())
                    .sum::<usize>();
                rejects.append(&mut taken);
            }
            FilePart::End(last) => end = Some(last),
        }
        let full = rejects.len() >= batch_rows || held >= REJECTS_HELD;
        if full || end.is_some() {
            rejected += copy_rejected(&tx, &rejected_into, item, &rejects).await? as i32;
            (rejects, held) = (Vec::new(), 0);
        }
    }
    let end = end.expect("the loop ends at the end");
    if end.bytes != facts.size as u64 || end.sha256 != facts.sha256 {
        return Err(LoadError::InputChanged {
            hashed_bytes: facts.size,
            hashed_sha256: facts.sha256.clone(),
            read_bytes: end.bytes,
            read_sha256: end.sha256,
        });
    }
    let copied = started.elapsed();
    let (new_visitors, updated_visitors) =
        visitors::upsert(&tx, &end.visitors, facts.business_date).await?;
    tracing::info!(
        copy_ms = copied.as_millis() as u64,
        waiting_for_validation_ms = waited.as_millis() as u64,
        visitors_ms = (started.elapsed() - copied).as_millis() as u64,
        "rows copied and visitors upserted; committing"
    );
    let counts = LoadCounts {
        valid,
        rejected,
        new_visitors,
        updated_visitors,
    };
    crate::local::fault::pause("load").await;
    // Last, under the item's row lock: only the attempt that still holds the item commits.
    if !audit::record_loaded(&tx, fence, facts, &counts).await? {
        return Err(LoadError::LeaseLost);
    }
    tx.commit().await?;
    if crate::local::fault::fires("VISITAS_FAULT_LOSE_COMMIT_ACK", "load") {
        // As if the acknowledgement of the COMMIT was lost: the connection dies now.
        let cut = client
            .execute("SELECT pg_terminate_backend(pg_backend_pid())", &[])
            .await;
        return Err(cut.err().map_or(LoadError::InputEnded, LoadError::Db));
    }
    Ok(LoadOutcome::Loaded(counts))
}

/// Bytes of rejected lines and messages held for one COPY at most (a batch can add one
/// batch's worth more before they go).
const REJECTS_HELD: usize = 16 << 20;

/// Copies a batch of valid rows into `into`, in one COPY; returns the rows it stored.
async fn copy_valid(
    tx: &tokio_postgres::Transaction<'_>,
    into: &str,
    item: &Claimed,
    rows: &DataFrame,
) -> Result<u64, LoadError> {
    if rows.height() == 0 {
        return Ok(0);
    }
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
    Ok(writer.finish().await?)
}

async fn copy_rejected(
    tx: &tokio_postgres::Transaction<'_>,
    into: &str,
    item: &Claimed,
    rejected: &[Rejected],
) -> Result<u64, LoadError> {
    if rejected.is_empty() {
        return Ok(0);
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
                &crate::types::storable::message(&r.detail),
                &crate::types::storable::line(&r.original),
            ])
            .await
            .map_err(LoadError::Copy)?;
    }
    Ok(writer.finish().await?)
}

fn millis_to_naive(ms: i64) -> NaiveDateTime {
    DateTime::from_timestamp_millis(ms)
        .expect("parsed dates are in range")
        .naive_utc()
}
