//! Handing jobs to workers: the scheduler's choice, within the concurrency limit, and the
//! release of a worker's slot.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::model::JobStatus;
use super::{worker, JobEngine, Running};
use crate::clock::now_ms;

impl JobEngine {
    /// Starts every job the schedule allows; returns when the next delayed job is due.
    pub(super) fn dispatch(&self) -> Option<u64> {
        let now = now_ms();
        let mut started = Vec::new();
        let next_due = {
            let mut guard = self.lock();
            let state = &mut *guard;
            let jobs = &state.jobs;
            let next_due = state.schedule.promote(now, |id| jobs.priority(id));
            loop {
                let jobs = &state.jobs;
                let types = &self.inner.types;
                let Some(id) = state.schedule.take(self.inner.config.concurrency, |id| {
                    let job_type = jobs.job_type(id)?;
                    let limit = types.get(job_type).and_then(|h| h.concurrency());
                    Some((job_type.to_owned(), limit))
                }) else {
                    break;
                };
                // A waiting job is held compactly: read its record back now, once, for the
                // worker (`table.rs`).
                if state.jobs.get_mut(&id).is_none() {
                    // Logged by the table; the job cannot run without its record.
                    if let Some(job_type) = state.jobs.job_type(&id).map(str::to_owned) {
                        state.schedule.finished(&job_type);
                    }
                    continue;
                }
                state.next_attempt += 1;
                let attempt = now * 1_000 + state.next_attempt % 1_000;
                state.running.insert(
                    id.clone(),
                    Running {
                        attempt,
                        cancel: CancellationToken::new(),
                        pause: false,
                        interrupt: CancellationToken::new(),
                        last_report: None,
                    },
                );
                started.push((id, attempt));
            }
            next_due
        };
        for (id, attempt) in started {
            self.inner
                .tracker
                .spawn(worker::run(self.clone(), id, attempt));
        }
        next_due
    }

    pub(super) async fn schedule_loop(self) {
        loop {
            let notified = self.inner.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next_due = self.dispatch();
            let sleep = match next_due {
                Some(at) => Duration::from_millis(at.saturating_sub(now_ms()).max(1)),
                None => Duration::from_secs(3600),
            };
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => return,
                _ = notified => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// Whether attempt `attempt` of `id` is asked to pause.
    pub(super) fn pausing(&self, id: &str, attempt: u64) -> bool {
        self.lock()
            .running
            .get(id)
            .is_some_and(|r| r.attempt == attempt && r.pause)
    }

    /// A worker stopped running `id` (whatever the outcome).
    pub(super) fn release(&self, id: &str, job_type: &str, attempt: u64) {
        let mut state = self.lock();
        if state.running.get(id).is_some_and(|r| r.attempt == attempt) {
            state.running.remove(id);
        }
        if state.jobs.status(id).is_some_and(|s| s.is_finished()) {
            // Its record may have been applied while the worker still held it: the job
            // leaves memory now, or once the record is applied (`settle.rs`).
            self.inner.writer.watch(id);
        }
        state.schedule.finished(job_type);
        let finished = state.jobs.status(id).is_some_and(JobStatus::is_finished);
        drop(state);
        if finished {
            self.hand_back(id);
        }
        self.inner.wake.notify_one();
    }
}
