//! Job events: built as JSON with a per-job sequence number, logged in the same store batch as
//! the state change they report, and published by the writer (`writer.rs`) only after that
//! batch is committed, so events never overtake their state (a chunk's own `PROGRESS_UPDATE`
//! excepted: it may go out ahead of its commit, see `worker.rs`).

use bytes::Bytes;
use serde_json::{Map, Value};
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

/// The fields every event body starts with (an extra field of the same name takes their place).
const BASE_FIELDS: [&str; 9] = [
    "event",
    "jobId",
    "jobType",
    "seq",
    "status",
    "timestamp",
    "correlationId",
    "parentJobId",
    "node",
];

/// Builds the next event of `job`: bumps its sequence number; `fields` are merged into the
/// body next to `event`, `jobId`, `jobType`, `seq`, `status`, `timestamp` (and
/// `correlationId` when the submission had one, `parentJobId` for a child, `node` once a
/// cluster member started it).
///
/// The body is written straight into its buffer rather than built as a `serde_json::Map` and
/// then printed: every job change makes at least one event, and on the submission path the
/// map's allocations and second pass cost a tenth of the server's instructions.
pub fn next(job: &mut Job, kind: &'static str, fields: Value) -> Event {
    next_with(job, kind, fields, &[])
}

/// [`next`] with `borrowed` fields besides `fields`, written from where they are: a job's
/// result can be large (an extraction's carries every page's text), and a copy of it for the
/// event would double the memory a completion takes.
pub fn next_with(
    job: &mut Job,
    kind: &'static str,
    fields: Value,
    borrowed: &[(&str, &Value)],
) -> Event {
    job.seq += 1;
    let extra = match fields {
        Value::Object(extra) => extra,
        _ => Map::new(),
    };
    let mut body = Vec::with_capacity(160 + 48 * extra.len());
    body.push(b'{');
    let mut first = true;
    // `name` is one of ours (plain ASCII, nothing to escape) or a key of `extra`.
    let mut field = |body: &mut Vec<u8>, name: &str, ours: bool, value: &dyn Fn(&mut Vec<u8>)| {
        if !first {
            body.push(b',');
        }
        first = false;
        if ours {
            body.push(b'"');
            body.extend_from_slice(name.as_bytes());
            body.push(b'"');
        } else {
            write_json(body, name);
        }
        body.push(b':');
        value(body);
    };
    for name in BASE_FIELDS {
        if extra.contains_key(name) || borrowed.iter().any(|(n, _)| *n == name) {
            continue;
        }
        match name {
            "event" => field(&mut body, name, true, &|b| write_json(b, kind)),
            "jobId" => field(&mut body, name, true, &|b| write_json(b, &job.id)),
            "jobType" => field(&mut body, name, true, &|b| write_json(b, &job.job_type)),
            "seq" => field(&mut body, name, true, &|b| write_json(b, &job.seq)),
            "status" => field(&mut body, name, true, &|b| {
                write_json(b, job.status.as_str())
            }),
            "timestamp" => field(&mut body, name, true, &|b| {
                write_json(b, &crate::clock::now_ms())
            }),
            "correlationId" => {
                if let Some(id) = &job.correlation_id {
                    field(&mut body, name, true, &|b| write_json(b, id));
                }
            }
            "parentJobId" => {
                if let Some(id) = &job.parent {
                    field(&mut body, name, true, &|b| write_json(b, id));
                }
            }
            _ => {
                if let Some(node) = &job.node {
                    field(&mut body, name, true, &|b| write_json(b, node));
                }
            }
        }
    }
    for (name, value) in &extra {
        field(&mut body, name, false, &|b| write_json(b, value));
    }
    for (name, value) in borrowed {
        field(&mut body, name, false, &|b| write_json(b, *value));
    }
    body.push(b'}');
    Event {
        job_id: job.id.clone(),
        job_type: job.job_type.clone(),
        owner: job.owner.clone(),
        kind,
        seq: job.seq,
        correlation_id: job.correlation_id.clone(),
        parent: job.parent.clone(),
        body: Bytes::from(body),
    }
}

/// Appends `value` as JSON (strings escaped); writing into a `Vec` cannot fail, and the values
/// written here (strings, numbers, `serde_json::Value`s) always serialize.
fn write_json<T: serde::Serialize + ?Sized>(body: &mut Vec<u8>, value: &T) {
    if let Err(error) = serde_json::to_writer(&mut *body, value) {
        tracing::error!(%error, "job event field not encoded");
        body.extend_from_slice(b"null");
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
///
/// A destination that nobody subscribes to is skipped before its message is built: job events
/// go to topics and user destinations, which keep nothing for later subscribers, and most jobs
/// are watched by nobody, so building and routing three messages per event for no one was a
/// fifth of a submission's instructions. The check runs under the writer's publication lock,
/// which a `since-seq` subscription also holds while it registers, so such a subscriber still
/// gets each event exactly once.
pub fn deliver(broker: &Broker, event: &Event) -> Vec<Backpressure> {
    let mut destinations = Vec::with_capacity(3);
    let mut consider = |destination: String| {
        if broker.has_subscribers(&destination) {
            destinations.push(destination);
        }
    };
    consider(format!("/topic/jobs/{}", event.job_id));
    consider(format!("/user/{}/queue/progress", event.owner));
    if let Some(parent) = &event.parent {
        consider(format!("/topic/jobs/{parent}"));
    }
    if event.kind == kind::ACCEPTED {
        consider(format!("/user/{}/queue/jobs", event.owner));
    }
    if destinations.is_empty() {
        return Vec::new();
    }
    let headers = headers(event);
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
