//! Queues across nodes, kept in JetStream: the broker's [`SharedQueues`] on a cluster member.
//!
//! One stream, `STOMPEDE_QUEUES`, holds every queue's messages under `stompede.queue.<...>._`
//! (the destination encoded as `subject.rs` encodes any key), with work-queue retention (a
//! message is gone once acknowledged) on files, replicated `cluster-replicas` times. Each queue
//! has one durable pull consumer, shared by every node that has consumers for it: JetStream
//! hands each message to one node at a time, and hands it out again when that node gives it
//! back (NAK) or does not acknowledge it within the ack wait (a node that died).
//!
//! - Sending: [`SharedQueues::append`] queues the message for one ordered pump, which
//!   publishes to the stream and passes JetStream's PubAck on to whoever waits for it (a
//!   RECEIPT waits: `Broker::commit_own`).
//! - Consuming: while a queue has consumers on this node, a task pulls as many messages as
//!   they have credit for (`Queue::wanted`) and hands them to the node's queue
//!   (`Queue::take_in`), each with its [`Lease`]: the client's ACK acknowledges it in
//!   JetStream, a NACK or a consumer's going gives it back.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream, AckKind};
use bytes::Bytes;
use futures::StreamExt;
use sha2::Digest;
use tokio::sync::{mpsc, oneshot, OnceCell};

use super::{envelope, subject, Shared};
use crate::broker::destination::Pattern;
use crate::broker::federation::{Appended, Lease, SharedQueues};
use crate::broker::message::Message;
use crate::broker::queue::{Queue, Queued};

/// The stream of every queue.
pub const STREAM: &str = "STOMPEDE_QUEUES";

/// Most messages one pull asks for: a consumer without a prefetch limit still takes them in
/// batches, so that one node does not take a whole backlog the others could share.
const MAX_PULL: usize = 256;

/// How long one pull request waits at the server for messages before it is renewed.
const PULL_WAIT: Duration = Duration::from_secs(1);

/// How long past its expiry a pull is waited for before it is taken as lost: long, because a
/// message the server hands to a pull given up on comes back only after the ack wait.
const PULL_GRACE: Duration = Duration::from_secs(5);

/// How long an append waits for the stream to exist (JetStream electing its leaders after a
/// start) before it is refused.
const STREAM_WAIT: Duration = Duration::from_secs(15);

/// What a node's queues in JetStream share.
pub(super) struct Queues {
    js: jetstream::Context,
    replicas: usize,
    ack_wait: Duration,
    stream: OnceCell<stream::Stream>,
    /// The last failure to reach the stream, and when: appends meanwhile are refused at once
    /// rather than each waiting [`STREAM_WAIT`] in the pump (NATS without JetStream).
    unreachable: Mutex<Option<(tokio::time::Instant, String)>>,
    appends: mpsc::Sender<Append>,
}

/// One message on its way to the stream.
pub(super) struct Append {
    subject: String,
    payload: Bytes,
    done: oneshot::Sender<Result<(), String>>,
}

impl Queues {
    /// The queues of `client`'s JetStream, and the receiving end of the append pump.
    pub(super) fn new(
        client: async_nats::Client,
        replicas: usize,
        ack_wait: Duration,
        capacity: usize,
    ) -> (Queues, mpsc::Receiver<Append>) {
        let (appends, queue) = mpsc::channel(capacity.max(1));
        (
            Queues {
                js: jetstream::new(client),
                replicas: replicas.max(1),
                ack_wait,
                stream: OnceCell::new(),
                unreachable: Mutex::new(None),
                appends,
            },
            queue,
        )
    }

    /// The stream, created by the first node that needs it (every node asks for the same
    /// configuration, so whichever comes first, the others find it).
    async fn stream(&self) -> Result<&stream::Stream, String> {
        self.stream
            .get_or_try_init(|| async {
                let config = stream::Config {
                    name: STREAM.to_owned(),
                    subjects: vec![format!("{}.queue.>", subject::ROOT)],
                    retention: stream::RetentionPolicy::WorkQueue,
                    storage: stream::StorageType::File,
                    num_replicas: self.replicas,
                    ..Default::default()
                };
                // A new stream's subjects also reach the other servers a moment after it
                // exists: the probe waits that out too.
                let what = format!("stream {STREAM}");
                super::while_jetstream_starts(STREAM_WAIT, &what, || async {
                    let stream = self
                        .js
                        .get_or_create_stream(config.clone())
                        .await
                        .map_err(|error| error.to_string())?;
                    self.probe(&stream).await.map(|()| stream)
                })
                .await
            })
            .await
    }

