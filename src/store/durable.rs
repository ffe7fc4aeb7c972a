//! What makes a flushed write durable. sled 0.34's `Db::flush()` does not, on Linux:
//!
//! - it writes the log buffer with `pwrite` and then calls `sync_file_range(2)`
//!   (`SYNC_FILE_RANGE_WAIT_BEFORE | WRITE | WAIT_AFTER`, `pagecache/iobuf.rs`), which writes
//!   the data pages but neither the file's metadata (a grown log file's new size and extents)
//!   nor a flush of the disk's write cache; sled's `fsync` (`sync_all`) comes only from its
//!   flusher thread, every `flush_every_ms`;
//! - pages too large for a quarter of a log segment (about 128 KiB with the default 512 KiB
//!   segments) go to files of their own in `blobs/` (`pagecache/blob_io.rs`), written with
//!   `write_all` and never synced, nor is the directory; at recovery a log record whose blob
//!   file is missing is skipped as "dangling" (`pagecache/iterator.rs`), so the update is
//!   silently gone.
//!
//! So after each flush the committer calls [`LogSync::sync`]: new or grown blob files are
//! `fdatasync`ed and the `blobs` directory `fsync`ed, then the log file is `fdatasync`ed
//! through a descriptor of our own (durability is per inode, so any descriptor will do).
//! Only then is a commit reported done.
//!
//! One more check follows each `fdatasync`, because it can report success for metadata
//! that never reached the disk. When ext4 aborts its journal (after an I/O error, or
//! `mount -o remount,abort`), jbd2 marks the journal aborted and "commits" the running
//! transaction without writing it; until ext4 then marks itself read-only (after a
//! superblock write, milliseconds later) an `fdatasync` whose inode changes were in that
//! transaction finds it neither running nor committing, takes it as committed, and returns 0
//! (`jbd2_complete_transaction`). A grown log file's new size and extents were in it: the
//! records are in blocks no file owns after the remount, and receipted messages were lost
//! (seen in about 1 round of 20 of `every_receipt_survives_an_aborted_file_system`). So the
//! sync then changes the size of a small file of ours ([`CANARY`]), which needs a new
//! journal handle: on an aborted journal that fails at once, and the sync with it.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The file whose size each sync changes to prove that the file system still journals
/// (see the module's documentation); in the database's directory, where sled ignores it.
pub(super) const CANARY: &str = "sync-check";

/// Syncs one sled `Db`'s log file and blob files; opened with the `Db`, replaced with it.
#[derive(Debug)]
pub(super) struct LogSync {
    /// sled's log file (`<dir>/db`), opened read-only: `fdatasync` needs no write access.
    log: File,
    /// [`CANARY`], opened for writing.
    canary: File,
    blobs: PathBuf,
    /// Syncs started so far (each numbered by this count when it starts).
    started: AtomicU64,
    /// Held for the whole of a sync: syncs run one at a time (see [`LogSync::sync`]).
    state: Mutex<SyncState>,
}

#[derive(Debug, Default)]
struct SyncState {
    /// The number of the last sync that succeeded.
    completed: u64,
    /// The first failure, kept: every later sync fails with it (see [`LogSync::sync`]).
    failed: Option<(io::ErrorKind, Option<i32>)>,
    /// Blob files synced, with the length they had just before their sync.
    blobs: HashMap<OsString, u64>,
    /// The canary's length: it alternates between 0 and 1, so that each check is a change.
    canary_len: u64,
}

