//! The job engine's records: jobs, chunk plans, chunk results (the checkpoint) and the bounded
//! per-job event log, all in one sled tree so that any set of them is written as one atomic
//! batch.
//!
//! sled makes a batch atomic by sealing its log buffer before and after it (two log writes
//! each), so the cost of a batch hardly depends on its size: the engine's writer task gathers
//! every change that is waiting into one [`JobStore::apply`]. Values are opaque bytes (JSON
//! written by the engine).
//!
//! Keys are a one-byte kind, then the job id (a ULID: never contains 0), then for chunks and
//! events `0` and a big-endian `u64`, so a job's chunks and its events are each one prefix
//! range. A chunk's number is its index. The event log is a ring of [`EVENT_LOG_LIMIT`] slots
//! (slot = `seq % limit`; the value starts with the `seq`), so logging an event overwrites the
//! oldest one instead of inserting one key and removing another.

use bytes::Bytes;

use super::{Store, StoreError};

/// Events kept per job for `since-seq` replay.
pub const EVENT_LOG_LIMIT: u64 = 1_000;

const JOB: u8 = b'j';
const PLAN: u8 = b'p';
const CHUNK: u8 = b'c';
const EVENT: u8 = b'e';
/// What is left of a job removed by retention: its owner and when, so that asking for it
/// answers "expired" rather than "no such job".
const GONE: u8 = b'g';

/// One change to the job records.
#[derive(Debug, Clone)]
pub enum JobWrite {
    /// A job's state (JSON).
    Job {
        /// The job id.
        id: String,
        /// The record.
        record: Vec<u8>,
    },
    /// A job's chunk plan, written once when the job first starts.
    Plan {
        /// The job id.
        id: String,
        /// The plan.
        plan: Vec<u8>,
    },
    /// A finished chunk's result.
    Chunk {
        /// The job id.
        id: String,
        /// The chunk index.
        index: u64,
        /// The result.
        result: Vec<u8>,
    },
    /// An event, logged for replay; it takes the place of the event [`EVENT_LOG_LIMIT`] before.
    Event {
        /// The job id.
        id: String,
        /// The event's sequence number.
        seq: u64,
        /// The event body.
        body: Bytes,
    },
    /// Everything of a job.
    Remove {
        /// The job id.
        id: String,
    },
    /// A removed job's tombstone (JSON).
    Tombstone {
        /// The job id.
        id: String,
        /// The tombstone.
        record: Vec<u8>,
    },
    /// A tombstone past its own time.
    ForgetTombstone {
        /// The job id.
        id: String,
    },
}

/// The job records of a store.
#[derive(Debug, Clone)]
pub struct JobStore {
    store: Store,
}

fn key(kind: u8, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(id.len() + 10);
    key.push(kind);
    key.extend_from_slice(id.as_bytes());
    key
}

/// The prefix of a job's chunks or events.
fn range_prefix(kind: u8, id: &str) -> Vec<u8> {
    let mut key = key(kind, id);
    key.push(0);
    key
}

fn numbered(kind: u8, id: &str, n: u64) -> Vec<u8> {
    let mut key = range_prefix(kind, id);
    key.extend_from_slice(&n.to_be_bytes());
    key
}

/// The number at the end of a chunk or event key.
fn number_of(key: &[u8]) -> Result<u64, StoreError> {
    key.len()
        .checked_sub(8)
        .and_then(|at| <[u8; 8]>::try_from(&key[at..]).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| super::CorruptRecord("job record key").into())
}

impl JobStore {
    /// Opens the job records of `store`.
    pub fn open(store: &Store) -> Result<JobStore, StoreError> {
        // The tree is looked up per operation: the store may reopen its `Db` after a disk
        // fault, and a tree kept here would pin the old one.
        store.trees()?;
        Ok(JobStore {
            store: store.clone(),
        })
    }

