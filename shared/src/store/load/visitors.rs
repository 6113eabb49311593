//! `visitantes` and `visitas_por_anio`: the visitor aggregate of docs/data-contract.md §5, kept exact by
//! each load from data whose size does not grow with history.
//!
//! A visitor's row holds its visits per month of the calendar year of `contadores_al`
//! (`visitas_por_mes`); `visitas_por_anio` holds its visits per month of every other
//! year. So the year and month counters of any as-of date come from at most two rows per
//! visitor — never from `estadisticas`, where the first night of a month used to recount
//! every returning visitor's rows (one probe and ~30 scattered heap rows each, a cost
//! that grew with all history). A load moves a visitor to the as-of year only when its
//! row was counted for another year (the first load of a year for that visitor): the old
//! year's months go to `visitas_por_anio`, the new year's come back from it. Each
//! visitor row is written once per load.

use super::copy_writer::CopyWriter;
use super::error::LoadError;
use crate::feed::{Months, Visits};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime};
use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Instant;
use tokio_postgres::Transaction;
use tokio_postgres::types::{ToSql, Type};

/// Which of the file's visitors `visitantes` already holds ($1), with the year they were
/// counted for, and that year's months when it is not the as-of year $2 (to archive).
const PROBE: &str = "SELECT f.i, extract(year FROM v.contadores_al)::int AS counted_for,
            CASE WHEN extract(year FROM v.contadores_al)::int <> $2::int THEN v.visitas_por_mes END
                AS to_archive
     FROM unnest($1::text[]) WITH ORDINALITY AS f(email, i)
     JOIN visitantes v ON v.email = f.email";

/// Visits per month of years that are nobody's current year, copied in: the archived
/// year of a visitor moving to the as-of year (a visitor's row in `visitas_por_anio` is
/// never its current year, so this never conflicts).
const ARCHIVE_YEARS: &str =
    "COPY visitas_por_anio (email, anio, visitas_por_mes) FROM STDIN (FORMAT binary)";

/// New visitors go straight into `visitantes` by binary COPY: about half the server time
/// of an INSERT from array parameters.
const COPY_NEW: &str =
    "COPY visitantes (email, fecha_primera_visita, fecha_ultima_visita, visitas_totales,
                        visitas_anio_actual, visitas_mes_actual, contadores_al, visitas_por_mes)
     FROM STDIN (FORMAT binary)";

/// Returning visitors' rows of the file, copied in for one UPDATE joined by e-mail
/// (dropped at the end of the load transaction, and with it if it rolls back).
/// `mismo_anio`: the visitor was counted for the as-of year, so its months add up;
/// otherwise its months of the as-of year are those of the file (plus any taken back).
const RETURNING_TABLE: &str = "CREATE TEMP TABLE visitantes_del_archivo (
         email text NOT NULL, mismo_anio boolean NOT NULL, primera timestamp NOT NULL,
         ultima timestamp NOT NULL, total int NOT NULL, anio int NOT NULL, mes int NOT NULL,
         m1 int NOT NULL, m2 int NOT NULL, m3 int NOT NULL, m4 int NOT NULL, m5 int NOT NULL,
         m6 int NOT NULL, m7 int NOT NULL, m8 int NOT NULL, m9 int NOT NULL, m10 int NOT NULL,
         m11 int NOT NULL, m12 int NOT NULL)
     ON COMMIT DROP";

const COPY_RETURNING: &str = "COPY visitantes_del_archivo FROM STDIN (FORMAT binary)";

/// A year becoming current again for visitors ($1) leaves `visitas_por_anio` ($2 the
/// as-of year): rows loaded ahead of time, the base of their new months.
const TAKE_BACK_YEAR: &str = "DELETE FROM visitas_por_anio
     WHERE email = ANY($1::text[]) AND anio = $2
     RETURNING email, visitas_por_mes";

