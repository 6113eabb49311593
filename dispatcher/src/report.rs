//! `dispatcher report --day D | --month M`: files by status, records, top error types.

use crate::output::{Format, Rows};
use chrono::{Months, NaiveDate};
use sqlx::{PgPool, Row};

/// Error types listed at the most.
const TOP_ERRORS: i64 = 10;

/// Prints the report of the business days in `[from, to)`.
pub async fn print(
    pool: &PgPool,
    from: NaiveDate,
    to: NaiveDate,
    label: &str,
    format: Format,
) -> anyhow::Result<()> {
    let statuses = sqlx::query(
        "SELECT estatus, count(*), coalesce(sum(registros_totales), 0), coalesce(sum(registros_validos), 0),
                coalesce(sum(registros_error), 0)
         FROM bitacora_control
         WHERE coalesce(fecha_negocio, creado_en::date) >= $1 AND coalesce(fecha_negocio, creado_en::date) < $2
         GROUP BY estatus ORDER BY estatus",
    )
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    let errors = sqlx::query(
        "SELECT e.tipo_error, count(*) FROM errores e JOIN bitacora_control b ON b.id = e.bitacora_id
         WHERE b.fecha_negocio >= $1 AND b.fecha_negocio < $2
         GROUP BY e.tipo_error ORDER BY count(*) DESC, e.tipo_error LIMIT $3",
    )
    .bind(from)
    .bind(to)
    .bind(TOP_ERRORS)
    .fetch_all(pool)
    .await?;
    let mut rows = Rows {
        columns: vec![
            "section",
            "name",
            "files",
            "records_total",
            "records_valid",
            "records_error",
        ],
        rows: Vec::new(),
    };
    for r in &statuses {
        rows.rows.push(vec![
            "status".into(),
            r.get(0),
            r.get::<i64, _>(1).to_string(),
            r.get::<i64, _>(2).to_string(),
            r.get::<i64, _>(3).to_string(),
            r.get::<i64, _>(4).to_string(),
        ]);
    }
    for r in &errors {
        let n: i64 = r.get(1);
        rows.rows.push(vec![
            "error_type".into(),
            r.get(0),
            String::new(),
            String::new(),
            String::new(),
            n.to_string(),
        ]);
    }
    if let Format::Table = format {
        println!("Report {label}");
    }
    print!("{}", rows.render(format));
    Ok(())
}

/// The first and next day of a `YYYY-MM` month.
pub fn month_bounds(month: &str) -> anyhow::Result<(NaiveDate, NaiveDate)> {
    let first = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d")
        .map_err(|_| anyhow::anyhow!("--month `{month}`: expected YYYY-MM"))?;
    Ok((first, first + Months::new(1)))
}
