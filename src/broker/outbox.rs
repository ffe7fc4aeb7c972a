//! A subscriber's bounded outbox: what the broker has routed to a session and its writer has
//! not yet written to the socket.
//!
//! Flow control lives here. The outbox has a high-water mark in messages and in bytes. A
//! publisher that finds it above the mark waits (`room`) before taking its next frame, so the
//! publishing client is slowed by TCP/WebSocket flow control instead of the broker buffering
//! without bound or dropping. An outbox that stays above the mark for longer than the grace is
//! cut off: its session gets an ERROR and is closed, and waiting publishers go on at once. A hard
//! cap (a multiple of the mark) bounds memory even with many publishers at once.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::message::Message;
use super::queue::Queue;
use stompede_protocol::Frame;

/// Outbox sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxLimits {
    /// Above this many queued items, publishers wait.
    pub high_water_messages: usize,
    /// Above this many queued bytes, publishers wait.
    pub high_water_bytes: usize,
    /// How long an outbox may stay above the mark before its session is cut off.
    pub slow_consumer_grace: Duration,
    /// Bytes all outboxes together may hold before every publisher waits.
    pub memory_cap: usize,
}

impl Default for OutboxLimits {
    fn default() -> Self {
        // Each queued message is latency for everyone behind it: at 15,000 messages/s per
        // subscriber, 64 messages are ~4 ms of queue; 1,024 held a fan-out's p99 near 1 s
        // (BENCHMARKS.md, flow control). Fan-out throughput did not drop with the lower mark.
        OutboxLimits {
            high_water_messages: 64,
            high_water_bytes: 1024 * 1024,
            slow_consumer_grace: Duration::from_secs(5),
            memory_cap: 1024 * 1024 * 1024,
        }
    }
}

/// The hard cap is this multiple of the high-water mark.
const HARD_CAP_FACTOR: usize = 4;

/// One thing to write to a session.
#[derive(Debug)]
pub enum Outgoing {
    /// A control frame (CONNECTED, RECEIPT, ERROR, ...), encoded by the writer.
    Frame(Frame),
    /// A MESSAGE for a subscription.
    Delivery(Delivery),
}

impl Outgoing {
    fn size(&self) -> usize {
        match self {
            Outgoing::Frame(frame) => frame.body.len() + 128,
            Outgoing::Delivery(d) => d.message.size() + d.subscription.len(),
        }
    }
}

/// A message addressed to one subscription.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The shared message.
    pub message: Arc<Message>,
    /// The subscription id (`subscription` header).
    pub subscription: bytestring::ByteString,
    /// The `ack` header value, when the subscription acknowledges.
    pub ack: Option<bytestring::ByteString>,
    /// Whether this is a redelivery (`redelivered:true`).
    pub redelivered: bool,
    /// For an auto-acknowledged persistent message: acknowledges it once written.
    pub settle: Option<super::queue::Settle>,
}

/// Why an outbox was closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The session ends normally after what is queued has been written.
    Finished,
    /// The session must end with this ERROR frame after what is queued has been written.
    Error(Box<Frame>),
    /// The subscriber did not read: drop what is queued, send an ERROR if possible.
    SlowConsumer,
    /// Writing to the socket failed: the peer is gone.
    Broken,
}

/// Result of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pressure {
    /// Below the high-water mark.
    Clear,
    /// At or above the mark: the publisher should wait for [`Outbox::room`].
    Full,
}

/// The bytes held by every outbox of a broker together, against a cap, so that many full
/// outboxes (each within its own mark) cannot exhaust memory between them.
#[derive(Debug)]
pub struct MemoryBudget {
    used: AtomicUsize,
    cap: usize,
}

impl MemoryBudget {
    /// A budget of `cap` bytes.
    pub fn new(cap: usize) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget {
            used: AtomicUsize::new(0),
            cap,
        })
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn over(&self) -> bool {
        self.used() >= self.cap
    }

    fn add(&self, n: usize) {
        self.used.fetch_add(n, Ordering::Relaxed);
    }

    fn sub(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::Relaxed);
    }
}

/// How often a publisher waiting on the shared budget looks again (other outboxes' drains do
/// not wake it).
const BUDGET_RECHECK: Duration = Duration::from_millis(10);

/// What [`Outbox::take`] found.
enum Taken {
    Items,
    Nothing,
    Closed(CloseReason),
}

/// The outbox is closed; nothing more is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

#[derive(Debug, Default)]
struct State {
    items: VecDeque<Outgoing>,
    bytes: usize,
    closed: Option<CloseReason>,
    /// When the outbox last went above the mark; `None` while below.
    full_since: Option<Instant>,
    /// Queues with a consumer on this outbox: dispatched again when room appears.
    queues: Vec<Arc<Queue>>,
}

