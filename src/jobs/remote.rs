//! Jobs this cluster member does not hold: read from the cluster's store, and controlled
//! through the node that holds them (or, when none does, through the store, under the
//! job's lease). A node holds the jobs it runs, keeps paused or finished; every other job
//! of the cluster is "remote" here, and this module is how any node still answers for it
//! with the answers a single node gives.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use super::events::{self, kind, Event};
use super::model::{Job, JobStatus};
use super::service::Rejection;
use super::shared::{ControlAnswer, ControlRequest, ForwardError, SharedJobs, Unheld};
use super::JobEngine;
use crate::clock::now_ms;
use crate::store::jobs::JobWrite;

/// Times a control looks for its job's holder again (the job moved, or finished, meanwhile).
const LOOKUPS: usize = 5;
/// How long it waits before looking again.
const LOOK_AGAIN: Duration = Duration::from_millis(200);

/// The code, never seen outside this module, of a change refused because a node took the
/// job meanwhile: the control looks for it again.
const MOVED: &str = "moved";

/// The codes a forwarded refusal may carry, as the engine's own (see [`Rejection::code`]).
const CODES: [&str; 14] = [
    "unknown_type",
    "invalid_parameter",
    "invalid_action",
    "unavailable",
    "rate_limited",
    "quota_exceeded",
    "not_found",
    "forbidden",
    "invalid_state",
    "store_failure",
    "store_unavailable",
    "insufficient_storage",
    "internal_error",
    "expired",
];

fn reject(code: &'static str, reason: impl Into<String>) -> Rejection {
    Rejection {
        code,
        reason: reason.into(),
    }
}

fn not_found(id: &str) -> Rejection {
    reject("not_found", format!("no job {id} of yours"))
}

fn unreadable(id: &str, error: impl std::fmt::Display) -> Rejection {
    reject(
        "store_failure",
        format!("job {id} could not be read from the cluster's store: {error}"),
    )
}

/// A job as another node's subscription guard needs it (`watch.rs`): read before the
/// SUBSCRIBE is decided, since the guard itself cannot wait on the network.
#[derive(Debug)]
pub(crate) struct RemoteView {
    /// The job, or None when the cluster's store has no such job; Err when it could not be
    /// read (never taken for "no such job").
    pub(crate) job: Result<Option<Job>, String>,
    /// With `since-seq`, its logged events after it (JSON), in order.
    pub(crate) events: Result<Vec<Value>, String>,
}

impl JobEngine {
    /// The cluster's store, when this node keeps its jobs there and does not hold job `id`.
    pub(super) fn held_elsewhere(&self, id: &str) -> Option<Arc<dyn SharedJobs>> {
        let shared = self.inner.shared.clone()?;
        if self.lock().jobs.owner(id).is_some() {
            None
        } else {
            Some(shared)
        }
    }

    /// Job `id` wherever it is: this node's copy when it holds it, else (on a cluster
    /// member keeping jobs in the cluster) the record its node last stored.
    pub async fn job_anywhere(&self, id: &str) -> Result<Option<Job>, Rejection> {
        if let Some(job) = self.job(id) {
            return Ok(Some(job));
        }
        let Some(shared) = self.inner.shared.clone() else {
            return Ok(None);
        };
        read_job(shared.as_ref(), id)
            .await
            .map(|read| read.map(|(job, _)| job))
    }

    /// What a subscription guard needs of job `id` held elsewhere: the job and, when
    /// `since` is given, its events after it.
    pub(crate) async fn remote_view(&self, id: &str, since: Option<u64>) -> RemoteView {
        let Some(shared) = self.inner.shared.clone() else {
            return RemoteView {
                job: Ok(None),
                events: Ok(Vec::new()),
            };
        };
        let job = read_job(shared.as_ref(), id)
            .await
            .map(|read| read.map(|(job, _)| job))
            .map_err(|rejection| rejection.reason);
        let events = match (since, &job) {
            (Some(since), Ok(Some(_))) => match shared.events_after(id.to_owned(), since).await {
                Ok(bodies) => bodies
                    .iter()
                    .map(|body| serde_json::from_slice::<Value>(body))
                    .collect::<Result<Vec<Value>, _>>()
                    .map_err(|e| format!("an unreadable event: {e}")),
                Err(error) => Err(error),
            },
            _ => Ok(Vec::new()),
        };
        RemoteView { job, events }
    }

