//! What follows a commit made by an earlier attempt: the loaded content reaches the
//! backup from a copy whose SHA-256 is what was loaded, before anything at the origin is
//! deleted (issue 20, point 2); and the check that a file whose beginning an earlier
//! item loaded still begins with it.

use super::fetch::{download, file_facts};
use super::settle::{self, back_up, finish_at_origin, local_copy_path};
use super::this_attempt::{Attempt, file_part};
use crate::context::Context;
use crate::error::ItemError;
use crate::origin::{self, Check, Loaded};
use shared::local::paths::copy_dated;
use shared::observe::alert::{self, Alert};
use shared::source::Source;
use shared::store::audit;
use shared::types::{AlertKind, AuditStatus, Claimed, Final, LoadedPrefix};
use std::path::{Path, PathBuf};
use tracing::{error, info, warn};

/// The item's file must still begin with what an earlier item loaded (an operator had
/// the rest of a set-aside file loaded), ending at a line end or being all of it: else
/// nothing is loaded.
pub(super) async fn begins_with(
    staged: &Path,
    item: &Claimed,
    prefix: &LoadedPrefix,
) -> Result<(), ItemError> {
    let (path, bytes) = (staged.to_path_buf(), prefix.bytes.max(0) as u64);
    let found = tokio::task::spawn_blocking(move || -> std::io::Result<(String, Option<u8>)> {
        use std::io::{Read, Seek, SeekFrom};
        let sha = shared::local::hash::file_prefix_sha256(&path, bytes)?;
        let mut file = std::fs::File::open(&path)?;
        if file.metadata()?.len() == bytes {
            // All of it: unchanged (DUPLICADO), wherever its last line ends.
            return Ok((sha, Some(b'\n')));
        }
        file.seek(SeekFrom::Start(bytes.saturating_sub(1)))?;
        let mut last = [0u8];
        Ok((sha, (file.read(&mut last)? == 1).then_some(last[0])))
    })
    .await
    .expect("hashing does not panic")
    .map_err(ItemError::disk(
        "checking the staged copy against what was loaded",
    ))?;
    if found == (prefix.sha256.clone(), Some(b'\n')) {
        return Ok(());
    }
    Err(ItemError::NotAsResolved(format!(
        "{}: the file no longer begins with the {} bytes loaded by bitacora_control.id = {} \
         (ending at a line end); nothing loaded",
        item.file_name, prefix.bytes, prefix.loaded_by
    )))
}

/// An earlier attempt committed and stopped before the end. What it loaded reaches the
/// backup first, from a copy whose SHA-256 is what was loaded — the file at the origin
/// (all of it, or its beginning when it was appended to since), else a copy an earlier
/// attempt left on this host; then the file at the origin is settled as after any load,
/// checked by its content. Without such a copy nothing is deleted, and the item shows to
/// operators with its backup missing.
pub(super) async fn finish(
    ctx: &Context,
    item: &Claimed,
    attempt: &Attempt,
    source: &Source,
) -> Result<(), ItemError> {
    let state = if item.prior_status == AuditStatus::FalloLayout {
        Final::Failed
    } else {
        Final::Done
    };
    info!(status = %item.prior_status, "already committed by an earlier attempt; finishing backup and delete");
    let loaded = Loaded {
        sha256: item.prior_sha256.clone().unwrap_or_default(),
        size: item.prior_size.unwrap_or_default().max(0) as u64,
    };
    let at_origin = origin::find_committed(ctx, source, item).await?;
    // A copy from the file at the origin: all of it, or its beginning.
    let mut copy = false;
    if let Some(taken) = &at_origin
        && item.prior_backup.is_none()
    {
        download(ctx, source, &taken.name, &attempt.staged, taken.seen.mtime).await?;
        copy = file_facts(item, &attempt.staged).await?.sha256 == loaded.sha256
            || truncated_copy_matches(&attempt.staged, loaded.size, &loaded.sha256).await?;
    }
    if item.prior_backup.is_none() && !copy {
        copy = earlier_copy(ctx, item, attempt, state, &loaded).await?;
    }
    let local = match (&item.prior_backup, copy) {
        // The earlier attempt's copy is durable and recorded: only the origin is left.
        (Some(recorded), _) => PathBuf::from(recorded),
        (None, true) => back_up(ctx, item, attempt, state).await?,
        (None, false) => return without_backup(ctx, item, source, at_origin, &loaded, state).await,
    };
    match &at_origin {
        Some(taken) => {
            finish_at_origin(
                ctx,
                item,
                source,
                taken,
                &loaded,
                state,
                Check::ByContent,
                &local,
                &attempt.clock,
            )
            .await
        }
        None => {
            settle::finish(ctx, item, state).await?;
            info!("already gone from the origin; item finished");
            Ok(())
        }
    }
}

