//! The console's reads of `bitacora_control` (and the neighbours a file's page joins):
//! the files list filtered and paged by id, a file with its item, the loads of the same
//! name or content, its rejected records, and a range of days by status.
//!
//! Lists page by keyset (`id` before or after the last one seen), never by offset, and
//! every filter is written so that an index answers it (migration 15): a page costs the
//! same on a million rows as on a thousand.

use crate::types::AuditStatus;
use crate::types::state::{failure_statuses, resolving_statuses};
use chrono::NaiveDate;
use sqlx::{PgPool, Postgres, QueryBuilder};

/// The one feed there is until feeds become data: its files match a `feed` filter of
/// this name, and no other.
pub const FEED: &str = "visitas";

/// Which files a list shows (every field optional: all files).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileFilter {
    /// Any of these statuses (none: every status).
    pub statuses: Vec<AuditStatus>,
    /// First business day (inclusive).
    pub from: Option<NaiveDate>,
    /// Last business day (inclusive).
    pub to: Option<NaiveDate>,
    /// The feed's name.
    pub feed: Option<String>,
    /// Text the file name or the message contains (case-insensitive).
    pub text: Option<String>,
    /// Only failures neither discarded nor loaded since under the same name.
    pub unresolved: bool,
}

/// Days a range may span and still count as short ([`FileFilter::is_short_range`]).
const SHORT_RANGE_DAYS: i64 = 62;

impl FileFilter {
    /// Both ends of the day range are given, at most two months apart: its rows are few
    /// enough (a night's files times the days) to be read whole and sorted.
    pub fn is_short_range(&self) -> bool {
        matches!((self.from, self.to), (Some(from), Some(to)) if (to - from).num_days() <= SHORT_RANGE_DAYS)
    }
}

/// Which page of a list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Page {
    /// The newest rows.
    #[default]
    First,
    /// The rows older than this id.
    Before(i64),
    /// The rows newer than this id.
    After(i64),
}

/// One line of the files list.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FileLine {
    /// `bitacora_control.id`.
    pub id: i64,
    /// The file.
    pub archivo: String,
    /// Its status.
    #[sqlx(try_from = "String")]
    pub estatus: AuditStatus,
    /// Its business day, once fixed.
    pub fecha_negocio: Option<NaiveDate>,
    /// When its row was made (`YYYY-MM-DD HH24:MI`, the database's time zone).
    pub creado: String,
    /// Records in it.
    pub registros_totales: Option<i32>,
    /// Records rejected.
    pub registros_error: Option<i32>,
    /// How long its attempt took.
    pub duracion_ms: Option<i64>,
    /// The start of its message (empty if none).
    pub mensaje: String,
    /// The audit row it retries.
    pub reprocesa_de: Option<i64>,
    /// An operator discarded it.
    pub discarded: bool,
}

/// A page of a list, with where the neighbouring pages start.
#[derive(Debug, Clone)]
pub struct Paged<T> {
    /// The rows, newest first.
    pub rows: Vec<T>,
    /// `Page::After` this id shows newer rows, if there are any.
    pub newer: Option<i64>,
    /// `Page::Before` this id shows older rows, if there are any.
    pub older: Option<i64>,
}

/// The columns of a [`FileLine`], from `bitacora_control b` (the message cut at 160
/// characters).
const LINE_SELECT: &str = "SELECT b.id, b.archivo, b.estatus, b.fecha_negocio,
        to_char(b.creado_en, 'YYYY-MM-DD HH24:MI') AS creado,
        b.registros_totales, b.registros_error, b.duracion_ms,
        coalesce(left(b.mensaje_error, 160), '') AS mensaje, b.reprocesa_de,
        b.descartado_en IS NOT NULL AS discarded
     FROM bitacora_control b";

