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
    callback_url: Option<String>,
}

pub(super) fn engine(ctx: &ServerContext) -> Result<&JobEngine, Problem> {
    ctx.jobs.as_ref().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this server runs no job types",
        )
    })
}

/// A refusal from the engine, with the HTTP status its code calls for.
pub(super) fn refused(rejection: Rejection) -> Problem {
    let status = match rejection.code {
        "not_found" => StatusCode::NOT_FOUND,
        "forbidden" => StatusCode::FORBIDDEN,
        "invalid_state" => StatusCode::CONFLICT,
        "rate_limited" | "quota_exceeded" => StatusCode::TOO_MANY_REQUESTS,
        "unavailable" | "store_failure" | "store_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        "insufficient_storage" => StatusCode::INSUFFICIENT_STORAGE,
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

pub(super) fn links(id: &str) -> Value {
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
    submit(&ctx, &caller, submission).await
}

/// Submits with the STOMP submission's rules; `202` with the job's links.
pub(crate) async fn submit(
    ctx: &ServerContext,
    caller: &Caller,
    submission: Submission,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let engine = engine(ctx)?;
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
    if let Some(url) = &submission.callback_url {
        headers.push("callback-url", url.as_str());
    }
    let submitted = engine
        .submit_params(&caller.user, &headers, submission.params)
        .await;
    engine.audit(
        &caller.user,
        &caller.address,
        "submit",
        &submission.job_type,
        &submitted,
    );
    let job = submitted.map_err(refused)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": job.id, "status": job.status, "links": links(&job.id) })),
    ))
}

/// The job `id` when `caller` may see it (for the other API modules).
pub(crate) async fn visible_job(
    ctx: &ServerContext,
    caller: &Caller,
    id: &str,
) -> Result<crate::jobs::Job, Problem> {
    visible(engine(ctx)?, caller, id).await
}

/// The job `id` when `caller` may see it: on a cluster member, wherever it is held.
async fn visible(
    engine: &JobEngine,
    caller: &Caller,
    id: &str,
) -> Result<crate::jobs::Job, Problem> {
    match engine.job_anywhere(id).await.map_err(refused)? {
        Some(job) if caller.admin || job.owner == caller.user => Ok(job),
        Some(_) => Err(Problem::not_found(format!("no job {id} of yours"))),
        None => match engine.expired_owner(id) {
            Some(owner) if caller.admin || owner == caller.user => Err(Problem::new(
                StatusCode::GONE,
                "expired",
                format!("job {id} ended longer ago than the retention and was removed"),
            )),
            _ => Err(Problem::not_found(format!("no job {id} of yours"))),
        },
    }
}

/// `GET /api/jobs/{id}`.
pub(crate) async fn get(
    State(ctx): State<Arc<ServerContext>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    let job = visible(engine(&ctx)?, &caller, &id).await?;
    Ok(Json(job))
}

