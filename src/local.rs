//! The in-process client: publish and subscribe from the embedding application without a
//! socket, with the same routing, authorisation and flow control as a STOMP session.

use std::sync::Arc;

use bytes::Bytes;
use stompede_protocol::Headers;

use bytestring::ByteString;

use crate::broker::message::Message;
use crate::broker::outbox::{CloseReason, Outbox, Outgoing};
use crate::broker::queue::{AckMode, Consumer, Queue};
use crate::broker::{Broker, PublishError, SubscribeError, SubscribeRequest, Subscribed};

/// Publishes and subscribes as one user, in process.
#[derive(Debug, Clone)]
pub struct LocalClient {
    broker: Broker,
    user: Arc<str>,
}

impl LocalClient {
    /// A client acting as `user`.
    pub fn new(broker: Broker, user: &str) -> Self {
        LocalClient {
            broker,
            user: user.into(),
        }
    }

    /// Sends a message. Waits, like a STOMP publisher, while a subscriber's outbox is full
    /// (up to the slow-consumer grace): the awaitable form of backpressure.
    pub async fn send(
        &self,
        destination: &str,
        headers: Headers,
        body: impl Into<Bytes>,
    ) -> Result<(), PublishError> {
        let body = body.into();
        let text = std::str::from_utf8(&body).is_ok();
        let message = self
            .broker
            .message(destination.into(), &headers, body, text);
        self.broker.publish(&self.user, message).await
    }

    /// Subscribes to a topic (pattern), a queue (auto-acknowledged) or a user destination,
    /// authorised and guarded exactly as a STOMP SUBSCRIBE of this user is.
    pub fn subscribe(&self, destination: &str) -> Result<LocalSubscription, SubscribeError> {
        self.subscribe_with(destination, &Headers::new())
    }

    /// Like [`LocalClient::subscribe`], with the SUBSCRIBE headers a destination's guard reads
    /// (`since-seq` on a job's topic replays its events after that number).
    pub fn subscribe_with(
        &self,
        destination: &str,
        headers: &Headers,
    ) -> Result<LocalSubscription, SubscribeError> {
        self.open(destination, headers, None)
    }

    /// Like [`LocalClient::subscribe_with`], first reading what the destination's guard needs
    /// from elsewhere: on a cluster member, a job's topic whose job another node holds is
    /// admitted (its snapshot, its replay) only this way.
    pub async fn subscribe_reading_ahead(
        &self,
        destination: &str,
        headers: &Headers,
    ) -> Result<LocalSubscription, SubscribeError> {
        let prepared = self
            .broker
            .prepare_subscribe(&self.user, destination, headers)
            .await;
        self.open(destination, headers, prepared)
    }

    fn open(
        &self,
        destination: &str,
        headers: &Headers,
        prepared: Option<crate::broker::app::Prepared>,
    ) -> Result<LocalSubscription, SubscribeError> {
        let outbox = self.broker.new_outbox();
        let subscribed = self.broker.subscribe(SubscribeRequest {
            user: &self.user,
            destination: &ByteString::from(destination),
            id: "local".into(),
            ack: AckMode::Auto,
            prefetch: None,
            durable: false,
            outbox: &outbox,
            headers,
            prepared,
        })?;
        let target = match subscribed {
            // The in-process client takes no RECEIPT: nothing waits for the cluster.
            Subscribed::Topic {
                key, subscriber, ..
            } => Target::Topic(key, subscriber.key),
            Subscribed::Queue { queue, consumer } => Target::Queue(queue, consumer),
        };
        Ok(LocalSubscription {
            broker: self.broker.clone(),
            outbox,
            target,
        })
    }
}

#[derive(Debug)]
enum Target {
    Topic(String, u64),
    Queue(Arc<Queue>, Arc<Consumer>),
}

/// A subscription of a [`LocalClient`]; unsubscribes when dropped.
#[derive(Debug)]
pub struct LocalSubscription {
    broker: Broker,
    outbox: Arc<Outbox>,
    target: Target,
}

impl LocalSubscription {
    /// The next message, or `None` once the subscription was cut off (a slow consumer).
    pub async fn next(&self) -> Option<Arc<Message>> {
        loop {
            match self.outbox.pop().await? {
                Outgoing::Delivery(delivery) => {
                    // Handed over is delivered: an auto-acknowledged persistent message is
                    // acknowledged now, as a session's writer does once it wrote it.
                    if let Some(settle) = &delivery.settle {
                        settle.written();
                    }
                    return Some(delivery.message);
                }
                Outgoing::Frame(_) => continue,
            }
        }
    }
}

impl Drop for LocalSubscription {
    fn drop(&mut self) {
        self.outbox.close(CloseReason::Finished);
        match &self.target {
            Target::Topic(key, id) => self.broker.unsubscribe_topic(key, *id),
            Target::Queue(queue, consumer) => queue.remove_consumer(consumer),
        }
    }
}
