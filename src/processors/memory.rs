//! A memory budget shared by every job of a type: bytes are reserved before the in-memory
//! structures they pay for are built, and given back when those are dropped. A chunk that
//! cannot get its reservation waits for room (first come, first served) instead of going over.
//!
//! The budget counts what the structures are estimated to touch, not what the allocator
//! reports: its callers reserve by the measured cost per row or per page, so that the
//! process's resident memory above its idle size stays within the budget.
//!
//! A chunk waits through [`MemoryBudget::for_chunk`] (blocking code) or
//! [`MemoryBudget::for_chunk_async`] (async code): while it waits, its job's progress step says
//! [`WAITING`], and a cancelled job stops waiting. The `reconcile`, `extract` and `ocr` job
//! types each have a budget of their own, and wait the same way.
//!
//! Bytes given back are free again only [`RETURN_DELAY`] later: the allocator (mimalloc) keeps
//! freed pages resident for a moment (its purge delay, 10 ms, times 10 for its arenas) before
//! it returns them to the system, and a chunk that allocated at once what another just freed
//! could find both resident. Measured: two 1M x 1M jobs at once peaked 522 MiB above idle
//! with the bytes free at once, 401 MiB with mimalloc told to purge at once.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::jobs::{ChunkContext, JobError};

/// The step a chunk's progress shows while it waits for its memory.
pub const WAITING: &str = "waiting for memory";

/// How often a waiting reservation looks at its cancellation and its `waiting` hook.
const TICK: Duration = Duration::from_millis(100);
/// How long bytes given back stay counted: longer than the allocator keeps freed pages.
pub const RETURN_DELAY: Duration = Duration::from_millis(250);

/// Bytes that the jobs sharing it may hold at once.
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    capacity: u64,
    return_delay: Duration,
    // A std Mutex: held for a few instructions, never across I/O or an await; the Condvar
    // wakes the waiters when bytes come back.
    state: Mutex<State>,
    room: Condvar,
}

#[derive(Debug)]
struct State {
    free: u64,
    /// Bytes given back, and when they are free again, oldest first.
    returning: VecDeque<(Instant, u64)>,
    /// Tickets of the reservations waiting, oldest first: only the oldest may take bytes, so
    /// a large reservation is not starved by small ones.
    waiting: VecDeque<u64>,
    next_ticket: u64,
}

impl MemoryBudget {
    /// A budget of `capacity` bytes; bytes given back are free again [`RETURN_DELAY`] later.
    pub fn new(capacity: u64) -> MemoryBudget {
        MemoryBudget::with_return_delay(capacity, RETURN_DELAY)
    }

    /// A budget of `capacity` bytes whose bytes given back are free again `delay` later.
    pub fn with_return_delay(capacity: u64, delay: Duration) -> MemoryBudget {
        MemoryBudget {
            inner: Arc::new(Inner {
                capacity,
                return_delay: delay,
                state: Mutex::new(State {
                    free: capacity,
                    returning: VecDeque::new(),
                    waiting: VecDeque::new(),
                    next_ticket: 0,
                }),
                room: Condvar::new(),
            }),
        }
    }

    /// The state, with the bytes whose delay is over counted free.
    fn lock(&self) -> MutexGuard<'_, State> {
        let mut state = self
            .inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.mature(Instant::now());
        state
    }

    /// All the bytes.
    pub fn capacity(&self) -> u64 {
        self.inner.capacity
    }

    /// Bytes not reserved now.
    pub fn available(&self) -> u64 {
        self.lock().free
    }

    /// `bytes` at once if they are free and nobody waits before; `None` otherwise.
    pub fn try_reserve(&self, bytes: u64) -> Option<Reservation> {
        let mut state = self.lock();
        if !state.waiting.is_empty() || state.free < bytes {
            return None;
        }
        state.free -= bytes;
        Some(Reservation {
            budget: self.clone(),
            bytes,
        })
    }

    /// `bytes` (at most the whole budget), waiting for them as long as it takes. `waiting`
    /// is called when the bytes are not free at once, and then every 100 ms (to report the
    /// wait, or to free memory held by idle jobs); the wait ends with `None` when `cancelled`
    /// says so.
    pub fn reserve(
        &self,
        bytes: u64,
        cancelled: &dyn Fn() -> bool,
        waiting: &mut dyn FnMut(),
    ) -> Option<Reservation> {
        let bytes = bytes.min(self.inner.capacity);
        let mut state = self.lock();
        if state.waiting.is_empty() && state.free >= bytes {
            state.free -= bytes;
            return Some(Reservation {
                budget: self.clone(),
                bytes,
            });
        }
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.waiting.push_back(ticket);
        loop {
            if state.waiting.front() == Some(&ticket) && state.free >= bytes {
                state.free -= bytes;
                state.waiting.pop_front();
                // The next in line may fit in what is left.
                self.inner.room.notify_all();
                return Some(Reservation {
                    budget: self.clone(),
                    bytes,
                });
            }
            if cancelled() {
                state.waiting.retain(|t| *t != ticket);
                self.inner.room.notify_all();
                return None;
            }
            drop(state);
            waiting();
            state = self.lock();
            let now = Instant::now();
            let tick = match state.returning.front() {
                Some((at, _)) => at
                    .saturating_duration_since(now)
                    .clamp(Duration::from_millis(1), TICK),
                None => TICK,
            };
            state = self
                .inner
                .room
                .wait_timeout(state, tick)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
            state.mature(Instant::now());
        }
    }

    /// `bytes` for a running chunk of `ctx`'s job, waiting for room as long as the job is not
    /// cancelled (then a `cancelled` error). While it waits, `waiting` is called at once and
    /// then every 100 ms: to show [`WAITING`] in the job's progress (the engine throttles
    /// reports, so calling at every tick is fine), and to let go of memory idle jobs keep.
    pub fn for_chunk(
        &self,
        ctx: &ChunkContext,
        bytes: u64,
        waiting: &mut dyn FnMut(),
    ) -> Result<Reservation, JobError> {
        let mut logged = false;
        self.reserve(bytes, &|| ctx.is_cancelled(), &mut || {
            if !logged {
                logged = true;
                tracing::debug!(job = %ctx.job.id, chunk = ctx.index, bytes, "waiting for memory");
            }
            waiting();
        })
        .ok_or_else(|| JobError::permanent("cancelled", "the job was cancelled"))
    }

    /// [`MemoryBudget::for_chunk`] for async code: at once when the bytes are free, else the
    /// wait runs on the blocking pool (a thread per waiting chunk, as few as the chunks that
    /// run at once), its progress showing `processed` units of the chunk done and [`WAITING`].
    pub async fn for_chunk_async(
        &self,
        ctx: &ChunkContext,
        bytes: u64,
        processed: u64,
    ) -> Result<Reservation, JobError> {
        if let Some(reservation) = self.try_reserve(bytes.min(self.inner.capacity)) {
            return Ok(reservation);
        }
        let (budget, ctx) = (self.clone(), ctx.clone());
        tokio::task::spawn_blocking(move || {
            let units = ctx.plan.units;
            budget.for_chunk(&ctx, bytes, &mut || ctx.report(processed, units, WAITING))
        })
        .await
        .map_err(|e| JobError::retryable("internal_error", format!("a memory wait failed: {e}")))?
    }

    fn give_back(&self, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let mut state = self.lock();
        let at = Instant::now() + self.inner.return_delay;
        state.returning.push_back((at, bytes));
        state.mature(Instant::now());
        self.inner.room.notify_all();
    }
}