/// Appends the filter's conditions (each starting with `AND`) for rows `b` of
/// `bitacora_control`; `tz` is the business time zone that dates rows not yet dated.
fn push_filter(q: &mut QueryBuilder<Postgres>, filter: &FileFilter, tz: &str) {
    if !filter.statuses.is_empty() {
        let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
        q.push(" AND b.estatus = ANY(")
            .push_bind(statuses)
            .push(")");
    }
    if filter.from.is_some() || filter.to.is_some() {
        push_days(q, filter.from, filter.to, tz);
    }
    if let Some(feed) = &filter.feed
        && feed != FEED
    {
        // Feeds as data (a column of their own) replace this.
        q.push(" AND false");
    }
    if let Some(text) = filter.text.as_deref().filter(|t| !t.is_empty()) {
        // lower(…) LIKE: what the trigram indexes of migration 15 answer.
        let pattern = format!("%{}%", like_escaped(&text.to_lowercase()));
        q.push(" AND (lower(b.archivo) LIKE ")
            .push_bind(pattern.clone())
            .push(" OR lower(b.mensaje_error) LIKE ")
            .push_bind(pattern)
            .push(")");
    }
    if filter.unresolved {
        q.push(concat!(
            " AND b.estatus IN ",
            failure_statuses!(),
            " AND b.descartado_en IS NULL
              AND NOT EXISTS (SELECT 1 FROM bitacora_control l WHERE l.archivo = b.archivo
                              AND l.id > b.id AND l.estatus IN ",
            resolving_statuses!(),
            ")"
        ));
    }
}

/// `AND` the row's business day is in `[from, to]`: its `fecha_negocio`, or for a row
/// not dated yet (never claimed), the day it was made in the business time zone. Both
/// halves are index ranges (migration 15).
fn push_days(
    q: &mut QueryBuilder<Postgres>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    tz: &str,
) {
    q.push(" AND ((b.fecha_negocio IS NOT NULL");
    if let Some(from) = from {
        q.push(" AND b.fecha_negocio >= ").push_bind(from);
    }
    if let Some(to) = to {
        q.push(" AND b.fecha_negocio <= ").push_bind(to);
    }
    q.push(") OR (b.fecha_negocio IS NULL");
    if let Some(from) = from {
        q.push(" AND b.creado_en >= (")
            .push_bind(from)
            .push("::timestamp AT TIME ZONE ")
            .push_bind(tz.to_string())
            .push(")");
    }
    if let Some(to) = to {
        q.push(" AND b.creado_en < ((")
            .push_bind(to)
            .push(" + 1)::timestamp AT TIME ZONE ")
            .push_bind(tz.to_string())
            .push(")");
    }
    q.push("))");
}

/// Appends the page's bound and the order (newest first; oldest first for `After`, which
/// [`paged`] turns round).
fn push_order(q: &mut QueryBuilder<Postgres>, filter: &FileFilter, page: Page) {
    // Within a short range of days, the rows are found by day and sorted: the planner
    // would otherwise walk the id index from the newest row and filter its way back to
    // the range (measured: 550 ms instead of 6 on a million rows). `+ 0` keeps the order
    // and hides the index's.
    let key = if filter.is_short_range() {
        "b.id + 0"
    } else {
        "b.id"
    };
    match page {
        Page::First => q.push(format_args!(" ORDER BY {key} DESC")),
        Page::Before(id) => q
            .push(" AND b.id < ")
            .push_bind(id)
            .push(format_args!(" ORDER BY {key} DESC")),
        Page::After(id) => q
            .push(" AND b.id > ")
            .push_bind(id)
            .push(format_args!(" ORDER BY {key}")),
    };
}

/// `text` with LIKE's wildcards and escape taken literally.
fn like_escaped(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The page `page` of the files `filter` matches, `limit` rows, newest first.
pub async fn files(
    pool: &PgPool,
    filter: &FileFilter,
    page: Page,
    limit: i64,
    tz: &str,
) -> sqlx::Result<Paged<FileLine>> {
    let mut q = QueryBuilder::new(LINE_SELECT);
    q.push(" WHERE true");
    push_filter(&mut q, filter, tz);
    push_order(&mut q, filter, page);
    q.push(" LIMIT ").push_bind(limit + 1);
    // Unnamed: planned for these values every time, never a generic plan.
    let mut rows: Vec<FileLine> = q.build_query_as().persistent(false).fetch_all(pool).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok(paged(rows, page, more, |r| r.id))
}

/// Orders a keyset page newest first and says where its neighbours start: `more` is
/// whether a row beyond `rows` was found in the direction read.
pub fn paged<T>(mut rows: Vec<T>, page: Page, more: bool, id: impl Fn(&T) -> i64) -> Paged<T> {
    if let Page::After(_) = page {
        rows.reverse();
    }
    let (first, last) = (rows.first().map(&id), rows.last().map(&id));
    let (newer, older) = match page {
        Page::First => (None, last.filter(|_| more)),
        Page::Before(_) => (first, last.filter(|_| more)),
        Page::After(after) => (first.filter(|_| more), last.or(Some(after + 1))),
    };
    Paged { rows, newer, older }
}

/// The lines of the files `ids`, newest first (unknown ids left out).
pub async fn lines_of(pool: &PgPool, ids: &[i64]) -> sqlx::Result<Vec<FileLine>> {
    let mut q = QueryBuilder::new(LINE_SELECT);
    q.push(" WHERE b.id = ANY(")
        .push_bind(ids.to_vec())
        .push(") ORDER BY b.id DESC");
    q.build_query_as().fetch_all(pool).await
}

/// The ids of the files `filter` matches, newest first, at most `cap` + 1 of them (so
/// the caller sees when there are more than it may act on).
pub async fn matching_ids(
    pool: &PgPool,
    filter: &FileFilter,
    cap: i64,
    tz: &str,
) -> sqlx::Result<Vec<i64>> {
    let mut q = QueryBuilder::new("SELECT b.id FROM bitacora_control b WHERE true");
    push_filter(&mut q, filter, tz);
    push_order(&mut q, filter, Page::First);
    q.push(" LIMIT ").push_bind(cap + 1);
    q.build_query_scalar()
        .persistent(false)
        .fetch_all(pool)
        .await
}

/// Files of the business days in `[from, to]` by status, as the day filter dates them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DayStatus {
    /// The business day.
    pub dia: NaiveDate,
    /// The status.
    #[sqlx(try_from = "String")]
    pub estatus: AuditStatus,
    /// Files.
    pub archivos: i64,
    /// Records in them.
    pub registros: i64,
    /// Records rejected.
    pub rechazados: i64,
}

/// The files of the business days `[from, to]`, per day and status.
pub async fn days_by_status(
    pool: &PgPool,
    from: NaiveDate,
    to: NaiveDate,
    tz: &str,
) -> sqlx::Result<Vec<DayStatus>> {
    let mut q = QueryBuilder::new("SELECT coalesce(b.fecha_negocio, (b.creado_en AT TIME ZONE ");
    q.push_bind(tz.to_string()).push(
        ")::date) AS dia, b.estatus, count(*) AS archivos,
                coalesce(sum(b.registros_totales), 0)::bigint AS registros,
                coalesce(sum(b.registros_error), 0)::bigint AS rechazados
         FROM bitacora_control b WHERE true",
    );
    push_days(&mut q, Some(from), Some(to), tz);
    q.push(" GROUP BY 1, 2 ORDER BY 1 DESC, 2");
    q.build_query_as().persistent(false).fetch_all(pool).await
}

/// A file's audit row and its work item, as its page shows them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FileDetail {
    /// `bitacora_control.id`.
    pub id: i64,
    /// The file.
    pub archivo: String,
    /// Its status.
    #[sqlx(try_from = "String")]
    pub estatus: AuditStatus,
    /// Where it was read from.
    pub ruta_origen: String,
    /// Its size in bytes, once known.
    pub tamano_bytes: Option<i64>,
    /// Its SHA-256, once known.
    pub sha256: Option<String>,
    /// Its encoding, once known.
    pub encoding: Option<String>,
    /// Attempts so far.
    pub intentos: i32,
    /// Records in it, valid, rejected.
    pub registros_totales: Option<i32>,
    /// Valid records.
    pub registros_validos: Option<i32>,
    /// Rejected records.
    pub registros_error: Option<i32>,
    /// New visitors.
    pub visitantes_nuevos: Option<i32>,
    /// Visitors updated.
    pub visitantes_actualizados: Option<i32>,
    /// When its last attempt began (`YYYY-MM-DD HH24:MI:SS TZ`).
    pub inicio: Option<String>,
    /// When it ended.
    pub fin: Option<String>,
    /// How long, in ms.
    pub duracion_ms: Option<i64>,
    /// The worker of its last attempt (`host:pid:n`).
    pub worker: Option<String>,
    /// Its message.
    pub mensaje_error: Option<String>,
    /// Its backup or quarantined copy.
    pub ruta_backup: Option<String>,
    /// Its business day.
    pub fecha_negocio: Option<NaiveDate>,
    /// The audit row it retries.
    pub reprocesa_de: Option<i64>,
    /// The audit row that retried it.
    pub retried_as: Option<i64>,
    /// When it was discarded, and why.
    pub descartado_en: Option<String>,
    /// Why it was discarded.
    pub motivo_descarte: Option<String>,
    /// When its row was made.
    pub creado: String,
    /// Its work item.
    pub work_item: i64,
    /// The item's state.
    #[sqlx(try_from = "String")]
    pub state: crate::types::ItemState,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Who holds it now.
    pub locked_by: Option<String>,
    /// Until when.
    pub locked_until: Option<String>,
    /// The item's last error.
    pub last_error: Option<String>,
    /// The item's origin (URL without credentials).
    pub origin: String,
    /// The host holding a local origin.
    pub origin_host: Option<String>,
    /// When its first attempt began, in the database's time zone day (for its log).
    pub first_day: Option<NaiveDate>,
    /// When its last write happened, in the database's time zone day (for its log).
    pub last_day: Option<NaiveDate>,
}

