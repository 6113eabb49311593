//! The load: one transaction puts a validated file into `estadisticas`, `errores`,
//! `visitantes` and `bitacora_control`, or nothing at all.
//!
//! Locks, in this order (so loads never deadlock), both row locks the read-only role
//! cannot take (`crate::service_lock`):
//! 1. the file's SHA-256 row in `content_locks`: two loads of the same
//!    content serialise, and the second sees the first and ends `DUPLICADO`
//!    (the unique index on loaded SHA-256 is the last line of defence);
//! 2. after the bulk COPY, the `visitors` row of `service_locks` for the visitor upsert:
//!    visitor rows are updated by one load at a time, each seeing the rows of the
//!    loads committed before it, so counters are exact under concurrency.

use crate::audit::{self, Fence, FileFacts, LoadCounts, Unloaded, record_unloaded};
use crate::copy_writer::{CopyError, CopyWriter};
use crate::feed::{self, EndOfFile, FilePart, Rejected, StreamError, VISITS, Visits};
use crate::queue::Claimed;
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use deadpool_postgres::Client;
use polars::prelude::{DataFrame, PolarsError};
use std::path::Path;
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
    /// The validator stopped (or panicked) before the end of the file: nothing committed.
    #[error("the validator stopped before the end of the file; nothing committed")]
    InputEnded,
    /// What pass 2 read is not what pass 1 hashed: nothing committed.
    #[error(
        "the staged file changed while it was read (hashed {hashed_bytes} bytes, SHA-256 {hashed_sha256}; \
         read {read_bytes} bytes, SHA-256 {read_sha256}); nothing committed"
    )]
    InputChanged {
        /// Bytes hashed by pass 1.
        hashed_bytes: i64,
        /// SHA-256 of pass 1.
        hashed_sha256: String,
        /// Bytes read by pass 2.
        read_bytes: u64,
        /// SHA-256 of pass 2.
        read_sha256: String,
    },
    /// The attempt no longer holds its item (taken back): the load rolled back.
    #[error("lease lost: the item was taken back by another attempt; the load rolled back")]
    LeaseLost,
}

/// What a committed load did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadOutcome {
    /// Rows loaded.
    Loaded(LoadCounts),
    /// The same content was already loaded under this `bitacora_control.id`.
    Duplicate {
        /// The earlier load.
        of: i64,
    },
}

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
    if !crate::queue::heartbeat(&*client, item, lease).await? {
        return Err(LoadError::LeaseLost);
    }
    if let Some(outcome) = audit::committed_outcome(&*client, item.into()).await? {
        tracing::warn!("this attempt's load had committed (its acknowledgement was lost)");
        return Ok(outcome);
    }
    // The channel holds one batch, so memory stays bounded.
    let (sender, parts) = tokio::sync::mpsc::channel(1);
    let (path, encoding, as_of) = (staged.to_path_buf(), facts.encoding, facts.business_date);
    let validator = tokio::task::spawn_blocking(move || {
        feed::validate_file(&path, encoding, &VISITS, batch_rows, as_of, |part| {
            sender.blocking_send(part).is_ok()
        })
    });
    let loaded = load(client, item, facts, parts, lease).await;
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
    crate::service_lock::lock_content(&tx, &facts.sha256).await?;
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
    while end.is_none() {
        let waiting = Instant::now();
        let part = parts.recv().await.ok_or(LoadError::InputEnded)?;
        waited += waiting.elapsed();
        match part? {
            FilePart::Rows(batch) => {
                copy_valid(&tx, item, batch.valid()).await?;
                copy_rejected(&tx, item, batch.rejected()).await?;
                valid += batch.valid().height() as i32;
                rejected += batch.rejected().len() as i32;
            }
            FilePart::End(last) => end = Some(last),
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
        upsert_visitors(&tx, &end.visitors, facts.business_date).await?;
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
    crate::fault::pause("load").await;
    // Last, under the item's row lock: only the attempt that still holds the item commits.
    if !audit::record_loaded(&tx, fence, facts, &counts).await? {
        return Err(LoadError::LeaseLost);
    }
    tx.commit().await?;
    if crate::fault::fires("VISITAS_FAULT_LOSE_COMMIT_ACK", "load") {
        // As if the acknowledgement of the COMMIT was lost: the connection dies now.
        let cut = client
            .execute("SELECT pg_terminate_backend(pg_backend_pid())", &[])
            .await;
        return Err(cut.err().map_or(LoadError::InputEnded, LoadError::Db));
    }
    Ok(LoadOutcome::Loaded(counts))
}

async fn copy_valid(
    tx: &tokio_postgres::Transaction<'_>,
    item: &Claimed,
    rows: &DataFrame,
) -> Result<(), LoadError> {
    let sink = tx
        .copy_in(
            "COPY estadisticas (bitacora_id, archivo, linea, email, jyv, badmail, baja, fecha_envio, fecha_open,
                 opens, opens_virales, fecha_click, clicks, clicks_virales, links, ips, navegadores, plataformas)
             FROM STDIN (FORMAT binary)",
        )
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
    item: &Claimed,
    rejected: &[Rejected],
) -> Result<(), LoadError> {
    if rejected.is_empty() {
        return Ok(());
    }
    let sink = tx
        .copy_in(
            "COPY errores (bitacora_id, archivo, linea, tipo_error, detalle, fila_original)
             FROM STDIN (FORMAT binary)",
        )
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
                &crate::storable::message(&r.detail),
                &crate::storable::line(&r.original),
            ])
            .await
            .map_err(LoadError::Copy)?;
    }
    writer.finish().await?;
    Ok(())
}

