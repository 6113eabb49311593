//! `dispatcher origins list | rebind FROM TO | cancel FROM --reason "…"`: items follow
//! their origin. Items are bound to their origin's normalised URL (`sftp://h/dir` and
//! `sftp://h:22/dir/` are one); when an origin is retired (`source.url` edited, a host
//! renamed), its open items are rebound to the origin performers serve now, or cancelled.

use crate::output::{Format, Rows};
use shared::config::Config;
use shared::local::paths::{Dirs, durable_move};
use shared::observe::alert::{self, Alert};
use shared::source::{RemoteName, SourceLocation, SourceUrl};
use shared::store::{attempt, audit, performers};
use shared::types::AlertKind;
use sqlx::PgPool;
use std::path::PathBuf;

/// The subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Origins with open items, and whether a live performer serves each.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Bind the pending items of origin FROM (and its system failures still waiting, and
    /// its files set aside) to origin TO: their file keeps its name, in TO's directory.
    Rebind {
        /// The retired origin, in any spelling (`sftp://user@host/dir`).
        from: String,
        /// The origin performers serve now.
        to: String,
        /// Say what would move; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// For a local (`file://`) origin: the host whose performers take the items now
        /// (a host renamed; TO may then be FROM).
        #[arg(long, value_name = "NAME")]
        host: Option<String>,
    },
    /// End the pending items of origin FROM: nothing of theirs committed → FALLO_SISTEMA,
    /// discarded with the reason; a committed load stays loaded (its backup or delete at
    /// the origin left undone, which `quarantine list` then shows).
    Cancel {
        /// The retired origin, in any spelling.
        from: String,
        /// Why (recorded on each row).
        #[arg(long)]
        reason: String,
        /// Cancel even though a live performer serves the origin (it would load them).
        #[arg(long)]
        force: bool,
    },
}

/// The loaded items a cancel finished: what was loaded reaches the backup from a staged
/// copy a performer left (`staging/<item>-<token>-<name>`) whose SHA-256 is what was
/// loaded; without one, `RESPALDO_FALTANTE`. Returns what operators are told.
async fn back_up_cancelled(pool: &PgPool, config: &Config, ids: &[i64]) -> anyhow::Result<String> {
    let dirs = Dirs::new(&config.paths.root);
    let mut said = String::new();
    for item in audit::without_backup(pool, ids).await? {
        let name = RemoteName::parse(&item.archivo)
            .map_or_else(|_| "unsafe-name".into(), |n| n.to_string());
        let (head, tail) = (format!("{}-", item.work_item_id), format!("-{name}"));
        let staged: Vec<PathBuf> = std::fs::read_dir(dirs.staging())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let n = p.file_name().unwrap_or_default().to_string_lossy();
                n.strip_prefix(&head)
                    .and_then(|rest| rest.strip_suffix(&tail))
                    .is_some_and(|token| token.parse::<i64>().is_ok())
            })
            .collect();
        let copy = staged.into_iter().find(|p| {
            shared::local::staged::fingerprint(p).is_ok_and(|f| Some(f.sha256) == item.sha256)
        });
        let day = item.business_date.unwrap_or_else(|| {
            shared::local::business_date::business_date(None, config.business.time_zone)
        });
        match copy {
            Some(copy) => {
                let to = dirs
                    .backup_day(day)
                    .join(format!("{}-{name}", item.bitacora_id));
                durable_move(&copy, &to)?;
                audit::record_operator_backup(pool, item.bitacora_id, &to.display().to_string())
                    .await?;
                said += &format!(
                    "{} (id {}): what was loaded backed up from its staged copy to {}\n",
                    item.archivo,
                    item.bitacora_id,
                    to.display()
                );
            }
            None => {
                let message = format!(
                    "{} (id {}): loaded, its origin cancelled, and no copy whose SHA-256 is what \
                     was loaded is in {}: its backup is missing",
                    item.archivo,
                    item.bitacora_id,
                    dirs.staging().display()
                );
                let alert = Alert::new(AlertKind::RespaldoFaltante, &message)
                    .about(&item.archivo, item.bitacora_id, item.work_item_id)
                    .on(day);
                alert::raise(pool, config, alert).await;
                said += &message;
                said.push('\n');
            }
        }
    }
    Ok(said)
}

