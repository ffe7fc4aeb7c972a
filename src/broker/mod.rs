//! The router: topics, queues, user destinations and `/app/` handlers, with no knowledge of
//! sockets or sessions. Sessions, the in-process client and (later) the job engine all publish
//! through a [`Broker`] handle.

pub mod app;
pub mod destination;
pub mod message;
pub mod metrics;
pub mod outbox;
pub mod queue;
pub mod topic;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use bytes::Bytes;
use bytestring::ByteString;
use stompede_protocol::{Frame, Headers};

use crate::auth::{Access, Acl};
use app::AppRoutes;
use destination::{parse_send, user_key, DestinationError, SendTarget};
use message::Message;
use metrics::Metrics;
use outbox::{CloseReason, Delivery, Outbox, OutboxLimits, Outgoing, Pressure};
use queue::{Queue, QueueFull, QueueLimits, QueueStats};
use topic::{Subscriber, TopicIndex};

/// Why a publish was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The destination is malformed or unsupported.
    #[error(transparent)]
    Destination(#[from] DestinationError),
    /// The user may not send there.
    #[error("user {user} may not send to {destination}")]
    Forbidden {
        /// The user.
        user: String,
        /// The destination.
        destination: String,
    },
    /// The queue is full.
    #[error(transparent)]
    QueueFull(#[from] QueueFull),
    /// `/app/` destinations go through [`Broker::app_handler`], not publish.
    #[error("no handler for application destination {0}")]
    NoAppHandler(String),
}

/// A session known to the broker (for shutdown, per-user limits and administration).
#[derive(Debug)]
struct SessionEntry {
    user: Arc<str>,
    outbox: Arc<Outbox>,
}

struct Inner {
    topics: TopicIndex,
    // A std RwLock: queues are looked up on every queue SEND and created rarely; nothing awaits
    // under it.
    queues: RwLock<HashMap<Box<str>, Arc<Queue>>>,
    sessions: Mutex<HashMap<u64, SessionEntry>>,
    apps: AppRoutes,
    acl: Acl,
    metrics: Arc<Metrics>,
    outbox_limits: OutboxLimits,
    queue_limits: QueueLimits,
    max_sessions_per_user: usize,
    next_key: AtomicU64,
    next_message: AtomicU64,
    /// Distinguishes message ids across restarts.
    boot: String,
}

/// A cheap, cloneable handle to the router.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker").finish_non_exhaustive()
    }
}

/// Too many sessions for one user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("user {user} already has {limit} sessions (max-sessions-per-user)")]
pub struct TooManySessions {
    /// The user.
    pub user: String,
    /// The limit.
    pub limit: usize,
}

impl Broker {
    /// A router with the given policies and handlers.
    pub(crate) fn new(
        apps: AppRoutes,
        acl: Acl,
        outbox_limits: OutboxLimits,
        queue_limits: QueueLimits,
        max_sessions_per_user: usize,
    ) -> Broker {
        let boot = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        Broker {
            inner: Arc::new(Inner {
                topics: TopicIndex::default(),
                queues: RwLock::new(HashMap::new()),
                sessions: Mutex::new(HashMap::new()),
                apps,
                acl,
                metrics: Arc::new(Metrics::default()),
                outbox_limits,
                queue_limits,
                max_sessions_per_user,
                next_key: AtomicU64::new(1),
                next_message: AtomicU64::new(1),
                boot: format!("{boot:x}"),
            }),
        }
    }

    /// The broker's counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The authorisation rules.
    pub fn acl(&self) -> &Acl {
        &self.inner.acl
    }

    /// The application handlers.
    pub fn apps(&self) -> &AppRoutes {
        &self.inner.apps
    }

    /// A new key, unique in this broker, for sessions and subscriptions.
    pub fn next_key(&self) -> u64 {
        self.inner.next_key.fetch_add(1, Ordering::Relaxed)
    }