/// A session's bounded outbox. Shared between the publishers that push to it, the writer task
/// that drains it and the session that owns it.
#[derive(Debug)]
pub struct Outbox {
    // A std Mutex: every critical section is a few pointer moves and never awaits, so an async
    // mutex would only add cost.
    state: Mutex<State>,
    /// Whether the state was above the mark when it last changed: read by queue dispatches,
    /// which look at every consumer's outbox and should not take each one's lock for it.
    full: AtomicBool,
    limits: OutboxLimits,
    writer_wake: Notify,
    room: Notify,
    closed: Notify,
    budget: Arc<MemoryBudget>,
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let bytes = self.lock().bytes;
        self.budget.sub(bytes);
    }
}

impl Outbox {
    /// An empty outbox drawing on `budget`.
    pub fn new(limits: OutboxLimits, budget: Arc<MemoryBudget>) -> Arc<Outbox> {
        Arc::new(Outbox {
            state: Mutex::new(State::default()),
            full: AtomicBool::new(false),
            limits,
            writer_wake: Notify::new(),
            room: Notify::new(),
            closed: Notify::new(),
            budget,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves only queue contents behind, which stay valid.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn above_mark(&self, state: &State) -> bool {
        state.items.len() >= self.limits.high_water_messages
            || state.bytes >= self.limits.high_water_bytes
    }

    fn above_hard_cap(&self, state: &State) -> bool {
        state.items.len() >= self.limits.high_water_messages * HARD_CAP_FACTOR
            || state.bytes >= self.limits.high_water_bytes.saturating_mul(HARD_CAP_FACTOR)
    }

    /// Queues an item for the writer; the pressure tells publishers whether to wait. Past the
    /// hard cap the outbox is cut off as a slow consumer.
    pub fn push(&self, item: Outgoing) -> Result<Pressure, Closed> {
        self.push_within(item, true)
    }

    /// Queues the session's answer to its own frame: a RECEIPT, or the first messages a
    /// guarded subscription gets (a snapshot, a replay of up to the event log's length). Never
    /// cut off for the hard cap: the session waits for room before it reads its next frame
    /// ([`room_or_cut_off`](Self::room_or_cut_off)), so a client's answers are bounded by what
    /// one frame asks for, and a client that sends faster than it reads is paced, then cut off
    /// after the grace, not at once.
    pub fn push_reply(&self, item: Outgoing) -> Result<Pressure, Closed> {
        self.push_within(item, false)
    }

    fn push_within(&self, item: Outgoing, hard_cap: bool) -> Result<Pressure, Closed> {
        let mut state = self.lock();
        if state.closed.is_some() {
            return Err(Closed);
        }
        if hard_cap && self.above_hard_cap(&state) {
            drop(state);
            self.close(CloseReason::SlowConsumer);
            return Err(Closed);
        }
        let was_empty = state.items.is_empty();
        let size = item.size();
        state.bytes += size;
        self.budget.add(size);
        state.items.push_back(item);
        let above = self.above_mark(&state);
        self.full.store(above, Ordering::Relaxed);
        let pressure = if above {
            state.full_since.get_or_insert_with(Instant::now);
            Pressure::Full
        } else if self.budget.over() {
            Pressure::Full
        } else {
            Pressure::Clear
        };
        drop(state);
        // The writer drains until empty before it waits, so only the first item needs a wake.
        if was_empty {
            self.writer_wake.notify_one();
        }
        Ok(pressure)
    }

    /// Items and bytes waiting to be written.
    pub fn backlog(&self) -> (usize, usize) {
        let state = self.lock();
        (state.items.len(), state.bytes)
    }

    /// True when above the high-water mark (queues skip such a consumer).
    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    /// When the outbox went above the mark, if it is above it now.
    pub fn full_since(&self) -> Option<Instant> {
        self.lock().full_since
    }

    /// Waits until the outbox is below the mark or closed.
    pub async fn room(&self) {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let state = self.lock();
                if state.closed.is_some() || (!self.above_mark(&state) && !self.budget.over()) {
                    return;
                }
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(BUDGET_RECHECK), if self.budget.over() => {}
            }
        }
    }

    /// Waits for room, at most until the grace since the outbox filled runs out; then cuts the
    /// outbox off as a slow consumer. Returns true when the outbox was cut off.
    ///
    /// When only the shared memory budget is exhausted (this outbox is within its own mark),
    /// the wait is bounded by the grace too, but nobody is cut off for it.
    pub async fn room_or_cut_off(&self) -> bool {
        let since = self.full_since().unwrap_or_else(Instant::now);
        let deadline = since + self.limits.slow_consumer_grace;
        if tokio::time::timeout_at(deadline, self.room()).await.is_ok() || !self.is_full() {
            return false;
        }
        self.close(CloseReason::SlowConsumer);
        true
    }

    /// Registers a queue to dispatch again whenever this outbox drains below its mark.
    pub fn watch_queue(&self, queue: Arc<Queue>) {
        let mut state = self.lock();
        if !state.queues.iter().any(|q| Arc::ptr_eq(q, &queue)) {
            state.queues.push(queue);
        }
    }

    /// Forgets a queue registered with [`watch_queue`](Self::watch_queue).
    pub fn unwatch_queue(&self, queue: &Arc<Queue>) {
        self.lock().queues.retain(|q| !Arc::ptr_eq(q, queue));
    }

    /// Writer side: moves up to `max` items into `batch`, waiting while there are none.
    /// Returns the close reason once closed (after the queued items for a graceful close).
    /// Cancel-safe: the items stay in the outbox until taken.
    pub async fn next_batch(
        &self,
        batch: &mut Vec<Outgoing>,
        max: usize,
    ) -> Result<(), CloseReason> {
        loop {
            let notified = self.writer_wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.take(batch, max) {
                Taken::Items => return Ok(()),
                Taken::Closed(reason) => return Err(reason),
                Taken::Nothing => notified.await,
            }
        }
    }

    /// Moves up to `max` items into `batch`; when that brings the outbox below its mark, wakes
    /// the waiting publishers and re-dispatches the watched queues.
    fn take(&self, batch: &mut Vec<Outgoing>, max: usize) -> Taken {
        let mut guard = self.lock();
        let state = &mut *guard;
        let discard = matches!(
            state.closed,
            Some(CloseReason::SlowConsumer | CloseReason::Broken)
        );
        if discard || state.items.is_empty() {
            return match &state.closed {
                Some(reason) => Taken::Closed(reason.clone()),
                None => Taken::Nothing,
            };
        }
        let was_full = self.above_mark(state);
        let n = state.items.len().min(max);
        let mut taken = 0;
        for item in state.items.drain(..n) {
            taken += item.size();
            batch.push(item);
        }
        if state.items.is_empty() {
            // An emptied queue keeps its allocation: let it go, so an idle session holds none
            // (the writer lets its batch go at the same point).
            state.items = VecDeque::new();
        }
        state.bytes -= taken;
        self.budget.sub(taken);
        let above = self.above_mark(state);
        self.full.store(above, Ordering::Relaxed);
        if was_full && !above {
            state.full_since = None;
            let queues = state.queues.clone();
            drop(guard);
            self.room.notify_waiters();
            for queue in queues {
                queue.dispatch();
            }
        }
        Taken::Items
    }

    /// Closes the outbox. The first reason given wins. Wakes the writer, the waiting
    /// publishers and the session.
    pub fn close(&self, reason: CloseReason) {
        let queues = {
            let mut state = self.lock();
            if state.closed.is_some() {
                return;
            }
            if matches!(reason, CloseReason::SlowConsumer | CloseReason::Broken) {
                state.items.clear();
                self.budget.sub(state.bytes);
                state.bytes = 0;
            }
            state.closed = Some(reason);
            state.full_since = None;
            self.full.store(self.above_mark(&state), Ordering::Relaxed);
            std::mem::take(&mut state.queues)
        };
        drop(queues);
        self.writer_wake.notify_one();
        self.room.notify_waiters();
        self.closed.notify_waiters();
    }

    /// The close reason, once closed.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.lock().closed.clone()
    }