impl LogSync {
    /// Opens the log file of the sled database just opened in `dir`, and syncs its
    /// configuration file (sled writes it at every open without a sync; after a crash it came
    /// back empty and sled warned "empty/corrupt configuration file found"), the directory and
    /// its `blobs` directory, so that the entries of the files sled created there survive a
    /// crash too.
    pub(super) fn open(dir: &Path) -> io::Result<LogSync> {
        let log = File::open(dir.join("db"))?;
        let canary = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join(CANARY))?;
        let blobs = dir.join("blobs");
        match File::open(dir.join("conf")) {
            Ok(conf) => conf.sync_all()?,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        sync_dir(dir)?;
        match sync_dir(&blobs) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            other => other?,
        }
        Ok(LogSync {
            log,
            canary,
            blobs,
            started: AtomicU64::new(0),
            state: Mutex::new(SyncState::default()),
        })
    }

    /// Makes everything sled wrote before this call durable. Call it after `Db::flush()`
    /// returned, before telling anyone the flush's writes are on disk.
    ///
    /// Syncs run one at a time, and a sync that started after this call covers it: with both
    /// of the committer's flights done flushing, the second often finds its writes synced by
    /// the first and returns without a second `fdatasync`.
    ///
    /// A failure is kept and returned by every later call: Linux reports a write-back error
    /// to one `fsync` per open file, and a later `fsync` of the same file can succeed although
    /// the pages it failed to write are lost. The store is then reopened with a new `LogSync`.
    pub(super) fn sync(&self) -> io::Result<()> {
        // Any sync numbered above this one starts after sled's flush returned.
        let needed = self.started.load(Ordering::SeqCst) + 1;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((kind, code)) = state.failed {
            return Err(code.map_or_else(|| kind.into(), io::Error::from_raw_os_error));
        }
        if state.completed >= needed {
            return Ok(());
        }
        let number = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        // Blobs before the log: a durable log record whose blob is not would be dropped at
        // recovery.
        let synced = sync_blobs(&self.blobs, &mut state.blobs)
            .and_then(|()| self.log.sync_data())
            .and_then(|()| {
                // Whatever the sync reported, it may not have been journalled if the journal
                // aborted meanwhile: then this change of size, which needs a journal handle,
                // fails (see the module's documentation).
                let len = 1 - state.canary_len;
                if let Err(error) = self.canary.set_len(len) {
                    tracing::warn!(
                        %error,
                        "the file system refused a change right after a sync that reported \
                         success: the sync is taken as failed"
                    );
                    return Err(error);
                }
                state.canary_len = len;
                Ok(())
            });
        match synced {
            Ok(()) => {
                state.completed = number;
                Ok(())
            }
            Err(error) => {
                state.failed = Some((error.kind(), error.raw_os_error()));
                Err(error)
            }
        }
    }
}

/// `fdatasync`s every blob file that is new or grew since its last sync (sled writes a blob
/// once, in one go, possibly while we look), then the directory if any was. Blobs are rare
/// (pages over about 128 KiB), so listing the directory per sync costs a few system calls.
fn sync_blobs(blobs: &Path, synced: &mut HashMap<OsString, u64>) -> io::Result<()> {
    let entries = match std::fs::read_dir(blobs) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    let mut present = HashMap::with_capacity(synced.len());
    let mut any = false;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        // Removed since it was listed: sled deletes blobs it no longer needs.
        let gone = |error: &io::Error| error.kind() == io::ErrorKind::NotFound;
        let len = match entry.metadata() {
            Ok(metadata) => metadata.len(),
            Err(error) if gone(&error) => continue,
            Err(error) => return Err(error),
        };
        if synced.get(&name) != Some(&len) {
            match File::open(entry.path()) {
                Ok(file) => file.sync_data()?,
                Err(error) if gone(&error) => continue,
                Err(error) => return Err(error),
            }
            any = true;
        }
        present.insert(name, len);
    }
    if any {
        sync_dir(blobs)?;
    }
    *synced = present;
    Ok(())
}

/// `fsync`s a directory, so that the entries of files created in it survive a crash.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Elsewhere a directory cannot be opened as a file; there is nothing to sync this way.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_sync_fails_every_later_one_and_covered_syncs_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let sync = LogSync::open(dir.path()).unwrap();
        db.insert(b"k", vec![1u8; 200 * 1024]).unwrap();
        db.flush().unwrap();
        sync.sync().unwrap();
        // The 200 KiB value went to a blob file, which was synced and remembered.
        assert_eq!(sync.state.lock().unwrap().blobs.len(), 1);
        assert_eq!(sync.started.load(Ordering::SeqCst), 1);
        // A sync that started after the call covers it: none is needed.
        sync.state.lock().unwrap().completed = 2;
        sync.sync().unwrap();
        assert_eq!(sync.started.load(Ordering::SeqCst), 1);
        sync.state.lock().unwrap().failed = Some((io::ErrorKind::Other, Some(30)));
        let error = sync.sync().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ReadOnlyFilesystem);
    }
}
