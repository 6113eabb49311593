//! `performers`: the performers alive and the origins each serves. A performer writes its
//! row when it starts, renews it every third of its lease, and removes it when it stops;
//! a row whose `alive_until` passed is a performer that died. The items no live
//! performer can claim are shown by `dispatcher status` and alerted by the night.

use crate::types::Reach;
use crate::types::state::sql_state;
use sqlx::PgPool;
use std::time::Duration;

/// Writes (or renews) performer `name`'s row: alive for one more `lease`, serving `reach`.
/// Rows of performers dead for a day (killed, never removed) go.
pub async fn keep_alive(
    pool: &PgPool,
    name: &str,
    reach: &Reach,
    lease: Duration,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM performers WHERE alive_until < now() - interval '1 day'")
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO performers (name, host, origins, alive_until)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))
         ON CONFLICT (name) DO UPDATE
         SET host = EXCLUDED.host, origins = EXCLUDED.origins, alive_until = EXCLUDED.alive_until",
    )
    .bind(name)
    .bind(&reach.host)
    .bind(&reach.origins)
    .bind(lease.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(())
}

/// Removes performer `name`'s row (it stops).
pub async fn gone(pool: &PgPool, name: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM performers WHERE name = $1")
        .bind(name)
        .execute(pool)
        .await?;
    Ok(())
}

/// A live performer, as `dispatcher status` shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Live {
    /// `host:pid`.
    pub name: String,
    /// Its host (it also reaches local files there).
    pub host: String,
    /// The origins it serves (and local files on its host).
    pub origins: Vec<String>,
    /// Alive until (`YYYY-MM-DD HH24:MI:SS TZ`), unless it renews.
    pub alive_until: String,
}

/// The performers alive now, by name.
pub async fn live(pool: &PgPool) -> sqlx::Result<Vec<Live>> {
    sqlx::query_as(
        "SELECT name, host, origins, to_char(alive_until, 'YYYY-MM-DD HH24:MI:SS TZ') AS alive_until
         FROM performers WHERE alive_until > now() ORDER BY name",
    )
    .fetch_all(pool)
    .await
}

/// Pending items of one origin that no live performer can claim.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Unclaimable {
    /// The items' origin.
    pub origin: String,
    /// Its host, for a local origin.
    pub origin_host: Option<String>,
    /// How many.
    pub items: i64,
    /// When the oldest was enqueued (`YYYY-MM-DD HH24:MI`).
    pub oldest: String,
}

/// Pending items no live performer reaches (another origin, or another host's local
/// files), by origin.
pub async fn unclaimable(pool: &PgPool) -> sqlx::Result<Vec<Unclaimable>> {
    sqlx::query_as(concat!(
        "SELECT w.origin, w.origin_host, count(*) AS items,
                to_char(min(w.created_at), 'YYYY-MM-DD HH24:MI') AS oldest
         FROM work_items w
         WHERE w.state = ",
        sql_state!(Pending),
        " AND NOT EXISTS (SELECT 1 FROM performers p WHERE p.alive_until > now()
                             AND ((w.origin_host IS NULL AND w.origin = ANY(p.origins))
                                  OR w.origin_host = p.host))
         GROUP BY w.origin, w.origin_host ORDER BY w.origin, w.origin_host"
    ))
    .fetch_all(pool)
    .await
}

/// The open items of one origin, and whether a live performer serves it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OriginLine {
    /// The origin (normalised URL).
    pub origin: String,
    /// Its host, for a local origin.
    pub origin_host: Option<String>,
    /// Pending items.
    pub pending: i64,
    /// Running items.
    pub running: i64,
    /// Whether a live performer can claim them.
    pub served: bool,
}

/// The origins that have open items, with whether a live performer serves each.
pub async fn by_origin(pool: &PgPool) -> sqlx::Result<Vec<OriginLine>> {
    sqlx::query_as(concat!(
        "SELECT w.origin, w.origin_host,
                count(*) FILTER (WHERE w.state = ",
        sql_state!(Pending),
        ") AS pending,
                count(*) FILTER (WHERE w.state = ",
        sql_state!(Running),
        ") AS running,
                EXISTS (SELECT 1 FROM performers p WHERE p.alive_until > now()
                        AND ((w.origin_host IS NULL AND w.origin = ANY(p.origins))
                             OR w.origin_host = p.host)) AS served
         FROM work_items w WHERE w.state IN ",
        crate::types::state::open_states!(),
        " GROUP BY w.origin, w.origin_host ORDER BY w.origin, w.origin_host"
    ))
    .fetch_all(pool)
    .await
}
