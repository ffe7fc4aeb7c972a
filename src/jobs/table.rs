//! The jobs in memory: whole while anything may change them, and only a small index entry
//! while they wait and once they have finished.
//!
//! A waiting job (pending, not running) is most of what a busy engine holds: 100,000 delayed
//! jobs are 100,000 records that nobody reads until they run. Each one's record is in the store
//! already (it was committed before its RECEIPT), so memory keeps only what the scheduler, the
//! quotas, the deadline and the statistics ask of it: owner, type, priority and submission time (the due time is in the schedule), with the owner and type interned and the id packed into 16 bytes. The
//! record is read back from the store when the job is dispatched, changed or asked for, exactly
//! as a restart reads it (`restore`).
//!
//! A finished job is held the same way (`finished.rs`): its result, often the largest thing
//! about it, is read back from the store by whoever asks for the job (a snapshot, the REST
//! API, a result download, a parent's merge), not kept in memory until retention.
//!
//! A job is compacted only once its latest record is applied to the store (the writer says
//! so, [`super::writer::Writer::applied`]); from then on every change goes through
//! [`JobTable::get_mut`], which makes it whole again first, so memory and store never disagree.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use super::finished::{Finished, FinishedIndex, Kept};
use super::model::{Job, JobStatus};
use super::names::{Name, Names};
use crate::store::jobs::JobStore;
use crate::store::StoreError;

/// Crockford's base 32, as [`super::model::new_id`] writes ids.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A job id as the indexes hold it: a ULID's 128 bits (16 bytes, no allocation), or, for an id
/// of another shape (none is made by this engine, but a store may hold one), the text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum JobKey {
    /// The 128 bits of a ULID written in upper-case Crockford base 32 (26 characters).
    /// Bytes rather than a `u128` so that the key is aligned to 8, not 16.
    Ulid([u8; 16]),
    /// Any other id.
    Other(Box<str>),
}

impl JobKey {
    /// The key of `id`; `JobKey::Ulid` only when it gives back exactly `id`.
    pub fn of(id: &str) -> JobKey {
        Self::ulid(id)
            .map(|value| JobKey::Ulid(value.to_be_bytes()))
            .unwrap_or_else(|| JobKey::Other(id.into()))
    }

    fn ulid(id: &str) -> Option<u128> {
        let bytes = id.as_bytes();
        // 26 digits of 5 bits are 130 bits: the first digit carries 3, so it is at most 7.
        if bytes.len() != 26 || bytes[0] > b'7' {
            return None;
        }
        bytes.iter().try_fold(0u128, |value, &c| {
            let digit = ALPHABET.iter().position(|&a| a == c)?;
            Some((value << 5) | digit as u128)
        })
    }

    /// The id as text.
    pub fn to_id(&self) -> String {
        match self {
            JobKey::Ulid(bytes) => {
                let value = u128::from_be_bytes(*bytes);
                (0..26)
                    .rev()
                    .map(|i| ALPHABET[((value >> (i * 5)) & 31) as usize] as char)
                    .collect()
            }
            JobKey::Other(id) => id.to_string(),
        }
    }

    /// Whether a job under this key may be held compactly (its id is rebuilt from the key).
    fn is_packed(&self) -> bool {
        matches!(self, JobKey::Ulid(_))
    }
}

/// What memory keeps of a waiting job whose record is in the store (24 bytes; its due time
/// is in the schedule).
#[derive(Debug, Clone, Copy)]
struct Waiting {
    owner: Name,
    job_type: Name,
    priority: i64,
    created_at: u64,
}

/// A compact job as the engine's sweeps see it (status `pending`).
#[derive(Debug, Clone)]
pub(super) struct WaitingView<'a> {
    /// The job's key (its id is [`JobKey::to_id`]: made only for the jobs a sweep picks).
    pub key: &'a JobKey,
    /// Its type.
    pub job_type: &'a str,
    /// Its submission time (ms since the epoch).
    pub created_at: u64,
}

/// Every job the engine knows, by id.
#[derive(Debug, Default)]
pub(super) struct JobTable {
    /// Where compact jobs are read back from; without one (unit tests), nothing is compacted.
    store: Option<JobStore>,
    whole: HashMap<String, Job>,
    waiting: HashMap<JobKey, Waiting>,
    finished: FinishedIndex,
    names: Names,
}

