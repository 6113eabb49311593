//! `GET /files/{id}`: one file — its attempts and timings, message, backup location, its
//! `report_N.log` (the lines of its item), its rejected records (paged by line, and all
//! of them as CSV at `/files/{id}/rejected.csv`), and the other loads of the same name or
//! content. What lives on another performer's host is named, not hidden.

use crate::console::Console;
use crate::console::auth::Identity;
use crate::console::layout::{Frame, or_dash, page, problem, status};
use crate::console::pages::{bad_request, db_error};
use crate::console::params::Params;
use crate::output::csv_line;
use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Days;
use maud::{Markup, html};
use shared::local::paths::Dirs;
use shared::store::browse::{self, FileDetail};
use shared::types::ItemState;
use std::sync::Arc;

/// Rejected records per page.
const REJECTED_ROWS: i64 = 50;
/// Other loads of the same name or content listed at the most.
const RELATED: i64 = 20;
/// Log lines shown at the most (the last ones).
const LOG_LINES: usize = 300;
/// Day directories of logs read at the most for one file.
const LOG_DAYS: u64 = 7;
/// Rejected records read per query while writing the CSV.
const CSV_CHUNK: i64 = 5000;

/// `GET /files/{id}`.
pub async fn show(
    State(console): State<Arc<Console>>,
    Extension(identity): Extension<Identity>,
    Path(id): Path<i64>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::of_query(query);
    let after = match params.int("after") {
        Ok(after) => after.unwrap_or(0) as i32,
        Err(why) => return bad_request(&identity, &why),
    };
    let pool = &console.read;
    let detail = match browse::file(pool, id, &console.tz_name()).await {
        Ok(Some(detail)) => detail,
        Ok(None) => {
            return problem(
                StatusCode::NOT_FOUND,
                Some(&identity),
                &format!("bitacora_control.id = {id} does not exist"),
            );
        }
        Err(e) => return db_error(&identity, e),
    };
    let related = browse::related(pool, id, &detail.archivo, detail.sha256.as_deref(), RELATED);
    let rejected = browse::rejected(pool, id, after, REJECTED_ROWS + 1);
    let (related, mut rejected) = match tokio::try_join!(related, rejected) {
        Ok(both) => both,
        Err(e) => return db_error(&identity, e),
    };
    let more = rejected.len() as i64 > REJECTED_ROWS;
    rejected.truncate(REJECTED_ROWS as usize);
    let this_host = shared::local::host::name();
    let log = log_of(&console, &detail, &this_host);
    let d = &detail;
    let body = html! {
        dl.facts #facts {
            dt { "file" } dd #file-name { (d.archivo) }
            dt { "status" } dd #file-status { (status(d.estatus))
                @if let Some(at) = &d.descartado_en { " — discarded " (at) ": " (or_dash(&d.motivo_descarte)) } }
            dt { "message" } dd #file-message { (or_dash(&d.mensaje_error)) }
            dt { "business day" } dd { (or_dash(&d.fecha_negocio)) }
            dt { "records" } dd { (or_dash(&d.registros_totales)) " total, " (or_dash(&d.registros_validos)) " valid, "
                                  (or_dash(&d.registros_error)) " rejected; visitors " (or_dash(&d.visitantes_nuevos))
                                  " new, " (or_dash(&d.visitantes_actualizados)) " updated" }
            dt { "attempts" } dd { (d.intentos) " of " (d.max_attempts) " (work item " (d.work_item) ", " (d.state.as_str()) ")" }
            dt { "timings" } dd { "made " (d.creado) "; last attempt " (or_dash(&d.inicio)) " → " (or_dash(&d.fin))
                                  " (" (or_dash(&d.duracion_ms)) " ms)" }
            dt { "performer" } dd { (or_dash(&d.worker))
                @if d.state == ItemState::Running { " — holds it until " (or_dash(&d.locked_until)) } }
            @if let Some(e) = &d.last_error { dt { "last error" } dd { (e) } }
            dt { "origin" } dd { (d.origin) @if let Some(h) = &d.origin_host { " on host " (h) } " — " (d.ruta_origen) }
            dt { "backup" } dd #file-backup { (backup_place(d, &this_host)) }
            dt { "content" } dd { (or_dash(&d.tamano_bytes)) " bytes, " (or_dash(&d.encoding)) ", SHA-256 " (or_dash(&d.sha256)) }
            @if let Some(r) = d.reprocesa_de { dt { "retries" } dd { a href=(format!("/files/{r}")) { "bitacora_control.id = " (r) } } }
            @if let Some(r) = d.retried_as { dt { "retried as" } dd #retried-as { a href=(format!("/files/{r}")) { "bitacora_control.id = " (r) } } }
        }
        (actions(&console, &identity, d))
        h2 { "Rejected records" }
        @if rejected.is_empty() && after == 0 { p { "None." } } @else {
            p { a href=(format!("/files/{id}/rejected.csv")) { "All of them as CSV" } }
            table #rejected {
                thead { tr { th.num { "line" } th { "type" } th { "detail" } th { "original line" } } }
                tbody { @for r in &rejected { tr {
                    td.num { (r.linea) } td { (r.tipo_error) } td.msg { (r.detalle) } td.msg { code { (r.fila_original) } }
                } } }
            }
            nav.pager {
                @if after > 0 { a href=(format!("/files/{id}")) { "← first" } }
                @if more { @if let Some(last) = rejected.last() { a rel="next" href=(format!("/files/{id}?after={}", last.linea)) { "next →" } } }
            }
        }
        h2 { "Other loads of this name or content" }
        @if related.is_empty() { p { "None." } } @else {
            table #related {
                thead { tr { th.num { "id" } th { "file" } th { "status" } th { "made" } th { "same content" } } }
                tbody { @for r in &related { tr {
                    td.num { a href=(format!("/files/{}", r.id)) { (r.id) } } td { (r.archivo) } td { (status(r.estatus)) }
                    td { (r.creado) } td { @if r.same_content { "yes" } @else { "—" } }
                } } }
            }
        }
        h2 { "Its log" }
        (log)
    };
    let title = format!("{} (id {id})", detail.archivo);
    page(
        &console,
        &identity,
        Frame {
            title: &title,
            section: "/files",
            refresh: false,
        },
        body,
    )
    .into_response()
}

