//! Start-up: the stored jobs read back, unfinished ones queued again from their last
//! committed chunk.

use std::sync::Arc;

use super::model::{Job, JobStatus};
use super::{idempotency_key, JobEngine};
use crate::clock::now_ms;
use crate::store::StoreError;

impl JobEngine {
    pub(super) fn recover(&self) -> Result<(), StoreError> {
        // Run before the writer starts: its queue holds what this writes.
        let now = now_ms();
        let mut state = self.lock();
        let mut resumed = 0;
        for bytes in self.inner.store.jobs()? {
            let mut job: Job = match serde_json::from_slice(&bytes) {
                Ok(job) => job,
                Err(error) => {
                    tracing::error!(%error, "unreadable job record skipped");
                    continue;
                }
            };
            if !job.status.is_finished() {
                if let Some(plan) = self.inner.store.plan(&job.id)? {
                    match serde_json::from_slice(&plan) {
                        Ok(plan) => job.chunks = Arc::new(plan),
                        Err(error) => {
                            tracing::error!(job = %job.id, %error, "unreadable plan: the job will be planned again")
                        }
                    }
                }
            }
            if !job.status.is_finished() && !job.chunks.is_empty() {
                // Chunk commits do not rewrite the job record: the checkpoint is the stored
                // chunk results, and the last sequence number is in the event log.
                job.chunks_done = self.inner.store.chunk_count(&job.id)?;
                job.seq = job.seq.max(self.inner.store.last_seq(&job.id)?);
                let done = job.chunks_done as usize;
                job.progress.processed = job.chunks.iter().take(done).map(|c| c.units).sum();
                job.progress.chunks_completed = job.chunks_done;
                if job.progress.total > 0 {
                    job.progress.percentage = (job.progress.processed as f64 * 1000.0
                        / job.progress.total as f64)
                        .round()
                        / 10.0;
                }
            }
            if job.status == JobStatus::Processing {
                // Its worker died with the process: resume from the checkpoint.
                job.status = JobStatus::Pending;
                resumed += 1;
                self.save(&job, Vec::new());
            }
            if let Some(key) = &job.idempotency_key {
                state
                    .idempotency
                    .insert(idempotency_key(&job.owner, key), job.id.clone());
            }
            if job.status == JobStatus::Pending {
                state.schedule.add(&job.id, job.priority, job.run_at, now);
            }
            if !job.status.is_finished() {
                state.opened(&job.owner);
            }
            // A delivery cut short by the stop goes on with the attempts it has left.
            self.queue_webhook(&job);
            state.jobs.insert(job.id.clone(), job);
        }
        self.requeue_orphaned_parents(&mut state);
        for (id, record) in self.inner.store.tombstones()? {
            if let Ok(gone) = serde_json::from_slice(&record) {
                state.gone.insert(id, gone);
            }
        }
        if !state.jobs.is_empty() {
            tracing::info!(jobs = state.jobs.len(), resumed, "jobs recovered");
        }
        Ok(())
    }
}
