//! A session's subscriptions: SUBSCRIBE, UNSUBSCRIBE, ACK and NACK.

use std::collections::HashMap;
use std::sync::Arc;

use bytestring::ByteString;
use stompede_protocol::{names, Frame, Version};

use super::SessionError;
use crate::broker::federation::Interest;
use crate::broker::outbox::Outbox;
use crate::broker::queue::{AckMode, Consumer, Queue};
use crate::broker::topic::Subscriber;
use crate::broker::{Broker, SubscribeError, SubscribeRequest, Subscribed};

/// One subscription.
#[derive(Debug)]
enum Subscription {
    /// A topic (or user destination) subscription, indexed under `key`.
    Topic {
        destination: ByteString,
        key: String,
        subscriber: Arc<Subscriber>,
        ack: bool,
    },
    /// A queue consumer.
    Queue {
        destination: ByteString,
        queue: Arc<Queue>,
        consumer: Arc<Consumer>,
    },
}

impl Subscription {
    fn destination(&self) -> &str {
        match self {
            Subscription::Topic { destination, .. } | Subscription::Queue { destination, .. } => {
                destination
            }
        }
    }

    fn key(&self) -> u64 {
        match self {
            Subscription::Topic { subscriber, .. } => subscriber.key,
            Subscription::Queue { consumer, .. } => consumer.key,
        }
    }
}

/// The subscriptions of one session, by subscription id.
#[derive(Debug, Default)]
pub struct Subscriptions {
    by_id: HashMap<ByteString, Subscription>,
}

impl Subscriptions {
    /// SUBSCRIBE. The returned interest is the subscription's registration with the other
    /// nodes of a cluster: the RECEIPT waits for it.
    pub async fn subscribe(
        &mut self,
        frame: &Frame,
        version: Version,
        user: &str,
        outbox: &Arc<Outbox>,
        broker: &Broker,
        max: usize,
    ) -> Result<Interest, SessionError> {
        let destination = required(frame, names::DESTINATION)?;
        // STOMP 1.0 made `id` optional; the destination then names the subscription.
        let id = match frame.headers.get_shared(names::ID) {
            Some(id) => id,
            None if version == Version::V1_0 => destination.clone(),
            None => return Err(missing(frame, names::ID)),
        };
        if self.by_id.contains_key(&id) {
            return Err(SessionError::new(
                format!("duplicate subscription id {id}"),
                "This session already has a subscription with that id; UNSUBSCRIBE it first or use another id.",
            ));
        }
        if self.by_id.len() >= max {
            return Err(SessionError::new(
                "too many subscriptions",
                format!("A session may hold at most {max} subscriptions (max-subscriptions-per-session)."),
            ));
        }
        let ack_mode = AckMode::parse(frame.get(names::ACK)).ok_or_else(|| {
            SessionError::new(
                format!(
                    "invalid ack mode {:?}",
                    frame.get(names::ACK).unwrap_or_default()
                ),
                "ack must be auto, client or client-individual.",
            )
        })?;
        // What the destination's guard must read from elsewhere first (a job another node
        // holds), before the subscription is decided.
        let prepared = broker
            .prepare_subscribe(user, &destination, &frame.headers)
            .await;
        let subscribed = broker
            .subscribe(SubscribeRequest {
                user,
                destination: &destination,
                id: id.clone(),
                ack: ack_mode,
                prefetch: prefetch(frame)?,
                durable: is_durable(frame),
                outbox,
                headers: &frame.headers,
                prepared,
            })
            .map_err(refusal)?;
        let (subscription, interest) = match subscribed {
            Subscribed::Topic {
                key,
                subscriber,
                interest,
            } => (
                Subscription::Topic {
                    destination: destination.clone(),
                    key,
                    subscriber,
                    ack: ack_mode != AckMode::Auto,
                },
                interest,
            ),
            Subscribed::Queue { queue, consumer } => (
                Subscription::Queue {
                    destination: destination.clone(),
                    queue,
                    consumer,
                },
                Interest::known(),
            ),
        };
        self.by_id.insert(id, subscription);
        Ok(interest)
    }

    /// UNSUBSCRIBE. Unknown ids are ignored: clients commonly unsubscribe twice on teardown.
    /// With `durable:true`, the stored durable subscription is removed too.
    pub fn unsubscribe(
        &mut self,
        frame: &Frame,
        version: Version,
        user: &str,
        broker: &Broker,
    ) -> Result<(), SessionError> {
        let id = match (frame.get(names::ID), version) {
            (Some(id), _) => id.to_owned(),
            (None, Version::V1_0) => {
                let destination = frame
                    .get(names::DESTINATION)
                    .ok_or_else(|| missing(frame, names::ID))?;
                match self
                    .by_id
                    .iter()
                    .find(|(_, s)| s.destination() == destination)
                {
                    Some((id, _)) => id.to_string(),
                    None => return Ok(()),
                }
            }
            (None, _) => return Err(missing(frame, names::ID)),
        };
        if let Some(subscription) = self.by_id.remove(id.as_str()) {
            remove(subscription, broker);
        }
        let flag = frame.get("durable").or_else(|| frame.get("persistent"));
        if flag == Some("true") {
            broker.durable_unsubscribe(user, &id).map_err(|e| {
                SessionError::new(
                    format!("durable subscription not removed: {e}"),
                    "The store failed.",
                )
            })?;
        }
        Ok(())
    }

