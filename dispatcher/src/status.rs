//! `dispatcher status`: the queue now, the items in hand, the performers alive and what
//! none of them can claim, the files set aside at the origin, the last dispatch run.

use crate::output::{Format, Rows};
use shared::store::{performers, queue, runs, set_aside};
use sqlx::PgPool;

/// Prints the queue's state.
pub async fn print(pool: &PgPool, format: Format) -> anyhow::Result<()> {
    let depth = queue::depth(pool).await?;
    let queue = Rows {
        columns: vec!["state", "items", "oldest_due_secs"],
        rows: depth
            .by_state
            .iter()
            .zip(&depth.oldest_due_secs)
            .map(|((state, n), (_, oldest))| {
                vec![
                    state.to_string(),
                    n.to_string(),
                    (*oldest as i64).to_string(),
                ]
            })
            .collect(),
    };
    // Running items, and loaded items whose backup or delete is still to be done (they
    // wait between attempts as pending): never out of an operator's sight.
    let in_hand = Rows {
        columns: vec![
            "work_item",
            "file",
            "worker",
            "lease_until",
            "attempt",
            "bitacora_id",
            "note",
        ],
        rows: queue::in_hand(pool)
            .await?
            .into_iter()
            .map(|i| {
                let note = if i.status.is_final() {
                    format!(
                        "{} committed; left to do: backup and delete at the origin{}",
                        i.status,
                        i.last_error
                            .map_or(String::new(), |e| format!(" (last error: {e})"))
                    )
                } else {
                    String::new()
                };
                vec![
                    i.work_item.to_string(),
                    i.file_name,
                    i.worker.unwrap_or_default(),
                    i.lease_until.unwrap_or_default(),
                    i.attempt.to_string(),
                    i.bitacora_id.to_string(),
                    note,
                ]
            })
            .collect(),
    };
    let live = Rows {
        columns: vec!["performer", "origins", "alive_until"],
        rows: performers::live(pool)
            .await?
            .into_iter()
            .map(|p| vec![p.name, p.origins.join(" "), p.alive_until])
            .collect(),
    };
    // Pending items of an origin no live performer serves: they would wait forever.
    let unclaimable = Rows {
        columns: vec!["origin", "origin_host", "items", "oldest", "what_to_do"],
        rows: performers::unclaimable(pool)
            .await?
            .into_iter()
            .map(|u| {
                let what = format!(
                    "serve it, or `dispatcher origins rebind '{0}' NEW` / \
                     `dispatcher origins cancel '{0}' --reason \"…\"`",
                    u.origin
                );
                vec![
                    u.origin,
                    u.origin_host.unwrap_or_default(),
                    u.items.to_string(),
                    u.oldest,
                    what,
                ]
            })
            .collect(),
    };
    let aside = Rows {
        columns: vec!["bitacora_id", "file", "set_aside_at", "why_and_what_to_do"],
        rows: set_aside::waiting(pool)
            .await?
            .into_iter()
            .map(|a| {
                let why = a.explain();
                vec![a.bitacora_id.to_string(), a.archivo, a.set_aside_at, why]
            })
            .collect(),
    };
    let dispatch = Rows {
        columns: vec![
            "dispatch_run",
            "started",
            "finished",
            "listed",
            "enqueued",
            "retried",
            "drained",
            "outcome",
        ],
        rows: runs::last(pool)
            .await?
            .into_iter()
            .map(|r| {
                vec![
                    r.id.to_string(),
                    r.started,
                    r.finished.unwrap_or_else(|| "running".into()),
                    r.listed.to_string(),
                    r.enqueued.to_string(),
                    r.retried.to_string(),
                    r.drained,
                    r.outcome,
                ]
            })
            .collect(),
    };
    match format {
        Format::Table => {
            print!("Queue\n{}\n", queue.render(format));
            print!("Running items\n{}\n", in_hand.render(format));
            print!("Performers alive\n{}\n", live.render(format));
            if !unclaimable.rows.is_empty() {
                print!(
                    "Items no live performer can claim\n{}\n",
                    unclaimable.render(format)
                );
            }
            if !aside.rows.is_empty() {
                print!("Set aside at the origin\n{}\n", aside.render(format));
            }
            print!("Last dispatch run\n{}", dispatch.render(format));
        }
        Format::Json => {
            let section = |rows: &Rows| {
                serde_json::from_str::<serde_json::Value>(&rows.render(Format::Json)).expect("json")
            };
            let all = serde_json::json!({
                "queue": section(&queue), "running": section(&in_hand),
                "performers": section(&live), "unclaimable": section(&unclaimable),
                "set_aside": section(&aside), "last_dispatch_run": section(&dispatch)
            });
            println!("{}", serde_json::to_string_pretty(&all)?);
        }
        Format::Csv => print!("{}", queue.render(format)),
    }
    Ok(())
}
