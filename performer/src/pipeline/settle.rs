//! After the load (or a layout failure): the copy goes to backup (or quarantine)
//! durably, the file at the origin is settled, and the item is made final.

use super::this_attempt::{Attempt, Clock, local_name};
use crate::context::Context;
use crate::error::ItemError;
use crate::lease::still_ours;
use crate::origin::{self, Check, Loaded, Settled, Taken};
use crate::step::retried_db;
use shared::local::paths::durable_move;
use shared::source::Source;
use shared::store::{audit, queue};
use shared::types::{Claimed, FileFacts, Final};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tracing::info;

/// Where the item's local copy goes: `backup/YYYYMMDD/` of its business day (loaded),
/// or `quarantine/` (layout failure), as `<bitacora_id>-<name>`.
pub(super) fn local_copy_path(ctx: &Context, item: &Claimed, state: Final) -> PathBuf {
    let dir = match state {
        Final::Done => ctx.dirs.backup_day(item.business_date),
        Final::Failed => ctx.dirs.quarantine(),
    };
    dir.join(local_name(item))
}

/// Moves the staged copy (what was loaded) to backup or quarantine, durably, and records
/// where (fenced); returns the place.
pub(super) async fn back_up(
    ctx: &Context,
    item: &Claimed,
    attempt: &Attempt,
    state: Final,
) -> Result<PathBuf, ItemError> {
    let to = local_copy_path(ctx, item, state);
    let backing_up = Instant::now();
    still_ours(ctx, item).await?;
    durable_move(&attempt.staged, &to).map_err(ItemError::disk(format!(
        "moving the file to {}",
        to.display()
    )))?;
    let at = to.display().to_string();
    let recorded = retried_db(ctx, "record the local copy", || async {
        Ok(audit::record_local_copy(&ctx.pool.get().await?, item.into(), &at).await?)
    })
    .await?;
    attempt.clock.add("backup", backing_up.elapsed());
    if !recorded {
        return Err(ItemError::LeaseLost);
    }
    Ok(to)
}

/// What was read (loaded, or quarantined after a layout failure) goes to the backup (or
/// quarantine), then the file at the origin is settled and the item made final.
pub(super) async fn back_up_and_finish(
    ctx: &Context,
    item: &Claimed,
    attempt: &Attempt,
    source: &Source,
    taken: &Taken,
    facts: &FileFacts,
    state: Final,
) -> Result<(), ItemError> {
    let loaded = Loaded {
        sha256: facts.sha256.clone(),
        size: facts.size as u64,
    };
    let local = back_up(ctx, item, attempt, state).await?;
    finish_at_origin(
        ctx,
        item,
        source,
        taken,
        &loaded,
        state,
        Check::ByMode,
        &local,
        &attempt.clock,
    )
    .await
}

/// After the backup (at `local`): the file at the origin is settled (deleted only if it
/// is still what was loaded; see `origin::settle`) and the item made final.
#[allow(clippy::too_many_arguments)]
pub(super) async fn finish_at_origin(
    ctx: &Context,
    item: &Claimed,
    source: &Source,
    taken: &Taken,
    loaded: &Loaded,
    state: Final,
    check: Check,
    local: &Path,
    clock: &Clock,
) -> Result<(), ItemError> {
    shared::local::fault::pause("before_delete").await;
    let settled = clock
        .time(
            "delete",
            origin::settle(ctx, source, item, taken, loaded, state, check),
        )
        .await?;
    clock.time("finish", finish(ctx, item, state)).await?;
    let what = match settled {
        Settled::Deleted => "deleted at the origin; item finished",
        Settled::SetAside(_) => "left at the origin for an operator; item finished",
        Settled::LeftAsNew => "replaced at the origin since it was read, left there; item finished",
    };
    info!(local_copy = %local.display(), ms_by_step = %clock.summary(), "{what}");
    Ok(())
}

/// Makes the item final (fenced; waited through an outage, and a repeat after a lost
/// COMMIT acknowledgement finds it made so by this attempt).
pub(super) async fn finish(ctx: &Context, item: &Claimed, state: Final) -> Result<(), ItemError> {
    let finished = retried_db(ctx, "finish the item", || async {
        Ok(queue::finish(&ctx.pool.get().await?, item, state, None).await?)
    })
    .await?;
    if finished {
        Ok(())
    } else {
        Err(ItemError::LeaseLost)
    }
}