/// The audit row `id` with its item, if it exists; `tz` dates its log days.
pub async fn file(pool: &PgPool, id: i64, tz: &str) -> sqlx::Result<Option<FileDetail>> {
    sqlx::query_as(
        "SELECT b.id, b.archivo, b.estatus, b.ruta_origen, b.tamano_bytes, b.sha256, b.encoding,
                b.intentos, b.registros_totales, b.registros_validos, b.registros_error,
                b.visitantes_nuevos, b.visitantes_actualizados,
                to_char(b.inicio, 'YYYY-MM-DD HH24:MI:SS TZ') AS inicio,
                to_char(b.fin, 'YYYY-MM-DD HH24:MI:SS TZ') AS fin, b.duracion_ms, b.worker,
                b.mensaje_error, b.ruta_backup, b.fecha_negocio, b.reprocesa_de,
                (SELECT rb.id FROM work_items r JOIN bitacora_control rb ON rb.work_item_id = r.id
                 WHERE r.retry_of = b.id ORDER BY rb.id LIMIT 1) AS retried_as,
                to_char(b.descartado_en, 'YYYY-MM-DD HH24:MI:SS TZ') AS descartado_en,
                b.motivo_descarte, to_char(b.creado_en, 'YYYY-MM-DD HH24:MI:SS TZ') AS creado,
                w.id AS work_item, w.state, w.max_attempts, w.locked_by,
                to_char(w.locked_until, 'YYYY-MM-DD HH24:MI:SS TZ') AS locked_until, w.last_error,
                w.origin, w.origin_host,
                (coalesce(b.inicio, b.creado_en) AT TIME ZONE $2)::date AS first_day,
                (greatest(b.fin, w.updated_at) AT TIME ZONE $2)::date AS last_day
         FROM bitacora_control b JOIN work_items w ON w.id = b.work_item_id
         WHERE b.id = $1",
    )
    .bind(id)
    .bind(tz)
    .fetch_optional(pool)
    .await
}

