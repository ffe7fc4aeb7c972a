//! The set of queues, with what they share: the store, the limits, the dead-letter and expiry
//! policies. Creates queues on first use and restores persistent ones at start-up.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock, Weak};

use bytestring::ByteString;
use stompede_protocol::Headers;

use super::destination::Pattern;
use super::federation::SharedQueues;
use super::message::Message;
use super::metrics::Metrics;
use super::queue::{Queue, QueueStats, Queued};
use crate::store::{Store, StoreError, StoredMessage};

/// What every queue is held to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuePolicy {
    /// Most messages waiting on one queue.
    pub max_messages: usize,
    /// Above this many waiting messages, producers are paced (they wait, up to the
    /// slow-consumer grace, before their next frame is read).
    pub high_water_messages: usize,
    /// Most bytes waiting on one queue.
    pub max_bytes: usize,
    /// Deliveries without an ACK after which a message is dead-lettered (0: never).
    pub max_deliveries: u32,
    /// Suffix of the dead-letter queue's name (`/queue/orders` -> `/queue/orders.dlq`).
    pub dead_letter_suffix: String,
    /// Default time to live, in ms, by queue name or pattern (first match wins).
    pub ttl_ms: Vec<(String, u64)>,
}

impl Default for QueuePolicy {
    fn default() -> Self {
        QueuePolicy {
            max_messages: 100_000,
            high_water_messages: 10_000,
            max_bytes: 256 * 1024 * 1024,
            max_deliveries: 5,
            dead_letter_suffix: ".dlq".into(),
            ttl_ms: Vec::new(),
        }
    }
}

/// Every queue of the broker.
#[derive(Debug)]
pub struct QueueRegistry {
    // A std RwLock: queues are looked up on every queue SEND and created rarely; nothing awaits
    // under it.
    queues: RwLock<HashMap<Box<str>, Arc<Queue>>>,
    policy: QueuePolicy,
    store: Option<Store>,
    metrics: Arc<Metrics>,
    this: Weak<QueueRegistry>,
    /// On a cluster member, where `/queue/...` messages are kept instead of `store`.
    shared: OnceLock<Arc<dyn SharedQueues>>,
}

impl QueueRegistry {
    /// A registry; `store` keeps persistent messages.
    pub fn new(policy: QueuePolicy, store: Option<Store>, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new_cyclic(|this| QueueRegistry {
            queues: RwLock::new(HashMap::new()),
            policy,
            store,
            metrics,
            this: this.clone(),
            shared: OnceLock::new(),
        })
    }

    /// Keeps the queues in the cluster's store from now on; false when already done.
    pub(crate) fn attach_shared(&self, shared: Arc<dyn SharedQueues>) -> bool {
        self.shared.set(shared).is_ok()
    }

    /// The cluster's store of queues, on a cluster member.
    pub(crate) fn shared(&self) -> Option<&Arc<dyn SharedQueues>> {
        self.shared.get()
    }

    /// The cluster's store, for appends to queue `name`: a `/queue/...` destination. A durable
    /// topic subscription's messages reach the cluster's store as topic messages, never as
    /// appends to its queue (its dead letters stay on the node that dead-lettered them).
    pub(crate) fn shared_for(&self, name: &str) -> Option<&Arc<dyn SharedQueues>> {
        self.shared.get().filter(|_| name.starts_with("/queue/"))
    }

    /// The cluster's store, for the consumers of queue `name`: a `/queue/...` destination, or
    /// a durable topic subscription's queue (which the cluster keeps too: `durable.rs`).
    pub(crate) fn consumed_from_shared(&self, name: &str) -> Option<&Arc<dyn SharedQueues>> {
        self.shared
            .get()
            .filter(|_| name.starts_with("/queue/") || super::durable::is_durable_queue(name))
    }

    /// The policy.
    pub fn policy(&self) -> &QueuePolicy {
        &self.policy
    }

