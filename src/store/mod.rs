//! The embedded store (sled): persistent queue messages, their delivery counts and durable
//! subscriptions, in a versioned on-disk format, with group commit.
//!
//! Writes go to sled at once (in memory, ordered); [`Store::commit_since`] waits until
//! everything written before the call is on disk ([`Store::commit_own`]: a session's own
//! writes). One committer task flushes for every caller waiting
//! (group commit, see `commit.rs`), and syncs after each flush: sled's `flush()` alone leaves
//! a crash of the machine able to lose it (`durable.rs`). The store knows nothing of the broker: it keeps bytes under
//! keys.
//!
//! A full or read-only disk: sled 0.34 keeps the first I/O error of a log write as a global
//! error, and from then on every flush (and some writes) of that `Db` fails with it, even once
//! space is back; only a reopen clears it (measured, see RELIABILITY.md). So a failed flush marks
//! the store [`Health::Unavailable`]: new durable work is refused with the cause, commits
//! waiting for the disk fail instead of hanging, reads go on from the (poisoned) `Db`, and a
//! supervisor (`supervise.rs`) probes the directory and reopens the `Db` once a probe write
//! succeeds. Writes that were in memory only when it failed are lost with the old `Db`; no
//! commit ever reports them durable.

mod commit;
mod durable;
pub mod jobs;
mod record;
mod supervise;

use std::cell::Cell;
use std::collections::VecDeque;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{watch, Notify};

pub use record::{CorruptRecord, StoredMessage};

/// The on-disk format this build reads and writes.
pub const FORMAT: &str = "stompede-store/2";
const FORMAT_KEY: &[u8] = b"format";

tokio::task_local! {
    /// The last write made by the current task, inside [`own_writes`].
    static LAST_WRITE: Cell<u64>;
}

/// Runs `work` (a session) noting the store writes it makes itself, so that
/// [`Store::commit_own`] waits for those and not for every other session's.
pub async fn own_writes<F: Future>(work: F) -> F::Output {
    LAST_WRITE.scope(Cell::new(0), work).await
}

/// How RECEIPTs relate to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// A RECEIPT means the data is on disk: flushed and then synced (`fdatasync` of sled's log
    /// and of any new blob file) before replying, one flush and sync shared by concurrent
    /// writers (see `durable.rs`).
    Sync,
    /// RECEIPTs go out at once. sled's own thread `fsync`s its log every `flush-interval-ms`,
    /// and the committer flushes and syncs (blob files too) what nobody waited for about once
    /// a second. A crash of the process loses what sled had not yet written; a crash of the
    /// machine, what was written since the last sync.
    Periodic,
}

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed.
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    /// The data directory was written by an incompatible version.
    #[error("the store in {path} has format {found:?}, this build reads {FORMAT:?}: refusing to open it (use the matching stompede version, or another --data-dir)")]
    Incompatible {
        /// The store directory.
        path: String,
        /// The format found.
        found: String,
    },
    /// A record could not be decoded.
    #[error(transparent)]
    Corrupt(#[from] CorruptRecord),
    /// The disk refused a write (full, read-only): durable work is refused until the store is
    /// reopened. The text is the cause, e.g. "no space left on device".
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// True when the disk is full (callers answer 507 Insufficient Storage).
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Unavailable(reason) => reason == NO_SPACE,
            StoreError::Sled(sled::Error::Io(io)) => io.kind() == std::io::ErrorKind::StorageFull,
            _ => false,
        }
    }
}

/// How [`Health::Unavailable`] names a full disk.
pub const NO_SPACE: &str = "no space left on device";

/// Whether the store takes durable work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Writes and commits work.
    Available,
    /// A write or flush failed; new durable work is refused until the supervisor reopens the
    /// store.
    Unavailable {
        /// The cause, e.g. "no space left on device".
        reason: String,
    },
}

/// The cause of an I/O failure in words a user can act on. sled wraps the operating system's
/// error in a custom one whose text is a debug dump, so the kind is named instead.
pub(crate) fn describe(error: &sled::Error) -> String {
    match error {
        sled::Error::Io(io) => describe_io(io),
        other => other.to_string(),
    }
}

