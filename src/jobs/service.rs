//! `/app/jobs`: submissions and control (`/app/jobs/<id>/cancel|pause|resume|retry`).
//! A refused request does not end the session: the client gets `JOB_REJECTED` on
//! `/user/queue/errors` and no RECEIPT.

use serde_json::{json, Value};
use stompede_protocol::Headers;
use tokio::sync::oneshot;

use super::events::{self, kind};
use super::model::{new_id, parse_priority, Job, JobStatus, Progress, Webhook};
use super::{change, count_down, idempotency_key, JobEngine};
use crate::broker::app::{AppError, AppReply, AppRequest};
use crate::clock::now_ms;
use crate::store::{Health, NO_SPACE};

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {reason}")]
pub struct Rejection {
    /// A stable code: `unknown_type`, `invalid_parameter`, `unavailable`, `rate_limited`,
    /// `quota_exceeded`, `not_found`, `forbidden`, `invalid_state`, `store_failure`,
    /// `store_unavailable`, `insufficient_storage` (the disk is full).
    pub code: &'static str,
    /// What was wrong, for a person.
    pub reason: String,
}

/// True for the refusals of a store that cannot write.
pub(crate) fn is_store_refusal(rejection: &Rejection) -> bool {
    matches!(rejection.code, "store_unavailable" | "insufficient_storage")
}

fn reject(code: &'static str, reason: impl Into<String>) -> Rejection {
    Rejection {
        code,
        reason: reason.into(),
    }
}

/// Most attempts a submission may ask for.
const MAX_ATTEMPTS: u32 = 100;

impl JobEngine {
    /// Handles a SEND to `/app/jobs` or below.
    pub async fn handle(&self, request: AppRequest) -> Result<AppReply, AppError> {
        let outcome = match request.destination.strip_prefix("/app/jobs") {
            Some("") => {
                let submitted = self
                    .submit(&request.user, &request.headers, &request.body)
                    .await;
                let job_type = request.headers.get("job-type").unwrap_or_default();
                self.audit(
                    &request.user,
                    &request.address,
                    "submit",
                    job_type,
                    &submitted,
                );
                submitted
            }
            Some(rest) => match rest.trim_start_matches('/').split_once('/') {
                Some((id, action)) => {
                    let done = self.control(&request.user, id, action).await;
                    self.audit(&request.user, &request.address, action, "", &done);
                    done
                }
                None => Err(reject(
                    "invalid_action",
                    format!(
                        "expected /app/jobs/<id>/<action>, got {}",
                        request.destination
                    ),
                )),
            },
            None => Err(reject("invalid_action", "not a jobs destination")),
        };
        match outcome {
            Ok(job) => Ok(AppReply::with_receipt_header("job-id", job.id)),
            // The server cannot store anything: an ERROR naming the cause, as for a durable
            // SEND, rather than a JOB_REJECTED that the client may not be subscribed to.
            Err(rejection) if is_store_refusal(&rejection) => Err(AppError::new(rejection.reason)),
            Err(rejection) => {
                self.publish_rejection(&request, &rejection).await;
                Ok(AppReply::refused())
            }
        }
    }

    /// Records a submission or a control action (`submit`, `cancel`, ...) in the audit log.
    pub(crate) fn audit(
        &self,
        user: &str,
        address: &str,
        action: &str,
        job_type: &str,
        outcome: &Result<Job, Rejection>,
    ) {
        let Some(audit) = &self.inner.config.audit else {
            return;
        };
        let action = format!("job.{action}");
        match outcome {
            Ok(job) => audit.record(
                user,
                address,
                &action,
                crate::audit::Outcome::Ok,
                json!({ "jobId": job.id, "jobType": job.job_type }),
            ),
            Err(rejection) => audit.record(
                user,
                address,
                &action,
                crate::audit::Outcome::Denied,
                json!({ "jobType": job_type, "code": rejection.code, "reason": rejection.reason }),
            ),
        }
    }