/// Returning visitors, `$1` the as-of date and `$2` its month (1–12): every counter is a
/// sum of the stored one (none for a visitor counted for another year) and the file's.
/// The months add element by element, written out: a helper function would build the
/// file's array once per element.
fn update_sql(from: &str) -> String {
    let same_year = (1..=12)
        .map(|m| format!("v.visitas_por_mes[{m}] + f.m{m}"))
        .collect::<Vec<_>>()
        .join(", ");
    let moving = (1..=12)
        .map(|m| format!("f.m{m}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "UPDATE visitantes AS v SET
             fecha_primera_visita = least(v.fecha_primera_visita, f.primera),
             fecha_ultima_visita = greatest(v.fecha_ultima_visita, f.ultima),
             visitas_totales = v.visitas_totales + f.total,
             visitas_por_mes = CASE WHEN f.mismo_anio THEN ARRAY[{same_year}] ELSE ARRAY[{moving}] END,
             visitas_anio_actual = CASE WHEN f.mismo_anio THEN v.visitas_anio_actual ELSE 0 END + f.anio,
             visitas_mes_actual = CASE WHEN f.mismo_anio THEN v.visitas_por_mes[$2] ELSE 0 END + f.mes,
             contadores_al = $1,
             actualizado_en = now()
         FROM {from}
         WHERE v.email = f.email"
    )
}

/// The returning visitors' UPDATE, from array parameters and from the temporary table:
/// written once per process, not once per file.
static UPDATE_FROM_ARRAYS: LazyLock<String> = LazyLock::new(|| update_sql(&returning_arrays()));
static UPDATE_FROM_TABLE: LazyLock<String> =
    LazyLock::new(|| update_sql("visitantes_del_archivo AS f"));

/// Up to this many returning visitors are updated from array parameters: a temporary
/// table's CREATE and drop write the catalog, a third of a small file's load. More are
/// copied into the temporary table (binary COPY, then one hashed join).
const RETURNING_AS_ARRAYS: usize = 500;

/// The returning visitors as array parameters `$3`…`$21`, in the temporary table's shape.
fn returning_arrays() -> String {
    let months = (1..=12)
        .map(|m| format!("${}::int[]", m + 9))
        .collect::<Vec<_>>()
        .join(", ");
    let names = (1..=12)
        .map(|m| format!("m{m}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "unnest($3::text[], $4::bool[], $5::timestamp[], $6::timestamp[], $7::int[], $8::int[],
                $9::int[], {months})
             AS f(email, mismo_anio, primera, ultima, total, anio, mes, {names})"
    )
}

/// The file's visits in other years than the as-of one, added to `visitas_por_anio`.
const ADD_OTHER_YEARS: &str = "INSERT INTO visitas_por_anio (email, anio, visitas_por_mes)
     SELECT f.email, f.anio, ARRAY[f.m1, f.m2, f.m3, f.m4, f.m5, f.m6, f.m7, f.m8, f.m9, f.m10, f.m11, f.m12]
     FROM unnest($1::text[], $2::int[], $3::int[], $4::int[], $5::int[], $6::int[], $7::int[],
                 $8::int[], $9::int[], $10::int[], $11::int[], $12::int[], $13::int[], $14::int[])
         AS f(email, anio, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12)
     ON CONFLICT (email, anio) DO UPDATE
         SET visitas_por_mes = visitas_sumar_meses(visitas_por_anio.visitas_por_mes, EXCLUDED.visitas_por_mes)";

/// Whether the connected role may create the temporary table that returning visitors
/// are updated through: PostgreSQL grants `TEMPORARY` to every role unless revoked.
pub async fn may_update_returning(
    client: &tokio_postgres::Client,
) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT has_database_privilege(current_database(), 'TEMPORARY') AS may",
            &[],
        )
        .await?;
    Ok(row.get("may"))
}

