//! `visitantes` and `visitas_por_anio`: the visitor aggregate of SPEC §5, kept exact by
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

use crate::feed::{Months, Visits};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime};
use std::collections::HashMap;
use std::time::Instant;
use tokio_postgres::Transaction;
use tokio_postgres::types::ToSql;

/// Which of the file's visitors `visitantes` already holds ($1), with the year they were
/// counted for, and that year's months when it is not the as-of year $2 (to archive).
const PROBE: &str = "SELECT f.i, extract(year FROM v.contadores_al)::int,
            CASE WHEN extract(year FROM v.contadores_al)::int <> $2::int THEN v.visitas_por_mes END
     FROM unnest($1::text[]) WITH ORDINALITY AS f(email, i)
     JOIN visitantes v ON v.email = f.email";

/// Visits per month of years that are nobody's current year, inserted: the archived
/// year of a visitor moving to the as-of year (a visitor's row in `visitas_por_anio` is
/// never its current year, so this never conflicts).
const ARCHIVE_YEARS: &str = "INSERT INTO visitas_por_anio (email, anio, visitas_por_mes)
     SELECT f.email, f.anio, ARRAY[f.m1, f.m2, f.m3, f.m4, f.m5, f.m6, f.m7, f.m8, f.m9, f.m10, f.m11, f.m12]
     FROM unnest($1::text[], $2::int[], $3::int[], $4::int[], $5::int[], $6::int[], $7::int[],
                 $8::int[], $9::int[], $10::int[], $11::int[], $12::int[], $13::int[], $14::int[])
         AS f(email, anio, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12)";

/// The file's visitors as rows: $1 e-mail, $2 first, $3 last, $4 total, $5 in the as-of
/// year, $6 in the as-of month, $7..$18 per month of the as-of year.
const FILE_VISITORS: &str = "unnest($1::text[], $2::timestamp[], $3::timestamp[], $4::int[], $5::int[], $6::int[],
            $7::int[], $8::int[], $9::int[], $10::int[], $11::int[], $12::int[],
            $13::int[], $14::int[], $15::int[], $16::int[], $17::int[], $18::int[])
     AS f(email, primera, ultima, total, anio, mes, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12)";

/// [`FILE_VISITORS`], then `$19` the as-of date and `$20` its month (1–12): visitors
/// counted for the as-of year add the file's months to theirs. The months add element
/// by element, written out: a helper function would build the file's array once per
/// element.
fn update_same_year_sql() -> String {
    update_sql("v.visitas_por_mes[#]", "v.visitas_anio_actual")
}

/// The same for visitors counted for another year (archived just before): the file's
/// rows carry their whole months of the as-of year (see [`TAKE_BACK_YEAR`]); no `$20`.
fn update_moving_year_sql() -> String {
    update_sql("0", "0")
}

/// A year becoming current again for visitors ($1) leaves `visitas_por_anio` ($2 the
/// as-of year): rows loaded ahead of time, the base of their new months.
const TAKE_BACK_YEAR: &str = "DELETE FROM visitas_por_anio
     WHERE email = ANY($1::text[]) AND anio = $2
     RETURNING email, visitas_por_mes";

/// `base` is a visitor's stored count for month `#` of the as-of year; `base_year` its
/// stored count for the year.
fn update_sql(base: &str, base_year: &str) -> String {
    let months: Vec<String> = (1..=12)
        .map(|m| format!("{} + f.m{m}", base.replace('#', &m.to_string())))
        .collect();
    let base_month = base.replace('#', "$20");
    let months = months.join(", ");
    format!(
        "UPDATE visitantes AS v SET
             fecha_primera_visita = least(v.fecha_primera_visita, f.primera),
             fecha_ultima_visita = greatest(v.fecha_ultima_visita, f.ultima),
             visitas_totales = v.visitas_totales + f.total,
             visitas_por_mes = ARRAY[{months}],
             visitas_anio_actual = {base_year} + f.anio,
             visitas_mes_actual = {base_month} + f.mes,
             contadores_al = $19,
             actualizado_en = now()
         FROM {FILE_VISITORS}
         WHERE v.email = f.email"
    )
}

