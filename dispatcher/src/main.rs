//! `dispatcher`: the nightly run (find complete files, enqueue, wait, close the day)
//! and the operator commands.

mod alerts;
mod archive;
mod aside;
mod check;
mod close;
mod console;
#[cfg(feature = "fixtures")]
mod generate;
mod listing;
mod lock;
mod night;
mod origins;
mod output;
mod partitions;
mod progress;
mod quarantine;
mod reload;
mod report;
mod retention;
mod status;
mod summary;

use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use shared::config::{Config, DEFAULT_CONFIG_PATH};
use shared::local::business_date::business_date;
use std::path::PathBuf;
use std::process::ExitCode;
use tracing::info;

/// Exit code of a run whose queue did not drain before its deadline.
const EXIT_NOT_DRAINED: u8 = 3;
/// Exit code of a run or close that could not write or verify a day's zip.
const EXIT_CLOSE_FAILED: u8 = 4;

/// Finds visit files and enqueues them for the performers; closes the day; operator commands.
#[derive(Parser)]
#[command(version = shared::local::fault::VERSION, about)]
struct Cli {
    /// Configuration file (TOML); every key can be overridden by `VISITAS_…` variables.
    #[arg(long, env = "VISITAS_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply the database migrations (running it twice changes nothing).
    Migrate,
    /// The nightly run: enqueue complete new files, retry system failures (tier 4),
    /// wait for the queue to drain, close the day, print its summary.
    /// Exit 0 when drained, 3 when the deadline passed first, 4 when a zip failed.
    Run {
        /// Only enqueue: do not wait, do not close the day.
        #[arg(long)]
        no_wait: bool,
        /// Business date (default: today in business.time_zone).
        #[arg(long, value_name = "YYYY-MM-DD")]
        as_of: Option<NaiveDate>,
    },
    /// Close the day now: zip loose backups, sweep staging, apply retention. Holds the
    /// same lock as `run`: while a run or another close holds it, says so and exits 0.
    Close {
        /// The business day being closed (default: today in business.time_zone); a day
        /// in the future is refused. Retention counts from when each backup was written,
        /// never from this date.
        #[arg(long, value_name = "YYYY-MM-DD")]
        as_of: Option<NaiveDate>,
    },
    /// End the lease of a running item now (its performer is gone): any performer takes it
    /// back at once, with the attempt counted. Changes nothing for an item not running.
    TakeBack {
        /// Its work_item id (`dispatcher status`).
        item: i64,
    },
    /// The queue now: depth by state, oldest pending age, items in hand, last dispatch run.
    Status {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: output::Format,
    },
    /// Files by status, records total / valid / error, top error types.
    Report {
        /// One business day.
        #[arg(
            long,
            value_name = "YYYY-MM-DD",
            conflicts_with = "month",
            required_unless_present = "month"
        )]
        day: Option<NaiveDate>,
        /// One month.
        #[arg(long, value_name = "YYYY-MM")]
        month: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: output::Format,
    },
    /// Load a day's files (or one file) again from their backup zip, through the
    /// performers on this host; content already loaded ends DUPLICADO.
    Reload(reload::Args),
    /// Files waiting for an operator.
    #[command(subcommand)]
    Quarantine(QuarantineCommand),
    /// The monthly partitions of estadisticas and errores; retention of old months.
    #[command(subcommand)]
    Partitions(partitions::Command),
    /// Check every feed's expected deliveries whose due time has passed, settle or raise
    /// the file alerts, queue the reminders of open alerts, send the pending notices
    /// (a systemd timer, every 15 minutes; also at the end of `run`).
    Check,
    /// The alerts (the latest, or `--open`); `alerts ack ID --note "…"` acknowledges one.
    Alerts(alerts::Args),
    /// Origins with open items; rebind the items of a retired origin, or cancel them.
    #[command(subcommand)]
    Origins(origins::Command),
    /// The operators' console (a web server), and its users (`console user add NAME --role R`).
    Console(console::Args),
    /// Write generated sample visit files into a directory.
    #[cfg(feature = "fixtures")]
    Generate(generate::Args),
}

