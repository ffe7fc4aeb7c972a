//! Scale-out over NATS: a node started with `--cluster nats://...` links its broker to the
//! other nodes through a NATS server (or cluster of them).
//!
//! Topics and user destinations (and so the job events published on them) travel between nodes
//! over core NATS; queues live in JetStream; jobs in JetStream come later. The broker sees none
//! of this module: the server wiring attaches a [`Cluster`] to it as a [`Federation`] and as its
//! `SharedQueues` (the broker's doors for links to other nodes).
//!
//! - [`subject`]: destination keys as NATS subjects, wildcards included.
//! - [`envelope`]: a message as it travels between nodes.
//! - `link`: the NATS connection and the ordered outbound pump.
//! - `interest`: one NATS subscription per watched key, and its reader.
//! - [`members`]: heartbeats, and the members this node hears.
//! - `queues`: queues in a JetStream stream, appended in order and consumed by lease.
//! - `durables`: durable topic subscriptions, consumers of a JetStream stream of topic
//!   messages, consumed by lease as queues are.
//! - [`jobs`]: the job store and queue in JetStream, with fenced leases (`--cluster-jobs`).
//! - [`backlog`]: what waits in those streams, and how far their copies trail.
//!
//! Guarantees and limits are written down in README.md ("Cluster").

pub mod backlog;
mod durables;
pub mod envelope;
mod interest;
pub mod jobs;
mod link;
pub mod members;
mod queues;
pub mod subject;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use crate::broker::federation::{Appended, BoxFuture, Federation, Forward, Interest, WeakBroker};
use crate::broker::message::Message;
use crate::broker::Broker;
use interest::Interests;
use link::{Kept, Outbound};
use members::{Member, Members};

/// How a node joins the cluster (from `--cluster` and its companions).
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// NATS server URLs (`nats://host:port`, `tls://host:port`).
    pub servers: Vec<String>,
    /// This node's name, carried by every message it sends (`--node-name`).
    pub node: String,
    /// A NATS `.creds` file (JWT and NKey seed).
    pub credentials_file: Option<PathBuf>,
    /// User name (with `password`).
    pub user: Option<String>,
    /// Password (with `user`).
    pub password: Option<String>,
    /// Authentication token.
    pub token: Option<String>,
    /// A CA certificate (PEM) to trust for TLS to NATS; requires TLS.
    pub ca_file: Option<PathBuf>,
    /// Messages waiting to be published to NATS; past half of it publishers are paced, past
    /// all of it copies for other nodes are dropped (counted).
    pub outbound_capacity: usize,
    /// Messages the NATS client buffers per subscription before it drops (NATS's slow
    /// consumer rule; counted).
    pub subscription_capacity: usize,
    /// How long a SUBSCRIBE's RECEIPT waits for its interest to reach NATS.
    pub interest_timeout: Duration,
    /// How long start-up waits for the first connection (the node starts regardless).
    pub connect_timeout: Duration,
    /// How often the node announces itself to the others; a member that misses
    /// [`members::MISSES`] of its heartbeats is gone from their view.
    pub heartbeat: Duration,
    /// Keep `/queue/...` destinations in JetStream, shared by every node (the NATS servers
    /// must run JetStream); false keeps each node's queues its own.
    pub queues: bool,
    /// Copies JetStream keeps of the queue stream (1, or an odd number up to 5 in a NATS
    /// cluster of at least as many servers).
    pub replicas: usize,
    /// How long JetStream waits for a node to acknowledge (or renew) a queue message before
    /// handing it to another (a node that died); held messages are renewed every third of it.
    pub ack_wait: Duration,
    /// Most messages JetStream keeps for all durable topic subscriptions together (with
    /// `queues`; the node's `max-queue-messages`).
    pub durable_max_messages: usize,
    /// Most bytes JetStream keeps for all durable topic subscriptions together (with
    /// `queues`; the node's `max-queue-bytes`).
    pub durable_max_bytes: usize,
    /// Keep the job store and queue in JetStream (`jobs.rs`).
    pub jobs: bool,
    /// How long a job's lease lasts unrenewed.
    pub job_lease: Duration,
}

/// Why the cluster link could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A server URL that does not parse.
    #[error("cluster server address {0}")]
    Address(String),
    /// The credentials file could not be read.
    #[error("cluster credentials {0}")]
    Credentials(String),
    /// The client could not be set up.
    #[error("cluster connection: {0}")]
    Connect(String),
}

