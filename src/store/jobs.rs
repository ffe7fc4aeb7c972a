//! The job engine's trees: jobs, chunk results (the checkpoint), the bounded per-job event log
//! and idempotency keys. Values are opaque bytes (JSON written by the engine); what the store
//! guarantees is that a chunk's result, the job's new state and the event reporting it are
//! written in one transaction, fenced by the job's attempt id.

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use super::{Store, StoreError};

/// Events kept per job for `since-seq` replay.
pub const EVENT_LOG_LIMIT: u64 = 1_000;

/// The job trees of a store.
#[derive(Debug, Clone)]
pub struct JobStore {
    store: Store,
    jobs: sled::Tree,
    attempts: sled::Tree,
    chunks: sled::Tree,
    events: sled::Tree,
    idempotency: sled::Tree,
    plans: sled::Tree,
}

/// A chunk commit lost its fence: the job's attempt changed (cancelled, retried elsewhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the job's attempt changed; this worker's result is discarded")]
pub struct Fenced;

/// Why a chunk commit did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The fence did not match.
    #[error(transparent)]
    Fenced(#[from] Fenced),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn key2(id: &str, n: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(id.len() + 9);
    key.extend_from_slice(id.as_bytes());
    key.push(0);
    key.extend_from_slice(&n.to_be_bytes());
    key
}

fn prefix(id: &str) -> Vec<u8> {
    let mut key = id.as_bytes().to_vec();
    key.push(0);
    key
}

impl JobStore {
    /// Opens the job trees of `store`.
    pub fn open(store: &Store) -> Result<JobStore, StoreError> {
        let db = &store.inner.db;
        Ok(JobStore {
            store: store.clone(),
            jobs: db.open_tree("jobs")?,
            attempts: db.open_tree("job-attempts")?,
            chunks: db.open_tree("job-chunks")?,
            events: db.open_tree("job-events")?,
            idempotency: db.open_tree("job-idempotency")?,
            plans: db.open_tree("job-plans")?,
        })
    }

    /// The underlying store (for commits).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Writes a job's state with an event; with `attempt`, also sets its fence; with
    /// `idempotency`, records the key. One transaction.
    pub fn put_job(
        &self,
        id: &str,
        job: &[u8],
        attempt: Option<u64>,
        event: Option<(u64, &[u8])>,
        idempotency: Option<&str>,
    ) -> Result<(), StoreError> {
        let result = (&self.jobs, &self.attempts, &self.events, &self.idempotency).transaction(
            |(jobs, attempts, events, keys)| {
                jobs.insert(id.as_bytes(), job)?;
                if let Some(attempt) = attempt {
                    attempts.insert(id.as_bytes(), &attempt.to_be_bytes())?;
                }
                if let Some((seq, event)) = event {
                    events.insert(key2(id, seq), event)?;
                    if seq > EVENT_LOG_LIMIT {
                        events.remove(key2(id, seq - EVENT_LOG_LIMIT))?;
                    }
                }
                if let Some(key) = idempotency {
                    keys.insert(key.as_bytes(), id.as_bytes())?;
                }
                Ok::<_, ConflictableTransactionError<()>>(())
            },
        );
        flatten(result).map_err(|_: Option<()>| {
            StoreError::Sled(sled::Error::ReportableBug(
                "unfenced transaction aborted".into(),
            ))
        })?;
        self.store.wrote();
        Ok(())
    }

    /// Commits a finished chunk, if the job's attempt is still `attempt`: its result (the
    /// checkpoint: the job's progress and sequence number are recovered from the chunk results
    /// and the event log, so the job record is not rewritten per chunk) and its events.
    pub fn commit_chunk(
        &self,
        id: &str,
        attempt: u64,
        index: u64,
        result: &[u8],
        events_logged: &[(u64, &[u8])],
    ) -> Result<(), CommitError> {
        let outcome = (&self.attempts, &self.chunks, &self.events).transaction(
            |(attempts, chunks, events)| {
                let current = attempts.get(id.as_bytes())?;
                if current.as_deref() != Some(&attempt.to_be_bytes()[..]) {
                    return Err(ConflictableTransactionError::Abort(Fenced));
                }
                chunks.insert(key2(id, index), result)?;
                for (seq, event) in events_logged {
                    events.insert(key2(id, *seq), *event)?;
                    if *seq > EVENT_LOG_LIMIT {
                        events.remove(key2(id, seq - EVENT_LOG_LIMIT))?;
                    }
                }
                Ok(())
            },
        );
        match flatten(outcome) {
            Ok(()) => {
                self.store.wrote();
                Ok(())
            }
            Err(Some(fenced)) => Err(fenced.into()),
            Err(None) => Err(CommitError::Store(StoreError::Sled(
                sled::Error::ReportableBug("chunk transaction failed".into()),
            ))),
        }
    }

