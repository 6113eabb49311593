//! After a file is finished: what it changes for its feed's alerts. Its file alerts may be
//! over (a retried or re-tried file loaded), an absent day may be over (its late file, or
//! the feed's next one, arrived), and a loaded file is judged against its feed's history.
//! The item is already final: this never changes its outcome, and is bounded in time; a
//! failure is logged (and `dispatcher check` does what was left undone).

use crate::context::Context;
use shared::feed::VISITS_FEED;
use shared::observe::{alert, presence, volume};
use shared::types::Claimed;
use std::time::Duration;
use tracing::{Instrument, warn};

/// How long the checks after a file may take.
const BOUND: Duration = Duration::from_secs(20);

/// Settles and raises what finishing `item` changed.
pub async fn after_file(ctx: &Context, item: &Claimed) {
    let checks = async {
        // Every item is a file of the visits feed until feeds are data (issue 22).
        let feed = VISITS_FEED;
        alert::settle_files(&ctx.db, &ctx.config, 0).await?;
        presence::settle(&ctx.db, &ctx.config, feed).await?;
        volume::check_file(&ctx.db, &ctx.config, feed, item.bitacora_id).await?;
        Ok::<_, sqlx::Error>(())
    };
    match tokio::time::timeout(BOUND, checks.in_current_span()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            warn!(error = %e, "the alert checks after this file failed; dispatcher check will do them")
        }
        Err(_) => {
            warn!("the alert checks after this file took too long; dispatcher check will do them")
        }
    }
}
