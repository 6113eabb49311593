//! `console_actions`: the record of every action taken in the operators' console —
//! who, what, on what, when, and how it ended (migration 15).

use super::browse::{Page, Paged, paged};
use sqlx::{PgPool, Postgres, QueryBuilder};

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It did what was asked.
    Done,
    /// It could not happen (e.g. "already re-enqueued"), and changed nothing.
    Refused,
    /// It failed on the way.
    Failed,
}

impl Outcome {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Refused => "refused",
            Self::Failed => "failed",
        }
    }
}

/// One action, as recorded.
#[derive(Debug, Clone)]
pub struct Action<'a> {
    /// The user.
    pub actor: &'a str,
    /// How they were authenticated: `session`, `basic` or `proxy`.
    pub via: &'a str,
    /// What they did (`quarantine.retry`, `days.reload`, …).
    pub action: &'a str,
    /// On what.
    pub target: &'a str,
    /// How it ended.
    pub outcome: Outcome,
    /// What it said.
    pub message: &'a str,
}

/// Records an action; returns its id.
pub async fn record(pool: &PgPool, action: &Action<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO console_actions (actor, via, action, target, outcome, message)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(action.actor)
    .bind(action.via)
    .bind(action.action)
    .bind(action.target)
    .bind(action.outcome.as_str())
    .bind(crate::types::storable::message(action.message).as_ref())
    .fetch_one(pool)
    .await
}

/// A recorded action, as the actions page lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Recorded {
    /// Its id.
    pub id: i64,
    /// When (`YYYY-MM-DD HH24:MI:SS TZ`).
    pub at: String,
    /// Who.
    pub actor: String,
    /// How they were authenticated.
    pub via: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
    /// How it ended.
    pub outcome: String,
    /// What it said.
    pub message: String,
}

/// A page of the recorded actions, newest first; `actor` narrows it to one user.
pub async fn page(
    pool: &PgPool,
    actor: Option<&str>,
    page: Page,
    limit: i64,
) -> sqlx::Result<Paged<Recorded>> {
    let mut q = QueryBuilder::<Postgres>::new(
        "SELECT id, to_char(at, 'YYYY-MM-DD HH24:MI:SS TZ') AS at, actor, via, action, target,
                outcome, message FROM console_actions WHERE true",
    );
    if let Some(actor) = actor {
        q.push(" AND actor = ").push_bind(actor.to_string());
    }
    match page {
        Page::First => q.push(" ORDER BY id DESC"),
        Page::Before(id) => q.push(" AND id < ").push_bind(id).push(" ORDER BY id DESC"),
        Page::After(id) => q.push(" AND id > ").push_bind(id).push(" ORDER BY id"),
    };
    q.push(" LIMIT ").push_bind(limit + 1);
    let mut rows: Vec<Recorded> = q.build_query_as().fetch_all(pool).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok(paged(rows, page, more, |r| r.id))
}