    /// The underlying store (for commits).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Writes `writes` as one atomic batch, in order. Not durable until
    /// [`Store::commit_since`] returns.
    pub fn apply(&self, writes: &[JobWrite]) -> Result<(), StoreError> {
        let trees = self.store.writable()?;
        let records = &trees.job_records;
        let mut batch = sled::Batch::default();
        for write in writes {
            match write {
                JobWrite::Job { id, record } => batch.insert(key(JOB, id), record.as_slice()),
                JobWrite::Plan { id, plan } => batch.insert(key(PLAN, id), plan.as_slice()),
                JobWrite::Chunk { id, index, result } => {
                    batch.insert(numbered(CHUNK, id, *index), result.as_slice())
                }
                JobWrite::Event { id, seq, body } => {
                    let mut value = Vec::with_capacity(8 + body.len());
                    value.extend_from_slice(&seq.to_be_bytes());
                    value.extend_from_slice(body);
                    batch.insert(numbered(EVENT, id, seq % EVENT_LOG_LIMIT), value);
                }
                JobWrite::Tombstone { id, record } => {
                    batch.insert(key(GONE, id), record.as_slice())
                }
                JobWrite::ForgetTombstone { id } => batch.remove(key(GONE, id)),
                JobWrite::Remove { id } => {
                    batch.remove(key(JOB, id));
                    batch.remove(key(PLAN, id));
                    for kind in [CHUNK, EVENT] {
                        for stored in records.scan_prefix(range_prefix(kind, id)).keys() {
                            batch.remove(stored?);
                        }
                    }
                }
            }
        }
        self.store.checked(records.apply_batch(batch))?;
        // Counted while the `Db` is held (see `Store::insert_message`).
        self.store.wrote();
        Ok(())
    }

    /// Removes every job's records, tombstones kept: on a cluster member that keeps its jobs
    /// in the shared store, this store is only a working copy, stale after a restart.
    pub fn clear_jobs(&self) -> Result<(), StoreError> {
        let trees = self.store.writable()?;
        let records = &trees.job_records;
        let mut batch = sled::Batch::default();
        for kind in [JOB, PLAN, CHUNK, EVENT] {
            for stored in records.scan_prefix([kind]).keys() {
                batch.remove(stored?);
            }
        }
        self.store.checked(records.apply_batch(batch))?;
        self.store.wrote();
        Ok(())
    }

    /// Every tombstone, in id order.
    pub fn tombstones(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.store
            .trees()?
            .job_records
            .scan_prefix([GONE])
            .map(|entry| {
                let (key, value) = entry?;
                let id = String::from_utf8_lossy(&key[1..]).into_owned();
                Ok((id, value.to_vec()))
            })
            .collect()
    }

    /// Every job record, in id order, one at a time: a restart with 100,000 jobs stored
    /// does not hold all their records at once (memory the allocator would keep).
    pub fn jobs(&self) -> Result<impl Iterator<Item = Result<Vec<u8>, StoreError>>, StoreError> {
        Ok(self
            .store
            .trees()?
            .job_records
            .scan_prefix([JOB])
            .values()
            .map(|v| v.map(|v| v.to_vec()).map_err(StoreError::from)))
    }