/// The cluster link's counters.
#[derive(Debug, Default)]
pub struct ClusterMetrics {
    /// Messages handed to the outbound queue.
    pub forwarded: AtomicU64,
    /// Messages published to NATS.
    pub messages_out: AtomicU64,
    /// Messages received from other nodes and routed here.
    pub messages_in: AtomicU64,
    /// Copies for other nodes dropped: outbound queue full, or NATS refused the publish.
    pub dropped_outbound: AtomicU64,
    /// Messages from other nodes dropped by the NATS client's bounded subscription channel
    /// (slow consumer).
    pub dropped_inbound: AtomicU64,
    /// Keys too long for a NATS subject: routed locally only.
    pub unroutable: AtomicU64,
    /// Payloads from NATS that are not envelopes.
    pub malformed: AtomicU64,
    /// Messages that came back from this node's own name (another node misnamed the same).
    pub own_skipped: AtomicU64,
    /// SUBSCRIBE receipts sent before their interest reached NATS (timeout).
    pub interest_timeouts: AtomicU64,
    /// Connections established (the first and every reconnection).
    pub connects: AtomicU64,
    /// Connections lost.
    pub disconnects: AtomicU64,
    /// Heartbeats heard from other nodes.
    pub heartbeats_in: AtomicU64,
    /// Members that appeared in the view (new, restarted, or back after missing heartbeats).
    pub members_joined: AtomicU64,
    /// Members that said they were leaving (a clean shutdown).
    pub members_left: AtomicU64,
    /// Members dropped from the view after missing their heartbeats.
    pub members_lost: AtomicU64,
    /// Queue messages published to JetStream.
    pub queue_appends: AtomicU64,
    /// Queue messages taken from JetStream for this node's consumers.
    pub queue_takes: AtomicU64,
    /// Pulls from JetStream that never ended (lost on the way) and were asked again.
    pub pulls_unanswered: AtomicU64,
    /// Persistent topic messages the durable subscriptions' stream refused (full).
    pub durable_overflows: AtomicU64,
}

/// What the link shares with its tasks.
struct Shared {
    node: String,
    client: async_nats::Client,
    metrics: Arc<ClusterMetrics>,
    outbound: mpsc::Sender<Outbound>,
    outbound_capacity: usize,
    /// Messages in the outbound queue: counted here because the pacing mark needs the
    /// number, which the channel does not give to its senders.
    queued: AtomicUsize,
    /// Woken when the outbound queue drops below its mark.
    room: Notify,
    interests: Interests,
    interest_timeout: Duration,
    broker: WeakBroker,
    shutdown: CancellationToken,
    runtime: tokio::runtime::Handle,
    members: Members,
    heartbeat: Duration,
    /// When this node started (ms since the epoch), carried by its heartbeats.
    started_at: u64,
    /// The queues in JetStream, when the node keeps them there.
    queues: Option<queues::Queues>,
    /// The durable topic subscriptions in JetStream, kept there with the queues.
    durables: Option<durables::Durables>,
    /// The jobs in JetStream, when the node keeps them there.
    jobs: Option<Arc<jobs::ClusterJobs>>,
}

impl Shared {
    /// The outbound queue's mark: publishers above it are paced.
    fn mark(&self) -> usize {
        (self.outbound_capacity / 2).max(1)
    }
}

/// A node's link to the others: attach it to the broker with [`Cluster::start`].
#[derive(Clone)]
pub struct Cluster(Arc<Shared>);

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.0.node)
            .finish_non_exhaustive()
    }
}

/// The cluster as `/cluster`, `/ready` and `/metrics` show it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// This node's name.
    pub node: String,
    /// `connected`, `reconnecting` (the connection was lost; the client retries forever) or
    /// `connecting` (never connected yet).
    pub nats: &'static str,
    /// The NATS server connected to, when connected.
    pub server: Option<String>,
    /// Keys this node watches (one NATS subscription each).
    pub interests: usize,
    /// Messages waiting to be published.
    pub outbound_queued: usize,
    /// The members heard within their last heartbeats, this node first.
    pub members: Vec<Member>,
    /// Every counter, by name.
    pub counters: std::collections::BTreeMap<&'static str, u64>,
}