/// Upserts one row per e-mail of the file, as of the business date `as_of`; returns
/// (new, updated) visitor counts.
///
/// Under the visitors lock (loads of many performers take turns here, each seeing the
/// ones committed before it), one probe splits the file's visitors into those already in
/// `visitantes` (updated) and the rest (copied in, no `ON CONFLICT`); the lock keeps the
/// split true until commit, and the primary key stays the last line of defence. Visitors counted for another year move
/// to the as-of year first. Every counter is a sum: min/max/total merge, the months of
/// the as-of year add up in the visitor's row, the other years' in `visitas_por_anio`.
pub async fn upsert(
    tx: &Transaction<'_>,
    visitors: &[(String, Visits)],
    as_of: NaiveDate,
) -> Result<(i32, i32), LoadError> {
    if visitors.is_empty() {
        return Ok((0, 0));
    }
    // Serialises visitor upserts; a row only the service role can lock (migration 0008).
    crate::store::locks::lock_visitors(tx).await?;
    let mut steps = Steps::default();
    let year = as_of.year();
    let emails: Vec<&str> = visitors.iter().map(|(e, _)| e.as_str()).collect();
    // For each visitor: None when new, else the year its row was counted for.
    let mut counted_for: Vec<Option<i32>> = vec![None; visitors.len()];
    // (visitor, year counted for, its months) of the visitors moving to the as-of year.
    let mut archived: Vec<(usize, i32, Vec<i32>)> = Vec::new();
    for row in tx.query(PROBE, &[&emails, &year]).await? {
        let i = row.get::<_, i64>("i") as usize - 1;
        let counted: i32 = row.get("counted_for");
        counted_for[i] = Some(counted);
        if let Some(months) = row.get::<_, Option<Vec<i32>>>("to_archive")
            && months.iter().any(|&n| n > 0)
        {
            archived.push((i, counted, months));
        }
    }
    steps.lap("probe");
    // Visitors counted for another year (the first load of a year for them): that
    // year's months are archived, and the as-of year's taken back.
    if !archived.is_empty() {
        let types = [Type::TEXT, Type::INT4, Type::INT4_ARRAY];
        let mut writer = CopyWriter::new(tx.copy_in(ARCHIVE_YEARS).await?, &types);
        for (i, counted, months) in &archived {
            writer
                .row(&[&emails[*i], counted, months])
                .await
                .map_err(LoadError::Copy)?;
        }
        writer.finish().await?;
    }
    drop(archived);
    let moving: Vec<&str> = emails
        .iter()
        .zip(&counted_for)
        .filter(|(_, counted)| counted.is_some_and(|y| y != year))
        .map(|(email, _)| *email)
        .collect();
    let mut taken_back: HashMap<String, Months> = HashMap::new();
    if !moving.is_empty() {
        for row in tx.query(TAKE_BACK_YEAR, &[&moving, &year]).await? {
            let months: Vec<i32> = row.get("visitas_por_mes");
            taken_back.insert(
                row.get("email"),
                months.try_into().expect("twelve months (a CHECK)"),
            );
        }
    }
    steps.lap("archive_and_take_back");
    let inserted = copy_new(tx, visitors, &counted_for, as_of).await?;
    steps.lap("insert");
    let updated = update_returning(tx, visitors, &counted_for, &taken_back, as_of).await?;
    steps.lap("update");
    // In chunks: the array parameters of 300,000 visitors would hold ~100 MB at once.
    for chunk in visitors.chunks(CHUNK) {
        let mut other_years = YearColumns::default();
        for (email, visits) in chunk {
            for (y, months) in &visits.other_years {
                other_years.push(email, *y, months);
            }
        }
        if !other_years.emails.is_empty() {
            tx.execute(ADD_OTHER_YEARS, &other_years.params()).await?;
        }
    }
    steps.lap("other_years");
    tracing::info!(
        new = inserted,
        updated,
        moving_year = moving.len(),
        steps = ?steps.ms,
        "visitor counters written (ms per step)"
    );
    Ok((inserted as i32, updated as i32))
}

/// Copies the visitors `visitantes` does not hold yet (`counted_for` None) into it;
/// returns how many.
async fn copy_new(
    tx: &Transaction<'_>,
    visitors: &[(String, Visits)],
    counted_for: &[Option<i32>],
    as_of: NaiveDate,
) -> Result<u64, LoadError> {
    if counted_for.iter().all(Option::is_some) {
        return Ok(0);
    }
    use Type as T;
    let types = [
        T::TEXT,
        T::TIMESTAMP,
        T::TIMESTAMP,
        T::INT4,
        T::INT4,
        T::INT4,
        T::DATE,
        T::INT4_ARRAY,
    ];
    let mut writer = CopyWriter::new(tx.copy_in(COPY_NEW).await?, &types);
    for ((email, visits), counted) in visitors.iter().zip(counted_for) {
        if counted.is_none() {
            let c = Counters::of(visits, as_of, None);
            let months: &[i32] = &c.months;
            writer
                .row(&[
                    email,
                    &c.first,
                    &c.last,
                    &visits.total,
                    &c.year,
                    &c.month,
                    &as_of,
                    &months,
                ])
                .await
                .map_err(LoadError::Copy)?;
        }
    }
    Ok(writer.finish().await?)
}