    async fn publish_rejection(&self, request: &AppRequest, rejection: &Rejection) {
        let mut headers = Headers::new();
        headers.push("content-type", "application/json");
        headers.push("event", kind::REJECTED);
        let correlation = request.headers.get("correlation-id");
        let receipt = request.headers.get("receipt");
        for (name, value) in [("correlation-id", correlation), ("receipt-id", receipt)] {
            if let Some(value) = value {
                headers.push(name, value);
            }
        }
        let body = json!({
            "event": kind::REJECTED,
            "code": rejection.code,
            "reason": rejection.reason,
            "destination": &*request.destination,
            "jobType": request.headers.get("job-type"),
            "correlationId": correlation,
            "receiptId": receipt,
            "timestamp": now_ms(),
        });
        let destination = format!("/user/{}/queue/errors", request.user);
        let message =
            self.inner
                .broker
                .message(destination.into(), &headers, body.to_string().into(), true);
        if let Err(error) = self.inner.broker.publish_as_server(message).await {
            tracing::warn!(%error, "JOB_REJECTED not delivered");
        }
    }

    /// Submits a job for `user`, its parameters the JSON `body`. The job is durable before
    /// this returns.
    pub async fn submit(
        &self,
        user: &str,
        headers: &Headers,
        body: &[u8],
    ) -> Result<Job, Rejection> {
        let params: Value = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice(body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
        };
        self.submit_params(user, headers, params).await
    }

    /// Submits a job for `user` with parameters already parsed (the HTTP API's JSON body).
    pub async fn submit_params(
        &self,
        user: &str,
        headers: &Headers,
        params: Value,
    ) -> Result<Job, Rejection> {
        self.store_available()?;
        let job_type = headers
            .get("job-type")
            .ok_or_else(|| reject("invalid_parameter", "the job-type header is required"))?;
        let handler = self.inner.types.get(job_type).ok_or_else(|| {
            reject(
                "unknown_type",
                format!(
                    "unknown job type {job_type:?}; known: {}",
                    self.inner.types.names().join(", ")
                ),
            )
        })?;
        let params = match params {
            Value::Null => json!({}),
            params => params,
        };
        handler.validate(&params).map_err(|e| {
            // A job type that cannot run here says so; anything else is the parameters' fault.
            let code = if e.code == "unavailable" {
                "unavailable"
            } else {
                "invalid_parameter"
            };
            reject(code, e.message)
        })?;
        let priority = match headers.get("priority") {
            None => 0,
            Some(p) => parse_priority(p).ok_or_else(|| {
                reject(
                    "invalid_parameter",
                    "priority must be an integer or low, normal, high, critical",
                )
            })?,
        };
        let now = now_ms();
        let run_at = match (headers.get("delay"), headers.get("run-at")) {
            (Some(delay), _) => now + number(delay, "delay")?,
            (None, Some(at)) => number(at, "run-at")?,
            (None, None) => now,
        };
        let max_attempts = match headers.get("max-attempts") {
            None => 3,
            Some(n) => u32::try_from(number(n, "max-attempts")?)
                .ok()
                .filter(|n| (1..=MAX_ATTEMPTS).contains(n))
                .ok_or_else(|| {
                    reject(
                        "invalid_parameter",
                        format!("max-attempts must be from 1 to {MAX_ATTEMPTS}"),
                    )
                })?,
        };
        let webhook = headers
            .get("callback-url")
            .map(|url| {
                super::webhooks::allowed(&self.inner.config.webhooks, url)
                    .map(|url| Webhook::new(url.to_string()))
                    .map_err(|why| reject("invalid_parameter", why))
            })
            .transpose()?;
        let key = headers.get("idempotency-key").map(str::to_owned);
        if let Some(existing) = self.idempotent(user, key.as_deref()) {
            return Ok(existing);
        }
        if !self.inner.rates.admit(user) {
            return Err(reject(
                "rate_limited",
                "too many submissions per second; retry later",
            ));
        }
        let id = new_id().map_err(|error| {
            reject(
                "internal_error",
                format!("no random job id could be drawn: {error}"),
            )
        })?;
        let mut job = Job {
            id,
            job_type: job_type.to_owned(),
            owner: user.to_owned(),
            status: JobStatus::Pending,
            priority,
            params,
            attempts: 0,
            max_attempts,
            run_at,
            created_at: now,
            started_at: None,
            completed_at: None,
            progress: Progress::default(),
            error: None,
            result: None,
            chunks: Default::default(),
            chunks_done: 0,
            idempotency_key: key,
            correlation_id: headers.get("correlation-id").map(str::to_owned),
            seq: 0,
            run_ms: 0,
            parent: None,
            children: Vec::new(),
            webhook,
            node: None,
        };
        if let Some(shared) = &self.inner.shared {
            // The cluster's count of the user's unfinished jobs, not this node's (which holds
            // only the jobs it runs).
            let max = self.inner.config.max_queued_per_user;
            match shared
                .count_open(user.to_owned(), job.id.clone(), max)
                .await
            {
                Ok(true) => {}
                Ok(false) => return Err(quota_exceeded(max)),
                Err(error) => {
                    return Err(reject("store_failure", format!("job not counted: {error}")))
                }
            }
        }
        let permit = self.inner.writer.room().await;
        let committed = {
            let mut state = self.lock();
            // Checked again under the lock: two submissions with one key may race.
            if let Some(key) = &job.idempotency_key {
                let existing = state
                    .idempotency
                    .get(&idempotency_key(user, key))
                    .and_then(|id| state.jobs.get(id));
                if let Some(existing) = existing {
                    self.uncount(user, &job.id);
                    return Ok(existing.into_owned());
                }
            }
            let queued = state.unfinished.get(user).copied().unwrap_or(0);
            if !self.is_shared() && queued >= self.inner.config.max_queued_per_user {
                return Err(quota_exceeded(self.inner.config.max_queued_per_user));
            }
            let fields = json!({ "priority": job.priority, "runAt": job.run_at, "maxAttempts": job.max_attempts });
            let event = events::next(&mut job, kind::ACCEPTED, fields);
            let (done, committed) = oneshot::channel();
            let mut commit = change(Some(&job), vec![event]);
            commit.done = Some(done);
            commit.permit = permit;
            self.inner.writer.queue(commit);
            // A cluster's job runs where it is claimed (`claims.rs`), not where submitted.
            if !self.is_shared() {
                state.schedule.add(&job.id, job.priority, job.run_at, now);
            }
            state.opened(user);
            if let Some(key) = &job.idempotency_key {
                state
                    .idempotency
                    .insert(idempotency_key(user, key), job.id.clone());
            }
            state.jobs.insert(job.clone());
            committed
        };
        self.inner.wake.notify_one();
        // Durable (and JOB_ACCEPTED published) before the submitter is answered.
        committed
            .await
            .unwrap_or(Err(super::writer::EngineStopped))
            .map_err(|stopped| reject("store_failure", stopped.to_string()))?;
        if self.is_shared() {
            // Stored in the cluster's store: offered before the RECEIPT, so that a received
            // job is one some node will run.
            self.offer(&job.id)
                .await
                .map_err(|error| reject("store_failure", format!("job not queued: {error}")))?;
            return Ok(job);
        }
        // Its record is in the store now: while it waits, memory keeps only its index entry.
        {
            let mut state = self.lock();
            self.compact(&mut state, &job.id);
        }
        Ok(job)
    }