    /// ACK (`nack: false`) or NACK (`nack: true`). Acknowledging frees prefetch credit;
    /// a NACK puts the messages back on their queue, marked redelivered.
    pub fn acknowledge(&self, frame: &Frame, nack: bool) -> Result<(), SessionError> {
        // 1.2 sends the MESSAGE's `ack` value as `id`; 1.0 and 1.1 send `message-id`.
        let (consumer, ack_id) = if let Some(id) = frame.get(names::ID) {
            match self.owner_of(id) {
                Some(Some(consumer)) => (consumer, ByteString::from(id)),
                // A topic subscription: nothing is tracked, the ACK has no effect.
                Some(None) => return Ok(()),
                None => return Err(unknown_ack(id)),
            }
        } else {
            let message_id = frame
                .get(names::MESSAGE_ID)
                .ok_or_else(|| missing(frame, names::ID))?;
            let subscription = frame.get(names::SUBSCRIPTION);
            let found = self.by_id.iter().find_map(|(id, s)| match s {
                Subscription::Queue { consumer, .. }
                    if subscription.is_none_or(|sub| sub == &**id) =>
                {
                    consumer
                        .ack_id_for_message(message_id)
                        .map(|ack| (consumer, ack))
                }
                _ => None,
            });
            match found {
                Some(pair) => pair,
                None if self
                    .by_id
                    .values()
                    .any(|s| matches!(s, Subscription::Topic { ack: true, .. })) =>
                {
                    return Ok(())
                }
                None => return Err(unknown_ack(message_id)),
            }
        };
        let taken = consumer
            .take_acked(&ack_id)
            .ok_or_else(|| unknown_ack(&ack_id))?;
        let Some(queue) = self.queue_of(consumer.key) else {
            return Ok(());
        };
        if nack {
            queue.requeue(taken);
        } else {
            queue.acked(taken);
        }
        Ok(())
    }

    /// For an ack id `{key}.{message-id}`: `Some(Some(consumer))` for a queue subscription of
    /// this session, `Some(None)` for a topic one, `None` when not ours.
    fn owner_of(&self, ack_id: &str) -> Option<Option<&Arc<Consumer>>> {
        let key: u64 = ack_id.split_once('.')?.0.parse().ok()?;
        self.by_id
            .values()
            .find(|s| s.key() == key)
            .map(|s| match s {
                Subscription::Queue { consumer, .. } => Some(consumer),
                Subscription::Topic { .. } => None,
            })
    }

    fn queue_of(&self, key: u64) -> Option<&Arc<Queue>> {
        self.by_id.values().find_map(|s| match s {
            Subscription::Queue {
                queue, consumer, ..
            } if consumer.key == key => Some(queue),
            _ => None,
        })
    }

    /// Removes every subscription (session end): unacknowledged queue messages go back.
    pub fn clear(&mut self, broker: &Broker) {
        for (_, subscription) in self.by_id.drain() {
            remove(subscription, broker);
        }
    }
}

/// `durable:true` (or RabbitMQ's alias `persistent:true`), unless `auto-delete:true`.
fn is_durable(frame: &Frame) -> bool {
    let flag = frame.get("durable").or_else(|| frame.get("persistent"));
    flag == Some("true") && frame.get("auto-delete") != Some("true")
}

/// The `prefetch-count` header: `None` when absent or 0 (unbounded).
fn prefetch(frame: &Frame) -> Result<Option<usize>, SessionError> {
    match frame.get("prefetch-count") {
        None => Ok(None),
        Some(value) => match value.trim().parse::<usize>() {
            Ok(0) => Ok(None),
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(SessionError::new(
                format!("invalid prefetch-count {value:?}"),
                "prefetch-count must be a non-negative integer (0: unlimited).",
            )),
        },
    }
}

fn remove(subscription: Subscription, broker: &Broker) {
    match subscription {
        Subscription::Topic {
            key, subscriber, ..
        } => broker.unsubscribe_topic(&key, subscriber.key),
        Subscription::Queue {
            queue, consumer, ..
        } => queue.remove_consumer(&consumer),
    }
}

/// A refused subscription as the ERROR the client reads.
fn refusal(error: SubscribeError) -> SessionError {
    let detail = match &error {
        SubscribeError::Destination(_) => "SUBSCRIBE refused.",
        SubscribeError::Forbidden { .. } => "Access refused by the authorisation rules.",
        SubscribeError::Refused { .. } => "Access refused.",
        SubscribeError::Store(_) => "The store failed; the subscription was not created.",
    };
    SessionError::new(error.to_string(), detail)
}

fn required(frame: &Frame, name: &str) -> Result<ByteString, SessionError> {
    frame
        .headers
        .get_shared(name)
        .ok_or_else(|| missing(frame, name))
}

/// An ERROR for a missing header.
pub fn missing(frame: &Frame, name: &str) -> SessionError {
    SessionError::new(
        format!("{} frame has no {name} header", frame.command),
        format!("{} requires the {name} header.", frame.command),
    )
}

fn unknown_ack(id: &str) -> SessionError {
    SessionError::new(
        format!("unknown ack id {id}"),
        "The ACK or NACK names no message this session holds unacknowledged (already acknowledged, or never delivered to this session).",
    )
}