/// The cause of an I/O failure in words a user can act on (as `describe` for sled errors).
pub fn describe_io(io: &std::io::Error) -> String {
    match io.kind() {
        std::io::ErrorKind::StorageFull => NO_SPACE.to_owned(),
        std::io::ErrorKind::ReadOnlyFilesystem => "read-only file system".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => match io.raw_os_error() {
            Some(code) => std::io::Error::from_raw_os_error(code).to_string(),
            None => io.to_string(),
        },
    }
}

/// One stored queue message, as loaded at start-up.
#[derive(Debug)]
pub struct LoadedMessage {
    /// Its key within the queue (ascending = arrival order).
    pub seq: u64,
    /// The message.
    pub message: StoredMessage,
    /// How many times it was handed to a consumer before the restart.
    pub deliveries: u32,
}

/// The store.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// One opened sled database and its trees; replaced whole when the store is reopened.
#[derive(Debug)]
struct Trees {
    db: sled::Db,
    /// Makes what `db.flush()` wrote durable (sled's flush alone does not: see `durable.rs`).
    durable: Arc<durable::LogSync>,
    messages: sled::Tree,
    deliveries: sled::Tree,
    subscriptions: sled::Tree,
    job_records: sled::Tree,
}

impl Trees {
    fn open(dir: &Path, flush_interval: Duration, cache_mib: u64) -> Result<Trees, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_mib.max(1).saturating_mul(1024 * 1024))
            // Our committer decides when to flush; sled's own timer only backs it up.
            .flush_every_ms(Some(flush_interval.as_millis().max(1) as u64))
            .open()?;
        // Opened before any write we promise, so that it sees every write-back error after.
        let durable = Arc::new(durable::LogSync::open(dir).map_err(sled::Error::Io)?);
        match db.get(FORMAT_KEY)? {
            Some(found) if &*found != FORMAT.as_bytes() => {
                return Err(StoreError::Incompatible {
                    path: dir.display().to_string(),
                    found: String::from_utf8_lossy(&found).into_owned(),
                })
            }
            Some(_) => {}
            None => {
                db.insert(FORMAT_KEY, FORMAT.as_bytes())?;
                db.flush()?;
            }
        }
        // What recovery wrote, and the format, are on disk before anything else is stored.
        durable.sync().map_err(sled::Error::Io)?;
        Ok(Trees {
            durable,
            messages: db.open_tree("messages")?,
            deliveries: db.open_tree("deliveries")?,
            subscriptions: db.open_tree("durable-subscriptions")?,
            job_records: db.open_tree("job-records")?,
            db,
        })
    }
}

/// Write counts lost with a poisoned `Db` remembered at most (one range per outage).
const LOST_RANGES: usize = 16;

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    flush_interval: Duration,
    cache_mib: u64,
    /// The open database; `None` only while a reopen is under way or failed. A std RwLock:
    /// held only to clone or swap the `Arc`, never across an `.await` or a sled call.
    trees: RwLock<Option<Arc<Trees>>>,
    health: watch::Sender<Health>,
    /// True while a supervisor task runs (one at a time).
    supervising: AtomicBool,
    /// Write counts `(after, through]` that were in memory only when a `Db` was dropped:
    /// a commit waiting for one of them fails.
    lost: Mutex<VecDeque<(u64, u64)>>,
    /// Times a write or flush failed and made the store unavailable.
    failures: AtomicU64,
    /// Times the store was reopened after a failure.
    reopens: AtomicU64,
    durability: Durability,
    /// Writes made so far.
    written: AtomicU64,
    /// Writes known to be on disk.
    flushed: watch::Sender<u64>,
    /// Callers waiting for a flush (commit, commit_own, flush).
    waiting: AtomicUsize,
    /// Callers that ever had to wait for a flush, and requests for one (`request_commit`).
    arrivals: AtomicU64,
    flush_wanted: Arc<Notify>,
}

/// Counts a caller as waiting for a flush while it exists.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn message_key(queue: &str, seq: u64) -> Vec<u8> {
    let mut key = queue_prefix(queue);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Keys are `len(queue) as u16 | queue | seq as u64 BE`, so one queue's messages are one
/// prefix range, in arrival order.
fn queue_prefix(queue: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(queue.len() + 10);
    key.extend_from_slice(&(queue.len() as u16).to_be_bytes());
    key.extend_from_slice(queue.as_bytes());
    key
}

