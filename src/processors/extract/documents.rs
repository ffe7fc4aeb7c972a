//! The documents of the jobs whose chunks are running, each read from its `document.json`
//! once rather than by every chunk: a chunk needs the whole document for context, and reading
//! it again for each chunk made a job's time grow with the square of its pages (a 1,000-page
//! PDF read 100 times over) and held one copy per running chunk.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::document::Document;
use super::load_document;
use crate::jobs::JobError;

/// The last few jobs' documents, by result directory; the least recently used goes first.
pub(super) struct Documents {
    entries: Mutex<VecDeque<(PathBuf, Arc<Document>)>>,
    capacity: usize,
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

    /// The document stored in `dir`, read the first time it is asked for.
    pub(super) fn get(&self, dir: &Path) -> Result<Arc<Document>, JobError> {
        if let Some(found) = self.take(dir) {
            self.keep(dir, found.clone());
            return Ok(found);
        }
        // Read outside the lock: two chunks of one job may both read it, once.
        let read = Arc::new(load_document(dir)?);
        self.keep(dir, read.clone());
        Ok(read)
    }

    /// Drops what is kept for `dir`: its document was rewritten, or its job is done.
    pub(super) fn forget(&self, dir: &Path) {
        drop(self.take(dir));
    }

    fn take(&self, dir: &Path) -> Option<Arc<Document>> {
        let mut entries = self.lock();
        let at = entries.iter().position(|(d, _)| d == dir)?;
        entries.remove(at).map(|(_, document)| document)
    }

    fn keep(&self, dir: &Path, document: Arc<Document>) {
        let mut entries = self.lock();
        if entries.iter().any(|(d, _)| d == dir) {
            return;
        }
        while entries.len() >= self.capacity {
            entries.pop_front();
        }
        entries.push_back((dir.to_owned(), document));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(PathBuf, Arc<Document>)>> {
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
        let get = |i: usize| {
            documents
                .get(dirs[i].path())
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
