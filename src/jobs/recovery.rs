//! Start-up: the stored jobs read back, unfinished ones queued again from their last
//! committed chunk.

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
            let bytes = bytes?;
            let mut job: Job = match serde_json::from_slice(&bytes) {
                Ok(job) => job,
                Err(error) => {
                    tracing::error!(%error, "unreadable job record skipped");
                    continue;
                }
            };
            super::table::restore(&self.inner.store, &mut job)?;
            if job.status == JobStatus::Processing {
                // Its worker died with the process: resume from the checkpoint.
                job.status = JobStatus::Pending;
                resumed += 1;
                // A chunk's PROGRESS_UPDATE is published ahead of its commit (`worker.rs`),
                // so a watcher may have seen one the stop lost with its chunk, numbered one
                // past the last logged event (it went ahead only with every event before it
                // committed). The checkpoint's progress takes that number now: the log keeps
                // no gap, and the number still names a progress update, the later one.
                let index = job.chunks_done;
                let progress = super::worker::progress_event(&mut job, index);
                self.save(&job, vec![progress]);
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
            let id = job.id.clone();
            state.jobs.insert(job);
            // A pending or finished job's record is the one just read (unless rewritten
            // above, which `compact` sees): memory keeps only its index entry.
            self.compact(&mut state, &id);
        }
        self.requeue_orphaned_parents(&mut state);
        for (id, record) in self.inner.store.tombstones()? {
            if let Ok(gone) = serde_json::from_slice(&record) {
                state.gone.insert(&id, &gone);
            }
        }
        if !state.jobs.is_empty() {
            tracing::info!(jobs = state.jobs.len(), resumed, "jobs recovered");
        }
        Ok(())
    }
}
