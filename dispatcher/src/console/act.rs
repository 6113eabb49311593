//! The console's actions: each calls the very function the CLI calls (`quarantine::retry`,
//! `quarantine::discard`, `attempt::take_back`, `reload::enqueue_copies`), turns what it
//! returned into an outcome and a message, and records it in `console_actions` — who,
//! what, on what, when, how it ended. An action that cannot happen ("already
//! re-enqueued") is an outcome like any other, shown on the page.

use super::Console;
use super::auth::{Identity, forbidden};
use crate::quarantine::{self, Retried};
use crate::reload::{self, Enqueued};
use axum::response::Response;
use chrono::NaiveDate;
use shared::store::console_actions::{self, Action, Outcome};

/// What an action did, for the page and the record.
#[derive(Debug, Clone)]
pub struct Done {
    /// How it ended.
    pub outcome: Outcome,
    /// What it said.
    pub message: String,
    /// A page to look at next: (path, label).
    pub next: Option<(String, String)>,
}

impl Done {
    fn of(outcome: Outcome, message: impl Into<String>) -> Self {
        Self {
            outcome,
            message: message.into(),
            next: None,
        }
    }

    fn failed(e: anyhow::Error) -> Self {
        Self::of(Outcome::Failed, format!("{e:#}"))
    }

    fn then(mut self, path: String, label: impl Into<String>) -> Self {
        self.next = Some((path, label.into()));
        self
    }
}

/// Records what `identity` did; a record that cannot be written is logged (the action
/// itself happened or not regardless).
pub async fn record(
    console: &Console,
    identity: &Identity,
    action: &str,
    target: &str,
    done: &Done,
) {
    tracing::info!(user = %identity.user, via = identity.via.as_str(), action, target,
                   outcome = done.outcome.as_str(), message = %done.message, "console action");
    let recorded = console_actions::record(
        &console.write,
        &Action {
            actor: &identity.user,
            via: identity.via.as_str(),
            action,
            target,
            outcome: done.outcome,
            message: &done.message,
        },
    )
    .await;
    if let Err(e) = recorded {
        tracing::error!(error = %e, action, target, "console action not recorded");
    }
}

/// The refusal, recorded, when `identity` may not act (a viewer, or a read-only
/// console); `None` when they may.
pub async fn gate(
    console: &Console,
    identity: &Identity,
    action: &str,
    target: &str,
) -> Option<Response> {
    if identity.may_act(console) {
        return None;
    }
    let why = if console.read_only {
        "the console runs read-only"
    } else {
        "viewers cannot act"
    };
    record(
        console,
        identity,
        action,
        target,
        &Done::of(Outcome::Refused, why),
    )
    .await;
    Some(forbidden(console, identity))
}

/// `quarantine retry ID`.
pub async fn retry(console: &Console, id: i64) -> Done {
    match quarantine::retry(&console.write, &console.config, id).await {
        Ok(r @ Retried::Enqueued { new_id, .. }) => {
            Done::of(Outcome::Done, r.to_string()).then(format!("/files/{new_id}"), "the new load")
        }
        Ok(r @ Retried::AlreadyRetried { new_id, .. }) => Done::of(Outcome::Refused, r.to_string())
            .then(format!("/files/{new_id}"), "the earlier retry"),
        Ok(r @ Retried::Aside(crate::aside::Loaded::Enqueued { new_id, .. })) => {
            Done::of(Outcome::Done, r.to_string()).then(format!("/files/{new_id}"), "the new load")
        }
        Ok(r @ Retried::Aside(crate::aside::Loaded::Gone { .. })) => {
            Done::of(Outcome::Refused, r.to_string())
        }
        Err(e) => Done::failed(e),
    }
}

/// `quarantine discard ID --reason …`.
pub async fn discard(console: &Console, id: i64, reason: &str) -> Done {
    if reason.trim().is_empty() {
        return Done::of(Outcome::Refused, "a discard needs a reason: say why");
    }
    match quarantine::discard(&console.write, &console.config, id, reason).await {
        Ok(said) => Done::of(Outcome::Done, said).then(format!("/files/{id}"), "the file"),
        Err(e) => Done::failed(e),
    }
}

/// `take-back ITEM`.
pub async fn take_back(console: &Console, item: i64) -> Done {
    match shared::store::attempt::take_back(&console.write, item).await {
        Ok(true) => Done::of(
            Outcome::Done,
            format!("work item {item}: lease ended; the next performer to look takes it back"),
        ),
        Ok(false) => Done::of(
            Outcome::Refused,
            format!("work item {item} is not running; nothing to do"),
        ),
        Err(e) => Done::failed(e.into()),
    }
    .then("/queue".into(), "the queue")
}

/// `reload --day DAY`: what was enqueued, to list on the page.
pub async fn reload_day(console: &Console, day: NaiveDate) -> (Done, Option<Enqueued>) {
    let what = reload::Selection {
        day: Some(day),
        ..Default::default()
    };
    match reload::enqueue_copies(&console.config, &console.write, what).await {
        Ok(enqueued) => {
            let outcome = if enqueued.failed.is_empty() {
                Outcome::Done
            } else {
                Outcome::Failed
            };
            let done = Done::of(outcome, enqueued.to_string())
                .then(format!("/files?from={day}&to={day}"), "the day's files");
            (done, Some(enqueued))
        }
        Err(e) => (Done::failed(e), None),
    }
}