    /// Stores a job's chunk plan (written once, when the job first starts).
    pub fn put_plan(&self, id: &str, plan: &[u8]) -> Result<(), StoreError> {
        self.plans.insert(id.as_bytes(), plan)?;
        self.store.wrote();
        Ok(())
    }

    /// A job's chunk plan.
    pub fn plan(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.plans.get(id.as_bytes())?.map(|v| v.to_vec()))
    }

    /// Every job, in id order.
    pub fn jobs(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        self.jobs
            .iter()
            .values()
            .map(|v| v.map(|v| v.to_vec()).map_err(StoreError::from))
            .collect()
    }

    /// The stored chunk results of a job, by chunk index.
    pub fn chunk_results(&self, id: &str) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let p = prefix(id);
        let mut out = Vec::new();
        for entry in self.chunks.scan_prefix(&p) {
            let (key, value) = entry?;
            let index = key
                .get(p.len()..)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .ok_or(super::CorruptRecord("chunk key"))?;
            out.push((index, value.to_vec()));
        }
        Ok(out)
    }

    /// How many chunk results a job has stored.
    pub fn chunk_count(&self, id: &str) -> Result<u64, StoreError> {
        let mut n = 0;
        for key in self.chunks.scan_prefix(prefix(id)).keys() {
            key?;
            n += 1;
        }
        Ok(n)
    }

    /// The highest logged event sequence number of a job (0 when none).
    pub fn last_seq(&self, id: &str) -> Result<u64, StoreError> {
        let last = self.events.range(prefix(id)..prefix_end(id)).next_back();
        match last {
            Some(entry) => {
                let (key, _) = entry?;
                Ok(key
                    .len()
                    .checked_sub(8)
                    .and_then(|at| <[u8; 8]>::try_from(&key[at..]).ok())
                    .map_or(0, u64::from_be_bytes))
            }
            None => Ok(0),
        }
    }

    /// The logged events of a job with a sequence number above `after`, in order.
    pub fn events_after(&self, id: &str, after: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        self.events
            .range(key2(id, after.saturating_add(1))..prefix_end(id))
            .values()
            .map(|v| v.map(|v| v.to_vec()).map_err(StoreError::from))
            .collect()
    }

    /// The job an idempotency key points to.
    pub fn idempotent(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .idempotency
            .get(key.as_bytes())?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Removes a job with its chunks, events and (given) idempotency key.
    pub fn remove_job(&self, id: &str, idempotency: Option<&str>) -> Result<(), StoreError> {
        self.jobs.remove(id.as_bytes())?;
        self.attempts.remove(id.as_bytes())?;
        self.plans.remove(id.as_bytes())?;
        for tree in [&self.chunks, &self.events] {
            for key in tree.scan_prefix(prefix(id)).keys() {
                tree.remove(key?)?;
            }
        }
        if let Some(key) = idempotency {
            self.idempotency.remove(key.as_bytes())?;
        }
        self.store.wrote();
        Ok(())
    }
}

fn prefix_end(id: &str) -> Vec<u8> {
    let mut key = id.as_bytes().to_vec();
    key.push(1);
    key
}

fn flatten<E>(result: Result<(), TransactionError<E>>) -> Result<(), Option<E>> {
    match result {
        Ok(()) => Ok(()),
        Err(TransactionError::Abort(e)) => Err(Some(e)),
        Err(TransactionError::Storage(error)) => {
            tracing::error!(%error, "store transaction failed");
            Err(None)
        }
    }
}
