//! The one task that writes job records: it gathers every change waiting at that moment into
//! one atomic store batch, waits for the group commit, then publishes the batch's events in
//! order and tells whoever waits (a submitter's RECEIPT).
//!
//! Changes are queued under the engine's state lock, so the store sees them in the order the
//! engine made them, and an event is never published before the change it reports is
//! committed, but for a chunk's own `PROGRESS_UPDATE`, which may go ahead of its commit
//! ([`Writer::publish_ahead`]). Workers do not wait for their chunk's commit (they run the
//! next chunk while the disk catches up): a crash loses at most a suffix of commits, which the
//! checkpoint then redoes; a bounded number of commits in flight keeps memory bounded.
//!
//! A disk fault (full, read-only) makes commits fail, and sled loses what it held in memory
//! only when the store reopens its `Db` (see `store`). The writer keeps each batch's writes
//! until its commit succeeds; on a failure it stops the apply stage, waits for the store to
//! come back, writes again, in order, every batch not yet committed, and commits them. Nothing
//! is announced (no RECEIPT, no CHUNK_COMPLETED, no JOB_COMPLETED) before it is on disk; jobs
//! wait meanwhile, with their workers held by the bounded room for commits.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::events::{self, Event};
use super::shared::SharedJobs;
use crate::broker::{Backpressure, Broker};
use crate::store::jobs::{JobStore, JobWrite};
use crate::store::{Health, StoreError};

/// Commits queued at most before a worker or submitter waits for room.
pub(super) const IN_FLIGHT: usize = 8_192;

/// Commits written per store batch at most.
const BATCH: usize = 4_096;

/// The engine stopped before a commit was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the job engine is shutting down")]
pub(super) struct EngineStopped;

/// One change: records to write, events to publish once they are committed, and who waits.
#[derive(Debug, Default)]
pub(super) struct Commit {
    pub writes: Vec<JobWrite>,
    pub events: Vec<Event>,
    pub done: Option<oneshot::Sender<Result<(), EngineStopped>>>,
    pub permit: Option<OwnedSemaphorePermit>,
    /// Writes for this node's working copy only, not for the cluster's shared store (a job
    /// read back from it, or one this node no longer holds).
    pub local_only: bool,
}

/// Events queued but not yet published, and the lock they are published under.
///
/// A `since-seq` subscriber reads its replay from the stored log and registers while holding
/// the same lock (see [`Unannounced::publication`]), leaving out the events still queued here:
/// each event then reaches it exactly once, in the replay if it was published before, live if
/// after.
#[derive(Debug, Default)]
pub(super) struct Unannounced {
    /// By job id then seq.
    events: Mutex<BTreeSet<(String, u64)>>,
    /// Events published ahead of their commit ([`Writer::publish_ahead`]), by job id then seq,
    /// with their bodies: until their batch is announced they may not be in the log yet, so a
    /// `since-seq` replay takes them from here. At most one per job (see `publish_ahead`).
    ahead: Mutex<BTreeMap<(String, u64), Bytes>>,
    publication: Arc<Mutex<()>>,
}

impl Unannounced {
    fn events(&self) -> MutexGuard<'_, BTreeSet<(String, u64)>> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ahead(&self) -> MutexGuard<'_, BTreeMap<(String, u64), Bytes>> {
        self.ahead.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bodies of job `id`'s events published ahead of their commit and not yet announced
    /// (call under the publication lock, as [`Unannounced::pending`]).
    pub fn published_ahead(&self, id: &str) -> Vec<(u64, Bytes)> {
        self.ahead()
            .range((id.to_owned(), 0)..=(id.to_owned(), u64::MAX))
            .map(|((_, seq), body)| (*seq, body.clone()))
            .collect()
    }

    /// Held while an event is delivered to the subscribers' outboxes and struck off this list,
    /// and by a subscription while it reads its replay and registers.
    pub fn publication(&self) -> &Arc<Mutex<()>> {
        &self.publication
    }

    /// The seqs of job `id`'s events queued but not yet published.
    pub fn pending(&self, id: &str) -> BTreeSet<u64> {
        self.events()
            .range((id.to_owned(), 0)..=(id.to_owned(), u64::MAX))
            .map(|(_, seq)| *seq)
            .collect()
    }
}

/// Job records queued but not yet applied to the store, counted by job id: a job may only
/// be dropped from memory for its stored record (`table.rs`) once none of its records waits
/// here, or reading it back would give an older state.
///
/// The engine may ask to hear when a job's records are all applied ([`Writer::watch`]): a
/// finished job then leaves memory as soon as its last record is in the store (`settle.rs`).
#[derive(Debug, Default)]
pub(super) struct Unapplied {
    records: Mutex<Records>,
    /// Woken when a watched job's records are all applied.
    settled: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Records {
    /// Records waiting, by job id.
    waiting: HashMap<String, usize>,
    /// Jobs whose records the engine waits for, until they are all applied.
    watched: HashSet<String>,
    /// Watched jobs whose records are all applied, not yet taken by the engine.
    settled: Vec<String>,
}

impl Unapplied {
    fn lock(&self) -> MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn queued(&self, writes: &[JobWrite]) {
        let mut records = None;
        for write in writes {
            if let JobWrite::Job { id, .. } = write {
                *records
                    .get_or_insert_with(|| self.lock())
                    .waiting
                    .entry(id.clone())
                    .or_default() += 1;
            }
        }
    }