    /// [`Queues::stream`], refused at once for a while after it failed.
    async fn stream_for_appends(&self) -> Result<&stream::Stream, String> {
        if self.stream.get().is_none() {
            let unreachable = self.unreachable.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((since, error)) = unreachable.as_ref() {
                if since.elapsed() < STREAM_WAIT {
                    return Err(error.clone());
                }
            }
        }
        let stream = self.stream().await;
        if let Err(error) = &stream {
            tracing::error!(%error, "cluster: queue messages refused: JetStream not reachable (--cluster-queues off keeps queues on each node)");
            *self.unreachable.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((tokio::time::Instant::now(), error.clone()));
        }
        stream
    }

    /// Stores one message through this node's NATS server and removes it: once that works,
    /// the stream takes this node's appends (a stream just made in a NATS cluster is known to
    /// the server that made it before the others).
    async fn probe(&self, stream: &stream::Stream) -> Result<(), String> {
        // No key's subject ends this way (`subject.rs`: every one ends with `._`).
        let subject = format!("{}.queue.probe", subject::ROOT);
        let stored = self
            .js
            .publish(subject, Bytes::new())
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        stream
            .delete_message(stored.sequence)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// The durable pull consumer of queue `name`.
    async fn consumer(&self, name: &str, filter: String) -> Result<consumer::PullConsumer, String> {
        let stream = self.stream().await?;
        let durable = durable_name(name);
        let config = pull_config(&durable, filter, self.ack_wait);
        stream
            .get_or_create_consumer(&durable, config)
            .await
            .map_err(|error| format!("JetStream consumer for {name}: {error}"))
    }
}

/// The configuration of a durable pull consumer `durable` of the messages under `filter`,
/// each acknowledged within `ack_wait`, as queues and durable subscriptions use them.
pub(super) fn pull_config(
    durable: &str,
    filter: String,
    ack_wait: std::time::Duration,
) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(durable.to_owned()),
        filter_subject: filter,
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait,
        // Dead-lettering is the broker's (max-deliveries, as on a single node): JetStream
        // hands a message out as often as it comes back.
        max_deliver: -1,
        max_ack_pending: 100_000,
        ..Default::default()
    }
}

/// A consumer name for queue `name`: JetStream names may not hold `.`, `*`, `>` or spaces,
/// which destinations may, so the name is a digest of the destination.
fn durable_name(name: &str) -> String {
    let digest = sha2::Sha256::digest(name.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("q-{hex}")
}

/// Publishes appends in the order they were made, each PubAck passed on as it comes.
pub(super) async fn pump(shared: Arc<Shared>, mut queue: mpsc::Receiver<Append>) {
    let Some(queues) = shared.queues.as_ref() else {
        return;
    };
    loop {
        let append = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            append = queue.recv() => append,
        };
        let Some(Append {
            subject,
            payload,
            done,
        }) = append
        else {
            return;
        };
        if let Err(error) = queues.stream_for_appends().await {
            let _ = done.send(Err(error));
            continue;
        }
        match queues.js.publish(subject, payload).await {
            Ok(ack) => {
                shared.metrics.queue_appends.fetch_add(1, Ordering::Relaxed);
                // Awaited apart, so the next message goes out without waiting for this one's
                // PubAck (JetStream stores a connection's publications in order).
                tokio::spawn(async move {
                    let stored = ack.await.map(|_| ()).map_err(|e| e.to_string());
                    let _ = done.send(stored);
                });
            }
            Err(error) => {
                let _ = done.send(Err(error.to_string()));
            }
        }
    }
}

/// Pulls queue `queue`'s messages for this node's consumers while it has any.
async fn consume(shared: Arc<Shared>, queue: Arc<Queue>) {
    let Some(queues) = shared.queues.as_ref() else {
        return;
    };
    let name = queue.name().to_owned();
    let Some(filter) = subject::subject_for(&name) else {
        tracing::warn!(queue = %name, "cluster: queue name too long for a NATS subject");
        queue.stop_consuming();
        return;
    };
    let name = &name;
    let open = move || queues.consumer(name, filter.clone());
    pull(&shared, &queue, queues.ack_wait, open, None).await;
}