    /// A new `message-id`.
    pub fn next_message_id(&self) -> ByteString {
        let n = self.inner.next_message.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.inner.boot).into()
    }

    /// A new outbox with the configured limits.
    pub fn new_outbox(&self) -> Arc<Outbox> {
        Outbox::new(self.inner.outbox_limits)
    }

    /// Registers a session of `user`, refusing past the per-user limit.
    pub fn register_session(
        &self,
        id: u64,
        user: Arc<str>,
        outbox: Arc<Outbox>,
    ) -> Result<(), TooManySessions> {
        let mut sessions = self
            .inner
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let held = sessions.values().filter(|s| s.user == user).count();
        if held >= self.inner.max_sessions_per_user {
            return Err(TooManySessions {
                user: user.to_string(),
                limit: self.inner.max_sessions_per_user,
            });
        }
        sessions.insert(id, SessionEntry { user, outbox });
        Ok(())
    }

    /// Forgets a session.
    pub fn unregister_session(&self, id: u64) {
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    /// Number of open sessions.
    pub fn session_count(&self) -> usize {
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Ends every session with an ERROR carrying `message` (server shutdown).
    pub fn close_all_sessions(&self, message: &str) {
        let outboxes: Vec<Arc<Outbox>> = self
            .inner
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|s| s.outbox.clone())
            .collect();
        for outbox in outboxes {
            outbox.close(CloseReason::Error(Box::new(Broker::error_frame(
                message, "", None,
            ))));
        }
    }

    /// Builds a message as SEND would: a fresh id, the sender's headers.
    pub fn message(
        &self,
        destination: ByteString,
        headers: &Headers,
        body: Bytes,
        text: bool,
    ) -> Message {
        Message::new(self.next_message_id(), destination, headers, body, text)
    }

    /// Routes a SEND from `user` to a topic, queue or user destination, waiting (flow control)
    /// while a topic subscriber's outbox is full, up to the slow-consumer grace.
    /// `/app/` destinations are refused here: see [`Broker::app_handler`].
    pub async fn publish(&self, user: &str, message: Message) -> Result<(), PublishError> {
        let destination = message.destination.clone();
        let target = parse_send(&destination)?;
        if !self.inner.acl.allows(user, &destination, Access::Write) {
            return Err(PublishError::Forbidden {
                user: user.to_owned(),
                destination: destination.to_string(),
            });
        }
        Metrics::incr(&self.inner.metrics.messages_published);
        match target {
            SendTarget::Topic(name) => {
                self.fan_out(name, Arc::new(message)).await;
            }
            SendTarget::User {
                user: recipient,
                local,
            } => {
                let key = user_key(recipient, &local);
                let message = message.with_destination(local.into());
                self.fan_out(&key, Arc::new(message)).await;
            }
            SendTarget::Queue(name) => {
                self.queue(name).enqueue(Arc::new(message))?;
            }
            SendTarget::App(name) => return Err(PublishError::NoAppHandler(name.to_owned())),
        }
        Ok(())
    }

    /// Hands `message` to every subscription matching `key`, then waits for the full outboxes.
    async fn fan_out(&self, key: &str, message: Arc<Message>) {
        let mut full: Vec<Arc<Outbox>> = Vec::new();
        let mut delivered = 0u64;
        self.inner.topics.for_each_match(key, |subscriber| {
            let delivery = Delivery {
                message: message.clone(),
                subscription: subscriber.subscription.clone(),
                ack: subscriber
                    .ack
                    .then(|| format!("{}.{}", subscriber.key, message.id).into()),
                redelivered: false,
            };
            match subscriber.outbox.push(Outgoing::Delivery(delivery)) {
                Ok(Pressure::Clear) => delivered += 1,
                Ok(Pressure::Full) => {
                    delivered += 1;
                    full.push(subscriber.outbox.clone());
                }
                Err(_closed) => {}
            }
        });
        self.inner
            .metrics
            .messages_delivered
            .fetch_add(delivered, Ordering::Relaxed);
        if full.is_empty() {
            return;
        }
        Metrics::incr(&self.inner.metrics.publishes_paced);
        let started = Instant::now();
        for outbox in full {
            if outbox.room_or_cut_off().await {
                Metrics::incr(&self.inner.metrics.slow_consumers_disconnected);
                tracing::warn!(
                    destination = key,
                    "slow consumer cut off: its outbox stayed full past the grace"
                );
            }
        }
        self.inner
            .metrics
            .publish_wait_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    }

    /// Adds a topic or user-destination subscription under `key` (a name or pattern).
    pub fn subscribe_topic(&self, key: &str, subscriber: Arc<Subscriber>) {
        self.inner.topics.insert(key, subscriber);
    }

    /// Removes a topic subscription.
    pub fn unsubscribe_topic(&self, key: &str, subscriber_key: u64) {
        self.inner.topics.remove(key, subscriber_key);
    }

    /// The queue called `name`, created on first use.
    pub fn queue(&self, name: &str) -> Arc<Queue> {
        if let Some(queue) = self
            .inner
            .queues
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return queue.clone();
        }
        let mut queues = self.inner.queues.write().unwrap_or_else(|e| e.into_inner());
        queues
            .entry(name.into())
            .or_insert_with(|| {
                Arc::new(Queue::new(
                    name.into(),
                    self.inner.queue_limits,
                    self.inner.metrics.clone(),
                ))
            })
            .clone()
    }

    /// Every queue's depth, bytes, consumers and unacked count.
    pub fn queue_stats(&self) -> Vec<QueueStats> {
        let queues: Vec<Arc<Queue>> = self
            .inner
            .queues
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let mut stats: Vec<QueueStats> = queues.iter().map(|q| q.stats()).collect();
        stats.sort_by(|a, b| a.name.cmp(&b.name));
        stats
    }

    /// Drops the waiting messages of queue `name`; returns how many, or `None` if unknown.
    pub fn purge_queue(&self, name: &str) -> Option<usize> {
        let queue = self
            .inner
            .queues
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()?;
        Some(queue.purge())
    }

    /// Deletes queue `name` with its waiting messages; consumers keep their subscription to a
    /// new, empty queue of the same name only if they subscribe again. Returns false if unknown.
    pub fn delete_queue(&self, name: &str) -> bool {
        let removed = self
            .inner
            .queues
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        match removed {
            Some(queue) => {
                queue.purge();
                true
            }
            None => false,
        }
    }

    /// The handler for an `/app/` destination.
    pub fn app_handler(&self, destination: &str) -> Option<Arc<dyn app::AppHandler>> {
        self.inner.apps.find(destination).cloned()
    }

    /// An ERROR frame.
    pub fn error_frame(message: &str, detail: &str, receipt: Option<&str>) -> Frame {
        let mut frame = Frame::new(stompede_protocol::Command::Error)
            .header("message", message)
            .header("content-type", "text/plain");
        if let Some(receipt) = receipt {
            frame = frame.header("receipt-id", receipt);
        }
        let body = if detail.is_empty() { message } else { detail };
        frame.body(Bytes::from(body.to_owned()))
    }
}
