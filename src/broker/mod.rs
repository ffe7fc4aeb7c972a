//! The router: topics, queues, user destinations and `/app/` handlers. It knows sessions only
//! as registered outboxes (for user destinations, per-user limits and shutdown), never their
//! sockets, and it builds no session-level frames. Sessions, the in-process client and the
//! job engine all publish through a [`Broker`] handle.

pub mod acl;
mod admission;
pub mod app;
mod backpressure;
pub mod destination;
mod durable;
pub mod federation;
pub mod message;
pub mod metrics;
pub mod outbox;
pub mod queue;
pub mod queues;
pub mod topic;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use bytestring::ByteString;
use stompede_protocol::{Frame, Headers};

use crate::store::{Store, StoreError};
use acl::{Access, Acl};
use app::AppRoutes;
use destination::{
    is_node_local, is_server_owned, parse_send, user_key, DestinationError, SendTarget,
};
use durable::DurableSubscriptions;
use federation::{Federation, Interest};
use message::Message;
use metrics::Metrics;
use outbox::{CloseReason, Delivery, Outbox, OutboxLimits, Outgoing, Pressure};
use queue::{Queue, QueueRefused, QueueStats};
use queues::{QueuePolicy, QueueRegistry};
use topic::{Subscriber, Target, TopicIndex};

pub use admission::{SubscribeError, SubscribeRequest, Subscribed};
pub use backpressure::Backpressure;
use backpressure::Pending;

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
    /// The queue refused the message (full, or the store failed).
    #[error(transparent)]
    Queue(#[from] QueueRefused),
    /// Only the server publishes there (job events, statistics).
    #[error("{destination} is server-owned: only the server publishes there (job events and statistics cannot be sent by clients)")]
    ServerOwned {
        /// The destination.
        destination: String,
    },
    /// `/app/` destinations go to their application handler, not through publish.
    #[error("no handler for application destination {0}")]
    NoAppHandler(String),
}

/// An open session, for administration.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    /// Its id.
    pub id: u64,
    /// Who it is logged in as.
    pub user: String,
    /// What carries it: `tcp`, `websocket` or `sockjs`.
    pub transport: &'static str,
    /// Frames waiting to be written to it.
    pub queued: usize,
    /// Bytes waiting to be written to it.
    pub queued_bytes: usize,
    /// How long its outbox has been above the high-water mark, if it is.
    pub slow_since_ms: Option<u64>,
}

/// A session known to the broker (for shutdown, per-user limits and administration).
#[derive(Debug)]
struct SessionEntry {
    user: Arc<str>,
    outbox: Arc<Outbox>,
    transport: &'static str,
}

/// The open sessions, with a count per user so the per-user limit costs no scan.
#[derive(Debug, Default)]
struct Sessions {
    by_id: HashMap<u64, SessionEntry>,
    per_user: HashMap<Arc<str>, usize>,
}

