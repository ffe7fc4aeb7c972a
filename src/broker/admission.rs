//! Subscribing: the one place where reading is authorised. [`Broker::subscribe`] parses the
//! destination once; the ACL comes first, then the destination's guard (whose snapshot or
//! replay reaches the outbox only once the ACL has admitted the reader), then the
//! subscription is registered. STOMP sessions and the in-process client both subscribe here.

use std::sync::Arc;

use bytestring::ByteString;
use stompede_protocol::Headers;

use super::acl::Access;
use super::app::Prepared;
use super::destination::{parse_subscribe, user_key, DestinationError, SubscribeTarget};
use super::federation::Interest;
use super::outbox::{Delivery, Outbox, Outgoing};
use super::queue::{AckMode, Consumer, Queue};
use super::topic::{Subscriber, Target};
use super::Broker;
use crate::store::StoreError;

/// Why a subscription was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// The destination is malformed or unsupported.
    #[error(transparent)]
    Destination(#[from] DestinationError),
    /// The authorisation rules refuse it.
    #[error("user {user} may not subscribe to {destination}")]
    Forbidden {
        /// The user.
        user: String,
        /// The destination.
        destination: String,
    },
    /// The destination's guard refused it (a job topic of another user, for instance).
    #[error("subscription to {destination} refused: {reason}")]
    Refused {
        /// The destination.
        destination: String,
        /// The guard's reason.
        #[source]
        reason: super::app::GuardRefusal,
    },
    /// A durable subscription could not be stored.
    #[error("durable subscription not stored: {0}")]
    Store(#[from] StoreError),
}

/// A subscription to open, as a SUBSCRIBE frame (or the in-process client) asks for it.
#[derive(Debug)]
pub struct SubscribeRequest<'a> {
    /// Who subscribes.
    pub user: &'a str,
    /// The destination as the subscriber named it: a topic or pattern, a queue, or
    /// `/user/queue/...`.
    pub destination: &'a ByteString,
    /// The subscription id its MESSAGEs carry.
    pub id: ByteString,
    /// How it acknowledges.
    pub ack: AckMode,
    /// Most unacknowledged queue messages it may hold (`None`: unbounded).
    pub prefetch: Option<usize>,
    /// A topic subscription whose messages wait for it while it is away (stored).
    pub durable: bool,
    /// Where its messages go.
    pub outbox: &'a Arc<Outbox>,
    /// The SUBSCRIBE's headers (a guard may read them, e.g. `since-seq`).
    pub headers: &'a Headers,
    /// What the destination's guard read ahead ([`Broker::prepare_subscribe`]).
    pub prepared: Option<Prepared>,
}

/// An open subscription.
#[derive(Debug)]
pub enum Subscribed {
    /// A topic or user destination: registered in the topic index under `key`.
    Topic {
        /// The topic index key (the user's own key for a user destination).
        key: String,
        /// The registered subscriber.
        subscriber: Arc<Subscriber>,
        /// Its registration with the other nodes of a cluster: a RECEIPT waits for it.
        interest: Interest,
    },
    /// A queue (or a durable topic subscription's queue) with this consumer on it.
    Queue {
        /// The queue.
        queue: Arc<Queue>,
        /// The consumer.
        consumer: Arc<Consumer>,
    },
}

impl Broker {
    /// Refuses `user` reading `destination` unless the authorisation rules allow it.
    pub(crate) fn authorise_read(
        &self,
        user: &str,
        destination: &str,
    ) -> Result<(), SubscribeError> {
        if self.acl().allows(user, destination, Access::Read) {
            Ok(())
        } else {
            Err(SubscribeError::Forbidden {
                user: user.to_owned(),
                destination: destination.to_owned(),
            })
        }
    }

    /// Reads ahead what the guard of `destination` needs to decide a SUBSCRIBE of `user`
    /// (see `SubscribeGuard::prepare`); None when it needs nothing. Awaited before
    /// [`Broker::subscribe`], which takes the result in its request.
    pub(crate) async fn prepare_subscribe(
        &self,
        user: &str,
        destination: &str,
        headers: &Headers,
    ) -> Option<Prepared> {
        let Ok(SubscribeTarget::Topic(name)) = parse_subscribe(destination) else {
            return None;
        };
        let read = self.subscribe_guard(name)?.prepare(user, name, headers)?;
        Some(read.await)
    }

    /// Opens a subscription: the destination parsed, reading authorised, the guard's first
    /// messages queued, then the subscription registered.
    pub(crate) fn subscribe(
        &self,
        request: SubscribeRequest<'_>,
    ) -> Result<Subscribed, SubscribeError> {
        let key = self.next_key();
        let queue = match parse_subscribe(request.destination)? {
            SubscribeTarget::Topic(name) if request.durable => {
                self.authorise_read(request.user, name)?;
                self.durable_subscribe(request.user, &request.id, name)?
            }
            SubscribeTarget::Topic(name) => {
                return self.open_topic(&request, name, name.to_owned(), key)
            }
            SubscribeTarget::User(local) => {
                let own = user_key(request.user, local);
                return self.open_topic(&request, local, own, key);
            }
            SubscribeTarget::Queue(name) => {
                self.authorise_read(request.user, name)?;
                self.queue(name)
            }
        };
        let consumer = Arc::new(Consumer::new(
            key,
            request.id,
            request.outbox.clone(),
            request.ack,
            request.prefetch,
        ));
        queue.add_consumer(consumer.clone());
        Ok(Subscribed::Queue { queue, consumer })
    }

    /// A topic or user-destination subscription: `name` is the destination as guards know
    /// it, `key` where it is indexed (the user's own key for a user destination).
    fn open_topic(
        &self,
        request: &SubscribeRequest<'_>,
        name: &str,
        key: String,
        subscriber_key: u64,
    ) -> Result<Subscribed, SubscribeError> {
        let SubscribeRequest {
            user,
            destination,
            outbox,
            headers,
            ..
        } = *request;
        let id = request.id.clone();
        let ack = request.ack != AckMode::Auto;
        self.authorise_read(user, &key)?;
        let guard = self.subscribe_guard(name);
        let publication = guard.as_ref().and_then(|g| g.publication_lock());
        // Held until the subscription is registered: see `SubscribeGuard::publication_lock`.
        let _publishing_held_off = publication
            .as_ref()
            .map(|lock| lock.lock().unwrap_or_else(|e| e.into_inner()));
        if let Some(guard) = guard {
            let first = guard
                .check(user, name, headers, request.prepared.as_ref())
                .map_err(|reason| SubscribeError::Refused {
                    destination: name.to_owned(),
                    reason,
                })?;
            for (headers, body) in first {
                let message = self.message(destination.clone(), &headers, body, true);
                let _ = outbox.push_reply(Outgoing::Delivery(Delivery {
                    message: Arc::new(message),
                    subscription: id.clone(),
                    ack: None,
                    redelivered: false,
                    settle: None,
                }));
            }
        }
        let subscriber = Arc::new(Subscriber {
            key: subscriber_key,
            target: Target::Session {
                subscription: id,
                outbox: outbox.clone(),
                ack,
            },
        });
        let interest = self.subscribe_topic(&key, subscriber.clone());
        Ok(Subscribed::Topic {
            key,
            subscriber,
            interest,
        })
    }
}