/// Another load of the same file name or the same content.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Related {
    /// `bitacora_control.id`.
    pub id: i64,
    /// The file.
    pub archivo: String,
    /// Its status.
    #[sqlx(try_from = "String")]
    pub estatus: AuditStatus,
    /// When its row was made.
    pub creado: String,
    /// Same SHA-256 as the file asked about.
    pub same_content: bool,
}

/// Loads of the name `archivo` or the content `sha256` other than `id`, oldest first
/// (at most `limit`, the nearest to `id`).
pub async fn related(
    pool: &PgPool,
    id: i64,
    archivo: &str,
    sha256: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<Related>> {
    let mut rows: Vec<Related> = sqlx::query_as(
        "SELECT id, archivo, estatus, to_char(creado_en, 'YYYY-MM-DD HH24:MI') AS creado,
                coalesce(sha256 = $3, false) AS same_content
         FROM bitacora_control WHERE (archivo = $2 OR sha256 = $3) AND id <> $1
         ORDER BY abs(id - $1), id LIMIT $4",
    )
    .bind(id)
    .bind(archivo)
    .bind(sha256)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.sort_by_key(|r| r.id);
    Ok(rows)
}

/// A rejected record.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Rejected {
    /// Its line in the file.
    pub linea: i32,
    /// The first rule it breaks.
    pub tipo_error: String,
    /// Every rule it breaks.
    pub detalle: String,
    /// The line as it was.
    pub fila_original: String,
}