    /// Applies `action` (`cancel`, `pause`, `resume`, `retry`, `delete`) for `user` to job
    /// `id`, which this node does not hold: through the node that holds it, or, when none
    /// does, through the store. The job after the action (None after a delete).
    pub(super) async fn act_elsewhere(
        &self,
        shared: Arc<dyn SharedJobs>,
        user: &str,
        id: &str,
        action: &str,
    ) -> Result<Option<Job>, Rejection> {
        if !matches!(action, "cancel" | "pause" | "resume" | "retry" | "delete") {
            return Err(reject(
                "invalid_action",
                format!("unknown action {action:?}: use cancel, pause, resume or retry"),
            ));
        }
        let here = self.inner.config.node.clone().unwrap_or_default();
        let mut last = reject("unavailable", format!("job {id} could not be reached"));
        for _ in 0..LOOKUPS {
            let Some((job, holder)) = read_job(shared.as_ref(), id).await? else {
                return Err(not_found(id));
            };
            if !(self.is_admin(user) || job.owner == user) {
                return Err(not_found(id));
            }
            // A finished job stays with the node that finished it (its result files, its
            // retention), as long as that node is there to answer.
            let target = holder
                .clone()
                .or_else(|| job.status.is_finished().then(|| job.node.clone()).flatten());
            let request = ControlRequest {
                id: id.to_owned(),
                user: user.to_owned(),
                action: action.to_owned(),
            };
            match target.filter(|node| *node != here) {
                Some(node) => match shared.forward(node.clone(), request).await {
                    Ok(ControlAnswer::Done(record)) if record.is_empty() => return Ok(None),
                    Ok(ControlAnswer::Done(record)) => {
                        return serde_json::from_slice(&record)
                            .map(Some)
                            .map_err(|e| unreadable(id, e))
                    }
                    Ok(ControlAnswer::Refused { code, reason }) => {
                        let code = CODES
                            .iter()
                            .find(|known| **known == code)
                            .copied()
                            .unwrap_or("internal_error");
                        return Err(reject(code, reason));
                    }
                    // The node that finished it is gone, or no longer keeps it (it started
                    // afresh): the store speaks for it.
                    Ok(ControlAnswer::NotHere) | Err(ForwardError::NoNode(_))
                        if holder.is_none() =>
                    {
                        match self.act_unheld(shared.as_ref(), user, id, action).await {
                            Err(rejection) if rejection.code == MOVED => {}
                            done => return done,
                        }
                    }
                    // The node holding it moved it meanwhile: looked for again.
                    Ok(ControlAnswer::NotHere) => {}
                    // Its holder is gone: once its lease runs out, the store or the next
                    // node speaks for it.
                    Err(ForwardError::NoNode(node)) => {
                        last = reject(
                            "unavailable",
                            format!("job {id} is held by node {node}, which does not answer"),
                        );
                    }
                    Err(ForwardError::Failed(error)) => {
                        return Err(reject(
                            "unavailable",
                            format!("job {id} could not be reached: {error}"),
                        ))
                    }
                },
                None => match self.act_unheld(shared.as_ref(), user, id, action).await {
                    Err(rejection) if rejection.code == MOVED => {}
                    done => return done,
                },
            }
            tokio::time::sleep(LOOK_AGAIN).await;
        }
        Err(last)
    }

