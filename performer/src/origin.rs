//! The file at the origin: taken under the item's in-flight name before it is read (or,
//! where the origin refuses renames, read in place under its listed name), checked
//! unchanged after, and after the commit and the backup deleted only if it is still what
//! was loaded; anything else is left there, in sight (docs/architecture.md, "Why it
//! cannot load twice").

use crate::context::Context;
use crate::error::ItemError;
use crate::lease::still_ours;
use crate::step::retried;
use shared::source::{Deletion, RemoteFile, RemoteName, Source, SourceError, in_flight_name};
use shared::store::set_aside::{self, LeftAtOrigin};
use shared::store::{audit, queue};
use shared::types::{Claimed, Final, SetAsideReason};
use tracing::{info, warn};

/// The file this attempt holds at the origin.
#[derive(Debug, Clone)]
pub struct Taken {
    /// The name it is read from and deleted under.
    pub name: RemoteName,
    /// Whether it was renamed to the in-flight name (else read in place).
    pub renamed: bool,
    /// Its size and mtime when taken (for a file read by an earlier attempt: as listed,
    /// which its take proved).
    pub seen: RemoteFile,
}

/// What was loaded from the file (or, after a layout failure, quarantined): the file
/// at the origin may be deleted only while it is exactly this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// SHA-256 (hex).
    pub sha256: String,
    /// Bytes.
    pub size: u64,
}

/// Takes the item's file: its in-flight name if an earlier attempt renamed it, else
/// renames the listed name to it; where the origin refuses the rename, the file is read
/// in place. The file must still be what was listed; if it changed, the item's listing
/// becomes what was found and the attempt fails transiently, so a later attempt reads
/// the file once it stopped changing — never a prefix.
pub async fn take(ctx: &Context, source: &Source, item: &Claimed) -> Result<Taken, ItemError> {
    let logical = RemoteName::parse(&item.file_name)?;
    let in_flight = in_flight_name(item.id, &logical)?;
    let listed = RemoteName::parse(&item.source_name)?;
    let mut taken = match stat(ctx, source, &in_flight).await? {
        Some(seen) => Taken {
            name: in_flight,
            renamed: true,
            seen,
        },
        None => match rename_if_ours(ctx, source, item, &listed, &in_flight).await? {
            // NotFound / Exists: a retried rename whose first try went through, or
            // another attempt of this item was first; either way the in-flight name holds it.
            Ok(()) | Err(SourceError::NotFound { .. }) | Err(SourceError::Exists { .. }) => {
                let seen =
                    stat(ctx, source, &in_flight)
                        .await?
                        .ok_or_else(|| SourceError::NotFound {
                            path: item.source_path.clone(),
                        })?;
                Taken {
                    name: in_flight,
                    renamed: true,
                    seen,
                }
            }
            Err(SourceError::Denied { why, .. }) => {
                warn!(%why, "the origin refuses renames: reading the file in place");
                let seen =
                    stat(ctx, source, &listed)
                        .await?
                        .ok_or_else(|| SourceError::NotFound {
                            path: item.source_path.clone(),
                        })?;
                Taken {
                    name: listed,
                    renamed: false,
                    seen,
                }
            }
            Err(e) => return Err(e.into()),
        },
    };
    taken.seen.name = taken.name.to_string();
    info!(origin_name = %taken.name, renamed = taken.renamed, "taken at the origin");
    if taken.renamed == item.read_in_place {
        // After a crash past the commit, the next attempt looks where this one read.
        let client = ctx.pool.get().await?;
        if !queue::record_read_in_place(&client, item, !taken.renamed).await? {
            return Err(ItemError::LeaseLost);
        }
    }
    if taken.renamed {
        // The listed name no longer holds the file: its marker marks nothing now.
        drop_marker(ctx, source, item).await;
    }
    if (taken.seen.size as i64, taken.seen.mtime) != (item.size, item.mtime) {
        let client = ctx.pool.get().await?;
        if !queue::relist(&client, item, taken.seen.size as i64, taken.seen.mtime).await? {
            return Err(ItemError::LeaseLost);
        }
        return Err(ItemError::Unsettled(format!(
            "{}: the file changed after it was listed (now {} bytes, modified {}; listed {} bytes, \
             modified {}); it is read again once it stops changing",
            item.file_name,
            taken.seen.size,
            shown(taken.seen.mtime),
            item.size,
            shown(item.mtime)
        )));
    }
    Ok(taken)
}