/// When a file's rows can have been made: from its audit row to its end.
#[derive(sqlx::FromRow)]
struct LoadWindow {
    made: chrono::DateTime<chrono::Utc>,
    ended: chrono::DateTime<chrono::Utc>,
}

/// Rejected records of audit row `id` after line `after`, at most `limit`. Read only in
/// the partitions of the file's load: its rows were made between its audit row and its
/// end, and those bounds, given as values, let the planner leave out every other day.
pub async fn rejected(
    pool: &PgPool,
    id: i64,
    after: i32,
    limit: i64,
) -> sqlx::Result<Vec<Rejected>> {
    let bounds: Option<LoadWindow> = sqlx::query_as(
        "SELECT creado_en AS made, coalesce(fin, now()) AS ended FROM bitacora_control WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some(LoadWindow { made, ended }) = bounds else {
        return Ok(Vec::new());
    };
    sqlx::query_as(
        "SELECT linea, tipo_error, detalle, fila_original FROM errores
         WHERE bitacora_id = $1 AND creado_en >= $2 AND creado_en <= $3 AND linea > $4
         ORDER BY linea LIMIT $5",
    )
    .bind(id)
    .bind(made)
    .bind(ended)
    .bind(after)
    .bind(limit)
    .persistent(false)
    .fetch_all(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(like_escaped(r"50%_a\b"), r"50\%\_a\\b");
    }

    #[test]
    fn keyset_pages_point_at_their_neighbours() {
        let id = |n: &i64| *n;
        let first = paged(vec![9, 8, 7], Page::First, true, id);
        assert_eq!((first.newer, first.older), (None, Some(7)));
        let last = paged(vec![3, 2], Page::Before(4), false, id);
        assert_eq!((last.newer, last.older), (Some(3), None));
        // Read upwards from 4: rows 5, 6 come back newest first.
        let back = paged(vec![5, 6], Page::After(4), true, id);
        assert_eq!(back.rows, vec![6, 5]);
        assert_eq!((back.newer, back.older), (Some(6), Some(5)));
    }
}
