//! `performer`: the worker pool that loads visit files from the queue.

mod bench;
mod context;
mod error;
mod kept;
mod lease;
mod metrics;
mod origin;
mod pipeline;
mod pool;
mod retry;
mod step;
mod watch;

use anyhow::Context as _;
use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use shared::config::{Config, DEFAULT_CONFIG_PATH};
use shared::local::paths::Dirs;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// Loads visit files from the work queue.
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
    /// Claim and process work items until stopped (SIGTERM/SIGINT: finish the items in hand, exit 0).
    Run {
        /// Concurrent workers (default: performer.workers).
        #[arg(long)]
        workers: Option<usize>,
        /// Drain the queue and exit.
        #[arg(long)]
        once: bool,
        /// Business date for the visitor counters (default: today in business.time_zone).
        #[arg(long, value_name = "YYYY-MM-DD")]
        as_of: Option<NaiveDate>,
    },
    /// Benchmark the queue alone: N empty items claimed and completed by W workers (ops/bench.sh).
    BenchQueue {
        /// Items to insert and drain.
        #[arg(long, default_value_t = 10_000)]
        items: i64,
        /// Concurrent workers.
        #[arg(long, default_value_t = 4)]
        workers: usize,
    },
}

fn main() -> anyhow::Result<()> {
    limit_malloc_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

/// glibc gives every thread that allocates its own arena and keeps freed memory in it;
/// with the validation threads that tripled peak memory on large files. One arena keeps
/// peak RSS near 1.2 x the file size at the same speed (ops/bench.sh). An operator's
/// own `MALLOC_ARENA_MAX` wins. Called before any thread exists.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; no other thread runs yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(&cli.config)?;
    shared::observe::telemetry::init(Some(shared::observe::telemetry::FileLogs {
        dir: Dirs::new(&config.paths.root).logs(),
        component: "performer",
        tz: config.business.time_zone,
    }));
    match cli.command {
        Command::BenchQueue { items, workers } => bench::queue(&config, items, workers).await?,
        Command::Run {
            workers,
            once,
            as_of,
        } => {
            let dirs = Dirs::new(&config.paths.root);
            dirs.create().with_context(|| {
                format!(
                    "creating the directories under {}",
                    config.paths.root.display()
                )
            })?;
            let workers = workers.unwrap_or(config.performer.workers).max(1);
            let mut one_connection = config.clone();
            one_connection.database.pool_size = 1;
            // The side reads, the alerts and their sender.
            let mut side_connections = config.clone();
            side_connections.database.pool_size = 3;
            let ctx = Arc::new(context::Context {
                pool: shared::store::connect::performer_pool(&config.database).await?,
                leases: shared::store::connect::performer_pool(&one_connection.database).await?,
                db: shared::store::connect::sqlx_pool_lazy(&side_connections.database)?,
                tz: config.business.time_zone,
                reach: shared::types::Reach {
                    origins: vec![config.source.url.origin().url],
                    host: shared::local::host::name(),
                },
                config,
                dirs,
                as_of,
            });
            if let Some(listen) = &ctx.config.telemetry.metrics_listen {
                shared::observe::telemetry::serve_metrics(listen)?;
                info!(%listen, "metrics served at /metrics");
            }
            // A role that may not create temporary tables would fail every load of a
            // returning visitor: refused now, by name. A database still down is waited
            // for by the workers instead.
            let may_update_returning = async {
                let client = ctx.pool.get().await.map_err(anyhow::Error::from)?;
                Ok::<_, anyhow::Error>(shared::store::load::may_update_returning(&client).await?)
            };
            match may_update_returning.await {
                Ok(true) => {}
                Ok(false) => anyhow::bail!(
                    "the database role may not create temporary tables, which loads use to \
                     update returning visitors: GRANT TEMPORARY ON DATABASE <database> TO <role>"
                ),
                Err(e) => tracing::warn!(error = %e, "could not check the database role yet"),
            }
            // Not fatal: a database still down is waited for by the workers, and the
            // nightly close makes the partitions ahead too.
            let ensured = shared::store::partitions::ensure_ahead(&ctx.db);
            match ensured.await {
                Ok(created) if !created.is_empty() => {
                    info!(?created, "partitions of estadisticas / errores created")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not make the next partitions yet"),
            }
            metrics::spawn_queue_gauges(ctx.clone());
            // Alert notices are sent from a task of their own, never from a load.
            let stop_sending = CancellationToken::new();
            let sender = shared::observe::deliver::spawn(
                ctx.db.clone(),
                ctx.config.clone(),
                stop_sending.clone(),
            );
            let shutdown = CancellationToken::new();
            tokio::spawn(stop_on_signal(shutdown.clone()));
            let name = format!("{}:{}", shared::local::host::name(), std::process::id());
            info!(workers, once, worker = %name, "performer starting");
            pool::run(
                ctx.clone(),
                pool::PoolOptions {
                    workers,
                    once,
                    name,
                },
                shutdown,
            )
            .await?;
            stop_sending.cancel();
            let _ = sender.await;
            shared::observe::deliver::flush(&ctx.db, &ctx.config).await;
            info!("performer stopped");
        }
    }
    Ok(())
}

async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    info!("stop requested: finishing the items in hand");
    shutdown.cancel();
}
