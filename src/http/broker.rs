//! The broker's side for operators: destinations with their depth and consumers, purging a
//! queue, and the open sessions (admins only for the last two).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use super::caller::Caller;
use super::problem::Problem;
use crate::context::ServerContext;

fn admin(caller: &Caller) -> Result<(), Problem> {
    if caller.admin {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only admins (job-admins) may do this",
        ))
    }
}

/// `GET /api/destinations`: every queue with its depth, bytes, consumers and unacknowledged
/// messages, and the broker's counters.
pub(crate) async fn destinations(
    State(ctx): State<Arc<ServerContext>>,
    _caller: Caller,
) -> impl IntoResponse {
    let counters: serde_json::Map<String, serde_json::Value> = ctx
        .broker
        .metrics()
        .snapshot()
        .into_iter()
        .map(|(name, value)| (name.to_owned(), json!(value)))
        .collect();
    Json(json!({
        "queues": ctx.broker.queue_stats(),
        "sessions": ctx.broker.session_count(),
        "counters": counters,
    }))
}

/// `POST /api/queues/{name}/purge`: drops a queue's waiting messages (admins). The name is
/// given without `/queue/` (`orders` for `/queue/orders`).
pub(crate) async fn purge(
    State(ctx): State<Arc<ServerContext>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    let queue = format!("/queue/{name}");
    if let Err(problem) = admin(&caller) {
        ctx.audit.record(
            &caller.user,
            &caller.address,
            "queue.purge",
            crate::audit::Outcome::Denied,
            json!({ "queue": queue, "reason": "only admins may purge" }),
        );
        return Err(problem);
    }
    let purged = ctx.broker.purge_queue(&queue);
    let (outcome, details) = match purged {
        Some(n) => (
            crate::audit::Outcome::Ok,
            json!({ "queue": queue, "purged": n }),
        ),
        None => (crate::audit::Outcome::Denied, json!({ "queue": queue })),
    };
    ctx.audit.record(
        &caller.user,
        &caller.address,
        "queue.purge",
        outcome,
        details,
    );
    let purged = purged.ok_or_else(|| Problem::not_found(format!("no queue {queue}")))?;
    tracing::info!(user = %caller.user, %queue, purged, "queue purged");
    Ok(Json(json!({ "queue": queue, "purged": purged })))
}

/// `GET /api/sessions`: the open sessions (admins).
pub(crate) async fn sessions(
    State(ctx): State<Arc<ServerContext>>,
    caller: Caller,
) -> Result<impl IntoResponse, Problem> {
    admin(&caller)?;
    Ok(Json(json!({ "sessions": ctx.broker.sessions() })))
}
