//! Jobs that start jobs: a parent names the jobs it needs done first
//! ([`JobHandler::children`](super::JobHandler::children)); they are submitted as its
//! children, it waits without holding a worker, and the last child to finish queues it again,
//! to plan with their outcomes.
//!
//! Every step is one state change under the lock, stored in one commit: the children with the
//! parent's `waiting`, so that a crash leaves both or neither; the parent queued again with the
//! last child's end. A child keeps its own id, topic and events (which also go to the parent's
//! topic), its owner and priority are the parent's, and cancelling the parent cancels it.

use serde_json::json;

use super::events::{self, kind};
use super::handler::{ChildJob, ChildOutcome};
use super::model::{new_id, Job, JobError, JobStatus, Progress};
use super::JobEngine;
use super::{change, State};
use crate::clock::now_ms;

/// Most children one job may start.
const MAX_CHILDREN: usize = 64;

/// A child ready to submit: its id drawn and its parameters accepted by its type.
pub(super) struct Prepared {
    id: String,
    spec: ChildJob,
}

impl JobEngine {
    /// Checks `specs` as submissions would be (known type, valid parameters), outside the
    /// lock; an error fails the parent with the child's reason.
    pub(super) fn prepare_children(&self, specs: Vec<ChildJob>) -> Result<Vec<Prepared>, JobError> {
        if specs.len() > MAX_CHILDREN {
            return Err(JobError::permanent(
                "too_many_children",
                format!("a job may start at most {MAX_CHILDREN} child jobs"),
            ));
        }
        specs
            .into_iter()
            .map(|spec| {
                let handler = self.inner.types.get(&spec.job_type).ok_or_else(|| {
                    JobError::permanent(
                        "unavailable",
                        format!("job type {} is not available on this server", spec.job_type),
                    )
                })?;
                handler.validate(&spec.params).map_err(|e| JobError {
                    message: format!("its {} child job was refused: {}", spec.job_type, e.message),
                    ..e
                })?;
                let id = new_id().map_err(|e| {
                    JobError::retryable("internal_error", format!("no job id could be drawn: {e}"))
                })?;
                Ok(Prepared { id, spec })
            })
            .collect()
    }

    /// Submits `children` for job `id` (run under fence `attempt`) and sets it waiting for
    /// them; false when the attempt was fenced off meanwhile (nothing is submitted then).
    pub(super) fn adopt(&self, id: &str, attempt: u64, children: Vec<Prepared>) -> bool {
        let now = now_ms();
        let mut guard = self.lock();
        let state = &mut *guard;
        if state.running.get(id).is_none_or(|r| r.attempt != attempt) {
            return false;
        }
        let Some(parent) = state.jobs.get(id).map(std::borrow::Cow::into_owned) else {
            return false;
        };
        let mut commit = super::writer::Commit::default();
        let mut listed = Vec::with_capacity(children.len());
        for Prepared { id: child_id, spec } in children {
            let mut child = Job {
                id: child_id,
                job_type: spec.job_type,
                owner: parent.owner.clone(),
                status: JobStatus::Pending,
                priority: parent.priority,
                params: spec.params,
                attempts: 0,
                max_attempts: parent.max_attempts,
                run_at: now,
                created_at: now,
                started_at: None,
                completed_at: None,
                progress: Progress::default(),
                error: None,
                result: None,
                chunks: Default::default(),
                chunks_done: 0,
                idempotency_key: None,
                correlation_id: parent.correlation_id.clone(),
                seq: 0,
                run_ms: 0,
                parent: Some(parent.id.clone()),
                children: Vec::new(),
                webhook: None,
                node: None,
            };
            let fields = json!({ "priority": child.priority, "runAt": child.run_at, "maxAttempts": child.max_attempts });
            let event = events::next(&mut child, kind::ACCEPTED, fields);
            let part = change(Some(&child), vec![event]);
            commit.writes.extend(part.writes);
            commit.events.extend(part.events);
            listed.push(json!({ "jobId": child.id, "jobType": child.job_type }));
            state.schedule.add(&child.id, child.priority, now, now);
            state.opened(&child.owner);
            state.jobs.insert(child);
        }
        state.running.remove(id);
        let Some(job) = state.jobs.get_mut(id) else {
            return false;
        };
        job.children = listed
            .iter()
            .filter_map(|c| c["jobId"].as_str().map(str::to_owned))
            .collect();
        job.status = JobStatus::Waiting;
        job.started_at.get_or_insert(now);
        if job.attempts == 0 || job.error.is_some() {
            job.attempts += 1;
            job.error = None;
        }
        let event = events::next(job, kind::WAITING, json!({ "children": listed }));
        let part = change(Some(job), vec![event]);
        // The parent's record and event first: its watchers learn of the children before
        // the children's own events.
        commit.writes.splice(0..0, part.writes);
        commit.events.splice(0..0, part.events);
        self.inner.writer.queue(commit);
        drop(guard);
        self.inner.wake.notify_one();
        true
    }

