//! The lease an attempt holds its item under: a heartbeat every third of it, on a
//! connection of its own, and the proof, before every step that cannot be undone, that
//! the attempt still holds the item.

use crate::context::Context;
use crate::error::ItemError;
use shared::store::queue;
use shared::types::Claimed;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, warn};

/// Extends the lease every third of it; cancels the attempt when the item was taken
/// back, or when no heartbeat got through for a whole lease (it may have been).
pub fn spawn_heartbeat(
    ctx: &Context,
    item: &Claimed,
    lost: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let (leases, item, lease) = (ctx.leases.clone(), item.clone(), ctx.config.lease());
    tokio::spawn(
        async move {
            let mut last_beat = Instant::now();
            loop {
                tokio::time::sleep(lease / 3).await;
                let beat = async {
                    queue::heartbeat(&leases.get().await?, &item, lease)
                        .await
                        .map_err(ItemError::from)
                };
                match beat.await {
                    Ok(true) => last_beat = Instant::now(),
                    // Test hook: a heartbeat that has not noticed yet (the fence must hold alone).
                    Ok(false) if shared::local::fault::armed("VISITAS_FAULT_DEAF_HEARTBEAT") => {}
                    Ok(false) => {
                        warn!("lease lost: another attempt took the item back; this attempt stops");
                        return lost.cancel();
                    }
                    Err(e) if last_beat.elapsed() >= lease => {
                        warn!(error = %e, "no heartbeat for a whole lease: the item may have been \
                              taken back; this attempt stops");
                        return lost.cancel();
                    }
                    Err(e) => warn!(error = %e, "heartbeat failed"),
                }
            }
        }
        .in_current_span(),
    )
}

/// Proves the attempt still holds its item, for at least one more lease (waiting through
/// a database outage: the proof is made once it answers).
pub async fn still_ours(ctx: &Context, item: &Claimed) -> Result<(), ItemError> {
    let held = crate::step::retried_db(ctx, "prove the lease", || async {
        Ok(queue::heartbeat(&ctx.leases.get().await?, item, ctx.config.lease()).await?)
    })
    .await?;
    if held {
        Ok(())
    } else {
        Err(ItemError::LeaseLost)
    }
}