impl Cluster {
    /// Connects to NATS and attaches the link to `broker`; stops with `shutdown`.
    pub async fn start(
        settings: ClusterSettings,
        broker: &Broker,
        shutdown: CancellationToken,
    ) -> Result<Cluster, ClusterError> {
        let metrics = Arc::new(ClusterMetrics::default());
        let client = link::connect(&settings, metrics.clone()).await?;
        let capacity = settings.outbound_capacity.max(2);
        let (outbound, queue) = mpsc::channel(capacity);
        let (queues, appends) = if settings.queues {
            let (queues, appends) = queues::Queues::new(
                client.clone(),
                settings.replicas,
                settings.ack_wait,
                capacity,
            );
            (Some(queues), Some(appends))
        } else {
            (None, None)
        };
        let durables = settings.queues.then(|| {
            durables::Durables::new(
                client.clone(),
                settings.replicas,
                settings.ack_wait,
                settings.durable_max_messages,
                settings.durable_max_bytes,
            )
        });
        let cluster_jobs = settings.jobs.then(|| {
            Arc::new(jobs::ClusterJobs::new(
                client.clone(),
                settings.node.clone(),
                settings.replicas,
                settings.job_lease,
                shutdown.clone(),
            ))
        });
        let shared = Arc::new(Shared {
            node: settings.node,
            client,
            metrics,
            outbound,
            outbound_capacity: capacity,
            queued: AtomicUsize::new(0),
            room: Notify::new(),
            interests: Interests::default(),
            interest_timeout: settings.interest_timeout,
            broker: broker.downgrade(),
            shutdown,
            runtime: tokio::runtime::Handle::current(),
            members: Members::default(),
            heartbeat: settings.heartbeat.max(Duration::from_millis(10)),
            started_at: crate::clock::now_ms(),
            queues,
            durables,
            jobs: cluster_jobs,
        });
        tokio::spawn(link::pump(shared.clone(), queue));
        tokio::spawn(members::listen(shared.clone()));
        tokio::spawn(members::announce(shared.clone()));
        if let Some(appends) = appends {
            tokio::spawn(queues::pump(shared.clone(), appends));
        }
        let cluster = Cluster(shared);
        broker.attach_federation(Arc::new(cluster.clone()));
        if cluster.0.queues.is_some() {
            broker.attach_shared_queues(Arc::new(cluster.clone()));
        }
        tracing::info!(node = %cluster.0.node, "cluster: member");
        Ok(cluster)
    }

    /// The job store shared by the nodes, when the node keeps its jobs in JetStream.
    pub fn shared_jobs(&self) -> Option<Arc<dyn crate::jobs::shared::SharedJobs>> {
        self.0
            .jobs
            .as_ref()
            .map(|jobs| Arc::new(jobs::SharedJobsLink(jobs.clone())) as Arc<_>)
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.0.node
    }

    /// True while the NATS connection is up.
    pub fn is_connected(&self) -> bool {
        self.0.client.connection_state() == async_nats::connection::State::Connected
    }

    /// The counters.
    pub fn metrics(&self) -> &ClusterMetrics {
        &self.0.metrics
    }

    /// What waits in the JetStream streams this node uses and how far their copies trail;
    /// None when it keeps neither queues nor jobs there.
    pub async fn jetstream(&self) -> Option<backlog::JetStreamView> {
        let queues = self.0.queues.is_some();
        let jobs = self.0.jobs.is_some();
        if !queues && !jobs {
            return None;
        }
        let bucket = format!("KV_{}", jobs::BUCKET);
        let mut streams = Vec::new();
        if queues {
            streams.extend([queues::STREAM, durables::STREAM]);
        }
        if jobs {
            streams.extend([bucket.as_str(), jobs::RUNS, jobs::EVENTS]);
        }
        let js = async_nats::jetstream::new(self.0.client.clone());
        let work_queue = jobs.then_some((jobs::RUNS, jobs::RUNNERS));
        Some(backlog::read(&js, &streams, work_queue).await)
    }

    /// The cluster view: node, connection, interests and counters.
    pub fn status(&self) -> ClusterStatus {
        let state = self.0.client.connection_state();
        let nats = match state {
            async_nats::connection::State::Connected => "connected",
            async_nats::connection::State::Disconnected => "reconnecting",
            async_nats::connection::State::Pending => "connecting",
        };
        let server = (state == async_nats::connection::State::Connected).then(|| {
            let info = self.0.client.server_info();
            format!("{}:{}", info.host, info.port)
        });
        // First: reading the view drops the members gone since, which counts them.
        let members = self.0.members.view(&self.0);
        let m = &self.0.metrics;
        let counters = [
            ("forwarded", &m.forwarded),
            ("messages_out", &m.messages_out),
            ("messages_in", &m.messages_in),
            ("dropped_outbound", &m.dropped_outbound),
            ("dropped_inbound", &m.dropped_inbound),
            ("unroutable", &m.unroutable),
            ("malformed", &m.malformed),
            ("own_skipped", &m.own_skipped),
            ("interest_timeouts", &m.interest_timeouts),
            ("connects", &m.connects),
            ("disconnects", &m.disconnects),
            ("heartbeats_in", &m.heartbeats_in),
            ("members_joined", &m.members_joined),
            ("members_left", &m.members_left),
            ("members_lost", &m.members_lost),
            ("queue_appends", &m.queue_appends),
            ("queue_takes", &m.queue_takes),
            ("pulls_unanswered", &m.pulls_unanswered),
            ("durable_overflows", &m.durable_overflows),
        ]
        .into_iter()
        .map(|(name, counter)| (name, counter.load(Ordering::Relaxed)))
        .collect();
        ClusterStatus {
            node: self.0.node.clone(),
            nats,
            server,
            interests: self.0.interests.len(),
            outbound_queued: self.0.queued.load(Ordering::Relaxed),
            members,
            counters,
        }
    }
}