    fn applied(&self, writes: &[JobWrite]) {
        let mut records = None;
        let mut settled = false;
        for write in writes {
            if let JobWrite::Job { id, .. } = write {
                let records = records.get_or_insert_with(|| self.lock());
                if let Some(n) = records.waiting.get_mut(id.as_str()) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        records.waiting.remove(id.as_str());
                        if records.watched.remove(id.as_str()) {
                            records.settled.push(id.clone());
                            settled = true;
                        }
                    }
                }
            }
        }
        drop(records);
        if settled {
            self.settled.notify_one();
        }
    }

    /// The watched jobs whose records are all applied since the last call.
    pub fn take_settled(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().settled)
    }

    /// Waits until a watched job's records are all applied (at once if one was meanwhile).
    pub async fn settled(&self) {
        self.settled.notified().await
    }
}

/// The sending side, held by the engine.
#[derive(Debug)]
pub(super) struct Writer {
    queue: mpsc::UnboundedSender<Commit>,
    room: Arc<Semaphore>,
    unannounced: Arc<Unannounced>,
    unapplied: Arc<Unapplied>,
}

impl Writer {
    /// A writer and the receiving end for [`run`].
    pub fn new() -> (Writer, mpsc::UnboundedReceiver<Commit>) {
        let (queue, receiver) = mpsc::unbounded_channel();
        let writer = Writer {
            queue,
            room: Arc::new(Semaphore::new(IN_FLIGHT)),
            unannounced: Arc::default(),
            unapplied: Arc::default(),
        };
        (writer, receiver)
    }

    /// The events queued but not yet published (shared with [`run`]).
    pub fn unannounced(&self) -> &Arc<Unannounced> {
        &self.unannounced
    }

    /// The job records queued but not yet applied (shared with [`run`]).
    pub fn unapplied(&self) -> &Arc<Unapplied> {
        &self.unapplied
    }

    /// Whether every record of job `id` queued so far is applied to the store (readable
    /// there, if not yet durable).
    pub fn applied(&self, id: &str) -> bool {
        !self.unapplied.lock().waiting.contains_key(id)
    }

    /// Queues `commit`, then [`Writer::watch`]es `id`.
    pub fn queue_watched(&self, id: &str, commit: Commit) {
        self.queue(commit);
        self.watch(id);
    }

    /// Has [`Unapplied::take_settled`] give `id` once every record of it queued so far is
    /// applied (at the next call already, if that is now).
    pub fn watch(&self, id: &str) {
        let mut records = self.unapplied.lock();
        if records.waiting.contains_key(id) {
            records.watched.insert(id.to_owned());
        } else {
            records.settled.push(id.to_owned());
            drop(records);
            self.unapplied.settled.notify_one();
        }
    }

    /// Waits until another commit may be queued; hold the permit until [`Writer::queue`].
    pub async fn room(&self) -> Option<OwnedSemaphorePermit> {
        self.room.clone().acquire_owned().await.ok()
    }

    /// A permit if there is room now (for callers that cannot wait).
    pub fn try_room(&self) -> Option<OwnedSemaphorePermit> {
        self.room.clone().try_acquire_owned().ok()
    }