/// The host of a worker name (`host:pid:n`).
fn host_of(worker: &str) -> &str {
    worker.split(':').next().unwrap_or(worker)
}

/// Where the file's copy is, and on which host when not on this one.
fn backup_place(d: &FileDetail, this_host: &str) -> String {
    let Some(path) = &d.ruta_backup else {
        return "—".into();
    };
    match d.worker.as_deref().map(host_of) {
        Some(host) if host != this_host => format!("{path} (on performer host {host})"),
        _ => path.clone(),
    }
}

/// Retry and discard, for an operator, on a file that waits for them.
fn actions(console: &Console, identity: &Identity, d: &FileDetail) -> Markup {
    let waiting = d.estatus.is_failure()
        && d.state == ItemState::Failed
        && d.descartado_en.is_none()
        && d.retried_as.is_none();
    if !waiting || !identity.may_act(console) {
        return html! {};
    }
    html! {
        div.actions #file-actions {
            form method="post" action=(format!("/quarantine/{}/retry", d.id)) {
                button #retry type="submit" { "Retry" }
            }
            form method="post" action=(format!("/quarantine/{}/discard", d.id)) {
                input #discard-reason type="text" name="reason" placeholder="why (required)" required size="40";
                " " button #discard type="submit" { "Discard" }
            }
        }
    }
}