fn split_key(key: &[u8]) -> Option<(&str, u64)> {
    let len = u16::from_be_bytes([*key.first()?, *key.get(1)?]) as usize;
    let name = std::str::from_utf8(key.get(2..2 + len)?).ok()?;
    let seq = u64::from_be_bytes(key.get(2 + len..2 + len + 8)?.try_into().ok()?);
    Some((name, seq))
}

/// The store's page cache by default, in MiB. sled's own default (1 GiB) keeps every page
/// written in memory: with 100,000 delayed jobs that was about 950 bytes of RSS per job, more
/// than anything else in the server. Pages beyond this are read back from the log when needed;
/// in the jobs benchmark (issue #25, BENCHMARKS.md) 8 MiB left the submission and completion
/// rates within the run-to-run noise. `store-cache-mib` raises it.
pub const DEFAULT_CACHE_MIB: u64 = 8;

impl Store {
    /// [`Store::open_with_cache`] with the default page cache (for tests).
    #[cfg(test)]
    pub fn open(
        dir: &Path,
        durability: Durability,
        flush_interval: Duration,
    ) -> Result<Store, StoreError> {
        Self::open_with_cache(dir, durability, flush_interval, DEFAULT_CACHE_MIB)
    }

    /// Opens (or creates) the store in `dir`, refusing a directory of another format, and
    /// starts its committer; sled keeps at most `cache_mib` MiB of pages in memory.
    pub fn open_with_cache(
        dir: &Path,
        durability: Durability,
        flush_interval: Duration,
        cache_mib: u64,
    ) -> Result<Store, StoreError> {
        let trees = Trees::open(dir, flush_interval, cache_mib)?;
        let (flushed, _) = watch::channel(0);
        let (health, _) = watch::channel(Health::Available);
        let store = Store {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                flush_interval,
                cache_mib,
                trees: RwLock::new(Some(Arc::new(trees))),
                health,
                supervising: AtomicBool::new(false),
                lost: Mutex::new(VecDeque::with_capacity(LOST_RANGES)),
                failures: AtomicU64::new(0),
                reopens: AtomicU64::new(0),
                durability,
                written: AtomicU64::new(0),
                flushed,
                waiting: AtomicUsize::new(0),
                arrivals: AtomicU64::new(0),
                flush_wanted: Arc::new(Notify::new()),
            }),
        };
        tokio::spawn(commit::committer(
            Arc::downgrade(&store.inner),
            store.inner.flush_wanted.clone(),
        ));
        Ok(store)
    }

    /// Whether the store takes durable work now.
    pub fn health(&self) -> Health {
        self.inner.health.borrow().clone()
    }

    /// Times the store became unavailable, and times it was reopened.
    pub fn fault_counts(&self) -> (u64, u64) {
        (
            self.inner.failures.load(Ordering::Relaxed),
            self.inner.reopens.load(Ordering::Relaxed),
        )
    }

    /// Marks the store unavailable as a failed flush would (for tests of what depends on it).
    #[cfg(test)]
    pub(crate) fn fail_for_test(&self) {
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        self.inner.fail(&sled::Error::Io(full));
    }

    /// Tells when the database this store has open is closed, its files and their lock
    /// released: once every handle (this one, its clones, flushes under way) is gone.
    pub fn released(&self) -> Released {
        let trees = self.inner.trees.read().unwrap_or_else(|e| e.into_inner());
        Released(trees.as_ref().map(Arc::downgrade).unwrap_or_default())
    }

    /// The open database, for reads and best-effort writes (removals), also while the store
    /// is unavailable: a poisoned sled `Db` still reads.
    fn trees(&self) -> Result<Arc<Trees>, StoreError> {
        self.inner.trees()
    }

    /// The open database for new durable work: refused while the store is unavailable, so
    /// that nothing is written to a `Db` that can no longer flush (it would be lost).
    fn writable(&self) -> Result<Arc<Trees>, StoreError> {
        if let Health::Unavailable { reason } = &*self.inner.health.borrow() {
            return Err(StoreError::Unavailable(reason.clone()));
        }
        self.trees()
    }

    /// Passes `result` on, marking the store unavailable when sled failed on I/O.
    fn checked<T>(&self, result: sled::Result<T>) -> Result<T, StoreError> {
        result.map_err(|error| {
            if matches!(error, sled::Error::Io(_)) {
                self.inner.fail(&error);
            }
            StoreError::Sled(error)
        })
    }

    pub(crate) fn wrote(&self) {
        let count = self.inner.written.fetch_add(1, Ordering::AcqRel) + 1;
        // Outside `own_writes` (the job engine's writer, a blocking thread) nobody asks.
        let _ = LAST_WRITE.try_with(|last| last.set(count));
    }

    /// Stores a queue message.
    pub fn insert_message(
        &self,
        queue: &str,
        seq: u64,
        message: &StoredMessage,
    ) -> Result<(), StoreError> {
        let trees = self.writable()?;
        self.checked(
            trees
                .messages
                .insert(message_key(queue, seq), message.encode()),
        )?;
        // Counted while the `Db` is held, so a reopen sees every write made to the old one.
        self.wrote();
        Ok(())
    }

    /// Forgets a queue message (acknowledged, expired, moved or purged).
    pub fn remove_message(&self, queue: &str, seq: u64) -> Result<(), StoreError> {
        let key = message_key(queue, seq);
        let trees = self.trees()?;
        // The count first: a crash in between leaves a message that looks less tried than it
        // was, not a count that no message will ever remove.
        self.checked(trees.deliveries.remove(&key))?;
        self.checked(trees.messages.remove(&key))?;
        self.wrote();
        Ok(())
    }

    /// Records how often a message has been delivered. Not waited for: after a crash, a lost
    /// count only makes the message look less tried than it was.
    pub fn set_deliveries(&self, queue: &str, seq: u64, deliveries: u32) -> Result<(), StoreError> {
        let trees = self.trees()?;
        self.checked(
            trees
                .deliveries
                .insert(message_key(queue, seq), &deliveries.to_be_bytes()),
        )?;
        Ok(())
    }

    /// A new message key, increasing across restarts.
    pub fn next_seq(&self) -> Result<u64, StoreError> {
        let trees = self.writable()?;
        self.checked(trees.db.generate_id())
    }

    /// Removes every message of `queue`; returns how many.
    pub fn remove_queue(&self, queue: &str) -> Result<usize, StoreError> {
        let trees = self.trees()?;
        let mut removed = 0;
        for key in trees.messages.scan_prefix(queue_prefix(queue)).keys() {
            let key = key?;
            self.checked(trees.deliveries.remove(&key))?;
            self.checked(trees.messages.remove(&key))?;
            removed += 1;
        }
        self.wrote();
        Ok(removed)
    }

    /// Every stored message, grouped by queue, each queue in arrival order.
    pub fn load_messages(&self) -> Result<Vec<(String, Vec<LoadedMessage>)>, StoreError> {
        // Both trees are sorted by the same keys and delivery counts are rarer than messages:
        // walk them side by side instead of looking each count up (a merge join).
        let trees = self.trees()?;
        let mut counts = trees.deliveries.iter().peekable();
        let mut queues: Vec<(String, Vec<LoadedMessage>)> = Vec::new();
        for entry in trees.messages.iter() {
            let (key, value) = entry?;
            let mut deliveries = 0;
            while let Some(Ok((count_key, _))) = counts.peek() {
                match count_key.as_ref().cmp(key.as_ref()) {
                    std::cmp::Ordering::Less => {
                        counts.next();
                    }
                    std::cmp::Ordering::Equal => {
                        if let Some(Ok((_, v))) = counts.next() {
                            if let Ok(bytes) = <[u8; 4]>::try_from(v.as_ref()) {
                                deliveries = u32::from_be_bytes(bytes);
                            }
                        }
                        break;
                    }
                    std::cmp::Ordering::Greater => break,
                }
            }
            if let Some(Err(_)) = counts.peek() {
                if let Some(Err(error)) = counts.next() {
                    return Err(error.into());
                }
            }
            let (queue, seq) = split_key(&key).ok_or(CorruptRecord("message key"))?;
            let loaded = LoadedMessage {
                seq,
                message: StoredMessage::decode(&value)?,
                deliveries,
            };
            match queues.last_mut() {
                Some((name, list)) if name == queue => list.push(loaded),
                _ => queues.push((queue.to_owned(), vec![loaded])),
            }
        }
        Ok(queues)
    }

    /// Stores a durable subscription: `key` identifies it (user and id), `value` describes it.
    pub fn put_subscription(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let trees = self.writable()?;
        self.checked(trees.subscriptions.insert(key.as_bytes(), value.as_bytes()))?;
        self.wrote();
        Ok(())
    }

    /// Removes a durable subscription.
    pub fn remove_subscription(&self, key: &str) -> Result<(), StoreError> {
        let trees = self.trees()?;
        self.checked(trees.subscriptions.remove(key.as_bytes()))?;
        self.wrote();
        Ok(())
    }

    /// Every durable subscription.
    pub fn subscriptions(&self) -> Result<Vec<(String, String)>, StoreError> {
        let trees = self.trees()?;
        let mut out = Vec::new();
        for entry in trees.subscriptions.iter() {
            let (k, v) = entry?;
            out.push((
                String::from_utf8_lossy(&k).into_owned(),
                String::from_utf8_lossy(&v).into_owned(),
            ));
        }
        Ok(out)
    }

    /// Waits until every write made before this call is on disk (in `sync` durability; returns
    /// at once in `periodic`). The engine uses [`Store::commit_since`], which also tells a
    /// write lost with a reopened `Db`; tests use this.
    #[cfg(test)]
    pub async fn commit(&self) -> Result<(), StoreError> {
        if self.inner.durability == Durability::Periodic {
            return Ok(());
        }
        self.flushed_through(self.inner.written.load(Ordering::Acquire))
            .await
    }

    /// Waits until the writes the current task made inside [`own_writes`] are on disk (in
    /// `sync` durability): a RECEIPT waits for its own session's writes, not for a flush that
    /// other sessions' writes made necessary. Outside `own_writes`, it waits for every write
    /// made before the call.
    pub async fn commit_own(&self) -> Result<(), StoreError> {
        if self.inner.durability == Durability::Periodic {
            return Ok(());
        }
        let target = LAST_WRITE
            .try_with(Cell::get)
            .unwrap_or_else(|_| self.inner.written.load(Ordering::Acquire));
        self.flushed_through(target).await
    }

    /// How many writes were made so far: taken before a batch, it lets
    /// [`Store::commit_since`] tell whether the batch was lost with a reopened `Db`.
    pub fn written_count(&self) -> u64 {
        self.inner.written.load(Ordering::Acquire)
    }

    /// Waits until every write made before this call is on disk (in `sync` durability; at
    /// once in `periodic`), and fails when a write made after `from` (a
    /// [`Store::written_count`]) was lost because the store was reopened after a disk fault
    /// (sled's writes are in memory until flushed): the caller writes it again.
    pub async fn commit_since(&self, from: u64) -> Result<(), StoreError> {
        let target = self.inner.written.load(Ordering::Acquire);
        if let Some(reason) = self.inner.lost_between(from, target) {
            return Err(StoreError::Unavailable(reason));
        }
        if self.inner.durability == Durability::Periodic {
            return Ok(());
        }
        self.flushed_through(target).await?;
        match self.inner.lost_between(from, target) {
            Some(reason) => Err(StoreError::Unavailable(reason)),
            None => Ok(()),
        }
    }

    /// Asks the committer to flush and sync every write made so far, without waiting for it:
    /// for a caller that will wait for these writes later ([`Store::commit_since`]) and has
    /// other work meanwhile. The job writer asks as soon as a batch is applied, while it still
    /// waits for the batch before: that batch's sync then overlaps this batch's flush (a sync
    /// only covers what was flushed before it began, so the flush has to start early to be
    /// covered by the next one), instead of starting once the batch before is announced.
    /// Nothing is reported durable any sooner: waiters still wait for a finished flush and
    /// sync that covers them. Does nothing in `periodic` durability.
    pub fn request_commit(&self) {
        if self.inner.durability == Durability::Periodic {
            return;
        }
        // Counted as an arrival, as a waiting caller would be: the committer starts a flush
        // for uncovered arrivals.
        self.inner.arrivals.fetch_add(1, Ordering::AcqRel);
        self.inner.flush_wanted.notify_one();
    }

    /// Flushes now, whatever the durability (shutdown).
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.flushed_through(self.inner.written.load(Ordering::Acquire))
            .await
    }

    async fn flushed_through(&self, target: u64) -> Result<(), StoreError> {
        let mut flushed = self.inner.flushed.subscribe();
        let mut health = self.inner.health.subscribe();
        // Counted as waiting (for the committer's cohorts) only once it has to wait.
        let mut waiting = None;
        // Each turn ends on a change of the flushed count or of the health: bounded by them.
        loop {
            if let Some(reason) = self.inner.lost_reason(target) {
                return Err(StoreError::Unavailable(reason));
            }
            if *flushed.borrow_and_update() >= target {
                return Ok(());
            }
            // A flush would fail: answer now rather than wait for the disk to come back.
            if let Health::Unavailable { reason } = &*health.borrow_and_update() {
                return Err(StoreError::Unavailable(reason.clone()));
            }
            if waiting.is_none() {
                waiting = Some(Waiting::new(&self.inner.waiting));
                self.inner.arrivals.fetch_add(1, Ordering::AcqRel);
                self.inner.flush_wanted.notify_one();
            }
            let stopped = tokio::select! {
                changed = flushed.changed() => changed.is_err(),
                changed = health.changed() => changed.is_err(),
            };
            if stopped {
                return Err(StoreError::Sled(sled::Error::ReportableBug(
                    "store committer stopped".into(),
                )));
            }
        }
    }
}

