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
//!
//! Queues (`/queue/...`) cross nodes through [`SharedQueues`]: on a cluster member every queue
//! SEND, once the door has admitted it, is appended to the cluster's store instead of this
//! node's, and the node takes messages from there for its own consumers, each held under a
//! [`Lease`] until its consumer acknowledges it. A RECEIPT waits for the appends its session
//! made ([`own_appends`], `Broker::commit_own`), as it waits for sled's commit on one node.

use std::cell::RefCell;
use std::collections::VecDeque;
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

    /// [`Federation::forward`] for a persistent topic message (`persistent:true`), which the
    /// cluster's durable topic subscriptions keep: the [`Appended`] answers once the cluster's
    /// store holds it for every one that matches (or knows that none does), what a RECEIPT
    /// promises on one node, where such a message is stored in each durable subscription's
    /// queue before it. `None` when this link keeps no durable subscriptions.
    fn forward_persistent(&self, key: &str, message: &Message) -> (Forward, Option<Appended>) {
        (self.forward(key, message), None)
    }

    /// Resolves once the outbound queue is back below its mark.
    fn room(&self) -> BoxFuture;

    /// A subscription here now watches `key` (a name or a pattern): from the returned
    /// [`Interest`]'s completion on, messages published for it on other nodes come here.
    fn watch(&self, key: &str) -> Interest;

    /// One subscription fewer watches `key` (each [`Federation::watch`] is matched by one
    /// call of this).
    fn unwatch(&self, key: &str);
}

/// The answer to an append: `Ok` once the cluster's store holds the message.
pub type Appended = tokio::sync::oneshot::Receiver<Result<(), String>>;

/// Where a cluster keeps its queues, as the broker sees it (JetStream: `crate::cluster`).
pub trait SharedQueues: Send + Sync + std::fmt::Debug + 'static {
    /// Appends `message` to queue `queue` in the cluster's store, in the order of the calls;
    /// the answer comes once the store holds it (what a RECEIPT promises). Refused at once
    /// when the link cannot take more.
    fn append(&self, queue: &str, message: &Message) -> Result<Appended, String>;

    /// `queue` has a consumer on this node: take its messages from the cluster's store while
    /// it has consumers ([`super::queue::Queue::wanted`], [`super::queue::Queue::take_in`]),
    /// and call [`super::queue::Queue::stop_consuming`] when it stops.
    fn consume(&self, queue: Arc<super::queue::Queue>);

    /// Opens (or reopens, from any node) the durable topic subscription whose queue is
    /// `name` on `destination` (a topic name or pattern) in the cluster's store: from the
    /// answer on, every topic message published on any node that `destination` matches is
    /// kept for it until acknowledged. Its messages then come to this node through
    /// [`SharedQueues::consume`] of the queue `name`.
    fn open_durable(&self, name: &str, destination: &str) -> Appended;

    /// Removes the durable topic subscription whose queue is `name` from the cluster's store,
    /// with the messages kept for it.
    fn close_durable(&self, name: &str) -> Appended;
}

/// A message taken from the cluster's store for a consumer here, held until settled. Each
/// settles once: later calls do nothing.
pub trait Lease: Send + Sync + std::fmt::Debug + 'static {
    /// Done with (acknowledged, expired, dead-lettered, purged): the store forgets it.
    fn ack(&self);
    /// Given back (NACK, its consumer went): the store hands it out again, to any node.
    fn release(&self);
    /// Still held here (delivered and not yet acknowledged, or waiting for credit): the store
    /// keeps it for this node rather than handing it to another, so that a client may hold a
    /// message as long as its session lives, as on a single node.
    fn touch(&self);
}

/// Appends a session made and has not yet seen answered: past this many, its next SEND waits
/// for the oldest (the link's pacing of one publisher).
const MAX_OWN_APPENDS: usize = 1_024;

/// What the current session appended and still waits to hear about.
#[derive(Default)]
struct OwnAppends {
    pending: VecDeque<Appended>,
    /// The first refusal not yet reported.
    failed: Option<String>,
}

tokio::task_local! {
    static OWN_APPENDS: RefCell<OwnAppends>;
}

/// Runs `work` (a session) keeping the appends it makes, so that its RECEIPTs wait for those
/// and no others' (`Broker::commit_own`).
pub async fn own_appends<F: Future>(work: F) -> F::Output {
    OWN_APPENDS
        .scope(RefCell::new(OwnAppends::default()), work)
        .await
}

