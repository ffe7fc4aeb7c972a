//! Jobs over REST: `POST /api/jobs` (the STOMP submission's rules), `GET /api/jobs/{id}`, its
//! result, and the controls.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use stompede_protocol::Headers;

use super::caller::Caller;
use super::problem::Problem;
use crate::context::ServerContext;
use crate::jobs::{JobEngine, JobStatus, Rejection};

/// A submission.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Submission {
    #[serde(rename = "type")]
    job_type: String,
    #[serde(default)]
    params: Value,
    priority: Option<Value>,
    max_attempts: Option<u64>,
    idempotency_key: Option<String>,
    delay: Option<u64>,
    run_at: Option<u64>,
    correlation_id: Option<String>,
}

fn engine(ctx: &ServerContext) -> Result<&JobEngine, Problem> {
    ctx.jobs.as_ref().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this server runs no job types",
        )
    })
}

/// A refusal from the engine, with the HTTP status its code calls for.
fn refused(rejection: Rejection) -> Problem {
    let status = match rejection.code {
        "not_found" => StatusCode::NOT_FOUND,
        "forbidden" => StatusCode::FORBIDDEN,
        "invalid_state" => StatusCode::CONFLICT,
        "rate_limited" | "quota_exceeded" => StatusCode::TOO_MANY_REQUESTS,
        "unavailable" | "store_failure" => StatusCode::SERVICE_UNAVAILABLE,
        "internal_error" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    let problem = Problem::new(status, rejection.code, rejection.reason);
    if status == StatusCode::TOO_MANY_REQUESTS {
        problem.retry_after(1)
    } else {
        problem
    }
}

fn links(id: &str) -> Value {
    json!({
        "self": format!("/api/jobs/{id}"),
        "result": format!("/api/jobs/{id}/result"),
    })
}

/// `POST /api/jobs`.
pub(crate) async fn create(
    State(ctx): State<Arc<ServerContext>>,
    caller: Caller,
    body: Result<Json<Submission>, JsonRejection>,
) -> Result<impl IntoResponse, Problem> {
    let Json(submission) =
        body.map_err(|e| Problem::bad_request("malformed_body", e.body_text()))?;
    let engine = engine(&ctx)?;
    let mut headers = Headers::new();
    headers.push("job-type", submission.job_type.as_str());
    if let Some(priority) = &submission.priority {
        let priority = match priority {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        headers.push("priority", priority);
    }
    let numbers = [
        ("max-attempts", submission.max_attempts),
        ("delay", submission.delay),
        ("run-at", submission.run_at),
    ];
    for (name, value) in numbers {
        if let Some(value) = value {
            headers.push(name, value.to_string());
        }
    }
    if let Some(key) = &submission.idempotency_key {
        headers.push("idempotency-key", key.as_str());
    }
    if let Some(id) = &submission.correlation_id {
        headers.push("correlation-id", id.as_str());
    }
    let params = match &submission.params {
        Value::Null => b"{}".to_vec(),
        params => params.to_string().into_bytes(),
    };
    let job = engine
        .submit(&caller.user, &headers, &params)
        .await
        .map_err(refused)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": job.id, "status": job.status, "links": links(&job.id) })),
    ))
}

/// The job `id` when `caller` may see it.
fn visible(engine: &JobEngine, caller: &Caller, id: &str) -> Result<crate::jobs::Job, Problem> {
    match engine.job(id) {
        Some(job) if caller.admin || job.owner == caller.user => Ok(job),
        _ => Err(Problem::not_found(format!("no job {id} of yours"))),
    }
}

/// `GET /api/jobs/{id}`.
pub(crate) async fn get(
    State(ctx): State<Arc<ServerContext>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    let job = visible(engine(&ctx)?, &caller, &id)?;
    Ok(Json(job))
}

/// `GET /api/jobs/{id}/result`: `202` while the job runs, its result once completed.
pub(crate) async fn result(
    State(ctx): State<Arc<ServerContext>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::response::Response, Problem> {
    let job = visible(engine(&ctx)?, &caller, &id)?;
    match job.status {
        JobStatus::Completed => Ok(Json(job.result.unwrap_or(Value::Null)).into_response()),
        JobStatus::Failed => {
            let detail = job.error.map_or_else(
                || "the job failed".to_owned(),
                |e| format!("{}: {}", e.code, e.message),
            );
            Err(Problem::new(StatusCode::CONFLICT, "job_failed", detail))
        }
        JobStatus::Cancelled => Err(Problem::new(
            StatusCode::CONFLICT,
            "job_cancelled",
            "the job was cancelled",
        )),
        status => Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "status": status, "progress": job.progress, "links": links(&id) })),
        )
            .into_response()),
    }
}

/// `POST /api/jobs/{id}/{action}`: cancel, pause, resume, retry.
pub(crate) async fn control(
    State(ctx): State<Arc<ServerContext>>,
    caller: Caller,
    Path((id, action)): Path<(String, String)>,
) -> Result<impl IntoResponse, Problem> {
    let engine = engine(&ctx)?;
    visible(engine, &caller, &id)?;
    let job = engine
        .control(&caller.user, &id, &action)
        .await
        .map_err(refused)?;
    Ok(Json(job))
}

/// `GET /api/jobs/{id}/events`: the job's events as Server-Sent Events, each with its `seq` as
/// the event id, so that a client reconnecting with `Last-Event-ID` gets what it missed (the
/// `since-seq` replay of the job's topic), then the live events.
pub(crate) async fn events(
    State(ctx): State<Arc<ServerContext>>,
    caller: Caller,
    Path(id): Path<String>,
    request_headers: axum::http::HeaderMap,
) -> Result<impl IntoResponse, Problem> {
    visible(engine(&ctx)?, &caller, &id)?;
    let since = match request_headers.get("last-event-id") {
        None => 0,
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                Problem::bad_request("invalid_parameter", "Last-Event-ID must be an event's seq")
            })?,
    };
    let mut headers = Headers::new();
    headers.push("since-seq", since.to_string());
    let client = crate::LocalClient::new(ctx.broker.clone(), &caller.user);
    let subscription = client
        .subscribe_with(&format!("/topic/jobs/{id}"), &headers)
        .map_err(|e| Problem::new(StatusCode::FORBIDDEN, "forbidden", e.to_string()))?;
    // Ends when the subscription is cut off (a reader that does not keep up).
    let stream = futures::stream::unfold(subscription, |subscription| async move {
        let message = subscription.next().await?;
        let mut event = Event::default().data(String::from_utf8_lossy(&message.body));
        if let Some(seq) = message.headers.get("seq") {
            event = event.id(seq);
        }
        if let Some(kind) = message.headers.get("event") {
            event = event.event(kind);
        }
        Some((Ok::<_, std::convert::Infallible>(event), subscription))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