    /// Refuses new durable work while the store cannot write (a full or read-only disk): the
    /// change would wait, unanswered, until the disk comes back.
    fn store_available(&self) -> Result<(), Rejection> {
        match self.inner.store.store().health() {
            Health::Available => Ok(()),
            Health::Unavailable { reason } => {
                let code = if reason == NO_SPACE {
                    "insufficient_storage"
                } else {
                    "store_unavailable"
                };
                Err(reject(code, format!("store unavailable: {reason}")))
            }
        }
    }

    /// The job already submitted by `user` with idempotency key `key`, if any.
    fn idempotent(&self, user: &str, key: Option<&str>) -> Option<Job> {
        let key = idempotency_key(user, key?);
        let state = self.lock();
        let id = state.idempotency.get(&key)?;
        state.jobs.get(id).map(std::borrow::Cow::into_owned)
    }

    /// Applies a control action for `user`: here when this node holds job `id` (or is on
    /// its own), else on a cluster member through the node that does (`remote.rs`).
    pub async fn control(&self, user: &str, id: &str, action: &str) -> Result<Job, Rejection> {
        if let Some(shared) = self.held_elsewhere(id) {
            return self
                .act_elsewhere(shared, user, id, action)
                .await?
                .ok_or_else(|| reject("internal_error", "a control answered with no job"));
        }
        self.control_here(user, id, action).await
    }