/// An mtime as messages show it.
fn shown(mtime: Option<chrono::DateTime<chrono::Utc>>) -> String {
    mtime.map_or("unknown".into(), |m| m.to_string())
}

/// After the download: the file must be exactly what was taken, and all of it. If it
/// changed (a writer still had it open), the item's listing becomes what is there now,
/// so the next attempt reads it whole once it stopped changing.
pub async fn check_unchanged(
    ctx: &Context,
    source: &Source,
    item: &Claimed,
    taken: &Taken,
    downloaded: u64,
) -> Result<(), ItemError> {
    let now = stat(ctx, source, &taken.name).await?;
    let same = now.as_ref().is_some_and(|f| f.seen() == taken.seen.seen());
    if same && downloaded == taken.seen.size {
        return Ok(());
    }
    if let Some(now) = &now {
        let client = ctx.pool.get().await?;
        if !queue::relist(&client, item, now.size as i64, now.mtime).await? {
            return Err(ItemError::LeaseLost);
        }
    }
    Err(ItemError::Unsettled(format!(
        "{}: the file changed while it was read ({} bytes read of {} taken; now {}); nothing loaded",
        taken.name,
        downloaded,
        taken.seen.size,
        now.map_or("gone".into(), |f| format!(
            "{} bytes, modified {}",
            f.size,
            shown(f.mtime)
        ))
    )))
}

/// Where a committed item's file is now: where its committing attempt read it (the
/// in-flight name, or read in place its listed name); `None` when it is gone from there.
/// What it holds is for the caller to compare with what was loaded.
pub async fn find_committed(
    ctx: &Context,
    source: &Source,
    item: &Claimed,
) -> Result<Option<Taken>, ItemError> {
    let (name, renamed) = if item.read_in_place {
        (RemoteName::parse(&item.source_name)?, false)
    } else {
        (
            in_flight_name(item.id, &RemoteName::parse(&item.file_name)?)?,
            true,
        )
    };
    Ok(stat(ctx, source, &name).await?.map(|mut now| {
        now.name = name.to_string();
        Taken {
            name,
            renamed,
            seen: RemoteFile {
                name: now.name.clone(),
                // What its take proved it was when read: the listing.
                size: item.size.max(0) as u64,
                mtime: item.mtime,
            },
        }
    }))
}

/// How [`settle`] proves the file at the origin is still what was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// By its size and mtime where the in-flight name and an mtime make that enough;
    /// else by its content.
    ByMode,
    /// By its content, always (a later attempt, which knows nothing of the file since).
    ByContent,
    /// Known not to be what was loaded: never deleted.
    Differs,
}

/// What became of the file at the origin after the backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Deleted (or already gone).
    Deleted,
    /// Left there for an operator, recorded in `set_aside_files`.
    SetAside(SetAsideReason),
    /// Replaced by other content after it was read: left for the next night as a new
    /// file (nothing of it was loaded).
    LeftAsNew,
}