/// Keeps `appended` for the current session's next RECEIPT; the wait it owes, if any. Outside
/// a session (the local client, the HTTP API) the publisher waits for it at once.
pub(super) fn hold_append(appended: Appended) -> Option<Pending> {
    if OWN_APPENDS.try_with(|_| ()).is_err() {
        return Some(Pending::Append(appended));
    }
    let held = OWN_APPENDS.try_with(|own| {
        let mut own = own.borrow_mut();
        // Answered ones are dropped as they are met, so a session that never asks for a
        // RECEIPT holds only what is still in flight.
        while let Some(first) = own.pending.front_mut() {
            match first.try_recv() {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    own.failed.get_or_insert(error);
                }
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => break,
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                    own.failed
                        .get_or_insert_with(|| "the cluster link stopped".to_owned());
                }
            }
            own.pending.pop_front();
        }
        own.pending.push_back(appended);
        own.pending.len()
    });
    match held {
        Ok(held) if held > MAX_OWN_APPENDS => Some(Pending::Appends),
        _ => None,
    }
}

/// Paces a session past [`MAX_OWN_APPENDS`] unanswered appends: waits for the older half.
pub(super) async fn pace_own_appends() {
    // A refusal met here stays noted for the session's next RECEIPT.
    let _ = settle_own_appends(MAX_OWN_APPENDS / 2).await;
}

/// Waits until the current session has at most `keep` appends unanswered; the first refusal
/// since the last call, if any.
pub(super) async fn settle_own_appends(keep: usize) -> Result<(), String> {
    loop {
        let next = OWN_APPENDS
            .try_with(|own| {
                let mut own = own.borrow_mut();
                if own.pending.len() > keep {
                    own.pending.pop_front()
                } else {
                    None
                }
            })
            .ok()
            .flatten();
        let Some(appended) = next else { break };
        let answer = appended
            .await
            .unwrap_or_else(|_| Err("the cluster link stopped".to_owned()));
        if let Err(error) = answer {
            let _ = OWN_APPENDS.try_with(|own| {
                own.borrow_mut().failed.get_or_insert(error);
            });
        }
    }
    match OWN_APPENDS.try_with(|own| own.borrow_mut().failed.take()) {
        Ok(Some(error)) => Err(error),
        _ => Ok(()),
    }
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

    /// Keeps this broker's queues in the cluster's store from now on. Once only: a second
    /// call is refused and returns false.
    pub fn attach_shared_queues(&self, queues: Arc<dyn SharedQueues>) -> bool {
        self.inner.queues.attach_shared(queues)
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
        // A persistent topic message is kept by the durable subscriptions it matches, on
        // whichever node their owners are: the session's RECEIPT waits for the cluster's
        // store, as it waits for sled's commit on one node.
        let persistent =
            key.starts_with("/topic/") && message.headers.get("persistent") == Some("true");
        let (forward, kept) = if persistent {
            federation.forward_persistent(key, message)
        } else {
            (federation.forward(key, message), None)
        };
        let local = match kept.and_then(hold_append) {
            // Outside a session the publisher waits for the store's answer (which it must
            // hear) rather than for the outboxes it filled.
            Some(append) => Some(append),
            None => local,
        };
        match (forward, local) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_session_waits_for_its_own_appends_and_hears_of_a_refusal_once() {
        own_appends(async {
            let (stored, first) = tokio::sync::oneshot::channel();
            let (refused, second) = tokio::sync::oneshot::channel();
            assert!(hold_append(first).is_none());
            assert!(hold_append(second).is_none());
            let settle = tokio::spawn(async move {
                let _ = stored.send(Ok(()));
                let _ = refused.send(Err("no stream".to_owned()));
            });
            assert_eq!(settle_own_appends(0).await, Err("no stream".to_owned()));
            settle.await.unwrap();
            // Reported once: the next RECEIPT has nothing against it.
            assert_eq!(settle_own_appends(0).await, Ok(()));
        })
        .await;
    }

    #[tokio::test]
    async fn outside_a_session_the_publisher_waits_for_its_append() {
        let (_stored, appended) = tokio::sync::oneshot::channel();
        assert!(matches!(hold_append(appended), Some(Pending::Append(_))));
    }
}
