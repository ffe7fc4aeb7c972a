//! Finished jobs as memory keeps them once their last record is in the store: what the
//! listings' filters, the statistics, the access checks and the kept counts ask of them, and
//! nothing of their parameters, progress or result, which are read back from the store when
//! someone asks for the job (`table.rs`).
//!
//! A finished job's result is the largest thing about it (an extraction's carries every page's
//! text), and nobody reads it in the engine once its `JOB_COMPLETED` is out; a server keeping
//! 1,000 completed jobs kept 1,000 results in memory. Here a finished job costs its index
//! entry: 32 bytes, its key twice, and the maps' own overhead.

use std::collections::{BTreeSet, HashMap};

use super::model::JobStatus;
use super::names::Name;
use super::table::JobKey;

/// What memory keeps of a finished job whose record is in the store.
#[derive(Debug, Clone, Copy)]
pub(super) struct Finished {
    /// Its owner.
    pub owner: Name,
    /// Its type.
    pub job_type: Name,
    /// Completed, failed or cancelled.
    pub status: JobStatus,
    /// Submitted with an idempotency key: the key is read back from the record when the job is
    /// forgotten, to free it (keys are rare; a flag costs no memory for the others).
    pub keyed: bool,
    /// Started by another job, whose merge may still ask for its outcome.
    pub child: bool,
    /// First start (ms since the epoch), 0 when it never started.
    pub started_at: u64,
    /// End (ms since the epoch).
    pub completed_at: u64,
}

/// Which kept count a finished job falls under (`job-keep-completed`, `job-keep-failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kept {
    /// Completed jobs.
    Completed,
    /// Failed and cancelled jobs.
    Failed,
}

impl Kept {
    /// The count a job of `status` falls under.
    pub fn of(status: JobStatus) -> Kept {
        if status == JobStatus::Completed {
            Kept::Completed
        } else {
            Kept::Failed
        }
    }
}

/// The finished jobs held compactly, by key and by end time.
#[derive(Debug, Default)]
pub(super) struct FinishedIndex {
    jobs: HashMap<JobKey, Finished>,
    /// By end time, oldest first, so that the kept counts drop the oldest without a sort.
    completed: BTreeSet<(u64, JobKey)>,
    failed: BTreeSet<(u64, JobKey)>,
}

impl FinishedIndex {
    fn ended(&mut self, kept: Kept) -> &mut BTreeSet<(u64, JobKey)> {
        match kept {
            Kept::Completed => &mut self.completed,
            Kept::Failed => &mut self.failed,
        }
    }

    /// Adds (or replaces) the entry of `key`.
    pub fn insert(&mut self, key: JobKey, finished: Finished) {
        self.remove(&key);
        self.ended(Kept::of(finished.status))
            .insert((finished.completed_at, key.clone()));
        self.jobs.insert(key, finished);
    }

    /// Removes the entry of `key`, giving it back.
    pub fn remove(&mut self, key: &JobKey) -> Option<Finished> {
        let finished = self.jobs.remove(key)?;
        // The set's entry is moved out and dropped, so its key's memory goes with it.
        let entry = (finished.completed_at, key.clone());
        self.ended(Kept::of(finished.status)).remove(&entry);
        Some(finished)
    }

    /// The entry of `key`.
    pub fn get(&self, key: &JobKey) -> Option<&Finished> {
        self.jobs.get(key)
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Entries held under `kept`.
    pub fn count(&self, kept: Kept) -> usize {
        match kept {
            Kept::Completed => self.completed.len(),
            Kept::Failed => self.failed.len(),
        }
    }

    /// The keys under `kept`, the longest finished first.
    pub fn oldest(&self, kept: Kept) -> impl Iterator<Item = (u64, &JobKey)> {
        let set = match kept {
            Kept::Completed => &self.completed,
            Kept::Failed => &self.failed,
        };
        set.iter().map(|(at, key)| (*at, key))
    }

    /// Every entry.
    pub fn iter(&self) -> impl Iterator<Item = (&JobKey, &Finished)> {
        self.jobs.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::names::Names;

    fn entry(names: &mut Names, status: JobStatus, completed_at: u64) -> Finished {
        Finished {
            owner: names.intern("alice"),
            job_type: names.intern("demo"),
            status,
            keyed: false,
            child: false,
            started_at: 2,
            completed_at,
        }
    }

    #[test]
    fn entries_are_counted_under_their_kept_count_and_listed_oldest_first() {
        let mut names = Names::default();
        let mut index = FinishedIndex::default();
        let keys: Vec<JobKey> = (0..4)
            .map(|_| JobKey::of(&crate::jobs::new_id().unwrap()))
            .collect();
        index.insert(keys[0].clone(), entry(&mut names, JobStatus::Completed, 30));
        index.insert(keys[1].clone(), entry(&mut names, JobStatus::Completed, 10));
        index.insert(keys[2].clone(), entry(&mut names, JobStatus::Failed, 20));
        index.insert(keys[3].clone(), entry(&mut names, JobStatus::Cancelled, 5));
        assert_eq!(index.len(), 4);
        assert_eq!(index.count(Kept::Completed), 2);
        assert_eq!(index.count(Kept::Failed), 2);
        let oldest: Vec<&JobKey> = index.oldest(Kept::Completed).map(|(_, k)| k).collect();
        assert_eq!(oldest, vec![&keys[1], &keys[0]]);
        // Replaced under another count: moved, not counted twice.
        index.insert(keys[1].clone(), entry(&mut names, JobStatus::Failed, 40));
        assert_eq!(index.count(Kept::Completed), 1);
        assert_eq!(index.count(Kept::Failed), 3);
        assert!(index.remove(&keys[3]).is_some());
        assert!(index.remove(&keys[3]).is_none());
        assert_eq!((index.len(), index.count(Kept::Failed)), (3, 2));
        assert_eq!(std::mem::size_of::<Finished>(), 32);
    }
}