/// The last step at the origin, after the commit and the durable backup: the file is
/// deleted only if it is still exactly what was loaded — its size and mtime unchanged,
/// and, where that proves too little (read in place, or no mtime), its SHA-256 read
/// again just before. A file written to since is never deleted: if it still begins with
/// what was loaded it is set aside for an operator (renamed `.visitas-changed-…`, or read
/// in place, left and recorded); otherwise (replaced, or after a layout failure) it is
/// new content, left for the next night. A refused delete leaves the file recorded for
/// an operator.
pub async fn settle(
    ctx: &Context,
    source: &Source,
    item: &Claimed,
    taken: &Taken,
    loaded: &Loaded,
    state: Final,
    check: Check,
) -> Result<Settled, ItemError> {
    // Read in place, the listed name is the sender's too; without an mtime, a rewrite
    // of the same size shows nowhere else: there only the content itself proves it.
    let by_content = check == Check::ByContent || !taken.renamed || taken.seen.mtime.is_none();
    let content = (loaded.sha256.as_str(), loaded.size);
    let delete = |seen, content| {
        retried(
            ctx,
            "delete at the origin",
            SourceError::is_transient,
            move || source.delete_verified(&taken.name, seen, content),
        )
    };
    let deletion = match check {
        Check::Differs => Ok(stat(ctx, source, &taken.name)
            .await?
            .map_or(Deletion::Gone, Deletion::Changed)),
        Check::ByMode | Check::ByContent => {
            still_ours(ctx, item).await?;
            match delete(taken.seen.seen(), by_content.then_some(content)).await {
                // Its size or mtime changed, perhaps not its content (touched, copied
                // again): the content decides.
                Ok(Deletion::Changed(now)) if !by_content && now.size == loaded.size => {
                    delete(now.seen(), Some(content)).await
                }
                other => other,
            }
        }
    };
    match deletion {
        Ok(Deletion::Deleted | Deletion::Gone) => {
            if !taken.renamed {
                drop_marker(ctx, source, item).await;
            }
            Ok(Settled::Deleted)
        }
        Ok(Deletion::Changed(now)) => changed(ctx, source, item, taken, &now, loaded, state).await,
        Err(SourceError::Denied { why, .. }) => {
            let done = match state {
                Final::Done => "loaded and backed up",
                Final::Failed => "quarantined, nothing loaded",
            };
            let message = format!(
                "{}: {done}, but the origin refuses to delete it ({why}); left there as {} \
                 for an operator: ask for delete rights",
                item.file_name, taken.name
            );
            let reason = SetAsideReason::DeleteRefused;
            // A layout failure's row keeps why it failed; the note follows it.
            let keep = state == Final::Failed;
            leave(
                ctx,
                source,
                item,
                taken,
                &taken.seen,
                reason,
                &message,
                keep,
            )
            .await?;
            Ok(Settled::SetAside(reason))
        }
        Err(e) => Err(e.into()),
    }
}

/// The file at the origin is not what was loaded any more (see [`settle`]).
async fn changed(
    ctx: &Context,
    source: &Source,
    item: &Claimed,
    taken: &Taken,
    now: &RemoteFile,
    loaded: &Loaded,
    state: Final,
) -> Result<Settled, ItemError> {
    let begins_with = async |sha256: &str, size: u64| {
        Ok::<_, SourceError>(
            now.size >= size
                && digest(ctx, source, &taken.name, Some(size)).await?
                    == (sha256.to_string(), size),
        )
    };
    // What was loaded from this file: this item's content, and the beginning an earlier
    // item loaded, if this one loaded only the rest.
    let begins_with_loaded = state == Final::Done
        && (begins_with(&loaded.sha256, loaded.size).await?
            || match &item.loaded_prefix {
                Some(p) => begins_with(&p.sha256, p.bytes.max(0) as u64).await?,
                None => false,
            });
    if begins_with_loaded {
        // Appended to (a sender still holding it open): the bytes added since are
        // nobody's to delete, and loading it whole would load its beginning twice.
        let message = format!(
            "{}: the file changed at the origin after it was loaded ({} bytes loaded); left there \
             as {} for an operator",
            item.file_name,
            loaded.size,
            if taken.renamed {
                changed_name(item)?.to_string()
            } else {
                taken.name.to_string()
            }
        );
        leave(
            ctx,
            source,
            item,
            taken,
            now,
            SetAsideReason::Changed,
            &message,
            false,
        )
        .await?;
        let alert = shared::observe::alert::Alert::new(
            shared::types::AlertKind::ArchivoModificado,
            &message,
        )
        .about(&item.file_name, item.bitacora_id, item.id)
        .on(item.business_date);
        shared::observe::alert::raise(&ctx.db, &ctx.config, alert).await;
        return Ok(Settled::SetAside(SetAsideReason::Changed));
    }
    // Other content than was read (replaced; or nothing was loaded): a new file, which
    // the next night lists and loads like any other, never deleted unloaded.
    let message = format!(
        "{}: the file at the origin was replaced after it was read ({} bytes, modified {}); \
         the new content is left there as {} for the next night",
        item.file_name,
        now.size,
        shown(now.mtime),
        taken.name
    );
    note(ctx, item, &message, state == Final::Failed).await?;
    warn!(origin_name = %taken.name, "{message}");
    if !taken.renamed {
        // Its marker marked the file that was read, not this one.
        drop_marker(ctx, source, item).await;
    }
    Ok(Settled::LeftAsNew)
}

/// `.visitas-changed-<item>-<token>`: where a renamed file changed after its load goes.
fn changed_name(item: &Claimed) -> Result<RemoteName, ItemError> {
    Ok(RemoteName::parse(&format!(
        ".visitas-changed-{}-{}",
        item.id, item.token
    ))?)
}