/// [`FILE_VISITORS`], then `$19` the as-of date.
fn insert_sql() -> String {
    format!(
        "INSERT INTO visitantes (email, fecha_primera_visita, fecha_ultima_visita, visitas_totales,
                                 visitas_anio_actual, visitas_mes_actual, contadores_al, visitas_por_mes)
         SELECT f.email, f.primera, f.ultima, f.total, f.anio, f.mes, $19,
                ARRAY[f.m1, f.m2, f.m3, f.m4, f.m5, f.m6, f.m7, f.m8, f.m9, f.m10, f.m11, f.m12]
         FROM {FILE_VISITORS}"
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

/// Upserts one row per e-mail of the file, as of the business date `as_of`; returns
/// (new, updated) visitor counts.
///
/// Under the visitors lock (loads of many performers take turns here, each seeing the
/// ones committed before it), one probe splits the file's visitors into those already in
/// `visitantes` (updated) and the rest (inserted by a plain INSERT, about half the cost
/// of `INSERT … ON CONFLICT`); the lock keeps the split true until commit, and the
/// primary key stays the last line of defence. Visitors counted for another year move
/// to the as-of year first. Every counter is a sum: min/max/total merge, the months of
/// the as-of year add up in the visitor's row, the other years' in `visitas_por_anio`.
pub async fn upsert(
    tx: &Transaction<'_>,
    visitors: &[(String, Visits)],
    as_of: NaiveDate,
) -> Result<(i32, i32), tokio_postgres::Error> {
    if visitors.is_empty() {
        return Ok((0, 0));
    }
    // Serialises visitor upserts; a row only the service role can lock (migration 0008).
    crate::service_lock::lock_visitors(tx).await?;
    let mut steps = Steps::default();
    let (year, month) = (as_of.year(), as_of.month() as i32);
    let emails: Vec<&str> = visitors.iter().map(|(e, _)| e.as_str()).collect();
    // For each visitor: None when new, else the year its row was counted for.
    let mut counted_for: Vec<Option<i32>> = vec![None; visitors.len()];
    let mut archived = YearColumns::default();
    for row in tx.query(PROBE, &[&emails, &year]).await? {
        let i = row.get::<_, i64>(0) as usize - 1;
        let counted: i32 = row.get(1);
        counted_for[i] = Some(counted);
        if let Some(months) = row.get::<_, Option<Vec<i32>>>(2)
            && months.iter().any(|&n| n > 0)
        {
            let months: Months = months.try_into().expect("twelve months (a CHECK)");
            archived.push(emails[i], counted, &months);
        }
    }
    steps.lap("probe");
    // Visitors counted for another year (the first load of a year for them): that
    // year's months are archived, and the as-of year's taken back.
    if !archived.emails.is_empty() {
        tx.execute(ARCHIVE_YEARS, &archived.params()).await?;
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
            let months: Vec<i32> = row.get(1);
            taken_back.insert(
                row.get(0),
                months.try_into().expect("twelve months (a CHECK)"),
            );
        }
    }
    steps.lap("archive_and_take_back");
    // In chunks: the array parameters of 300,000 visitors would hold ~100 MB at once.
    let (mut inserted, mut updated) = (0, 0);
    for (chunk, counted) in visitors.chunks(CHUNK).zip(counted_for.chunks(CHUNK)) {
        let (mut new, mut same_year, mut moving) = Default::default();
        for ((email, visits), counted) in chunk.iter().zip(counted) {
            match counted {
                None => VisitorColumns::push(&mut new, email, visits, month, None),
                Some(y) if *y == year => {
                    VisitorColumns::push(&mut same_year, email, visits, month, None)
                }
                Some(_) => {
                    let base = taken_back.get(email.as_str()).unwrap_or(&[0; 12]);
                    VisitorColumns::push(&mut moving, email, visits, month, Some(base))
                }
            }
        }
        let mut params = new.params();
        params.push(&as_of);
        inserted += tx.execute(&insert_sql(), &params).await?;
        steps.lap("insert");
        let mut params = same_year.params();
        params.extend([&as_of as &(dyn ToSql + Sync), &month]);
        updated += tx.execute(&update_same_year_sql(), &params).await?;
        if !moving.emails.is_empty() {
            let mut params = moving.params();
            params.push(&as_of);
            updated += tx.execute(&update_moving_year_sql(), &params).await?;
        }
        steps.lap("update");
        let mut other_years = YearColumns::default();
        for (email, visits) in chunk {
            for (y, months) in &visits.other_years {
                other_years.push(email, *y, months);
            }
        }
        if !other_years.emails.is_empty() {
            tx.execute(ADD_OTHER_YEARS, &other_years.params()).await?;
        }
        steps.lap("other_years");
    }
    tracing::info!(
        new = inserted,
        updated,
        moving_year = moving.len(),
        steps = ?steps.ms,
        "visitor counters written (ms per step)"
    );
    Ok((inserted as i32, updated as i32))
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

/// Visitors as the upsert's array parameters.
#[derive(Default)]
struct VisitorColumns<'a> {
    emails: Vec<&'a str>,
    first: Vec<NaiveDateTime>,
    last: Vec<NaiveDateTime>,
    total: Vec<i32>,
    year: Vec<i32>,
    month: Vec<i32>,
    months: [Vec<i32>; 12],
}

impl<'a> VisitorColumns<'a> {
    /// A visitor's file rows; with `base`, its months of the as-of year start from it.
    fn push(&mut self, email: &'a str, v: &Visits, as_of_month: i32, base: Option<&Months>) {
        let mut months = v.as_of_year;
        if let Some(base) = base {
            for (m, b) in months.iter_mut().zip(base) {
                *m += b;
            }
        }
        self.emails.push(email);
        self.first.push(millis_to_naive(v.first));
        self.last.push(millis_to_naive(v.last));
        self.total.push(v.total);
        self.year.push(months.iter().sum());
        self.month.push(months[as_of_month as usize - 1]);
        for (column, n) in self.months.iter_mut().zip(months) {
            column.push(n);
        }
    }

    /// $1..$18 of [`FILE_VISITORS`].
    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![
            &self.emails,
            &self.first,
            &self.last,
            &self.total,
            &self.year,
            &self.month,
        ];
        params.extend(self.months.iter().map(|m| m as &(dyn ToSql + Sync)));
        params
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
