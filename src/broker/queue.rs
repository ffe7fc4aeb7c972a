//! Point-to-point queues: messages wait until a consumer with room takes them; competing
//! consumers are served round-robin; unacknowledged messages go back on NACK or disconnect.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use bytestring::ByteString;

use super::message::Message;
use super::metrics::Metrics;
use super::outbox::{Delivery, Outbox, Outgoing};

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
    /// True once it has been delivered and come back.
    pub redelivered: bool,
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
        }
    }

    fn inflight(&self) -> MutexGuard<'_, VecDeque<(ByteString, Queued)>> {
        self.inflight.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn has_credit(&self) -> bool {
        self.prefetch.is_none_or(|p| self.inflight().len() < p) && !self.outbox.is_full()
    }

    /// The `ack` id of message `id` delivered to this consumer.
    pub fn ack_id(&self, message_id: &str) -> ByteString {
        format!("{}.{}", self.key, message_id).into()
    }

    /// Takes the acknowledged messages out: `ack_id` and, in `client` mode, every one delivered
    /// before it. `None` when `ack_id` is not held by this consumer.
    pub fn take_acked(&self, ack_id: &str) -> Option<Vec<Queued>> {
        let mut inflight = self.inflight();
        let index = inflight.iter().position(|(id, _)| &**id == ack_id)?;
        let taken = match self.ack_mode {
            AckMode::Client => inflight.drain(..=index).map(|(_, q)| q).collect(),
            _ => inflight.remove(index).map(|(_, q)| q).into_iter().collect(),
        };
        Some(taken)
    }

    /// Finds the ack id of a held message by its `message-id` (STOMP 1.0/1.1 ACKs).
    pub fn ack_id_for_message(&self, message_id: &str) -> Option<ByteString> {
        self.inflight()
            .iter()
            .find(|(_, q)| &*q.message.id == message_id)
            .map(|(id, _)| id.clone())
    }
}

#[derive(Debug, Default)]
struct QueueState {
    messages: VecDeque<Queued>,
    bytes: usize,
    consumers: Vec<Arc<Consumer>>,
    next_consumer: usize,
}

/// Limits on a queue's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Most messages waiting.
    pub max_messages: usize,
    /// Most bytes waiting.
    pub max_bytes: usize,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            max_messages: 100_000,
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

/// The queue refused a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueFull {
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
    limits: QueueLimits,
    // A std Mutex: dispatch is synchronous (pushes into outboxes never wait), so no await ever
    // happens under it.
    state: Mutex<QueueState>,
    metrics: Arc<Metrics>,
}

impl Queue {
    /// An empty queue.
    pub fn new(name: ByteString, limits: QueueLimits, metrics: Arc<Metrics>) -> Queue {
        Queue {
            name,
            limits,
            state: Mutex::new(QueueState::default()),
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The queue's destination.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds a message at the back and dispatches.
    pub fn enqueue(&self, message: Arc<Message>) -> Result<(), QueueFull> {
        {
            let mut state = self.lock();
            if state.messages.len() >= self.limits.max_messages {
                return Err(QueueFull::Messages {
                    queue: self.name.to_string(),
                    limit: self.limits.max_messages,
                });
            }
            let size = message.size();
            if state.bytes + size > self.limits.max_bytes {
                return Err(QueueFull::Bytes {
                    queue: self.name.to_string(),
                    limit: self.limits.max_bytes,
                });
            }
            state.bytes += size;
            state.messages.push_back(Queued {
                message,
                redelivered: false,
            });
        }
        self.dispatch();
        Ok(())
    }

    /// Puts messages back at the front, in their order, marked redelivered; then dispatches.
    pub fn requeue(&self, returned: Vec<Queued>) {
        if returned.is_empty() {
            return;
        }
        {
            let mut state = self.lock();
            for mut queued in returned.into_iter().rev() {
                queued.redelivered = true;
                state.bytes += queued.message.size();
                state.messages.push_front(queued);
                Metrics::incr(&self.metrics.messages_redelivered);
            }
        }
        self.dispatch();
    }

    /// Adds a consumer and dispatches waiting messages to it.
    pub fn add_consumer(self: &Arc<Self>, consumer: Arc<Consumer>) {
        consumer.outbox.watch_queue(self.clone());
        self.lock().consumers.push(consumer);
        self.dispatch();
    }

    /// Removes a consumer; what it held unacknowledged goes back on the queue.
    pub fn remove_consumer(self: &Arc<Self>, consumer: &Arc<Consumer>) {
        let returned = {
            let mut state = self.lock();
            state.consumers.retain(|c| !Arc::ptr_eq(c, consumer));
            let returned: Vec<Queued> = consumer.inflight().drain(..).map(|(_, q)| q).collect();
            returned
        };
        consumer.outbox.unwatch_queue(self);
        self.requeue(returned);
    }

    /// Hands waiting messages to consumers with credit, round-robin, until one side runs out.
    pub fn dispatch(&self) {
        let mut state = self.lock();
        while !state.messages.is_empty() && !state.consumers.is_empty() {
            let count = state.consumers.len();
            let start = state.next_consumer % count;
            let Some(offset) =
                (0..count).find(|i| state.consumers[(start + i) % count].has_credit())
            else {
                break;
            };
            let index = (start + offset) % count;
            state.next_consumer = index + 1;
            let consumer = state.consumers[index].clone();
            let Some(queued) = state.messages.pop_front() else {
                break;
            };
            let ack =
                (consumer.ack_mode != AckMode::Auto).then(|| consumer.ack_id(&queued.message.id));
            let delivery = Delivery {
                message: queued.message.clone(),
                subscription: consumer.subscription.clone(),
                ack: ack.clone(),
                redelivered: queued.redelivered,
            };
            if let Some(ack) = ack {
                consumer.inflight().push_back((ack, queued.clone()));
            }
            match consumer.outbox.push(Outgoing::Delivery(delivery)) {
                Ok(_) => {
                    state.bytes -= queued.message.size();
                    Metrics::incr(&self.metrics.messages_delivered);
                }
                Err(_closed) => {
                    // The session is going away; its cleanup removes the consumer. Keep the
                    // message here and stop offering to that consumer now.
                    if consumer.ack_mode != AckMode::Auto {
                        consumer.inflight().pop_back();
                    }
                    state.messages.push_front(queued);
                    state.consumers.remove(index);
                }
            }
        }
    }

    /// Depth, bytes, consumers and unacked count.
    pub fn stats(&self) -> QueueStats {
        let state = self.lock();
        QueueStats {
            name: self.name.to_string(),
            depth: state.messages.len(),
            bytes: state.bytes,
            consumers: state.consumers.len(),
            unacked: state.consumers.iter().map(|c| c.inflight().len()).sum(),
        }
    }

    /// Drops every waiting message; returns how many.
    pub fn purge(&self) -> usize {
        let mut state = self.lock();
        let n = state.messages.len();
        state.messages.clear();
        state.bytes = 0;
        n
    }
}
