//! The documents of the jobs whose chunks are running, each read from its `document.json`
//! once rather than by every chunk: a chunk needs the whole document for context, and reading
//! it again for each chunk made a job's time grow with the square of its pages (a 1,000-page
//! PDF read 100 times over) and held one copy per running chunk.
//!
//! A document is kept with the memory reserved for it (its job's share of the
//! `extract-memory-budget`): the reservation goes back when the last holder of the document
//! lets it go, not when it leaves this list, so that a chunk still reading an evicted
//! document keeps it paid for.

use std::collections::VecDeque;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::document::Document;
use super::{load_document, DOCUMENT_FILE};
use crate::jobs::JobError;
use crate::processors::memory::Reservation;

/// A document read for a job, and the memory reserved for it and for its job's work.
#[derive(Debug)]
pub(super) struct Held {
    document: Document,
    /// Given back when the last chunk or merge holding the document is done with it.
    _reservation: Reservation,
}

impl Deref for Held {
    type Target = Document;

    fn deref(&self) -> &Document {
        &self.document
    }
}

/// A document not asked for in this long is kept for no running chunk: its job is between
/// attempts, cancelled or failed. (Between two chunks of a running job, a few milliseconds.)
const IDLE: Duration = Duration::from_secs(2);

/// The last few jobs' documents, by result directory; the least recently used goes first.
pub(super) struct Documents {
    entries: Mutex<VecDeque<Entry>>,
    capacity: usize,
}

struct Entry {
    dir: PathBuf,
    held: Arc<Held>,
    /// When a chunk or the merge last asked for it.
    used: Instant,
}

impl Documents {
    /// Keeps at most `capacity` documents: what bounds the memory, whatever jobs were
    /// cancelled or failed without their merge.
    pub(super) fn new(capacity: usize) -> Documents {
        Documents {
            entries: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity: capacity.max(1),
        }
    }

    /// The document stored in `dir`, read the first time it is asked for, once `reserve`
    /// has given the memory for it: `reserve` is told the size of the stored document (its
    /// JSON) and may wait for room.
    pub(super) fn get(
        &self,
        dir: &Path,
        reserve: impl FnOnce(u64) -> Result<Reservation, JobError>,
    ) -> Result<Arc<Held>, JobError> {
        if let Some(found) = self.take(dir) {
            self.keep(dir, found.clone());
            return Ok(found);
        }
        let stored = super::budget::file_size(&dir.join(DOCUMENT_FILE))?;
        // Reserved before it is read; outside the lock, as the reservation may wait.
        let reservation = reserve(stored)?;
        // Two chunks of one job may both read it, once each.
        let read = Arc::new(Held {
            document: load_document(dir)?,
            _reservation: reservation,
        });
        self.keep(dir, read.clone());
        Ok(read)
    }

    /// Drops what is kept for `dir`: its document was rewritten, or its job is done.
    pub(super) fn forget(&self, dir: &Path) {
        drop(self.take(dir));
    }

    /// Drops the documents that no chunk or merge is reading (kept only here) and none has
    /// asked for lately, and so their reservations: a job that waits for memory must not
    /// wait on documents kept for jobs that were cancelled or failed. A running job's, between
    /// two chunks, stays: letting it go would have the two jobs take the memory in turns,
    /// each reading its document again.
    pub(super) fn release_idle(&self) {
        self.release_unused_for(IDLE);
    }

    fn release_unused_for(&self, idle: Duration) {
        let released: VecDeque<Entry> = {
            let mut entries = self.lock();
            let (released, kept) = std::mem::take(&mut *entries)
                .into_iter()
                .partition(|e| Arc::strong_count(&e.held) == 1 && e.used.elapsed() >= idle);
            *entries = kept;
            released
        };
        // Dropped outside the lock: a document's pages take a while to free.
        drop(released);
    }

    fn take(&self, dir: &Path) -> Option<Arc<Held>> {
        let mut entries = self.lock();
        let at = entries.iter().position(|e| e.dir == dir)?;
        entries.remove(at).map(|e| e.held)
    }

    fn keep(&self, dir: &Path, held: Arc<Held>) {
        let mut entries = self.lock();
        if entries.iter().any(|e| e.dir == dir) {
            return;
        }
        while entries.len() >= self.capacity {
            entries.pop_front();
        }
        entries.push_back(Entry {
            dir: dir.to_owned(),
            held,
            used: Instant::now(),
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Entry>> {
        // A panic while holding it leaves nothing half-done: the list is valid either way.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::fmt::Debug for Documents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Documents")
            .field("kept", &self.lock().len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processors::extract::store_document;
    use crate::processors::memory::MemoryBudget;
    use std::time::Duration;

    fn stored(dir: &Path, format: &str) {
        let document = Document {
            format: format.to_owned(),
            ..Document::default()
        };
        store_document(dir, &document).unwrap_or_else(|e| panic!("{e:?}"));
    }

    #[test]
    fn a_document_is_read_once_until_forgotten_and_few_are_kept() {
        let dirs: Vec<tempfile::TempDir> = (0..3)
            .map(|_| tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")))
            .collect();
        for (i, dir) in dirs.iter().enumerate() {
            stored(dir.path(), &format!("f{i}"));
        }
        let documents = Documents::new(2);
        let budget = MemoryBudget::with_return_delay(1 << 20, Duration::ZERO);
        let get = |i: usize| {
            documents
                .get(dirs[i].path(), |bytes| {
                    budget
                        .try_reserve(bytes)
                        .ok_or_else(|| JobError::retryable("memory", "no room"))
                })
                .unwrap_or_else(|e| panic!("{e:?}"))
        };
        let first = get(0);
        assert!(Arc::ptr_eq(&first, &get(0)), "read again while kept");
        // Rewritten (a retried job's planning): forgotten, so read anew.
        stored(dirs[0].path(), "rewritten");
        documents.forget(dirs[0].path());
        assert_eq!(get(0).format, "rewritten");
        // Two kept at most: the least recently used goes.
        let kept = get(0);
        get(1);
        get(2);
        assert!(!Arc::ptr_eq(&kept, &get(0)), "kept beyond its capacity");
        // Each document read holds its reservation until its last holder lets it go.
        let held = budget.capacity() - budget.available();
        assert!(held > 0, "nothing reserved");
        // One in use stays, whatever its age; one kept only here and unused goes.
        let busy = get(2);
        documents.release_unused_for(Duration::ZERO);
        assert!(Arc::ptr_eq(&busy, &get(2)), "released while in use");
        drop(busy);
        documents.release_unused_for(Duration::ZERO);
        assert!(
            budget.available() < budget.capacity(),
            "the two documents still held keep theirs"
        );
        drop((first, kept));
        documents.forget(dirs[0].path());
        documents.forget(dirs[1].path());
        documents.forget(dirs[2].path());
        assert_eq!(budget.available(), budget.capacity(), "reservations kept");
    }

    #[test]
    fn what_is_derived_from_a_document_is_made_once() {
        let document = Document::default();
        let made = std::sync::atomic::AtomicUsize::new(0);
        for _ in 0..3 {
            let value = document.derived.get_or_make("test.count", || {
                made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                42u32
            });
            assert_eq!(*value, 42);
        }
        assert_eq!(made.load(std::sync::atomic::Ordering::Relaxed), 1);
        // A clone is a new document as far as derived results go.
        assert_eq!(format!("{:?}", document.clone().derived), "Derived([])");
    }
}