impl State {
    /// Counts free the bytes given back before `now`.
    fn mature(&mut self, now: Instant) {
        while let Some(&(at, bytes)) = self.returning.front() {
            if at > now {
                break;
            }
            self.free += bytes;
            self.returning.pop_front();
        }
    }
}

/// Bytes taken from a [`MemoryBudget`], given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: MemoryBudget,
    bytes: u64,
}

impl Reservation {
    /// The bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Moves up to `bytes` of this reservation into a new one.
    pub fn split(&mut self, bytes: u64) -> Reservation {
        let bytes = bytes.min(self.bytes);
        self.bytes -= bytes;
        Reservation {
            budget: self.budget.clone(),
            bytes,
        }
    }

    /// Adds `other`'s bytes to this one.
    pub fn merge(&mut self, mut other: Reservation) {
        self.bytes += std::mem::take(&mut other.bytes);
    }

    /// Gives back all but `bytes`.
    pub fn shrink_to(&mut self, bytes: u64) {
        if bytes < self.bytes {
            let extra = self.bytes - bytes;
            self.bytes = bytes;
            self.budget.give_back(extra);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn reservations_come_back_when_dropped() {
        let budget = MemoryBudget::with_return_delay(100, Duration::ZERO);
        let mut a = budget.try_reserve(60).unwrap();
        assert!(budget.try_reserve(50).is_none());
        let b = a.split(20);
        assert_eq!((a.bytes(), b.bytes(), budget.available()), (40, 20, 40));
        drop(b);
        assert_eq!(budget.available(), 60);
        a.shrink_to(10);
        assert_eq!(budget.available(), 90);
        let c = budget.try_reserve(90).unwrap();
        a.merge(c);
        assert_eq!((a.bytes(), budget.available()), (100, 0));
        drop(a);
        assert_eq!(budget.available(), 100);
    }

    #[test]
    fn a_reservation_waits_for_room_and_in_turn() {
        let budget = MemoryBudget::new(100);
        let held = budget.try_reserve(80).unwrap();
        let waited = AtomicBool::new(false);
        std::thread::scope(|s| {
            let big = s.spawn(|| {
                budget.reserve(70, &|| false, &mut || waited.store(true, Ordering::Relaxed))
            });
            while !waited.load(Ordering::Relaxed) {
                std::thread::yield_now();
            }
            // Someone waits: a small request does not pass it, though 20 bytes are free.
            assert!(budget.try_reserve(10).is_none());
            drop(held);
            let big = big.join().unwrap().unwrap();
            assert_eq!((big.bytes(), budget.available()), (70, 30));
        });
        // More than the whole budget is clamped to it (once the 70 bytes are back).
        assert_eq!(
            budget
                .reserve(1_000, &|| false, &mut || {})
                .unwrap()
                .bytes(),
            100
        );
    }

    #[test]
    fn bytes_given_back_are_free_after_the_delay() {
        let budget = MemoryBudget::with_return_delay(100, Duration::from_secs(3600));
        drop(budget.try_reserve(60).unwrap());
        assert_eq!(budget.available(), 40, "still counted for an hour");
        assert!(budget.try_reserve(50).is_none());
    }

    #[test]
    fn a_cancelled_wait_gives_up_its_turn() {
        let budget = MemoryBudget::with_return_delay(10, Duration::ZERO);
        let _held = budget.try_reserve(10).unwrap();
        let mut calls = 0;
        let got = budget.reserve(5, &|| true, &mut || calls += 1);
        assert!(got.is_none());
        assert_eq!(calls, 0, "cancelled before any wait");
        drop(_held);
        assert!(budget.try_reserve(10).is_some(), "nobody waits any more");
    }
}