/// A finished job held compactly, as the engine's sweeps see it.
#[derive(Debug, Clone)]
pub(super) struct FinishedView<'a> {
    /// The job's key.
    pub key: &'a JobKey,
    /// Its type.
    pub job_type: &'a str,
    /// Completed, failed or cancelled.
    pub status: JobStatus,
    /// First start (ms since the epoch).
    pub started_at: Option<u64>,
    /// End (ms since the epoch).
    pub completed_at: u64,
}

/// Where a job is: in memory (a copy given), or only in the store.
#[derive(Debug)]
pub(super) enum Lookup {
    /// Whole in memory (boxed: a job is over 600 bytes, the other case one pointer).
    Whole(Box<Job>),
    /// Held compactly: its record is to be read from this store.
    Stored(JobStore),
}

impl JobTable {
    /// A table that compacts waiting jobs, reading them back from `store`.
    pub fn new(store: JobStore) -> JobTable {
        JobTable {
            store: Some(store),
            ..JobTable::default()
        }
    }

    /// Job `id`: borrowed when whole, read from the store when compact. A store that fails to
    /// give a compact job back is logged and the job reported missing.
    pub fn get(&self, id: &str) -> Option<Cow<'_, Job>> {
        if let Some(job) = self.whole.get(id) {
            return Some(Cow::Borrowed(job));
        }
        if !self.is_compact(&JobKey::of(id)) {
            return None;
        }
        self.read(id).map(Cow::Owned)
    }

    /// Job `id`: a copy when whole, or the store to read it from when compact, so that a
    /// caller can read a large record without holding up the engine.
    pub fn lookup(&self, id: &str) -> Option<Lookup> {
        if let Some(job) = self.whole.get(id) {
            return Some(Lookup::Whole(Box::new(job.clone())));
        }
        if !self.is_compact(&JobKey::of(id)) {
            return None;
        }
        self.store.clone().map(Lookup::Stored)
    }

    fn is_compact(&self, key: &JobKey) -> bool {
        self.waiting.contains_key(key) || self.finished.get(key).is_some()
    }

    /// Job `id`, whole from now on (read back from the store if it was compact).
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Job> {
        if !self.whole.contains_key(id) {
            let key = JobKey::of(id);
            if !self.is_compact(&key) {
                return None;
            }
            let job = self.read(id)?;
            self.waiting.remove(&key);
            self.finished.remove(&key);
            self.whole.insert(id.to_owned(), job);
        }
        self.whole.get_mut(id)
    }

    fn read(&self, id: &str) -> Option<Job> {
        let store = self.store.as_ref()?;
        match load(store, id) {
            Ok(Some(job)) => Some(job),
            Ok(None) => {
                tracing::error!(job = %id, "a compact job's record is missing from the store");
                None
            }
            Err(error) => {
                tracing::error!(job = %id, %error, "a compact job could not be read back");
                None
            }
        }
    }

    /// Adds (or replaces) a whole job.
    pub fn insert(&mut self, job: Job) {
        let key = JobKey::of(&job.id);
        self.waiting.remove(&key);
        self.finished.remove(&key);
        self.whole.insert(job.id.clone(), job);
    }

    /// Forgets job `id`.
    pub fn remove(&mut self, id: &str) {
        if self.whole.remove(id).is_none() {
            let key = JobKey::of(id);
            self.waiting.remove(&key);
            self.finished.remove(&key);
        }
    }

    /// Jobs known.
    pub fn len(&self) -> usize {
        self.whole.len() + self.waiting.len() + self.finished.len()
    }

    /// Whether no job is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Job `id`'s status, without reading the store.
    pub fn status(&self, id: &str) -> Option<JobStatus> {
        if let Some(job) = self.whole.get(id) {
            return Some(job.status);
        }
        let key = JobKey::of(id);
        if self.waiting.contains_key(&key) {
            return Some(JobStatus::Pending);
        }
        self.finished.get(&key).map(|f| f.status)
    }

    /// Job `id`'s owner, without reading the store.
    pub fn owner(&self, id: &str) -> Option<&str> {
        if let Some(job) = self.whole.get(id) {
            return Some(&job.owner);
        }
        let key = JobKey::of(id);
        let owner = match self.waiting.get(&key) {
            Some(w) => w.owner,
            None => self.finished.get(&key)?.owner,
        };
        Some(self.names.get(owner))
    }

    /// Job `id`'s type, without reading the store.
    pub fn job_type(&self, id: &str) -> Option<&str> {
        if let Some(job) = self.whole.get(id) {
            return Some(&job.job_type);
        }
        let key = JobKey::of(id);
        let job_type = match self.waiting.get(&key) {
            Some(w) => w.job_type,
            None => self.finished.get(&key)?.job_type,
        };
        Some(self.names.get(job_type))
    }

    /// Whether finished job `id` was submitted with an idempotency key, without reading the
    /// store (false for a job that is not finished).
    pub fn keyed(&self, id: &str) -> bool {
        match self.whole.get(id) {
            Some(job) => job.status.is_finished() && job.idempotency_key.is_some(),
            None => self.finished.get(&JobKey::of(id)).is_some_and(|f| f.keyed),
        }
    }

    /// Whether finished job `id` was started by another job, without reading the store.
    pub fn is_child(&self, id: &str) -> bool {
        match self.whole.get(id) {
            Some(job) => job.parent.is_some(),
            None => self.finished.get(&JobKey::of(id)).is_some_and(|f| f.child),
        }
    }

    /// Job `id`'s priority, without reading the store (pending jobs; finished ones do not
    /// keep theirs).
    pub fn priority(&self, id: &str) -> Option<i64> {
        match self.whole.get(id) {
            Some(job) => Some(job.priority),
            None => self.waiting.get(&JobKey::of(id)).map(|w| w.priority),
        }
    }

    /// The whole jobs (every job that is not waiting compactly).
    pub fn whole(&self) -> impl Iterator<Item = &Job> {
        self.whole.values()
    }

    /// The compact (pending) jobs.
    pub fn waiting(&self) -> impl Iterator<Item = WaitingView<'_>> {
        self.waiting.iter().map(|(key, w)| WaitingView {
            key,
            job_type: self.names.get(w.job_type),
            created_at: w.created_at,
        })
    }

    /// The finished jobs held compactly.
    pub fn finished(&self) -> impl Iterator<Item = FinishedView<'_>> {
        self.finished.iter().map(|(key, f)| FinishedView {
            key,
            job_type: self.names.get(f.job_type),
            status: f.status,
            started_at: (f.started_at > 0).then_some(f.started_at),
            completed_at: f.completed_at,
        })
    }

    /// Finished jobs held compactly under `kept`.
    pub fn finished_count(&self, kept: Kept) -> usize {
        self.finished.count(kept)
    }

    /// The finished jobs held compactly under `kept`, the longest finished first.
    pub fn oldest_finished(&self, kept: Kept) -> impl Iterator<Item = (u64, &JobKey)> {
        self.finished.oldest(kept)
    }

    /// The compact jobs (waiting or finished) of `owner` (all when `None`) and of `job_type`
    /// (any when `None`).
    pub fn compact_ids(&self, owner: Option<&str>, job_type: Option<&str>) -> Vec<String> {
        let owner = match owner.map(|o| self.names.find(o)) {
            Some(None) => return Vec::new(),
            Some(found) => found,
            None => None,
        };
        let job_type = match job_type.map(|t| self.names.find(t)) {
            Some(None) => return Vec::new(),
            Some(found) => found,
            None => None,
        };
        let waiting = self
            .waiting
            .iter()
            .map(|(key, w)| (key, w.owner, w.job_type));
        let finished = self
            .finished
            .iter()
            .map(|(key, f)| (key, f.owner, f.job_type));
        waiting
            .chain(finished)
            .filter(|(_, o, _)| owner.is_none_or(|owner| *o == owner))
            .filter(|(_, _, t)| job_type.is_none_or(|job_type| *t == job_type))
            .map(|(key, _, _)| key.to_id())
            .collect()
    }

    /// The store compact jobs are read from.
    pub fn store(&self) -> Option<&JobStore> {
        self.store.as_ref()
    }

    /// Keeps only the index entry of job `id` if it is pending and whole; the caller vouches
    /// that it is not running and that its latest record is applied to the store.
    pub fn compact(&mut self, id: &str) -> bool {
        let key = JobKey::of(id);
        let fits = self.store.is_some()
            && key.is_packed()
            && self
                .whole
                .get(id)
                .is_some_and(|job| job.status == JobStatus::Pending);
        if !fits {
            return false;
        }
        let Some(job) = self.whole.remove(id) else {
            return false;
        };
        let waiting = Waiting {
            owner: self.names.intern(&job.owner),
            job_type: self.names.intern(&job.job_type),
            priority: job.priority,
            created_at: job.created_at,
        };
        self.waiting.insert(key, waiting);
        true
    }

    /// Keeps only the index entry of job `id` if it is finished and whole; the caller vouches
    /// that no worker runs it any more and that its latest record is applied to the store.
    pub fn compact_finished(&mut self, id: &str) -> bool {
        let fits = self.store.is_some()
            && self
                .whole
                .get(id)
                .is_some_and(|job| job.status.is_finished());
        if !fits {
            return false;
        }
        let Some(job) = self.whole.remove(id) else {
            return false;
        };
        let finished = Finished {
            owner: self.names.intern(&job.owner),
            job_type: self.names.intern(&job.job_type),
            status: job.status,
            keyed: job.idempotency_key.is_some(),
            child: job.parent.is_some(),
            started_at: job.started_at.unwrap_or(0),
            completed_at: job.completed_at.unwrap_or(0),
        };
        self.finished.insert(JobKey::of(id), finished);
        true
    }
}