/// `GET /api/jobs/{id}/result`: `202` while the job runs, its result once completed.
pub(crate) async fn result(
    State(ctx): State<Arc<ServerContext>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::response::Response, Problem> {
    let job = visible(engine(&ctx)?, &caller, &id).await?;
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
    visible(engine, &caller, &id).await?;
    let done = engine.control(&caller.user, &id, &action).await;
    engine.audit(&caller.user, &caller.address, &action, "", &done);
    Ok(Json(done.map_err(refused)?))
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
    visible(engine(&ctx)?, &caller, &id).await?;
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
        .subscribe_reading_ahead(&format!("/topic/jobs/{id}"), &headers)
        .await
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

/// `GET /api/jobs` query: filters and a cursor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    #[serde(rename = "type")]
    job_type: Option<String>,
    status: Option<String>,
    /// Another user's jobs (admins only).
    owner: Option<String>,
    /// Jobs submitted at or after this time (ms since the epoch).
    since: Option<u64>,
    /// Jobs submitted before this time.
    until: Option<u64>,
    /// The `next` of the previous page.
    after: Option<String>,
    limit: Option<usize>,
}

/// Most jobs one page lists.
const MAX_PAGE: usize = 500;

/// `GET /api/jobs`: the caller's jobs (an admin's: everyone's, or `owner`'s), oldest first,
/// a page at a time.
pub(crate) async fn list(
    State(ctx): State<Arc<ServerContext>>,
    caller: Caller,
    query: Result<axum::extract::Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, Problem> {
    let axum::extract::Query(query) =
        query.map_err(|e| Problem::bad_request("invalid_parameter", e.body_text()))?;
    let engine = engine(&ctx)?;
    let owner = match (&query.owner, caller.admin) {
        (Some(owner), true) => Some(owner.as_str()),
        (None, true) => None,
        (Some(owner), false) if *owner != caller.user => {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "only job admins list other users' jobs",
            ))
        }
        (_, false) => Some(caller.user.as_str()),
    };
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let mut page: Vec<crate::jobs::Job> = engine
        .jobs(owner)
        .into_iter()
        .filter(|job| query.after.as_ref().is_none_or(|after| job.id > *after))
        .filter(|job| query.job_type.as_ref().is_none_or(|t| job.job_type == *t))
        .filter(|job| {
            query
                .status
                .as_ref()
                .is_none_or(|s| job.status.as_str() == s)
        })
        .filter(|job| query.since.is_none_or(|since| job.created_at >= since))
        .filter(|job| query.until.is_none_or(|until| job.created_at < until))
        .take(limit + 1)
        .collect();
    let next = (page.len() > limit).then(|| {
        page.truncate(limit);
        page.last().map(|job| job.id.clone())
    });
    Ok(Json(json!({ "jobs": page, "next": next.flatten() })))
}

/// `DELETE /api/jobs/{id}`: a finished job and its files.
pub(crate) async fn delete(
    State(ctx): State<Arc<ServerContext>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    let engine = engine(&ctx)?;
    let deleted = engine.delete(&caller.user, &id).await;
    let (outcome, details) = match &deleted {
        Ok(()) => (crate::audit::Outcome::Ok, json!({ "jobId": id })),
        Err(rejection) => (
            crate::audit::Outcome::Denied,
            json!({ "jobId": id, "code": rejection.code, "reason": rejection.reason }),
        ),
    };
    ctx.audit.record(
        &caller.user,
        &caller.address,
        "job.delete",
        outcome,
        details,
    );
    deleted.map_err(refused)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/jobs/{id}/files/{name}`: one of the result's files, with `Range`, `ETag` and
/// conditional requests.
pub(crate) async fn file(
    State(ctx): State<Arc<ServerContext>>,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
    request: axum::extract::Request,
) -> Result<axum::response::Response, Problem> {
    use tower::ServiceExt;

    let job = visible(engine(&ctx)?, &caller, &id).await?;
    let path = job
        .result
        .as_ref()
        .and_then(|result| result["files"][name.as_str()].as_str())
        .map(std::path::PathBuf::from)
        .ok_or_else(|| Problem::not_found(format!("job {id} has no file {name}")))?;
    let metadata = tokio::fs::metadata(&path)
        .await
        .map_err(|_| Problem::new(StatusCode::GONE, "expired", format!("{name} is gone")))?;
    let modified = metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let etag = format!("\"{:x}-{modified:x}\"", metadata.len());
    let matches = request
        .headers()
        .get(axum::http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        match tower_http::services::ServeFile::new(&path)
            .oneshot(request)
            .await
        {
            Ok(response) => response.map(axum::body::Body::new),
            Err(error) => {
                return Err(Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "storage_failure",
                    error.to_string(),
                ))
            }
        }
    };
    if let Ok(value) = axum::http::HeaderValue::from_str(&etag) {
        response
            .headers_mut()
            .insert(axum::http::header::ETAG, value);
    }
    Ok(response)
}

/// `GET /api/stats`: the engine's figures (counts by status and type, success rate, durations,
/// queue length).
pub(crate) async fn stats(
    State(ctx): State<Arc<ServerContext>>,
    _caller: Caller,
) -> Result<impl IntoResponse, Problem> {
    Ok(Json(engine(&ctx)?.stats()))
}