    /// How job `id`'s children ended, when they all have; `None` while one still runs.
    pub(super) fn child_outcomes(&self, id: &str) -> Option<Vec<ChildOutcome>> {
        let state = self.lock();
        let job = state.jobs.get(id)?;
        job.children
            .iter()
            .map(|child_id| match state.jobs.get(child_id) {
                Some(child) if !child.status.is_finished() => None,
                Some(child) => Some(ChildOutcome {
                    id: child.id.clone(),
                    job_type: child.job_type.clone(),
                    status: child.status,
                    result: child.result.clone(),
                    error: child.error.clone(),
                    result_dir: self.inner.config.results_dir.join(&child.id),
                }),
                // Removed by retention: it ended long ago, and its outcome is gone.
                None => Some(ChildOutcome {
                    id: child_id.clone(),
                    job_type: String::new(),
                    status: JobStatus::Failed,
                    result: None,
                    error: Some(JobError::permanent(
                        "expired",
                        "the child job was removed by retention",
                    )),
                    result_dir: self.inner.config.results_dir.join(child_id),
                }),
            })
            .collect()
    }

    /// Job `id` just finished (under the lock): if it is a child whose siblings have all
    /// finished too, its parent is queued to run again.
    pub(super) fn child_finished(&self, state: &mut State, id: &str) {
        let Some(parent_id) = state.jobs.get(id).and_then(|j| j.parent.clone()) else {
            return;
        };
        let Some(parent) = state.jobs.get(&parent_id) else {
            return;
        };
        let all_done = parent
            .children
            .iter()
            .all(|c| state.jobs.status(c).is_none_or(JobStatus::is_finished));
        if parent.status != JobStatus::Waiting || !all_done {
            return;
        }
        let now = now_ms();
        state.schedule.add(&parent_id, parent.priority, now, now);
        if let Some(parent) = state.jobs.get_mut(&parent_id) {
            parent.status = JobStatus::Pending;
            parent.run_at = now;
            self.save(parent, Vec::new());
        }
        self.inner.wake.notify_one();
    }

    /// Cancels job `id`'s unfinished children (under the lock), as `by` cancelled it.
    pub(super) fn cancel_children(&self, state: &mut State, id: &str, by: &str) {
        let children = state
            .jobs
            .get(id)
            .map(|j| j.children.clone())
            .unwrap_or_default();
        let now = now_ms();
        for child_id in children {
            let Some(child) = state.jobs.get_mut(&child_id) else {
                continue;
            };
            if child.status.is_finished() {
                continue;
            }
            if let Some(running) = state.running.remove(&child_id) {
                running.cancel.cancel();
            }
            state
                .schedule
                .remove(&child_id, child.priority, child.run_at);
            super::count_down(&mut state.unfinished, &child.owner);
            child.status = JobStatus::Cancelled;
            child.completed_at = Some(now);
            let event = events::next(
                child,
                kind::CANCELLED,
                json!({ "by": by, "reason": "its parent job was cancelled" }),
            );
            self.save(child, vec![event]);
        }
    }

    /// At start-up, after every job is read back: a waiting job whose children all finished
    /// while the server was down is queued again.
    pub(super) fn requeue_orphaned_parents(&self, state: &mut State) {
        let waiting: Vec<String> = state
            .jobs
            // Jobs waiting for their children are whole: only pending ones are compacted.
            .whole()
            .filter(|j| j.status == JobStatus::Waiting)
            .map(|j| j.id.clone())
            .collect();
        for id in waiting {
            let children = state
                .jobs
                .get(&id)
                .map(|j| j.children.clone())
                .unwrap_or_default();
            match children.first() {
                Some(first) => self.child_finished(state, first),
                // Waiting with no children cannot happen; run it rather than strand it.
                None => {
                    let now = now_ms();
                    if let Some(job) = state.jobs.get_mut(&id) {
                        job.status = JobStatus::Pending;
                        let priority = job.priority;
                        state.schedule.add(&id, priority, now, now);
                    }
                }
            }
        }
    }
}
