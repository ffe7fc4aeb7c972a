//! Point-to-point queues: messages wait until a consumer with credit takes them; competing
//! consumers are served round-robin; unacknowledged messages go back on NACK or disconnect, and
//! past the delivery limit move to the dead-letter queue. Persistent messages are mirrored in
//! the store from enqueue until acknowledged.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use bytestring::ByteString;

use super::federation::Lease;
use super::message::Message;
use super::metrics::Metrics;
use super::outbox::{Delivery, Outbox, Outgoing};
use super::queues::{QueuePolicy, QueueRegistry};
use crate::clock::now_ms;
use crate::store::StoreError;

/// How a subscription acknowledges (the SUBSCRIBE `ack` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    /// Delivered means acknowledged.
    Auto,
    /// An ACK acknowledges its message and every earlier one of the subscription.
    Client,
    /// An ACK acknowledges its message only.
    ClientIndividual,
}

impl AckMode {
    /// Parses the SUBSCRIBE `ack` header (absent means `auto`).
    pub fn parse(value: Option<&str>) -> Option<AckMode> {
        match value {
            None | Some("auto") => Some(AckMode::Auto),
            Some("client") => Some(AckMode::Client),
            Some("client-individual") => Some(AckMode::ClientIndividual),
            Some(_) => None,
        }
    }
}

/// A message waiting on a queue or held by a consumer.
#[derive(Debug, Clone)]
pub struct Queued {
    /// The message.
    pub message: Arc<Message>,
    /// True once it may have been delivered before.
    pub redelivered: bool,
    /// Times handed to a consumer.
    pub deliveries: u32,
    /// Its key in the store, when persistent.
    pub seq: Option<u64>,
    /// Expiry in ms since the epoch (0: never).
    pub expires: u64,
    /// The cluster's hold on it, when it was taken from the cluster's store (a cluster member's
    /// queue): settled there when it is acknowledged, given back when it is returned.
    pub lease: Option<Arc<dyn Lease>>,
}

impl Queued {
    /// Kept until acknowledged, in this node's store or the cluster's: an auto-ack delivery
    /// of it counts as acknowledged only once written (see `Settle`).
    fn is_kept(&self) -> bool {
        self.seq.is_some() || self.lease.is_some()
    }

    fn expired(&self, now_ms: u64) -> bool {
        self.expires != 0 && self.expires <= now_ms
    }
}

/// A consumer: one queue subscription of one session.
#[derive(Debug)]
pub struct Consumer {
    /// Unique among all subscriptions of the broker; prefixes `ack` ids.
    pub key: u64,
    /// The subscription id.
    pub subscription: ByteString,
    /// The session's outbox.
    pub outbox: Arc<Outbox>,
    /// How it acknowledges.
    pub ack_mode: AckMode,
    /// Most unacknowledged messages it may hold (`prefetch-count`); `None`: unbounded.
    pub prefetch: Option<usize>,
    /// Delivered, not yet acknowledged, in delivery order.
    // Lock order: a queue's state, then a consumer's inflight; never the other way round.
    inflight: Mutex<VecDeque<(ByteString, Queued)>>,
    /// `inflight`'s length, kept with it, so that a dispatch can see which consumers have
    /// credit without taking each one's lock.
    held: AtomicUsize,
}

impl Consumer {
    /// A new consumer.
    pub fn new(
        key: u64,
        subscription: ByteString,
        outbox: Arc<Outbox>,
        ack_mode: AckMode,
        prefetch: Option<usize>,
    ) -> Consumer {
        Consumer {
            key,
            subscription,
            outbox,
            ack_mode,
            prefetch,
            inflight: Mutex::new(VecDeque::new()),
            held: AtomicUsize::new(0),
        }
    }

    /// Runs `change` on the unacknowledged messages, then records how many there are.
    fn with_inflight<T>(&self, change: impl FnOnce(&mut VecDeque<(ByteString, Queued)>) -> T) -> T {
        let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        let result = change(&mut inflight);
        self.held.store(inflight.len(), Ordering::Relaxed);
        result
    }

    /// Messages delivered and not yet acknowledged.
    fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Only a dispatch, under its queue's lock, adds to `inflight`, so a count read here can
    /// be higher than the truth (an ACK racing) but never lower: prefetch is never exceeded.
    fn has_credit(&self) -> bool {
        self.prefetch.is_none_or(|p| self.held() < p) && !self.outbox.is_full()
    }