/// The database a store had open, held only weakly: see [`Store::released`].
#[derive(Debug)]
pub struct Released(std::sync::Weak<Trees>);

impl Released {
    /// Waits until the database is closed, at most `timeout`; false if it is still open then
    /// (a task still holds the store).
    pub async fn wait(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        // Handles go as their tasks end, which nothing signals: polled, briefly.
        while self.0.strong_count() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }
}

impl Inner {
    fn trees(&self) -> Result<Arc<Trees>, StoreError> {
        self.trees
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| match &*self.health.borrow() {
                Health::Unavailable { reason } => StoreError::Unavailable(reason.clone()),
                Health::Available => StoreError::Unavailable("store is reopening".into()),
            })
    }

    /// Marks the store unavailable after `error` and starts the supervisor that reopens it.
    fn fail(self: &Arc<Inner>, error: &sled::Error) {
        let reason = describe(error);
        let newly = self.health.send_if_modified(|health| match health {
            Health::Available => {
                *health = Health::Unavailable {
                    reason: reason.clone(),
                };
                true
            }
            Health::Unavailable { .. } => false,
        });
        if newly {
            self.failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%reason, "store unavailable: durable work is refused until it can write again");
            supervise::start(self);
        }
    }

    /// The cause, when the write numbered `target` was in memory only when a `Db` was dropped.
    fn lost_reason(&self, target: u64) -> Option<String> {
        self.lost_between(target.saturating_sub(1), target)
    }

    /// The cause, when a write numbered in `(from, through]` was lost with a dropped `Db`.
    fn lost_between(&self, from: u64, through: u64) -> Option<String> {
        let lost = self.lost.lock().unwrap_or_else(|e| e.into_inner());
        lost.iter()
            .any(|&(after, last)| after < through && last > from)
            .then(|| "the write was lost when the store was reopened after a disk fault".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_back() {
        let key = message_key("/queue/a", 7);
        assert_eq!(split_key(&key), Some(("/queue/a", 7)));
        assert_eq!(split_key(&key[..5]), None);
    }

    fn sample_message() -> StoredMessage {
        StoredMessage {
            id: "1".into(),
            destination: "/queue/a".into(),
            headers: vec![],
            body: bytes::Bytes::from_static(b"x"),
            text: true,
            expires: 0,
        }
    }

    #[tokio::test]
    async fn a_task_commits_its_own_writes_and_waits_for_no_others() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Durability::Sync, Duration::from_secs(60)).unwrap();
        let message = sample_message();
        // Another task's write, not committed.
        store.insert_message("/queue/a", 1, &message).unwrap();
        let flushed = || *store.inner.flushed.borrow();
        own_writes(async {
            // Nothing of its own yet: no flush is waited for.
            store.commit_own().await.unwrap();
            assert_eq!(flushed(), 0);
            store.insert_message("/queue/a", 2, &message).unwrap();
            store.commit_own().await.unwrap();
            assert!(flushed() >= 2, "own write not flushed");
        })
        .await;
    }

    /// Time is paused (it advances only while the runtime idles, and not while a flush runs
    /// on the blocking pool), so the committer's own flush of unwaited writes, a second
    /// away, cannot be what answers the request.
    #[tokio::test(start_paused = true)]
    async fn a_requested_commit_is_flushed_with_nobody_waiting() {
        let dir = tempfile::tempdir().unwrap();
        // sled's own timer must not flush behind our back during the test.
        let store = Store::open(dir.path(), Durability::Sync, Duration::from_secs(60)).unwrap();
        let message = sample_message();
        store.insert_message("/queue/a", 1, &message).unwrap();
        let requested = store.written_count();
        store.request_commit();
        let mut flushed = store.inner.flushed.subscribe();
        tokio::time::timeout(
            Duration::from_millis(100),
            flushed.wait_for(|&done| done >= requested),
        )
        .await
        .expect("a requested commit was not flushed")
        .unwrap();
        // A write after the request is committed as any other.
        let before = store.written_count();
        store.insert_message("/queue/a", 2, &message).unwrap();
        store.commit_since(before).await.unwrap();
        assert!(*store.inner.flushed.borrow() >= store.written_count());
        drop(flushed);
        drop(store);
        let reopened = Store::open(dir.path(), Durability::Sync, Duration::from_secs(60)).unwrap();
        assert_eq!(reopened.load_messages().unwrap()[0].1.len(), 2);
    }

    /// Waits (bounded) until the supervisor has reopened the store.
    async fn until_available(store: &Store) {
        for _ in 0..200 {
            if store.health() == Health::Available {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the store was not reopened: {:?}", store.health());
    }

    #[tokio::test]
    async fn a_failed_store_refuses_durable_work_and_never_reports_a_lost_write_durable() {
        let dir = tempfile::tempdir().unwrap();
        // sled's own timer must not flush behind our back during the test.
        let store = Store::open(dir.path(), Durability::Sync, Duration::from_secs(60)).unwrap();
        let message = sample_message();
        store.insert_message("/queue/a", 1, &message).unwrap();
        store.commit().await.unwrap();
        let before_failure = store.written_count();
        // Written to the Db that is about to fail, never flushed.
        store.insert_message("/queue/a", 2, &message).unwrap();
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        store.inner.fail(&sled::Error::Io(full));
        assert_eq!(
            store.health(),
            Health::Unavailable {
                reason: NO_SPACE.into()
            }
        );
        let refused = store.insert_message("/queue/a", 3, &message).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "store unavailable: no space left on device"
        );
        assert!(refused.is_disk_full());
        assert!(
            store.commit().await.is_err(),
            "a commit passed while unavailable"
        );
        // Reads go on meanwhile.
        assert_eq!(store.load_messages().unwrap()[0].1.len(), 2);

        // The directory takes the probe: the supervisor reopens the Db.
        until_available(&store).await;
        assert_eq!(store.fault_counts(), (1, 1));
        let lost = store.commit_since(before_failure).await.unwrap_err();
        assert!(lost.to_string().contains("lost"), "{lost}");
        // A poisoned Db loses the unflushed write; this one was healthy and sled flushed it
        // when it was dropped. Either way no commit reported it durable, and what was
        // committed is there.
        let loaded = store.load_messages().unwrap();
        assert_eq!(loaded[0].1[0].seq, 1);
        let kept = loaded[0].1.len();
        // New work is taken and made durable again.
        let after = store.written_count();
        store.insert_message("/queue/a", 4, &message).unwrap();
        store.commit_since(after).await.unwrap();
        assert_eq!(store.load_messages().unwrap()[0].1.len(), kept + 1);
    }

    #[tokio::test]
    async fn messages_survive_reopening_and_formats_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let message = sample_message();
        {
            let store =
                Store::open(dir.path(), Durability::Sync, Duration::from_millis(500)).unwrap();
            let seq = store.next_seq().unwrap();
            store.insert_message("/queue/a", seq, &message).unwrap();
            store.set_deliveries("/queue/a", seq, 2).unwrap();
            store.commit().await.unwrap();
        }
        let store = Store::open(dir.path(), Durability::Sync, Duration::from_millis(500)).unwrap();
        let loaded = store.load_messages().unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].1[0].message, message);
        assert_eq!(loaded[0].1[0].deliveries, 2);
        store
            .trees()
            .unwrap()
            .db
            .insert(FORMAT_KEY, b"stompede-store/0".as_slice())
            .unwrap();
        store.flush().await.unwrap();
        drop(store);
        let error =
            Store::open(dir.path(), Durability::Sync, Duration::from_millis(500)).unwrap_err();
        assert!(error.to_string().contains("refusing to open"), "{error}");
    }
}