struct Inner {
    topics: TopicIndex,
    queues: Arc<QueueRegistry>,
    durable: DurableSubscriptions,
    store: Option<Store>,
    // A std Mutex: held for map updates only, never across an await.
    sessions: Mutex<Sessions>,
    // A std RwLock: read on every /app SEND and guarded SUBSCRIBE, written when a service
    // mounts itself at start-up; nothing awaits under it.
    apps: std::sync::RwLock<AppRoutes>,
    acl: Acl,
    metrics: Arc<Metrics>,
    outbox_limits: OutboxLimits,
    outbox_budget: Arc<outbox::MemoryBudget>,
    max_sessions_per_user: usize,
    next_key: AtomicU64,
    next_message: AtomicU64,
    /// Distinguishes message ids across restarts.
    boot: String,
    /// The link to other nodes (`--cluster`), attached once at start-up; empty on a single
    /// node, where routing never looks further.
    federation: OnceLock<Arc<dyn Federation>>,
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
    /// A router with the given policies and handlers; persistent messages and durable
    /// subscriptions go to `store`, from which they are restored here.
    pub(crate) fn new(
        apps: AppRoutes,
        acl: Acl,
        outbox_limits: OutboxLimits,
        queue_policy: QueuePolicy,
        store: Option<Store>,
        max_sessions_per_user: usize,
    ) -> Result<Broker, StoreError> {
        let boot = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let metrics = Arc::new(Metrics::default());
        let broker = Broker {
            inner: Arc::new(Inner {
                topics: TopicIndex::default(),
                queues: QueueRegistry::new(queue_policy, store.clone(), metrics.clone()),
                durable: DurableSubscriptions::default(),
                store,
                sessions: Mutex::new(Sessions::default()),
                apps: std::sync::RwLock::new(apps),
                acl,
                metrics,
                outbox_budget: outbox::MemoryBudget::new(outbox_limits.memory_cap),
                outbox_limits,
                max_sessions_per_user,
                next_key: AtomicU64::new(1),
                next_message: AtomicU64::new(1),
                boot: format!("{boot:x}"),
                federation: OnceLock::new(),
            }),
        };
        let restored = broker.inner.queues.restore()?;
        let subscriptions = broker.restore_durable_subscriptions()?;
        if restored > 0 || subscriptions > 0 {
            tracing::info!(
                messages = restored,
                durable_subscriptions = subscriptions,
                "restored from the store"
            );
        }
        Ok(broker)
    }

    /// The store, when persistence is on.
    pub(crate) fn store(&self) -> Option<&Store> {
        self.inner.store.as_ref()
    }

    /// Waits until the store writes of the current session are durable: what a session's
    /// RECEIPT promises (see [`crate::store::own_writes`]).
    pub(crate) async fn commit_own(&self) -> Result<(), StoreError> {
        // On a cluster member, the queue messages this session sent: stored by the cluster.
        if self.inner.queues.shared().is_some() {
            federation::settle_own_appends(0)
                .await
                .map_err(|e| StoreError::Unavailable(format!("cluster queue store: {e}")))?;
        }
        match &self.inner.store {
            Some(store) => store.commit_own().await,
            None => Ok(()),
        }
    }

    /// The broker's counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The authorisation rules.
    pub(crate) fn acl(&self) -> &Acl {
        &self.inner.acl
    }

    /// Mounts `handler` for SENDs to `prefix` and below (a service that starts after the
    /// broker, as the job engine does, which needs the broker to publish).
    pub(crate) fn mount_app(&self, prefix: &str, handler: Arc<dyn app::AppHandler>) {
        self.apps_mut().insert(prefix, handler);
    }

    /// Mounts `guard` for subscriptions to `prefix` and below.
    pub(crate) fn mount_guard(&self, prefix: &str, guard: Arc<dyn app::SubscribeGuard>) {
        self.apps_mut().insert_guard(prefix, guard);
    }

    /// The guard of a destination, if one is mounted.
    pub(crate) fn subscribe_guard(
        &self,
        destination: &str,
    ) -> Option<Arc<dyn app::SubscribeGuard>> {
        self.apps().guard(destination).cloned()
    }