    /// The `ack` id of message `id` delivered to this consumer.
    pub fn ack_id(&self, message_id: &str) -> ByteString {
        format!("{}.{}", self.key, message_id).into()
    }

    /// Takes the acknowledged messages out: `ack_id` and, in `client` mode, every one delivered
    /// before it. `None` when `ack_id` is not held by this consumer.
    pub fn take_acked(&self, ack_id: &str) -> Option<Vec<Queued>> {
        self.with_inflight(|inflight| {
            let index = inflight.iter().position(|(id, _)| &**id == ack_id)?;
            Some(match self.ack_mode {
                AckMode::Client => inflight.drain(..=index).map(|(_, q)| q).collect(),
                _ => inflight.remove(index).map(|(_, q)| q).into_iter().collect(),
            })
        })
    }

    /// Finds the ack id of a held message by its `message-id` (STOMP 1.0/1.1 ACKs).
    pub fn ack_id_for_message(&self, message_id: &str) -> Option<ByteString> {
        self.inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(_, q)| &*q.message.id == message_id)
            .map(|(id, _)| id.clone())
    }
}

/// Acknowledges an auto-ack delivery of a persistent message once the writer has written it:
/// until then it is held like a client ack, so a session that dies first gives it back.
#[derive(Debug, Clone)]
pub struct Settle {
    queue: Arc<Queue>,
    consumer: Arc<Consumer>,
    ack_id: ByteString,
}

impl Settle {
    /// The delivery reached the socket.
    pub fn written(&self) {
        if let Some(taken) = self.consumer.take_acked(&self.ack_id) {
            self.queue.acked(taken);
        }
    }
}

#[derive(Debug, Default)]
struct QueueState {
    messages: VecDeque<Queued>,
    bytes: usize,
    /// Messages being written to the store, counted against the limits until they are added.
    reserved_messages: usize,
    reserved_bytes: usize,
    consumers: Vec<Arc<Consumer>>,
    next_consumer: usize,
}

/// The queue refused a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueRefused {
    /// Too many messages waiting.
    #[error("queue {queue} is full ({limit} messages waiting)")]
    Messages {
        /// The queue.
        queue: String,
        /// Its limit.
        limit: usize,
    },
    /// Too many bytes waiting.
    #[error("queue {queue} is full ({limit} bytes waiting)")]
    Bytes {
        /// The queue.
        queue: String,
        /// Its limit.
        limit: usize,
    },
    /// The store failed: the message was not accepted.
    #[error("queue {queue}: the message could not be stored: {reason}")]
    Store {
        /// The queue.
        queue: String,
        /// The store's error.
        reason: String,
    },
}

/// Depth and consumers of a queue, for administration.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueStats {
    /// The queue's destination.
    pub name: String,
    /// Messages waiting.
    pub depth: usize,
    /// Bytes waiting.
    pub bytes: usize,
    /// Consumers subscribed.
    pub consumers: usize,
    /// Messages delivered and not yet acknowledged.
    pub unacked: usize,
}

/// A queue.
#[derive(Debug)]
pub struct Queue {
    name: ByteString,
    /// Default time to live of its messages, in ms (0: none).
    ttl_ms: u64,
    // A std Mutex: dispatch is synchronous (pushes into outboxes never wait), so no await ever
    // happens under it.
    state: Mutex<QueueState>,
    registry: Weak<QueueRegistry>,
    metrics: Arc<Metrics>,
    /// Producers waiting for the queue to drain below its high-water mark.
    room: tokio::sync::Notify,
    high_water: usize,
    /// On a cluster member, true while a task takes this queue's messages from the cluster's
    /// store for its consumers here (one task per queue and node).
    consuming: AtomicBool,
    /// Wakes that task when the consumers may want more (a dispatch: credit came back).
    demand: tokio::sync::Notify,
}

impl Queue {
    /// An empty queue belonging to `registry`.
    pub(crate) fn new(
        name: ByteString,
        ttl_ms: u64,
        high_water: usize,
        registry: Weak<QueueRegistry>,
        metrics: Arc<Metrics>,
    ) -> Queue {
        Queue {
            name,
            ttl_ms,
            state: Mutex::new(QueueState::default()),
            registry,
            metrics,
            room: tokio::sync::Notify::new(),
            high_water: high_water.max(1),
            consuming: AtomicBool::new(false),
            demand: tokio::sync::Notify::new(),
        }
    }