    /// `action` on job `id`, which no node holds: a change of its stored record under its
    /// lease, then what the change calls for (its events delivered; a retried job offered).
    /// A refusal coded [`MOVED`] when a node took the job meanwhile.
    async fn act_unheld(
        &self,
        shared: &dyn SharedJobs,
        user: &str,
        id: &str,
        action: &str,
    ) -> Result<Option<Job>, Rejection> {
        if action == "delete" {
            return self.delete_unheld(shared, id).await.map(|()| None);
        }
        // The change's events, kept for delivery once it is stored.
        let made: Arc<Mutex<Vec<Event>>> = Arc::default();
        let keep = made.clone();
        let (user_owned, action_owned) = (user.to_owned(), action.to_owned());
        let changed = shared
            .update_unheld(
                id.to_owned(),
                Box::new(move |record, last_seq| {
                    let mut job: Job = serde_json::from_slice(record)
                        .map_err(|e| reject("store_failure", e.to_string()))?;
                    job.seq = job.seq.max(last_seq);
                    let event = change_unheld(&mut job, &user_owned, &action_owned)?;
                    let record = job
                        .to_bytes()
                        .map_err(|e| reject("internal_error", e.to_string()))?;
                    let logged = vec![(event.seq, event.body.clone())];
                    keep.lock().unwrap_or_else(|e| e.into_inner()).push(event);
                    Ok((record, logged))
                }),
            )
            .await
            .map_err(|error| unreadable(id, error))?;
        let record = match changed {
            Unheld::Changed(record) => record,
            Unheld::HeldBy(_) => return Err(reject(MOVED, "")),
            Unheld::Gone => return Err(not_found(id)),
            Unheld::Refused(rejection) => return Err(rejection),
        };
        let job: Job = serde_json::from_slice(&record).map_err(|e| unreadable(id, e))?;
        let made = std::mem::take(&mut *made.lock().unwrap_or_else(|e| e.into_inner()));
        for event in &made {
            // Watchers anywhere hear it as from its own node (the broker routes it on).
            drop(events::deliver(&self.inner.broker, event));
        }
        match action {
            "cancel" => {
                shared
                    .count_closed(job.owner.clone(), id.to_owned())
                    .await
                    .map_err(|error| {
                        reject("store_failure", format!("job not counted: {error}"))
                    })?;
            }
            "retry" => {
                shared
                    .count_open(job.owner.clone(), id.to_owned(), usize::MAX)
                    .await
                    .map_err(|error| {
                        reject("store_failure", format!("job not counted: {error}"))
                    })?;
            }
            _ => {}
        }
        if action == "retry" {
            shared
                .offer(id.to_owned())
                .await
                .map_err(|error| reject("store_failure", format!("job not queued: {error}")))?;
        }
        Ok(Some(job))
    }

    /// Deletes finished job `id`, which no node holds, from the store (its result files went
    /// with the node that finished it).
    async fn delete_unheld(&self, shared: &dyn SharedJobs, id: &str) -> Result<(), Rejection> {
        let Some((job, holder)) = read_job(shared, id).await? else {
            return Err(not_found(id));
        };
        if holder.is_some() {
            return Err(reject(MOVED, ""));
        }
        if !job.status.is_finished() {
            return Err(reject(
                "invalid_state",
                format!("job {id} is {}: cancel it first", job.status.as_str()),
            ));
        }
        shared
            .write(vec![JobWrite::Remove { id: id.to_owned() }])
            .await
            .map_err(|error| reject("store_failure", error))?;
        Ok(())
    }

    /// Serves the control requests other nodes forward to this one until the link stops.
    pub(super) async fn control_loop(self, shared: Arc<dyn SharedJobs>) {
        loop {
            let incoming = tokio::select! {
                _ = self.inner.shutdown.cancelled() => return,
                incoming = shared.next_control() => incoming,
            };
            let Some(incoming) = incoming else { return };
            let engine = self.clone();
            self.inner.tracker.spawn(async move {
                let answer = engine.answer(incoming.request).await;
                let _ = incoming.reply.send(answer);
            });
        }
    }

    /// This node's answer to a forwarded control.
    async fn answer(&self, request: ControlRequest) -> ControlAnswer {
        let ControlRequest { id, user, action } = request;
        if self.lock().jobs.owner(&id).is_none() {
            return ControlAnswer::NotHere;
        }
        let done = if action == "delete" {
            self.delete_here(&user, &id).await.map(|()| Vec::new())
        } else {
            match self.control_here(&user, &id, &action).await {
                Ok(job) => job
                    .to_bytes()
                    .map_err(|e| reject("internal_error", e.to_string())),
                Err(rejection) => Err(rejection),
            }
        };
        // Stored before the answer: the asker, and whoever it tells, read the store next.
        let done = match done {
            Ok(record) => self
                .written()
                .await
                .map(|()| record)
                .map_err(|stopped| reject("store_failure", stopped.to_string())),
            refused => refused,
        };
        match done {
            Ok(record) => ControlAnswer::Done(record),
            Err(rejection) => ControlAnswer::Refused {
                code: rejection.code.to_owned(),
                reason: rejection.reason,
            },
        }
    }
}

/// Job `id` and the node holding it, from the store.
async fn read_job(
    shared: &dyn SharedJobs,
    id: &str,
) -> Result<Option<(Job, Option<String>)>, Rejection> {
    let Some(stored) = shared
        .read(id.to_owned())
        .await
        .map_err(|error| unreadable(id, error))?
    else {
        return Ok(None);
    };
    let job: Job = serde_json::from_slice(&stored.record).map_err(|e| unreadable(id, e))?;
    Ok(Some((job, stored.holder)))
}

