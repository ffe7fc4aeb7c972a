//! Group commit: one task decides when the store is flushed, so that concurrent callers of
//! [`Store::commit_own`](super::Store::commit_own) and
//! [`Store::commit_since`](super::Store::commit_since) share flushes.
//!
//! A flush, with the sync that makes it durable (`durable.rs`), costs about the same whether
//! it carries one write or a hundred (on a virtual disk, hundreds of microseconds for sled's
//! write, much of it CPU in the kernel, then milliseconds for the `fdatasync`, which waits for
//! the file system's journal), so flushing again the moment the first released caller is back
//! makes many small flushes that starve the callers of CPU; and a flush keeps the CPU idle
//! while it waits for the disk, so waiting for every caller before each flush leaves the CPU
//! idle for as long. The committer does neither: it treats the callers as two cohorts. It
//! starts a flush once half of the callers seen lately are waiting and not covered by a flush
//! already running (at most two run at once), so one cohort's flush overlaps the other
//! cohort's work. A lone caller is flushed at once; a caller never
//! waits more than [`MAX_GATHER`] for others to join.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::durable::LogSync;
use super::{describe, Health, Inner};

/// The longest a waiting caller's flush is held back for others to join.
const MAX_GATHER: Duration = Duration::from_millis(1);
/// Flushes running at once: one per cohort.
const MAX_FLIGHTS: usize = 2;
/// How long the count of concurrent callers is remembered.
const WRITERS_WINDOW: Duration = Duration::from_millis(100);

/// A flush under way: the writes it covers.
struct Flight {
    target: u64,
}

/// Runs until the store is dropped (it holds the store only weakly, so dropping the last
/// [`Store`](super::Store) closes the database).
pub(super) async fn committer(store: Weak<Inner>, wanted: Arc<Notify>) {
    let mut flights: JoinSet<(Flight, Result<(), sled::Error>)> = JoinSet::new();
    // Callers that arrived before the last flush started are covered by it.
    let mut covered_arrivals = 0u64;
    let mut started_through = 0u64;
    let mut writers = RecentPeak::default();
    let mut gathering_since: Option<Instant> = None;
    loop {
        let notified = wanted.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let deadline = {
            let Some(inner) = store.upgrade() else { return };
            writers.observe(inner.waiting.load(Ordering::Acquire));
            let arrivals = inner.arrivals.load(Ordering::Acquire);
            let uncovered = arrivals.saturating_sub(covered_arrivals) as usize;
            let written = inner.written.load(Ordering::Acquire);
            if written <= started_through.max(*inner.flushed.borrow()) {
                // Whoever waits is covered by a flush already started.
                covered_arrivals = arrivals;
            }
            if written > started_through.max(*inner.flushed.borrow()) && uncovered > 0 {
                let since = *gathering_since.get_or_insert_with(Instant::now);
                let cohort = writers.peak().div_ceil(2);
                let ready = uncovered >= cohort || since.elapsed() >= MAX_GATHER;
                // While the store is unavailable its waiters are answered with the cause and
                // a flush would fail again: the supervisor wakes us once it is reopened.
                let available = *inner.health.borrow() == Health::Available;
                if ready && available && flights.len() < MAX_FLIGHTS {
                    if let Ok(trees) = inner.trees() {
                        let flight = Flight { target: written };
                        started_through = written;
                        covered_arrivals = arrivals;
                        gathering_since = None;
                        // The flight holds the trees, not a bare `Db`: the store counts as
                        // closed only once no flight holds them (`Store::released`).
                        flights.spawn_blocking(move || (flight, flush(&trees.db, &trees.durable)));
                        continue;
                    }
                }
                if available {
                    // With both flights under way, only a finished one makes room.
                    (flights.len() < MAX_FLIGHTS).then_some(since + MAX_GATHER)
                } else {
                    gathering_since = None;
                    None
                }
            } else {
                gathering_since = None;
                None
            }
        };
        // Wake up now and then to notice that the store was dropped.
        let idle = Instant::now() + Duration::from_secs(1);
        tokio::select! {
            _ = notified => {}
            Some(done) = flights.join_next() => {
                let Some(inner) = store.upgrade() else { return };
                match done {
                    Ok((flight, Ok(()))) => {
                        // sled makes its log stable in order: a finished flush covers every
                        // write before its start, whichever flight finished first; and the
                        // sync after it covers all that was flushed before the sync began.
                        inner
                            .flushed
                            .send_modify(|done| *done = (*done).max(flight.target));
                    }
                    Ok((_, Err(error))) => {
                        // sled keeps this error and fails every later flush of this `Db`:
                        // the store becomes unavailable until the supervisor reopens it.
                        tracing::error!(error = %describe(&error), "store flush failed");
                        inner.fail(&error);
                        covered_arrivals = 0;
                        started_through = *inner.flushed.borrow();
                    }
                    Err(error) => {
                        tracing::error!(%error, "store flush task failed; retrying");
                        covered_arrivals = 0;
                        started_through = *inner.flushed.borrow();
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or(idle)) => {
                // Writes nobody waits for (periodic durability, delivery counts) are flushed
                // now and then by us too, so that a full disk is noticed even when no RECEIPT
                // asks for a flush.
                if deadline.is_none() && flights.is_empty() {
                    let Some(inner) = store.upgrade() else { return };
                    let written = inner.written.load(Ordering::Acquire);
                    let behind = written > started_through.max(*inner.flushed.borrow());
                    if behind && *inner.health.borrow() == Health::Available {
                        if let Ok(trees) = inner.trees() {
                            started_through = written;
                            flights.spawn_blocking(move || {
                                let flight = Flight { target: written };
                                (flight, flush(&trees.db, &trees.durable))
                            });
                        }
                    }
                }
            }
        }
    }
}

/// Flushes `db` and makes what it wrote durable: sled's flush only hands the log to the disk
/// with `sync_file_range`, and a crash can still lose it (see `durable.rs`).
fn flush(db: &sled::Db, durable: &LogSync) -> Result<(), sled::Error> {
    db.flush()?;
    durable.sync().map_err(sled::Error::Io)
}

/// The most callers seen waiting at once lately: an estimate of how many write concurrently.
#[derive(Debug)]
struct RecentPeak {
    current: usize,
    previous: usize,
    window_start: Instant,
}

impl Default for RecentPeak {
    fn default() -> Self {
        RecentPeak {
            current: 0,
            previous: 0,
            window_start: Instant::now(),
        }
    }
}

impl RecentPeak {
    fn observe(&mut self, waiting: usize) {
        if self.window_start.elapsed() >= WRITERS_WINDOW {
            self.previous = self.current;
            self.current = 0;
            self.window_start = Instant::now();
        }
        self.current = self.current.max(waiting);
    }

    fn peak(&self) -> usize {
        self.current.max(self.previous).max(1)
    }
}