impl Cluster {
    /// Queues `message`, routed under `key`, for the ordered pump; `kept` (a persistent topic
    /// message) is answered with JetStream's PubAck once it is published.
    fn send(&self, key: &str, message: &Message, kept: Option<Kept>) -> Forward {
        let shared = &self.0;
        let Some(subject) = subject::subject_for(key) else {
            shared.metrics.unroutable.fetch_add(1, Ordering::Relaxed);
            return Forward::Clear;
        };
        let payload = match envelope::encode(&shared.node, key, message) {
            Ok(payload) => payload,
            Err(error) => {
                shared.metrics.unroutable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(key, %error, "cluster: message not sent to other nodes");
                return Forward::Clear;
            }
        };
        // Counted before it is queued, so the pump never counts below zero.
        let queued = shared.queued.fetch_add(1, Ordering::AcqRel) + 1;
        let sent = shared.outbound.try_send(Outbound {
            subject,
            payload,
            kept,
        });
        if let Err(error) = sent {
            // A persistent message's sender hears that it was not kept (its RECEIPT fails).
            let unsent = match error {
                mpsc::error::TrySendError::Full(unsent)
                | mpsc::error::TrySendError::Closed(unsent) => unsent,
            };
            if let Some(kept) = unsent.kept {
                let _ = kept.send(Err(
                    "the cluster link's outbound queue is full: the message was not kept".into(),
                ));
            }
            shared.queued.fetch_sub(1, Ordering::AcqRel);
            shared
                .metrics
                .dropped_outbound
                .fetch_add(1, Ordering::Relaxed);
        } else {
            shared.metrics.forwarded.fetch_add(1, Ordering::Relaxed);
        }
        // Above the mark a publisher is paced while NATS drains the queue; with the link down
        // nothing drains it, and pacing would only slow this node's own traffic, which must go
        // on: the queue fills, then drops (core NATS is at-most-once).
        if queued >= shared.mark() && self.is_connected() {
            Forward::Paced
        } else {
            Forward::Clear
        }
    }
}

impl Federation for Cluster {
    fn forward(&self, key: &str, message: &Message) -> Forward {
        self.send(key, message, None)
    }

    fn forward_persistent(&self, key: &str, message: &Message) -> (Forward, Option<Appended>) {
        if self.0.durables.is_none() {
            return (self.send(key, message, None), None);
        }
        let (done, kept) = tokio::sync::oneshot::channel();
        (self.send(key, message, Some(done)), Some(kept))
    }

    fn room(&self) -> BoxFuture {
        let shared = self.0.clone();
        Box::pin(async move {
            loop {
                let notified = shared.room.notified();
                tokio::pin!(notified);
                // Registered before the check, so a wake-up between the two is not lost.
                notified.as_mut().enable();
                if shared.queued.load(Ordering::Acquire) < shared.mark() {
                    return;
                }
                notified.await;
            }
        })
    }

    fn watch(&self, key: &str) -> Interest {
        self.0.interests.watch(&self.0, key)
    }

    fn unwatch(&self, key: &str) {
        self.0.interests.unwatch(key);
    }
}

/// Runs `attempt` until it succeeds or `wait` has passed, backing off from 100 ms to 2 s:
/// JetStream answers "not ready" or times out while a new cluster elects its leaders, a
/// start-up moment waited out. The last error names `what`.
pub(crate) async fn while_jetstream_starts<T, F, Fut>(
    wait: Duration,
    what: &str,
    mut attempt: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    let mut delay = Duration::from_millis(100);
    loop {
        match attempt().await {
            Ok(done) => return Ok(done),
            Err(error) if tokio::time::Instant::now() + delay < deadline => {
                tracing::debug!(%error, "cluster: {what} not ready yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(error) => return Err(format!("JetStream {what}: {error}")),
        }
    }
}