#[derive(Subcommand)]
enum QuarantineCommand {
    /// FALLO_LAYOUT and FALLO_SISTEMA files neither retried nor discarded.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: output::Format,
    },
    /// Re-enqueue a quarantined file (after fixing it); a new audit row points to the old one.
    Retry {
        /// Its bitacora_control.id.
        id: i64,
    },
    /// Set a quarantined file aside for good.
    Discard {
        /// Its bitacora_control.id.
        id: i64,
        /// Why (recorded in bitacora_control.motivo_descarte).
        #[arg(long)]
        reason: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    #[cfg(feature = "fixtures")]
    if let Command::Generate(args) = &cli.command {
        shared::observe::telemetry::init(None);
        generate::run(args)?;
        return Ok(ExitCode::SUCCESS);
    }
    let config = Config::load(&cli.config)?;
    shared::observe::telemetry::init(Some(shared::observe::telemetry::FileLogs {
        dir: shared::local::paths::Dirs::new(&config.paths.root).logs(),
        component: "dispatcher",
        tz: config.business.time_zone,
    }));
    if let Command::Console(args) = &cli.command
        && !console::needs_database(args)
    {
        return console::run(&config, None, args)
            .await
            .map(|()| ExitCode::SUCCESS);
    }
    let pool = shared::store::connect::sqlx_pool(&config.database).await?;
    let tz = config.business.time_zone;
    // Commands that write to the ETL root work only with the service's own (several hosts
    // share one root: a root of this host's own would strand what is written there).
    // So does a console that may act (its retries, discards and reloads write there).
    if matches!(
        cli.command,
        Command::Run { .. }
            | Command::Close { .. }
            | Command::Reload(_)
            | Command::Quarantine(QuarantineCommand::Retry { .. })
            | Command::Quarantine(QuarantineCommand::Discard { .. })
            | Command::Origins(origins::Command::Cancel { .. })
    ) || matches!(&cli.command, Command::Console(args) if console::may_act(args, &config))
    {
        shared::store::root::check(&pool, &config.paths.root, &shared::local::host::name()).await?;
    }
    // Whichever command runs next sends what the alerts' outbox holds (run and close may
    // have queued notices; check, quarantine and alerts settle alerts).
    let sends = matches!(
        cli.command,
        Command::Run { .. }
            | Command::Close { .. }
            | Command::Check
            | Command::Quarantine(_)
            | Command::Alerts(_)
    );
    let code = command(&config, &pool, cli.command, tz).await;
    if sends {
        shared::observe::deliver::flush(&pool, &config).await;
    }
    code
}

async fn command(
    config: &Config,
    pool: &sqlx::PgPool,
    command: Command,
    tz: chrono_tz::Tz,
) -> anyhow::Result<ExitCode> {
    let (config, pool) = (config.clone(), pool.clone());
    let today = |as_of| Ok::<_, anyhow::Error>(business_date(as_of, tz));
    // A day is closed once it has begun: a typo far ahead must not close (nor date) anything.
    let closing = |as_of: Option<NaiveDate>| {
        let today = business_date(None, tz);
        match as_of {
            Some(day) if day > today => anyhow::bail!(
                "--as-of {day} is in the future (today is {today} in business.time_zone {tz}): \
                 a day cannot be closed before it begins; nothing done"
            ),
            day => Ok(day.unwrap_or(today)),
        }
    };
    match command {
        Command::Migrate => {
            shared::store::connect::migrate(&pool).await?;
            info!("migrations applied");
        }
        Command::Run { no_wait, as_of } => {
            let day = if no_wait {
                today(as_of)?
            } else {
                closing(as_of)?
            };
            if night::run(&config, &pool, !no_wait, day).await? == night::Outcome::NotDrained {
                return Ok(ExitCode::from(EXIT_NOT_DRAINED));
            }
        }
        Command::Close { as_of } => {
            // Busy (a run or another close holds the lock): said, exit 0, like `run`.
            if let Some(closed) = close::close_locked(&config, &pool, closing(as_of)?).await?
                && !closed.failed_days.is_empty()
            {
                return Ok(ExitCode::from(EXIT_CLOSE_FAILED));
            }
        }
        Command::Reload(args) => {
            if reload::run(&config, &pool, &args).await? == reload::Outcome::NotDrained {
                return Ok(ExitCode::from(EXIT_NOT_DRAINED));
            }
        }
        Command::TakeBack { item } => {
            if shared::store::attempt::take_back(&pool, item).await? {
                println!("work item {item}: lease ended; the next performer to look takes it back");
            } else {
                println!("work item {item} is not running; nothing to do");
            }
        }
        Command::Status { format } => status::print(&pool, format).await?,
        Command::Report { day, month, format } => {
            let (from, to, label) = match (day, month) {
                (Some(day), _) => (day, day + chrono::Days::new(1), day.to_string()),
                (None, Some(month)) => {
                    let (from, to) = report::month_bounds(&month)?;
                    (from, to, month)
                }
                (None, None) => unreachable!("clap requires one"),
            };
            report::print(&pool, from, to, &label, format).await?;
        }
        Command::Quarantine(QuarantineCommand::List { format }) => {
            quarantine::list(&pool, format).await?
        }
        Command::Quarantine(QuarantineCommand::Retry { id }) => {
            println!("{}", quarantine::retry(&pool, &config, id).await?)
        }
        Command::Quarantine(QuarantineCommand::Discard { id, reason }) => {
            println!(
                "{}",
                quarantine::discard(&pool, &config, id, &reason).await?
            )
        }
        Command::Partitions(command) => partitions::run(&pool, command).await?,
        Command::Check => println!("{}", check::run(&config, &pool).await?),
        Command::Alerts(args) => alerts::run(&pool, &args).await?,
        Command::Origins(command) => print!("{}", origins::run(&pool, &config, command).await?),
        Command::Console(args) => console::run(&config, Some(pool), &args).await?,
        #[cfg(feature = "fixtures")]
        Command::Generate(_) => unreachable!("handled above"),
    }
    Ok(ExitCode::SUCCESS)
}