    /// Waits until the outbox is closed; returns the reason.
    pub async fn closed(&self) -> CloseReason {
        loop {
            let notified = self.closed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(reason) = self.close_reason() {
                return reason;
            }
            notified.await;
        }
    }

    /// Takes the oldest item (in-process subscribers read this way).
    pub fn try_pop(&self) -> Option<Outgoing> {
        let mut one = Vec::with_capacity(1);
        match self.take(&mut one, 1) {
            Taken::Items => one.pop(),
            _ => None,
        }
    }

    /// Waits until an item can be popped or the outbox is closed.
    pub async fn pop(&self) -> Option<Outgoing> {
        loop {
            let notified = self.writer_wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(item) = self.try_pop() {
                return Some(item);
            }
            if self.close_reason().is_some() {
                return None;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stompede_protocol::Command;

    #[tokio::test]
    async fn a_drained_outbox_holds_no_queue_memory_and_budget_comes_back() {
        let budget = MemoryBudget::new(1 << 20);
        let outbox = Outbox::new(OutboxLimits::default(), budget.clone());
        for _ in 0..10 {
            let _ = outbox.push(Outgoing::Frame(Frame::new(Command::Receipt)));
        }
        assert!(outbox.lock().items.capacity() >= 10);
        assert!(budget.used() > 0);
        let mut batch = Vec::new();
        outbox.next_batch(&mut batch, 4).await.unwrap();
        assert_eq!(batch.len(), 4);
        assert!(outbox.lock().items.capacity() >= 6, "still busy: kept");
        outbox.next_batch(&mut batch, 256).await.unwrap();
        assert_eq!(batch.len(), 10);
        assert_eq!(outbox.lock().items.capacity(), 0, "drained: let go");
        assert_eq!(budget.used(), 0);
    }
}
