//! `dispatcher alerts [--open]` and `dispatcher alerts ack ID --note "…"`: the alerts, and
//! an operator's acknowledgement (it closes the alert: no more reminders, no RECUPERADO).

use crate::output::{Format, Rows};
use shared::store::alerts::{self, AlertRow};
use shared::store::notices::{self, Delivery};
use sqlx::PgPool;
use std::collections::HashMap;

/// The command's arguments.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    /// Only the open alerts.
    #[arg(long)]
    open: bool,
    /// How many of the latest alerts (without --open).
    #[arg(long, default_value_t = 50)]
    last: i64,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Acknowledge an open alert: it is closed, repeats no more, sends no RECUPERADO.
    Ack {
        /// Its id (`dispatcher alerts --open`).
        id: i64,
        /// What was done, or why nothing is to be done (recorded).
        #[arg(long)]
        note: String,
    },
}

/// Runs `dispatcher alerts …`.
pub async fn run(pool: &PgPool, args: &Args) -> anyhow::Result<()> {
    match &args.command {
        Some(Command::Ack { id, note }) => {
            let by = std::env::var("SUDO_USER")
                .or_else(|_| std::env::var("USER"))
                .unwrap_or_else(|_| "operator".into());
            let a = shared::observe::alert::acknowledge(pool, *id, &by, note).await?;
            println!(
                "alert {} ({}{}) acknowledged by {by}: {}",
                a.id,
                a.alert.kind,
                a.alert
                    .business_day
                    .map(|d| format!(" {d}"))
                    .unwrap_or_default(),
                a.ack_note.unwrap_or_default()
            );
        }
        None => {
            let rows = alerts::list(pool, args.open, args.last).await?;
            let ids: Vec<i64> = rows.iter().map(|a| a.id).collect();
            let delivery: HashMap<i64, Delivery> = notices::delivery(pool, &ids)
                .await?
                .into_iter()
                .map(|d| (d.alert_id, d))
                .collect();
            print!("{}", table(&rows, &delivery).render(args.format));
        }
    }
    Ok(())
}

/// The alerts as operators read them, with how their notices stand.
fn table(rows: &[AlertRow], delivery: &HashMap<i64, Delivery>) -> Rows {
    Rows {
        columns: vec![
            "id", "kind", "feed", "day", "file", "opened", "notified", "state", "notices",
            "message",
        ],
        rows: rows
            .iter()
            .map(|a| {
                vec![
                    a.id.to_string(),
                    a.alert.kind.to_string(),
                    a.alert.feed.clone().unwrap_or_default(),
                    a.alert
                        .business_day
                        .map(|d| d.to_string())
                        .unwrap_or_default(),
                    a.alert.file.clone().unwrap_or_default(),
                    a.opened_at.format("%Y-%m-%d %H:%M").to_string(),
                    a.last_notified_at.format("%Y-%m-%d %H:%M").to_string(),
                    match (&a.resolved_at, &a.resolution) {
                        (Some(at), Some(how)) => {
                            format!("resolved {}: {how}", at.format("%Y-%m-%d %H:%M"))
                        }
                        _ => "OPEN".into(),
                    },
                    delivery
                        .get(&a.id)
                        .map_or_else(|| "none".into(), |d| d.to_string()),
                    a.alert.message.clone(),
                ]
            })
            .collect(),
    }
}