    /// A job's record.
    pub fn job(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .store
            .trees()?
            .job_records
            .get(key(JOB, id))?
            .map(|v| v.to_vec()))
    }

    /// A job's chunk plan.
    pub fn plan(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .store
            .trees()?
            .job_records
            .get(key(PLAN, id))?
            .map(|v| v.to_vec()))
    }

    /// The stored chunk results of a job, by chunk index, one at a time: a merge that folds
    /// them need not hold them all at once.
    pub fn chunk_results_each(
        &self,
        id: &str,
    ) -> Result<impl Iterator<Item = Result<(u64, Vec<u8>), StoreError>> + Send + 'static, StoreError>
    {
        Ok(self
            .store
            .trees()?
            .job_records
            .scan_prefix(range_prefix(CHUNK, id))
            .map(|entry| {
                let (key, value) = entry?;
                Ok((number_of(&key)?, value.to_vec()))
            }))
    }

    /// How many chunk results a job has stored.
    pub fn chunk_count(&self, id: &str) -> Result<u64, StoreError> {
        let mut n = 0;
        for key in self
            .store
            .trees()?
            .job_records
            .scan_prefix(range_prefix(CHUNK, id))
            .keys()
        {
            key?;
            n += 1;
        }
        Ok(n)
    }

    /// The highest logged event sequence number of a job (0 when none).
    pub fn last_seq(&self, id: &str) -> Result<u64, StoreError> {
        Ok(self
            .logged(id)?
            .into_iter()
            .map(|(seq, _)| seq)
            .max()
            .unwrap_or(0))
    }

    /// The logged events of a job with a sequence number above `after`, in order.
    pub fn events_after(&self, id: &str, after: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut events: Vec<(u64, Vec<u8>)> = self
            .logged(id)?
            .into_iter()
            .filter(|(seq, _)| *seq > after)
            .collect();
        events.sort_unstable_by_key(|(seq, _)| *seq);
        Ok(events.into_iter().map(|(_, body)| body).collect())
    }

    /// Every logged event of a job as `(seq, body)`, in slot order.
    fn logged(&self, id: &str) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for value in self
            .store
            .trees()?
            .job_records
            .scan_prefix(range_prefix(EVENT, id))
            .values()
        {
            let value = value?;
            let seq = value
                .get(..8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .ok_or(super::CorruptRecord("job event"))?;
            out.push((seq, value[8..].to_vec()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Durability;
    use std::time::Duration;

    fn event(id: &str, seq: u64) -> JobWrite {
        JobWrite::Event {
            id: id.into(),
            seq,
            body: Bytes::from(seq.to_string()),
        }
    }

    #[tokio::test]
    async fn records_are_kept_per_job_and_removed_together() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Durability::Sync, Duration::from_millis(500)).unwrap();
        let jobs = JobStore::open(&store).unwrap();
        let mut writes = vec![
            JobWrite::Job {
                id: "A".into(),
                record: b"a".to_vec(),
            },
            JobWrite::Job {
                id: "AB".into(),
                record: b"ab".to_vec(),
            },
            JobWrite::Plan {
                id: "A".into(),
                plan: b"[]".to_vec(),
            },
        ];
        for index in 0..3 {
            writes.push(JobWrite::Chunk {
                id: "A".into(),
                index,
                result: vec![index as u8],
            });
        }
        writes.push(JobWrite::Chunk {
            id: "AB".into(),
            index: 0,
            result: vec![9],
        });
        writes.extend((1..=5).map(|seq| event("A", seq)));
        writes.push(event("AB", 7));
        jobs.apply(&writes).unwrap();

        let all = |jobs: &JobStore| jobs.jobs().unwrap().collect::<Result<Vec<_>, _>>().unwrap();
        assert_eq!(all(&jobs), vec![b"a".to_vec(), b"ab".to_vec()]);
        assert_eq!(jobs.chunk_count("A").unwrap(), 3);
        let chunks = |id: &str| {
            jobs.chunk_results_each(id)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
        };
        assert_eq!(chunks("AB"), vec![(0, vec![9])]);
        assert_eq!(chunks("A").len(), 3, "A's only, not AB's");
        assert_eq!(jobs.last_seq("A").unwrap(), 5);
        assert_eq!(jobs.last_seq("AB").unwrap(), 7);
        assert_eq!(jobs.last_seq("B").unwrap(), 0);
        assert_eq!(
            jobs.events_after("A", 3).unwrap(),
            vec![b"4".to_vec(), b"5".to_vec()]
        );

        jobs.apply(&[JobWrite::Remove { id: "A".into() }]).unwrap();
        assert_eq!(all(&jobs), vec![b"ab".to_vec()]);
        assert_eq!(jobs.chunk_count("A").unwrap(), 0);
        assert_eq!(jobs.plan("A").unwrap(), None);
        assert!(jobs.events_after("A", 0).unwrap().is_empty());
        assert_eq!(jobs.chunk_count("AB").unwrap(), 1);
    }

    #[tokio::test]
    async fn the_event_log_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Durability::Sync, Duration::from_millis(500)).unwrap();
        let jobs = JobStore::open(&store).unwrap();
        let writes: Vec<JobWrite> = (1..=EVENT_LOG_LIMIT + 10).map(|s| event("J", s)).collect();
        jobs.apply(&writes).unwrap();
        let kept = jobs.events_after("J", 0).unwrap();
        assert_eq!(kept.len() as u64, EVENT_LOG_LIMIT);
        assert_eq!(kept[0], b"11".to_vec());
    }
}
