//! Durable topic subscriptions (as RabbitMQ and ActiveMQ offer them): a stored subscription
//! whose queue collects the topic's messages while its owner is away.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::queue::Queue;
use super::topic::{Subscriber, Target};
use super::Broker;
use crate::store::StoreError;

/// The bindings of durable subscriptions: queue name -> (destination, subscriber key).
#[derive(Debug, Default)]
pub(super) struct DurableSubscriptions {
    // A std Mutex: map updates only.
    bindings: Mutex<HashMap<String, (String, u64)>>,
}

/// The queue name of user `user`'s durable subscription `id`.
pub fn queue_name(user: &str, id: &str) -> String {
    format!("durable:{user}:{id}")
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
        if let Some(store) = self.store() {
            store.put_subscription(&name, destination)?;
        }
        Ok(self.bind_durable(&name, destination))
    }

    /// Removes user `user`'s durable subscription `id` with the messages it holds.
    pub(crate) fn durable_unsubscribe(&self, user: &str, id: &str) -> Result<(), StoreError> {
        let name = queue_name(user, id);
        let binding = self
            .inner
            .durable
            .bindings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&name);
        if let Some((destination, key)) = binding {
            self.unsubscribe_topic(&destination, key);
        }
        self.delete_queue(&name);
        if let Some(store) = self.store() {
            store.remove_subscription(&name)?;
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
        // A durable subscription's SUBSCRIBE does not wait for the cluster: its messages are
        // only kept on this node's store (durable topics in JetStream are later work).
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
