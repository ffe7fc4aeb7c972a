//! Finished jobs leave memory as soon as their last record is in the store, and the kept
//! counts (`job-keep-completed`, `job-keep-failed`) hold as jobs finish.
//!
//! Before, a finished job stayed whole in memory, result included, until the retention pass
//! that runs once a minute: a server finishing 20 jobs a second held a minute of them beyond
//! its kept counts, and an extraction's result (every page's text) stayed resident while the
//! next extraction ran, outside its memory budget. Now the writer tells this loop when a
//! finished job's records are all applied ([`super::writer::Writer::watch`]); the job is then
//! held compactly (`finished.rs`), and the oldest finished jobs beyond the kept counts are
//! removed, as the retention pass would remove them, with a tombstone.

use std::path::PathBuf;

use super::finished::Kept;
use super::{JobEngine, State};

impl JobEngine {
    /// Compacts the finished jobs the writer reports settled, then enforces the kept counts,
    /// until shutdown.
    pub(super) async fn settle_loop(self) {
        let unapplied = self.inner.writer.unapplied().clone();
        loop {
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => return,
                _ = unapplied.settled() => {}
            }
            let settled = unapplied.take_settled();
            if settled.is_empty() {
                continue;
            }
            let removed = {
                let mut state = self.lock();
                for id in &settled {
                    // A job whose worker has not let it go yet is compacted when it does
                    // (`dispatch.rs`, `release`); one changed since is watched again.
                    self.compact(&mut state, id);
                }
                self.enforce_kept(&mut state)
            };
            super::maintenance::remove_result_dirs(removed).await;
        }
    }

    /// Removes the longest-finished jobs held compactly beyond the kept counts; gives back
    /// their result directories, to remove. Call under the state lock.
    fn enforce_kept(&self, state: &mut State) -> Vec<(PathBuf, String)> {
        let mut removed = Vec::new();
        for (kept, limit) in [
            (Kept::Completed, self.inner.config.keep_completed),
            (Kept::Failed, self.inner.config.keep_failed),
        ] {
            let excess = state.jobs.finished_count(kept).saturating_sub(limit);
            if excess == 0 {
                continue;
            }
            let oldest: Vec<String> = state
                .jobs
                .oldest_finished(kept)
                .map(|(_, key)| key.to_id())
                .filter(|id| !awaited_by_parent(state, id))
                .take(excess)
                .collect();
            for id in oldest {
                if self.forget(state, &id, true) {
                    removed.push((self.inner.config.results_dir.join(&id), id));
                }
            }
        }
        removed
    }
}

/// Whether finished job `id` is a child whose parent has not finished: its parent's merge
/// may still ask for its outcome (`children.rs`), so it is kept until then. Only children are
/// read back from the store for this.
fn awaited_by_parent(state: &State, id: &str) -> bool {
    if !state.jobs.is_child(id) {
        return false;
    }
    let parent = state.jobs.get(id).and_then(|job| job.parent.clone());
    parent.is_some_and(|parent| {
        state
            .jobs
            .status(&parent)
            .is_some_and(|status| !status.is_finished())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use stompede_protocol::Headers;

    use crate::jobs::finished::Kept;
    use crate::jobs::JobStatus;

    /// Finished jobs leave memory for their stored records, and the kept count holds as they
    /// finish: the once-a-minute retention pass is not needed for either (the test does not
    /// depend on it having run or not).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn finished_jobs_leave_memory_and_the_kept_count_holds_as_they_finish() {
        let dir = tempfile::tempdir().unwrap();
        let server = crate::jobs::demo_server_with(dir.path(), |config| {
            config.job_keep_completed = 3;
        })
        .await;
        let engine = server.jobs().unwrap().clone();
        let mut headers = Headers::new();
        headers.push("job-type", "demo");
        let mut ids = Vec::new();
        for _ in 0..6 {
            let job = engine
                .submit("ann", &headers, br#"{"chunks":2,"mibPerChunk":0}"#)
                .await
                .unwrap();
            ids.push(job.id);
        }
        // Bounded wait (20 s): every job finished and settled, the three oldest removed.
        let settled = |engine: &crate::jobs::JobEngine| {
            let state = engine.lock();
            let whole_finished = state
                .jobs
                .whole()
                .filter(|j| j.status.is_finished())
                .count();
            let unfinished = state.unfinished.values().sum::<usize>();
            (
                unfinished,
                whole_finished,
                state.jobs.finished_count(Kept::Completed),
            )
        };
        for _ in 0..2_000 {
            if settled(&engine) == (0, 0, 3) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            settled(&engine),
            (0, 0, 3),
            "(unfinished, whole finished, compact completed)"
        );
        // The oldest three are gone, with a tombstone; the newest three are read back whole,
        // result included, from the store.
        for id in &ids[..3] {
            assert!(engine.job(id).is_none(), "{id} kept");
            assert_eq!(engine.expired_owner(id).as_deref(), Some("ann"));
        }
        for id in &ids[3..] {
            let job = engine.job(id).unwrap();
            assert_eq!(job.status, JobStatus::Completed);
            assert!(job.result.is_some(), "{id} without its result");
            assert!(engine.may_access("ann", id));
        }
        let listed: Vec<String> = engine.jobs(Some("ann")).into_iter().map(|j| j.id).collect();
        assert_eq!(listed, ids[3..].to_vec());
        let stats = engine.stats();
        assert_eq!(stats.by_status.get("completed"), Some(&3));
        assert_eq!(stats.success_rate, 1.0);
        // A compact finished job deleted by its owner: gone, with no tombstone.
        engine.delete("ann", &ids[3]).await.unwrap();
        assert!(engine.job(&ids[3]).is_none());
        assert_eq!(
            engine.expired_owner(&ids[3]),
            None,
            "a deletion leaves no tombstone"
        );
        server.shutdown().await;
    }
}
