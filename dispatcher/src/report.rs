//! `dispatcher report --day D | --month M`: files by status, records, top error types.

use crate::output::{Format, Rows};
use chrono::{Months, NaiveDate};
use shared::store::reports;
use sqlx::PgPool;

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
    let statuses = reports::statuses(pool, from, to).await?;
    let errors = reports::top_errors(pool, from, to, TOP_ERRORS).await?;
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
    for s in statuses {
        rows.rows.push(vec![
            "status".into(),
            s.estatus.to_string(),
            s.archivos.to_string(),
            s.registros_totales.to_string(),
            s.registros_validos.to_string(),
            s.registros_error.to_string(),
        ]);
    }
    for e in errors {
        rows.rows.push(vec![
            "error_type".into(),
            e.tipo_error,
            String::new(),
            String::new(),
            String::new(),
            e.registros.to_string(),
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
