//! The file at the origin: taken under the item's in-flight name before it is read,
//! checked unchanged after, and only that name deleted after the commit and the backup.
//!
//! Where the origin refuses renames, the file is read in place and deleted only if its
//! size and mtime are still those that were read (a weaker guarantee: docs/architecture.md,
//! "Why it cannot load twice").

use crate::context::Context;
use crate::error::ItemError;
use crate::lease::still_ours;
use crate::step::retried;
use shared::source::{RemoteFile, RemoteName, Source, SourceError, in_flight_name};
use shared::store::{audit, queue};
use shared::types::Claimed;
use tracing::{info, warn};

/// The file this attempt holds at the origin.
#[derive(Debug, Clone)]
pub struct Taken {
    /// The name it is read from and deleted under.
    pub name: RemoteName,
    /// Whether it was renamed to the in-flight name (else read in place).
    pub renamed: bool,
    /// Its size and mtime when taken.
    pub seen: RemoteFile,
}

/// Takes the item's file: its in-flight name if an earlier attempt renamed it, else
/// renames the listed name to it. The file must still be what was listed; if it changed,
/// the item's listing becomes what was found and the attempt fails transiently, so a
/// later attempt reads the file once it stopped changing — never a prefix.
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
            Err(SourceError::Denied { .. }) => {
                warn!("the origin refuses renames: reading the file in place");
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
    if (taken.seen.size as i64, taken.seen.mtime) != (item.size, item.mtime) {
        let client = ctx.pool.get().await?;
        if !queue::relist(&client, item, taken.seen.size as i64, taken.seen.mtime).await? {
            return Err(ItemError::LeaseLost);
        }
        return Err(ItemError::Unsettled(format!(
            "{}: the file changed after it was listed (now {} bytes, modified {}; listed {} bytes, \
             modified {}); it is read again once it stops changing",
            item.file_name, taken.seen.size, taken.seen.mtime, item.size, item.mtime
        )));
    }
    Ok(taken)
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
    let same = now
        .as_ref()
        .is_some_and(|f| (f.size, f.mtime) == (taken.seen.size, taken.seen.mtime));
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
            f.size, f.mtime
        ))
    )))
}

/// Deletes exactly what was taken: the in-flight name, or (read in place) the listed
/// name only while its size and mtime are those that were read.
pub async fn delete(
    ctx: &Context,
    source: &Source,
    item: &Claimed,
    taken: &Taken,
) -> Result<(), ItemError> {
    let now = stat(ctx, source, &taken.name).await?;
    if now
        .as_ref()
        .is_some_and(|f| (f.size, f.mtime) != (taken.seen.size, taken.seen.mtime))
    {
        // Written to after it was read (a sender still holding it open): what was loaded
        // is backed up; the bytes added since are nobody's to delete. Set aside under a
        // name no listing takes, recorded on the audit row, and alerted.
        let left_as = if taken.renamed {
            let aside = RemoteName::parse(&format!(".visitas-changed-{}-{}", item.id, item.token))?;
            retried(
                ctx,
                "set aside at the origin",
                SourceError::is_transient,
                || source.rename(&taken.name, &aside),
            )
            .await?;
            aside
        } else {
            taken.name.clone()
        };
        let message = format!(
            "{}: the file changed at the origin after it was loaded ({} bytes loaded); left there \
             as {left_as} for an operator",
            item.file_name, taken.seen.size
        );
        let client = ctx.pool.get().await?;
        if !audit::record_note(&client, item.into(), &message).await? {
            return Err(ItemError::LeaseLost);
        }
        warn!(origin_name = %taken.name, "{message}");
        let alert = shared::observe::alert::Alert::new(
            shared::types::AlertKind::ArchivoModificado,
            &message,
        )
        .about(&item.file_name, item.bitacora_id, item.id)
        .on(item.business_date);
        shared::observe::alert::raise(&ctx.db, &ctx.config, alert).await;
        return Ok(());
    }
    retried(
        ctx,
        "delete at the origin",
        SourceError::is_transient,
        || source.delete(&taken.name),
    )
    .await?;
    Ok(())
}

/// Where a committed item's file is now: its in-flight name, or (read in place) its
/// listed name if still as listed; `None` when it is gone from the origin.
pub async fn find_committed(
    ctx: &Context,
    source: &Source,
    item: &Claimed,
) -> Result<Option<Taken>, ItemError> {
    let logical = RemoteName::parse(&item.file_name)?;
    let in_flight = in_flight_name(item.id, &logical)?;
    if let Some(seen) = stat(ctx, source, &in_flight).await? {
        return Ok(Some(Taken {
            name: in_flight,
            renamed: true,
            seen,
        }));
    }
    let listed = RemoteName::parse(&item.source_name)?;
    Ok(stat(ctx, source, &listed)
        .await?
        .filter(|f| (f.size as i64, f.mtime) == (item.size, item.mtime))
        .map(|seen| Taken {
            name: listed,
            renamed: false,
            seen,
        }))
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
