//! `dispatcher`: finds visit files at the origin and enqueues them; operator commands.

mod generate;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use shared::config::{Config, DEFAULT_CONFIG_PATH};
use shared::queue::{self, NewItem};
use shared::source::{RemoteName, Source};
use std::path::PathBuf;
use tracing::{info, warn};

/// Finds visit files and enqueues them for the performers; operator commands.
#[derive(Parser)]
#[command(version, about)]
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
    /// Enqueue every file at the origin whose name matches source.pattern.
    Enqueue,
    /// Write generated sample visit files into a directory.
    Generate(generate::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    shared::telemetry::init();
    if let Command::Generate(args) = &cli.command {
        return generate::run(args);
    }
    let config = Config::load(&cli.config)?;
    let pool = shared::db::sqlx_pool(&config).await?;
    match cli.command {
        Command::Migrate => {
            shared::db::migrate(&pool).await?;
            info!("migrations applied");
        }
        Command::Enqueue => enqueue(&config, &pool).await?,
        Command::Generate(_) => unreachable!("handled above"),
    }
    Ok(())
}

async fn enqueue(config: &Config, pool: &sqlx::PgPool) -> anyhow::Result<()> {
    let pattern = regex::Regex::new(&format!("^(?:{})$", config.source.pattern))?;
    let source = Source::connect(config)
        .await
        .context("connecting to the origin")?;
    let listed = source.list().await;
    let mut items = Vec::new();
    for file in listed.as_ref().map_err(|e| anyhow::anyhow!("{e}"))? {
        if !pattern.is_match(&file.name) {
            continue;
        }
        if let Err(e) = RemoteName::parse(&file.name) {
            warn!(error = %e, "skipped");
            continue;
        }
        items.push(NewItem {
            source_path: source.path_of(&file.name),
            file_name: file.name.clone(),
            size: file.size,
            mtime: file.mtime,
        });
    }
    source.close().await;
    let ids = queue::enqueue(pool, None, &items, config.performer.max_attempts).await?;
    info!(
        matching = items.len(),
        enqueued = ids.len(),
        "enqueue finished"
    );
    println!("{} file(s) matching, {} enqueued", items.len(), ids.len());
    Ok(())
}
