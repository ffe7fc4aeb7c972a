//! The store's supervisor: after a failed write or flush it waits for the data directory to
//! take writes again, then reopens the sled `Db`, which is the only way to clear sled's sticky
//! I/O error (see the module docs of `store`).
//!
//! Probing first keeps reads going: the poisoned `Db` still serves reads, and it is dropped
//! only once a probe write has worked, so the store is without a `Db` only for the moment of
//! the reopen (or until a reopen that failed anyway is retried).

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{describe, describe_io, Health, Inner, Trees, LOST_RANGES};

/// The probe file written, synced and removed before a reopen: room for two of sled's 512 KiB
/// log segments, so a reopen (which writes one) is unlikely to meet a full disk again at once.
const PROBE_BYTES: usize = 1024 * 1024;
/// The first pause between probes, and the longest (the pause doubles in between).
const FIRST_PAUSE: Duration = Duration::from_millis(200);
const LONGEST_PAUSE: Duration = Duration::from_secs(2);
/// How long a reopen waits for the callers still using the old `Db` (each holds it for one
/// store operation).
const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// Starts the supervisor unless one runs.
pub(super) fn start(inner: &Arc<Inner>) {
    if inner.supervising.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(supervise(Arc::downgrade(inner)));
}

/// Probes and reopens until the store is available again, or the store is dropped.
async fn supervise(store: Weak<Inner>) {
    let mut pause = FIRST_PAUSE;
    loop {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(LONGEST_PAUSE);
        let Some(inner) = store.upgrade() else { return };
        let reopened = {
            let inner = inner.clone();
            tokio::task::spawn_blocking(move || probe_and_reopen(&inner)).await
        };
        match reopened {
            Ok(Ok(())) => {
                inner.reopens.fetch_add(1, Ordering::Relaxed);
                inner.supervising.store(false, Ordering::Release);
                inner.health.send_replace(Health::Available);
                // Callers that arrived while it was down are flushed now.
                inner.flush_wanted.notify_one();
                tracing::warn!("store available again: reopened after a disk fault");
                return;
            }
            Ok(Err(reason)) => {
                // The cause may change (a full disk remounted read-only): say the latest.
                inner.health.send_if_modified(|health| match health {
                    Health::Unavailable { reason: was } if *was != reason => {
                        *was = reason.clone();
                        true
                    }
                    _ => false,
                });
                tracing::debug!(%reason, "store still unavailable");
            }
            Err(error) => tracing::error!(%error, "store probe failed to run"),
        }
    }
}

/// Writes a probe file; if the disk takes it, drops the old `Db` and opens a new one.
fn probe_and_reopen(inner: &Inner) -> Result<(), String> {
    probe(inner)?;
    let old = inner
        .trees
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(old) = old {
        // Wait for the operations still running on the old `Db`: once they are done, every
        // write made to it is counted in `written` (writes count while holding it).
        let deadline = std::time::Instant::now() + RELEASE_WAIT;
        while Arc::strong_count(&old) > 1 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let flushed = *inner.flushed.borrow();
        let written = inner.written.load(Ordering::Acquire);
        if written > flushed {
            let mut lost = inner.lost.lock().unwrap_or_else(|e| e.into_inner());
            if lost.len() == LOST_RANGES {
                lost.pop_front();
            }
            lost.push_back((flushed, written));
        }
        drop(old);
    }
    // sled's file lock is held until the last handle on the old `Db` is gone (a flush that
    // was running): a failed open is retried on the next turn.
    let trees = Trees::open(&inner.dir, inner.flush_interval, inner.cache_mib).map_err(
        |error| match error {
            super::StoreError::Sled(error) => describe(&error),
            other => other.to_string(),
        },
    )?;
    *inner.trees.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(trees));
    Ok(())
}

/// Can the data directory take a write and a sync now?
fn probe(inner: &Inner) -> Result<(), String> {
    let path = inner.dir.join("probe.tmp");
    let written = (|| {
        let mut file = std::fs::File::create(&path)?;
        // Written in 64 KiB pieces: a bounded buffer however large the probe.
        let piece = [0u8; 64 * 1024];
        for _ in 0..PROBE_BYTES / piece.len() {
            file.write_all(&piece)?;
        }
        file.sync_all()
    })();
    let _ = std::fs::remove_file(&path);
    written.map_err(|error| describe_io(&error))
}
