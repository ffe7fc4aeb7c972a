//! The engine on a cluster member that keeps its jobs in the cluster's shared store
//! (`shared.rs`): jobs submitted here are offered to every node rather than run here; jobs
//! this node claims are read back into its working copy and run from their checkpoint; a job
//! whose lease this node lost is stopped and forgotten; a finished one is handed back.

use std::sync::Arc;
use std::time::Duration;

use super::model::{ChunkPlan, Job, JobStatus};
use super::shared::{Claim, SharedJobs};
use super::writer::Commit;
use super::{idempotency_key, JobEngine, State};
use crate::clock::now_ms;
use crate::store::jobs::JobWrite;

/// How often a node with no room looks again.
const ROOM_POLL: Duration = Duration::from_millis(50);

impl JobEngine {
    /// Takes jobs from the cluster's queue while this node has room for them.
    pub(super) async fn claim_loop(self, shared: Arc<dyn SharedJobs>) {
        let slots = self.inner.config.cluster_slots;
        if slots == 0 {
            return;
        }
        loop {
            while self.held_here() >= slots {
                tokio::select! {
                    _ = self.inner.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(ROOM_POLL) => {}
                }
            }
            let claim = tokio::select! {
                _ = self.inner.shutdown.cancelled() => return,
                claim = shared.claim() => claim,
            };
            let Some(claim) = claim else { return };
            self.take_claim(claim, &shared);
        }
    }

    /// Jobs this node runs or is to run.
    fn held_here(&self) -> usize {
        let state = self.lock();
        state.running.len() + state.schedule.waiting()
    }

    /// Reads a claimed job into this node's working copy and schedules it from its checkpoint.
    fn take_claim(&self, claim: Claim, shared: &Arc<dyn SharedJobs>) {
        let mut job: Job = match serde_json::from_slice(&claim.record) {
            Ok(job) => job,
            Err(error) => {
                tracing::error!(job = %claim.id, %error, "unreadable job record in the cluster's store: not run");
                let shared = shared.clone();
                self.inner
                    .tracker
                    .spawn(async move { shared.release(claim.id).await });
                return;
            }
        };
        let mut writes = vec![JobWrite::Job {
            id: job.id.clone(),
            record: claim.record,
        }];
        if let Some(plan) = claim.plan {
            match serde_json::from_slice::<Vec<ChunkPlan>>(&plan) {
                Ok(chunks) => {
                    job.chunks = Arc::new(chunks);
                    writes.push(JobWrite::Plan {
                        id: job.id.clone(),
                        plan,
                    });
                }
                Err(error) => {
                    tracing::error!(job = %job.id, %error, "unreadable plan: the job will be planned again")
                }
            }
        }
        if !job.chunks.is_empty() {
            // The checkpoint, as a restart reads it from sled (`table::restore`).
            job.chunks_done = (claim.chunks.len() as u64).min(job.chunks.len() as u64);
            let done = job.chunks_done as usize;
            job.progress.processed = job.chunks.iter().take(done).map(|c| c.units).sum();
            job.progress.chunks_completed = job.chunks_done;
            if job.progress.total > 0 {
                job.progress.percentage =
                    (job.progress.processed as f64 * 1000.0 / job.progress.total as f64).round()
                        / 10.0;
            }
            // The merge reads earlier chunks' results from the working copy.
            writes.extend(
                claim
                    .chunks
                    .into_iter()
                    .map(|(index, result)| JobWrite::Chunk {
                        id: job.id.clone(),
                        index,
                        result,
                    }),
            );
        }
        job.seq = job.seq.max(claim.last_seq);
        if job.status == JobStatus::Processing {
            // Its last node stopped running it: resume from the checkpoint.
            job.status = JobStatus::Pending;
        }
        let id = job.id.clone();
        {
            let mut state = self.lock();
            if job.status == JobStatus::Pending {
                state.schedule.add(&id, job.priority, job.run_at, now_ms());
            }
            if !job.status.is_finished() {
                state.opened(&job.owner);
            }
            if let Some(key) = &job.idempotency_key {
                state
                    .idempotency
                    .insert(idempotency_key(&job.owner, key), id.clone());
            }
            state.jobs.insert(job);
            self.inner.writer.queue(Commit {
                writes,
                local_only: true,
                ..Commit::default()
            });
        }
        self.inner.wake.notify_one();
        let engine = self.clone();
        let (lost, ended) = (claim.lost, claim.ended);
        self.inner.tracker.spawn(async move {
            tokio::select! {
                _ = ended.cancelled() => {
                    if lost.is_cancelled() {
                        engine.lose(&id);
                    }
                }
                _ = engine.inner.shutdown.cancelled() => {}
            }
        });
    }

