//! Durable topic subscriptions (as RabbitMQ and ActiveMQ offer them): a stored subscription
//! whose queue collects the topic's messages while its owner is away.
//!
//! On one node (or a cluster member keeping its queues to itself) the queue is bound into the
//! topic index and kept in the store. On a cluster member keeping its queues in the cluster's
//! store ([`super::federation::SharedQueues`]) the subscription lives there instead, keeping
//! what any node publishes, and the queue only takes its messages from there for its owner's
//! sessions on this node, as a `/queue/...` does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::queue::Queue;
use super::topic::{Subscriber, Target};
use super::{federation, Broker};
use crate::store::StoreError;

/// The bindings of durable subscriptions: queue name -> (destination, subscriber key).
#[derive(Debug, Default)]
pub(super) struct DurableSubscriptions {
    // A std Mutex: map updates only.
    bindings: Mutex<HashMap<String, (String, u64)>>,
}

/// The queue name of user `user`'s durable subscription `id`.
pub fn queue_name(user: &str, id: &str) -> String {
    format!("{PREFIX}{user}:{id}")
}

/// What every durable subscription's queue name starts with (no destination does).
const PREFIX: &str = "durable:";

/// True for the name of a durable subscription's queue (see [`queue_name`]).
pub(super) fn is_durable_queue(name: &str) -> bool {
    name.starts_with(PREFIX)
}

impl Broker {
    /// Opens (or reopens) user `user`'s durable subscription `id` to `destination` (a topic
    /// name or pattern) and returns its queue, which the session then consumes.
    pub(crate) fn durable_subscribe(
        &self,
        user: &str,
        id: &str,
        destination: &str,
    ) -> Result<Arc<Queue>, StoreError> {
        let name = queue_name(user, id);
        if let Some(shared) = self.inner.queues.shared() {
            // On a cluster member the subscription lives in the cluster's store, which keeps
            // every matching topic message published on any node; its owner consumes it from
            // there like a queue, on whichever node it comes back. It is not in this node's
            // topic index: each message reaches it once, from the store, never also live.
            self.unbind_local(&name)?;
            // The SUBSCRIBE's RECEIPT waits for the cluster's store (`Broker::commit_own`);
            // a session's own appends are held for it, whatever is answered here.
            drop(federation::hold_append(
                shared.open_durable(&name, destination),
            ));
            return Ok(self.queue(&name));
        }
        if let Some(store) = self.store() {
            store.put_subscription(&name, destination)?;
        }
        Ok(self.bind_durable(&name, destination))
    }

    /// Forgets this node's own binding of the durable subscription whose queue is `name`
    /// (one restored from the node's store, made before it joined a cluster): the cluster's
    /// store keeps it from now on. What its queue already holds stays there for its owner.
    fn unbind_local(&self, name: &str) -> Result<(), StoreError> {
        if self.unbind(name) {
            if let Some(store) = self.store() {
                store.remove_subscription(name)?;
            }
        }
        Ok(())
    }

    /// Takes the durable subscription whose queue is `name` out of the topic index; false
    /// when this node had no binding for it.
    fn unbind(&self, name: &str) -> bool {
        let binding = self
            .inner
            .durable
            .bindings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        let bound = binding.is_some();
        if let Some((destination, key)) = binding {
            self.unsubscribe_topic(&destination, key);
        }
        bound
    }

    /// Removes user `user`'s durable subscription `id` with the messages it holds.
    pub(crate) fn durable_unsubscribe(&self, user: &str, id: &str) -> Result<(), StoreError> {
        let name = queue_name(user, id);
        self.unbind(&name);
        // Its messages before its record: a crash in between leaves a subscription holding
        // nothing, not messages nobody subscribes to.
        self.delete_queue(&name);
        if let Some(store) = self.store() {
            store.remove_subscription(&name)?;
        }
        if let Some(shared) = self.inner.queues.shared() {
            // Removed for every node; the UNSUBSCRIBE's RECEIPT waits for it.
            drop(federation::hold_append(shared.close_durable(&name)));
        }
        Ok(())
    }

    fn bind_durable(&self, name: &str, destination: &str) -> Arc<Queue> {
        let queue = self.queue(name);
        let mut bindings = self
            .inner
            .durable
            .bindings
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match bindings.get(name) {
            Some((bound, _)) if bound == destination => return queue,
            Some((bound, key)) => self.unsubscribe_topic(bound, *key),
            None => {}
        }
        let key = self.next_key();
        // Only on a node that keeps its own durable subscriptions (no cluster, or queues kept
        // per node): its SUBSCRIBE does not wait for other nodes, as only this node keeps
        // their messages.
        drop(self.subscribe_topic(
            destination,
            Arc::new(Subscriber {
                key,
                target: Target::Queue(queue.clone()),
            }),
        ));
        bindings.insert(name.to_owned(), (destination.to_owned(), key));
        queue
    }

    /// Rebinds every stored durable subscription (start-up).
    pub(super) fn restore_durable_subscriptions(&self) -> Result<usize, StoreError> {
        let Some(store) = self.store() else {
            return Ok(0);
        };
        let subscriptions = store.subscriptions()?;
        for (name, destination) in &subscriptions {
            self.bind_durable(name, destination);
        }
        Ok(subscriptions.len())
    }
}