/// Adds the file's counters to the visitors `visitantes` holds already: copied into a
/// temporary table, then one UPDATE joined by e-mail; returns how many. Visitors counted
/// for another year start their as-of year from what was `taken_back` for them.
async fn update_returning(
    tx: &Transaction<'_>,
    visitors: &[(String, Visits)],
    counted_for: &[Option<i32>],
    taken_back: &HashMap<String, Months>,
    as_of: NaiveDate,
) -> Result<u64, LoadError> {
    if counted_for.iter().all(Option::is_none) {
        return Ok(0);
    }
    let month = as_of.month() as i32;
    let returning = counted_for.iter().filter(|c| c.is_some()).count();
    if returning <= RETURNING_AS_ARRAYS {
        let mut emails: Vec<&str> = Vec::with_capacity(returning);
        let (mut same, mut first, mut last) = (Vec::new(), Vec::new(), Vec::new());
        let (mut total, mut year, mut in_month) = (Vec::new(), Vec::new(), Vec::new());
        let mut months: [Vec<i32>; 12] = Default::default();
        for (email, visits, same_year, c) in
            returning_counters(visitors, counted_for, taken_back, as_of)
        {
            emails.push(email);
            same.push(same_year);
            first.push(c.first);
            last.push(c.last);
            total.push(visits.total);
            year.push(c.year);
            in_month.push(c.month);
            for (column, n) in months.iter_mut().zip(c.months) {
                column.push(n);
            }
        }
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![
            &as_of, &month, &emails, &same, &first, &last, &total, &year, &in_month,
        ];
        params.extend(months.iter().map(|m| m as &(dyn ToSql + Sync)));
        return Ok(tx.execute(UPDATE_FROM_ARRAYS.as_str(), &params).await?);
    }
    tx.batch_execute(RETURNING_TABLE).await?;
    use Type as T;
    let mut types = vec![
        T::TEXT,
        T::BOOL,
        T::TIMESTAMP,
        T::TIMESTAMP,
        T::INT4,
        T::INT4,
        T::INT4,
    ];
    types.extend([T::INT4; 12]);
    let mut writer = CopyWriter::new(tx.copy_in(COPY_RETURNING).await?, &types);
    for (email, visits, same_year, c) in
        returning_counters(visitors, counted_for, taken_back, as_of)
    {
        let mut row: Vec<&(dyn ToSql + Sync)> = vec![
            &email,
            &same_year,
            &c.first,
            &c.last,
            &visits.total,
            &c.year,
            &c.month,
        ];
        row.extend(c.months.iter().map(|n| n as &(dyn ToSql + Sync)));
        writer.row(&row).await.map_err(LoadError::Copy)?;
    }
    writer.finish().await?;
    // The join hashes every returning visitor: in memory, not in batches on disk.
    tx.batch_execute("SET LOCAL work_mem = '64MB'").await?;
    Ok(tx
        .execute(UPDATE_FROM_TABLE.as_str(), &[&as_of, &month])
        .await?)
}

/// Each returning visitor (`counted_for` Some) with whether it was counted for the as-of
/// year and its counters as written: one moving to the as-of year starts from what was
/// `taken_back` for it.
fn returning_counters<'a>(
    visitors: &'a [(String, Visits)],
    counted_for: &'a [Option<i32>],
    taken_back: &'a HashMap<String, Months>,
    as_of: NaiveDate,
) -> impl Iterator<Item = (&'a str, &'a Visits, bool, Counters)> {
    visitors
        .iter()
        .zip(counted_for)
        .filter_map(move |((email, visits), counted)| {
            let same_year = (*counted)? == as_of.year();
            let base = (!same_year).then(|| taken_back.get(email.as_str()).unwrap_or(&[0; 12]));
            Some((
                email.as_str(),
                visits,
                same_year,
                Counters::of(visits, as_of, base),
            ))
        })
}

/// Visitors per round of statements.
const CHUNK: usize = 50_000;

/// Milliseconds per step, summed over the chunks (logged: where a night's time went).
struct Steps {
    since: Instant,
    ms: Vec<(&'static str, u64)>,
}

impl Default for Steps {
    fn default() -> Self {
        Self {
            since: Instant::now(),
            ms: Vec::new(),
        }
    }
}

impl Steps {
    fn lap(&mut self, step: &'static str) {
        let ms = self.since.elapsed().as_millis() as u64;
        match self.ms.iter_mut().find(|(s, _)| *s == step) {
            Some((_, total)) => *total += ms,
            None => self.ms.push((step, ms)),
        }
        self.since = Instant::now();
    }
}

/// A visitor's counters as written, from the file's rows: its months of the as-of year
/// start from `base` (what an earlier load counted ahead for that year) when given.
struct Counters {
    first: NaiveDateTime,
    last: NaiveDateTime,
    months: Months,
    year: i32,
    month: i32,
}

impl Counters {
    fn of(v: &Visits, as_of: NaiveDate, base: Option<&Months>) -> Self {
        let mut months = v.as_of_year;
        if let Some(base) = base {
            for (m, b) in months.iter_mut().zip(base) {
                *m += b;
            }
        }
        Self {
            first: millis_to_naive(v.first),
            last: millis_to_naive(v.last),
            months,
            year: months.iter().sum(),
            month: months[as_of.month0() as usize],
        }
    }
}

/// (visitor, year, months) rows for `visitas_por_anio`, as array parameters.
#[derive(Default)]
struct YearColumns<'a> {
    emails: Vec<&'a str>,
    years: Vec<i32>,
    months: [Vec<i32>; 12],
}

impl<'a> YearColumns<'a> {
    fn push(&mut self, email: &'a str, year: i32, months: &Months) {
        self.emails.push(email);
        self.years.push(year);
        for (column, n) in self.months.iter_mut().zip(months) {
            column.push(*n);
        }
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&self.emails, &self.years];
        params.extend(self.months.iter().map(|m| m as &(dyn ToSql + Sync)));
        params
    }
}

fn millis_to_naive(ms: i64) -> NaiveDateTime {
    DateTime::from_timestamp_millis(ms)
        .expect("parsed dates are in range")
        .naive_utc()
}
