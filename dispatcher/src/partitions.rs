//! `dispatcher partitions list | ensure | drop --before YYYY-MM`: the monthly partitions
//! of `estadisticas` and `errores`, and retention of old months (an operator decision:
//! nothing drops them automatically).

use crate::output::{Format, Rows};
use chrono::NaiveDate;
use shared::store::partitions::{self, month_start};
use sqlx::PgPool;

/// The partition subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Every partition: table, month, estimated rows, size.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Create the partitions of this month and the next two if missing (the nightly
    /// close does this too).
    Ensure,
    /// Drop the partitions (both tables) of every month before YYYY-MM, in one
    /// transaction; prints what it dropped. The files' bitacora_control rows stay, and
    /// detalle_depurado names them; visitantes keeps their visits.
    Drop {
        /// First month kept.
        #[arg(long, value_name = "YYYY-MM", value_parser = parse_month)]
        before: NaiveDate,
        /// Only say what would go.
        #[arg(long)]
        dry_run: bool,
    },
}

fn parse_month(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d")
        .map(month_start)
        .map_err(|_| format!("{text:?} is not a month (YYYY-MM)"))
}

/// Runs one subcommand.
pub async fn run(pool: &PgPool, command: Command) -> anyhow::Result<()> {
    match command {
        Command::List { format } => {
            let rows = partitions::list(pool)
                .await?
                .into_iter()
                .map(|p| {
                    vec![
                        p.table,
                        p.month.format("%Y-%m").to_string(),
                        p.name,
                        p.rows_estimate.to_string(),
                        format!("{:.1}", p.bytes as f64 / 1e6),
                    ]
                })
                .collect();
            let rows = Rows {
                columns: vec!["table", "month", "partition", "rows (estimate)", "MB"],
                rows,
            };
            print!("{}", rows.render(format));
        }
        Command::Ensure => {
            let created = partitions::ensure_ahead(pool).await?;
            println!("partitions created: {}", describe(&created));
        }
        Command::Drop { before, dry_run } => {
            let dropped = partitions::drop_before(pool, before, dry_run).await?;
            let verb = if dry_run { "would drop" } else { "dropped" };
            if dropped.is_empty() {
                println!(
                    "no partition before {} ({verb} nothing)",
                    before.format("%Y-%m")
                );
            }
            for d in &dropped {
                println!("{verb} {}: {} rows of {} file(s)", d.name, d.rows, d.files);
                if !dry_run {
                    tracing::info!(partition = %d.name, rows = d.rows, files = d.files, "retention dropped a partition");
                }
            }
        }
    }
    Ok(())
}

fn describe(names: &[String]) -> String {
    if names.is_empty() {
        "none (all there)".into()
    } else {
        names.join(", ")
    }
}
