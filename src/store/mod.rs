//! The embedded store (sled): persistent queue messages, their delivery counts and durable
//! subscriptions, in a versioned on-disk format, with group commit.
//!
//! Writes go to sled at once (in memory, ordered); [`Store::commit`] waits until everything
//! written before the call is on disk. One committer task flushes for every caller waiting
//! (group commit, see `commit.rs`). The store knows nothing of the broker: it keeps bytes under
//! keys.

mod commit;
pub mod jobs;
mod record;

use std::cell::Cell;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
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
    /// A RECEIPT means the data is on disk (flushed before replying, shared by concurrent
    /// writers).
    Sync,
    /// RECEIPTs go out at once; the store is flushed every `flush-interval-ms`. A crash of the
    /// process or the machine loses what was written since the last flush.
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

#[derive(Debug)]
struct Inner {
    db: sled::Db,
    messages: sled::Tree,
    deliveries: sled::Tree,
    subscriptions: sled::Tree,
    durability: Durability,
    /// Writes made so far.
    written: AtomicU64,
    /// Writes known to be on disk.
    flushed: watch::Sender<u64>,
    /// Callers waiting for a flush (commit, commit_own, flush).
    waiting: AtomicUsize,
    /// Callers that ever had to wait for a flush.
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
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_mib.max(1).saturating_mul(1024 * 1024))
            // Our committer decides when to flush; sled's own timer only backs it up.
            .flush_every_ms(Some(flush_interval.as_millis().max(1) as u64))
            .open()?;
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
        let (flushed, _) = watch::channel(0);
        let store = Store {
            inner: Arc::new(Inner {
                messages: db.open_tree("messages")?,
                deliveries: db.open_tree("deliveries")?,
                subscriptions: db.open_tree("durable-subscriptions")?,
                db,
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
        self.inner
            .messages
            .insert(message_key(queue, seq), message.encode())?;
        self.wrote();
        Ok(())
    }

    /// Forgets a queue message (acknowledged, expired, moved or purged).
    pub fn remove_message(&self, queue: &str, seq: u64) -> Result<(), StoreError> {
        let key = message_key(queue, seq);
        // The count first: a crash in between leaves a message that looks less tried than it
        // was, not a count that no message will ever remove.
        self.inner.deliveries.remove(&key)?;
        self.inner.messages.remove(&key)?;
        self.wrote();
        Ok(())
    }

    /// Records how often a message has been delivered. Not waited for: after a crash, a lost
    /// count only makes the message look less tried than it was.
    pub fn set_deliveries(&self, queue: &str, seq: u64, deliveries: u32) -> Result<(), StoreError> {
        self.inner
            .deliveries
            .insert(message_key(queue, seq), &deliveries.to_be_bytes())?;
        Ok(())
    }

    /// A new message key, increasing across restarts.
    pub fn next_seq(&self) -> Result<u64, StoreError> {
        Ok(self.inner.db.generate_id()?)
    }

    /// Removes every message of `queue`; returns how many.
    pub fn remove_queue(&self, queue: &str) -> Result<usize, StoreError> {
        let mut removed = 0;
        for key in self.inner.messages.scan_prefix(queue_prefix(queue)).keys() {
            let key = key?;
            self.inner.deliveries.remove(&key)?;
            self.inner.messages.remove(&key)?;
            removed += 1;
        }
        self.wrote();
        Ok(removed)
    }

    /// Every stored message, grouped by queue, each queue in arrival order.
    pub fn load_messages(&self) -> Result<Vec<(String, Vec<LoadedMessage>)>, StoreError> {
        // Both trees are sorted by the same keys and delivery counts are rarer than messages:
        // walk them side by side instead of looking each count up (a merge join).
        let mut counts = self.inner.deliveries.iter().peekable();
        let mut queues: Vec<(String, Vec<LoadedMessage>)> = Vec::new();
        for entry in self.inner.messages.iter() {
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
        self.inner
            .subscriptions
            .insert(key.as_bytes(), value.as_bytes())?;
        self.wrote();
        Ok(())
    }

    /// Removes a durable subscription.
    pub fn remove_subscription(&self, key: &str) -> Result<(), StoreError> {
        self.inner.subscriptions.remove(key.as_bytes())?;
        self.wrote();
        Ok(())
    }

    /// Every durable subscription.
    pub fn subscriptions(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut out = Vec::new();
        for entry in self.inner.subscriptions.iter() {
            let (k, v) = entry?;
            out.push((
                String::from_utf8_lossy(&k).into_owned(),
                String::from_utf8_lossy(&v).into_owned(),
            ));
        }
        Ok(out)
    }

    /// Waits until every write made before this call is on disk (in `sync` durability; returns
    /// at once in `periodic`).
    pub async fn commit(&self) -> Result<(), StoreError> {
        if self.inner.durability == Durability::Periodic {
            return Ok(());
        }
        self.flushed_through(self.inner.written.load(Ordering::Acquire))
            .await
    }

    /// Waits until the writes the current task made inside [`own_writes`] are on disk (in
    /// `sync` durability): a RECEIPT waits for its own session's writes, not for a flush that
    /// other sessions' writes made necessary. Outside `own_writes`, as [`Store::commit`].
    pub async fn commit_own(&self) -> Result<(), StoreError> {
        if self.inner.durability == Durability::Periodic {
            return Ok(());
        }
        let target = LAST_WRITE
            .try_with(Cell::get)
            .unwrap_or_else(|_| self.inner.written.load(Ordering::Acquire));
        self.flushed_through(target).await
    }

    /// Flushes now, whatever the durability (shutdown).
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.flushed_through(self.inner.written.load(Ordering::Acquire))
            .await
    }

    async fn flushed_through(&self, target: u64) -> Result<(), StoreError> {
        let mut flushed = self.inner.flushed.subscribe();
        if *flushed.borrow() >= target {
            return Ok(());
        }
        let _waiting = Waiting::new(&self.inner.waiting);
        self.inner.arrivals.fetch_add(1, Ordering::AcqRel);
        self.inner.flush_wanted.notify_one();
        flushed
            .wait_for(|done| *done >= target)
            .await
            .map(|_| ())
            .map_err(|_| {
                StoreError::Sled(sled::Error::ReportableBug("store committer stopped".into()))
            })
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
            .inner
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