    /// Applies a control action for `user` to a job this node holds.
    pub(super) async fn control_here(
        &self,
        user: &str,
        id: &str,
        action: &str,
    ) -> Result<Job, Rejection> {
        self.store_available()?;
        if !self.may_access(user, id) {
            // The same answer for "not yours" and "does not exist": no probing of ids.
            return Err(reject("not_found", format!("no job {id} of yours")));
        }
        let now = now_ms();
        let job = {
            let mut guard = self.lock();
            let state = &mut *guard;
            let jobs_completed: std::collections::HashSet<String> = state
                .jobs
                .get(id)
                .map(|job| {
                    job.children
                        .iter()
                        .filter(|c| state.jobs.status(c) == Some(JobStatus::Completed))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            let Some(job) = state.jobs.get_mut(id) else {
                return Err(reject("not_found", format!("no job {id} of yours")));
            };
            let status = job.status;
            let invalid = || {
                reject(
                    "invalid_state",
                    format!("cannot {action} a {status:?} job").to_lowercase(),
                )
            };
            let event = match action {
                "cancel" if !status.is_finished() => {
                    if let Some(running) = state.running.remove(id) {
                        running.cancel.cancel();
                    }
                    state.schedule.remove(id, job.priority, job.run_at);
                    count_down(&mut state.unfinished, &job.owner);
                    job.status = JobStatus::Cancelled;
                    job.completed_at = Some(now);
                    Some(events::next(job, kind::CANCELLED, json!({ "by": user })))
                }
                "pause" if status == JobStatus::Processing => {
                    // Takes effect at the next chunk boundary (the worker reports JOB_PAUSED), or
                    // sooner for a job type whose chunks stop between steps.
                    if let Some(running) = state.running.get_mut(id) {
                        running.pause = true;
                        running.interrupt.cancel();
                    }
                    None
                }
                "pause" if status == JobStatus::Pending => {
                    // A job the dispatcher has handed to a worker that has not begun it yet
                    // (it may be planning) is still pending: fence that worker off, as cancel
                    // does, or it would start the job after its JOB_PAUSED.
                    state.running.remove(id);
                    state.schedule.remove(id, job.priority, job.run_at);
                    job.status = JobStatus::Paused;
                    Some(events::next(job, kind::PAUSED, json!({ "by": user })))
                }
                "resume" if status == JobStatus::Paused => {
                    job.status = JobStatus::Pending;
                    state.schedule.add(id, job.priority, job.run_at, now);
                    Some(events::next(job, kind::RESUMED, json!({ "by": user })))
                }
                "retry" if matches!(status, JobStatus::Failed | JobStatus::Cancelled) => {
                    // Children that completed are kept; any other outcome is asked for again.
                    let children_completed =
                        job.children.iter().all(|c| jobs_completed.contains(c));
                    if !children_completed {
                        job.children.clear();
                    }
                    job.reset_for_retry(now);
                    // A cluster's job is offered again below, to run wherever it is claimed.
                    if self.inner.shared.is_none() {
                        state.schedule.add(id, job.priority, now, now);
                    }
                    *state.unfinished.entry(job.owner.clone()).or_default() += 1;
                    Some(events::next(
                        job,
                        kind::RETRY_SCHEDULED,
                        json!({ "by": user, "attempt": 0, "nextAttemptAt": now }),
                    ))
                }
                "cancel" | "pause" | "resume" | "retry" => return Err(invalid()),
                other => {
                    return Err(reject(
                        "invalid_action",
                        format!("unknown action {other:?}: use cancel, pause, resume or retry"),
                    ))
                }
            };
            // A cancelled job's worker was removed from `running` above, so a chunk still
            // finishing cannot commit.
            self.save(job, event.into_iter().collect());
            let job = job.clone();
            if action == "cancel" {
                self.cancel_children(state, id, user);
                self.child_finished(state, id);
            }
            job
        };
        if job.status.is_finished() {
            self.hand_back(id);
        }
        if let (Some(shared), "retry") = (&self.inner.shared, action) {
            // Unfinished again (as on one node, past the per-user limit if need be).
            shared
                .count_open(job.owner.clone(), id.to_owned(), usize::MAX)
                .await
                .map_err(|error| reject("store_failure", format!("job not counted: {error}")))?;
            // Its new state is stored before it is offered.
            self.written()
                .await
                .map_err(|stopped| reject("store_failure", stopped.to_string()))?;
            self.offer(id)
                .await
                .map_err(|error| reject("store_failure", format!("job not queued: {error}")))?;
        }
        self.inner.wake.notify_one();
        Ok(job)
    }
}

fn quota_exceeded(max: usize) -> Rejection {
    reject(
        "quota_exceeded",
        format!("at most {max} unfinished jobs per user"),
    )
}

fn number(value: &str, name: &str) -> Result<u64, Rejection> {
    value.trim().parse().map_err(|_| {
        reject(
            "invalid_parameter",
            format!("{name} must be a non-negative integer (ms)"),
        )
    })
}
