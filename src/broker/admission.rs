//! Admitting a subscription: the one place where reading is authorised. The ACL comes first,
//! then the destination's guard (whose snapshot or replay reaches the outbox only once the
//! ACL has admitted the reader), then the subscription is registered. STOMP sessions and the
//! in-process client both subscribe through here.

use std::sync::Arc;

use bytestring::ByteString;
use stompede_protocol::Headers;

use super::acl::Access;
use super::destination::{parse_subscribe, user_key, DestinationError, SubscribeTarget};
use super::outbox::{Delivery, Outbox, Outgoing};
use super::queue::Queue;
use super::topic::{Subscriber, Target};
use super::Broker;

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
}

/// A topic or user-destination subscription to open.
#[derive(Debug)]
pub struct TopicSubscription<'a> {
    /// Who subscribes.
    pub user: &'a str,
    /// The destination as the subscriber named it (a topic, a pattern or `/user/queue/...`).
    pub destination: &'a ByteString,
    /// The subscription id its MESSAGEs carry.
    pub id: ByteString,
    /// Its key, from [`Broker::next_key`] (ack ids and unsubscribing name it).
    pub key: u64,
    /// Where its messages go.
    pub outbox: &'a Arc<Outbox>,
    /// True when its MESSAGEs carry an `ack` header.
    pub ack: bool,
    /// The SUBSCRIBE's headers (a guard may read them, e.g. `since-seq`).
    pub headers: &'a Headers,
}

/// An open topic subscription: the key it is indexed under, and its subscriber.
#[derive(Debug)]
pub struct OpenTopic {
    /// The topic index key (the user's own key for a user destination).
    pub key: String,
    /// The registered subscriber.
    pub subscriber: Arc<Subscriber>,
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

    /// The queue `name`, once `user` is allowed to consume it.
    pub(crate) fn admit_queue(&self, user: &str, name: &str) -> Result<Arc<Queue>, SubscribeError> {
        self.authorise_read(user, name)?;
        Ok(self.queue(name))
    }

    /// Opens a topic or user-destination subscription: authorised, guarded (the guard's
    /// messages are put in the outbox before any live one), then registered.
    pub(crate) fn open_topic(
        &self,
        request: TopicSubscription<'_>,
    ) -> Result<OpenTopic, SubscribeError> {
        let TopicSubscription {
            user,
            destination,
            id,
            key: subscriber_key,
            outbox,
            ack,
            headers,
        } = request;
        let (name, key) = match parse_subscribe(destination)? {
            SubscribeTarget::Topic(name) => (name, name.to_owned()),
            SubscribeTarget::User(local) => (local, user_key(user, local)),
            SubscribeTarget::Queue(name) => {
                return Err(DestinationError::Unsupported(name.to_owned()).into())
            }
        };
        self.authorise_read(user, &key)?;
        let guard = self.subscribe_guard(name);
        let publication = guard.as_ref().and_then(|g| g.publication_lock());
        // Held until the subscription is registered: see `SubscribeGuard::publication_lock`.
        let _publishing_held_off = publication
            .as_ref()
            .map(|lock| lock.lock().unwrap_or_else(|e| e.into_inner()));
        if let Some(guard) = guard {
            let first =
                guard
                    .check(user, name, headers)
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
        self.subscribe_topic(&key, subscriber.clone());
        Ok(OpenTopic { key, subscriber })
    }
}
