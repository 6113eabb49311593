//! The performer's Prometheus metrics: files by status, rows, stage durations,
//! retries, queue depth and the age of the oldest pending item, open alerts by kind and
//! the alert notices waiting or given up (the counters of notices sent and failed are
//! `shared::observe::deliver`'s).

use crate::context::Context;
use metrics::{counter, gauge, histogram};
use shared::types::AuditStatus;
use std::sync::Arc;
use std::time::Duration;

/// How often the queue gauges are refreshed.
const QUEUE_REFRESH: Duration = Duration::from_secs(5);

/// A file reached a final status.
pub fn file_finished(status: AuditStatus) {
    counter!("visitas_files_total", "status" => status.as_str()).increment(1);
}

/// Rows of a committed load.
pub fn rows(valid: i32, rejected: i32) {
    counter!("visitas_rows_total", "kind" => "valid").increment(valid.max(0) as u64);
    counter!("visitas_rows_total", "kind" => "error").increment(rejected.max(0) as u64);
}

/// How long a stage took.
pub fn stage(stage: &'static str, took: Duration) {
    histogram!("visitas_stage_seconds", "stage" => stage).record(took.as_secs_f64());
}

/// Items taken back from performers whose lease expired.
pub fn rescued(n: u64) {
    counter!("visitas_items_rescued_total").increment(n);
}

/// A retry of tier 1 (a step) or 2 (the item).
pub fn retry(tier: &'static str) {
    counter!("visitas_retries_total", "tier" => tier).increment(1);
}

/// Refreshes the queue gauges in the background.
pub fn spawn_queue_gauges(ctx: Arc<Context>) {
    tokio::spawn(async move {
        loop {
            if let Ok(depth) = shared::store::queue::depth(&ctx.db).await {
                for (state, n) in depth.by_state {
                    gauge!("visitas_queue_depth", "state" => state.as_str()).set(n as f64);
                }
                gauge!("visitas_oldest_pending_age_seconds").set(depth.oldest_pending_secs);
            }
            if let Ok(open) = shared::store::alerts::open_by_kind(&ctx.db).await {
                for (kind, n) in open {
                    gauge!("visitas_alerts_open", "kind" => kind).set(n as f64);
                }
            }
            if let Ok(backlog) = shared::store::notices::backlog(&ctx.db).await {
                for (channel, pending, given_up) in backlog {
                    gauge!("visitas_alert_notices_pending", "channel" => channel.clone())
                        .set(pending as f64);
                    gauge!("visitas_alert_notices_given_up", "channel" => channel)
                        .set(given_up as f64);
                }
            }
            tokio::time::sleep(QUEUE_REFRESH).await;
        }
    });
}