    /// When `message` expires on this queue, in ms since the epoch (0: never): its `expires`
    /// header, else the queue's time to live from now.
    pub fn expiry_of(&self, message: &Message) -> u64 {
        match message
            .headers
            .get("expires")
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            Some(at) if at > 0 => at,
            _ if self.ttl_ms > 0 => now_ms().saturating_add(self.ttl_ms),
            _ => 0,
        }
    }

    /// How many more messages the consumers here could take now (prefetch credit, outboxes
    /// with room); 0 while messages already wait here. What a cluster member takes from the
    /// cluster's store at once, so that messages wait there, where every node can reach them.
    pub fn wanted(&self) -> usize {
        let state = self.lock();
        if !state.messages.is_empty() {
            return 0;
        }
        state
            .consumers
            .iter()
            .filter(|c| !c.outbox.is_full())
            .map(|c| match c.prefetch {
                Some(p) => p.saturating_sub(c.held()),
                None => usize::MAX,
            })
            .fold(0, usize::saturating_add)
    }

    /// A message taken from the cluster's store for the consumers here: added at the back
    /// (the cluster's store held it against the limits) and dispatched.
    pub fn take_in(self: &Arc<Self>, queued: Queued) {
        {
            let mut state = self.lock();
            state.bytes += queued.message.size();
            state.messages.push_back(queued);
        }
        self.dispatch();
    }

    /// Gives every waiting message taken from the cluster's store back to it (the consumers
    /// here left, or the node is stopping): other nodes' consumers get them.
    pub fn release_waiting(&self) {
        let released: Vec<Queued> = {
            let mut state = self.lock();
            let (leased, kept): (VecDeque<Queued>, VecDeque<Queued>) =
                state.messages.drain(..).partition(|q| q.lease.is_some());
            state.messages = kept;
            state.bytes = state.messages.iter().map(|q| q.message.size()).sum();
            leased.into()
        };
        for queued in released {
            if let Some(lease) = &queued.lease {
                lease.release();
            }
        }
    }

    /// The leases of every message taken from the cluster's store and held here: waiting,
    /// or delivered and not yet acknowledged.
    pub fn leases(&self) -> Vec<Arc<dyn Lease>> {
        let state = self.lock();
        let mut leases: Vec<Arc<dyn Lease>> = state
            .messages
            .iter()
            .filter_map(|q| q.lease.clone())
            .collect();
        // Lock order: the queue's state, then each consumer's inflight.
        for consumer in &state.consumers {
            let inflight = consumer.inflight.lock().unwrap_or_else(|e| e.into_inner());
            leases.extend(inflight.iter().filter_map(|(_, q)| q.lease.clone()));
        }
        leases
    }

    /// Resolves when the consumers here may want more (see [`Queue::wanted`]).
    pub async fn demand(&self) {
        self.demand.notified().await;
    }

    /// The task taking messages from the cluster's store for this queue is about to stop
    /// (no consumer here): true when it may, false when a consumer came meanwhile and it must
    /// go on (no second task was started for it).
    pub fn stop_consuming(&self) -> bool {
        self.consuming.store(false, Ordering::SeqCst);
        // With a consumer back, this task takes the flag again, unless that consumer's
        // `add_consumer` already did (and so started another task): then this one stops.
        !self.has_consumers() || self.consuming.swap(true, Ordering::SeqCst)
    }

    /// True when some consumer is subscribed.
    pub fn has_consumers(&self) -> bool {
        !self.lock().consumers.is_empty()
    }

    /// True while more messages wait than the high-water mark.
    pub fn is_above_mark(&self) -> bool {
        self.lock().messages.len() >= self.high_water
    }

    /// Waits until the queue is below its high-water mark.
    pub async fn room(&self) {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.is_above_mark() {
                return;
            }
            notified.await;
        }
    }

    /// Wakes paced producers if the queue is below its mark.
    fn release_producers(&self, depth: usize) {
        if depth < self.high_water {
            self.room.notify_waiters();
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The queue's destination.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds a message at the back and dispatches. A persistent message (header
    /// `persistent:true`) is written to the store first; the caller commits the store before
    /// it acknowledges the sender.
    pub fn enqueue(self: &Arc<Self>, message: Arc<Message>) -> Result<(), QueueRefused> {
        let registry = self.registry.upgrade();
        let policy = registry.as_ref().map(|r| r.policy());
        let expires = self.expiry_of(&message);
        let persistent = message.headers.get("persistent") == Some("true");
        let size = message.size();
        let mut queued = Queued {
            message,
            redelivered: false,
            deliveries: 0,
            seq: None,
            expires,
            lease: None,
        };
        match (persistent, &registry) {
            (true, Some(registry)) => {
                // The store write is the slow part: it runs outside the lock, so that the
                // producers of one queue store in parallel, with room reserved meanwhile so
                // that the limits stay exact. Concurrent SENDs have no order between them, so
                // their store keys may order them differently from memory; the SENDs of one
                // session are enqueued one after the other and keep their order.
                {
                    let mut state = self.lock();
                    self.check_room(&state, policy, size)?;
                    state.reserved_messages += 1;
                    state.reserved_bytes += size;
                }
                let stored = registry.persist(&self.name, &queued);
                let mut state = self.lock();
                state.reserved_messages -= 1;
                state.reserved_bytes -= size;
                queued.seq = stored.map_err(|e| self.store_refusal(e))?;
                state.bytes += size;
                state.messages.push_back(queued);
            }
            _ => {
                let mut state = self.lock();
                self.check_room(&state, policy, size)?;
                state.bytes += size;
                state.messages.push_back(queued);
            }
        }
        self.dispatch();
        Ok(())
    }

    /// Refuses a message of `size` bytes that would take the queue past its limits.
    fn check_room(
        &self,
        state: &QueueState,
        policy: Option<&QueuePolicy>,
        size: usize,
    ) -> Result<(), QueueRefused> {
        let Some(policy) = policy else { return Ok(()) };
        if state.messages.len() + state.reserved_messages >= policy.max_messages {
            return Err(QueueRefused::Messages {
                queue: self.name.to_string(),
                limit: policy.max_messages,
            });
        }
        if state.bytes + state.reserved_bytes + size > policy.max_bytes {
            return Err(QueueRefused::Bytes {
                queue: self.name.to_string(),
                limit: policy.max_bytes,
            });
        }
        Ok(())
    }

    fn store_refusal(&self, error: StoreError) -> QueueRefused {
        QueueRefused::Store {
            queue: self.name.to_string(),
            reason: error.to_string(),
        }
    }

    /// Puts restored messages (from the store, at start-up) at the back, in order.
    pub(crate) fn restore(&self, restored: Vec<Queued>) {
        let mut state = self.lock();
        for queued in restored {
            state.bytes += queued.message.size();
            state.messages.push_back(queued);
        }
    }

    /// Acknowledged messages: forgotten by the store; their credit goes back to the consumer.
    pub fn acked(self: &Arc<Self>, taken: Vec<Queued>) {
        // Messages in memory only leave no trace in the store, and need no registry.
        if taken.iter().any(Queued::is_kept) {
            if let Some(registry) = self.registry.upgrade() {
                for queued in &taken {
                    registry.forget(&self.name, queued);
                }
            }
        }
        self.dispatch();
    }

    /// Puts messages back at the front, in their order, marked redelivered; those delivered
    /// `max-deliveries` times move to the dead-letter queue instead. Then dispatches.
    pub fn requeue(self: &Arc<Self>, returned: Vec<Queued>) {
        if returned.is_empty() {
            return;
        }
        let registry = self.registry.upgrade();
        let mut dead = Vec::new();
        {
            let mut state = self.lock();
            for mut queued in returned.into_iter().rev() {
                if let Some(registry) = &registry {
                    if registry.is_exhausted(&self.name, &queued) {
                        dead.push(queued);
                        continue;
                    }
                }
                if let Some(lease) = &queued.lease {
                    // Back to the cluster's store, which hands it out again to whichever
                    // node has a consumer with credit first (this one, perhaps).
                    lease.release();
                    Metrics::incr(&self.metrics.messages_redelivered);
                    continue;
                }
                queued.redelivered = true;
                state.bytes += queued.message.size();
                state.messages.push_front(queued);
                Metrics::incr(&self.metrics.messages_redelivered);
            }
        }
        if let Some(registry) = registry {
            for queued in dead.into_iter().rev() {
                registry.dead_letter(&self.name, queued);
            }
        }
        self.dispatch();
    }

    /// Adds a consumer and dispatches waiting messages to it.
    pub fn add_consumer(self: &Arc<Self>, consumer: Arc<Consumer>) {
        consumer.outbox.watch_queue(self.clone());
        self.lock().consumers.push(consumer);
        self.dispatch();
        // On a cluster member the messages wait in the cluster's store: the first consumer
        // here starts taking them from there.
        if let Some(registry) = self.registry.upgrade() {
            if let Some(shared) = registry.consumed_from_shared(&self.name) {
                if !self.consuming.swap(true, Ordering::SeqCst) {
                    shared.consume(self.clone());
                }
            }
        }
    }

    /// Removes a consumer; what it held unacknowledged goes back on the queue.
    pub fn remove_consumer(self: &Arc<Self>, consumer: &Arc<Consumer>) {
        let returned = {
            let mut state = self.lock();
            state.consumers.retain(|c| !Arc::ptr_eq(c, consumer));
            let returned: Vec<Queued> =
                consumer.with_inflight(|inflight| inflight.drain(..).map(|(_, q)| q).collect());
            returned
        };
        consumer.outbox.unwatch_queue(self);
        self.requeue(returned);
    }

    /// Hands waiting messages to consumers with credit, round-robin, until one side runs out.
    /// Expired messages met on the way are dropped.
    pub fn dispatch(self: &Arc<Self>) {
        let depth = self.dispatch_locked();
        self.release_producers(depth);
        // One stored wake-up at most (cheap when nobody waits): credit may have come back.
        if depth == 0 && self.consuming.load(Ordering::Relaxed) {
            self.demand.notify_one();
        }
    }

    /// Dispatches; returns the depth left.
    fn dispatch_locked(self: &Arc<Self>) -> usize {
        // Only stored messages need the registry (to update the store), and only expiring
        // ones the clock: both are looked up when first needed, not on every dispatch.
        let mut stored: Option<Option<Arc<QueueRegistry>>> = None;
        let mut now = None;
        let mut state = self.lock();
        while !state.messages.is_empty() && !state.consumers.is_empty() {
            let count = state.consumers.len();
            let start = state.next_consumer % count;
            let Some(offset) =
                (0..count).find(|i| state.consumers[(start + i) % count].has_credit())
            else {
                break;
            };
            let Some(mut queued) = state.messages.pop_front() else {
                break;
            };
            state.bytes -= queued.message.size();
            let registry = |stored: &mut Option<Option<Arc<QueueRegistry>>>| {
                stored
                    .get_or_insert_with(|| self.registry.upgrade())
                    .clone()
            };
            if queued.expires != 0 && queued.expired(*now.get_or_insert_with(now_ms)) {
                Metrics::incr(&self.metrics.messages_expired);
                if queued.is_kept() {
                    if let Some(registry) = registry(&mut stored) {
                        registry.forget(&self.name, &queued);
                    }
                }
                continue;
            }
            let index = (start + offset) % count;
            state.next_consumer = index + 1;
            let consumer = state.consumers[index].clone();
            queued.deliveries += 1;
            if let (Some(_), Some(registry)) = (queued.seq, registry(&mut stored)) {
                registry.count_delivery(&self.name, &queued);
            }
            // Auto-ack persistent messages stay held until written (see `Settle`); auto-ack
            // messages in memory only are done once handed over.
            let held = consumer.ack_mode != AckMode::Auto || queued.is_kept();
            let ack_id = consumer.ack_id(&queued.message.id);
            let settle = (consumer.ack_mode == AckMode::Auto && queued.is_kept()).then(|| Settle {
                queue: self.clone(),
                consumer: consumer.clone(),
                ack_id: ack_id.clone(),
            });
            let delivery = Delivery {
                message: queued.message.clone(),
                subscription: consumer.subscription.clone(),
                ack: (consumer.ack_mode != AckMode::Auto).then(|| ack_id.clone()),
                redelivered: queued.redelivered,
                settle,
            };
            if held {
                consumer.with_inflight(|inflight| inflight.push_back((ack_id, queued.clone())));
            }
            match consumer.outbox.push(Outgoing::Delivery(delivery)) {
                Ok(_) => Metrics::incr(&self.metrics.messages_delivered),
                Err(_closed) => {
                    // The session is going away; its cleanup removes the consumer. Keep the
                    // message here and stop offering to that consumer now.
                    if held {
                        consumer.with_inflight(VecDeque::pop_back);
                    }
                    queued.deliveries -= 1;
                    state.bytes += queued.message.size();
                    state.messages.push_front(queued);
                    state.consumers.remove(index);
                }
            }
        }
        state.messages.len()
    }

    /// Drops expired messages anywhere in the queue; returns how many.
    pub fn drop_expired(&self) -> usize {
        let now = now_ms();
        let registry = self.registry.upgrade();
        let mut state = self.lock();
        let before = state.messages.len();
        let mut bytes = state.bytes;
        state.messages.retain(|queued| {
            if queued.expired(now) {
                bytes -= queued.message.size();
                if let Some(registry) = &registry {
                    registry.forget(&self.name, queued);
                }
                false
            } else {
                true
            }
        });
        state.bytes = bytes;
        let dropped = before - state.messages.len();
        let depth = state.messages.len();
        drop(state);
        self.release_producers(depth);
        self.metrics
            .messages_expired
            .fetch_add(dropped as u64, std::sync::atomic::Ordering::Relaxed);
        dropped
    }

    /// Depth, bytes, consumers and unacked count.
    pub fn stats(&self) -> QueueStats {
        let state = self.lock();
        QueueStats {
            name: self.name.to_string(),
            depth: state.messages.len(),
            bytes: state.bytes,
            consumers: state.consumers.len(),
            unacked: state.consumers.iter().map(|c| c.held()).sum(),
        }
    }

    /// Drops every waiting message (not those held by consumers); returns how many.
    pub fn purge(&self) -> usize {
        let registry = self.registry.upgrade();
        let mut state = self.lock();
        let n = state.messages.len();
        for queued in state.messages.drain(..) {
            if let Some(registry) = &registry {
                registry.forget(&self.name, &queued);
            }
        }
        state.bytes = 0;
        drop(state);
        self.release_producers(0);
        n
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use stompede_protocol::{Command, Frame, Headers};

    use super::*;
    use crate::broker::outbox::{MemoryBudget, OutboxLimits};

    fn queue() -> Arc<Queue> {
        Arc::new(Queue::new(
            "/queue/q".into(),
            0,
            100,
            Weak::new(),
            Arc::default(),
        ))
    }

    fn message(body: &'static str) -> Arc<Message> {
        Arc::new(Message::new(
            body.into(),
            "/queue/q".into(),
            &Headers::new(),
            Bytes::from_static(body.as_bytes()),
            true,
        ))
    }

    fn consumer(queue: &Arc<Queue>, outbox: &Arc<Outbox>) -> Arc<Consumer> {
        let consumer = Arc::new(Consumer::new(
            1,
            "s".into(),
            outbox.clone(),
            AckMode::ClientIndividual,
            None,
        ));
        queue.add_consumer(consumer.clone());
        consumer
    }

    fn body(item: Option<Outgoing>) -> Option<Bytes> {
        match item {
            Some(Outgoing::Delivery(delivery)) => Some(delivery.message.body.clone()),
            _ => None,
        }
    }

    #[test]
    fn a_consumer_skipped_for_its_full_outbox_gets_the_message_once_its_writer_drains_it() {
        let limits = OutboxLimits {
            high_water_messages: 2,
            slow_consumer_grace: Duration::from_secs(3600),
            ..OutboxLimits::default()
        };
        let outbox = Outbox::new(limits, MemoryBudget::new(1 << 20));
        let queue = queue();
        let _consumer = consumer(&queue, &outbox);
        for _ in 0..2 {
            let _ = outbox.push_reply(Outgoing::Frame(Frame::new(Command::Receipt)));
        }
        assert!(outbox.is_full());
        queue.enqueue(message("m")).unwrap();
        assert_eq!(queue.stats().depth, 1, "not offered to a full outbox");
        // The writer takes the first frame: below the mark, the queue dispatches again, with
        // no further traffic on it.
        assert!(body(outbox.try_pop()).is_none());
        assert_eq!(queue.stats().depth, 0);
        assert!(body(outbox.try_pop()).is_none());
        assert_eq!(body(outbox.try_pop()).as_deref(), Some(&b"m"[..]));
    }

    #[test]
    fn the_shared_memory_budget_never_holds_a_queue_delivery_back() {
        // Only an outbox's own mark skips a consumer; drains of other outboxes do not
        // re-dispatch this queue, so an exhausted budget must not skip it either.
        let budget = MemoryBudget::new(1);
        let other = Outbox::new(OutboxLimits::default(), budget.clone());
        let _ = other.push(Outgoing::Frame(Frame::new(Command::Receipt)));
        let outbox = Outbox::new(OutboxLimits::default(), budget);
        let queue = queue();
        let _consumer = consumer(&queue, &outbox);
        queue.enqueue(message("m")).unwrap();
        assert_eq!(queue.stats().depth, 0);
        assert_eq!(body(outbox.try_pop()).as_deref(), Some(&b"m"[..]));
    }
}