/// Takes messages from the JetStream pull consumer that `open` makes (or finds) for the
/// consumers of `queue` here, while it has any: as many as they have credit for, each leased
/// (see [`take`]), the leases held here renewed every third of `ack_wait`. A message whose
/// key `keep` does not match is acknowledged and dropped (a consumer's subject filter can
/// be wider than the pattern it stands for: `subject.rs`).
pub(super) async fn pull<F, Fut>(
    shared: &Arc<Shared>,
    queue: &Arc<Queue>,
    ack_wait: Duration,
    open: F,
    keep: Option<&Pattern>,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<consumer::PullConsumer, String>>,
{
    let name = queue.name().to_owned();
    // Held messages are renewed at a third of the ack wait, so two renewals may be late
    // before JetStream hands one to another node.
    let renew_every = ack_wait / 3;
    let mut renewed = tokio::time::Instant::now();
    let puller = loop {
        // Asked for its state once made: the answer comes from the consumer's leader, so a
        // pull sent after it finds one (a pull sent while a new consumer still elects its
        // leader is lost without an answer).
        let ready = match open().await {
            Ok(puller) => puller
                .get_info()
                .await
                .map(|_| puller)
                .map_err(|e| e.to_string()),
            Err(error) => Err(error),
        };
        match ready {
            Ok(puller) => break puller,
            Err(error) => {
                tracing::warn!(%error, "cluster: queue consumer not ready; retrying");
                tokio::select! {
                    _ = shared.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                if !queue.has_consumers() && queue.stop_consuming() {
                    return;
                }
            }
        }
    };
    loop {
        if shared.shutdown.is_cancelled() {
            queue.release_waiting();
            return;
        }
        if renewed.elapsed() >= renew_every {
            for lease in queue.leases() {
                lease.touch();
            }
            renewed = tokio::time::Instant::now();
        }
        let wanted = queue.wanted().min(MAX_PULL);
        if wanted == 0 {
            if !queue.has_consumers() {
                // Messages taken for consumers that left go back for other nodes.
                queue.release_waiting();
                if queue.stop_consuming() {
                    return;
                }
                continue;
            }
            // Woken by the queue when its consumers gain credit (an ACK, a drained outbox);
            // the timer only bounds a missed wake-up.
            tokio::select! {
                _ = shared.shutdown.cancelled() => {}
                () = queue.demand() => {}
                _ = tokio::time::sleep(PULL_WAIT.min(renew_every)) => {}
            }
            continue;
        }
        let batch = puller
            .batch()
            .max_messages(wanted)
            .expires(PULL_WAIT)
            .messages()
            .await;
        let mut batch = match batch {
            Ok(batch) => batch,
            Err(error) => {
                tracing::debug!(queue = %name, %error, "cluster: pull failed");
                tokio::select! {
                    _ = shared.shutdown.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
                continue;
            }
        };
        // The server ends a pull at its expiry; one it never received (sent while a new
        // consumer's leader was still being elected) would never end: given up past the
        // expiry and a grace, and asked again. A message that reaches the abandoned pull is
        // not lost: unacknowledged, it comes back after the ack wait.
        let deadline = tokio::time::Instant::now() + PULL_WAIT + PULL_GRACE;
        loop {
            match tokio::time::timeout_at(deadline, batch.next()).await {
                Ok(Some(Ok(message))) => take(shared, queue, message, keep),
                Ok(Some(Err(error))) => {
                    tracing::debug!(queue = %name, %error, "cluster: pull ended");
                    break;
                }
                Ok(None) => break,
                Err(_) => {
                    shared
                        .metrics
                        .pulls_unanswered
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(queue = %name, "cluster: pull not answered; asking again");
                    break;
                }
            }
        }
    }
}

/// Hands one pulled message to the node's queue, leased (unless `keep` refuses its key).
fn take(
    shared: &Arc<Shared>,
    queue: &Arc<Queue>,
    message: jetstream::Message,
    keep: Option<&Pattern>,
) {
    let delivered = message.info().map_or(1, |info| info.delivered.max(1));
    let (message, acker) = message.split();
    let lease = Arc::new(JetStreamLease {
        acker: Mutex::new(Some(Arc::new(acker))),
        runtime: shared.runtime.clone(),
    });
    let envelope = match envelope::decode(&message.payload) {
        Ok(envelope) => envelope,
        Err(error) => {
            shared.metrics.malformed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(subject = %message.subject, %error, "cluster: queue message refused");
            // Not ours to read, nor anyone's: acknowledged, so it does not come back forever.
            lease.ack();
            return;
        }
    };
    if keep.is_some_and(|pattern| !pattern.matches(&envelope.key)) {
        lease.ack();
        return;
    }
    let Some(broker) = shared.broker.upgrade() else {
        lease.release();
        return;
    };
    shared.metrics.queue_takes.fetch_add(1, Ordering::Relaxed);
    let routed = broker.message(
        envelope.destination.into(),
        &envelope.headers,
        envelope.body,
        envelope.text,
    );
    let expires = queue.expiry_of(&routed);
    let delivered = u32::try_from(delivered).unwrap_or(u32::MAX);
    queue.take_in(Queued {
        message: Arc::new(routed),
        redelivered: delivered > 1,
        // The queue counts the delivery it is about to make.
        deliveries: delivered - 1,
        seq: None,
        expires,
        lease: Some(lease),
    });
}

/// A pulled message's acknowledgement, made once (later calls do nothing).
struct JetStreamLease {
    /// Taken by the settlement (so there is one); shared with renewals meanwhile.
    acker: Mutex<Option<Arc<jetstream::message::Acker>>>,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for JetStreamLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamLease").finish_non_exhaustive()
    }
}

impl JetStreamLease {
    fn settle(&self, kind: AckKind) {
        let taken = self.acker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(acker) = taken {
            self.runtime.spawn(async move {
                if let Err(error) = acker.ack_with(kind).await {
                    // Not acknowledged: JetStream hands it out again after the ack wait
                    // (at least once).
                    tracing::warn!(%error, "cluster: queue acknowledgement not sent");
                }
            });
        }
    }
}

impl Lease for JetStreamLease {
    fn ack(&self) {
        self.settle(AckKind::Ack);
    }

    fn release(&self) {
        self.settle(AckKind::Nak(None));
    }

    fn touch(&self) {
        let held = self.acker.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(acker) = held {
            self.runtime.spawn(async move {
                // "Work in progress": JetStream restarts the message's ack wait.
                if let Err(error) = acker.ack_with(AckKind::Progress).await {
                    tracing::debug!(%error, "cluster: queue message not renewed");
                }
            });
        }
    }
}

impl SharedQueues for super::Cluster {
    fn append(&self, queue: &str, message: &Message) -> Result<Appended, String> {
        let shared = &self.0;
        let queues = shared
            .queues
            .as_ref()
            .ok_or_else(|| "this node keeps no queues in JetStream".to_owned())?;
        let subject = subject::subject_for(queue)
            .ok_or_else(|| format!("queue name too long for a NATS subject: {queue}"))?;
        let payload = envelope::encode(&shared.node, queue, message).map_err(|e| e.to_string())?;
        let (done, appended) = oneshot::channel();
        queues
            .appends
            .try_send(Append {
                subject,
                payload,
                done,
            })
            .map_err(|_| "the cluster's queue link is full; try again".to_owned())?;
        Ok(appended)
    }

    fn consume(&self, queue: Arc<Queue>) {
        let shared = self.0.clone();
        if shared.durables.is_some() && !queue.name().starts_with("/queue/") {
            // A durable topic subscription's queue: its messages are in its own stream.
            shared
                .runtime
                .clone()
                .spawn(super::durables::consume(shared, queue));
        } else {
            shared.runtime.clone().spawn(consume(shared, queue));
        }
    }

    fn open_durable(&self, name: &str, destination: &str) -> Appended {
        super::durables::open(&self.0, name, destination)
    }

    fn close_durable(&self, name: &str) -> Appended {
        super::durables::close(&self.0, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_names_are_valid_jetstream_names_and_differ_per_queue() {
        let a = durable_name("/queue/orders.eu");
        let b = durable_name("/queue/orders eu");
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        assert_eq!(a.len(), 2 + 32);
    }
}