/// The file's `report_N.log`: the lines of its item, read on this host, or where they
/// are when its performer ran elsewhere.
fn log_of(console: &Console, d: &FileDetail, this_host: &str) -> Markup {
    let name = shared::observe::telemetry::file_log_name(&d.archivo);
    let logs = Dirs::new(&console.config.paths.root).logs();
    let Some(first) = d.first_day else {
        return html! { p { "No attempt yet." } };
    };
    let last = d.last_day.unwrap_or(first).min(first + Days::new(LOG_DAYS));
    let mut days = Vec::new();
    let mut day = first;
    while day <= last {
        days.push(day.format("%Y%m%d").to_string());
        day = day + Days::new(1);
    }
    let places: Vec<String> = days
        .iter()
        .map(|day| logs.join(day).join(&name).display().to_string())
        .collect();
    if let Some(host) = d.worker.as_deref().map(host_of).filter(|h| *h != this_host) {
        return html! {
            p #log-elsewhere { "On performer host " strong { (host) } ", not this one: "
                @for p in &places { code { (p) } " " } "(lines with work_item_id " (d.work_item) ")." }
        };
    }
    let mut lines = Vec::new();
    for place in &places {
        let Ok(text) = std::fs::read_to_string(place) else {
            continue;
        };
        for line in text.lines() {
            let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if value.get("work_item_id").and_then(|v| v.as_i64()) == Some(d.work_item) {
                lines.push(log_line(&value));
            }
        }
    }
    if lines.is_empty() {
        return html! { p { "No line found in " @for p in &places { code { (p) } " " } "(kept "
        (console.config.dispatcher.log_retention_days) " days)." } };
    }
    let skipped = lines.len().saturating_sub(LOG_LINES);
    html! {
        p { @for p in &places { code { (p) } " " } @if skipped > 0 { "(the last " (LOG_LINES) " lines)" } }
        pre #log { @for l in &lines[skipped..] { (l) "\n" } }
    }
}

/// A JSON log line as text: time, level, message, then the other fields.
fn log_line(value: &serde_json::Value) -> String {
    let field = |k: &str| value.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let mut out = format!(
        "{} {:5} {}",
        field("timestamp"),
        field("level"),
        field("message")
    );
    if let Some(map) = value.as_object() {
        for (k, v) in map {
            if !matches!(
                k.as_str(),
                "timestamp" | "level" | "message" | "target" | "work_item_id" | "file"
            ) {
                out.push_str(&format!(" {k}={v}"));
            }
        }
    }
    out
}

/// `GET /files/{id}/rejected.csv`: every rejected record of the file, streamed.
pub async fn rejected_csv(
    State(console): State<Arc<Console>>,
    Extension(_identity): Extension<Identity>,
    Path(id): Path<i64>,
) -> Response {
    let header_line = csv_line(&["linea", "tipo_error", "detalle", "fila_original"]);
    let pool = console.read.clone();
    // Pages of records, each read after the last line of the one before.
    let chunks = futures_util::stream::unfold(Some(0), move |after| {
        let pool = pool.clone();
        async move {
            let after = after?;
            match browse::rejected(&pool, id, after, CSV_CHUNK).await {
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let next = (rows.len() as i64 == CSV_CHUNK)
                        .then(|| rows.last().map(|r| r.linea))
                        .flatten();
                    let mut bytes = Vec::new();
                    for r in &rows {
                        bytes.extend(csv_line(&[
                            r.linea.to_string().as_str(),
                            &r.tipo_error,
                            &inert(&r.detalle),
                            &inert(&r.fila_original),
                        ]));
                    }
                    Some((Ok::<_, sqlx::Error>(bytes), next))
                }
                Err(e) => Some((Err(e), None)),
            }
        }
    });
    let body = futures_util::stream::iter([Ok(header_line)]).chain(chunks);
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"rejected-{id}.csv\""),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// A sender's text made inert for a spreadsheet: a cell that begins with `=`, `+`, `-`, `@`,
/// a tab or a carriage return is a formula to Excel and LibreOffice (CSV injection), so it
/// gets a leading `'`, which they show as text. The rows in the database keep the original.
fn inert(text: &str) -> std::borrow::Cow<'_, str> {
    match text.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{text}").into(),
        _ => text.into(),
    }
}

use futures_util::StreamExt as _;
