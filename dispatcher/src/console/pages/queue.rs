//! `GET /queue`: depth by state, the oldest pending item, the items in hand with their
//! performer and lease; `POST /queue/{item}/take-back` ends the lease of an item whose
//! performer is gone (as `dispatcher take-back`).

use crate::console::Console;
use crate::console::act;
use crate::console::auth::Identity;
use crate::console::layout::{Frame, page};
use crate::console::pages::db_error;
use crate::console::pages::overview::in_hand_table;
use crate::console::pages::quarantine::result_page;
use axum::Extension;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use shared::store::queue;
use std::sync::Arc;

/// `GET /queue`.
pub async fn show(
    State(console): State<Arc<Console>>,
    Extension(identity): Extension<Identity>,
) -> Response {
    let (depth, in_hand) = match tokio::try_join!(
        queue::open_depth(&console.read),
        queue::in_hand(&console.read)
    ) {
        Ok(both) => both,
        Err(e) => return db_error(&identity, e),
    };
    let acts = identity.may_act(&console);
    let running: Vec<&queue::InHand> = in_hand.iter().filter(|i| i.worker.is_some()).collect();
    let body = html! {
        p #depth {
            "pending " strong { (depth.pending) } " · running " strong { (depth.running) }
            " · the oldest pending item has been due for " (format!("{:.0} s", depth.oldest_pending_secs))
        }
        h2 { "In hand" }
        (in_hand_table(&in_hand))
        @if acts && !running.is_empty() {
            h2 { "Take back" }
            p { "Ends the lease of a running item whose performer is gone: the next performer to look takes it, with the attempt counted." }
            table #take-back {
                tbody { @for i in &running { tr {
                    td { (i.work_item) } td { (i.file_name) } td { (i.worker.clone().unwrap_or_default()) }
                    td { form.inline method="post" action=(format!("/queue/{}/take-back", i.work_item)) {
                        button type="submit" { "Take back item " (i.work_item) }
                    } }
                } } }
            }
        }
    };
    page(
        &console,
        &identity,
        Frame {
            title: "Queue",
            section: "/queue",
            refresh: true,
        },
        body,
    )
    .into_response()
}

/// `POST /queue/{item}/take-back`.
pub async fn take_back(
    State(console): State<Arc<Console>>,
    Extension(identity): Extension<Identity>,
    Path(item): Path<i64>,
) -> Response {
    let target = item.to_string();
    if let Some(refusal) = act::gate(&console, &identity, "queue.take-back", &target).await {
        return refusal;
    }
    let done = act::take_back(&console, item).await;
    act::record(&console, &identity, "queue.take-back", &target, &done).await;
    result_page(&console, &identity, "Take back", "/queue", &done)
}