    /// Publishes `event`, queued with its commit already, without waiting for the commit, if
    /// every earlier event of its job is published: events never overtake one another. The
    /// announce stage then leaves it out. For chunk-end `PROGRESS_UPDATE`s only (a watcher's
    /// progress bar need not wait for the disk; `worker.rs` says why it is safe); call it
    /// after the state lock is released (a subscription takes the publication lock, then the
    /// state lock). Returns what the publisher waits on (flow control), empty when the event
    /// was left to the announce stage.
    pub fn publish_ahead(&self, broker: &Broker, event: &Event) -> Vec<Backpressure> {
        let _held = self
            .unannounced
            .publication()
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let key = (event.job_id.clone(), event.seq);
        {
            let mut pending = self.unannounced.events();
            let first = pending
                .range((event.job_id.clone(), 0)..=(event.job_id.clone(), u64::MAX))
                .next();
            // Not the oldest queued event of its job (or announced already): in order, later.
            if first != Some(&key) {
                return Vec::new();
            }
            pending.remove(&key);
        }
        self.unannounced.ahead().insert(key, event.body.clone());
        events::deliver(broker, event)
    }

    /// Queues `commit` (call under the state lock to keep the engine's order).
    pub fn queue(&self, commit: Commit) {
        self.unapplied.queued(&commit.writes);
        if !commit.events.is_empty() {
            let mut pending = self.unannounced.events();
            for event in &commit.events {
                pending.insert((event.job_id.clone(), event.seq));
            }
        }
        if let Err(error) = self.queue.send(commit) {
            if let Some(done) = error.0.done {
                let _ = done.send(Err(EngineStopped));
            }
            tracing::warn!("job writer stopped; a job change was not stored");
        }
    }
}

/// Batches applied to the store, waiting for their commit, with their writes kept so that
/// they can be written again after a disk fault.
struct Applied {
    commits: Vec<Commit>,
    writes: Vec<JobWrite>,
    /// The store's write count before the batch (for [`crate::store::Store::commit_since`]).
    from: u64,
}

/// The right to apply a batch: the apply stage holds it from applying a batch until the batch
/// is in the channel, the announce stage while it writes batches again after a fault, so that
/// the store sees every batch in the engine's order.
type Turn = Arc<tokio::sync::Mutex<()>>;

/// Runs the writer until its queue closes (every sender dropped) or `shutdown`; what is queued
/// at shutdown is still written and published.
///
/// Two stages, in order: one applies batches to the store, the other waits for each batch's
/// group commit and then announces it, so the next batch is applied, and its flush requested,
/// while the disk syncs the last one.
pub(super) async fn run(
    queue: mpsc::UnboundedReceiver<Commit>,
    store: JobStore,
    shared: Option<Arc<dyn SharedJobs>>,
    broker: Broker,
    unannounced: Arc<Unannounced>,
    unapplied: Arc<Unapplied>,
    shutdown: CancellationToken,
) {
    let (applied, to_announce) = mpsc::channel(2);
    let turn = Turn::default();
    tokio::join!(
        apply_stage(
            queue,
            store.clone(),
            Shared {
                jobs: shared,
                unannounced: unannounced.clone(),
            },
            applied,
            unapplied,
            turn.clone(),
            shutdown.clone()
        ),
        announce_stage(to_announce, store, broker, unannounced, turn, shutdown),
    );
}

/// The cluster's shared store, as the apply stage writes to it.
struct Shared {
    jobs: Option<Arc<dyn SharedJobs>>,
    unannounced: Arc<Unannounced>,
}

