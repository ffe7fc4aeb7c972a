//! Job events: built as JSON with a per-job sequence number, logged in the same store batch as
//! the state change they report, and published by the writer (`writer.rs`) only after that
//! batch is committed, so events never overtake their state.

use bytes::Bytes;
use serde_json::{json, Map, Value};
use stompede_protocol::Headers;

use super::model::Job;
use crate::broker::{Backpressure, Broker};

/// The event names (see `protocol/docs/jobs.md`).
pub mod kind {
    /// The job was stored.
    pub const ACCEPTED: &str = "JOB_ACCEPTED";
    /// A submission was refused.
    pub const REJECTED: &str = "JOB_REJECTED";
    /// An attempt began.
    pub const STARTED: &str = "JOB_STARTED";
    /// Progress moved.
    pub const PROGRESS: &str = "PROGRESS_UPDATE";
    /// A chunk finished; carries its result.
    pub const CHUNK_COMPLETED: &str = "CHUNK_COMPLETED";
    /// Paused at a chunk boundary.
    pub const PAUSED: &str = "JOB_PAUSED";
    /// Resumed.
    pub const RESUMED: &str = "JOB_RESUMED";
    /// An attempt failed; another is scheduled.
    pub const RETRY_SCHEDULED: &str = "JOB_RETRY_SCHEDULED";
    /// Done.
    pub const COMPLETED: &str = "JOB_COMPLETED";
    /// Gave up.
    pub const FAILED: &str = "JOB_FAILED";
    /// Cancelled.
    pub const CANCELLED: &str = "JOB_CANCELLED";
    /// Waiting for the child jobs it started.
    pub const WAITING: &str = "JOB_WAITING";
}

/// One event, ready to log and publish.
#[derive(Debug, Clone)]
pub struct Event {
    /// The job.
    pub job_id: String,
    /// Its type.
    pub job_type: String,
    /// Its owner.
    pub owner: String,
    /// The event name.
    pub kind: &'static str,
    /// The per-job sequence number.
    pub seq: u64,
    /// The correlation id of the submission.
    pub correlation_id: Option<String>,
    /// The job that started this one, whose watchers see its events too.
    pub parent: Option<String>,
    /// The JSON body.
    pub body: Bytes,
}

/// Builds the next event of `job`: bumps its sequence number; `fields` are merged into the
/// body next to `event`, `jobId`, `jobType`, `seq`, `status` and `timestamp`.
pub fn next(job: &mut Job, kind: &'static str, fields: Value) -> Event {
    job.seq += 1;
    let mut body = Map::new();
    body.insert("event".into(), json!(kind));
    body.insert("jobId".into(), json!(job.id));
    body.insert("jobType".into(), json!(job.job_type));
    body.insert("seq".into(), json!(job.seq));
    body.insert("status".into(), json!(job.status));
    body.insert("timestamp".into(), json!(crate::clock::now_ms()));
    if let Some(id) = &job.correlation_id {
        body.insert("correlationId".into(), json!(id));
    }
    if let Some(id) = &job.parent {
        body.insert("parentJobId".into(), json!(id));
    }
    if let Value::Object(extra) = fields {
        body.extend(extra);
    }
    Event {
        job_id: job.id.clone(),
        job_type: job.job_type.clone(),
        owner: job.owner.clone(),
        kind,
        seq: job.seq,
        correlation_id: job.correlation_id.clone(),
        parent: job.parent.clone(),
        body: Bytes::from(Value::Object(body).to_string()),
    }
}

/// The STOMP headers of an event message.
pub fn headers(event: &Event) -> Headers {
    let mut headers = Headers::with_capacity(6);
    headers.push("content-type", "application/json");
    headers.push("job-id", event.job_id.as_str());
    headers.push("job-type", event.job_type.as_str());
    headers.push("event", event.kind);
    headers.push("seq", event.seq.to_string());
    if let Some(id) = &event.correlation_id {
        headers.push("correlation-id", id.as_str());
    }
    if let Some(id) = &event.parent {
        headers.push("parent-job-id", id.as_str());
    }
    headers
}

/// Delivers `event` on `/topic/jobs/<id>` (and its parent's topic, for a child job) and the
/// owner's `/user/queue/progress` (and, for `JOB_ACCEPTED`, `/user/queue/jobs`); the publisher
/// then waits on what comes back (flow control).
pub fn deliver(broker: &Broker, event: &Event) -> Vec<Backpressure> {
    let headers = headers(event);
    let mut destinations = vec![
        format!("/topic/jobs/{}", event.job_id),
        format!("/user/{}/queue/progress", event.owner),
    ];
    if let Some(parent) = &event.parent {
        destinations.push(format!("/topic/jobs/{parent}"));
    }
    if event.kind == kind::ACCEPTED {
        destinations.push(format!("/user/{}/queue/jobs", event.owner));
    }
    let mut pressure = Vec::with_capacity(destinations.len());
    for destination in destinations {
        let message = broker.message(destination.into(), &headers, event.body.clone(), true);
        match broker.publish_now_as_server(message) {
            Ok(wait) => pressure.push(wait),
            Err(error) => tracing::warn!(job = %event.job_id, %error, "job event not published"),
        }
    }
    pressure
}