/// Leaves the file at the origin for an operator: recorded first (fenced), then, if it
/// was renamed, moved to `.visitas-changed-…` (a crash in between leaves a record the
/// next attempt makes again); the audit row says so (after what it says already when
/// `keep`).
#[allow(clippy::too_many_arguments)]
async fn leave(
    ctx: &Context,
    source: &Source,
    item: &Claimed,
    taken: &Taken,
    now: &RemoteFile,
    reason: SetAsideReason,
    message: &str,
    keep: bool,
) -> Result<(), ItemError> {
    let rename_to = (taken.renamed && reason == SetAsideReason::Changed)
        .then(|| changed_name(item))
        .transpose()?;
    let name = rename_to.as_ref().unwrap_or(&taken.name);
    let record = async |name: &RemoteName| {
        let path = source.path_of(name.as_str());
        let left = LeftAtOrigin {
            name: name.as_str(),
            path: &path,
            done_marker: item.done_marker.as_deref().filter(|_| !taken.renamed),
            reason,
            size: now.size,
            mtime: now.mtime,
        };
        let client = ctx.pool.get().await?;
        if !set_aside::record(&client, item.into(), &left).await? {
            return Err(ItemError::LeaseLost);
        }
        Ok::<_, ItemError>(())
    };
    record(name).await?;
    if let Some(to) = &rename_to {
        let renamed = retried(
            ctx,
            "set aside at the origin",
            SourceError::is_transient,
            || source.rename(&taken.name, to),
        )
        .await;
        match renamed {
            Ok(()) | Err(SourceError::Exists { .. }) => {}
            // Renames refused now: it stays under its in-flight name, recorded so.
            Err(SourceError::Denied { .. }) => record(&taken.name).await?,
            Err(e) => return Err(e.into()),
        }
    }
    note(ctx, item, message, keep).await?;
    warn!(origin_name = %name, "{message}");
    Ok(())
}

/// A note for operators on the audit row (fenced), after what it says already if `keep`.
async fn note(ctx: &Context, item: &Claimed, message: &str, keep: bool) -> Result<(), ItemError> {
    let client = ctx.pool.get().await?;
    let recorded = if keep {
        audit::append_note(&client, item.into(), message).await?
    } else {
        audit::record_note(&client, item.into(), message).await?
    };
    if !recorded {
        return Err(ItemError::LeaseLost);
    }
    Ok(())
}

/// Removes the item's done marker, if it has one: best effort (a marker left behind is
/// logged; it never makes a file be taken without its own checks).
async fn drop_marker(ctx: &Context, source: &Source, item: &Claimed) {
    let Some(marker) = &item.done_marker else {
        return;
    };
    let removed = async {
        let name = RemoteName::parse(marker)?;
        retried(
            ctx,
            "remove the done marker",
            SourceError::is_transient,
            || source.delete(&name),
        )
        .await?;
        Ok::<_, ItemError>(())
    };
    match removed.await {
        Ok(()) => info!(%marker, "done marker removed"),
        Err(e) => warn!(%marker, error = %e, "could not remove the done marker"),
    }
}

/// The SHA-256 and length of `name` at the origin (its first `limit` bytes, or all).
async fn digest(
    ctx: &Context,
    source: &Source,
    name: &RemoteName,
    limit: Option<u64>,
) -> Result<(String, u64), SourceError> {
    let d = retried(ctx, "read at the origin", SourceError::is_transient, || {
        source.digest(name, limit)
    })
    .await?;
    Ok((d.sha256, d.bytes))
}

async fn stat(
    ctx: &Context,
    source: &Source,
    name: &RemoteName,
) -> Result<Option<RemoteFile>, SourceError> {
    retried(ctx, "stat at the origin", SourceError::is_transient, || {
        source.stat(name)
    })
    .await
}

/// Renames the listed file to the in-flight name, right after proving (with a fenced
/// heartbeat that extends the lease) that this attempt still holds the item: a stale
/// attempt must not take a new upload of the same name.
async fn rename_if_ours(
    ctx: &Context,
    source: &Source,
    item: &Claimed,
    from: &RemoteName,
    to: &RemoteName,
) -> Result<Result<(), SourceError>, ItemError> {
    still_ours(ctx, item).await?;
    Ok(
        retried(ctx, "take at the origin", SourceError::is_transient, || {
            source.rename(from, to)
        })
        .await,
    )
}
