//! `dispatcher status`: the queue now, the items in hand, the last dispatch run.

use crate::output::{Format, Rows};
use sqlx::{PgPool, Row};

/// Prints the queue's state.
pub async fn print(pool: &PgPool, format: Format) -> anyhow::Result<()> {
    let depth = sqlx::query(shared::queue::DEPTH).fetch_all(pool).await?;
    let queue = Rows {
        columns: vec!["state", "items", "oldest_due_secs"],
        rows: depth
            .iter()
            .map(|r| {
                vec![
                    r.get::<String, _>(0),
                    r.get::<i64, _>(1).to_string(),
                    (r.get::<f64, _>(2) as i64).to_string(),
                ]
            })
            .collect(),
    };
    // Running items, and loaded items whose backup or delete is still to be done (they
    // wait between attempts as pending): never out of an operator's sight.
    let running = sqlx::query(
        "SELECT w.id, w.file_name, w.locked_by, to_char(w.locked_until, 'YYYY-MM-DD HH24:MI:SS TZ'),
                w.attempts, b.id,
                CASE WHEN b.estatus IN ('COMPLETADO', 'COMPLETADO_CON_ERRORES', 'DUPLICADO', 'FALLO_LAYOUT')
                     THEN b.estatus || ' committed; left to do: backup and delete at the origin'
                          || coalesce(' (last error: ' || w.last_error || ')', '')
                     ELSE '' END
         FROM work_items w JOIN bitacora_control b ON b.work_item_id = w.id
         WHERE w.state = 'running'
            OR (w.state = 'pending' AND b.estatus IN ('COMPLETADO', 'COMPLETADO_CON_ERRORES', 'DUPLICADO', 'FALLO_LAYOUT'))
         ORDER BY w.id",
    )
    .fetch_all(pool)
    .await?;
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
        rows: running
            .iter()
            .map(|r| {
                vec![
                    r.get::<i64, _>(0).to_string(),
                    r.get(1),
                    r.get::<Option<String>, _>(2).unwrap_or_default(),
                    r.get::<Option<String>, _>(3).unwrap_or_default(),
                    r.get::<i32, _>(4).to_string(),
                    r.get::<i64, _>(5).to_string(),
                    r.get(6),
                ]
            })
            .collect(),
    };
    let last = sqlx::query(
        "SELECT id, to_char(started_at, 'YYYY-MM-DD HH24:MI:SS TZ'),
                coalesce(to_char(finished_at, 'YYYY-MM-DD HH24:MI:SS TZ'), 'running'),
                files_listed, files_enqueued, files_retried, coalesce(drained::text, ''), coalesce(outcome, '')
         FROM dispatch_runs ORDER BY id DESC LIMIT 1",
    )
    .fetch_all(pool)
    .await?;
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
        rows: last
            .iter()
            .map(|r| {
                vec![
                    r.get::<i64, _>(0).to_string(),
                    r.get(1),
                    r.get(2),
                    r.get::<i32, _>(3).to_string(),
                    r.get::<i32, _>(4).to_string(),
                    r.get::<i32, _>(5).to_string(),
                    r.get(6),
                    r.get(7),
                ]
            })
            .collect(),
    };
    match format {
        Format::Table => {
            print!("Queue\n{}\n", queue.render(format));
            print!("Running items\n{}\n", in_hand.render(format));
            print!("Last dispatch run\n{}", dispatch.render(format));
        }
        Format::Json => {
            let section = |rows: &Rows| {
                serde_json::from_str::<serde_json::Value>(&rows.render(Format::Json)).expect("json")
            };
            let all = serde_json::json!({
                "queue": section(&queue), "running": section(&in_hand), "last_dispatch_run": section(&dispatch)
            });
            println!("{}", serde_json::to_string_pretty(&all)?);
        }
        Format::Csv => print!("{}", queue.render(format)),
    }
    Ok(())
}