    /// The queue called `name`, if it exists.
    pub fn get(&self, name: &str) -> Option<Arc<Queue>> {
        self.queues
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// The queue called `name`, created on first use.
    pub fn queue(&self, name: &str) -> Arc<Queue> {
        if let Some(queue) = self.get(name) {
            return queue;
        }
        let ttl = self
            .policy
            .ttl_ms
            .iter()
            .find(|(pattern, _)| match Pattern::compile(pattern) {
                Some(p) => p.matches(name),
                None => pattern == name,
            })
            .map_or(0, |(_, ttl)| *ttl);
        let mut queues = self.queues.write().unwrap_or_else(|e| e.into_inner());
        queues
            .entry(name.into())
            .or_insert_with(|| {
                Arc::new(Queue::new(
                    name.into(),
                    ttl,
                    self.policy.high_water_messages,
                    self.this.clone(),
                    self.metrics.clone(),
                ))
            })
            .clone()
    }

    /// Every queue's figures, by name.
    pub fn stats(&self) -> Vec<QueueStats> {
        let mut stats: Vec<QueueStats> = self.all().iter().map(|q| q.stats()).collect();
        stats.sort_by(|a, b| a.name.cmp(&b.name));
        stats
    }

    fn all(&self) -> Vec<Arc<Queue>> {
        self.queues
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Drops expired messages from every queue.
    pub fn drop_expired(&self) -> usize {
        self.all().iter().map(|q| q.drop_expired()).sum()
    }

    /// Deletes a queue and its waiting messages (stored ones too). Consumers still attached
    /// keep the old queue object until they unsubscribe. Returns false if unknown.
    pub fn delete(&self, name: &str) -> bool {
        let removed = self
            .queues
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        let Some(queue) = removed else {
            return false;
        };
        queue.purge();
        if let Some(store) = &self.store {
            if let Err(error) = store.remove_queue(name) {
                tracing::error!(queue = name, %error, "removing stored messages failed");
            }
        }
        true
    }

    /// Writes a persistent message to the store; returns its key.
    pub(crate) fn persist(&self, queue: &str, queued: &Queued) -> Result<Option<u64>, StoreError> {
        let Some(store) = &self.store else {
            return Ok(None);
        };
        let seq = store.next_seq()?;
        store.insert_message(queue, seq, &to_stored(queued))?;
        Ok(Some(seq))
    }

    /// Removes a message from the store, if it is there (from the cluster's, when it was taken
    /// from there).
    pub(crate) fn forget(&self, queue: &str, queued: &Queued) {
        if let Some(lease) = &queued.lease {
            lease.ack();
        }
        if let (Some(store), Some(seq)) = (&self.store, queued.seq) {
            if let Err(error) = store.remove_message(queue, seq) {
                tracing::error!(queue, %error, "removing a stored message failed");
            }
        }
    }

    /// Records a delivery of a stored message.
    pub(crate) fn count_delivery(&self, queue: &str, queued: &Queued) {
        if let (Some(store), Some(seq)) = (&self.store, queued.seq) {
            if let Err(error) = store.set_deliveries(queue, seq, queued.deliveries) {
                tracing::warn!(queue, %error, "recording a delivery failed");
            }
        }
    }

    /// True when a returned message has used up its deliveries (never on a dead-letter queue:
    /// dead letters wait there for a person).
    pub(crate) fn is_exhausted(&self, queue: &str, queued: &Queued) -> bool {
        self.policy.max_deliveries > 0
            && queued.deliveries >= self.policy.max_deliveries
            && !queue.ends_with(&self.policy.dead_letter_suffix)
    }

    /// Moves a message to `queue`'s dead-letter queue, with headers saying why.
    pub(crate) fn dead_letter(&self, queue: &str, queued: Queued) {
        let dlq_name = format!("{queue}{}", self.policy.dead_letter_suffix);
        let mut headers = queued.message.headers.clone();
        headers.set("x-dead-letter-reason", "max-deliveries");
        headers.set("x-original-destination", queue);
        headers.set("x-delivery-count", queued.deliveries.to_string());
        let message = Message::new(
            queued.message.id.clone(),
            dlq_name.as_str().into(),
            &headers,
            queued.message.body.clone(),
            queued.message.text,
        );
        Metrics::incr(&self.metrics.messages_dead_lettered);
        tracing::warn!(queue, dead_letter_queue = %dlq_name, message_id = %queued.message.id, deliveries = queued.deliveries, "message dead-lettered");
        if let Some(shared) = self.shared_for(&dlq_name) {
            // In the cluster's store too: the message leaves its queue there only once its
            // dead-letter queue there holds it (delivered twice, never lost, on a failure).
            let appended = shared.append(&dlq_name, &message);
            let runtime = tokio::runtime::Handle::try_current();
            match (appended, runtime, queued.lease.clone()) {
                (Ok(appended), Ok(runtime), Some(lease)) => {
                    runtime.spawn(async move {
                        match appended.await {
                            Ok(Ok(())) => lease.ack(),
                            _ => {
                                tracing::error!(queue = %dlq_name, "dead-letter queue refused a message; it goes back");
                                lease.release();
                            }
                        }
                    });
                }
                (appended, _, lease) => {
                    tracing::error!(queue = %dlq_name, ok = appended.is_ok(), "dead-letter append not followed; the message goes back");
                    if let Some(lease) = lease {
                        lease.release();
                    }
                }
            }
            return;
        }
        // Stored on the dead-letter queue before it leaves its own: the store's log keeps
        // writes in order, so a crash in between leaves the message in both places (it is
        // delivered twice), never in neither.
        if let Err(error) = self.queue(&dlq_name).enqueue(Arc::new(message)) {
            tracing::error!(queue = %dlq_name, %error, "dead-letter queue refused a message; it is dropped");
        }
        self.forget(queue, &queued);
    }

    /// Loads every stored message back into its queue; those delivered before the restart
    /// come back marked redelivered. Returns how many.
    pub fn restore(&self) -> Result<usize, StoreError> {
        let Some(store) = &self.store else {
            return Ok(0);
        };
        let mut total = 0;
        for (name, messages) in store.load_messages()? {
            let restored: Vec<Queued> = messages
                .into_iter()
                .map(|loaded| {
                    let stored = loaded.message;
                    let headers: Headers = stored.headers.into_iter().collect();
                    Queued {
                        message: Arc::new(Message::new(
                            ByteString::from(stored.id),
                            ByteString::from(stored.destination),
                            &headers,
                            stored.body,
                            stored.text,
                        )),
                        redelivered: loaded.deliveries > 0,
                        deliveries: loaded.deliveries,
                        seq: Some(loaded.seq),
                        expires: stored.expires,
                        lease: None,
                    }
                })
                .collect();
            total += restored.len();
            self.queue(&name).restore(restored);
        }
        Ok(total)
    }
}

fn to_stored(queued: &Queued) -> StoredMessage {
    let message = &queued.message;
    StoredMessage {
        id: message.id.to_string(),
        destination: message.destination.to_string(),
        headers: message
            .headers
            .iter()
            .map(|h| (h.name.to_string(), h.value.to_string()))
            .collect(),
        body: message.body.clone(),
        text: message.text,
        expires: queued.expires,
    }
}