    /// Another node holds job `id` now (or this node could not renew its lease): stop it
    /// here and forget it, without a word (its new node speaks for it).
    fn lose(&self, id: &str) {
        let mut state = self.lock();
        if let Some(running) = state.running.remove(id) {
            running.cancel.cancel();
        }
        self.forget_here(&mut state, id);
        drop(state);
        self.inner.wake.notify_one();
    }

    /// Forgets job `id` in this node's working copy (another node speaks for it now): out of
    /// the schedule, no longer one of its owner's open jobs here, its local records removed.
    fn forget_here(&self, state: &mut State, id: &str) {
        let known = state
            .jobs
            .get(id)
            .map(|job| (job.priority, job.run_at, job.owner.clone(), job.status));
        if let Some((priority, run_at, owner, status)) = known {
            state.schedule.remove(id, priority, run_at);
            if !status.is_finished() {
                state.closed(&owner);
            }
        }
        state.jobs.remove(id);
        self.inner.writer.queue(Commit {
            writes: vec![JobWrite::Remove { id: id.to_owned() }],
            local_only: true,
            ..Commit::default()
        });
    }

    /// A clean shutdown on a cluster member: the jobs this node holds are stopped here,
    /// their last writes stored, and then handed to the other nodes, which go on from their
    /// checkpoints at once instead of after their leases run out (a rolling restart).
    pub async fn hand_back_to_cluster(&self) {
        let Some(shared) = self.inner.shared.clone() else {
            return;
        };
        for id in shared.stop_held() {
            // Here, not only from the lease's watcher: a chunk still running must be
            // stopped before the writes are waited for.
            self.lose(&id);
        }
        if self.written().await.is_ok() {
            shared.give_back().await;
        }
    }

    /// Job `id` finished here: once its last state is stored, its lease goes and it no
    /// longer counts toward its owner's limit.
    pub(super) fn hand_back(&self, id: &str) {
        let Some(shared) = self.inner.shared.clone() else {
            return;
        };
        let owner = self.lock().jobs.owner(id).map(str::to_owned);
        let engine = self.clone();
        let id = id.to_owned();
        self.inner.tracker.spawn(async move {
            if engine.written().await.is_ok() {
                shared.release(id.clone()).await;
                if let Some(owner) = owner {
                    uncounted(shared.as_ref(), owner, id).await;
                }
            }
        });
    }

    /// Job `id` of `owner` no longer counts toward the cluster's per-user limit.
    pub(super) fn uncount(&self, owner: &str, id: &str) {
        let Some(shared) = self.inner.shared.clone() else {
            return;
        };
        let (owner, id) = (owner.to_owned(), id.to_owned());
        self.inner
            .tracker
            .spawn(async move { uncounted(shared.as_ref(), owner, id).await });
    }

    /// Offers job `id`, stored, to the cluster's nodes, then forgets it here: the node that
    /// takes it speaks for it. An error when the offer was not taken (the job then waits in
    /// the store, unoffered).
    pub(super) async fn offer(&self, id: &str) -> Result<(), String> {
        let Some(shared) = self.inner.shared.clone() else {
            return Ok(());
        };
        shared.offer(id.to_owned()).await?;
        let mut state = self.lock();
        self.forget_here(&mut state, id);
        Ok(())
    }

    /// Whether jobs are the cluster's, offered to every node, rather than this node's.
    pub(super) fn is_shared(&self) -> bool {
        self.inner.shared.is_some()
    }
}

/// Job `id` of `owner` no longer counts toward the cluster's per-user limit; a failure is
/// logged (the count heals when the owner next reaches the limit: `cluster/jobs/quota.rs`).
async fn uncounted(shared: &dyn SharedJobs, owner: String, id: String) {
    if let Err(error) = shared.count_closed(owner, id.clone()).await {
        tracing::warn!(job = %id, %error, "cluster: a finished job still counts toward its owner's limit");
    }
}