/// An origin as items are bound to it, and its directory.
fn origin_of(text: &str) -> anyhow::Result<(String, String)> {
    let url = SourceUrl::try_from(text.to_string())
        .map_err(|e| anyhow::anyhow!("origin `{text}`: {e}"))?;
    let dir = match url.location() {
        SourceLocation::Local { dir } => dir.display().to_string(),
        SourceLocation::Sftp { dir, .. } => dir.clone(),
    };
    Ok((url.origin_anywhere().url, dir))
}

/// Runs one subcommand; returns what operators are told.
pub async fn run(pool: &PgPool, config: &Config, command: Command) -> anyhow::Result<String> {
    match command {
        Command::List { format } => {
            let rows = Rows {
                columns: vec!["origin", "origin_host", "pending", "running", "served"],
                rows: performers::by_origin(pool)
                    .await?
                    .into_iter()
                    .map(|o| {
                        vec![
                            o.origin,
                            o.origin_host.unwrap_or_default(),
                            o.pending.to_string(),
                            o.running.to_string(),
                            if o.served {
                                "yes"
                            } else {
                                "NO: no live performer"
                            }
                            .to_string(),
                        ]
                    })
                    .collect(),
            };
            Ok(rows.render(format))
        }
        Command::Rebind {
            from,
            to,
            dry_run,
            host,
        } => {
            let local = SourceUrl::try_from(to.clone())
                .is_ok_and(|u| matches!(u.location(), SourceLocation::Local { .. }));
            let ((from, _), (to, dir)) = (origin_of(&from)?, origin_of(&to)?);
            anyhow::ensure!(
                host.is_none() || local,
                "--host binds the items of a local (file://) origin to a host; {to} is not one"
            );
            anyhow::ensure!(
                from != to || host.is_some(),
                "{from} and {to} are the same origin (a renamed host: --host NAME)"
            );
            let host = host.as_deref().map(str::trim).filter(|h| !h.is_empty());
            let (moved, records) =
                attempt::rebind_origin(pool, &from, &to, &dir, host, dry_run).await?;
            let verb = if dry_run { "would move" } else { "moved" };
            let mut out = format!(
                "{from} → {to}: {verb} {} pending item(s) {:?}, {} system failure(s) still \
                 waiting {:?}, {records} file(s) set aside at the origin",
                moved.pending.len(),
                moved.pending,
                moved.failed.len(),
                moved.failed
            );
            if !moved.running.is_empty() {
                out += &format!(
                    "; {} running item(s) {:?} left alone (a performer holds them; rebind again \
                     once they are pending)",
                    moved.running.len(),
                    moved.running
                );
            }
            if !moved.blocked.is_empty() {
                out += &format!(
                    "; {} item(s) {:?} left where they are: an open item already holds their \
                     file's path at {to}",
                    moved.blocked.len(),
                    moved.blocked
                );
            }
            Ok(out + "\n")
        }
        Command::Cancel {
            from,
            reason,
            force,
        } => {
            anyhow::ensure!(
                !reason.trim().is_empty(),
                "--reason must say why the items are cancelled"
            );
            let (from, _) = origin_of(&from)?;
            let served = performers::by_origin(pool)
                .await?
                .into_iter()
                .any(|o| o.origin == from && o.served);
            anyhow::ensure!(
                force || !served,
                "{from}: a live performer serves it, and would load its items; nothing \
                 cancelled (`dispatcher origins list`). Cancel them anyway with --force"
            );
            let why = format!("cancelled by an operator (dispatcher origins cancel): {reason}");
            let cancelled = attempt::cancel_origin(pool, &from, &why).await?;
            let (committed, not): (Vec<_>, Vec<_>) = cancelled.iter().partition(|(_, c)| *c);
            let ids = |v: &[&(i64, bool)]| v.iter().map(|(id, _)| *id).collect::<Vec<_>>();
            let backed_up = back_up_cancelled(pool, config, &ids(&committed)).await?;
            Ok(backed_up
                + &format!(
                    "{from}: cancelled {} pending item(s) {:?} (FALLO_SISTEMA, discarded); {} loaded \
                 item(s) {:?} finished without their backup or delete at the origin (see \
                 `dispatcher quarantine list`): {reason}\n",
                    not.len(),
                    ids(&not),
                    committed.len(),
                    ids(&committed)
                ))
        }
    }
}