impl Shared {
    /// Writes the shared part of `batch` to the cluster's store, retrying until it is taken
    /// (or shutdown); the events of jobs this node was fenced off from are dropped.
    async fn write(&self, batch: &mut [Commit], shutdown: &CancellationToken) -> bool {
        let Some(jobs) = &self.jobs else {
            return true;
        };
        let writes: Vec<JobWrite> = batch
            .iter()
            .filter(|c| !c.local_only)
            .flat_map(|c| c.writes.iter().cloned())
            .collect();
        if writes.is_empty() {
            return true;
        }
        let mut delay = Duration::from_millis(50);
        let fenced = loop {
            match jobs.write(writes.clone()).await {
                Ok(fenced) => break fenced,
                Err(error) => {
                    if shutdown.is_cancelled() {
                        tracing::error!(%error, "job changes not stored in the cluster: shutting down while it cannot be reached");
                        return false;
                    }
                    tracing::error!(%error, "storing job changes in the cluster failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.cancelled() => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        };
        if !fenced.is_empty() {
            // Another node holds these jobs now: what this node said of them never happened.
            let mut pending = self.unannounced.events();
            for commit in batch.iter_mut() {
                commit.events.retain(|event| {
                    let keep = !fenced.contains(&event.job_id);
                    if !keep {
                        pending.remove(&(event.job_id.clone(), event.seq));
                    }
                    keep
                });
            }
        }
        true
    }
}

async fn apply_stage(
    mut queue: mpsc::UnboundedReceiver<Commit>,
    store: JobStore,
    shared: Shared,
    applied: mpsc::Sender<Applied>,
    unapplied: Arc<Unapplied>,
    turn: Turn,
    shutdown: CancellationToken,
) {
    loop {
        let mut batch: Vec<Commit> = Vec::with_capacity(BATCH);
        let received = tokio::select! {
            n = queue.recv_many(&mut batch, BATCH) => n,
            _ = shutdown.cancelled() => {
                queue.close();
                queue.recv_many(&mut batch, BATCH).await
            }
        };
        if received == 0 {
            return;
        }
        // In the cluster's store first: its fences decide which events go out, and a commit is
        // announced only once both stores hold it.
        if !shared.write(&mut batch, &shutdown).await {
            return;
        }
        let mut writes: Vec<JobWrite> = batch
            .iter_mut()
            .flat_map(|c| std::mem::take(&mut c.writes))
            .collect();
        // Room in the channel first: the announce stage may hold the turn, and never waits
        // for room while it does.
        let Ok(slot) = applied.reserve().await else {
            return;
        };
        let _turn = turn.lock().await;
        let from = store.store().written_count();
        // Held back, in order, until the store takes them: nothing acknowledged is lost.
        let mut delay = Duration::from_millis(50);
        loop {
            let (unwritten, outcome) = apply(&store, writes).await;
            writes = unwritten;
            match outcome {
                Ok(()) => {
                    unapplied.applied(&writes);
                    break;
                }
                Err(error) => {
                    // Shutting down with a disk that stays full or read-only: these changes
                    // cannot be stored, so they are not announced, and their submitters hear
                    // that the engine stopped (their `done` is dropped), rather than shutdown
                    // waiting for the disk.
                    if shutdown.is_cancelled() {
                        tracing::error!(%error, "job changes not stored: shutting down while the store cannot write");
                        return;
                    }
                    tracing::error!(%error, "storing job changes failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.cancelled() => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        // The announce stage may still wait for the batch before: this batch's flush starts
        // now, while that one syncs, rather than once it is announced (BENCHMARKS.md, "The
        // fsync's cost won back, in part").
        store.store().request_commit();
        slot.send(Applied {
            commits: batch,
            writes,
            from,
        });
    }
}

async fn announce_stage(
    mut applied: mpsc::Receiver<Applied>,
    store: JobStore,
    broker: Broker,
    unannounced: Arc<Unannounced>,
    turn: Turn,
    shutdown: CancellationToken,
) {
    // Batches committed during a recovery, to announce in order before any newer one.
    let mut recovered: VecDeque<Applied> = VecDeque::new();
    loop {
        let batch = match recovered.pop_front() {
            Some(batch) => batch,
            None => {
                let Some(batch) = applied.recv().await else {
                    return;
                };
                if let Err(error) = store.store().commit_since(batch.from).await {
                    tracing::error!(%error, "committing job changes failed; writing them again once the store is back");
                    // Every batch applied so far is this one or in the channel: take them
                    // all, in order, under the turn, so no newer batch reaches the store
                    // before them.
                    let _turn = turn.lock().await;
                    recovered.push_back(batch);
                    while let Ok(more) = applied.try_recv() {
                        recovered.push_back(more);
                    }
                    if !rewrite(&store, &mut recovered, &shutdown).await {
                        // Shutting down with the disk still failing: these changes are not
                        // stored, so they are not announced; their submitters hear that the
                        // engine stopped.
                        return;
                    }
                    continue;
                }
                batch
            }
        };
        for commit in batch.commits {
            for event in &commit.events {
                let pressure = {
                    let _held = unannounced
                        .publication()
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    let key = (event.job_id.clone(), event.seq);
                    // Published ahead of the commit already (`Writer::publish_ahead`): once.
                    let pressure = if unannounced.ahead().remove(&key).is_some() {
                        Vec::new()
                    } else {
                        events::deliver(&broker, event)
                    };
                    // Stored before it was delivered: a replay finds it in the log from now on.
                    unannounced.events().remove(&key);
                    pressure
                };
                for wait in pressure {
                    wait.wait().await;
                }
            }
            if let Some(done) = commit.done {
                let _ = done.send(Ok(()));
            }
        }
    }
}

/// Writes `batches` again, in order, and commits them, once the store is available; retries
/// until that works. False when shutdown came first.
async fn rewrite(
    store: &JobStore,
    batches: &mut VecDeque<Applied>,
    shutdown: &CancellationToken,
) -> bool {
    let mut delay = Duration::from_millis(50);
    loop {
        if store.store().health() == Health::Available {
            let from = store.store().written_count();
            let mut outcome = Ok(());
            for batch in batches.iter_mut() {
                let writes = std::mem::take(&mut batch.writes);
                let (writes, applied) = apply(store, writes).await;
                batch.writes = writes;
                if let Err(error) = applied {
                    outcome = Err(error);
                    break;
                }
            }
            if outcome.is_ok() {
                outcome = store.store().commit_since(from).await;
            }
            match outcome {
                Ok(()) => {
                    tracing::warn!(
                        batches = batches.len(),
                        "job changes written again after a store fault"
                    );
                    return true;
                }
                Err(error) => tracing::error!(%error, "writing job changes again failed"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return false,
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Applies `writes` off the async threads (a large batch takes milliseconds); hands them back
/// for a retry.
async fn apply(store: &JobStore, writes: Vec<JobWrite>) -> (Vec<JobWrite>, Result<(), StoreError>) {
    if writes.is_empty() {
        return (writes, Ok(()));
    }
    let records = store.clone();
    let applied = tokio::task::spawn_blocking(move || {
        let outcome = records.apply(&writes);
        (writes, outcome)
    })
    .await;
    match applied {
        Ok((writes, outcome)) => (writes, outcome),
        Err(error) => (
            Vec::new(),
            Err(StoreError::Sled(sled::Error::ReportableBug(
                error.to_string(),
            ))),
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use stompede_protocol::Headers;

    use crate::jobs::JobStatus;
    use crate::store::jobs::JobStore;
    use crate::store::Health;

    /// A store fault in the middle of a job: the writer holds its batches, writes them again
    /// once the store is reopened, and the job completes with every chunk stored once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_outlives_a_store_fault_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let server = crate::jobs::demo_server(dir.path()).await;
        let engine = server.jobs().unwrap().clone();
        let store = server.broker().store().unwrap().clone();
        let mut headers = Headers::new();
        headers.push("job-type", "demo");
        let job = engine
            .submit(
                "ann",
                &headers,
                br#"{"chunks":200,"mibPerChunk":0,"chunkDelayMs":2}"#,
            )
            .await
            .unwrap();
        // Bounded waits: 10 s each.
        for _ in 0..1_000 {
            if engine.job(&job.id).unwrap().progress.chunks_completed >= 20 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        store.fail_for_test();
        let refused = engine.submit("ann", &headers, b"{}").await.unwrap_err();
        assert_eq!(refused.code, "insufficient_storage", "{refused:?}");
        for _ in 0..1_000 {
            if store.health() == Health::Available
                && engine.job(&job.id).unwrap().status == JobStatus::Completed
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(store.health(), Health::Available);
        assert_eq!(engine.job(&job.id).unwrap().status, JobStatus::Completed);
        // The writer commits in order: once a later submission is committed, so is all of
        // the job.
        engine.submit("ann", &headers, b"{}").await.unwrap();
        let records = JobStore::open(&store).unwrap();
        assert_eq!(records.chunk_count(&job.id).unwrap(), 200);
        let events = records.events_after(&job.id, 0).unwrap();
        let completed = events
            .iter()
            .filter(|e| String::from_utf8_lossy(e).contains("CHUNK_COMPLETED"))
            .count();
        assert_eq!(completed, 200, "each chunk's CHUNK_COMPLETED once");
    }
}