/// No copy of what was loaded could be had: nothing at the origin is deleted (the file
/// there, which is not what was loaded, is settled as such), the audit row says what is
/// missing (it shows in `quarantine list`), `RESPALDO_FALTANTE` is alerted, the item ends.
async fn without_backup(
    ctx: &Context,
    item: &Claimed,
    source: &Source,
    at_origin: Option<origin::Taken>,
    loaded: &Loaded,
    state: Final,
) -> Result<(), ItemError> {
    let left = match &at_origin {
        Some(taken) => {
            let check = Check::Differs;
            match origin::settle(ctx, source, item, taken, loaded, state, check).await? {
                origin::Settled::SetAside(_) => "set aside there for an operator",
                _ => "left there as a new file for the next night",
            }
        }
        None => "gone from there",
    };
    let message = format!(
        "{}: loaded, but no copy whose SHA-256 is what was loaded ({}) could be had for the \
         backup (no earlier copy is on this host, and the file at the origin is not what was \
         loaded: {left}); nothing was deleted at the origin",
        item.file_name, loaded.sha256
    );
    let client = ctx.pool.get().await?;
    if !audit::record_note(&client, item.into(), &message).await? {
        return Err(ItemError::LeaseLost);
    }
    error!("{message}");
    let alert = Alert::new(AlertKind::RespaldoFaltante, &message)
        .about(&item.file_name, item.bitacora_id, item.id)
        .on(item.business_date);
    alert::raise(&ctx.db, &ctx.config, alert).await;
    settle::finish(ctx, item, state).await
}

/// A copy of what was loaded that an earlier attempt left on this host: its own staged
/// download (`staging/<item>-<token>-<name>`), or the backup (or quarantine) copy it
/// moved but did not record. The first whose SHA-256 is what was loaded becomes this
/// attempt's staged copy; returns whether one did.
async fn earlier_copy(
    ctx: &Context,
    item: &Claimed,
    attempt: &Attempt,
    state: Final,
    loaded: &Loaded,
) -> Result<bool, ItemError> {
    let mut candidates = vec![local_copy_path(ctx, item, state)];
    let (head, tail) = (format!("{}-", item.id), format!("-{}", file_part(item)));
    if let Ok(entries) = std::fs::read_dir(ctx.dirs.staging()) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let token = name
                .strip_prefix(&head)
                .and_then(|rest| rest.strip_suffix(&tail))
                .and_then(|t| t.parse::<i64>().ok());
            if token.is_some_and(|t| t != item.token) {
                candidates.push(entry.path());
            }
        }
    }
    for candidate in candidates.into_iter().filter(|c| c.is_file()) {
        let _ = std::fs::remove_file(&attempt.staged);
        if let Err(e) = copy_dated(&candidate, &attempt.staged) {
            warn!(copy = %candidate.display(), error = %e, "could not read an earlier copy");
            continue;
        }
        let facts = file_facts(item, &attempt.staged).await?;
        if facts.sha256 == loaded.sha256 && facts.size as u64 == loaded.size {
            info!(copy = %candidate.display(), "an earlier attempt's copy is what was loaded");
            return Ok(true);
        }
    }
    let _ = std::fs::remove_file(&attempt.staged);
    Ok(false)
}
/// Cuts the staged copy to its first `size` bytes if their SHA-256 is `sha256` (a file
/// appended to after its load): then the copy is what was loaded.
async fn truncated_copy_matches(staged: &Path, size: u64, sha256: &str) -> Result<bool, ItemError> {
    let (path, want) = (staged.to_path_buf(), sha256.to_string());
    tokio::task::spawn_blocking(move || -> std::io::Result<bool> {
        let same = shared::local::hash::file_prefix_sha256(&path, size)? == want;
        if same {
            let file = std::fs::OpenOptions::new().write(true).open(&path)?;
            file.set_len(size)?;
            file.sync_all()?;
        }
        Ok(same)
    })
    .await
    .expect("hashing does not panic")
    .map_err(ItemError::disk(
        "checking the staged copy against what was loaded",
    ))
}