    fn apps(&self) -> std::sync::RwLockReadGuard<'_, AppRoutes> {
        self.inner.apps.read().unwrap_or_else(|e| e.into_inner())
    }

    fn apps_mut(&self) -> std::sync::RwLockWriteGuard<'_, AppRoutes> {
        self.inner.apps.write().unwrap_or_else(|e| e.into_inner())
    }

    /// A new key, unique in this broker, for sessions and subscriptions.
    pub(crate) fn next_key(&self) -> u64 {
        self.inner.next_key.fetch_add(1, Ordering::Relaxed)
    }

    /// A new `message-id`.
    pub(crate) fn next_message_id(&self) -> ByteString {
        let n = self.inner.next_message.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.inner.boot).into()
    }

    /// Bytes held by all outboxes together (bounded by `outbox-memory-cap`).
    pub fn outbox_memory(&self) -> usize {
        self.inner.outbox_budget.used()
    }

    /// A new outbox with the configured limits.
    pub(crate) fn new_outbox(&self) -> Arc<Outbox> {
        Outbox::new(self.inner.outbox_limits, self.inner.outbox_budget.clone())
    }

    /// Registers a session of `user`, refusing past the per-user limit.
    pub(crate) fn register_session(
        &self,
        id: u64,
        user: Arc<str>,
        outbox: Arc<Outbox>,
        transport: &'static str,
    ) -> Result<(), TooManySessions> {
        let mut sessions = self
            .inner
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let held = sessions.per_user.get(&user).copied().unwrap_or(0);
        if held >= self.inner.max_sessions_per_user {
            return Err(TooManySessions {
                user: user.to_string(),
                limit: self.inner.max_sessions_per_user,
            });
        }
        *sessions.per_user.entry(user.clone()).or_default() += 1;
        let entry = SessionEntry {
            user,
            outbox,
            transport,
        };
        if let Some(replaced) = sessions.by_id.insert(id, entry) {
            // Ids are unique; should one come back, its old entry stops counting.
            count_down_user(&mut sessions.per_user, &replaced.user);
        }
        Ok(())
    }

    /// Forgets a session.
    pub(crate) fn unregister_session(&self, id: u64) {
        let mut sessions = self
            .inner
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = sessions.by_id.remove(&id) {
            count_down_user(&mut sessions.per_user, &entry.user);
        }
    }

    /// The open sessions, by id, with what waits in their outboxes.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let sessions = self
            .inner
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<SessionInfo> = sessions
            .by_id
            .iter()
            .map(|(id, entry)| {
                let (queued, queued_bytes) = entry.outbox.backlog();
                SessionInfo {
                    id: *id,
                    user: entry.user.to_string(),
                    transport: entry.transport,
                    queued,
                    queued_bytes,
                    slow_since_ms: entry
                        .outbox
                        .full_since()
                        .map(|since| since.elapsed().as_millis() as u64),
                }
            })
            .collect();
        list.sort_by_key(|s| s.id);
        list
    }

    /// How many sessions are open.
    pub fn session_count(&self) -> usize {
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_id
            .len()
    }

    /// Ends every session with an ERROR carrying `message` (server shutdown).
    pub(crate) fn close_all_sessions(&self, farewell: &Frame) {
        let outboxes: Vec<Arc<Outbox>> = self
            .inner
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_id
            .values()
            .map(|s| s.outbox.clone())
            .collect();
        for outbox in outboxes {
            outbox.close(CloseReason::Error(Box::new(farewell.clone())));
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
    /// `/app/` destinations are refused here: they go to their application handler.
    pub async fn publish(&self, user: &str, message: Message) -> Result<(), PublishError> {
        let destination = message.destination.to_string();
        self.publish_now(user, message)?
            .outcome()
            .await
            .map_err(|reason| cluster_refusal(destination, reason))
    }

    /// [`Broker::publish`] without the wait: the message is in every subscriber's outbox (or
    /// on its queue) when this returns, and the returned [`Backpressure`] is the wait. A
    /// publisher that must order its deliveries against something else (the job engine,
    /// against a subscription's replay) delivers under its own lock and waits outside it.
    pub(crate) fn publish_now(
        &self,
        user: &str,
        message: Message,
    ) -> Result<Backpressure, PublishError> {
        self.route(Publisher::Client(user), message)
    }

    /// Publishes as the server itself (job events, statistics): past the ACL, and the only
    /// way onto server-owned destinations. Waits like [`Broker::publish`].
    pub async fn publish_as_server(&self, message: Message) -> Result<(), PublishError> {
        let destination = message.destination.to_string();
        self.publish_now_as_server(message)?
            .outcome()
            .await
            .map_err(|reason| cluster_refusal(destination, reason))
    }

    /// [`Broker::publish_as_server`] without the wait (see [`Broker::publish_now`]).
    pub(crate) fn publish_now_as_server(
        &self,
        message: Message,
    ) -> Result<Backpressure, PublishError> {
        self.route(Publisher::Server, message)
    }

    /// The one place a message enters the router: a client is held to the ACL and kept off
    /// the server-owned destinations; the server is not.
    fn route(
        &self,
        publisher: Publisher<'_>,
        message: Message,
    ) -> Result<Backpressure, PublishError> {
        let destination = message.destination.clone();
        let target = parse_send(&destination)?;
        if let Publisher::Client(user) = publisher {
            if is_server_owned(&target) {
                return Err(PublishError::ServerOwned {
                    destination: destination.to_string(),
                });
            }
            if !self.inner.acl.allows(user, &destination, Access::Write) {
                return Err(PublishError::Forbidden {
                    user: user.to_owned(),
                    destination: destination.to_string(),
                });
            }
        }
        Metrics::incr(&self.inner.metrics.messages_published);
        // Topic and user-destination messages also go to the other nodes, after the local
        // delivery and in the order they are routed here (the link keeps that order).
        let pending = match target {
            SendTarget::Topic(name) => {
                let message = Arc::new(message);
                let local = self.deliver(name, message.clone());
                self.forward(name, &message, local)
            }
            SendTarget::User {
                user: recipient,
                local,
            } => {
                let key = user_key(recipient, &local);
                let message = Arc::new(message.with_destination(local.into()));
                let delivered = self.deliver(&key, message.clone());
                self.forward(&key, &message, delivered)
            }
            // On a cluster member a queue lives in the cluster's store, whichever node its
            // consumers are on: the message is appended there (a RECEIPT waits for it).
            SendTarget::Queue(name) => match self.inner.queues.shared_for(name) {
                Some(shared) => {
                    let appended =
                        shared
                            .append(name, &message)
                            .map_err(|reason| QueueRefused::Store {
                                queue: name.to_owned(),
                                reason,
                            })?;
                    federation::hold_append(appended)
                }
                None => {
                    let queue = self.queue(name);
                    queue.enqueue(Arc::new(message))?;
                    if queue.is_above_mark() && queue.has_consumers() {
                        // Producer flow control, as for a full topic subscriber: this session
                        // reads its next frame once consumers have caught up (or the grace has
                        // passed). A queue nobody consumes just fills up to its limit: store
                        // and forward.
                        Some(Pending::Queue(queue))
                    } else {
                        None
                    }
                }
            },
            SendTarget::App(name) => return Err(PublishError::NoAppHandler(name.to_owned())),
        };
        Ok(Backpressure::new(self, pending))
    }

    /// Puts `message` in the outbox of every subscription matching `key`; the outboxes it
    /// filled are the publisher's to wait for.
    fn deliver(&self, key: &str, message: Arc<Message>) -> Option<Pending> {
        let mut fan_out = FanOut::default();
        self.inner.topics.for_each_match(key, |subscriber| {
            self.push(subscriber, &message, &mut fan_out)
        });
        self.settle(key, fan_out)
    }

    /// [`Broker::deliver`] to the subscriptions registered under `interest` only (a message
    /// from another node, which arrives once per interest this node registered).
    fn deliver_under(&self, interest: &str, key: &str, message: Arc<Message>) -> Option<Pending> {
        let mut fan_out = FanOut::default();
        self.inner
            .topics
            .for_each_match_under(interest, key, |subscriber| {
                self.push(subscriber, &message, &mut fan_out)
            });
        self.settle(key, fan_out)
    }

    /// Counts the deliveries of one fan-out; the outboxes it filled are the publisher's wait.
    fn settle(&self, key: &str, fan_out: FanOut) -> Option<Pending> {
        self.inner
            .metrics
            .messages_delivered
            .fetch_add(fan_out.delivered, Ordering::Relaxed);
        (!fan_out.full.is_empty()).then(|| Pending::Outboxes {
            destination: key.to_owned(),
            full: fan_out.full,
            cluster: false,
        })
    }

    /// Puts `message` in one subscriber's outbox (or its durable queue).
    fn push(&self, subscriber: &Arc<Subscriber>, message: &Arc<Message>, fan_out: &mut FanOut) {
        {
            let (subscription, outbox, ack) = match &subscriber.target {
                Target::Session {
                    subscription,
                    outbox,
                    ack,
                } => (subscription, outbox, ack),
                Target::Queue(queue) => {
                    if let Err(error) = queue.enqueue(message.clone()) {
                        Metrics::incr(&self.inner.metrics.durable_subscription_overflows);
                        tracing::warn!(subscription = queue.name(), %error, "durable subscription did not take a message");
                    }
                    return;
                }
            };
            let delivery = Delivery {
                message: message.clone(),
                subscription: subscription.clone(),
                ack: ack.then(|| format!("{}.{}", subscriber.key, message.id).into()),
                redelivered: false,
                settle: None,
            };
            match outbox.push(Outgoing::Delivery(delivery)) {
                Ok(Pressure::Clear) => fan_out.delivered += 1,
                Ok(Pressure::Full) => {
                    fan_out.delivered += 1;
                    fan_out.full.push(outbox.clone());
                }
                Err(_closed) => {}
            }
        }
    }

    /// True when some subscription would receive a message sent to `destination`. On a
    /// cluster member always true: a subscription on another node is not known here (NATS
    /// routes by interest and drops a message nobody watches, so a publisher that skips
    /// unwatched destinations must not skip them there).
    pub fn has_subscribers(&self, destination: &str) -> bool {
        if self.federation().is_some() && !is_node_local(destination) {
            return true;
        }
        let mut any = false;
        self.inner
            .topics
            .for_each_match(destination, |_| any = true);
        any
    }

    /// Adds a topic or user-destination subscription under `key` (a name or pattern); on a
    /// cluster member, the returned interest completes once other nodes route `key` here.
    pub(crate) fn subscribe_topic(&self, key: &str, subscriber: Arc<Subscriber>) -> Interest {
        self.inner.topics.insert(key, subscriber);
        match self.federation() {
            Some(federation) => federation.watch(key),
            None => Interest::known(),
        }
    }

    /// Removes a topic subscription.
    pub(crate) fn unsubscribe_topic(&self, key: &str, subscriber_key: u64) {
        if self.inner.topics.remove(key, subscriber_key) {
            if let Some(federation) = self.federation() {
                federation.unwatch(key);
            }
        }
    }

    /// The queue called `name`, created on first use.
    pub(crate) fn queue(&self, name: &str) -> Arc<Queue> {
        self.inner.queues.queue(name)
    }

    /// Every queue's depth, bytes, consumers and unacked count.
    pub fn queue_stats(&self) -> Vec<QueueStats> {
        self.inner.queues.stats()
    }

    /// Drops the waiting messages of queue `name`; returns how many, or `None` if unknown.
    pub fn purge_queue(&self, name: &str) -> Option<usize> {
        Some(self.inner.queues.get(name)?.purge())
    }

    /// Deletes queue `name` with its waiting messages. Returns false if unknown.
    pub fn delete_queue(&self, name: &str) -> bool {
        self.inner.queues.delete(name)
    }

    /// Drops expired messages from every queue; returns how many.
    pub(crate) fn drop_expired(&self) -> usize {
        self.inner.queues.drop_expired()
    }

    /// The handler for an `/app/` destination.
    pub(crate) fn app_handler(&self, destination: &str) -> Option<Arc<dyn app::AppHandler>> {
        self.apps().find(destination).cloned()
    }
}

/// An append the cluster refused, as a publish error.
fn cluster_refusal(queue: String, reason: String) -> PublishError {
    PublishError::Queue(QueueRefused::Store { queue, reason })
}

/// What one fan-out did: deliveries made, outboxes it filled.
#[derive(Default)]
struct FanOut {
    delivered: u64,
    full: Vec<Arc<Outbox>>,
}

/// Who is publishing.
#[derive(Debug, Clone, Copy)]
enum Publisher<'a> {
    /// A client acting as this user.
    Client(&'a str),
    /// The server itself.
    Server,
}

/// One session fewer for `user`; a user with none left is forgotten.
fn count_down_user(per_user: &mut HashMap<Arc<str>, usize>, user: &Arc<str>) {
    if let Some(n) = per_user.get_mut(user) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            per_user.remove(user);
        }
    }
}
