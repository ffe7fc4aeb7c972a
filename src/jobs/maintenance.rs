//! The engine's periodic work: deadlines, statistics and retention.

use std::time::Duration;

use serde_json::json;

use super::events::{self, kind};
use super::finished::Kept;
use super::model::{JobError, JobStatus};
use super::tombstones::{Gone, MAX_TOMBSTONES};
use super::writer::Commit;
use super::{idempotency_key, JobEngine, Rejection, State};
use crate::clock::now_ms;
use crate::store::jobs::JobWrite;

/// How long a tombstone is kept at least (longer when the retention is longer).
const TOMBSTONE_TIME: Duration = Duration::from_secs(24 * 3600);

impl JobEngine {
    /// Every second: fails jobs past their deadline, publishes `/topic/stats` when someone
    /// listens; every minute: removes finished jobs past retention (and beyond the kept
    /// counts, which `settle.rs` otherwise enforces as jobs finish).
    pub(super) async fn maintenance_loop(self) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut ticks: u64 = 0;
        loop {
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            ticks += 1;
            self.expire_overdue().await;
            self.publish_stats().await;
            // Retention is checked at a quarter of its period (between 1 s and 1 min).
            let every = (self.inner.config.retention.as_secs() / 4).clamp(1, 60);
            if ticks % every == 0 {
                self.apply_retention().await;
            }
        }
    }

    async fn expire_overdue(&self) {
        let cutoff = now_ms().saturating_sub(self.inner.config.deadline.as_millis() as u64);
        let overdue: Vec<String> = {
            let state = self.lock();
            let waiting = state.jobs.waiting().filter(|j| j.created_at < cutoff);
            let whole = state
                .jobs
                .whole()
                .filter(|j| !j.status.is_finished() && j.created_at < cutoff);
            waiting
                .map(|j| j.key.to_id())
                .chain(whole.map(|j| j.id.clone()))
                .collect()
        };
        for id in overdue {
            let error =
                JobError::permanent("expired", "the job did not finish before its deadline");
            self.finish_failed(&id, error).await;
        }
    }

    /// Fails a job that is not running normally any more (deadline): stops its worker if any.
    pub(super) async fn finish_failed(&self, id: &str, error: JobError) {
        {
            let mut state = self.lock();
            let Some(job) = state.jobs.get(id).map(std::borrow::Cow::into_owned) else {
                return;
            };
            if job.status.is_finished() {
                return;
            }
            if let Some(running) = state.running.remove(id) {
                running.cancel.cancel();
            }
            state.schedule.remove(id, job.priority, job.run_at);
            state.closed(&job.owner);
            let Some(job) = state.jobs.get_mut(id) else {
                return;
            };
            job.status = JobStatus::Failed;
            job.completed_at = Some(now_ms());
            job.error = Some(error.clone());
            let event = events::next(
                job,
                kind::FAILED,
                json!({ "code": error.code, "message": error.message, "attempts": job.attempts }),
            );
            // Its worker was removed from `running` above: it cannot commit any more.
            self.save(job, vec![event]);
            self.cancel_children(&mut state, id, "system");
            self.child_finished(&mut state, id);
        }
        self.inner.wake.notify_one();
    }

    async fn apply_retention(&self) {
        let cutoff = now_ms().saturating_sub(self.inner.config.retention.as_millis() as u64);
        let mut finished: Vec<(u64, String, JobStatus)> = {
            let state = self.lock();
            let whole = state
                .jobs
                .whole()
                .filter(|j| j.status.is_finished())
                .map(|j| (j.completed_at.unwrap_or(0), j.id.clone(), j.status));
            let compact = state
                .jobs
                .finished()
                .map(|f| (f.completed_at, f.key.to_id(), f.status));
            whole.chain(compact).collect()
        };
        finished.sort_by_key(|f| std::cmp::Reverse(f.0));
        let (mut kept_completed, mut kept_failed) = (0, 0);
        let mut expired_dirs = Vec::new();
        for (ended, id, status) in finished {
            let (kept, limit) = match Kept::of(status) {
                Kept::Completed => (&mut kept_completed, self.inner.config.keep_completed),
                Kept::Failed => (&mut kept_failed, self.inner.config.keep_failed),
            };
            *kept += 1;
            if ended >= cutoff && *kept <= limit {
                continue;
            }
            // It may have been retried since the list was made.
            if self.forget(&mut self.lock(), &id, true) {
                expired_dirs.push((self.inner.config.results_dir.join(&id), id));
            }
        }
        remove_result_dirs(expired_dirs).await;
        let kept_for = self.inner.config.retention.max(TOMBSTONE_TIME).as_millis() as u64;
        self.prune_tombstones(now_ms().saturating_sub(kept_for));
    }

    /// Forgets the tombstones older than `cutoff` and the oldest beyond [`MAX_TOMBSTONES`].
    fn prune_tombstones(&self, cutoff: u64) {
        let mut state = self.lock();
        let expired = state.gone.prune(cutoff, MAX_TOMBSTONES);
        if !expired.is_empty() {
            let writes = expired
                .into_iter()
                .map(|id| JobWrite::ForgetTombstone { id })
                .collect();
            self.inner.writer.queue(Commit {
                writes,
                ..Commit::default()
            });
        }
    }

    /// Removes finished job `id` (and its idempotency key) from memory and the store, leaving
    /// a tombstone when `tombstone` (expiry; a deletion leaves none); false when it is not
    /// finished (any more). Call under the state lock; the caller removes its result files.
    pub(super) fn forget(&self, state: &mut State, id: &str, tombstone: bool) -> bool {
        if !state.jobs.status(id).is_some_and(JobStatus::is_finished) {
            return false;
        }
        let Some(owner) = state.jobs.owner(id).map(str::to_owned) else {
            return false;
        };
        // Only a job submitted with a key is read back for it (a compact one from the store).
        let key = if state.jobs.keyed(id) {
            state.jobs.get(id).and_then(|job| {
                job.idempotency_key
                    .as_ref()
                    .map(|k| idempotency_key(&job.owner, k))
            })
        } else {
            None
        };
        state.jobs.remove(id);
        if let Some(key) = key {
            if state.idempotency.get(&key).is_some_and(|owner| owner == id) {
                state.idempotency.remove(&key);
            }
        }
        let mut writes = vec![JobWrite::Remove { id: id.to_owned() }];
        if tombstone {
            let gone = Gone {
                owner,
                at: now_ms(),
            };
            match serde_json::to_vec(&gone) {
                Ok(record) => writes.push(JobWrite::Tombstone {
                    id: id.to_owned(),
                    record,
                }),
                Err(error) => tracing::warn!(job = %id, %error, "tombstone not encoded"),
            }
            state.gone.insert(id, &gone);
        }
        self.inner.writer.queue(Commit {
            writes,
            ..Commit::default()
        });
        true
    }

    /// Deletes a finished job of `user`'s (any job, for an admin), its result files too. A job
    /// still pending or running must be cancelled first.
    pub async fn delete(&self, user: &str, id: &str) -> Result<(), Rejection> {
        if let Some(shared) = self.held_elsewhere(id) {
            return self
                .act_elsewhere(shared, user, id, "delete")
                .await
                .map(|_| ());
        }
        self.delete_here(user, id).await
    }

    /// Deletes a finished job this node holds.
    pub(super) async fn delete_here(&self, user: &str, id: &str) -> Result<(), Rejection> {
        let not_found = || Rejection {
            code: "not_found",
            reason: format!("no job {id} of yours"),
        };
        let job = self.job(id).ok_or_else(not_found)?;
        if job.owner != user && !self.is_admin(user) {
            return Err(not_found());
        }
        if !self.forget(&mut self.lock(), id, false) {
            return Err(Rejection {
                code: "invalid_state",
                reason: format!("job {id} is {}: cancel it first", job.status.as_str()),
            });
        }
        remove_result_dirs(vec![(
            self.inner.config.results_dir.join(id),
            id.to_owned(),
        )])
        .await;
        if self.is_shared() {
            // Gone from the cluster's store too before the answer: another node asked next
            // reads the store, and must not find it there.
            self.written().await.map_err(|stopped| Rejection {
                code: "store_failure",
                reason: stopped.to_string(),
            })?;
        }
        Ok(())
    }
}

/// Removes jobs' result trees, which can be large: on the blocking pool, not a session thread.
pub(super) async fn remove_result_dirs(expired_dirs: Vec<(std::path::PathBuf, String)>) {
    let removed = tokio::task::spawn_blocking(move || {
        for (dir, id) in expired_dirs {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => tracing::warn!(job = %id, %error, "removing result files"),
            }
        }
    })
    .await;
    if let Err(error) = removed {
        tracing::warn!(%error, "removing result files failed");
    }
}
