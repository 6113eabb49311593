//! `performer bench-queue`: the queue alone — N empty items claimed and completed by W
//! workers through the same claim statement the pool uses. Prints claims per second.

use shared::config::Config;
use shared::store::{attempt, queue};
use shared::types::{Final, Reach};
use std::time::{Duration, Instant};

/// Inserts `items` empty work items, drains them with `workers` workers, prints the rate.
pub async fn queue(config: &Config, items: i64, workers: usize) -> anyhow::Result<()> {
    let pool = shared::store::connect::performer_pool(&config.database).await?;
    attempt::insert_bench_items(&mut pool.get().await?, items).await?;
    let reach = Reach {
        origins: vec!["bench:".into()],
        host: shared::local::host::name(),
    };
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..workers {
        let (pool, reach) = (pool.clone(), reach.clone());
        tasks.spawn(async move {
            let mut client = pool.get().await?;
            let (worker, mut claimed) = (format!("bench:{n}"), 0u64);
            let today = chrono::Utc::now().date_naive();
            while let Some(item) =
                attempt::claim(&mut client, &worker, Duration::from_secs(60), &reach, today).await?
            {
                queue::finish(&client, &item, Final::Done, None).await?;
                claimed += 1;
            }
            Ok::<_, anyhow::Error>(claimed)
        });
    }
    let mut claimed = 0;
    while let Some(done) = tasks.join_next().await {
        claimed += done??;
    }
    let secs = started.elapsed().as_secs_f64();
    let client = pool.get().await?;
    let twice = queue::bench_items_not_done_once(&client).await?;
    println!(
        "queue: {claimed} claims+completions by {workers} workers in {secs:.2} s = {:.0} claims/s; items not claimed exactly once: {twice}",
        claimed as f64 / secs
    );
    anyhow::ensure!(
        twice == 0 && claimed == items as u64,
        "every item must be claimed exactly once"
    );
    Ok(())
}