/// `action` on `job`, which no node runs: the transitions of `service.rs`'s `control` for a
/// job that is waiting (pending, paused) or finished. Returns its event.
fn change_unheld(job: &mut Job, user: &str, action: &str) -> Result<Event, Rejection> {
    let now = now_ms();
    let status = job.status;
    match action {
        "cancel" if !status.is_finished() => {
            job.status = JobStatus::Cancelled;
            job.completed_at = Some(now);
            Ok(events::next(job, kind::CANCELLED, json!({ "by": user })))
        }
        "pause" if status == JobStatus::Pending => {
            job.status = JobStatus::Paused;
            Ok(events::next(job, kind::PAUSED, json!({ "by": user })))
        }
        "resume" if status == JobStatus::Paused => {
            job.status = JobStatus::Pending;
            Ok(events::next(job, kind::RESUMED, json!({ "by": user })))
        }
        "retry" if matches!(status, JobStatus::Failed | JobStatus::Cancelled) => {
            // Its children's outcomes were kept by the node that ran it, which is gone: they
            // are asked for again.
            job.children.clear();
            job.reset_for_retry(now);
            Ok(events::next(
                job,
                kind::RETRY_SCHEDULED,
                json!({ "by": user, "attempt": 0, "nextAttemptAt": now }),
            ))
        }
        _ => Err(reject(
            "invalid_state",
            format!("cannot {action} a {status:?} job").to_lowercase(),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::jobs::model::Progress;

    fn job(status: JobStatus) -> Job {
        Job {
            id: "01JOB".into(),
            job_type: "demo".into(),
            owner: "bob".into(),
            status,
            priority: 0,
            params: json!({}),
            attempts: 2,
            max_attempts: 3,
            run_at: 0,
            created_at: 0,
            started_at: None,
            completed_at: None,
            progress: Progress::default(),
            error: None,
            result: None,
            chunks: Default::default(),
            chunks_done: 0,
            idempotency_key: None,
            correlation_id: None,
            seq: 7,
            run_ms: 0,
            parent: None,
            children: vec!["01CHILD".into()],
            webhook: None,
            node: Some("b".into()),
        }
    }

    #[test]
    fn an_unheld_job_moves_as_a_single_nodes_control_moves_it() {
        let mut waiting = job(JobStatus::Pending);
        let paused = change_unheld(&mut waiting, "bob", "pause").unwrap();
        assert_eq!(
            (waiting.status, paused.kind, paused.seq),
            (JobStatus::Paused, kind::PAUSED, 8)
        );
        let resumed = change_unheld(&mut waiting, "bob", "resume").unwrap();
        assert_eq!(
            (waiting.status, resumed.kind),
            (JobStatus::Pending, kind::RESUMED)
        );
        let cancelled = change_unheld(&mut waiting, "root", "cancel").unwrap();
        assert_eq!(waiting.status, JobStatus::Cancelled);
        assert!(waiting.completed_at.is_some());
        let body: Value = serde_json::from_slice(&cancelled.body).unwrap();
        assert_eq!(
            (body["by"].as_str(), body["seq"].as_u64()),
            (Some("root"), Some(10))
        );
        let retried = change_unheld(&mut waiting, "bob", "retry").unwrap();
        assert_eq!(retried.kind, kind::RETRY_SCHEDULED);
        assert_eq!((waiting.status, waiting.attempts), (JobStatus::Pending, 0));
        assert!(waiting.completed_at.is_none() && waiting.children.is_empty());
    }

    #[test]
    fn an_unheld_job_refuses_what_its_state_does_not_allow() {
        for (status, action) in [
            (JobStatus::Completed, "cancel"),
            (JobStatus::Processing, "pause"),
            (JobStatus::Pending, "resume"),
            (JobStatus::Completed, "retry"),
            (JobStatus::Pending, "retry"),
        ] {
            let mut unheld = job(status);
            let refused = change_unheld(&mut unheld, "bob", action).unwrap_err();
            assert_eq!(refused.code, "invalid_state", "{action} on {status:?}");
            assert_eq!((unheld.status, unheld.seq), (status, 7));
        }
    }
}