/// Job `id` as stored, made whole the way a restart makes it (see [`restore`]).
pub(super) fn load(store: &JobStore, id: &str) -> Result<Option<Job>, StoreError> {
    let Some(bytes) = store.job(id)? else {
        return Ok(None);
    };
    let mut job: Job =
        serde_json::from_slice(&bytes).map_err(|_| crate::store::CorruptRecord("job record"))?;
    restore(store, &mut job)?;
    Ok(Some(job))
}

/// Adds to a job read from the store what its record does not hold: an unfinished job's plan,
/// its checkpoint (the chunk results stored since), its last event number and its progress.
pub(super) fn restore(store: &JobStore, job: &mut Job) -> Result<(), StoreError> {
    if job.status.is_finished() {
        return Ok(());
    }
    if let Some(plan) = store.plan(&job.id)? {
        match serde_json::from_slice(&plan) {
            Ok(plan) => job.chunks = Arc::new(plan),
            Err(error) => {
                tracing::error!(job = %job.id, %error, "unreadable plan: the job will be planned again")
            }
        }
    }
    if !job.chunks.is_empty() {
        // Chunk commits do not rewrite the job record: the checkpoint is the stored chunk
        // results, and the last sequence number is in the event log.
        job.chunks_done = store.chunk_count(&job.id)?;
        job.seq = job.seq.max(store.last_seq(&job.id)?);
        let done = job.chunks_done as usize;
        job.progress.processed = job.chunks.iter().take(done).map(|c| c.units).sum();
        job.progress.chunks_completed = job.chunks_done;
        if job.progress.total > 0 {
            job.progress.percentage =
                (job.progress.processed as f64 * 1000.0 / job.progress.total as f64).round() / 10.0;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulid_keys_give_back_their_id_and_other_ids_are_kept_as_text() {
        for _ in 0..100 {
            let id = crate::jobs::new_id().unwrap();
            let key = JobKey::of(&id);
            assert!(key.is_packed(), "{id}");
            assert_eq!(key.to_id(), id);
        }
        // Lower case, too long, a first digit above 7, letters outside the alphabet.
        for id in [
            "01j0000000000000000000000a",
            "01J00000000000000000000000A",
            "81J0000000000000000000000A",
            "01J000000000000000000000UA",
            "job-1",
        ] {
            let key = JobKey::of(id);
            assert!(!key.is_packed(), "{id}");
            assert_eq!(key.to_id(), id);
        }
        assert_eq!(std::mem::size_of::<JobKey>(), 24);
        assert_eq!(std::mem::size_of::<Waiting>(), 24);
    }
}