/// Upserts one row per e-mail of the file; returns (new, updated) visitor counts.
///
/// Under the visitors lock, one probe splits the file's visitors into those already in
/// `visitantes` (updated) and the rest (inserted by a plain INSERT, about half the cost
/// of `INSERT … ON CONFLICT`); the lock keeps the split true until commit, and the
/// primary key stays the last line of defence.
///
/// min/max/total merge exactly; the year and month counters merge only when the stored
/// row was counted for the same calendar year/month as this load's as-of date, and are
/// otherwise recounted from `estadisticas` (which already holds this file's rows).
async fn upsert_visitors(
    tx: &tokio_postgres::Transaction<'_>,
    visitors: &[(String, Visits)],
    as_of: NaiveDate,
) -> Result<(i32, i32), LoadError> {
    if visitors.is_empty() {
        return Ok((0, 0));
    }
    crate::service_lock::lock_visitors(tx).await?;
    let emails: Vec<&str> = visitors.iter().map(|(e, _)| e.as_str()).collect();
    let mut known = vec![false; visitors.len()];
    for row in tx
        .query(
            "SELECT f.i FROM unnest($1::text[]) WITH ORDINALITY AS f(email, i)
             JOIN visitantes v ON v.email = f.email",
            &[&emails],
        )
        .await?
    {
        known[row.get::<_, i64>(0) as usize - 1] = true;
    }
    let (mut old, mut new) = (VisitorColumns::default(), VisitorColumns::default());
    for ((email, visits), known) in visitors.iter().zip(known) {
        if known { &mut old } else { &mut new }.push(email, visits);
    }
    let inserted = tx
        .execute(
            "INSERT INTO visitantes (email, fecha_primera_visita, fecha_ultima_visita, visitas_totales,
                                     visitas_anio_actual, visitas_mes_actual, contadores_al)
             SELECT f.*, $7::date
             FROM unnest($1::text[], $2::timestamp[], $3::timestamp[], $4::int[], $5::int[], $6::int[]) AS f",
            &new.params(&as_of),
        )
        .await?;
    let updated = tx
        .execute(
            "UPDATE visitantes AS v SET
                 fecha_primera_visita = least(v.fecha_primera_visita, f.primera),
                 fecha_ultima_visita = greatest(v.fecha_ultima_visita, f.ultima),
                 visitas_totales = v.visitas_totales + f.total,
                 visitas_anio_actual = CASE
                     WHEN date_trunc('year', v.contadores_al) = date_trunc('year', $7::date)
                     THEN v.visitas_anio_actual + f.anio
                     ELSE (SELECT count(*) FROM estadisticas e WHERE e.email = f.email
                           AND e.fecha_envio >= date_trunc('year', $7::date)
                           AND e.fecha_envio < date_trunc('year', $7::date) + interval '1 year') END,
                 visitas_mes_actual = CASE
                     WHEN date_trunc('month', v.contadores_al) = date_trunc('month', $7::date)
                     THEN v.visitas_mes_actual + f.mes
                     ELSE (SELECT count(*) FROM estadisticas e WHERE e.email = f.email
                           AND e.fecha_envio >= date_trunc('month', $7::date)
                           AND e.fecha_envio < date_trunc('month', $7::date) + interval '1 month') END,
                 contadores_al = $7::date,
                 actualizado_en = now()
             FROM unnest($1::text[], $2::timestamp[], $3::timestamp[], $4::int[], $5::int[], $6::int[])
                 AS f(email, primera, ultima, total, anio, mes)
             WHERE v.email = f.email",
            &old.params(&as_of),
        )
        .await?;
    Ok((inserted as i32, updated as i32))
}

/// Visitors as the upsert's array parameters.
#[derive(Default)]
struct VisitorColumns<'a> {
    emails: Vec<&'a str>,
    first: Vec<NaiveDateTime>,
    last: Vec<NaiveDateTime>,
    total: Vec<i32>,
    year: Vec<i32>,
    month: Vec<i32>,
}

impl<'a> VisitorColumns<'a> {
    fn push(&mut self, email: &'a str, v: &Visits) {
        self.emails.push(email);
        self.first.push(millis_to_naive(v.first));
        self.last.push(millis_to_naive(v.last));
        self.total.push(v.total);
        self.year.push(v.in_year);
        self.month.push(v.in_month);
    }

    fn params<'p>(&'p self, as_of: &'p NaiveDate) -> [&'p (dyn ToSql + Sync); 7] {
        [
            &self.emails,
            &self.first,
            &self.last,
            &self.total,
            &self.year,
            &self.month,
            as_of,
        ]
    }
}

fn millis_to_naive(ms: i64) -> NaiveDateTime {
    DateTime::from_timestamp_millis(ms)
        .expect("parsed dates are in range")
        .naive_utc()
}
