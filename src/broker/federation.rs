//! The broker's side of a cluster: what it asks of whatever links it to other nodes, and the
//! one way their messages come in.
//!
//! The broker knows a cluster only as a [`Federation`]: it tells it which topic and user keys
//! its subscriptions watch, and hands it a copy of every topic and user-destination message it
//! routed. The NATS implementation lives in `crate::cluster` and is attached by the server
//! wiring; the broker never imports it (DESIGN.md's dependency rules). Messages from other
//! nodes enter through [`Broker::deliver_remote`], into the same bounded outboxes and under the
//! same slow-consumer policy as local ones; they were authorised by the door of the node where
//! they were published, and readers here were authorised when they subscribed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::backpressure::{Backpressure, Pending};
use super::message::Message;
use super::Broker;

/// A future the broker can hold without knowing what it is.
pub type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// What a node's link to the other nodes does for its broker.
pub trait Federation: Send + Sync + 'static {
    /// Sends a copy of `message`, routed here under the index key `key` (a topic name, or a
    /// user's own key `/user/<name>/queue/...`), to the other nodes. Never waits: returns
    /// [`Forward::Paced`] when the link's outbound queue is above its mark, and the publisher
    /// then waits for [`Federation::room`] as it would for a full outbox.
    fn forward(&self, key: &str, message: &Message) -> Forward;

    /// Resolves once the outbound queue is back below its mark.
    fn room(&self) -> BoxFuture;

    /// A subscription here now watches `key` (a name or a pattern): from the returned
    /// [`Interest`]'s completion on, messages published for it on other nodes come here.
    fn watch(&self, key: &str) -> Interest;

    /// One subscription fewer watches `key` (each [`Federation::watch`] is matched by one
    /// call of this).
    fn unwatch(&self, key: &str);
}

/// Whether a forwarded message should pace its publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// Room to spare.
    Clear,
    /// The link's outbound queue is above its mark (or was full and dropped the copy).
    Paced,
}

/// Interest in a key, being registered with the other nodes. A SUBSCRIBE's RECEIPT waits for
/// it, so that a message published anywhere after the RECEIPT reaches the subscription.
#[must_use = "a RECEIPT promises the interest is registered: wait for it"]
pub struct Interest(Option<BoxFuture>);

impl std::fmt::Debug for Interest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Interest")
            .field(&self.0.as_ref().map(|_| "pending"))
            .finish()
    }
}

impl Interest {
    /// Nothing to wait for (no cluster, or the key was already watched and registered).
    pub fn known() -> Interest {
        Interest(None)
    }

    /// Registered when `future` resolves (it bounds its own wait).
    pub fn pending(future: BoxFuture) -> Interest {
        Interest(Some(future))
    }

    /// Waits until the interest is registered.
    pub async fn registered(self) {
        if let Some(future) = self.0 {
            future.await;
        }
    }
}

/// A broker reference that does not keep it alive: the cluster link holds one, so that the
/// broker (which holds the link) and the link do not keep each other forever.
#[derive(Clone, Debug)]
pub struct WeakBroker(std::sync::Weak<super::Inner>);

impl WeakBroker {
    /// The broker, while it lives.
    pub fn upgrade(&self) -> Option<Broker> {
        self.0.upgrade().map(|inner| Broker { inner })
    }
}

impl Broker {
    /// A reference that does not keep the broker alive.
    pub fn downgrade(&self) -> WeakBroker {
        WeakBroker(Arc::downgrade(&self.inner))
    }

    /// Links this broker to other nodes. Once only: a second call is refused and returns
    /// false. Every key already watched (durable subscriptions restored at start-up) is
    /// watched through the link at once.
    pub fn attach_federation(&self, federation: Arc<dyn Federation>) -> bool {
        if self.inner.federation.set(federation.clone()).is_err() {
            return false;
        }
        for key in self.inner.topics.keys() {
            // Start-up: nobody waits for these RECEIPT-less registrations.
            drop(federation.watch(&key));
        }
        true
    }

    /// The link to other nodes, when there is one.
    pub(super) fn federation(&self) -> Option<&Arc<dyn Federation>> {
        self.inner.federation.get()
    }

    /// A message from another node, watched here under `interest` (the key or pattern a
    /// subscription here registered) and routed under `key`: delivered to this node's
    /// subscriptions registered under `interest` that match `key`, and only those (a message
    /// that several of this node's interests match arrives once per interest, and each copy
    /// feeds its own subscriptions). The returned wait paces the link's reader exactly as a
    /// local publisher is paced.
    pub fn deliver_remote(&self, interest: &str, key: &str, message: Message) -> Backpressure {
        let pending = self.deliver_under(interest, key, Arc::new(message));
        Backpressure::new(self, pending)
    }

    /// Hands a routed message to the link, combining its pacing with the local one.
    pub(super) fn forward(
        &self,
        key: &str,
        message: &Message,
        local: Option<Pending>,
    ) -> Option<Pending> {
        let Some(federation) = self.federation() else {
            return local;
        };
        if super::destination::is_node_local(key) {
            return local;
        }
        match (federation.forward(key, message), local) {
            (Forward::Clear, local) => local,
            (
                Forward::Paced,
                Some(Pending::Outboxes {
                    destination, full, ..
                }),
            ) => Some(Pending::Outboxes {
                destination,
                full,
                cluster: true,
            }),
            (Forward::Paced, Some(other)) => Some(other),
            (Forward::Paced, None) => Some(Pending::Cluster),
        }
    }
}

impl Broker {
    /// Waits for room in the cluster link's outbound queue, at most the slow-consumer grace:
    /// past it the publisher goes on and the link drops what it cannot hold (counted), as core
    /// NATS is at-most-once anyway.
    pub(super) async fn cluster_room(&self) {
        if let Some(federation) = self.federation() {
            let grace = self.inner.outbox_limits.slow_consumer_grace;
            let _ = tokio::time::timeout(grace, federation.room()).await;
        }
    }
}
